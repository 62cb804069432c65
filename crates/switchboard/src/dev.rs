//! Single-process mode: gateway, orchestrator and billing in one process over the in-process bus,
//! with the event log under the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::InProcessBus;
use domain::Partitioning;
use rand::distr::{Alphanumeric, SampleString};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where the event log lives.
    #[arg(long, default_value = "./switchboard-data")]
    pub data_dir: PathBuf,
    /// Partitions for a new data directory; an existing one keeps the count it was made with.
    #[arg(long, default_value_t = Partitioning::DEFAULT_COUNT)]
    pub partitions: u32,
    /// The key that seals stored secrets (SIP passwords): 64 hex digits in a file. Made at
    /// `<data-dir>/secrets.key` on first start when not given; made at the given path if it
    /// does not exist yet.
    #[arg(long, env = "SWITCHBOARD_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub calls: CallArgs,
    #[command(flatten)]
    pub http: crate::http::HttpArgs,
    #[command(flatten)]
    pub payments: crate::payments::PaymentArgs,
}

/// How calls run: the simulated carrier's timings and the engine's limits.
#[derive(clap::Args, Clone, Debug)]
pub struct CallArgs {
    /// Simulated carrier: how long a call rings before it is answered.
    #[arg(long, default_value_t = 2_000)]
    pub sim_ring_ms: u64,
    /// Simulated carrier: how long an answered call talks before the agent hangs up.
    #[arg(long, default_value_t = 10_000)]
    pub sim_talk_ms: u64,
    /// How long a call may ring unanswered before it fails with `no_answer`.
    #[arg(long, default_value_t = 30_000)]
    pub ring_timeout_ms: i64,
    /// The watchdog: no call runs longer than this.
    #[arg(long, default_value_t = 3_600)]
    pub max_call_seconds: u32,
    /// SIP trunks: how long a call's INVITE waits for the trunk's first answer before
    /// `POST /v1/call` answers 502.
    #[arg(long, default_value_t = 8_000)]
    pub sip_answer_timeout_ms: u64,
    /// Idempotency keys: how long the first run of a keyed request may take before a retry
    /// runs it again (its gateway is taken for dead). What it created is found, not redone.
    #[arg(long, default_value_t = domain::idempotency::ABANDONED_AFTER_MS)]
    pub idempotency_abandoned_after_ms: i64,
    /// Idempotency keys: how long a key replays its first response; its stream is removed from
    /// disk soon after. A day; shorter only for tests.
    #[arg(long, default_value_t = domain::idempotency::RETENTION_MS)]
    pub idempotency_retention_ms: i64,
    #[command(flatten)]
    pub egress: EgressArgs,
}

/// Where the engine may connect on a customer's behalf (SIP trunks; webhooks later).
#[derive(clap::Args, Clone, Debug)]
pub struct EgressArgs {
    /// Lets customers' hosts be on loopback, private (RFC 1918, ULA), link-local, CGNAT or
    /// cloud metadata addresses. Off by default: those reach the operator's own network. For
    /// trunks on a private network, and for SIPp on loopback in development.
    #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS")]
    pub allow_private_networks: bool,
    /// Refuses connections on the simulated carrier (a `manual` connection whose host is
    /// `sim`), for a deployment where every call is to reach a real trunk.
    #[arg(long, env = "SWITCHBOARD_NO_SIM_CARRIER")]
    pub no_sim_carrier: bool,
    /// The public host trunks send inbound calls to (`GET /v1/voip-connections/sip-host`): a
    /// bare host name. Without it, the deployment answers that it takes no inbound SIP.
    #[arg(long, env = "SWITCHBOARD_SIP_PUBLIC_HOST", value_parser = parse_sip_host)]
    pub sip_public_host: Option<String>,
}

fn parse_sip_host(raw: &str) -> Result<String, String> {
    domain::voip::SipTrunk::parse_host(raw)
}

impl EgressArgs {
    pub fn policy(&self) -> egress::Policy {
        egress::Policy { allow_private_networks: self.allow_private_networks }
    }
}

impl CallArgs {
    pub fn telephony(&self) -> telephony::Telephony {
        telephony::Telephony::new(telephony::Options {
            sim: telephony::sim::Options { ring_ms: self.sim_ring_ms, talk_ms: self.sim_talk_ms },
            sip_answer_timeout: Duration::from_millis(self.sip_answer_timeout_ms),
            egress: self.egress.policy(),
            ..Default::default()
        })
    }

