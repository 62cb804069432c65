//! The HTTP server under the router: hyper's HTTP/1 connection, with every way a client can hold
//! a connection open bounded. `axum::serve` sets no timer, so a client that sent half a request
//! line kept its connection (and its task) for ever.
//!
//! - Header read time: a request's head must arrive within [`HttpLimits::header_read_timeout`].
//!   hyper starts that clock whenever it waits for a head, so it also bounds how long an idle
//!   keep-alive connection stays open between requests.
//! - Body read time: a request's body must arrive within [`HttpLimits::body_read_timeout`] of
//!   its head; past it, reading the body fails, the request is answered 408 and the connection
//!   closed (a handler that never reads the body answers at once, and hyper then closes a
//!   connection whose body was left unread).
//! - Open connections: at most [`HttpLimits::max_connections`]. Past it the server stops
//!   accepting, so new connections wait in the kernel's listen backlog until one closes (as Go's
//!   `netutil.LimitListener` does); the two timeouts guarantee that a slow client gives its
//!   place up soon. Refusing instead would turn a burst that the backlog absorbs into errors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long and how many: the bounds on what clients can hold. See the module's documentation.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// Ten seconds each: a partial request is closed well within 15 s, and nothing this API takes
    /// (64 KiB at most) needs longer on any working link.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// What reading a request body fails with once its time is up.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether `error`, or an error it wraps, is a body that did not arrive in time.
    pub fn caused(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.is::<Self>() {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the requests under way to finish (idle connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One permit per open connection; a permit is taken before accepting, so that past the bound
    // connections wait in the backlog rather than in memory.
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Counted, not logged: under a flood a line per wait would drown the logs.
                metrics::counter!("http_connections_waited_total").increment(1);
                tokio::select! {
                    permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let body_read_timeout = limits.body_read_timeout;
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let request = request.map(|body| Body::new(Deadline::new(body, body_read_timeout)));
            tower_service::Service::call(&mut router.clone(), request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        metrics::gauge!("http_connections_open").increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients that went away end up here; they are the client's doing.
                tracing::debug!(error = %e, "http connection ended");
            }
            metrics::gauge!("http_connections_open").decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept. Running out of file descriptors is the server's condition, not one client's:
/// wait a moment for connections to close rather than spin on the error.
async fn accept_failed(error: std::io::Error) {
    let per_connection = matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted
    );
    if !per_connection {
        tracing::error!(error = %error, "accepting a connection failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
struct Deadline<B> {
    inner: B,
    expires: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        Self { inner, expires: Box::pin(tokio::time::sleep(timeout)) }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.expires.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
