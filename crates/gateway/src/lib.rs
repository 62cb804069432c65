//! The ingress gateway: HTTP and JSON at the edge, protobuf over the bus behind it. Stateless:
//! any gateway serves any request, so they scale out behind a load balancer.

// The OpenAPI schemas are one large `json!` literal.
#![recursion_limit = "512"]

mod admin_token;
mod auth;
mod body;
mod context;
mod error;
mod idempotency;
mod openapi;
mod render;
mod routes;
mod server;
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

pub use admin_token::{MIN_ADMIN_TOKEN_CHARS, WeakAdminToken, check_admin_token};
pub use auth::KEY_PREFIX;
pub use body::MAX_BODY_BYTES;
pub use server::HttpLimits;
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
    /// How long clients may take to send a request, and how many connections they may hold.
    pub http_limits: HttpLimits,
    /// Where a VoIP connection's host may be: checked on create, for a field error at once
    /// (the engine checks again on every use).
    pub egress: egress::Policy,
    /// Whether connections may use the simulated carrier (`manual` with host `sim`).
    pub sim_carrier: bool,
    /// The deployment's public SIP host, which trunks send inbound calls to, if it has one.
    pub sip_public_host: Option<String>,
}

/// Where the gateway listens. With an admin listener, the admin API (`/admin/v1/...`) and
/// `GET /metrics` are served there alone, and the public listener answers them as unknown paths;
/// without one, the public listener serves everything.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: Option<TcpListener>,
}

pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` alone on `listener`, for a worker that has no HTTP API of its own, with
/// the same bounds on slow clients as the API's listeners, until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    render: MetricsRender,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(move || async move { render() }));
    server::serve(listener, app, HttpLimits::default(), shutdown).await
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    services: Services,
    admin_token: Arc<str>,
    metrics: Option<MetricsRender>,
    egress: egress::Policy,
    sim_carrier: bool,
    sip_public_host: Option<Arc<str>>,
}

pub struct Gateway {
    public: (TcpListener, Router),
    admin: Option<(TcpListener, Router)>,
    http_limits: HttpLimits,
}

impl Gateway {
    pub fn build(options: Options, listeners: Listeners) -> Self {
        let app = App {
            services: Services::new(options.bus, options.partitioning, options.request_timeout),
            admin_token: options.admin_token.into(),
            metrics: options.metrics,
            egress: options.egress,
            sim_carrier: options.sim_carrier,
            sip_public_host: options.sip_public_host.map(Into::into),
        };
        let (public, admin) = match listeners.admin {
            Some(admin) => {
                ((listeners.public, router(public_routes(), app.clone())), Some((admin, router(admin_routes(), app))))
            }
            None => ((listeners.public, router(public_routes().merge(admin_routes()), app)), None),
        };
        Self { public, admin, http_limits: options.http_limits }
    }

    /// The router on an in-process bus that nothing serves, for tests of routing alone.
    #[cfg(test)]
    pub(crate) fn router_for_tests() -> Router {
        let bus: SharedBus = Arc::new(bus::InProcessBus::new());
        let services = Services::new(bus, Partitioning::new(8), Duration::from_millis(100));
        let app = App {
            services,
            admin_token: "admin".into(),
            metrics: None,
            egress: egress::Policy::default(),
            sim_carrier: true,
            sip_public_host: None,
        };
        router(public_routes().merge(admin_routes()), app)
    }

    /// The public listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.0.local_addr()
    }

    /// The admin listener's address, when there is one.
    pub fn admin_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.admin.as_ref().map(|(listener, _)| listener.local_addr()).transpose()
    }

    /// Serves every listener until `shutdown` resolves, then lets the requests under way finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // Both listeners stop on the one signal.
        let (stop, stopped) = tokio::sync::watch::channel(());
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(());
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.changed().await;
            }
        };
        let (listener, router) = self.public;
        let public = server::serve(listener, router, self.http_limits, until_stopped());
        match self.admin {
            Some((listener, router)) => {
                let admin = server::serve(listener, router, self.http_limits, until_stopped());
                tokio::try_join!(public, admin).map(|_| ())
            }
            None => public.await,
        }
    }
}

/// What the admin listener serves: the operator's API and the process's metrics.
fn admin_routes() -> Router<App> {
    use routes::{accounts, billing};
    Router::new()
        .route("/metrics", get(routes::metrics))
        .route("/admin/v1/orgs", post(accounts::create_org))
        .route("/admin/v1/orgs/{id}", get(accounts::get_org).patch(accounts::update_org))
        .route("/admin/v1/orgs/{id}/keys", post(accounts::admin_create_key))
        .route("/admin/v1/orgs/{id}/credits", post(billing::credit))
        .route("/admin/v1/orgs/{id}/billing", axum::routing::patch(billing::set_rate))
}

/// What the public listener serves: the customers' API.
fn public_routes() -> Router<App> {
    use routes::{accounts, agents, billing, calls, numbers, test_calls, voip};
    Router::new()
        .route("/v1/healthz", get(routes::healthz))
        .route("/v1/whoami", get(accounts::whoami))
        .route("/v1/openapi.json", get(|| async { axum::Json(openapi::document()) }))
        .route("/v1/billing", get(billing::account).patch(billing::update_account))
        .route("/v1/billing/balance", get(billing::balance))
        .route("/v1/billing/top-up", post(billing::top_up))
        .route("/v1/billing/transactions", get(billing::transactions))
        .route("/v1/keys", get(accounts::list).post(accounts::create))
        .route("/v1/keys/{id}", axum::routing::delete(accounts::revoke))
        .route("/v1/agents", get(agents::list).post(agents::create))
        .route("/v1/agents/{id}", get(agents::get).patch(agents::patch).put(agents::replace).delete(agents::delete))
        .route("/v1/voip-connections", get(voip::list).post(voip::create))
        .route("/v1/voip-connections/test", post(voip::test))
        .route("/v1/voip-connections/sip-host", get(voip::sip_host))
        .route("/v1/voip-connections/suggest-name", post(voip::provider_api))
        .route("/v1/voip-connections/twilio/subaccounts", post(voip::provider_api))
        .route("/v1/voip-connections/twilio/subaccounts/connect", post(voip::provider_api))
        .route("/v1/voip-connections/{id}", get(voip::get).patch(voip::update).delete(voip::delete))
        .route("/v1/voip-connections/{id}/import-numbers", post(voip::import_numbers))
        .route("/v1/voip-connections/{id}/search-numbers", get(voip::provider_api))
        .route("/v1/voip-connections/{id}/available-numbers", get(voip::provider_api))
        .route("/v1/voip-connections/{id}/provision-number", post(voip::provider_api))
        .route("/v1/voip-connections/{id}/enable-transfers", post(voip::provider_api))
        .route(
            "/v1/voip-connections/{id}/verify",
            post(|| async { routes::moved("/v1/voip-connections/{id}/verify", "/v1/voip-connections/test") }),
        )
        .route("/v1/phone-numbers", get(numbers::list).post(numbers::create))
        .route(
            "/v1/phone-numbers/demo",
            post(|| async { routes::moved("/v1/phone-numbers/demo", "/v1/phone-numbers") }),
        )
        .route(
            "/v1/phone-numbers/{id}",
            get(numbers::get).patch(numbers::update).put(numbers::update).delete(numbers::delete),
        )
        .route("/v1/phone-numbers/{id}/verify-voip", post(numbers::verify))
        .route("/v1/call", post(calls::place))
        .route("/v1/calls", get(calls::list))
        .route("/v1/calls/export", get(calls::export))
        .route("/v1/calls/{id}", get(calls::get))
        .route("/v1/calls/{id}/transcript", get(calls::transcript))
        .route("/v1/calls/{id}/history", get(calls::history))
        .route("/v1/calls/{id}/events", get(calls::events_moved))
        .route("/v1/calls/{id}/hangup", post(calls::hangup))
        .route("/v1/test-calls", get(test_calls::list_runs).post(test_calls::create_run))
        .route("/v1/test-calls/{id}", get(test_calls::get_run))
        .route("/v1/test-call-batches", get(test_calls::list_batches).post(test_calls::create_batch))
        .route("/v1/test-call-batches/{id}", get(test_calls::get_batch))
        .route("/v1/test-call-batches/{id}/events", get(test_calls::batch_events))
        .route("/v1/test-call-batches/{id}/cancel", post(test_calls::cancel_batch))
        .route("/v1/simulations", get(test_calls::list_runs).post(test_calls::create_run))
        .route("/v1/simulations/batches", get(test_calls::list_batches).post(test_calls::create_batch))
        .route("/v1/simulations/batches/{id}", get(test_calls::get_batch))
        .route("/v1/orgs", any(routes::gone))
        .route("/v1/orgs/{*rest}", any(routes::gone))
}

/// A listener's routes with what every request goes through: unknown paths and methods answered
/// in the contract's shape, idempotency keys, authentication, request ids.
fn router(routes: Router<App>, app: App) -> Router {
    routes
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), idempotency::middleware))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::middleware))
        .layer(axum::middleware::from_fn(context::middleware))
        .with_state(app)
}
