//! The call orchestrator: one single-writer actor per partition it owns. Each actor takes
//! its partition's commands from the bus in order, decides with the domain, appends to the
//! partition's event log, and its runner answers (and performs every other effect) once the
//! events are durable. Reads are answered from the partition's projections, beside the actor.

pub mod calls_projection;
pub mod org_projection;
mod partition;
mod projection_values;
mod queries;
mod rate_limit;
pub mod streams;
pub mod test_calls_projection;
pub mod vault;

use std::future::Future;
use std::sync::Arc;

use actor::service::{Served, Service};
use bus::SharedBus;
use domain::Partitioning;
use eventlog::{Projection, Store};
use telephony::Carrier;

pub use domain::verification_budget::VerificationLimits;
pub use partition::effects::{self, Effect, Finished, PendingClaim, Placement, Work};
pub use partition::{CallLimits, Partition, Verifications};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("event log: {0}")]
    Log(#[from] eventlog::Error),
    #[error("bus: {0}")]
    Bus(#[from] bus::Error),
    #[error("vault: {0}")]
    Vault(#[from] vault::Error),
}

pub struct Options {
    pub partitioning: Partitioning,
    /// The partitions this worker owns. No other worker may own any of them.
    pub partitions: Vec<u32>,
    pub store: Store,
    pub bus: SharedBus,
    pub carrier: Arc<dyn Carrier>,
    pub call_limits: CallLimits,
    /// How many verifications of VoIP connections may run; see [`domain::verification_budget`].
    pub verification_limits: VerificationLimits,
    /// Seals the secrets orgs give (SIP passwords) and keys idempotency fingerprints. It never
    /// enters the log; without it nothing sealed can be opened.
    pub secrets_key: vault::MasterKey,
    pub clock: actor::SharedClock,
}

/// The orchestrator's logs in a shared store.
pub const NAMESPACE: &str = "orchestrator";

/// The projections every orchestrator partition maintains.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(org_projection::OrgConfigProjection),
        Arc::new(calls_projection::CallsProjection),
        Arc::new(test_calls_projection::TestCallsProjection),
    ]
}

pub struct Orchestrator {
    partitions: Vec<Served<Partition>>,
    peers: partition::runner::Peers,
    clock: actor::SharedClock,
}

impl Orchestrator {
    /// Opens every owned partition and subscribes to its subjects. When this returns, the
    /// partitions answer requests as soon as [`Orchestrator::run`] is polled.
    pub async fn build(options: Options) -> Result<Self, Error> {
        // One bound on the probes of the whole process, whichever partitions they are for.
        let probe_slots = Arc::new(tokio::sync::Semaphore::new(options.verification_limits.max_probes_in_flight));
        // The data keys of every owned partition's secrets, beside its logs.
        let vault = vault::Vault::new(&options.secrets_key, options.store.key_store(NAMESPACE)?);
        let service = Service {
            name: "orchestrator",
            namespace: NAMESPACE,
            partitioning: options.partitioning,
            partitions: &options.partitions,
            store: &options.store,
            bus: &options.bus,
            projections,
            command_subject: bus::subjects::orchestrator_commands,
            query_subject: bus::subjects::orchestrator_queries,
        };
        let partitions = service
            .open(|log| {
                let partition = Partition::open(
                    options.partitioning,
                    log,
                    options.call_limits,
                    partition::Verifications::new(options.verification_limits, probe_slots.clone()),
                    vault.clone(),
                    options.clock.clone(),
                )?;
                Ok::<_, Error>(partition)
            })
            .await?;
        let peers = partition::runner::Peers {
            carrier: options.carrier,
            bus: options.bus,
            directory_partition: options.partitioning.directory(),
            vault,
        };
        Ok(Self { partitions, peers, clock: options.clock })
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        // One bound on the queries of every partition of this process: they share its cores.
        let query_limits = queries::QueryLimits::default();
        let (peers, clock) = (self.peers, self.clock);
        let command_loop = |partition, commands, stop| partition::runner::run(partition, peers.clone(), commands, stop);
        actor::service::run(self.partitions, shutdown, command_loop, |log, queries, stop| {
            queries::serve(log, queries, query_limits.clone(), clock.clone(), stop)
        })
        .await;
        Ok(())
    }
}
