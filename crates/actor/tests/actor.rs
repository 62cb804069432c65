//! The service around partition actors, over the in-process bus and real sled files.

use std::sync::Arc;
use std::time::Duration;

use actor::service::{self, Service};
use actor::{REQUEST_ID_HEADER, RequestContext};
use bus::{Headers, InProcessBus, SharedBus};
use domain::Partitioning;
use eventlog::Store;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("event log: {0}")]
    Log(#[from] eventlog::Error),
    #[error("bus: {0}")]
    Bus(#[from] bus::Error),
}

fn commands(partition: u32) -> String {
    format!("test.{partition}.cmd")
}

fn queries(partition: u32) -> String {
    format!("test.{partition}.query")
}

fn service<'a>(store: &'a Store, bus: &'a SharedBus, partitions: &'a [u32]) -> Service<'a> {
    Service {
        name: "test",
        namespace: "test",
        partitioning: Partitioning::new(4),
        partitions,
        store,
        bus,
        projections: Vec::new,
        command_subject: commands,
        query_subject: queries,
    }
}

/// Answers every request with the request id its context carries.
async fn echo_request_ids(mut requests: bus::Subscription, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(request) = requests.next() => {
                let id = RequestContext::of(&request).into_request_id().unwrap_or_default();
                request.respond(id.into_bytes().into()).await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn partitions_are_served_until_shutdown_and_a_second_worker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open(dir.path(), &eventlog::Options { cache_capacity_bytes: 8 << 20, ..Default::default() }).unwrap();
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let owned = [1, 3];
    let partitions = service(&store, &bus, &owned).open(|log| Ok::<_, Error>(log.partition())).await.unwrap();
    assert_eq!(partitions.iter().map(|p| p.actor).collect::<Vec<_>>(), vec![1, 3]);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service::run(
        partitions,
        async {
            let _ = stop_rx.await;
        },
        |_, commands, stop| echo_request_ids(commands, stop),
        |_, queries, stop| echo_request_ids(queries, stop),
    ));

    let headers = Headers::from([(REQUEST_ID_HEADER.to_owned(), "req-7".to_owned())]);
    for subject in [commands(3), queries(1)] {
        let answer = bus.request(&subject, &headers, Default::default(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(&answer[..], b"req-7", "{subject} answers in the request's context");
    }
    let again = service(&store, &bus, &[3]).open(|log| Ok::<_, Error>(log.partition())).await;
    assert!(matches!(again, Err(Error::Bus(_))), "partition 3 has an owner already");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("every loop stops at shutdown").unwrap();
}

#[tokio::test]
#[should_panic(expected = "partition 4 out of range")]
async fn a_partition_past_the_count_is_a_programmer_error() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open(dir.path(), &eventlog::Options { cache_capacity_bytes: 8 << 20, ..Default::default() }).unwrap();
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let _ = service(&store, &bus, &[4]).open(|log| Ok::<_, Error>(log.partition())).await;
}
