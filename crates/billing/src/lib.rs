//! The billing service: each org's prepaid ledger, owned by the worker of the org's partition.
//! Commands (reserve, settle, void, top up, set rate) go through one actor per partition, in
//! order; reads come from the partition's projections. Reservations that nobody settles are
//! released by the actor's expiry timer.

mod partition;
pub mod projection;
mod queries;
pub mod streams;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bus::SharedBus;
use domain::Partitioning;
use eventlog::{Projection, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;

use partition::Partition;

/// Billing's logs in a shared store.
pub const NAMESPACE: &str = "billing";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("event log: {0}")]
    Log(#[from] eventlog::Error),
    #[error("bus: {0}")]
    Bus(#[from] bus::Error),
}

pub struct Options {
    pub partitioning: Partitioning,
    /// The partitions this worker owns. No other billing worker may own any of them.
    pub partitions: Vec<u32>,
    pub store: Store,
    pub bus: SharedBus,
    /// How often each partition looks for reservations past their expiry.
    pub expiry_check_interval: Duration,
}

pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(projection::LedgerProjection)]
}

pub struct Billing {
    partitions: Vec<(Partition, eventlog::Log, bus::Subscription, bus::Subscription)>,
    expiry_check_interval: Duration,
}

impl Billing {
    pub async fn build(options: Options) -> Result<Self, Error> {
        let mut partitions = Vec::with_capacity(options.partitions.len());
        for &number in &options.partitions {
            assert!(number < options.partitioning.count(), "partition {number} out of range");
            let log = options.store.log(NAMESPACE, number, projections())?;
            let partition = Partition::open(options.partitioning, log.clone())?;
            let subject = bus::subjects::billing_commands(number);
            bus::ensure_unserved(options.bus.as_ref(), &subject).await?;
            let commands = options.bus.subscribe(&subject).await?;
            let queries = options.bus.subscribe(&bus::subjects::billing_queries(number)).await?;
            partitions.push((partition, log, commands, queries));
        }
        tracing::info!(partitions = partitions.len(), "billing ready");
        Ok(Self { partitions, expiry_check_interval: options.expiry_check_interval })
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (partition, log, commands, queries) in self.partitions {
            tasks.spawn(partition.run(commands, self.expiry_check_interval, stop_rx.clone()));
            tasks.spawn(queries::serve(log, queries, stop_rx.clone()));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}
