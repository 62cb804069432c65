//! VoIP connections, as the contract has them: `POST /v1/voip-connections/test` probes a
//! configuration and answers its evidence; `POST /v1/voip-connections` creates a connection on
//! that evidence; list, `PATCH` and `DELETE /v1/voip-connections/{id}`;
//! `POST /v1/voip-connections/{id}/import-numbers`; `GET /v1/voip-connections/sip-host`.
//! (`GET /v1/voip-connections/{id}` is kept, though the contract does not name it.)
//!
//! Every provider is a SIP trunk given by `sip_config` (host, port, transport) and
//! `credentials` (username, password); a `manual` connection whose host is `sim` is the
//! simulated carrier. What needs a provider's own API answers 400 saying so.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::E164;
use domain::secret::Secret;
use domain::voip::{DEFAULT_SIP_PORT, Provider, SIM_HOST, SipTrunk, Transport, Vendor, parse_connection_name};
use serde_json::{Value, json};
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject};
use crate::error::ApiError;
use crate::{App, render};

/// How many numbers one import may name.
pub const MAX_IMPORT_NUMBERS: usize = 100;

/// The values `setup_method` may take (the client always sends one); switchboard sets every
/// connection up from its SIP configuration alike.
const SETUP_METHODS: [&str; 4] = ["api_key", "guided_telnyx", "manual", "twilio_subaccount"];

fn vendor(f: &mut Fields, required: bool) -> Option<Vendor> {
    let raw = if required { f.required_str("provider") } else { f.optional_str("provider") };
    f.parse("provider", raw, |v| Vendor::parse(&v))
}

/// The configuration `sip_config` and `credentials` give, for a connection of `vendor`.
/// `None` with an error recorded when it does not parse; `Ok(None)` when neither is given.
fn configuration(f: &mut Fields, app: &App, vendor: Option<Vendor>) -> Option<Provider> {
    let config = f.optional_object("sip_config");
    let credentials = f.optional_object("credentials");
    if config.is_none() && !f.has_error("sip_config") {
        f.error("sip_config", domain::fields::REQUIRED);
        return None;
    }
    let mut c = Fields::nested(config?, "sip_config.");
    let host = c.required_str("host");
    let host = c.parse("host", host, |h| SipTrunk::parse_host(&h));
    if host.as_deref() == Some(SIM_HOST) {
        // The simulated carrier needs no port, transport or credentials; given, they are
        // checked as a trunk's would be, and not kept.
        let port = c.optional_int("port");
        c.parse("port", port, SipTrunk::parse_port);
        let transport = c.optional_str("transport");
        c.parse("transport", transport, |t| Transport::parse(&t));
        f.absorb(c);
        if let Some(credentials) = credentials {
            let mut k = Fields::nested(credentials, "credentials.");
            for field in ["username", "password"] {
                let value = k.optional_str(field);
                k.parse(field, value, |v| SipTrunk::parse_credential(&v));
            }
            f.absorb(k);
        }
        if vendor.is_some_and(|v| v != Vendor::Manual) {
            f.error("sip_config.host", "The simulated carrier (host \"sim\") is a manual connection.");
        }
        if !app.sim_carrier {
            f.error("sip_config.host", "The simulated carrier is not available in this deployment.");
        }
        return Some(Provider::Sim);
    }
    let port = c.optional_int("port").unwrap_or(DEFAULT_SIP_PORT.into());
    let port = c.parse("port", Some(port), SipTrunk::parse_port);
    let transport = c.optional_str("transport").unwrap_or_else(|| "udp".to_owned());
    let transport = c.parse("transport", Some(transport), |t| Transport::parse(&t));
    f.absorb(c);
    let Some(credentials) = credentials else {
        if !f.has_error("credentials") {
            f.error("credentials", domain::fields::REQUIRED);
        }
        return None;
    };
    let mut k = Fields::nested(credentials, "credentials.");
    let username = k.required_str("username");
    let username = k.parse("username", username, |u| SipTrunk::parse_credential(&u));
    let password = k.required_str("password");
    let password = k.parse("password", password, |p| SipTrunk::parse_credential(&p).map(Secret::new));
    f.absorb(k);
    Some(Provider::Sip(SipTrunk {
        host: host?,
        port: port?,
        transport: transport?,
        username: username?,
        password: password?,
    }))
}

