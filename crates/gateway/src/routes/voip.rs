//! VoIP connections: `GET/POST /v1/voip-connections`, `GET/DELETE /v1/voip-connections/{id}`,
//! `POST /v1/voip-connections/{id}/verify`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::secret::Secret;
use domain::voip::{DEFAULT_SIP_PORT, Provider, SipTrunk, Transport, parse_connection_name};
use serde_json::Value;
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

const SIP_FIELDS: [&str; 5] = ["host", "port", "transport", "username", "password"];

fn parse(body: JsonObject) -> Result<(String, Provider), ApiError> {
    let mut f = Fields::new(body);
    let name = f.optional_str("name").unwrap_or_default();
    let name = f.parse("name", Some(name), |n| parse_connection_name(&n));
    let provider = f.required_str("provider");
    let provider = match provider.as_deref() {
        None => None,
        Some("sim") => {
            for field in SIP_FIELDS {
                if f.has(field) {
                    f.optional_str(field);
                    f.error(field, "Only allowed when provider is \"sip\".");
                }
            }
            Some(Provider::Sim)
        }
        Some("sip") => {
            let host = f.required_str("host");
            let host = f.parse("host", host, |h| SipTrunk::parse_host(&h));
            let port = f.optional_int("port").unwrap_or(DEFAULT_SIP_PORT.into());
            let port = f.parse("port", Some(port), SipTrunk::parse_port);
            let transport = f.optional_str("transport").unwrap_or_else(|| "udp".to_owned());
            let transport = f.parse("transport", Some(transport), |t| Transport::parse(&t));
            let username = f.required_str("username");
            let username = f.parse("username", username, |u| SipTrunk::parse_credential(&u));
            let password = f.required_str("password");
            let password = f.parse("password", password, |p| SipTrunk::parse_credential(&p).map(Secret::new));
            match (host, port, transport, username, password) {
                (Some(host), Some(port), Some(transport), Some(username), Some(password)) => {
                    Some(Provider::Sip(SipTrunk { host, port, transport, username, password }))
                }
                _ => None,
            }
        }
        Some(other) => {
            f.error("provider", format!("\"{other}\" is not a valid choice."));
            None
        }
    };
    f.finish(|| Some((name?, provider?)))
}

/// Refuses, as a field error, a host that is a refused address or resolves to one. A name that
/// does not resolve now is let through: it may resolve later, and every use checks again.
async fn check_host(egress: egress::Policy, trunk: &SipTrunk) -> Result<(), ApiError> {
    match egress.resolve(&trunk.host, trunk.port).await {
        Err(egress::Error::Refused { address, refusal, .. }) => {
            let message = format!("Enter a public host: {address} is {}.", refusal.describe());
            Err(ApiError::invalid(domain::FieldErrors::single("host", message)))
        }
        Ok(_) | Err(egress::Error::Unresolvable { .. }) => Ok(()),
    }
}

fn connection_reply(result: R) -> Result<Value, ApiError> {
    match result {
        R::VoipConnection(c) => Ok(render::voip_connection(&c)),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let (name, provider) = parse(body)?;
    if let Provider::Sip(trunk) = &provider {
        check_host(app.egress, trunk).await?;
    }
    let spec = wire::connection_spec(&name, &provider);
    let result = app.services.command(caller.org, Kind::CreateVoipConnection(spec)).await?;
    Ok(created(connection_reply(result)?))
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListVoipConnections(pb::Empty {})).await? {
        R::VoipConnections(list) => Ok(Json(list.connections.iter().map(render::voip_connection).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let result = app.services.query(caller.org, query::Kind::GetVoipConnection(pb::ById { id })).await?;
    Ok(Json(connection_reply(result)?))
}

/// Checks the connection with its carrier and records the outcome; answers the connection,
/// whose `verified` and `verification_error` say how it went.
pub async fn verify(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let result = app.services.command(caller.org, Kind::VerifyVoipConnection(pb::ById { id })).await?;
    Ok(Json(connection_reply(result)?))
}

pub async fn delete(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    match app.services.command(caller.org, Kind::DeleteVoipConnection(pb::ById { id })).await? {
        R::Done(_) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::unexpected_reply()),
    }
}
