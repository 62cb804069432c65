//! What `dev` and `gateway` share about serving HTTP: the admin listener and the bounds on
//! clients.

use std::time::Duration;

use anyhow::Context;
use gateway::HttpLimits;

#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// Serves the admin API (`/admin/v1/...`) and `GET /metrics` on this address alone; the
    /// main listener then answers them 404. Without it the main listener serves them too.
    #[arg(long, env = "SWITCHBOARD_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// How long a client may take to send a request's head; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, default_value_t = millis(HttpLimits::default().header_read_timeout), value_parser = at_least_one::<u64>())]
    pub http_header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body, from its head; past it the request
    /// is answered 408 and the connection closed.
    #[arg(long, default_value_t = millis(HttpLimits::default().body_read_timeout), value_parser = at_least_one::<u64>())]
    pub http_body_read_timeout_ms: u64,
    /// Open connections per listener; past it new connections wait to be accepted.
    #[arg(long, default_value_t = HttpLimits::default().max_connections, value_parser = at_least_one::<usize>())]
    pub http_max_connections: usize,
}

/// Zero would close every connection at once, or never accept one.
fn at_least_one<T: TryFrom<u64> + Clone + Send + Sync + 'static>() -> clap::builder::RangedU64ValueParser<T> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("the default timeouts fit u64 milliseconds")
}

impl Default for HttpArgs {
    fn default() -> Self {
        let limits = HttpLimits::default();
        Self {
            admin_listen: None,
            http_header_read_timeout_ms: millis(limits.header_read_timeout),
            http_body_read_timeout_ms: millis(limits.body_read_timeout),
            http_max_connections: limits.max_connections,
        }
    }
}

impl HttpArgs {
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(self.http_header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.http_body_read_timeout_ms),
            max_connections: self.http_max_connections,
        }
    }

    /// Binds the main listener on `listen` and, when asked for, the admin listener.
    pub async fn bind(&self, listen: &str) -> anyhow::Result<gateway::Listeners> {
        let public = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
        let admin = match &self.admin_listen {
            Some(admin) => Some(
                tokio::net::TcpListener::bind(admin)
                    .await
                    .with_context(|| format!("listening on {admin} for the admin API"))?,
            ),
            None => None,
        };
        Ok(gateway::Listeners { public, admin })
    }
}

/// Prints the admin listener's ready line (before the main one, which scripts wait for, so that
/// both are up once that is printed).
pub fn print_admin_ready(admin: Option<std::net::SocketAddr>) {
    if let Some(addr) = admin {
        println!("switchboard admin listening on http://{addr}");
    }
}