/// Refuses a host that is a refused address or resolves to one: 403, the policy's refusal of a
/// well-formed request (no schema can say which names resolve where), naming the field. A name
/// that does not resolve now is let through: it may resolve later, and every use checks again.
async fn check_host(egress: egress::Policy, provider: &Provider) -> Result<(), ApiError> {
    let Provider::Sip(trunk) = provider else { return Ok(()) };
    match egress.resolve(&trunk.host, trunk.port).await {
        Err(egress::Error::Refused { address, refusal, .. }) => {
            let message = format!("Enter a public host: {address} is {}.", refusal.describe());
            Err(ApiError::new(StatusCode::FORBIDDEN, "host_not_public", message).with_field("sip_config.host"))
        }
        Ok(_) | Err(egress::Error::Unresolvable { .. }) => Ok(()),
    }
}

/// A name for a connection of `vendor` to `provider`, when none is given.
fn suggested_name(vendor: Vendor, provider: &Provider) -> String {
    match provider {
        Provider::Sim => "Simulated carrier".to_owned(),
        Provider::Sip(t) => {
            let vendor = match vendor {
                Vendor::Manual => "SIP trunk",
                Vendor::Twilio => "Twilio",
                Vendor::Telnyx => "Telnyx",
                Vendor::Signalwire => "SignalWire",
                Vendor::Vonage => "Vonage",
            };
            let name = format!("{vendor} ({})", t.host);
            name.chars().take(100).collect()
        }
    }
}

