//! Rate limits and request ids.

use std::collections::BTreeMap;

use serde_json::json;
use switchboard_tests::{ADMIN_TOKEN, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_gets_its_rate_limit_whatever_gateway_serves_it() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let r = server.get("/v1/agents", &org.key).await.expect(200);
    assert_eq!(r, json!([]));
    let first = server.get("/v1/agents", &org.key).await;
    assert_eq!(first.headers["x-ratelimit-limit"], "100");
    assert!(first.headers.contains_key("x-ratelimit-remaining") && first.headers.contains_key("x-ratelimit-reset"));
    // Every request made with the key counts and carries the headers, whatever it asks for.
    let bearer = switchboard_tests::bearer(&org.key);
    let mut remaining = first.headers["x-ratelimit-remaining"].to_str().unwrap().parse::<u32>().unwrap();
    for (method, path, status) in
        [("GET", "/v1/no-such-thing", 404), ("DELETE", "/v1/agents", 405), ("GET", "/v1/healthz", 200)]
    {
        let r = server.call(method, path, Some(&bearer), None).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert_eq!(r.headers["x-ratelimit-limit"], "100", "{method} {path}");
        let now: u32 = r.headers["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        // A new one-second window may have begun in between.
        assert!(now < remaining || now == 99, "{method} {path}: {now} left after {remaining}");
        remaining = now;
    }
    // Credentials that are presented must be valid, even where none are needed.
    let r = server.call("GET", "/v1/healthz", Some(&switchboard_tests::bearer("sk_live_nope")), None).await;
    assert_eq!((r.status, r.body["code"].as_str()), (401, Some("authentication_failed")));

    server
        .patch(&format!("/admin/v1/orgs/{}", org.id), ADMIN_TOKEN, json!({ "rate_limit_per_second": 5 }))
        .await
        .expect(200);
    // A burst through every gateway (in cluster mode, nginx spreads it over two): within any one
    // window, at most 5 pass.
    let mut burst = Vec::new();
    for _ in 0..40 {
        let (url, key) = (server.url.clone(), org.key.clone());
        burst.push(tokio::spawn(async move {
            reqwest::Client::new().get(format!("{url}/v1/agents")).bearer_auth(key).send().await.unwrap()
        }));
    }
    let mut passed_per_window: BTreeMap<String, u32> = BTreeMap::new();
    let mut limited = 0;
    for response in burst {
        let response = response.await.unwrap();
        let headers = response.headers().clone();
        assert_eq!(headers["x-ratelimit-limit"], "5");
        let window = headers["x-ratelimit-reset"].to_str().unwrap().to_owned();
        match response.status().as_u16() {
            200 => *passed_per_window.entry(window).or_default() += 1,
            429 => {
                limited += 1;
                assert_eq!(headers["x-ratelimit-remaining"], "0");
                let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=2).contains(&retry));
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["code"], "rate_limited", "distinct from the test-call limit's code");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(limited > 0, "a burst of 40 at 5 a second must be limited");
    for (window, passed) in &passed_per_window {
        assert!(*passed <= 5, "{passed} requests passed in the window ending {window}");
    }
    // Another key of the same org counts on its own; admin requests are not limited.
    let other_key =
        server.post(&format!("/admin/v1/orgs/{}/keys", org.id), ADMIN_TOKEN, json!({ "name": "b" })).await.expect(201);
    let r = server.get("/v1/agents", other_key["key"].as_str().unwrap()).await;
    assert_ne!(r.status, 429);
    server
        .patch(&format!("/admin/v1/orgs/{}", org.id), ADMIN_TOKEN, json!({ "rate_limit_per_second": 0 }))
        .await
        .expect(400);
}

#[tokio::test]
async fn request_ids_are_kept_or_made_returned_and_recorded_on_the_events_they_cause() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/agents", server.url))
        .bearer_auth(&org.key)
        .header("X-Request-Id", "trace-42")
        .json(&json!({ "name": "Traced", "prompt": "", "voice": "alloy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    assert_eq!(response.status(), 201);

    for (status, r) in [
        (404, server.get("/v1/agents/999999", &org.key).await),
        (401, server.call("GET", "/v1/agents", None, None).await),
        (200, server.call("GET", "/v1/healthz", None, None).await),
    ] {
        assert_eq!(r.status, status);
        let id = r.headers["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 32, "a made id: {id}");
    }

    // The id travels to the workers: the events a request causes carry it.
    let conn = server.post("/v1/voip-connections", &org.key, json!({ "provider": "sim" })).await.expect(201);
    server.post(&format!("/v1/voip-connections/{}/verify", conn["id"]), &org.key, json!({})).await.expect(200);
    let credit = format!("/admin/v1/orgs/{}/credits", org.id);
    server.post(&credit, ADMIN_TOKEN, json!({ "amount_cents": 500, "reference": "r" })).await.expect(201);
    server
        .post("/v1/phone-numbers", &org.key, json!({ "number": "+14155550100", "voip_connection_id": conn["id"] }))
        .await
        .expect(201);
    let agent =
        server.post("/v1/agents", &org.key, json!({ "name": "A", "prompt": "", "voice": "alloy" })).await.expect(201);
    let placed = reqwest::Client::new()
        .post(format!("{}/v1/call", server.url))
        .bearer_auth(&org.key)
        .header("X-Request-Id", "call-trace-7")
        .json(&json!({ "from_number": "+14155550100", "to_number": "+14155550123", "agent_id": agent["id"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let call: serde_json::Value = placed.json().await.unwrap();
    let events = server.get(&format!("/v1/calls/{}/events", call["call_id"]), &org.key).await.expect(200);
    assert_eq!(events[0]["type"], "call_requested");
    assert_eq!(events[0]["request_id"], "call-trace-7");
    // The funds were reserved under the same request id: billing's side of the work carries it.
    let funds = events.as_array().unwrap().iter().find(|e| e["type"] == "funds_reserved").unwrap();
    assert_eq!(funds["request_id"], "call-trace-7");
}

/// A POST with an `Idempotency-Key`: its status, headers and body.
pub(crate) async fn post_keyed(
    server: &Server,
    key: &str,
    idempotency_key: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().await.unwrap())
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_creates_once() {
    let mut server = Server::start();
    let org = server.create_org("Acme").await;
    let other = server.create_org("Other").await;

    let (status, headers, first) = post_keyed(
        &server,
        &org.key,
        "create-agent-1",
        "/v1/agents",
        json!({ "name": "Once", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!(status, 201);
    assert!(!headers.contains_key("idempotent-replayed"));
    let (status, headers, again) = post_keyed(
        &server,
        &org.key,
        "create-agent-1",
        "/v1/agents",
        json!({ "name": "Once", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(server.get("/v1/agents", &org.key).await.expect(200).as_array().unwrap().len(), 1);

    let (status, _, conflict) = post_keyed(
        &server,
        &org.key,
        "create-agent-1",
        "/v1/agents",
        json!({ "name": "Twice", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!((status, conflict["code"].as_str()), (409, Some("idempotency_conflict")));
    // Keys belong to their org.
    let (status, _, theirs) = post_keyed(
        &server,
        &other.key,
        "create-agent-1",
        "/v1/agents",
        json!({ "name": "Once", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!(status, 201);
    assert_ne!(theirs["id"], first["id"]);
    // A failure is an answer too, and replays as it was.
    let (status, _, invalid) = post_keyed(&server, &org.key, "bad-1", "/v1/agents", json!({ "voice": "foo" })).await;
    let (status_again, headers, invalid_again) =
        post_keyed(&server, &org.key, "bad-1", "/v1/agents", json!({ "voice": "foo" })).await;
    assert_eq!((status, status_again, &invalid), (400, 400, &invalid_again));
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, _, bad_key) = post_keyed(
        &server,
        &org.key,
        "has space",
        "/v1/agents",
        json!({ "name": "x", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!((status, bad_key["code"].as_str()), (400, Some("invalid_idempotency_key")));

    // Keys are durable.
    server.kill();
    server.restart();
    let (status, headers, after) = post_keyed(
        &server,
        &org.key,
        "create-agent-1",
        "/v1/agents",
        json!({ "name": "Once", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!((status, &after), (201, &first));
    assert_eq!(headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_call_retried_after_the_connection_was_cut_is_placed_once() {
    use tokio::io::AsyncWriteExt;

    let server = Server::start_with(&["--sim-ring-ms", "100", "--sim-talk-ms", "600"]);
    let org = server.org_ready_to_call("Acme", 500, "+14155550100").await.org;

    // The client sends the request and hangs up before any answer.
    let body = json!({ "from_number": "+14155550100", "to_number": "+14155550123" }).to_string();
    let host = server.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
    let request = format!(
        "POST /v1/call HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nIdempotency-Key: call-retry-1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        org.key,
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    drop(socket);

    // Its retry, with the same key, gets the call (once the first finished: 409 means wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let placed = loop {
        let (status, headers, response) =
            post_keyed(&server, &org.key, "call-retry-1", "/v1/call", serde_json::from_str(&body).unwrap()).await;
        match status {
            201 => break response,
            409 => {
                assert_eq!(response["code"], "idempotency_in_progress");
                assert!(headers.contains_key("retry-after"));
            }
            other => panic!("{other}: {response}"),
        }
        assert!(std::time::Instant::now() < deadline, "the first request never finished");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let calls = server.get("/v1/calls", &org.key).await.expect(200);
    assert_eq!(calls["total"], 1, "exactly one call: {calls}");
    assert_eq!(calls["results"][0]["id"], placed["call_id"]);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_time_the_engine() {
    let server = Server::start_with(&["--sim-ring-ms", "50", "--sim-talk-ms", "200"]);
    let org = server.org_ready_to_call("Acme", 500, "+14155550100").await.org;
    server.get("/v1/agents/999999", &org.key).await.expect(404);
    let call = server
        .post("/v1/call", &org.key, json!({ "from_number": "+14155550100", "to_number": "+14155550123" }))
        .await
        .expect(201);
    switchboard_tests::wait_for(
        &server,
        &format!("/v1/calls/{}", call["call_id"]),
        &org.key,
        std::time::Duration::from_secs(15),
        |c| c["status"] == "completed",
    )
    .await;

    let response = reqwest::get(format!("{}/metrics", server.admin_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for expected in
        ["http_requests_total{", "http_request_duration_seconds_bucket{", "bus_request_duration_seconds_bucket{"]
    {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // The engine's own metrics live where the engine runs: here in single-process mode; in a
    // cluster, on each worker's --metrics-listen.
    // Exact counts hold where one process served every request; in a cluster each gateway counts
    // its own.
    if !switchboard_tests::cluster_mode() {
        for expected in [
            r#"http_requests_total{route="/v1/agents/{id}",method="GET",status="404"} 1"#,
            r#"http_requests_total{route="/v1/call",method="POST",status="201"} 1"#,
            "bus_request_duration_seconds_bucket{subject=\"sb.orch.*.query\"",
            "eventlog_flush_duration_seconds_bucket",
            "eventlog_group_commit_size_bucket",
            "eventlog_events_appended_total",
            "calls_placed_total 1",
            r#"calls_ended_total{status="completed",end_reason="agent_hangup"} 1"#,
            "calls_in_progress{",
            r#"billing_reservations_total{outcome="granted"} 1"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }
}
