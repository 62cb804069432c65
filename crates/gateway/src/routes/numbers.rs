//! Phone numbers: `GET/POST /v1/phone-numbers` (a post provisions a demo number, inbound only;
//! the org's own numbers come in through a connection's `import-numbers`),
//! `GET/PATCH/PUT/DELETE /v1/phone-numbers/{id}` (a delete needs `confirm=true`), and
//! `POST /v1/phone-numbers/{id}/verify-voip`.
//!
//! A number is unique across orgs. The org's partition claims it in the directory and records
//! it, as one saga of its own (see the orchestrator's `partition::numbers`): the gateway only
//! asks, so nothing a gateway sees fail can release a claim a recorded number rests on.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use domain::ids::OrgId;
use serde_json::{Value, json};
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

/// The bound on the provisioning request's free-text fields (area code, city, state, key).
pub const MAX_PROVISION_FIELD_CHARS: usize = 255;

fn number_reply(result: R) -> Result<pb::PhoneNumber, ApiError> {
    match result {
        R::PhoneNumber(n) => Ok(n),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Provisions an inbound-only demo number from switchboard's pool. The location asked for is
/// accepted and not honoured: the pool's numbers have none.
pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    for field in ["area_code", "city", "state", "idempotency_key"] {
        let value = f.optional_str(field);
        f.parse(field, value, |v| domain::fields::check_length(&v, MAX_PROVISION_FIELD_CHARS));
    }
    f.finish(|| Some(()))?;
    let create = pb::CreateDemoNumber { inbound_agent_id: None };
    let number = number_reply(app.services.command(caller.org, Kind::CreateDemoNumber(create)).await?)?;
    Ok(created(render::phone_number(&number)))
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListPhoneNumbers(pb::Empty {})).await? {
        R::PhoneNumbers(list) => Ok(Json(list.numbers.iter().map(render::phone_number).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

async fn fetch(app: &App, org: OrgId, id: u64) -> Result<pb::PhoneNumber, ApiError> {
    number_reply(app.services.query(org, query::Kind::GetPhoneNumber(pb::ById { id })).await?)
}

pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(render::phone_number(&fetch(&app, caller.org, id).await?)))
}

/// `PATCH` and `PUT` alike: every field is optional in both, and what is not given stays.
pub async fn update(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut f = Fields::new(body);
    let inbound = f.optional_nullable_id("inbound_agent_id");
    let outbound = f.optional_nullable_id("outbound_agent_id");
    let label = f.optional_str("label");
    let label = f.parse("label", label, |l| domain::org::parse_number_label(&l));
    let webhook = f.optional_nullable_str("webhook_url");
    let webhook = f.parse("webhook_url", webhook, |w| w.map(|u| domain::org::parse_webhook_url(&u)).transpose());
    let status = f.optional_str("status");
    f.parse("status", status, |s| match s.as_str() {
        "active" => Ok(()),
        "draft" | "failed" | "provisioning" | "released" | "releasing" => {
            Err("A number is active until it is deleted; release it with DELETE ?confirm=true.".to_owned())
        }
        other => Err(format!("\"{other}\" is not a valid choice.")),
    });
    f.finish(|| Some(()))?;
    let command = Kind::UpdatePhoneNumber(pb::UpdatePhoneNumber {
        id,
        inbound: wire::assignment_to_pb(inbound.map(|a| a.map(domain::ids::AgentId))),
        outbound: wire::assignment_to_pb(outbound.map(|a| a.map(domain::ids::AgentId))),
        label,
        webhook_url: webhook.map(|value| pb::OptionalText { value }),
    });
    let number = number_reply(app.services.command(caller.org, command).await?)?;
    Ok(Json(render::phone_number_update(&number)))
}

fn query_bool(field: &str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None => Ok(false),
        Some("true" | "True" | "1") => Ok(true),
        Some("false" | "False" | "0") => Ok(false),
        Some(_) => Err(ApiError::field(field, "Must be a valid boolean.")),
    }
}

/// Releases a number: only with `confirm=true`, since its calls stop at once.
pub async fn delete(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut confirm = false;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "confirm" => confirm = query_bool("confirm", Some(&value))?,
            "release_at_provider" => {
                query_bool("release_at_provider", Some(&value))?;
            }
            _ => {}
        }
    }
    if !confirm {
        // Another org's number, or none, is missing whatever the query says.
        fetch(&app, caller.org, id).await?;
        return Err(ApiError::field("confirm", "Pass confirm=true to release this number: its calls stop at once."));
    }
    match app.services.command(caller.org, Kind::DeletePhoneNumber(pb::ById { id })).await? {
        R::Done(_) => Ok(Json(json!({
            "detail": "Phone number released.",
            // switchboard holds no number at a provider: there is nothing to release there.
            "released_at_provider": false,
            "routing_removed": true,
        }))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Verifies a number on its trunk (see the orchestrator's `partition::verification`); the body
/// is free-form and read no further.
pub async fn verify(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    _body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let number = number_reply(app.services.command(caller.org, Kind::VerifyPhoneNumber(pb::ById { id })).await?)?;
    Ok(Json(render::number_verification(&number)))
}
