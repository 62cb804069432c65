use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::{Bus, Error, Headers, Message, ReplyTo, Subscription, subject_matches};

/// A bus inside one process, for the single-process mode and fast tests. Same semantics as
/// NATS where they matter: a request goes to one subscriber, a publish to all, and a request
/// that nobody subscribes to fails at once with "no responders".
/// Subscription patterns and where their messages go.
type Subscribers = Vec<(String, mpsc::Sender<Message>)>;

#[derive(Clone, Default)]
pub struct InProcessBus {
    subscribers: Arc<RwLock<Subscribers>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// The live subscribers of a subject, forgetting those that were dropped.
    fn subscribers_of(&self, subject: &str) -> Vec<mpsc::Sender<Message>> {
        let mut subscribers = self.subscribers.write().expect("bus lock poisoned");
        subscribers.retain(|(_, tx)| !tx.is_closed());
        subscribers.iter().filter(|(pattern, _)| subject_matches(pattern, subject)).map(|(_, tx)| tx.clone()).collect()
    }
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    async fn exchange(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let Some(subscriber) = self.subscribers_of(subject).into_iter().next() else {
            return Err(Error::NoResponders(subject.to_owned()));
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let message = Message {
            subject: subject.to_owned(),
            headers: headers.clone(),
            payload,
            reply: Some(ReplyTo::Local(reply_tx)),
        };
        let exchange = async {
            subscriber.send(message).await.map_err(|_| Error::NoResponders(subject.to_owned()))?;
            // A responder that drops the request without answering never will: as on NATS,
            // the requester learns it as a timeout, only sooner.
            reply_rx.await.map_err(|_| Error::TimedOut(subject.to_owned()))
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| Error::TimedOut(subject.to_owned()))?
    }

    async fn publish(&self, subject: &str, headers: &Headers, payload: Bytes) -> Result<(), Error> {
        self.deliver(subject, headers, payload);
        Ok(())
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, Error> {
        let (tx, rx) = mpsc::channel(Subscription::CAPACITY);
        self.subscribers.write().expect("bus lock poisoned").push((subject.to_owned(), tx));
        Ok(Subscription { messages: rx })
    }
}

impl InProcessBus {
    fn deliver(&self, subject: &str, headers: &Headers, payload: Bytes) {
        for subscriber in self.subscribers_of(subject) {
            let message = Message {
                subject: subject.to_owned(),
                headers: headers.clone(),
                payload: payload.clone(),
                reply: None,
            };
            // Like NATS, a subscriber too slow to keep up loses messages rather than
            // stalling the publisher.
            if subscriber.try_send(message).is_err() {
                tracing::warn!(subject, "slow subscriber dropped a published message");
            }
        }
    }
}
