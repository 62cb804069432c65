//! Phone numbers: `GET/POST /v1/phone-numbers`, `POST /v1/phone-numbers/demo`,
//! `GET/PATCH/DELETE /v1/phone-numbers/{id}`.
//!
//! A number is unique across orgs, so creating one first claims it in the directory and then
//! records it in the org; if recording fails the claim is released. A claim is idempotent for
//! its org, so should the gateway die between the two steps, the org can simply retry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::E164;
use domain::ids::OrgId;
use serde_json::Value;
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

fn number_reply(result: R) -> Result<Value, ApiError> {
    match result {
        R::PhoneNumber(n) => Ok(render::phone_number(&n)),
        _ => Err(ApiError::unexpected_reply()),
    }
}

fn agent_ids(f: &mut Fields) -> (Option<Option<u64>>, Option<Option<u64>>) {
    (f.optional_nullable_id("inbound_agent_id"), f.optional_nullable_id("outbound_agent_id"))
}

/// Records a claimed number in the org. If that fails and the claim was this request's own,
/// the claim is released; a claim the org already held before stays.
async fn record(
    app: &App,
    org: OrgId,
    claimed: pb::NumberClaimed,
    create: pb::CreatePhoneNumber,
) -> Result<Created, ApiError> {
    let error = match app.services.command(org, Kind::CreatePhoneNumber(create)).await {
        Ok(result) => return Ok(created(number_reply(result)?)),
        Err(e) => e,
    };
    if claimed.new_claim {
        let number = claimed.number;
        let release = Kind::ReleaseNumber(pb::ClaimNumber { number: number.clone() });
        if let Err(release_error) = app.services.directory(org, release).await {
            tracing::warn!(%org, %number, status = %release_error.status(), "could not release a claimed number");
        }
    }
    Err(error)
}

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let number = f.required_str("number");
    let number = f.parse("number", number, |n| E164::parse(&n));
    let connection = f.required_int("voip_connection_id");
    let (inbound, outbound) = agent_ids(&mut f);
    let (number, connection) = f.finish(|| Some((number?, connection?)))?;
    let R::NumberClaimed(claimed) =
        app.services.directory(caller.org, Kind::ClaimNumber(pb::ClaimNumber { number: number.to_string() })).await?
    else {
        return Err(ApiError::unexpected_reply());
    };
    let create = pb::CreatePhoneNumber {
        number: claimed.number.clone(),
        voip_connection_id: Some(u64::try_from(connection).unwrap_or(0)),
        inbound_agent_id: inbound.flatten(),
        outbound_agent_id: outbound.flatten(),
    };
    record(&app, caller.org, claimed, create).await
}

/// Provisions an inbound-only demo number from switchboard's pool.
pub async fn create_demo(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let inbound = f.optional_nullable_id("inbound_agent_id");
    let inbound = f.finish(|| Some(inbound.flatten()))?;
    let R::NumberClaimed(claimed) = app.services.directory(caller.org, Kind::ClaimDemoNumber(pb::Empty {})).await?
    else {
        return Err(ApiError::unexpected_reply());
    };
    let create = pb::CreatePhoneNumber {
        number: claimed.number.clone(),
        voip_connection_id: None,
        inbound_agent_id: inbound,
        outbound_agent_id: None,
    };
    record(&app, caller.org, claimed, create).await
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListPhoneNumbers(pb::Empty {})).await? {
        R::PhoneNumbers(list) => Ok(Json(list.numbers.iter().map(render::phone_number).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

async fn fetch(app: &App, org: OrgId, id: u64) -> Result<pb::PhoneNumber, ApiError> {
    match app.services.query(org, query::Kind::GetPhoneNumber(pb::ById { id })).await? {
        R::PhoneNumber(n) => Ok(n),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    Ok(Json(render::phone_number(&fetch(&app, caller.org, id).await?)))
}

pub async fn update(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut f = Fields::new(body);
    let (inbound, outbound) = agent_ids(&mut f);
    f.finish(|| Some(()))?;
    let command = Kind::UpdatePhoneNumber(pb::UpdatePhoneNumber {
        id,
        inbound: wire::assignment_to_pb(inbound.map(|a| a.map(domain::ids::AgentId))),
        outbound: wire::assignment_to_pb(outbound.map(|a| a.map(domain::ids::AgentId))),
    });
    Ok(Json(number_reply(app.services.command(caller.org, command).await?)?))
}

pub async fn delete(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    let number = fetch(&app, caller.org, id).await?;
    match app.services.command(caller.org, Kind::DeletePhoneNumber(pb::ById { id })).await? {
        R::Done(_) => {}
        _ => return Err(ApiError::unexpected_reply()),
    }
    let release = Kind::ReleaseNumber(pb::ClaimNumber { number: number.number.clone() });
    if let Err(e) = app.services.directory(caller.org, release).await {
        // The org keeps the claim; re-adding the number succeeds for it, and only it.
        tracing::warn!(org = %caller.org, number = %number.number, status = %e.status(), "could not release a deleted number");
    }
    Ok(StatusCode::NO_CONTENT)
}
