//! Calls: `POST /v1/call`, `GET /v1/calls`, `GET /v1/calls/export`, `GET /v1/calls/{id}`,
//! `.../transcript`, `.../history`, and switchboard's own `POST /v1/calls/{id}/hangup`.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::FieldErrors;
use domain::agent::AgentSpec;
use domain::call::Variables;
use serde_json::{Value, json};
use wire::pb::{self, command::Kind, place_call, query, reply::Result as R};

use super::{Created, created, page, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::routes::agents;
use crate::{App, render};

/// The most calls a JSON export holds; past it the export says `truncated` (a CSV export,
/// streamed, holds them all).
pub const MAX_EXPORT_ROWS: usize = 1_000;

/// How many calls an export reads at once: the most a page of the list holds.
const EXPORT_PAGE: u32 = 200;

/// The fields whose null the contract lets the client send for "not given".
const NULL_MEANS_ABSENT: &[&str] = &["agent_id", "config", "max_hold_seconds", "idempotency_key"];

fn parse_place_call(body: JsonObject) -> Result<pb::PlaceCall, ApiError> {
    let mut body = body.0;
    body.retain(|field, value| !(value.is_null() && NULL_MEANS_ABSENT.contains(&field.as_str())));
    let body = JsonObject(body);
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
    let variables = f.optional_object("variables");
    let variables = f.parse("variables", variables, Variables::parse).map(|v| v.to_json());
    let locale = parse_language(&mut f);
    let phi_mode = f.optional_str("phi_mode");
    f.parse("phi_mode", phi_mode, |mode| match mode.as_str() {
        "phi" => Ok(()),
        other => Err(format!("\"{other}\" is not a valid choice.")),
    });
    // Read by the idempotency middleware, which has checked it already.
    let _ = f.optional_nullable_str("idempotency_key");
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
            variables_json: variables.unwrap_or_default(),
            locale,
        })
    })
}

/// `language`, or its alias `primary_language`: a BCP 47 tag. Given both, `language` is the
/// call's (each is checked).
fn parse_language(f: &mut Fields) -> Option<String> {
    let language = f.optional_str("language");
    let language = f.parse("language", language, |l| domain::call::parse_locale(&l));
    let primary = f.optional_str("primary_language");
    let primary = f.parse("primary_language", primary, |l| domain::call::parse_locale(&l));
    language.or(primary)
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
        // A replay of this response says so (see `idempotency::replay`).
        R::Call(call) => Ok(created(json!({ "call_id": call.id, "status": "initiated", "idempotent_replay": false }))),
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

/// DRF's boolean query values.
fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err("Must be a valid boolean.".to_owned()),
    }
}

/// The filters `GET /v1/calls` and its export take, from a query string; `errors` collects what
/// is wrong with them. Dates are `YYYY-MM-DD` (a whole day in UTC) or ISO 8601 datetimes with an
/// offset, both ends inclusive, on the call's `start_time`.
fn call_filter(query: &str, errors: &mut FieldErrors) -> pb::CallFilter {
    let mut filter = pb::CallFilter::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let number = |errors: &mut FieldErrors| match domain::E164::parse(&value) {
            Ok(n) => Some(n.to_string()),
            Err(e) => {
                errors.add(name.as_ref(), e);
                None
            }
        };
        match name.as_ref() {
            "status" => match domain::call::Status::parse(&value) {
                Ok(_) => filter.status = Some(value.into_owned()),
                Err(e) => errors.add("status", e),
            },
            "direction" => match value.as_ref() {
                "outbound" | "inbound" | "test" | "web" => filter.direction = Some(value.into_owned()),
                other => errors.add("direction", format!("\"{other}\" is not a valid choice.")),
            },
            "agent_id" => match value.parse::<u64>() {
                Ok(id) => filter.agent_id = Some(id),
                Err(_) => errors.add("agent_id", "A valid integer is required."),
            },
            "from_number" => filter.from_number = number(errors),
            "to_number" => filter.to_number = number(errors),
            "phone_number" => filter.phone_number = number(errors),
            "start_date" => match domain::call::parse_time_bound(&value, false) {
                Ok(at) => filter.start_ms = Some(at.as_millis()),
                Err(e) => errors.add("start_date", e),
            },
            "end_date" => match domain::call::parse_time_bound(&value, true) {
                Ok(at) => filter.end_ms = Some(at.as_millis()),
                Err(e) => errors.add("end_date", e),
            },
            "exclude_test_calls" => match parse_bool(&value) {
                Ok(exclude) => filter.exclude_test_calls = exclude,
                Err(e) => errors.add("exclude_test_calls", e),
            },
            _ => {}
        }
    }
    filter
}

