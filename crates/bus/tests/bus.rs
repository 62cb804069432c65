//! One suite, run against both bus implementations: in-process, and NATS on a real
//! `nats-server` started on a free port.

use std::sync::Arc;
use std::time::Duration;

use bus::testing::{NatsServer, ServerConfig, ServerTls};
use bus::{Error, Headers, InProcessBus, NatsAuth, NatsBus, NatsOptions, SharedBus};
use bytes::Bytes;

const SHORT: Duration = Duration::from_millis(300);

/// Answers every request on `subject` with its payload reversed and its headers echoed.
async fn spawn_reverser(bus: &SharedBus, subject: &str) {
    let mut sub = bus.subscribe(subject).await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let mut reply: Vec<u8> = m.payload.to_vec();
            reply.reverse();
            if let Some(id) = m.headers.get("x-request-id") {
                reply.extend_from_slice(format!("|{id}").as_bytes());
            }
            m.respond(Bytes::from(reply)).await.unwrap();
        }
    });
}

async fn request_reply_carries_payload_and_headers(bus: SharedBus) {
    spawn_reverser(&bus, "sb.orch.1.cmd").await;
    let mut headers = Headers::new();
    headers.insert("x-request-id".into(), "req-42".into());
    let reply = bus.request("sb.orch.1.cmd", &headers, Bytes::from_static(b"abc"), SHORT).await.unwrap();
    assert_eq!(&reply[..], b"cba|req-42");
}

async fn nobody_listening_is_no_responders(bus: SharedBus) {
    let err = bus.request("sb.orch.9.cmd", &Headers::new(), Bytes::new(), SHORT).await.unwrap_err();
    assert!(matches!(err, Error::NoResponders(_)), "{err:?}");
}

async fn a_silent_responder_is_a_timeout(bus: SharedBus) {
    let mut sub = bus.subscribe("sb.orch.2.cmd").await.unwrap();
    // Holds every request without answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(m) = sub.next().await {
            held.push(m);
        }
    });
    let err = bus.request("sb.orch.2.cmd", &Headers::new(), Bytes::new(), SHORT).await.unwrap_err();
    assert!(matches!(err, Error::TimedOut(_)), "{err:?}");
    holder.abort();
}

async fn publish_reaches_every_matching_subscriber(bus: SharedBus) {
    let mut exact = bus.subscribe("sb.evt.7.call").await.unwrap();
    let mut wildcard = bus.subscribe("sb.evt.*.call").await.unwrap();
    let mut tail = bus.subscribe("sb.evt.>").await.unwrap();
    let mut other = bus.subscribe("sb.evt.8.call").await.unwrap();
    bus.publish("sb.evt.7.call", &Headers::new(), Bytes::from_static(b"hello")).await.unwrap();
    for sub in [&mut exact, &mut wildcard, &mut tail] {
        let m = tokio::time::timeout(Duration::from_secs(2), sub.next()).await.unwrap().unwrap();
        assert_eq!((m.subject.as_str(), &m.payload[..]), ("sb.evt.7.call", &b"hello"[..]));
        assert!(!m.is_request());
    }
    assert!(tokio::time::timeout(Duration::from_millis(100), other.next()).await.is_err());
    // Publishing where nobody listens is fine.
    bus.publish("sb.nobody", &Headers::new(), Bytes::new()).await.unwrap();
}

async fn a_dropped_subscription_stops_responding(bus: SharedBus) {
    let sub = bus.subscribe("sb.orch.3.cmd").await.unwrap();
    drop(sub);
    // NATS learns of the unsubscribe asynchronously: poll until it has.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match bus.request("sb.orch.3.cmd", &Headers::new(), Bytes::new(), SHORT).await {
            Err(Error::NoResponders(_)) => break,
            other => assert!(tokio::time::Instant::now() < deadline, "still answered: {other:?}"),
        }
    }
}

