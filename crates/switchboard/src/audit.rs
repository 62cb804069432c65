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
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify { data_dir } => verify(data_dir),
    }
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
    let services =
        [(orchestrator::NAMESPACE, orchestrator::projections as fn() -> _), (billing::NAMESPACE, billing::projections)];
    for (namespace, projections) in services {
        for partition in 0..partitions {
            let log = store.log(namespace, partition, projections())?;
            let chains = log.verify_chains()?;
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
    Ok(())
}
