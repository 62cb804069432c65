//! Cluster mode: each service as its own process, talking over NATS. Any number of gateways;
//! orchestrator and billing workers each own the partitions they are given.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bus::NatsBus;
use domain::Partitioning;

#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// The NATS server.
    #[arg(long, env = "SWITCHBOARD_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Partitions in the cluster; every process of a cluster must agree.
    #[arg(long, default_value_t = Partitioning::DEFAULT_COUNT)]
    partition_count: u32,
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
    let bus = NatsBus::connect(&common.nats).await.with_context(|| format!("connecting to NATS at {}", common.nats))?;
    Ok(Arc::new(bus))
}

fn admin_token() -> anyhow::Result<String> {
    match std::env::var("SWITCHBOARD_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => Ok(token),
        _ => bail!("set SWITCHBOARD_ADMIN_TOKEN: every gateway of a cluster needs the same admin token"),
    }
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let admin_token = admin_token()?;
    let bus = connect(&args.common).await?;
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let gateway = gateway::Gateway::build(
        gateway::Options {
            bus,
            partitioning: Partitioning::new(args.common.partition_count),
            admin_token,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            metrics: Some(crate::metrics()),
        },
        listener,
    );
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
        secrets_key,
    })
    .await?;
    println!("switchboard orchestrator ready with {owned} partitions");
    service.run(crate::shutdown_signal()).await?;
    store.flush_now()?;
    Ok(())
}

pub async fn billing(args: WorkerArgs) -> anyhow::Result<()> {
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