fn connection_reply(result: R) -> Result<Value, ApiError> {
    match result {
        R::VoipConnection(c) => Ok(render::voip_connection(&c)),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Probes a configuration and answers the evidence of how it went: 201 whether it passed or
/// not (a failed test is evidence too, which no create accepts).
pub async fn test(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let vendor = vendor(&mut f, true);
    let connection_id = f.optional_int("connection_id");
    let connection_id = f.parse("connection_id", connection_id, |id| {
        u64::try_from(id).ok().filter(|id| *id > 0).ok_or_else(|| "Ensure this value is greater than 0.".to_owned())
    });
    let target = f.optional_str("target_number");
    let target = f.parse("target_number", target, |n| E164::parse(&n));
    let provider = configuration(&mut f, &app, vendor);
    let (vendor, provider) = f.finish(|| Some((vendor?, provider?)))?;
    check_host(app.egress, &provider).await?;
    let test = pb::TestVoipConnection {
        spec: Some(wire::connection_spec("", vendor, &provider, "")),
        connection_id,
        target_number: target.as_ref().map(ToString::to_string),
    };
    match app.services.command(caller.org, Kind::TestVoipConnection(test)).await? {
        R::ConnectionTest(e) => {
            Ok(created(render::connection_test(&e, &suggested_name(vendor, &provider), target.as_ref())))
        }
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let mut f = Fields::new(body);
    let vendor = vendor(&mut f, true);
    let evidence = f.required_str("verification_evidence_id");
    let evidence = f.parse("verification_evidence_id", evidence, |e| domain::voip::parse_evidence_id(&e));
    let name = f.optional_str("name");
    let name = f.parse("name", name, |n| parse_connection_name(&n).map(Some)).unwrap_or(None);
    let setup = f.optional_str("setup_method");
    f.parse("setup_method", setup, |s| {
        if SETUP_METHODS.contains(&s.as_str()) { Ok(()) } else { Err(format!("\"{s}\" is not a valid choice.")) }
    });
    let provider = configuration(&mut f, &app, vendor);
    let (vendor, evidence, provider) = f.finish(|| Some((vendor?, evidence?, provider?)))?;
    check_host(app.egress, &provider).await?;
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| suggested_name(vendor, &provider));
    let spec = wire::connection_spec(&name, vendor, &provider, &evidence);
    let result = app.services.command(caller.org, Kind::CreateVoipConnection(spec)).await?;
    Ok(created(connection_reply(result)?))
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListVoipConnections(pb::Empty {})).await? {
        R::VoipConnections(list) => Ok(Json(list.connections.iter().map(render::voip_connection).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Not in the contract, kept because it is harmless: one connection as the list shows it.
pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let result = app.services.query(caller.org, query::Kind::GetVoipConnection(pb::ById { id })).await?;
    Ok(Json(connection_reply(result)?))
}

/// Renames a connection; a new `sip_config` and `credentials` need the evidence of their test.
pub async fn update(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut f = Fields::new(body);
    let name = f.optional_str("name");
    let name = f.parse("name", name, |n| parse_connection_name(&n));
    let reconfigures = f.has("sip_config") || f.has("credentials");
    let evidence = f.optional_str("verification_evidence_id");
    let evidence = f.parse("verification_evidence_id", evidence, |e| domain::voip::parse_evidence_id(&e));
    let provider = if reconfigures { configuration(&mut f, &app, None) } else { None };
    if reconfigures && evidence.is_none() && !f.has_error("verification_evidence_id") {
        f.error(
            "verification_evidence_id",
            "Changing sip_config or credentials needs a new connection test's evidence.",
        );
    }
    let (name, spec) = f.finish(|| {
        let spec = match (reconfigures, &provider, &evidence) {
            (false, _, _) => None,
            (true, Some(provider), Some(evidence)) => Some((provider, evidence)),
            (true, _, _) => return None,
        };
        Some((name, spec.map(|(p, e)| (p.clone(), e.clone()))))
    })?;
    if let Some((provider, _)) = &spec {
        check_host(app.egress, provider).await?;
    }
    let update = pb::UpdateVoipConnection {
        id,
        name,
        spec: spec.map(|(provider, evidence)| wire::connection_spec("", Vendor::Manual, &provider, &evidence)),
    };
    Ok(Json(connection_reply(app.services.command(caller.org, Kind::UpdateVoipConnection(update)).await?)?))
}

pub async fn delete(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    match app.services.command(caller.org, Kind::DeleteVoipConnection(pb::ById { id })).await? {
        R::Done(_) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::unexpected_reply()),
    }
}

/// Imports the org's own numbers onto a connection, each claimed in the directory (one saga per
/// number, in order). A number the org already holds on this connection counts as imported, so
/// an import cut short can be sent again; any other refusal answers as it is, the numbers before
/// it imported.
pub async fn import_numbers(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Created, ApiError> {
    let id = path_id(&id)?;
    let mut f = Fields::new(body);
    let mut numbers = Vec::new();
    match f.optional_list("numbers") {
        None if !f.has_error("numbers") => f.error("numbers", domain::fields::REQUIRED),
        None => {}
        Some(items) if items.is_empty() => f.error("numbers", "This list may not be empty."),
        Some(items) if items.len() > MAX_IMPORT_NUMBERS => {
            f.error("numbers", format!("Ensure this field has no more than {MAX_IMPORT_NUMBERS} elements."))
        }
        Some(items) => {
            for (i, item) in items.into_iter().enumerate() {
                match item.as_str().map(E164::parse) {
                    Some(Ok(n)) if !numbers.contains(&n) => numbers.push(n),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => f.error(&format!("numbers.{i}"), e),
                    None => f.error(&format!("numbers.{i}"), "Not a valid string."),
                }
            }
        }
    }
    f.finish(|| Some(()))?;
    // The connection must be the org's: 404 otherwise, as its path names it.
    app.services.query(caller.org, query::Kind::GetVoipConnection(pb::ById { id })).await?;
    let mut results = Vec::new();
    let mut imported = 0;
    for number in numbers {
        let create = pb::CreatePhoneNumber { number: number.to_string(), voip_connection_id: id, ..Default::default() };
        match app.services.command(caller.org, Kind::CreatePhoneNumber(create)).await {
            Ok(R::PhoneNumber(n)) => {
                imported += 1;
                results.push(n);
            }
            Ok(_) => return Err(ApiError::unexpected_reply()),
            Err(e) if e.code() == Some("phone_number_exists") => {
                let held = match app.services.query(caller.org, query::Kind::ListPhoneNumbers(pb::Empty {})).await? {
                    R::PhoneNumbers(list) => list.numbers.into_iter().find(|n| n.number == number.as_str()),
                    _ => return Err(ApiError::unexpected_reply()),
                };
                match held {
                    Some(n) if n.voip_connection_id == Some(id) => results.push(n),
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(created(render::imported_numbers(imported, &results)))
}

/// Where a trunk sends inbound calls: the deployment's public SIP host, if it has one.
pub async fn sip_host(State(app): State<App>, _caller: Caller) -> Json<Value> {
    Json(json!({ "sip_host": app.sip_public_host.as_deref() }))
}

/// What only the provider's own API can do, which switchboard does not call.
pub async fn provider_api(_caller: Caller, uri: axum::http::Uri) -> ApiError {
    let what = uri.path().rsplit('/').next().unwrap_or_default().replace('-', " ");
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "provider_api_unsupported",
        format!(
            "switchboard does not call providers' APIs, so it cannot do this ({what}): \
             buy or find numbers with your provider, then import them with \
             POST /v1/voip-connections/{{id}}/import-numbers."
        ),
    )
}
