//! The ingress gateway: HTTP and JSON at the edge, protobuf over the bus behind it. Stateless:
//! any gateway serves any request, so they scale out behind a load balancer.

// The OpenAPI schemas are one large `json!` literal.
#![recursion_limit = "512"]

mod auth;
mod body;
mod context;
mod error;
mod idempotency;
mod openapi;
mod render;
mod routes;
mod services;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get, post};
use bus::SharedBus;
use domain::Partitioning;
use tokio::net::TcpListener;

pub use auth::KEY_PREFIX;
pub use body::MAX_BODY_BYTES;
use services::Services;

pub struct Options {
    pub bus: SharedBus,
    pub partitioning: Partitioning,
    /// The token `/admin/v1/...` requires.
    pub admin_token: String,
    /// How long a request waits for a service before answering 503.
    pub request_timeout: Duration,
    /// Renders the process's metrics for `GET /metrics`, in Prometheus' text format.
    pub metrics: Option<MetricsRender>,
    /// Where a VoIP connection's host may be: checked on create, for a field error at once
    /// (the engine checks again on every use).
    pub egress: egress::Policy,
}

pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    services: Services,
    admin_token: Arc<str>,
    metrics: Option<MetricsRender>,
    egress: egress::Policy,
}

pub struct Gateway {
    router: Router,
    listener: TcpListener,
}

impl Gateway {
    pub fn build(options: Options, listener: TcpListener) -> Self {
        let app = App {
            services: Services::new(options.bus, options.partitioning, options.request_timeout),
            admin_token: options.admin_token.into(),
            metrics: options.metrics,
            egress: options.egress,
        };
        Self { router: router(app), listener }
    }

    /// The router on an in-process bus that nothing serves, for tests of routing alone.
    #[cfg(test)]
    pub(crate) fn router_for_tests() -> Router {
        let bus: SharedBus = Arc::new(bus::InProcessBus::new());
        let services = Services::new(bus, Partitioning::new(8), Duration::from_millis(100));
        router(App { services, admin_token: "admin".into(), metrics: None, egress: egress::Policy::default() })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown).await
    }
}

fn router(app: App) -> Router {
    use routes::{accounts, agents, billing, calls, numbers, test_calls, voip};
    Router::new()
        .route("/v1/healthz", get(routes::healthz))
        .route("/v1/openapi.json", get(|| async { axum::Json(openapi::document()) }))
        .route("/metrics", get(routes::metrics))
        .route("/admin/v1/orgs", post(accounts::create_org))
        .route("/admin/v1/orgs/{id}", get(accounts::get_org).patch(accounts::update_org))
        .route("/admin/v1/orgs/{id}/keys", post(accounts::admin_create_key))
        .route("/admin/v1/orgs/{id}/credits", post(billing::credit))
        .route("/admin/v1/orgs/{id}/billing", axum::routing::patch(billing::set_rate))
        .route("/v1/billing/balance", get(billing::balance))
        .route("/v1/billing/transactions", get(billing::transactions))
        .route("/v1/keys", get(accounts::list).post(accounts::create))
        .route("/v1/keys/{id}", axum::routing::delete(accounts::revoke))
        .route("/v1/agents", get(agents::list).post(agents::create))
        .route("/v1/agents/{id}", get(agents::get).patch(agents::patch).put(agents::replace).delete(agents::delete))
        .route("/v1/voip-connections", get(voip::list).post(voip::create))
        .route("/v1/voip-connections/{id}", get(voip::get).delete(voip::delete))
        .route("/v1/voip-connections/{id}/verify", post(voip::verify))
        .route("/v1/phone-numbers", get(numbers::list).post(numbers::create))
        .route("/v1/phone-numbers/demo", post(numbers::create_demo))
        .route("/v1/phone-numbers/{id}", get(numbers::get).patch(numbers::update).delete(numbers::delete))
        .route("/v1/call", post(calls::place))
        .route("/v1/calls", get(calls::list))
        .route("/v1/calls/{id}", get(calls::get))
        .route("/v1/calls/{id}/transcript", get(calls::transcript))
        .route("/v1/calls/{id}/events", get(calls::events))
        .route("/v1/calls/{id}/hangup", post(calls::hangup))
        .route("/v1/test-calls", get(test_calls::list_runs).post(test_calls::create_run))
        .route("/v1/test-calls/{id}", get(test_calls::get_run))
        .route("/v1/test-call-batches", get(test_calls::list_batches).post(test_calls::create_batch))
        .route("/v1/test-call-batches/{id}", get(test_calls::get_batch))
        .route("/v1/test-call-batches/{id}/events", get(test_calls::batch_events))
        .route("/v1/test-call-batches/{id}/cancel", post(test_calls::cancel_batch))
        .route("/v1/orgs", any(routes::gone))
        .route("/v1/orgs/{*rest}", any(routes::gone))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), idempotency::middleware))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::middleware))
        .layer(axum::middleware::from_fn(context::middleware))
        .with_state(app)
}
