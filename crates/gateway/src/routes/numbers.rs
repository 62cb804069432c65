//! Phone numbers: `GET/POST /v1/phone-numbers`, `POST /v1/phone-numbers/demo`,
//! `GET/PATCH/DELETE /v1/phone-numbers/{id}`.
//!
//! A number is unique across orgs. The org's partition claims it in the directory and records
//! it, as one saga of its own (see the orchestrator's `partition::numbers`): the gateway only
//! asks, so nothing a gateway sees fail can release a claim a recorded number rests on.

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

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let number = f.required_str("number");
    let number = f.parse("number", number, |n| E164::parse(&n));
    let connection = f.required_int("voip_connection_id");
    let (inbound, outbound) = agent_ids(&mut f);
    let (number, connection) = f.finish(|| Some((number?, connection?)))?;
    let create = pb::CreatePhoneNumber {
        number: number.to_string(),
        voip_connection_id: u64::try_from(connection).unwrap_or(0),
        inbound_agent_id: inbound.flatten(),
        outbound_agent_id: outbound.flatten(),
    };
    Ok(created(number_reply(app.services.command(caller.org, Kind::CreatePhoneNumber(create)).await?)?))
}

/// Provisions an inbound-only demo number from switchboard's pool.
pub async fn create_demo(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let inbound = f.optional_nullable_id("inbound_agent_id");
    let inbound = f.finish(|| Some(inbound.flatten()))?;
    let create = pb::CreateDemoNumber { inbound_agent_id: inbound };
    Ok(created(number_reply(app.services.command(caller.org, Kind::CreateDemoNumber(create)).await?)?))
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
    match app.services.command(caller.org, Kind::DeletePhoneNumber(pb::ById { id })).await? {
        R::Done(_) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::unexpected_reply()),
    }
}
