//! The messaging seam between services: request/reply and publish/subscribe behind one trait,
//! over NATS ([`NatsBus`]) or inside one process ([`InProcessBus`]). Subject names live here too.

mod inprocess;
mod nats;
pub mod subjects;
pub mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use inprocess::InProcessBus;
pub use nats::{NatsAuth, NatsBus, NatsOptions, NatsTls};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nobody subscribes to the subject: the owner of a partition is down or not yet started.
    #[error("no responders on {0}")]
    NoResponders(String),
    /// A responder got the request but did not answer in time.
    #[error("request on {0} timed out")]
    TimedOut(String),
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Message headers, such as the request id that follows a request through every service.
pub type Headers = BTreeMap<String, String>;

/// The messaging operations every service uses. Cheap to clone behind an `Arc`.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends a request and waits for the first reply, or fails with
    /// [`Error::NoResponders`] or [`Error::TimedOut`]. Records its latency and outcome, whatever
    /// the transport.
    async fn request(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let started = std::time::Instant::now();
        let outcome = self.exchange(subject, headers, payload, timeout).await;
        observe_request(subject, started, &outcome);
        outcome
    }

    /// The transport's part of [`Bus::request`]: one request and its first reply.
    async fn exchange(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error>;

    /// Sends a message to every current subscriber; nobody listening is not an error.
    async fn publish(&self, subject: &str, headers: &Headers, payload: Bytes) -> Result<(), Error>;

    /// Subscribes to a subject, which may use NATS wildcards (`*` one token, `>` the rest).
    async fn subscribe(&self, subject: &str) -> Result<Subscription, Error>;
}

pub type SharedBus = Arc<dyn Bus>;

/// Checks that nobody serves `subject` yet, before a worker takes it over: a partition must
/// have one owner. Anyone answering, or holding the request without answering, owns it.
/// (Two workers starting at the same instant can both pass; the check catches a worker started
/// with partitions another already owns, the usual mistake.)
pub async fn ensure_unserved(bus: &dyn Bus, subject: &str) -> Result<(), Error> {
    match bus.request(subject, &Headers::new(), Bytes::new(), Duration::from_millis(500)).await {
        Err(Error::NoResponders(_)) => Ok(()),
        Err(Error::Unavailable(e)) => Err(Error::Unavailable(e)),
        Ok(_) | Err(Error::TimedOut(_)) => {
            Err(Error::Unavailable(format!("{subject} is already served by another worker")))
        }
    }
}

/// A delivered message. Answer a request with [`Message::respond`].
#[derive(Debug)]
pub struct Message {
    pub subject: String,
    pub headers: Headers,
    pub payload: Bytes,
    reply: Option<ReplyTo>,
}

#[derive(Debug)]
enum ReplyTo {
    Local(oneshot::Sender<Bytes>),
    Nats { client: async_nats::Client, subject: async_nats::Subject },
}

impl Message {
    /// A request delivered by hand, and where its answer arrives: for a caller that drives a
    /// service's inbox itself (the deterministic simulation), as the in-process bus would.
    pub fn local_request(subject: &str, headers: Headers, payload: Bytes) -> (Self, oneshot::Receiver<Bytes>) {
        let (tx, rx) = oneshot::channel();
        (Self { subject: subject.to_owned(), headers, payload, reply: Some(ReplyTo::Local(tx)) }, rx)
    }

    pub fn is_request(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers the request this message carried. Answering a plain publish does nothing.
    pub async fn respond(self, payload: Bytes) -> Result<(), Error> {
        match self.reply {
            None => Ok(()),
            Some(ReplyTo::Local(tx)) => {
                // The requester may have timed out and gone; that is its concern.
                let _ = tx.send(payload);
                Ok(())
            }
            Some(ReplyTo::Nats { client, subject }) => {
                client.publish(subject, payload).await.map_err(|e| Error::Unavailable(e.to_string()))
            }
        }
    }
}

/// Messages on a subscription, in the order they arrived. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    messages: mpsc::Receiver<Message>,
}

impl Subscription {
    /// Bounds how many delivered messages may wait for a slow subscriber.
    pub const CAPACITY: usize = 1024;

    /// The next message, or `None` once the bus has closed the subscription.
    pub async fn next(&mut self) -> Option<Message> {
        self.messages.recv().await
    }
}

/// A subject with its numeric tokens (partitions, org ids) wildcarded, for metric labels that
/// stay few.
pub fn subject_kind(subject: &str) -> String {
    subject
        .split('.')
        .map(|t| if t.bytes().all(|b| b.is_ascii_digit()) { "*" } else { t })
        .collect::<Vec<_>>()
        .join(".")
}

/// Records a request's latency and outcome.
fn observe_request(subject: &str, started: std::time::Instant, outcome: &Result<Bytes, Error>) {
    let outcome = match outcome {
        Ok(_) => "ok",
        Err(Error::NoResponders(_)) => "no_responders",
        Err(Error::TimedOut(_)) => "timed_out",
        Err(Error::Unavailable(_)) => "unavailable",
    };
    metrics::histogram!("bus_request_duration_seconds", "subject" => subject_kind(subject), "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

/// Whether a subject matches a subscription pattern with NATS wildcards.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pattern_tokens = pattern.split('.');
    let mut subject_tokens = subject.split('.');
    loop {
        match (pattern_tokens.next(), subject_tokens.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("sb.orch.3.cmd", "sb.orch.3.cmd"));
        assert!(subject_matches("sb.orch.*.cmd", "sb.orch.3.cmd"));
        assert!(subject_matches("sb.evt.>", "sb.evt.7.call.9"));
        assert!(!subject_matches("sb.evt.>", "sb.evt"));
        assert!(!subject_matches("sb.orch.*.cmd", "sb.orch.3.query"));
        assert!(!subject_matches("sb.orch.3", "sb.orch.3.cmd"));
    }
}
