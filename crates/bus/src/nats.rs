use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::{Bus, Error, Headers, Message, ReplyTo, Subscription};

/// How to reach a NATS server and prove who we are. `Debug` never shows a secret.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// `nats://host:port` (or `tls://host:port`, which requires TLS). Credentials written into
    /// the URL work too, but are better given in `auth`.
    pub url: String,
    pub auth: NatsAuth,
    pub tls: NatsTls,
}

impl NatsOptions {
    /// A server that asks for no credentials, over plain TCP.
    pub fn plain(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }
}

/// The credentials a server's `authorization` block asks for.
#[derive(Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    Token(String),
    UserPassword {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword {{ user: {user:?}, password: <redacted> }}"),
        }
    }
}

/// TLS to the server: required as soon as any of it is given.
#[derive(Clone, Debug, Default)]
pub struct NatsTls {
    /// Requires TLS, trusting the system's roots unless `ca_file` is given.
    pub required: bool,
    /// PEM certificates of the authorities that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// A PEM certificate and its PEM private key, for a server that verifies its clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsTls {
    fn wanted(&self) -> bool {
        self.required || self.ca_file.is_some() || self.client_cert.is_some()
    }
}

/// The bus over a NATS server. The client reconnects by itself after a lost connection;
/// requests made meanwhile fail with [`Error::Unavailable`] or [`Error::TimedOut`].
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
}

impl NatsBus {
    /// Connects, failing at once if the server cannot be reached or refuses the credentials.
    /// Errors name the server without the credentials.
    pub async fn connect(options: &NatsOptions) -> Result<Self, Error> {
        let mut connect = async_nats::ConnectOptions::new().name("switchboard");
        connect = match &options.auth {
            NatsAuth::None => connect,
            NatsAuth::Token(token) => connect.token(token.clone()),
            NatsAuth::UserPassword { user, password } => connect.user_and_password(user.clone(), password.clone()),
        };
        if options.tls.wanted() {
            connect = connect.require_tls(true);
        }
        if let Some(ca) = &options.tls.ca_file {
            connect = connect.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &options.tls.client_cert {
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        let server = without_credentials(&options.url);
        let client = connect.connect(options.url.as_str()).await.map_err(|e| {
            Error::Unavailable(match e.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation | async_nats::ConnectErrorKind::Authentication => {
                    format!("the NATS server at {server} refused our credentials ({e})")
                }
                async_nats::ConnectErrorKind::Tls => format!("TLS to the NATS server at {server} failed: {e}"),
                _ => format!("connecting to {server}: {e}"),
            })
        })?;
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

/// A server URL fit for a log line or an error: any `user:password@` or `token@` in it hidden.
fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
            format!("{prefix}<credentials>@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{NatsAuth, without_credentials};

    #[test]
    fn urls_and_credentials_are_shown_without_secrets() {
        assert_eq!(without_credentials("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(without_credentials("nats://bob:s3cret@nats:4222"), "nats://<credentials>@nats:4222");
        assert_eq!(without_credentials("tls://tok@nats:4222/x"), "tls://<credentials>@nats:4222/x");
        let shown = format!("{:?}", NatsAuth::UserPassword { user: "bob".into(), password: "s3cret".into() });
        assert!(shown.contains("bob") && !shown.contains("s3cret"), "{shown}");
        assert!(!format!("{:?}", NatsAuth::Token("s3cret".into())).contains("s3cret"));
    }
}
