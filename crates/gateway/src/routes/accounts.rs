//! Orgs (admin), API keys, and `GET /v1/whoami`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::ids::OrgId;
use domain::org::Quota;
use serde_json::Value;
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, CreatedWithSecrets, created, created_with_secrets, path_id};
use crate::auth::{Admin, Caller, NewSecret};
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

fn parse_name(body: JsonObject) -> Result<String, ApiError> {
    let mut f = Fields::new(body);
    let raw = f.required_str("name");
    let name = f.parse("name", raw, |n| domain::org::parse_name(&n));
    f.finish(|| name)
}

pub async fn create_org(State(app): State<App>, _: Admin, body: JsonObject) -> Result<Created, ApiError> {
    let name = parse_name(body)?;
    // The directory allocates the id; the org's own partition then records the org.
    let R::Org(registered) =
        app.services.directory(OrgId(0), Kind::RegisterOrg(pb::RegisterOrg { name: name.clone() })).await?
    else {
        return Err(ApiError::unexpected_reply());
    };
    let org = OrgId(registered.id);
    match app.services.command(org, Kind::CreateOrg(pb::CreateOrg { name })).await? {
        R::Org(o) => Ok(created(render::org(&o))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get_org(State(app): State<App>, _: Admin, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    match app.services.query(OrgId(path_id(&id)?), query::Kind::GetOrg(pb::Empty {})).await? {
        R::Org(o) => Ok(Json(render::org(&o))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Admin changes to an org's standing: `{"trial": bool}`, `{"max_concurrent_test_calls": n}`,
/// `{"rate_limit_per_second": n}`, and the quotas (`{"max_agents": n}`, ...).
pub async fn update_org(
    State(app): State<App>,
    _: Admin,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let org = OrgId(path_id(&id)?);
    let mut f = Fields::new(body);
    let quota_given = Quota::ALL.iter().any(|q| f.has(q.field()));
    if !f.has("trial") && !f.has("max_concurrent_test_calls") && !f.has("rate_limit_per_second") && !quota_given {
        f.error(
            "non_field_errors",
            "Give trial, max_concurrent_test_calls, rate_limit_per_second or a quota (max_agents, max_api_keys, \
             max_voip_connections, max_phone_numbers, max_open_batches, max_webhook_endpoints).",
        );
    }
    let trial = f.optional_bool("trial");
    let limit = f.optional_int("max_concurrent_test_calls");
    let limit = f.parse("max_concurrent_test_calls", limit, |n| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| "Ensure this value is between 1 and 1000.".to_owned())
    });
    let rate = f.optional_int("rate_limit_per_second");
    let rate = f.parse("rate_limit_per_second", rate, |n| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| "Ensure this value is between 1 and 100000.".to_owned())
    });
    let mut quota = |q: Quota| {
        let raw = f.optional_int(q.field());
        f.parse(q.field(), raw, domain::org::parse_quota)
    };
    let quotas = pb::SetQuotas {
        max_agents: quota(Quota::Agents),
        max_api_keys: quota(Quota::ApiKeys),
        max_voip_connections: quota(Quota::VoipConnections),
        max_phone_numbers: quota(Quota::PhoneNumbers),
        max_open_batches: quota(Quota::OpenBatches),
        max_webhook_endpoints: quota(Quota::WebhookEndpoints),
    };
    let (trial, limit, rate) = f.finish(|| Some((trial, limit, rate)))?;
    let mut result = None;
    if quota_given {
        result = Some(app.services.command(org, Kind::SetQuotas(quotas)).await?);
    }
    if let Some(trial) = trial {
        result = Some(app.services.command(org, Kind::SetTrial(pb::SetTrial { trial })).await?);
    }
    if let Some(limit) = limit {
        result = Some(app.services.command(org, Kind::SetTestCallLimit(pb::SetTestCallLimit { limit })).await?);
    }
    if let Some(rate) = rate {
        result = Some(app.services.command(org, Kind::SetRateLimit(pb::SetTestCallLimit { limit: rate })).await?);
    }
    match result {
        Some(R::Org(o)) => Ok(Json(render::org(&o))),
        _ => Err(ApiError::unexpected_reply()),
    }
}

async fn create_key(app: &App, org: OrgId, name: String) -> Result<CreatedWithSecrets, ApiError> {
    let secret = NewSecret::generate();
    let command = Kind::CreateApiKey(pb::CreateApiKey { name, secret_hash: secret.hash.clone() });
    let R::ApiKey(key) = app.services.command(org, command).await? else {
        return Err(ApiError::unexpected_reply());
    };
    let mut body = render::api_key(&key);
    // The raw key is shown this once and never stored, not even for an idempotent replay.
    body["key"] = Value::String(secret.into_key(key.id));
    Ok(created_with_secrets(body, &["key"]))
}

pub async fn admin_create_key(
    State(app): State<App>,
    _: Admin,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<CreatedWithSecrets, ApiError> {
    let org = OrgId(path_id(&id)?);
    let name = parse_name(body)?;
    create_key(&app, org, name).await
}

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<CreatedWithSecrets, ApiError> {
    let name = parse_name(body)?;
    create_key(&app, caller.org, name).await
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListApiKeys(pb::Empty {})).await? {
        R::ApiKeys(list) => Ok(Json(list.keys.iter().map(render::api_key).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn revoke(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    match app.services.command(caller.org, Kind::RevokeApiKey(pb::ById { id })).await? {
        R::Done(_) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// `GET /v1/whoami`: the contract's `WhoAmI` for the API key the request was made with. An
/// org's key acts for the whole org: it has no member role and no scopes.
pub async fn whoami(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let R::Org(org) = app.services.query(caller.org, query::Kind::GetOrg(pb::Empty {})).await? else {
        return Err(ApiError::unexpected_reply());
    };
    let R::ApiKeys(keys) = app.services.query(caller.org, query::Kind::ListApiKeys(pb::Empty {})).await? else {
        return Err(ApiError::unexpected_reply());
    };
    let label = keys.keys.iter().find(|k| k.id == caller.key_id).map(|k| k.name.clone());
    Ok(Json(render::whoami(&org, caller.key_id, label)))
}
