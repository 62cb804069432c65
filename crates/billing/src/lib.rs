//! The billing service: each org's prepaid ledger, owned by the worker of the org's partition.
//! Commands (reserve, settle, void, top up, set rate, ask for a top-up, set auto-reload) go
//! through one actor per partition, in order; reads come from the partition's projections.
//! Reservations that nobody settles are released by the actor's expiry timer. Charges go
//! through the payment provider ([`payments`]) once recorded.

mod partition;
pub mod payments;
pub mod projection;
pub mod queries;
pub mod streams;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actor::SharedClock;
use actor::service::{Served, Service};
use bus::SharedBus;
use domain::Partitioning;
use eventlog::{Projection, Store};

pub use partition::{Partition, Payments};

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
    /// Where the partitions read the time: reservations expire by it.
    pub clock: SharedClock,
    /// The payment provider top-ups and auto-reload charge through.
    pub payments: Payments,
}

pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(projection::LedgerProjection)]
}

pub struct Billing {
    partitions: Vec<Served<Partition>>,
    expiry_check_interval: Duration,
    clock: SharedClock,
    payments: Payments,
}

impl Billing {
    pub async fn build(options: Options) -> Result<Self, Error> {
        let service = Service {
            name: "billing",
            namespace: NAMESPACE,
            partitioning: options.partitioning,
            partitions: &options.partitions,
            store: &options.store,
            bus: &options.bus,
            projections,
            command_subject: bus::subjects::billing_commands,
            query_subject: bus::subjects::billing_queries,
        };
        let partitions = service
            .open(|log| Ok::<_, Error>(Partition::open(options.partitioning, log, options.clock.clone())?))
            .await?;
        Ok(Self {
            partitions,
            expiry_check_interval: options.expiry_check_interval,
            clock: options.clock,
            payments: options.payments,
        })
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let expiry_check = self.expiry_check_interval;
        let (clock, payments) = (self.clock, self.payments);
        actor::service::run(
            self.partitions,
            shutdown,
            |partition, commands, stop| partition.run(commands, expiry_check, payments.clone(), stop),
            |log, queries, stop| queries::serve(log, queries, clock.clone(), stop),
        )
        .await;
        Ok(())
    }
}
