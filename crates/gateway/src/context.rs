//! What follows one request through the gateway: its id, and its key's rate-limit state.
//!
//! The id comes from `X-Request-Id` (or is made), is returned on every response, travels in the
//! bus headers to the workers, and names the span every log line of the request's work is in.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use wire::pb;

pub const REQUEST_ID: &str = "x-request-id";

#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// Set when the request authenticated with an API key.
    rate_limit: Mutex<Option<pb::RateLimit>>,
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

/// The current request's context, to carry into a task of its own.
pub fn current() -> Option<Arc<RequestContext>> {
    CONTEXT.try_with(Arc::clone).ok()
}

/// Runs `work` within a request's context (when there is one).
pub async fn within<F: std::future::Future>(context: Option<Arc<RequestContext>>, work: F) -> F::Output {
    match context {
        Some(context) => CONTEXT.scope(context, work).await,
        None => work.await,
    }
}

/// The current request's id, when called within a request.
pub fn request_id() -> Option<String> {
    CONTEXT.try_with(|c| c.request_id.clone()).ok()
}

/// Records the key's rate-limit state, for the response headers.
pub fn record_rate_limit(rate: pb::RateLimit) {
    let _ = CONTEXT.try_with(|c| *c.rate_limit.lock().expect("rate limit lock") = Some(rate));
}

/// A client's request id is kept if it is sensible: 1 to 128 visible ASCII characters.
fn accepted(value: &HeaderValue) -> Option<String> {
    let id = value.to_str().ok()?;
    ((1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())).then(|| id.to_owned())
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(accepted)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let context = Arc::new(RequestContext { request_id: request_id.clone(), rate_limit: Mutex::new(None) });
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
    // The route's template, so that ids do not multiply the metric's series.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let mut response = CONTEXT.scope(context.clone(), next.run(request)).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let labels = [("route", route), ("method", method), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    span.in_scope(|| tracing::info!(status, latency_ms = started.elapsed().as_millis() as u64, "request"));
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, HeaderValue::from_str(&request_id).expect("request ids are visible ASCII"));
    if let Some(rate) = context.rate_limit.lock().expect("rate limit lock").take() {
        headers.insert("x-ratelimit-limit", HeaderValue::from(rate.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(rate.reset_at_ms.div_euclid(1000)));
    }
    response
}
