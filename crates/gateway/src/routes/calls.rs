//! Calls: `POST /v1/call`, `GET /v1/calls`, `GET /v1/calls/{id}`, `.../transcript`,
//! `.../events`, `POST /v1/calls/{id}/hangup`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use domain::FieldErrors;
use domain::agent::AgentSpec;
use serde_json::{Value, json};
use wire::pb::{self, command::Kind, place_call, query, reply::Result as R};

use super::{Created, created, page, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::routes::agents;
use crate::{App, render};

fn parse_place_call(body: JsonObject) -> Result<pb::PlaceCall, ApiError> {
    if !body.0.contains_key("from_number") || !body.0.contains_key("to_number") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_required_fields",
            "from_number and to_number are required",
        ));
    }
    if body.0.contains_key("agent_id") && body.0.contains_key("config") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "agent_conflict",
            "Provide either agent_id or config, not both",
        ));
    }
    let mut f = Fields::new(body);
    let from = f.required_str("from_number");
    let from = f.parse("from_number", from, |n| domain::E164::parse(&n));
    let to = f.required_str("to_number");
    let to = f.parse("to_number", to, |n| domain::E164::parse(&n));
    let agent_id = f.optional_int("agent_id");
    let agent_id = f.parse("agent_id", agent_id, |id| u64::try_from(id).map_err(|_| "Agent not found.".to_owned()));
    let config = f.optional_object("config").map(|map| {
        let mut nested = Fields::nested(map, "config.");
        let spec = agents::parse_inline_config(&mut nested);
        f.absorb(nested);
        spec
    });
    let hold = f.optional_int("max_hold_seconds");
    let max_hold_seconds = f.parse("max_hold_seconds", hold, AgentSpec::parse_max_hold_seconds);
    f.finish(|| {
        let agent = match (agent_id, config) {
            (Some(id), _) => Some(place_call::Agent::AgentId(id)),
            (None, Some(spec)) => Some(place_call::Agent::Config((&spec?).into())),
            (None, None) => None,
        };
        Some(pb::PlaceCall {
            from_number: from?.to_string(),
            to_number: to?.to_string(),
            agent,
            max_hold_seconds,
            idempotency_key: None,
        })
    })
}

pub async fn place(
    State(app): State<App>,
    caller: Caller,
    key: Option<axum::Extension<crate::idempotency::Key>>,
    body: JsonObject,
) -> Result<Created, ApiError> {
    let mut place = parse_place_call(body)?;
    place.idempotency_key = key.map(|axum::Extension(crate::idempotency::Key(key))| key);
    match app.services.command(caller.org, Kind::PlaceCall(place)).await? {
        R::Call(call) => Ok(created(json!({ "call_id": call.id, "status": "initiated" }))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

fn call_reply(result: R) -> Result<Json<Value>, ApiError> {
    match result {
        R::Call(call) => Ok(Json(render::call(&call))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    call_reply(app.services.query(caller.org, query::Kind::GetCall(pb::ById { id })).await?)
}

pub async fn hangup(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    call_reply(app.services.command(caller.org, Kind::HangupCall(pb::ById { id })).await?)
}

pub async fn list(State(app): State<App>, caller: Caller, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let page = page(query.as_deref())?;
    let mut filter = pb::CallFilter { limit: page.limit, offset: page.offset, ..Default::default() };
    let mut errors = FieldErrors::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "status" => match domain::call::Status::parse(&value) {
                Ok(_) => filter.status = Some(value.into_owned()),
                Err(e) => errors.add("status", e),
            },
            "direction" => match value.as_ref() {
                "outbound" | "inbound" => filter.direction = Some(value.into_owned()),
                other => errors.add("direction", format!("\"{other}\" is not a valid choice.")),
            },
            "agent_id" => match value.parse::<u64>() {
                Ok(id) => filter.agent_id = Some(id),
                Err(_) => errors.add("agent_id", "A valid integer is required."),
            },
            _ => {}
        }
    }
    errors.into_result(()).map_err(ApiError::invalid)?;
    match app.services.query(caller.org, query::Kind::ListCalls(filter)).await? {
        R::Calls(p) => Ok(Json(json!({
            "results": p.calls.iter().map(render::call).collect::<Vec<_>>(),
            "total": p.total,
            "limit": page.limit,
            "offset": page.offset,
        }))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn transcript(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.query(caller.org, query::Kind::GetTranscript(pb::ById { id })).await? {
        R::Transcript(t) => Ok(Json(json!({
            "call_id": t.call_id,
            "turns": t.turns.iter().map(render::turn).collect::<Vec<_>>(),
        }))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn events(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.query(caller.org, query::Kind::GetCallEvents(pb::ById { id })).await? {
        R::Events(e) => Ok(Json(e.events.iter().map(render::stream_event).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}
