//! The egress guard end to end: without `--allow-private-networks`, a VoIP connection's host
//! may not lead to loopback, private, link-local or metadata addresses, neither on create nor
//! at use; and no SIP field may carry control characters into a SIP message.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::{Server, Sipp};

fn sip(host: &str, port: u16) -> serde_json::Value {
    json!({
        "provider": "manual",
        "sip_config": { "host": host, "port": port, "transport": "udp" },
        "credentials": { "username": "alice", "password": "secret" }
    })
}

/// A create of `body` on evidence that exists nowhere: what is refused before the evidence is
/// looked at (a field error of the configuration) is refused all the same.
fn create(mut body: serde_json::Value) -> serde_json::Value {
    body["verification_evidence_id"] = json!("6f1c2a4e-0b7d-4c3e-9a21-5d8e7f604b13");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_on_loopback_private_or_metadata_addresses_are_refused_without_the_operator_flag() {
    let server = Server::start_public_only(&[]);
    let org = server.create_org("Acme").await;
    for host in [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.0.1",
        "[::1]",
        "::ffff:127.0.0.1",
        "[fd00::1]",
        "localhost",
    ] {
        for (path, body) in
            [("/v1/voip-connections/test", sip(host, 5060)), ("/v1/voip-connections", create(sip(host, 5060)))]
        {
            let r = server.post(path, &org.key, body).await;
            assert_eq!(
                (r.status, &r.body["code"], &r.body["field"]),
                (403, &json!("host_not_public"), &json!("sip_config.host"))
            );
            let message = r.body["detail"].as_str().unwrap_or_default();
            assert!(message.starts_with("Enter a public host:"), "{path} {host}: {}", r.body);
        }
    }
    let r = server.post("/v1/voip-connections/test", &org.key, sip("169.254.169.254", 80)).await;
    assert!(r.body["detail"].as_str().unwrap().contains("a cloud metadata address"), "{}", r.body);
    // (That a public address is let through is the egress crate's unit tests': probing one here
    // would send a packet off this machine, which no test may.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_made_on_loopback_is_neither_probed_nor_dialed_once_the_flag_is_gone() {
    let mut server = Server::start_with(&[]);
    let trunk = Sipp::start("uas");
    let org = server.create_org("Acme").await;
    let c = server.ready_to_call_over(org, 500, "+14155550100", trunk.connection()).await;
    trunk.wait_for_messages(&["OPTIONS sip:"]).await;
    let before = trunk.trace().len();

    server.restart_public_only();
    let r = server.post("/v1/call", &c.org.key, json!({ "from_number": c.number, "to_number": "+14155550123" })).await;
    assert_eq!((r.status, r.body["code"].as_str()), (502, Some("carrier_error")), "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("127.0.0.1, a loopback address"), "{}", r.body);

    let path = format!("/v1/phone-numbers/{}/verify-voip", c.number_id);
    let verified = server.post(&path, &c.org.key, json!({})).await.expect(200);
    assert_eq!(verified["voip_verification_status"], "failed", "{verified}");
    let reason = verified["verification_evidence"]["evidence"]["error"].as_str().unwrap_or_default();
    assert!(reason.contains("127.0.0.1, a loopback address"), "{verified}");
    let number = server.get(&format!("/v1/phone-numbers/{}", c.number_id), &c.org.key).await.expect(200);
    assert_eq!(number["outbound_eligible"], false, "{number}");
    // Nor is the trunk tested again.
    server.post("/v1/voip-connections/test", &c.org.key, trunk.connection()).await.expect(403);

    // Give a stray packet time to arrive: SIPp saw nothing after the restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(trunk.trace().len(), before, "nothing reached the trunk: {}", &trunk.trace()[before..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_sip_fields_are_refused_and_never_reach_a_listener() {
    let server = Server::start_with(&[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let org = server.create_org("Acme").await;
    let injection = "bob\r\nX-Injected: 1\r\n\r\nSET pwned 1";
    for (object, field) in [("credentials", "username"), ("credentials", "password"), ("sip_config", "host")] {
        for path in ["/v1/voip-connections/test", "/v1/voip-connections"] {
            let mut body = sip("127.0.0.1", port);
            body["sip_config"]["transport"] = json!("tcp");
            body[object][field] = json!(if field == "host" { "127.0.0.1\r\nX-Injected: 1" } else { injection });
            let body = if path == "/v1/voip-connections" { create(body) } else { body };
            let r = server.post(path, &org.key, body).await;
            assert_eq!(r.status, 400, "{path} {field}: {}", r.body);
            assert!(r.body[format!("{object}.{field}")].is_array(), "{path} {field}: {}", r.body);
        }
    }
    let mut body = sip("127.0.0.1", port);
    body["credentials"]["username"] = json!("nul\0byte");
    assert_eq!(server.post("/v1/voip-connections/test", &org.key, body).await.status, 400);
    let connections = server.get("/v1/voip-connections", &org.key).await.expect(200);
    assert_eq!(connections, json!([]), "nothing was stored");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(listener.accept().is_err(), "nothing connected to the listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_are_bounded_per_org_per_minute_with_429_and_retry_after() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let other = server.create_org("Other").await;
    let path = "/v1/voip-connections/test";
    let sim = switchboard_tests::sim_connection();
    // The default budget: ten probes per org per minute, connection tests and verifications alike.
    for i in 0..10 {
        let r = server.post(path, &org.key, sim.clone()).await;
        assert_eq!(r.status, 201, "test {i}: {}", r.body);
    }
    let r = server.post(path, &org.key, sim.clone()).await;
    assert_eq!((r.status, r.body["code"].as_str()), (429, Some("rate_limited")), "{}", r.body);
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    // Another org's budget is its own.
    server.post(path, &other.key, sim).await.expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_of_a_number_being_probed_share_the_one_probe() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = Server::start();
    let org = server.create_org("Acme").await;
    // A trunk that takes a second to answer OPTIONS, and counts the probes it gets.
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = trunk.local_addr().unwrap().port();
    let probes = Arc::new(AtomicUsize::new(0));
    let counted = probes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = trunk.recv_from(&mut buf) {
            if buf[..n].starts_with(b"OPTIONS ") {
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(1));
                let _ = trunk.send_to(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", from);
            }
        }
    });
    // The test and the first verification probe once each.
    let c = server.ready_to_call_over(org, 0, "+14155550100", sip("127.0.0.1", port)).await;
    assert_eq!(probes.load(Ordering::SeqCst), 2);
    let path = format!("/v1/phone-numbers/{}/verify-voip", c.number_id);
    let (a, b, d) = tokio::join!(
        server.post(&path, &c.org.key, json!({})),
        server.post(&path, &c.org.key, json!({})),
        server.post(&path, &c.org.key, json!({}))
    );
    for r in [&a, &b, &d] {
        assert_eq!((r.status, &r.body["voip_verification_status"]), (200, &json!("verified")), "{}", r.body);
    }
    assert_eq!(probes.load(Ordering::SeqCst), 3, "three verifications, one probe");
}
