//! One suite, run against both bus implementations: in-process, and NATS on a real
//! `nats-server` started on a free port.

use std::sync::Arc;
use std::time::Duration;

use bus::testing::NatsServer;
use bus::{Error, Headers, InProcessBus, NatsBus, SharedBus};
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
    let bus = NatsBus::connect(&server.url()).await.expect("connecting to the test nats-server");
    (Arc::new(bus), server)
}

suite!(in_process_bus, in_process());
suite!(nats_bus, nats());

#[tokio::test]
async fn connecting_to_no_server_fails_at_once() {
    let port = bus::testing::free_port();
    let err = NatsBus::connect(&format!("nats://127.0.0.1:{port}")).await.err().expect("nothing listens there");
    assert!(matches!(err, Error::Unavailable(_)));
}

#[tokio::test]
async fn a_served_subject_is_refused_to_a_second_owner() {
    let server = NatsServer::start();
    let bus: SharedBus = Arc::new(NatsBus::connect(&server.url()).await.unwrap());
    bus::ensure_unserved(bus.as_ref(), "sb.orch.5.cmd").await.unwrap();
    spawn_reverser(&bus, "sb.orch.5.cmd").await;
    let err = bus::ensure_unserved(bus.as_ref(), "sb.orch.5.cmd").await.unwrap_err();
    assert!(err.to_string().contains("already served"), "{err}");
}
