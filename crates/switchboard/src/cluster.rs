//! Cluster mode: each service as its own process, talking over NATS. Any number of gateways;
//! orchestrator and billing workers each own the partitions they are given.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bus::{NatsAuth, NatsBus, NatsOptions, NatsTls};
use domain::Partitioning;

#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// The NATS server.
    #[arg(long, env = "SWITCHBOARD_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    #[command(flatten)]
    nats_auth: NatsArgs,
    /// Partitions in the cluster; every process of a cluster must agree.
    #[arg(long, default_value_t = Partitioning::DEFAULT_COUNT)]
    partition_count: u32,
}

/// How to authenticate to NATS. Secrets are best given in the environment (a command line is
/// visible to every user of the machine); `--help` never shows their values.
#[derive(clap::Args, Clone)]
pub struct NatsArgs {
    /// A token the NATS server's `authorization { token }` expects.
    #[arg(long, env = "SWITCHBOARD_NATS_TOKEN", hide_env_values = true, conflicts_with = "nats_user")]
    nats_token: Option<String>,
    /// A user of the NATS server's `authorization { users }`, with `--nats-password`.
    #[arg(long, env = "SWITCHBOARD_NATS_USER", requires = "nats_password")]
    nats_user: Option<String>,
    /// The password of `--nats-user`.
    #[arg(long, env = "SWITCHBOARD_NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    nats_password: Option<String>,
    /// Requires TLS to NATS, trusting the system's certificate authorities (implied by the
    /// other TLS flags and by a `tls://` URL).
    #[arg(long, env = "SWITCHBOARD_NATS_TLS")]
    nats_tls: bool,
    /// Requires TLS to NATS, trusting the authorities in this PEM file.
    #[arg(long, env = "SWITCHBOARD_NATS_TLS_CA")]
    nats_tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for a NATS server that verifies its clients, with `--nats-tls-key`.
    #[arg(long, env = "SWITCHBOARD_NATS_TLS_CERT", requires = "nats_tls_key")]
    nats_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--nats-tls-cert`.
    #[arg(long, env = "SWITCHBOARD_NATS_TLS_KEY", requires = "nats_tls_cert")]
    nats_tls_key: Option<PathBuf>,
}

impl std::fmt::Debug for NatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsArgs").field("auth", &self.auth()).field("tls", &self.tls()).finish()
    }
}

impl NatsArgs {
    fn auth(&self) -> NatsAuth {
        match (&self.nats_token, &self.nats_user, &self.nats_password) {
            (Some(token), _, _) => NatsAuth::Token(token.clone()),
            (None, Some(user), Some(password)) => {
                NatsAuth::UserPassword { user: user.clone(), password: password.clone() }
            }
            _ => NatsAuth::None,
        }
    }

    fn tls(&self) -> NatsTls {
        NatsTls {
            required: self.nats_tls,
            ca_file: self.nats_tls_ca.clone(),
            client_cert: self.nats_tls_cert.clone().zip(self.nats_tls_key.clone()),
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// How long a request waits for a worker before it answers 503.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    #[command(flatten)]
    http: crate::http::HttpArgs,
    #[command(flatten)]
    egress: crate::dev::EgressArgs,
}

#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    common: Common,
    /// The partitions this worker owns: `all`, a list of numbers and ranges (`0-31,40`), or
    /// `ordinal:N` for the pod of a StatefulSet of N replicas, read from `HOSTNAME` (`name-2`).
    #[arg(long, default_value = "all")]
    partitions: String,
    #[arg(long, default_value = "./switchboard-data")]
    data_dir: PathBuf,
    /// Serves `GET /metrics` on this address.
    #[arg(long)]
    metrics_listen: Option<String>,
}

#[derive(clap::Args, Clone, Debug)]
pub struct BillingArgs {
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    payments: crate::payments::PaymentArgs,
}

#[derive(clap::Args, Clone, Debug)]
pub struct OrchestratorArgs {
    #[command(flatten)]
    worker: WorkerArgs,
    /// The key that seals stored secrets (SIP passwords): a file of 64 hex digits, the same for
    /// every orchestrator of a cluster and kept outside its data directories. Required.
    #[arg(long, env = "SWITCHBOARD_SECRETS_KEY_FILE")]
    secrets_key_file: PathBuf,
    #[command(flatten)]
    calls: crate::dev::CallArgs,
}

async fn connect(common: &Common) -> anyhow::Result<bus::SharedBus> {
    let options = NatsOptions { url: common.nats.clone(), auth: common.nats_auth.auth(), tls: common.nats_auth.tls() };
    // The bus's error names the server without any credentials the URL holds.
    let bus = NatsBus::connect(&options).await.context("connecting to NATS")?;
    Ok(Arc::new(bus))
}

/// The cluster's admin token, refused when anyone could guess it: the admin API credits money.
fn admin_token() -> anyhow::Result<String> {
    let Ok(token) = std::env::var("SWITCHBOARD_ADMIN_TOKEN") else {
        bail!("set SWITCHBOARD_ADMIN_TOKEN: every gateway of a cluster needs the same admin token");
    };
    // Checked and used alike without surrounding whitespace (a token read from a file, as
    // Kubernetes Secrets often are, ends in a newline no request carries).
    let token = token.trim().to_owned();
    if let Err(weak) = gateway::check_admin_token(&token) {
        bail!("{weak}: set SWITCHBOARD_ADMIN_TOKEN to a random one, such as `openssl rand -hex 32` prints");
    }
    Ok(token)
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let admin_token = admin_token()?;
    let bus = connect(&args.common).await?;
    let listeners = args.http.bind(&args.listen).await?;
    let gateway = gateway::Gateway::build(
        gateway::Options {
            bus,
            partitioning: Partitioning::new(args.common.partition_count),
            admin_token,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            metrics: Some(crate::metrics()),
            http_limits: args.http.limits(),
            egress: args.egress.policy(),
            sim_carrier: !args.egress.no_sim_carrier,
            sip_public_host: args.egress.sip_public_host.clone(),
        },
        listeners,
    );
    crate::http::print_admin_ready(gateway.admin_addr()?);
    println!("switchboard gateway listening on http://{}", gateway.local_addr()?);
    gateway.run(crate::shutdown_signal()).await?;
    Ok(())
}

/// Opens the worker's store and checks it belongs to a cluster of this partition count.
async fn start_metrics(worker: &WorkerArgs) -> anyhow::Result<()> {
    match &worker.metrics_listen {
        Some(listen) => crate::serve_metrics(listen).await,
        None => Ok(()),
    }
}

fn open_store(worker: &WorkerArgs) -> anyhow::Result<(eventlog::Store, Partitioning, Vec<u32>)> {
    crate::private::create_dir(&worker.data_dir)?;
    let store = eventlog::Store::open(worker.data_dir.join("events"), &eventlog::Options::default())
        .context("opening the event log")?;
    let count = worker.common.partition_count;
    let recorded: u32 = store.setting_or_init("partitions", &count.to_string())?.parse()?;
    if recorded != count {
        bail!("{} holds a cluster of {recorded} partitions, not {count}", worker.data_dir.display());
    }
    let partitions = parse_partitions(&worker.partitions, count, std::env::var("HOSTNAME").ok().as_deref())?;
    Ok((store, Partitioning::new(count), partitions))
}

pub async fn orchestrator(args: OrchestratorArgs) -> anyhow::Result<()> {
    let secrets_key = crate::private::read_secrets_key(&args.secrets_key_file)?;
    let (store, partitioning, partitions) = open_store(&args.worker)?;
    start_metrics(&args.worker).await?;
    let bus = connect(&args.worker.common).await?;
    let owned = partitions.len();
    let service = orchestrator::Orchestrator::build(orchestrator::Options {
        partitioning,
        partitions,
        store: store.clone(),
        bus,
        carrier: Arc::new(args.calls.telephony()),
        call_limits: args.calls.limits(),
        verification_limits: Default::default(),
        secrets_key,
        clock: actor::system_clock(),
    })
    .await?;
    println!("switchboard orchestrator ready with {owned} partitions");
    service.run(crate::shutdown_signal()).await?;
    store.flush_now()?;
    Ok(())
}

pub async fn billing(args: BillingArgs) -> anyhow::Result<()> {
    let payments = args.payments.payments();
    let args = args.worker;
    let (store, partitioning, partitions) = open_store(&args)?;
    start_metrics(&args).await?;
    let bus = connect(&args.common).await?;
    let owned = partitions.len();
    let service = billing::Billing::build(billing::Options {
        partitioning,
        partitions,
        store: store.clone(),
        bus,
        expiry_check_interval: Duration::from_secs(1),
        clock: actor::system_clock(),
        payments,
    })
    .await?;
    println!("switchboard billing ready with {owned} partitions");
    service.run(crate::shutdown_signal()).await?;
    store.flush_now()?;
    Ok(())
}

/// Parses a partition spec (see [`WorkerArgs::partitions`]).
pub fn parse_partitions(spec: &str, count: u32, hostname: Option<&str>) -> anyhow::Result<Vec<u32>> {
    let spec = spec.trim();
    if spec == "all" {
        return Ok((0..count).collect());
    }
    if let Some(replicas) = spec.strip_prefix("ordinal:") {
        let replicas: u32 = replicas.parse().context("ordinal:N takes the number of replicas")?;
        let host = hostname.context("ordinal:N reads the pod's ordinal from HOSTNAME, which is not set")?;
        let ordinal: u32 = host
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("HOSTNAME {host:?} does not end in a pod ordinal"))?;
        if replicas == 0 || ordinal >= replicas {
            bail!("pod ordinal {ordinal} is not below the replica count {replicas}");
        }
        // Contiguous shares; the first `count % replicas` pods take one more.
        let (share, extra) = (count / replicas, count % replicas);
        let start = ordinal * share + ordinal.min(extra);
        let len = share + u32::from(ordinal < extra);
        return Ok((start..start + len).collect());
    }
    let mut partitions = Vec::new();
    for part in spec.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>()?, b.trim().parse::<u32>()?),
            None => {
                let p = part.trim().parse::<u32>().with_context(|| format!("{part:?} is not a partition"))?;
                (p, p)
            }
        };
        if from > to || to >= count {
            bail!("partitions {from}-{to} are not within 0-{}", count - 1);
        }
        partitions.extend(from..=to);
    }
    partitions.sort_unstable();
    partitions.dedup();
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::parse_partitions;

    #[test]
    fn partition_specs() {
        assert_eq!(parse_partitions("all", 4, None).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_partitions("0-2,5", 8, None).unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_partitions("0-8", 8, None).is_err());
        assert_eq!(parse_partitions("ordinal:2", 64, Some("orchestrator-0")).unwrap(), (0..32).collect::<Vec<_>>());
        assert_eq!(parse_partitions("ordinal:2", 64, Some("orchestrator-1")).unwrap(), (32..64).collect::<Vec<_>>());
        assert_eq!(parse_partitions("ordinal:3", 64, Some("billing-2")).unwrap(), (43..64).collect::<Vec<_>>());
        assert!(parse_partitions("ordinal:2", 64, Some("orchestrator-2")).is_err());
        assert!(parse_partitions("ordinal:2", 64, None).is_err());
    }
}
