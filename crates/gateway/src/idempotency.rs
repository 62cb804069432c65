//! `Idempotency-Key` on POSTs: the first response to a key is recorded in the org's partition
//! and replayed, status and body, to every retry with the same body for 24 hours, marked
//! `Idempotent-Replayed: true` (and `"idempotent_replay": true` in a body that has the field).
//! `POST /v1/call` may give the key as its body's `idempotency_key` instead, with the same
//! meaning; given both ways, they must be the same key (400 otherwise). The same key with another body answers 409
//! `idempotency_conflict`; while the first request runs, 409 `idempotency_in_progress`.
//!
//! A request with a key runs to its end in a task of its own: a client that disconnects
//! mid-request cannot cancel it half-way, so its outcome is always recorded and a retry gets it.
//!
//! Secrets are shown once. A handler whose response carries one (the raw key of a new API key,
//! a webhook's signing secret) names its fields with [`SecretFields`]; the response is recorded
//! with those fields set to null, so no secret reaches the log, and a replay answers the same
//! object with them null and `Idempotent-Secret-Withheld: <fields>`.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use wire::pb::{self, command::Kind, idempotency_decision::Decision, reply::Result as R};

use crate::App;
use crate::auth::Caller;
use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";

/// A request's `Idempotency-Key`, parsed, for the handlers that tie what they create to it.
#[derive(Clone, Debug)]
pub struct Key(pub String);
pub const REPLAYED: &str = "idempotent-replayed";
/// On a replay, the fields whose secrets the first response showed and the record withheld.
pub const SECRET_WITHHELD: &str = "idempotent-secret-withheld";

/// The top-level fields of a response body that hold secrets, which are never recorded for
/// replay. A handler adds it to its response (it is an `Extension`, so it can stand in a
/// response tuple).
#[derive(Clone, Copy, Debug)]
pub struct SecretFields(pub &'static [&'static str]);

impl axum::response::IntoResponseParts for SecretFields {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut parts: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        parts.extensions_mut().insert(self);
        Ok(parts)
    }
}

/// The body to record for replay: `body` with the secrets of `fields` set to null, and the
/// fields that held one. A body that is not a JSON object holds no field to withhold.
fn withhold(body: &[u8], fields: Option<&SecretFields>) -> (Vec<u8>, Vec<String>) {
    let Some(SecretFields(fields)) = fields else { return (body.to_vec(), vec![]) };
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (body.to_vec(), vec![]);
    };
    let mut withheld = Vec::new();
    for field in *fields {
        if let Some(value) = object.get_mut(*field)
            && !value.is_null()
        {
            *value = serde_json::Value::Null;
            withheld.push((*field).to_owned());
        }
    }
    let recorded = serde_json::to_vec(&object).expect("a JSON object always serializes");
    (recorded, withheld)
}

/// Responses past this size are not recorded for replay; nothing this API answers comes near.
const MAX_RECORDED_BYTES: usize = 1024 * 1024;

/// The paths whose body may carry the key as `idempotency_key` (the contract's
/// `PlaceCallRequest`), with the header's meaning.
const BODY_KEY_PATHS: &[&str] = &["/v1/call"];

/// The body's `idempotency_key`, if it is a string (any other value is the handler's field
/// error to report).
fn body_key(body: &[u8]) -> Result<Option<String>, ApiError> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(None);
    };
    match object.get("idempotency_key") {
        Some(serde_json::Value::String(raw)) => {
            domain::idempotency::parse_key(raw).map(Some).map_err(|detail| ApiError::field("idempotency_key", detail))
        }
        _ => Ok(None),
    }
}

