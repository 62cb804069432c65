//! `switchboard audit ...`: checks a stopped data directory against its own event log.

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Recomputes every stream's hash chain, and replays every partition's log and compares the
    /// result with the live projections.
    Verify {
        #[arg(long, default_value = "./switchboard-data")]
        data_dir: PathBuf,
    },
    /// Lists every VoIP connection's sealed password and whether it still opens under the
    /// secrets key: `open`, or `shredded` once its connection was deleted (its data key is gone).
    Secrets {
        #[arg(long, default_value = "./switchboard-data")]
        data_dir: PathBuf,
        /// The secrets key; `<data-dir>/secrets.key` when not given, as `dev` keeps it.
        #[arg(long, env = "SWITCHBOARD_SECRETS_KEY_FILE")]
        secrets_key_file: Option<PathBuf>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify { data_dir } => verify(data_dir),
        Command::Secrets { data_dir, secrets_key_file } => secrets(data_dir, secrets_key_file),
    }
}

fn secrets(data_dir: PathBuf, secrets_key_file: Option<PathBuf>) -> anyhow::Result<()> {
    use domain::org::OrgEvent;
    let key = crate::private::read_secrets_key(&secrets_key_file.unwrap_or_else(|| data_dir.join("secrets.key")))?;
    let path = data_dir.join("events");
    anyhow::ensure!(path.exists(), "no event log at {}", path.display());
    let store = eventlog::Store::open(&path, &eventlog::Options::default())
        .with_context(|| format!("opening {} (is a switchboard still running on it?)", path.display()))?;
    let vault = orchestrator::vault::Vault::new(&key, store.key_store(orchestrator::NAMESPACE)?);
    let partitions: u32 = store.setting_or_init("partitions", "0")?.parse()?;
    for partition in 0..partitions {
        let log = store.log(orchestrator::NAMESPACE, partition, orchestrator::projections())?;
        for event in log.read_all() {
            let event = event?;
            // Every password a connection was given: at its create, and at each change of its
            // configuration (whose predecessor is shredded once the change is durable).
            if !matches!(event.event_type.as_str(), "voip_connection_created" | "voip_connection_updated") {
                continue;
            }
            let (id, provider) = match event.decode()? {
                OrgEvent::VoipConnectionCreated { id, provider, .. } => (id, provider),
                OrgEvent::VoipConnectionUpdated { id, provider: Some(provider), .. } => (id, provider),
                _ => continue,
            };
            let Some(sealed) = provider.password() else { continue };
            let state = match vault.open(sealed) {
                Ok(_) => "open",
                Err(orchestrator::vault::Error::Shredded) => "shredded",
                Err(e) => bail!("voip connection {id}: {e}"),
            };
            println!("voip_connection {id} {} {state}", event.stream);
        }
    }
    Ok(())
}

fn verify(data_dir: PathBuf) -> anyhow::Result<()> {
    let path = data_dir.join("events");
    anyhow::ensure!(path.exists(), "no event log at {}", path.display());
    let store = eventlog::Store::open(&path, &eventlog::Options::default())
        .with_context(|| format!("opening {} (is a switchboard still running on it?)", path.display()))?;
    let partitions: u32 = store.setting_or_init("partitions", "0")?.parse()?;
    let mut events = 0u64;
    let mut mismatched = Vec::new();
    let mut breaks = Vec::new();
    let mut idempotency_streams = 0;
    let services =
        [(orchestrator::NAMESPACE, orchestrator::projections as fn() -> _), (billing::NAMESPACE, billing::projections)];
    for (namespace, projections) in services {
        for partition in 0..partitions {
            let log = store.log(namespace, partition, projections())?;
            let chains = log.verify_chains()?;
            if namespace == orchestrator::NAMESPACE {
                idempotency_streams += log.streams_with_prefix(orchestrator::streams::IDEMPOTENCY_PREFIX)?.len();
            }
            events += chains.events;
            breaks.extend(
                chains
                    .breaks
                    .into_iter()
                    .map(|b| format!("{namespace}/{partition} {} at version {}: {}", b.stream, b.version, b.reason)),
            );
            if log.replay_projections()? != log.live_projections()? {
                mismatched.push(format!("{namespace}/{partition}"));
            }
        }
    }
    if !breaks.is_empty() {
        bail!("the hash chain is broken (the log was changed outside switchboard):\n{}", breaks.join("\n"));
    }
    if !mismatched.is_empty() {
        bail!("projections differ from their replay in {mismatched:?}");
    }
    println!(
        "verified {partitions} partitions, {events} events: every stream's hash chain holds, \
         and every projection equals its replay"
    );
    // Keys leave the disk once their retention is over; what is left is what is still kept.
    println!("{idempotency_streams} idempotency key streams kept");
    Ok(())
}
