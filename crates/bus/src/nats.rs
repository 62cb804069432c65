use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::{Bus, Error, Headers, Message, ReplyTo, Subscription};

/// The bus over a NATS server. The client reconnects by itself after a lost connection;
/// requests made meanwhile fail with [`Error::Unavailable`] or [`Error::TimedOut`].
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
}

impl NatsBus {
    /// Connects, failing at once if the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = async_nats::ConnectOptions::new()
            .name("switchboard")
            .connect(url)
            .await
            .map_err(|e| Error::Unavailable(format!("connecting to {url}: {e}")))?;
        Ok(Self { client })
    }

    /// Waits until everything sent so far has reached the server.
    pub async fn flush(&self) -> Result<(), Error> {
        self.client.flush().await.map_err(|e| Error::Unavailable(e.to_string()))
    }
}

fn to_nats_headers(headers: &Headers) -> Option<async_nats::HeaderMap> {
    if headers.is_empty() {
        return None;
    }
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(name.as_str(), value.as_str());
    }
    Some(map)
}

fn from_nats_headers(headers: Option<&async_nats::HeaderMap>) -> Headers {
    let mut out = Headers::new();
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            if let Some(value) = values.first() {
                out.insert(name.to_string(), value.to_string());
            }
        }
    }
    out
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn exchange(
        &self,
        subject: &str,
        headers: &Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let mut request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
        if let Some(h) = to_nats_headers(headers) {
            request = request.headers(h);
        }
        match self.client.send_request(subject.to_owned(), request).await {
            Ok(reply) => Ok(reply.payload),
            Err(e) => Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => Error::NoResponders(subject.to_owned()),
                async_nats::RequestErrorKind::TimedOut => Error::TimedOut(subject.to_owned()),
                _ => Error::Unavailable(e.to_string()),
            }),
        }
    }

    async fn publish(&self, subject: &str, headers: &Headers, payload: Bytes) -> Result<(), Error> {
        let outcome = match to_nats_headers(headers) {
            Some(h) => self.client.publish_with_headers(subject.to_owned(), h, payload).await,
            None => self.client.publish(subject.to_owned(), payload).await,
        };
        outcome.map_err(|e| Error::Unavailable(e.to_string()))
    }

    async fn subscribe(&self, subject: &str) -> Result<Subscription, Error> {
        let mut subscriber =
            self.client.subscribe(subject.to_owned()).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        // The server must know of the subscription before we say it exists, or a request sent
        // right after could find no responders.
        self.flush().await?;
        let (tx, rx) = mpsc::channel(Subscription::CAPACITY);
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some(m) = subscriber.next().await {
                let message = Message {
                    subject: m.subject.to_string(),
                    headers: from_nats_headers(m.headers.as_ref()),
                    payload: m.payload,
                    reply: m.reply.map(|subject| ReplyTo::Nats { client: client.clone(), subject }),
                };
                if tx.send(message).await.is_err() {
                    // The subscription was dropped; dropping `subscriber` unsubscribes.
                    break;
                }
            }
        });
        Ok(Subscription { messages: rx })
    }
}
