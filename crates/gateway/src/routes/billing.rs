//! Billing: the account (`GET`/`PATCH /v1/billing`: balance and auto-reload), top-ups charged
//! through the payment provider (`POST /v1/billing/top-up`), transactions
//! (`GET /v1/billing/transactions`), and the admin's adjustments and per-org rate.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use domain::FieldErrors;
use domain::funding::{
    MAX_KEY_CHARS, MAX_MONTHLY_LIMIT_CENTS, MAX_RELOAD_CENTS, MAX_RELOAD_MINIMUM_CENTS, MAX_TOP_UP_CENTS,
    MIN_MONTHLY_LIMIT_CENTS, MIN_RELOAD_CENTS, MIN_TOP_UP_CENTS,
};
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

/// `GET /v1/billing/balance` became the account, `GET /v1/billing`.
pub async fn balance(uri: Uri) -> (StatusCode, Json<Value>) {
    super::moved(uri.path(), "/v1/billing")
}

/// `GET /v1/billing`: the contract's `BillingAccount`.
pub async fn account(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.billing_query(caller.org, billing_query::Kind::Account(pb::Empty {})).await? {
        B::Account(a) => Ok(Json(render::billing_account(&a))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

fn bounded(f: &mut Fields, field: &str, value: Option<i64>, min: i64, max: i64) -> Option<i64> {
    f.parse(field, value, |v| {
        if (min..=max).contains(&v) { Ok(v) } else { Err(format!("Ensure this value is between {min} and {max}.")) }
    })
}

/// `PATCH /v1/billing`: the auto-reload settings (`PatchedAutoReloadRequest`, every field
/// optional), answered with the account.
pub async fn update_account(
    State(app): State<App>,
    caller: Caller,
    mut body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    const LIMIT: &str = "auto_reload_monthly_limit_cents";
    // Null lifts the cap, which `Fields` has no nullable integer for.
    let limit = body.0.remove(LIMIT);
    let mut f = Fields::new(body);
    let enabled = f.optional_bool("auto_reload_enabled");
    let amount = f.optional_int("auto_reload_amount_cents");
    let amount = bounded(&mut f, "auto_reload_amount_cents", amount, MIN_RELOAD_CENTS, MAX_RELOAD_CENTS);
    let minimum = f.optional_int("auto_reload_minimum_cents");
    let minimum = bounded(&mut f, "auto_reload_minimum_cents", minimum, 0, MAX_RELOAD_MINIMUM_CENTS);
    let (monthly_limit_cents, clear_monthly_limit) = match limit {
        None => (None, false),
        Some(Value::Null) => (None, true),
        Some(v) => match crate::body::whole_number(&v) {
            Some(cents) => {
                (bounded(&mut f, LIMIT, Some(cents), MIN_MONTHLY_LIMIT_CENTS, MAX_MONTHLY_LIMIT_CENTS), false)
            }
            None => {
                f.error(LIMIT, "A valid integer is required.");
                (None, false)
            }
        },
    };
    let patch = f.finish(|| {
        Some(pb::AutoReloadPatch {
            enabled,
            amount_cents: amount,
            minimum_cents: minimum,
            monthly_limit_cents,
            clear_monthly_limit,
        })
    })?;
    match app.services.billing(caller.org, billing_command::Kind::SetAutoReload(patch)).await? {
        B::Account(a) => Ok(Json(render::billing_account(&a))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// `POST /v1/billing/top-up` (`TopUpRequest`): charges the card through the payment provider
/// and credits the balance once it succeeds, at most once per `idempotency_key`. 201 with the
/// contract's `TopUpResponse` (`status` `succeeded`, or `processing` while the provider has not
/// answered); a decline answers 402 with the provider's code and the intent.
pub async fn top_up(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Response, ApiError> {
    let mut f = Fields::new(body);
    let amount = f.required_int("amount_cents");
    let cents = bounded(&mut f, "amount_cents", amount, MIN_TOP_UP_CENTS, MAX_TOP_UP_CENTS);
    let key = f.optional_str("idempotency_key");
    let idempotency_key = f.parse("idempotency_key", key, |k| domain::fields::non_blank(&k, MAX_KEY_CHARS));
    let method = f.optional_str("payment_method_id");
    let payment_method_id = f.parse("payment_method_id", method, |m| domain::fields::non_blank(&m, MAX_KEY_CHARS));
    let request = f.finish(|| Some(pb::RequestTopUp { cents: cents?, idempotency_key, payment_method_id }))?;
    match app.services.billing(caller.org, billing_command::Kind::RequestTopUp(request)).await? {
        B::Charge(charge) if charge.status == "declined" => Ok((
            StatusCode::PAYMENT_REQUIRED,
            Json(json!({
                "detail": charge.decline_message,
                "code": charge.decline_code,
                "payment_intent_id": charge.intent_id,
            })),
        )
            .into_response()),
        B::Charge(charge) => Ok(created(render::top_up(&charge)).into_response()),
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

/// `GET /v1/billing/transactions`, newest first: the contract's plain array (the newest
/// [`MAX_PAGE`]), or with `limit` or `offset` the seed's envelope `{results, total, limit, offset}`.
pub async fn transactions(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let paged = form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .any(|(name, _)| name == "limit" || name == "offset");
    let mut page = page(query.as_deref())?;
    if !paged {
        page.limit = MAX_PAGE;
    }
    let (limit, offset) = (page.limit, page.offset);
    match app.services.billing_query(caller.org, billing_query::Kind::Transactions(page)).await? {
        B::Transactions(p) => {
            let results: Vec<Value> = p.transactions.iter().map(render::transaction).collect();
            if !paged {
                return Ok(Json(Value::Array(results)));
            }
            Ok(Json(json!({ "results": results, "total": p.total, "limit": limit, "offset": offset })))
        }
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

/// Adds funds, or with a negative amount takes them away (an `adjustment` either way; never
/// more than is available). Idempotent by `reference`: a repeat answers the same transaction
/// and changes nothing.
pub async fn credit(
    State(app): State<App>,
    _: Admin,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let amount = f.required_int("amount_cents");
    let amount = f.parse("amount_cents", amount, |a| {
        if a != 0 && (-MAX_AMOUNT_CENTS..=MAX_AMOUNT_CENTS).contains(&a) {
            Ok(a)
        } else {
            Err(format!("Ensure this value is between -{MAX_AMOUNT_CENTS} and {MAX_AMOUNT_CENTS}, and not 0."))
        }
    });
    let reference = f.required_str("reference");
    let reference = f.parse("reference", reference, |r| domain::fields::non_blank(&r, MAX_REFERENCE_CHARS));
    let description = f.optional_str("description");
    let (cents, reference) = f.finish(|| Some((amount?, reference?)))?;
    let description = description.unwrap_or_else(|| if cents < 0 { "Debit" } else { "Credit" }.to_owned());
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
