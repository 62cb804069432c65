//! What a partitioned service (the orchestrator, billing) does around its actors: for every
//! partition this worker owns, open its log, make sure no other worker serves it, and subscribe
//! to its command and query subjects; then run each partition's command loop and query loop
//! until shutdown, and wait for them all to stop.

use std::future::Future;
use std::sync::Arc;

use bus::SharedBus;
use domain::Partitioning;
use eventlog::{Log, Projection, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Which partitions of one service this worker serves, and where.
pub struct Service<'a> {
    /// The service's name in logs.
    pub name: &'static str,
    /// The service's logs in the shared store.
    pub namespace: &'static str,
    pub partitioning: Partitioning,
    /// The partitions this worker owns. No other worker of the service may own any of them.
    pub partitions: &'a [u32],
    pub store: &'a Store,
    pub bus: &'a SharedBus,
    /// The projections every partition of the service maintains.
    pub projections: fn() -> Vec<Arc<dyn Projection>>,
    /// The subjects a partition takes its commands and its queries on.
    pub command_subject: fn(u32) -> String,
    pub query_subject: fn(u32) -> String,
}

/// One owned partition, ready to serve: its actor, its log (which the query loop reads beside
/// the actor) and the subscriptions of its subjects.
pub struct Served<P> {
    pub actor: P,
    pub log: Log,
    pub commands: bus::Subscription,
    pub queries: bus::Subscription,
}

impl Service<'_> {
    /// Opens every owned partition with `open_actor` and subscribes to its subjects. Refuses
    /// (with the bus's error) a partition another worker serves already.
    pub async fn open<P, E>(&self, mut open_actor: impl FnMut(Log) -> Result<P, E>) -> Result<Vec<Served<P>>, E>
    where
        E: From<eventlog::Error> + From<bus::Error>,
    {
        let mut served = Vec::with_capacity(self.partitions.len());
        for &number in self.partitions {
            assert!(number < self.partitioning.count(), "partition {number} out of range");
            let log = self.store.log(self.namespace, number, (self.projections)())?;
            let actor = open_actor(log.clone())?;
            let subject = (self.command_subject)(number);
            bus::ensure_unserved(self.bus.as_ref(), &subject).await?;
            let commands = self.bus.subscribe(&subject).await?;
            let queries = self.bus.subscribe(&(self.query_subject)(number)).await?;
            served.push(Served { actor, log, commands, queries });
        }
        tracing::info!(partitions = served.len(), "{} ready", self.name);
        Ok(served)
    }
}

/// Runs every partition's command loop (its actor) and query loop until `shutdown` resolves,
/// then tells them all to stop and waits until they have. Each loop gets a receiver that
/// changes when it must stop.
pub async fn run<P, C, Q>(
    partitions: Vec<Served<P>>,
    shutdown: impl Future<Output = ()> + Send,
    command_loop: impl Fn(P, bus::Subscription, watch::Receiver<bool>) -> C,
    query_loop: impl Fn(Log, bus::Subscription, watch::Receiver<bool>) -> Q,
) where
    C: Future<Output = ()> + Send + 'static,
    Q: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for Served { actor, log, commands, queries } in partitions {
        tasks.spawn(command_loop(actor, commands, stop_rx.clone()));
        tasks.spawn(query_loop(log, queries, stop_rx.clone()));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}
