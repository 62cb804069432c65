pub mod accounts;
pub mod agents;
pub mod billing;
pub mod calls;
pub mod numbers;
pub mod test_calls;
pub mod voip;

use axum::Json;
use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use crate::error::ApiError;

pub use billing::page;

pub type Created = (StatusCode, Json<Value>);

pub fn created(body: Value) -> Created {
    (StatusCode::CREATED, Json(body))
}

/// A 201 whose body shows secrets once, in `fields`: they are never recorded for a replay.
pub type CreatedWithSecrets = (StatusCode, crate::idempotency::SecretFields, Json<Value>);

pub fn created_with_secrets(body: Value, fields: &'static [&'static str]) -> CreatedWithSecrets {
    (StatusCode::CREATED, crate::idempotency::SecretFields(fields), Json(body))
}

/// A path id: anything but a positive integer names nothing, so it is a 404 like any other.
pub fn path_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(ApiError::not_found)
}

pub async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// The process's metrics in Prometheus' text format.
pub async fn metrics(axum::extract::State(app): axum::extract::State<crate::App>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &app.metrics {
        Some(render) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response(),
        None => ApiError::not_found().into_response(),
    }
}

/// `/v1/orgs/<id>/...` moved to flat paths; say where.
pub async fn gone(uri: Uri) -> (StatusCode, Json<Value>) {
    let legacy_path = uri.path().to_owned();
    let rest = legacy_path.trim_start_matches("/v1/orgs").trim_start_matches('/');
    let rest = rest.split_once('/').map_or("", |(_, r)| r);
    let new_path = format!("/v1/{rest}");
    (
        StatusCode::GONE,
        Json(json!({
            "detail": "This endpoint moved. Drop the /orgs/<id>/ prefix; your API key identifies your organization.",
            "code": "gone",
            "legacy_path": legacy_path,
            "new_path": new_path,
        })),
    )
}

/// A path switchboard once served under a name of its own, now served at `new_path` as the
/// contract names it: 410 with the new path, the seed's migration pattern.
pub fn moved(legacy_path: &str, new_path: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::GONE,
        Json(json!({
            "detail": format!("This endpoint moved to {new_path}."),
            "code": "gone",
            "legacy_path": legacy_path,
            "new_path": new_path,
        })),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("Method \"{method}\" not allowed."))
}