async fn many_concurrent_requests_each_get_their_own_reply(bus: SharedBus) {
    spawn_reverser(&bus, "sb.orch.4.cmd").await;
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let payload = format!("{i:04}");
            let reply = bus
                .request("sb.orch.4.cmd", &Headers::new(), Bytes::from(payload.clone()), Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(reply, Bytes::from(payload.chars().rev().collect::<String>()));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn request_reply_carries_payload_and_headers() {
                let (bus, _server) = $make.await;
                super::request_reply_carries_payload_and_headers(bus).await;
            }

            #[tokio::test]
            async fn nobody_listening_is_no_responders() {
                let (bus, _server) = $make.await;
                super::nobody_listening_is_no_responders(bus).await;
            }

            #[tokio::test]
            async fn a_silent_responder_is_a_timeout() {
                let (bus, _server) = $make.await;
                super::a_silent_responder_is_a_timeout(bus).await;
            }

            #[tokio::test]
            async fn publish_reaches_every_matching_subscriber() {
                let (bus, _server) = $make.await;
                super::publish_reaches_every_matching_subscriber(bus).await;
            }

            #[tokio::test]
            async fn a_dropped_subscription_stops_responding() {
                let (bus, _server) = $make.await;
                super::a_dropped_subscription_stops_responding(bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_concurrent_requests_each_get_their_own_reply() {
                let (bus, _server) = $make.await;
                super::many_concurrent_requests_each_get_their_own_reply(bus).await;
            }
        }
    };
}

async fn in_process() -> (SharedBus, ()) {
    (Arc::new(InProcessBus::new()), ())
}

async fn nats() -> (SharedBus, NatsServer) {
    let server = NatsServer::start();
    let bus = NatsBus::connect(&server.client_options()).await.expect("connecting to the test nats-server");
    (Arc::new(bus), server)
}

suite!(in_process_bus, in_process());
suite!(nats_bus, nats());

#[tokio::test]
async fn connecting_to_no_server_fails_at_once() {
    let port = bus::testing::free_port();
    let err = NatsBus::connect(&NatsOptions::plain(format!("nats://127.0.0.1:{port}")))
        .await
        .err()
        .expect("nothing listens there");
    assert!(matches!(err, Error::Unavailable(_)));
}

#[tokio::test]
async fn a_served_subject_is_refused_to_a_second_owner() {
    let server = NatsServer::start();
    let bus: SharedBus = Arc::new(NatsBus::connect(&server.client_options()).await.unwrap());
    bus::ensure_unserved(bus.as_ref(), "sb.orch.5.cmd").await.unwrap();
    spawn_reverser(&bus, "sb.orch.5.cmd").await;
    let err = bus::ensure_unserved(bus.as_ref(), "sb.orch.5.cmd").await.unwrap_err();
    assert!(err.to_string().contains("already served"), "{err}");
}

/// Whether a bus connected with `options` carries a request to a responder and back.
async fn round_trip(options: &NatsOptions) {
    let bus: SharedBus = Arc::new(NatsBus::connect(options).await.expect("connecting with the right credentials"));
    spawn_reverser(&bus, "auth.echo").await;
    let reply = bus.request("auth.echo", &Headers::new(), Bytes::from_static(b"abc"), SHORT * 10).await.unwrap();
    assert_eq!(&reply[..], b"cba");
}

fn refused(err: Option<Error>, secret: &str) -> String {
    let err = err.expect("the server refuses the connection").to_string();
    assert!(err.contains("refused our credentials"), "{err}");
    assert!(!err.contains(secret), "the error shows a secret: {err}");
    err
}

#[tokio::test]
async fn a_server_with_a_password_refuses_a_client_without_it_or_with_another() {
    let server = NatsServer::start_with(ServerConfig::with_password());
    let good = server.client_options();
    round_trip(&good).await;

    refused(NatsBus::connect(&NatsOptions::plain(server.url())).await.err(), "test-");
    let NatsAuth::UserPassword { user, .. } = good.auth.clone() else { unreachable!("a password was asked for") };
    let wrong = NatsOptions { auth: NatsAuth::UserPassword { user, password: "wrong-password".into() }, ..good };
    refused(NatsBus::connect(&wrong).await.err(), "wrong-password");
}

#[tokio::test]
async fn a_server_with_a_token_refuses_a_client_without_it() {
    let config = ServerConfig { auth: NatsAuth::Token("a-token-for-this-test".into()), tls: None };
    let server = NatsServer::start_with(config);
    round_trip(&server.client_options()).await;
    refused(NatsBus::connect(&NatsOptions::plain(server.url())).await.err(), "a-token-for-this-test");
    let wrong = NatsOptions { auth: NatsAuth::Token("another-token".into()), ..server.client_options() };
    refused(NatsBus::connect(&wrong).await.err(), "another-token");
}

#[tokio::test]
async fn over_tls_a_client_trusts_the_authority_it_is_given_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let tls = bus::testing::make_certificates(dir.path());
    let server = NatsServer::start_with(ServerConfig { tls: Some(tls), ..ServerConfig::with_password() });
    round_trip(&server.client_options()).await;

    // Without the authority, the system's roots do not trust the server.
    let mut untrusting = server.client_options();
    untrusting.tls.ca_file = None;
    let err = NatsBus::connect(&untrusting).await.err().expect("an untrusted server is refused").to_string();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_server_that_verifies_clients_takes_one_with_a_certificate_its_authority_signed() {
    let dir = tempfile::tempdir().unwrap();
    let tls = ServerTls { verify_clients: true, ..bus::testing::make_certificates(dir.path()) };
    let server = NatsServer::start_with(ServerConfig { tls: Some(tls), ..ServerConfig::with_password() });
    let mut options = server.client_options();
    assert!(NatsBus::connect(&options).await.is_err(), "a client without a certificate was taken");
    options.tls.client_cert = Some((dir.path().join("client.pem"), dir.path().join("client.key")));
    round_trip(&options).await;
}