pub async fn list(State(app): State<App>, caller: Caller, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let query = query.unwrap_or_default();
    let page = page(Some(&query));
    let mut errors = FieldErrors::new();
    let mut filter = call_filter(&query, &mut errors);
    let page = match (page, errors.is_empty()) {
        (Ok(page), true) => page,
        (Ok(_), false) => return Err(ApiError::invalid(errors)),
        (Err(e), _) => return Err(e),
    };
    (filter.limit, filter.offset) = (page.limit, page.offset);
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

/// One page of an export, newest first, from the call before `before`.
async fn export_page(
    app: &App,
    caller: &Caller,
    filter: &pb::CallFilter,
    before: Option<u64>,
) -> Result<pb::CallPage, ApiError> {
    let filter = pb::CallFilter { limit: EXPORT_PAGE, offset: 0, before_id: before, ..filter.clone() };
    match app.services.query(caller.org, query::Kind::ListCalls(filter)).await? {
        R::Calls(p) => Ok(p),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// `GET /v1/calls/export`: the calls the list's filters select, newest first, as JSON (the
/// contract's `CallExport`, at most [`MAX_EXPORT_ROWS`]) or, with `format=csv` or `Accept:
/// text/csv`, as CSV, every one, streamed page by page as they are read.
pub async fn export(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.unwrap_or_default();
    let mut errors = FieldErrors::new();
    let filter = call_filter(&query, &mut errors);
    let mut csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|accept| accept.split(',').any(|media| media.trim().starts_with("text/csv")));
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "format" {
            match value.as_ref() {
                "csv" => csv = true,
                "json" => csv = false,
                other => errors.add("format", format!("\"{other}\" is not a valid choice.")),
            }
        }
    }
    errors.into_result(()).map_err(ApiError::invalid)?;
    let first = export_page(&app, &caller, &filter, None).await?;
    if csv {
        return Ok(csv_export(app, caller, filter, first));
    }
    let total = first.total;
    let mut calls: Vec<Value> = Vec::new();
    let mut page = first;
    loop {
        let last = page.calls.last().map(|c| c.id);
        calls.extend(page.calls.iter().take(MAX_EXPORT_ROWS - calls.len()).map(render::call));
        match last {
            Some(last) if calls.len() < MAX_EXPORT_ROWS && page.calls.len() == EXPORT_PAGE as usize => {
                page = export_page(&app, &caller, &filter, Some(last)).await?;
            }
            _ => break,
        }
    }
    let truncated = (calls.len() as u64) < total;
    Ok(Json(json!({ "calls": calls, "total": total, "truncated": truncated })).into_response())
}

/// A body fed by a task through a bounded channel: the task reads the next page only once the
/// client has taken enough of the last, and stops when the client goes.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|chunk| chunk.map(http_body::Frame::data)))
    }
}

fn csv_export(app: App, caller: Caller, filter: pb::CallFilter, first: pb::CallPage) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let mut chunk = render::CALL_CSV_COLUMNS.join(",");
        chunk.push_str("\r\n");
        let mut page = first;
        loop {
            for call in &page.calls {
                chunk.push_str(&render::call_csv_row(call));
            }
            if sender.send(Ok(Bytes::from(std::mem::take(&mut chunk)))).await.is_err() {
                return; // the client went away
            }
            let Some(last) = page.calls.last().map(|c| c.id) else { return };
            if page.calls.len() < EXPORT_PAGE as usize {
                return;
            }
            page = match export_page(&app, &caller, &filter, Some(last)).await {
                Ok(page) => page,
                Err(e) => {
                    // Mid-stream, the status is sent: the body ends in an error, and the client
                    // sees a broken transfer rather than a short export.
                    tracing::warn!(status = %e.status(), "a CSV export stopped");
                    let _ = sender.send(Err(std::io::Error::other("the export could not be read"))).await;
                    return;
                }
            };
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"calls.csv\""),
        ],
        axum::body::Body::new(ChannelBody(receiver)),
    )
        .into_response()
}

pub async fn transcript(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut errors = FieldErrors::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        // Transcripts are read as they are recorded: live or not, the answer is the same.
        if name == "live"
            && let Err(e) = parse_bool(&value)
        {
            errors.add("live", e);
        }
    }
    errors.into_result(()).map_err(ApiError::invalid)?;
    match app.services.query(caller.org, query::Kind::GetTranscript(pb::ById { id })).await? {
        R::Transcript(t) => Ok(Json(json!({
            "call_id": t.call_id,
            "transcripts": t.turns.iter().map(|turn| render::transcript_entry(turn, t.started_at_ms)).collect::<Vec<_>>(),
        }))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// The call's event timeline: every event of its stream, as recorded.
pub async fn history(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.query(caller.org, query::Kind::GetCallEvents(pb::ById { id })).await? {
        R::Events(e) => Ok(Json(e.events.iter().map(render::stream_event).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// `GET /v1/calls/{id}/events` is the contract's `/history` now.
pub async fn events_moved(Path(id): Path<String>) -> impl IntoResponse {
    super::moved(&format!("/v1/calls/{id}/events"), &format!("/v1/calls/{id}/history"))
}
