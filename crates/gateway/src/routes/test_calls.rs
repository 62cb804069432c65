//! Test calls: `GET/POST /v1/test-calls`, `GET /v1/test-calls/{id}`, `GET/POST
//! /v1/test-call-batches`, `GET /v1/test-call-batches/{id}`, `.../events`, `POST .../cancel`;
//! and the contract's aliases of the same handlers, `GET/POST /v1/simulations`, `GET/POST
//! /v1/simulations/batches`, `GET /v1/simulations/batches/{id}`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use domain::FieldErrors;
use domain::test_call::{Mode, RunDirection, RunStatus, TargetType, parse_scenario};
use serde_json::Value;
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, page, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

/// What a run and a batch share in their request bodies.
struct Target {
    target_type: String,
    target_id: u64,
    direction: String,
    target_number: Option<String>,
    mode: String,
}

/// The longest language tag a request may name (BCP 47 tags are far shorter).
pub const MAX_LANGUAGE_CHARS: usize = 35;

/// Takes the fields runs and batches share, `consent_to_charge` included, and those the
/// official client sends for the test bot that this engine's simulated bot has no use for
/// (`language`, `primary_language`): they are checked and not kept.
fn parse_target(f: &mut Fields) -> Option<Target> {
    let target_type = f.required_str("target_type");
    let target_type = f.parse("target_type", target_type, |t| TargetType::parse(&t).map(|t| t.as_str().to_owned()));
    let target_id = f.required_int("target_id");
    let target_id = f.parse("target_id", target_id, |id| u64::try_from(id).map_err(|_| "Target not found.".to_owned()));
    // The client sends `outbound` unless told otherwise; so does a request that names none.
    let direction = f.optional_str("direction").unwrap_or_else(|| "outbound".to_owned());
    let direction = f.parse("direction", Some(direction), |d| RunDirection::parse(&d).map(|d| d.as_str().to_owned()));
    // The client always sends one, `""` when none was given: the bot's own number then.
    let target_number = match f.optional_nullable_str("target_number") {
        Some(Some(n)) if !n.is_empty() => {
            f.parse("target_number", Some(n), |n| domain::E164::parse(&n).map(|n| Some(n.to_string())))
        }
        _ => Some(None),
    };
    for field in ["language", "primary_language"] {
        let language = f.optional_str(field);
        f.parse(field, language, |l| domain::fields::check_length(&l, MAX_LANGUAGE_CHARS));
    }
    let mode = f.optional_str("mode").unwrap_or_else(|| "bot".to_owned());
    let mode = f.parse("mode", Some(mode), |m| Mode::parse(&m).map(|m| m.as_str().to_owned()));
    match f.optional_bool("consent_to_charge") {
        Some(true) => {}
        Some(false) => {
            f.error("consent_to_charge", "Must be true: test calls are real calls, charged at a multiple of the rate.")
        }
        None if !f.has_error("consent_to_charge") => f.error("consent_to_charge", domain::fields::REQUIRED),
        None => {}
    }
    Some(Target {
        target_type: target_type?,
        target_id: target_id?,
        direction: direction?,
        target_number: target_number?,
        mode: mode?,
    })
}

/// `scenario_mode` (`manual`: the prompt given drives the bot; `auto`: the bot improvises,
/// which the simulated bot does from an empty prompt as well) and `simulator_product` (which
/// ThunderPhone bot plays the caller; switchboard has one) are checked against the contract's
/// values and not kept.
fn parse_simulator_choices(f: &mut Fields) {
    let choice = |allowed: &'static [&'static str]| {
        move |v: String| {
            if allowed.contains(&v.as_str()) { Ok(()) } else { Err(format!("\"{v}\" is not a valid choice.")) }
        }
    };
    let mode = f.optional_str("scenario_mode");
    f.parse("scenario_mode", mode, choice(&["auto", "manual"]));
    let product = f.optional_str("simulator_product");
    f.parse("simulator_product", product, choice(&["spark", "testing"]));
}

