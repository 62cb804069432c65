//! Billing reads (`GET /v1/billing/balance`, `GET /v1/billing/transactions`) and the admin's
//! stand-ins for the payment provider: credits and the per-org rate.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use domain::FieldErrors;
use domain::ids::OrgId;
use domain::ledger::{MAX_AMOUNT_CENTS, MAX_RATE_CENTS_PER_MINUTE, MAX_REFERENCE_CHARS};
use serde_json::{Value, json};
use wire::pb::{self, billing_command, billing_query, billing_reply::Result as B, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::{Admin, Caller};
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

fn balance_json(b: &pb::Balance) -> Value {
    json!({
        "balance_cents": b.balance_cents,
        "reserved_cents": b.reserved_cents,
        "available_cents": b.available_cents,
        "currency": "usd",
        "rate_cents_per_minute": b.rate_cents_per_minute,
    })
}

pub async fn balance(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.billing_query(caller.org, billing_query::Kind::Balance(pb::Empty {})).await? {
        B::Balance(b) => Ok(Json(balance_json(&b))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Reads `limit` and `offset` from a query string, with DRF's messages for bad values.
pub fn page(query: Option<&str>) -> Result<pb::Page, ApiError> {
    let mut errors = FieldErrors::new();
    let mut page = pb::Page { limit: DEFAULT_PAGE, offset: 0 };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let (slot, min, max) = match name.as_ref() {
            "limit" => (&mut page.limit, 1, MAX_PAGE),
            "offset" => (&mut page.offset, 0, u32::MAX),
            _ => continue,
        };
        match value.parse::<i64>() {
            Err(_) => errors.add(name.as_ref(), "A valid integer is required."),
            Ok(v) if v < i64::from(min) => {
                errors.add(name.as_ref(), format!("Ensure this value is greater than or equal to {min}."))
            }
            Ok(v) if v > i64::from(max) => {
                errors.add(name.as_ref(), format!("Ensure this value is less than or equal to {max}."))
            }
            Ok(v) => *slot = v as u32,
        }
    }
    errors.into_result(page).map_err(ApiError::invalid)
}

pub async fn transactions(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let page = page(query.as_deref())?;
    let (limit, offset) = (page.limit, page.offset);
    match app.services.billing_query(caller.org, billing_query::Kind::Transactions(page)).await? {
        B::Transactions(p) => Ok(Json(json!({
            "results": p.transactions.iter().map(render::transaction).collect::<Vec<_>>(),
            "total": p.total,
            "limit": limit,
            "offset": offset,
        }))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Checks that an org exists before the ledger, which knows only org ids, is touched.
async fn existing_org(app: &App, raw_id: &str) -> Result<OrgId, ApiError> {
    let org = OrgId(path_id(raw_id)?);
    match app.services.query(org, query::Kind::GetOrg(pb::Empty {})).await? {
        R::Org(_) => Ok(org),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Adds funds, standing in for the payment provider. Idempotent by `reference`: a repeat
/// answers the same transaction and adds nothing.
pub async fn credit(
    State(app): State<App>,
    _: Admin,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let amount = f.required_int("amount_cents");
    let amount = f.parse("amount_cents", amount, |a| {
        if (1..=MAX_AMOUNT_CENTS).contains(&a) {
            Ok(a)
        } else {
            Err(format!("Ensure this value is between 1 and {MAX_AMOUNT_CENTS}."))
        }
    });
    let reference = f.required_str("reference");
    let reference = f.parse("reference", reference, |r| domain::fields::non_blank(&r, MAX_REFERENCE_CHARS));
    let description = f.optional_str("description").unwrap_or_else(|| "Credit".to_owned());
    let (cents, reference) = f.finish(|| Some((amount?, reference?)))?;
    let org = existing_org(&app, &id).await?;
    match app.services.billing(org, billing_command::Kind::TopUp(pb::TopUp { reference, cents, description })).await? {
        B::Transaction(t) => Ok(created(render::transaction(&t))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Sets the org's per-minute rate: `{"rate_cents_per_minute": N}`.
pub async fn set_rate(
    State(app): State<App>,
    _: Admin,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let mut f = Fields::new(body);
    let rate = f.required_int("rate_cents_per_minute");
    let rate = f.parse("rate_cents_per_minute", rate, |r| {
        u32::try_from(r)
            .ok()
            .filter(|r| (1..=MAX_RATE_CENTS_PER_MINUTE).contains(r))
            .ok_or_else(|| format!("Ensure this value is between 1 and {MAX_RATE_CENTS_PER_MINUTE}."))
    });
    let cents_per_minute = f.finish(|| rate)?;
    let org = existing_org(&app, &id).await?;
    match app.services.billing(org, billing_command::Kind::SetRate(pb::SetRate { cents_per_minute })).await? {
        B::Balance(b) => Ok(Json(balance_json(&b))),
        _ => Err(ApiError::unexpected_reply()),
    }
}
