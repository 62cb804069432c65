//! The control plane kept apart from the public API, and slow clients bounded: raw TCP against a
//! gateway's own listener (in a cluster, not through nginx, which has timeouts of its own).

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_tests::{ADMIN_TOKEN, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the issue allows a partial request at most, with the defaults.
const PARTIAL_REQUEST_CLOSED_WITHIN: Duration = Duration::from_secs(15);

async fn connect(url: &str) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.expect("connecting to the gateway")
}

/// Reads until the server closes the connection, failing past `within`; returns what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(_) => String::from_utf8_lossy(&got).into_owned(),
        Err(_) => panic!("the connection was still open after {within:?}; it sent {:?}", String::from_utf8_lossy(&got)),
    }
}

#[tokio::test]
async fn a_connection_that_sends_half_a_request_line_is_closed_within_15_s() {
    let server = Server::start();
    let mut stream = connect(&server.gateway_url()).await;
    stream.write_all(b"GET /v1/heal").await.unwrap();
    let started = Instant::now();
    read_until_closed(&mut stream, PARTIAL_REQUEST_CLOSED_WITHIN).await;
    // Closed by the header read timeout, not by anything the half request line did.
    assert!(started.elapsed() >= Duration::from_secs(5), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_request_whose_body_stalls_is_answered_408_and_closed_within_15_s() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let mut stream = connect(&server.gateway_url()).await;
    let head = format!(
        "POST /v1/agents HTTP/1.1\r\nHost: switchboard\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\": \"Sup",
        org.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, PARTIAL_REQUEST_CLOSED_WITHIN).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    // Nothing was created from half a body.
    assert_eq!(server.get("/v1/agents", &org.key).await.expect(200), json!([]));
}

#[tokio::test]
async fn with_an_admin_listener_the_public_listener_answers_admin_paths_and_metrics_as_unknown() {
    let server = Server::start_with_admin_listener();
    assert_ne!(server.admin_url(), server.url);
    // The harness sends admin calls to the admin listener.
    let org = server.create_org("Acme").await;
    let http = reqwest::Client::new();
    let public = [
        http.post(format!("{}/admin/v1/orgs", server.url)).bearer_auth(ADMIN_TOKEN).json(&json!({ "name": "Evil" })),
        http.post(format!("{}/admin/v1/orgs/{}/credits", server.url, org.id))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "amount_cents": 100000, "reference": "free-money" })),
        http.get(format!("{}/metrics", server.url)),
    ];
    for request in public {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap(),
            json!({ "detail": "Not found.", "code": "not_found" })
        );
    }
    let balance = server.get("/v1/billing", &org.key).await.expect(200);
    assert_eq!(balance["balance_cents"], 0, "{balance}");
    let metrics = http.get(format!("{}/metrics", server.admin_url())).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    // The admin listener serves no customer API.
    let r = http.get(format!("{}/v1/agents", server.admin_url())).bearer_auth(&org.key).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