pub async fn create_run(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let target = parse_target(&mut f);
    parse_simulator_choices(&mut f);
    let scenario = f.optional_str("scenario_prompt").unwrap_or_default();
    let scenario = f.parse("scenario_prompt", Some(scenario), |s| parse_scenario(&s));
    let request = f.finish(|| {
        let t = target?;
        Some(pb::RunRequest {
            target_type: t.target_type,
            target_id: t.target_id,
            direction: t.direction,
            target_number: t.target_number,
            scenario_prompt: scenario?,
            mode: t.mode,
            requested_by_key_id: Some(caller.key_id),
        })
    })?;
    match app.services.command(caller.org, Kind::CreateTestRun(request)).await? {
        R::TestRun(run) => Ok(created(render::test_run(&run))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn list_runs(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let page = page(query.as_deref())?;
    let mut filter = pb::RunFilter { limit: page.limit, offset: page.offset, ..Default::default() };
    let mut errors = FieldErrors::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "target_type" => match TargetType::parse(&value) {
                Ok(_) => filter.target_type = Some(value.into_owned()),
                Err(e) => errors.add("target_type", e),
            },
            "status" => match RunStatus::parse(&value) {
                Ok(_) => filter.status = Some(value.into_owned()),
                Err(e) => errors.add("status", e),
            },
            "agent_id" => match value.parse::<u64>() {
                Ok(id) => filter.agent_id = Some(id),
                Err(_) => errors.add("agent_id", "A valid integer is required."),
            },
            _ => {}
        }
    }
    errors.into_result(()).map_err(ApiError::invalid)?;
    match app.services.query(caller.org, query::Kind::ListTestRuns(filter)).await? {
        R::TestRuns(list) => Ok(Json(list.runs.iter().map(render::test_run).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get_run(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.query(caller.org, query::Kind::GetTestRun(pb::ById { id })).await? {
        R::TestRun(run) => Ok(Json(render::test_run(&run))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn create_batch(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    if body.0.contains_key("scenario_prompts") && body.0.contains_key("scenario_prompt") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "scenario_conflict",
            "Provide either scenario_prompts or scenario_prompt, not both",
        ));
    }
    let mut f = Fields::new(body);
    let target = parse_target(&mut f);
    // The client sends 3 unless told otherwise; so does a request that names none.
    let run_count = f.optional_int("run_count").unwrap_or(3);
    let run_count = f.parse("run_count", Some(run_count), |n| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=20).contains(n))
            .ok_or_else(|| "Ensure this value is between 1 and 20.".to_owned())
    });
    let stagger = f.optional_int("stagger_seconds").unwrap_or(0);
    let stagger = f.parse("stagger_seconds", Some(stagger), |n| {
        u32::try_from(n).ok().filter(|n| *n <= 60).ok_or_else(|| "Ensure this value is between 0 and 60.".to_owned())
    });
    let prompts = match f.optional_list("scenario_prompts") {
        Some(items) => {
            let mut prompts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item.as_str().map(parse_scenario) {
                    Some(Ok(p)) => prompts.push(p),
                    Some(Err(e)) => f.error(&format!("scenario_prompts.{i}"), e),
                    None => f.error(&format!("scenario_prompts.{i}"), "Not a valid string."),
                }
            }
            prompts
        }
        None => f.optional_str("scenario_prompt").into_iter().collect(),
    };
    let name = f.optional_str("name").unwrap_or_default();
    let name = f.parse("name", Some(name), |n| domain::test_call::parse_batch_name(&n));
    let spec = f.finish(|| {
        let t = target?;
        Some(pb::CreateTestBatch {
            name: name?,
            target_type: t.target_type,
            target_id: t.target_id,
            direction: t.direction,
            target_number: t.target_number,
            scenario_prompts: prompts,
            run_count: run_count?,
            stagger_seconds: stagger?,
            mode: t.mode,
            requested_by_key_id: Some(caller.key_id),
        })
    })?;
    match app.services.command(caller.org, Kind::CreateTestBatch(spec)).await? {
        R::TestBatch(batch) => Ok(created(render::test_batch(&batch))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn list_batches(
    State(app): State<App>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let page = page(query.as_deref())?;
    match app.services.query(caller.org, query::Kind::ListTestBatches(page)).await? {
        R::TestBatches(list) => Ok(Json(list.batches.iter().map(render::test_batch).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get_batch(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.query(caller.org, query::Kind::GetTestBatch(pb::ById { id })).await? {
        R::TestBatch(batch) => Ok(Json(render::test_batch(&batch))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn cancel_batch(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.command(caller.org, Kind::CancelTestBatch(pb::ById { id })).await? {
        R::TestBatch(batch) => Ok(Json(render::test_batch(&batch))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn batch_events(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    match app.services.query(caller.org, query::Kind::GetTestBatchEvents(pb::ById { id })).await? {
        R::Events(e) => Ok(Json(e.events.iter().map(render::stream_event).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}
