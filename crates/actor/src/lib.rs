//! The plumbing every partition actor shares (the orchestrator's and billing's): an aggregate
//! folded from its stream, the partition's id sequence, the clock, answering a request only
//! once the events it appended are durable, the request context ([`RequestContext`]), and
//! the service around the actors ([`service`]: opening the owned partitions, running their
//! command and query loops).

mod request;
pub mod service;

pub use request::{REQUEST_ID_HEADER, RequestContext};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use domain::Timestamp;
use domain::ids::{IdSequence, PartitionEvent, Partitioning};
use eventlog::{ExpectedVersion, Log, NewEvent, Pending, StreamAppend};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The partition's id reservations.
pub const IDS_STREAM: &str = "partition/ids";

/// An aggregate's state and the stream version it was folded to, which the next append expects.
#[derive(Debug, Default)]
pub struct Folded<S> {
    pub state: S,
    pub version: u64,
}

impl<S> Folded<S> {
    /// Folds in events that were just appended.
    pub fn advance<E>(&mut self, events: &[E], apply: impl Fn(&mut S, &E)) {
        for event in events {
            apply(&mut self.state, event);
        }
        self.version += events.len() as u64;
    }
}

/// Reads a stream and folds it into a fresh state.
pub fn fold<S: Default, E: DeserializeOwned>(
    log: &Log,
    stream: &str,
    apply: impl Fn(&mut S, &E),
) -> Result<Folded<S>, eventlog::Error> {
    let events = log.read_stream(stream, 1)?;
    let mut state = S::default();
    for recorded in &events {
        apply(&mut state, &recorded.decode::<E>()?);
    }
    Ok(Folded { state, version: events.len() as u64 })
}

/// The partition's id sequence, resumed after the last block it reserved.
pub fn resume_ids(log: &Log, partitioning: Partitioning) -> Result<IdSequence, eventlog::Error> {
    let folded = fold(log, IDS_STREAM, |until: &mut u64, e: &PartitionEvent| match e {
        PartitionEvent::IdBlockReserved { until_seq } => *until = *until_seq,
    })?;
    Ok(IdSequence::resume(partitioning, log.partition(), folded.state))
}

/// The append that records a block of ids reserved since the last call, to go in the same
/// atomic append as the events that use the ids.
pub fn id_reservation(ids: &mut IdSequence) -> Option<StreamAppend> {
    let until_seq = ids.take_new_reservation()?;
    let event = PartitionEvent::IdBlockReserved { until_seq };
    Some(StreamAppend {
        stream: IDS_STREAM.to_owned(),
        expected: ExpectedVersion::Any,
        events: vec![encode(event.event_type(), &event)],
    })
}

pub fn encode<E: Serialize>(event_type: &str, event: &E) -> NewEvent {
    NewEvent::encode(event_type, event).expect("domain events always encode")
}

/// Where an actor reads the time; decisions get it through `Ctx` or as an argument. Passed in,
/// so that a partition can run on simulated time (unit tests, the deterministic simulation).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// The wall clock, shared.
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// Simulated time: it moves only when told to. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn starting_at(at: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(at.0)))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the time to `at`, never backwards.
    pub fn advance_to(&self, at: Timestamp) {
        self.0.fetch_max(at.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Answers a request once what it rests on is durable, without holding up the actor: it goes on
/// deciding the next commands, whose appends share the same flush. `durable` is the append the
/// decision made or, for a decision that appended nothing (a command found already done), the
/// log's [`Log::barrier`]: an acknowledgement never runs ahead of the state it reports.
pub fn reply_when_durable(
    request: bus::Message,
    durable: Pending,
    reply: Bytes,
    on_storage_error: impl FnOnce(eventlog::Error) -> Bytes + Send + 'static,
) {
    reply_all_when_durable(vec![request], durable, reply, on_storage_error);
}

/// Answers every one of `requests` (that one decision answers alike) as [`reply_when_durable`]
/// answers one.
pub fn reply_all_when_durable(
    requests: Vec<bus::Message>,
    durable: Pending,
    reply: Bytes,
    on_storage_error: impl FnOnce(eventlog::Error) -> Bytes + Send + 'static,
) {
    tokio::spawn(async move {
        let reply = match durable.durable().await {
            Ok(_) => reply,
            Err(e) => {
                tracing::error!(error = %e, "an append could not be made durable");
                on_storage_error(e)
            }
        };
        for request in requests {
            respond(request, reply.clone()).await;
        }
    });
}

/// Answers at once: a refusal (it acknowledges nothing, so nothing has to be durable first), or
/// an acknowledgement whose durability the caller has awaited already.
pub fn reply_now(request: bus::Message, reply: Bytes) {
    tokio::spawn(respond(request, reply));
}

async fn respond(request: bus::Message, reply: Bytes) {
    if let Err(e) = request.respond(reply).await {
        tracing::warn!(error = %e, "could not answer a request");
    }
}
