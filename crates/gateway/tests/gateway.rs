//! The gateway as a service: built on listeners bound to port 0, spoken to over raw TCP, on an
//! in-process bus that nothing serves (the routes used here do not reach a service).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::{Gateway, HttpLimits, Listeners, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEALTHZ: &[u8] = b"GET /v1/healthz HTTP/1.1\r\nHost: test\r\n\r\n";

struct Running {
    public: std::net::SocketAddr,
    admin: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops the gateway as a SIGTERM would, and checks it stopped cleanly.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("the gateway stops within 10 s")
            .expect("the gateway's task")
            .expect("the gateway stops without an error");
    }
}

async fn start(limits: HttpLimits, admin_listener: bool) -> Running {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = if admin_listener { Some(TcpListener::bind("127.0.0.1:0").await.unwrap()) } else { None };
    let options = Options {
        bus: Arc::new(bus::InProcessBus::new()),
        partitioning: domain::Partitioning::new(8),
        admin_token: "a-test-admin-token".into(),
        request_timeout: Duration::from_millis(200),
        metrics: Some(Arc::new(|| "# metrics\n".to_owned())),
        http_limits: limits,
        egress: egress::Policy::default(),
        sim_carrier: true,
        sip_public_host: None,
    };
    let gateway = Gateway::build(options, Listeners { public, admin });
    let (public, admin) = (gateway.local_addr().unwrap(), gateway.admin_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway.run(async {
        let _ = stopped.await;
    }));
    Running { public, admin, stop: Some(stop), served }
}

/// Reads what the server sends until it has a whole response head, closes, or `within` passes.
/// Returns what was read, and whether the connection was closed.
async fn read_for(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    return (String::from_utf8_lossy(&got).into_owned(), false);
                }
            }
        }
    }
}

async fn status_of(addr: std::net::SocketAddr, method: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_for(&mut stream, Duration::from_secs(10)).await;
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {head:?}"))
}

fn limits() -> HttpLimits {
    HttpLimits { header_read_timeout: Duration::from_millis(500), ..HttpLimits::default() }
}

#[tokio::test]
async fn past_the_connection_bound_a_new_connection_waits_until_one_closes() {
    let gateway = start(HttpLimits { max_connections: 2, ..HttpLimits::default() }, false).await;
    // Two idle connections take both places.
    let holders =
        [TcpStream::connect(gateway.public).await.unwrap(), TcpStream::connect(gateway.public).await.unwrap()];
    let mut waiting = TcpStream::connect(gateway.public).await.unwrap();
    waiting.write_all(HEALTHZ).await.unwrap();
    let (early, closed) = read_for(&mut waiting, Duration::from_millis(500)).await;
    assert_eq!((early.as_str(), closed), ("", false), "the third connection was served past the bound");

    drop(holders);
    let (head, _) = read_for(&mut waiting, Duration::from_secs(10)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "once a place was free the waiting request was served: {head:?}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_half_a_request_line_is_closed_after_the_header_read_timeout() {
    let gateway = start(limits(), false).await;
    let mut stream = TcpStream::connect(gateway.public).await.unwrap();
    stream.write_all(b"GET /v1/hea").await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_for(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the server kept a connection with half a request line for 10 s");
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before its time: {:?}", started.elapsed());
    gateway.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let gateway = start(limits(), false).await;
    let mut stream = TcpStream::connect(gateway.public).await.unwrap();
    stream.write_all(HEALTHZ).await.unwrap();
    let (head, closed) = read_for(&mut stream, Duration::from_secs(10)).await;
    assert!(head.starts_with("HTTP/1.1 200") && !closed, "{head:?}");
    // The response's body may come in a read of its own; then nothing more until the close.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => assert!(Instant::now() < deadline, "the connection stayed open"),
            Err(_) => panic!("an idle keep-alive connection stayed open for 10 s"),
        }
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_its_connection_closed() {
    let gateway =
        start(HttpLimits { body_read_timeout: Duration::from_millis(500), ..HttpLimits::default() }, false).await;
    let mut stream = TcpStream::connect(gateway.public).await.unwrap();
    // Creating an org reads its body once the admin token is checked.
    let head = "POST /admin/v1/orgs HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer a-test-admin-token\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = read_for(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "a stalled body was not answered 408: {answer:?}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection of a stalled body stayed open");
    gateway.stop().await;
}

#[tokio::test]
async fn with_an_admin_listener_the_admin_api_and_metrics_are_served_there_alone() {
    let gateway = start(HttpLimits::default(), true).await;
    let admin = gateway.admin.expect("an admin listener");
    for (method, path) in [("GET", "/metrics"), ("POST", "/admin/v1/orgs"), ("GET", "/admin/v1/orgs/1")] {
        assert_eq!(status_of(gateway.public, method, path).await, 404, "{method} {path} on the public listener");
    }
    assert_eq!(status_of(admin, "GET", "/metrics").await, 200);
    // The admin API answers there (without the token: 401).
    assert_eq!(status_of(admin, "POST", "/admin/v1/orgs").await, 401);
    assert_eq!(status_of(admin, "GET", "/v1/healthz").await, 404, "the public API is not on the admin listener");
    assert_eq!(status_of(gateway.public, "GET", "/v1/healthz").await, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn without_an_admin_listener_the_main_listener_serves_everything() {
    let gateway = start(HttpLimits::default(), false).await;
    assert_eq!(gateway.admin, None);
    assert_eq!(status_of(gateway.public, "GET", "/metrics").await, 200);
    assert_eq!(status_of(gateway.public, "POST", "/admin/v1/orgs").await, 401);
    assert_eq!(status_of(gateway.public, "GET", "/v1/healthz").await, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn a_workers_metrics_listener_serves_the_render_and_nothing_else() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(gateway::serve_metrics(listener, Arc::new(|| "# worker metrics\n".to_owned()), async {
        let _ = stopped.await;
    }));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    assert!(response.ends_with("# worker metrics\n"), "the render is the body: {response:?}");
    assert_eq!(status_of(addr, "GET", "/v1/healthz").await, 404, "a worker serves no API");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), served).await.unwrap().unwrap().unwrap();
}
