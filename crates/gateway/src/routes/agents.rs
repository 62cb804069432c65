//! Agents: `GET/POST /v1/agents`, `GET/PATCH/PUT/DELETE /v1/agents/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::agent::{AgentPatch, AgentSpec, Tool, Voice, check_tools};
use serde_json::Value;
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

/// Parses an agent body. A full body (create, PUT) requires `name`; a partial one (PATCH)
/// takes whichever fields are present.
pub fn parse_patch(f: &mut Fields, full: bool) -> AgentPatch {
    let name = if full { f.required_str("name") } else { f.optional_str("name") };
    let name = f.parse("name", name, |n| AgentSpec::parse_name(&n));
    let prompt = f.optional_str("prompt");
    let prompt = f.parse("prompt", prompt, |p| AgentSpec::parse_prompt(&p));
    let voice = f.optional_str("voice");
    let voice = f.parse("voice", voice, |v| Voice::parse(&v));
    let greeting = f.optional_str("greeting");
    let greeting = f.parse("greeting", greeting, |g| AgentSpec::parse_greeting(&g));
    let hold = f.optional_int("max_hold_seconds");
    let max_hold_seconds = f.parse("max_hold_seconds", hold, AgentSpec::parse_max_hold_seconds);
    let tools = f.optional_list("tools").map(|items| parse_tools(f, items));
    AgentPatch { name, prompt, voice, greeting, max_hold_seconds, tools }
}

fn parse_tools(f: &mut Fields, items: Vec<Value>) -> Vec<Tool> {
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(map) = item else {
            f.error(&format!("tools.{i}"), "Expected a dictionary of items.");
            continue;
        };
        let mut t = Fields::nested(map, &format!("tools.{i}."));
        let name = t.required_str("name");
        let name = t.parse("name", name, |n| Tool::parse_name(&n));
        let description = t.optional_str("description").unwrap_or_default();
        let description = t.parse("description", Some(description), |d| Tool::parse_description(&d));
        let url = if t.has("url") { t.optional_nullable_str("url") } else { None };
        let url = match url {
            Some(Some(u)) => t.parse("url", Some(u), |u| Tool::parse_url(&u)).map(Some),
            _ => Some(None),
        };
        let parameters = t.optional_object("parameters").unwrap_or_default();
        if let (Some(name), Some(description), Some(url)) = (name, description, url) {
            tools.push(Tool { name, description, url, parameters_json: Value::Object(parameters).to_string() });
        }
        f.absorb(t);
    }
    if let Err(e) = check_tools(&tools) {
        f.error("tools", e);
    }
    tools
}

fn full_spec(body: JsonObject) -> Result<AgentSpec, ApiError> {
    let mut f = Fields::new(body);
    let patch = parse_patch(&mut f, true);
    f.finish(|| {
        let name = patch.name.clone()?;
        Some(patch.apply(&AgentSpec::named(name)))
    })
}

fn agent_reply(result: R) -> Result<Value, ApiError> {
    match result {
        R::Agent(a) => Ok(render::agent(&a)),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let spec = full_spec(body)?;
    let result = app.services.command(caller.org, Kind::CreateAgent((&spec).into())).await?;
    Ok(created(agent_reply(result)?))
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListAgents(pb::Empty {})).await? {
        R::Agents(list) => Ok(Json(list.agents.iter().map(render::agent).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let result = app.services.query(caller.org, query::Kind::GetAgent(pb::ById { id })).await?;
    Ok(Json(agent_reply(result)?))
}

async fn update(app: &App, caller: Caller, id: u64, patch: AgentPatch) -> Result<Json<Value>, ApiError> {
    let command = Kind::UpdateAgent(pb::UpdateAgent { id, patch: Some((&patch).into()) });
    Ok(Json(agent_reply(app.services.command(caller.org, command).await?)?))
}

pub async fn replace(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let spec = full_spec(body)?;
    update(&app, caller, id, AgentPatch::replacing(spec)).await
}

pub async fn patch(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut f = Fields::new(body);
    let patch = parse_patch(&mut f, false);
    let patch = f.finish(|| Some(patch))?;
    update(&app, caller, id, patch).await
}

pub async fn delete(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    match app.services.command(caller.org, Kind::DeleteAgent(pb::ById { id })).await? {
        R::Done(_) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::unexpected_reply()),
    }
}