    pub fn limits(&self) -> orchestrator::CallLimits {
        orchestrator::CallLimits {
            ring_timeout_ms: self.ring_timeout_ms,
            max_duration_seconds: self.max_call_seconds,
            // The simulated calls' own length: what a test call's estimate should assume.
            expected_test_call_seconds: (self.sim_ring_ms + self.sim_talk_ms).div_ceil(1000).max(1) as u32,
            idempotency_abandoned_after_ms: self.idempotency_abandoned_after_ms,
            // Billing answers within seconds; the dial waits up to the trunk's answer timeout.
            placement_timeout_ms: (self.sip_answer_timeout_ms as i64 + 30_000)
                .max(domain::call::DEFAULT_PLACEMENT_TIMEOUT_MS),
            idempotency_retention_ms: self.idempotency_retention_ms,
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::private::create_dir(&args.data_dir)?;
    let admin_token = admin_token(&args.data_dir)?;
    let server = Server::start(&args, admin_token).await?;
    crate::http::print_admin_ready(server.admin_addr);
    // Tests and scripts read this line to find the port.
    println!("switchboard listening on http://{}", server.addr);
    crate::shutdown_signal().await;
    server.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Gateway, orchestrator and billing running in this process.
pub struct Server {
    pub addr: std::net::SocketAddr,
    /// Where the admin API is served, when not on `addr`.
    pub admin_addr: Option<std::net::SocketAddr>,
    store: eventlog::Store,
    stop_gateway: tokio::sync::oneshot::Sender<()>,
    stop_services: tokio::sync::watch::Sender<()>,
    gateway: tokio::task::JoinHandle<std::io::Result<()>>,
    services: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub async fn start(args: &Args, admin_token: String) -> anyhow::Result<Self> {
        crate::private::create_dir(&args.data_dir)?;
        let secrets_key_file = args.secrets_key_file.clone().unwrap_or_else(|| args.data_dir.join("secrets.key"));
        let secrets_key = crate::private::secrets_key_or_create(&secrets_key_file)?;
        let store = eventlog::Store::open(args.data_dir.join("events"), &eventlog::Options::default())
            .context("opening the event log")?;
        let partitioning =
            Partitioning::new(store.setting_or_init("partitions", &args.partitions.to_string())?.parse()?);
        let bus: bus::SharedBus = Arc::new(InProcessBus::new());

        let orchestrator = orchestrator::Orchestrator::build(orchestrator::Options {
            partitioning,
            partitions: (0..partitioning.count()).collect(),
            store: store.clone(),
            bus: bus.clone(),
            carrier: Arc::new(args.calls.telephony()),
            call_limits: args.calls.limits(),
            verification_limits: Default::default(),
            secrets_key,
            clock: actor::system_clock(),
        })
        .await?;
        let billing = billing::Billing::build(billing::Options {
            partitioning,
            partitions: (0..partitioning.count()).collect(),
            store: store.clone(),
            bus: bus.clone(),
            expiry_check_interval: Duration::from_secs(1),
            clock: actor::system_clock(),
            payments: args.payments.payments(),
        })
        .await?;
        let listeners = args.http.bind(&args.listen).await?;
        let gateway = gateway::Gateway::build(
            gateway::Options {
                bus,
                partitioning,
                admin_token,
                request_timeout: Duration::from_secs(10),
                metrics: Some(crate::metrics()),
                http_limits: args.http.limits(),
                egress: args.calls.egress.policy(),
                sim_carrier: !args.calls.egress.no_sim_carrier,
                sip_public_host: args.calls.egress.sip_public_host.clone(),
            },
            listeners,
        );
        let addr = gateway.local_addr()?;
        let admin_addr = gateway.admin_addr()?;

        let (stop_services, stop_rx) = tokio::sync::watch::channel(());
        let stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
            let _ = rx.changed().await;
        };
        let orchestrator_stop = stopped(stop_rx.clone());
        let billing_stop = stopped(stop_rx);
        let services = vec![
            tokio::spawn(async move { Ok(orchestrator.run(orchestrator_stop).await?) }),
            tokio::spawn(async move { Ok(billing.run(billing_stop).await?) }),
        ];
        let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
        let gateway = tokio::spawn(gateway.run(async {
            let _ = gateway_stopped.await;
        }));
        Ok(Self { addr, admin_addr, store, stop_gateway, stop_services, gateway, services })
    }

    /// Stops the gateway first, so nothing new arrives while the services wind down.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop_gateway.send(());
        self.gateway.await??;
        let _ = self.stop_services.send(());
        for service in self.services {
            service.await??;
        }
        self.store.flush_now()?;
        Ok(())
    }
}

/// The admin token: `SWITCHBOARD_ADMIN_TOKEN` if set, else the one this data directory was
/// given before, else a new one, printed and written to `<data-dir>/admin-token`.
fn admin_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("SWITCHBOARD_ADMIN_TOKEN") {
        anyhow::ensure!(!token.trim().is_empty(), "SWITCHBOARD_ADMIN_TOKEN is empty");
        return Ok(token);
    }
    let path = data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = format!("sb_admin_{}", Alphanumeric.sample_string(&mut rand::rng(), 32));
    crate::private::write_new(&path, token.as_bytes())?;
    println!("admin token (also in {}): {token}", path.display());
    Ok(token)
}