pub async fn middleware(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let header_key = match request.headers().get(HEADER) {
        None => None,
        Some(raw) => match raw.to_str().map_err(|e| e.to_string()).and_then(domain::idempotency::parse_key) {
            Ok(key) => Some(key),
            Err(detail) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "invalid_idempotency_key", detail).into_response();
            }
        },
    };
    let takes_body_key = BODY_KEY_PATHS.contains(&request.uri().path());
    if header_key.is_none() && !takes_body_key {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let body = match crate::body::read(body).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let body_key = if takes_body_key {
        match body_key(&body) {
            Ok(key) => key,
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    // The header and the body field are one key given twice: they must agree.
    let key = match (header_key, body_key) {
        (Some(header), Some(body)) if header != body => {
            return ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_mismatch",
                "The Idempotency-Key header and the body's idempotency_key differ; give one, or the same.",
            )
            .into_response();
        }
        (Some(key), _) | (None, Some(key)) => key,
        (None, None) => return next.run(Request::from_parts(parts, Body::from(body))).await,
    };
    let caller = match Caller::from_request_parts(&mut parts, &app).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&body);
    let fingerprint = hasher.finalize().to_vec();

    // From here on the work runs to its end in a task of its own, whether or not the client stays:
    // a key recorded as started is then always completed.
    parts.extensions.insert(caller);
    parts.extensions.insert(Key(key.clone()));
    let context = crate::context::current();
    let work = run_keyed(app, caller, key, fingerprint, Request::from_parts(parts, Body::from(body)), next);
    match tokio::spawn(crate::context::within(context, work)).await {
        Ok(response) => response,
        Err(_) => ApiError::unexpected_reply().into_response(),
    }
}

/// Asks the org's partition what to do with the key, and if the request is to run, runs it and
/// records its response.
async fn run_keyed(
    app: App,
    caller: Caller,
    key: String,
    fingerprint: Vec<u8>,
    request: Request,
    next: Next,
) -> Response {
    let begin = Kind::BeginIdempotent(pb::IdempotentRequest { key: key.clone(), fingerprint: fingerprint.clone() });
    match app.services.command(caller.org, begin).await {
        Err(e) => return e.into_response(),
        Ok(R::Idempotency(pb::IdempotencyDecision { decision: Some(decision) })) => match decision {
            Decision::Proceed(_) => {}
            Decision::Replay(r) => return replay(r),
            Decision::Conflict(_) => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "This Idempotency-Key was used with a different request.",
                )
                .into_response();
            }
            Decision::InProgress(_) => {
                return ApiError::in_progress("The first request with this Idempotency-Key is still running.")
                    .into_response();
            }
        },
        Ok(_) => return ApiError::unexpected_reply().into_response(),
    }
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, MAX_RECORDED_BYTES).await.unwrap_or_default();
    let (recorded, withheld) = withhold(&body, parts.extensions.get::<SecretFields>());
    let complete = Kind::CompleteIdempotent(pb::IdempotentResponse {
        key,
        fingerprint,
        status: parts.status.as_u16().into(),
        body: recorded,
        withheld,
    });
    if let Err(e) = app.services.command(caller.org, complete).await {
        // The key stays in progress until it is given up on; a retry then runs again.
        tracing::warn!(status = %e.status(), "could not record an idempotent response");
    }
    Response::from_parts(parts, Body::from(body))
}

/// The recorded body, saying it is a replay where it has the field for it (the contract's
/// `idempotent_replay`, recorded `false` by the first response).
fn replayed_body(body: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut object)) if object.contains_key("idempotent_replay") => {
            object.insert("idempotent_replay".to_owned(), serde_json::Value::Bool(true));
            serde_json::to_vec(&object).expect("a JSON object always serializes")
        }
        _ => body,
    }
}

fn replay(recorded: pb::IdempotentResponse) -> Response {
    let status = StatusCode::from_u16(recorded.status as u16).unwrap_or(StatusCode::OK);
    let mut response = (status, replayed_body(recorded.body.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if !recorded.withheld.is_empty()
        && let Ok(fields) = HeaderValue::from_str(&recorded.withheld.join(", "))
    {
        headers.insert(SECRET_WITHHELD, fields);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_withheld_from_the_record_and_named() {
        let body = br#"{"id":7,"name":"ci","key":"sk_live_0000000000000007abcdefghijabcdefghijabcdefghijab"}"#;
        let (recorded, withheld) = withhold(body, Some(&SecretFields(&["key", "secret"])));
        assert_eq!(withheld, vec!["key"]);
        let recorded: serde_json::Value = serde_json::from_slice(&recorded).unwrap();
        assert_eq!(recorded, serde_json::json!({ "id": 7, "name": "ci", "key": null }));
        assert_eq!(withhold(body, None).0, body.to_vec(), "a response without secrets is recorded as it is");
        assert_eq!(withhold(b"not json", Some(&SecretFields(&["key"]))).1, Vec::<String>::new());
    }
}
