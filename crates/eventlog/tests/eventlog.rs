//! The event log against real sled files.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use eventlog::{Error, ExpectedVersion, NewEvent, Projection, ProjectionWriter, RecordedEvent, Store, StreamAppend};

/// Counts events per stream and keeps the last payload of each: enough state to tell a
/// faithful replay from a wrong one.
struct CountsProjection;

impl Projection for CountsProjection {
    fn name(&self) -> &'static str {
        "counts"
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let key = event.stream.as_bytes();
        let count = writer.get(key)?.map_or(0, |v| u64::from_be_bytes(v[..8].try_into().unwrap()));
        let mut value = (count + 1).to_be_bytes().to_vec();
        value.extend_from_slice(&event.payload);
        writer.put(key, value);
        if event.event_type == "deleted" {
            writer.remove(format!("{}/alive", event.stream).as_bytes());
        } else {
            writer.put(format!("{}/alive", event.stream).as_bytes(), vec![1]);
        }
        Ok(())
    }
}

fn options() -> eventlog::Options {
    eventlog::Options { cache_capacity_bytes: 8 * 1024 * 1024, ..Default::default() }
}

fn event(kind: &str, n: u32) -> NewEvent {
    NewEvent::encode(kind, &n).unwrap()
}

fn append(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend { stream: stream.into(), expected, events }
}

fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(CountsProjection)]
}

#[tokio::test]
async fn appends_with_the_wrong_expected_version_conflict_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 3, projections()).unwrap();

    log.append_durable(vec![append("a", ExpectedVersion::NoStream, vec![event("x", 1), event("x", 2)])]).await.unwrap();
    assert_eq!(log.stream_version("a").unwrap(), 2);

    let conflict = log.append(vec![append("a", ExpectedVersion::Exactly(1), vec![event("x", 3)])]);
    assert!(matches!(conflict, Err(Error::Conflict { actual: 2, .. })), "{:?}", conflict.err());
    let conflict = log.append(vec![append("a", ExpectedVersion::NoStream, vec![event("x", 3)])]);
    assert!(matches!(conflict, Err(Error::Conflict { .. })));

    // A conflict on one stream of a multi-stream append writes none of them.
    let mixed = log.append(vec![
        append("b", ExpectedVersion::NoStream, vec![event("x", 1)]),
        append("a", ExpectedVersion::Exactly(5), vec![event("x", 1)]),
    ]);
    assert!(mixed.is_err());
    assert_eq!(log.stream_version("b").unwrap(), 0);
    assert!(log.read_stream("b", 1).unwrap().is_empty());

    let read = log.read_stream("a", 1).unwrap();
    assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(read[1].decode::<u32>().unwrap(), 2);
    assert_eq!(log.read_stream("a", 2).unwrap().len(), 1);
}

#[tokio::test]
async fn replaying_the_log_rebuilds_exactly_the_live_projections() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, projections()).unwrap();
    for i in 0..50u32 {
        let stream = format!("s{}", i % 7);
        let kind = if i % 11 == 10 { "deleted" } else { "changed" };
        // Several events of one stream in one batch: the projection must see its own writes.
        log.append_durable(vec![
            append(&stream, ExpectedVersion::Any, vec![event(kind, i), event("changed", i * 100)]),
            append("other", ExpectedVersion::Any, vec![event(kind, i)]),
        ])
        .await
        .unwrap();
    }
    let live = log.live_projections().unwrap();
    assert!(!live.is_empty());
    assert_eq!(log.replay_projections().unwrap(), live);

    // A damaged projection is found by the comparison and mended by a rebuild.
    // A log opened without the projection appends behind its back.
    let blind = store.log("test", 0, Vec::new()).unwrap();
    blind.append_durable(vec![append("s1", ExpectedVersion::Any, vec![event("changed", 2)])]).await.unwrap();
    assert_ne!(log.replay_projections().unwrap(), log.live_projections().unwrap());
    log.rebuild_projections().unwrap();
    assert_eq!(log.replay_projections().unwrap(), log.live_projections().unwrap());
}

#[tokio::test]
async fn concurrent_appends_all_land_in_order_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 1, projections()).unwrap();
    let mut tasks = Vec::new();
    for w in 0..16u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                log.append_durable(vec![append(
                    &format!("w{w}"),
                    ExpectedVersion::Exactly(i.into()),
                    vec![event("n", i)],
                )])
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all: Vec<_> = log.read_all().collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 16 * 25);
    assert!(all.windows(2).all(|w| w[0].position + 1 == w[1].position));
    for w in 0..16 {
        let values: Vec<u32> =
            log.read_stream(&format!("w{w}"), 1).unwrap().iter().map(|e| e.decode().unwrap()).collect();
        assert_eq!(values, (0..25).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn positions_and_versions_continue_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &options()).unwrap();
        let log = store.log("test", 0, projections()).unwrap();
        log.append_durable(vec![append("a", ExpectedVersion::NoStream, vec![event("x", 1)])]).await.unwrap();
    }
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, projections()).unwrap();
    let recorded =
        log.append_durable(vec![append("a", ExpectedVersion::Exactly(1), vec![event("x", 2)])]).await.unwrap();
    assert_eq!((recorded[0].version, recorded[0].position), (2, 2));
    assert_eq!(store.setting_or_init("partitions", "64").unwrap(), "64");
    assert_eq!(store.setting_or_init("partitions", "8").unwrap(), "64");
}

const CHILD_DIR: &str = "EVENTLOG_DURABILITY_CHILD_DIR";

/// The parent: a child process appends, reports the acknowledgement, and is killed with
/// SIGKILL at once; the reopened store must hold every acknowledged event.
#[test]
fn an_acknowledged_append_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "durability_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u32;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.trim().parse().unwrap();
            if acked >= 20 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructors, no flush at exit.
    child.wait().unwrap();
    assert!(acked >= 20, "the child acknowledged only {acked} appends");

    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, projections()).unwrap();
    let events = log.read_stream("durable", 1).unwrap();
    assert!(events.len() as u32 >= acked, "{} events survived, {acked} were acknowledged", events.len());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.decode::<u32>().unwrap(), i as u32 + 1);
    }
    assert_eq!(log.replay_projections().unwrap(), log.live_projections().unwrap());
}

/// The child half of the test above; does nothing unless that test started it.
#[tokio::test]
async fn durability_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = Store::open(dir, &options()).unwrap();
    let log = store.log("test", 0, projections()).unwrap();
    for n in 1u32.. {
        log.append_durable(vec![append("durable", ExpectedVersion::Exactly((n - 1).into()), vec![event("n", n)])])
            .await
            .unwrap();
        println!("acked {n}");
    }
}

/// The counts projection after a change of shape: it now keeps only the count.
struct CountsOnlyProjection;

impl Projection for CountsOnlyProjection {
    fn name(&self) -> &'static str {
        "counts"
    }

    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let key = event.stream.as_bytes();
        let count = writer.get(key)?.map_or(0, |v| u64::from_be_bytes(v[..8].try_into().unwrap()));
        writer.put(key, (count + 1).to_be_bytes().to_vec());
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_of_a_new_shape_is_rebuilt_from_the_events_when_the_log_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &options()).unwrap();
        let log = store.log("test", 0, projections()).unwrap();
        log.append_durable(vec![append("a", ExpectedVersion::Any, vec![event("x", 7), event("x", 8)])]).await.unwrap();
        assert!(log.projection_get("counts", b"a").unwrap().unwrap().len() > 8, "count and last payload");
    }
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, vec![Arc::new(CountsOnlyProjection)]).unwrap();
    assert_eq!(log.projection_get("counts", b"a").unwrap(), Some(2u64.to_be_bytes().to_vec()));
    assert_eq!(log.projection_get("counts", b"a/alive").unwrap(), None, "keys the new shape never writes are gone");
    assert_eq!(log.replay_projections().unwrap(), log.live_projections().unwrap());
}

/// Rewrites the stored event at `position` of partition 0 of namespace `test`, as someone with
/// the data directory could.
fn tamper(dir: &std::path::Path, position: u64, change: impl FnOnce(&mut RecordedEvent)) {
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree("test/00000").unwrap();
    let key = [b"e".as_slice(), &position.to_be_bytes()].concat();
    let mut event: RecordedEvent = rmp_serde::from_slice(&tree.get(&key).unwrap().unwrap()).unwrap();
    change(&mut event);
    tree.insert(&key, rmp_serde::to_vec_named(&event).unwrap()).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn every_stream_is_a_hash_chain_and_tampering_breaks_it_where_it_happened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &options()).unwrap();
        let log = store.log("test", 0, projections()).unwrap();
        for n in 0..3 {
            log.append_durable(vec![
                append("a", ExpectedVersion::Any, vec![event("x", n), event("x", n + 10)]),
                append("b", ExpectedVersion::Any, vec![event("y", n)]),
            ])
            .await
            .unwrap();
        }
        let a = log.read_stream("a", 1).unwrap();
        assert!(a[0].previous_hash.is_empty(), "a stream's first event follows nothing");
        assert_eq!(a[1].previous_hash.len(), 32);
        let report = log.verify_chains().unwrap();
        assert_eq!((report.streams, report.events, report.breaks), (2, 9, vec![]));
    }

    // Stream a holds positions 1, 2, 4, 5, 7, 8; b holds 3, 6, 9.
    tamper(dir.path(), 2, |e| e.payload = rmp_serde::to_vec_named(&99u32).unwrap());
    tamper(dir.path(), 9, |e| e.recorded_at_ms += 1);
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, projections()).unwrap();
    let breaks = log.verify_chains().unwrap().breaks;
    assert_eq!(breaks.len(), 2, "{breaks:?}");
    assert_eq!((breaks[0].stream.as_str(), breaks[0].version), ("a", 3), "the event after the changed one");
    assert_eq!((breaks[1].stream.as_str(), breaks[1].version), ("b", 4), "b's last event: only its head can tell");
}

/// A barrier stands for everything appended before it: it resolves only once a flush covered
/// that, and at once when a flush already did.
#[tokio::test]
async fn a_barrier_waits_for_the_flush_of_everything_appended_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, projections()).unwrap();

    let hold = store.hold_flushes();
    let appended = log.append(vec![append("a", ExpectedVersion::NoStream, vec![event("x", 1)])]).unwrap();
    let barrier = tokio::spawn(log.barrier().durable());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!barrier.is_finished(), "a barrier resolved while the append before it was not flushed");
    drop(hold);
    barrier.await.unwrap().unwrap();
    appended.durable().await.unwrap();

    // Nothing appended since the last flush: the barrier needs no flush, even a held one.
    let _hold = store.hold_flushes();
    tokio::time::timeout(std::time::Duration::from_secs(1), log.barrier().durable())
        .await
        .expect("a barrier over flushed appends resolves at once")
        .unwrap();
}

/// Counts only streams kept for good; streams under `tmp/` are records kept for a while.
struct KeptCounts;

impl Projection for KeptCounts {
    fn name(&self) -> &'static str {
        "kept"
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        if event.stream.starts_with("tmp/") { Ok(()) } else { CountsProjection.apply(event, writer) }
    }
}

#[tokio::test]
async fn expired_streams_leave_the_disk_whole_and_the_rest_still_verifies() {
    use eventlog::StreamExpiry;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, vec![Arc::new(KeptCounts)]).unwrap();
    let expiring = |stream: &str, at: i64| StreamExpiry { stream: stream.into(), expires_at_ms: at };
    for (stream, at) in [("tmp/a", 100), ("tmp/b", 300), ("tmp/c", 200)] {
        let appends = vec![
            append(stream, ExpectedVersion::Any, vec![event("x", 1), event("x", 2)]),
            append("kept", ExpectedVersion::Any, vec![event("y", 1)]),
        ];
        log.append_expiring(appends, vec![expiring(stream, at)]).unwrap().durable().await.unwrap();
    }
    // A later deadline replaces the earlier one: tmp/a now expires after tmp/c.
    log.append_expiring(
        vec![append("tmp/a", ExpectedVersion::Exactly(2), vec![event("x", 3)])],
        vec![expiring("tmp/a", 250)],
    )
    .unwrap()
    .durable()
    .await
    .unwrap();

    assert_eq!(log.expired_streams(99, 10).unwrap(), Vec::<String>::new());
    assert_eq!(log.expired_streams(200, 10).unwrap(), vec!["tmp/c"]);
    assert_eq!(log.expired_streams(1_000, 2).unwrap(), vec!["tmp/c", "tmp/a"], "the earliest first, bounded");

    let due = log.expired_streams(260, 10).unwrap();
    assert_eq!(log.expire_streams(&due).unwrap(), 5);
    assert_eq!(log.stream_version("tmp/a").unwrap(), 0);
    assert!(log.read_stream("tmp/c", 1).unwrap().is_empty());
    assert_eq!(log.read_all().count(), 2 + 3, "tmp/b's events and the kept stream's are left");
    assert_eq!(log.expired_streams(1_000, 10).unwrap(), vec!["tmp/b"]);
    let report = log.verify_chains().unwrap();
    assert_eq!((report.streams, report.breaks), (2, vec![]));
    assert_eq!(log.replay_projections().unwrap(), log.live_projections().unwrap());

    // A removed stream starts again, as a new one.
    log.append_durable(vec![append("tmp/a", ExpectedVersion::NoStream, vec![event("x", 9)])]).await.unwrap();
    assert!(log.verify_chains().unwrap().breaks.is_empty());
}

#[tokio::test]
async fn a_key_store_keeps_values_beside_the_log_until_they_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &options()).unwrap();
        let keys = store.key_store("secrets").unwrap();
        keys.insert(b"k1", b"wrapped").unwrap();
        keys.insert(b"k2", b"other").unwrap();
        keys.durable().await.unwrap();
        keys.remove(b"k2").unwrap();
        keys.durable().await.unwrap();
        let log = store.log("test", 0, projections()).unwrap();
        assert_eq!(log.read_all().count(), 0, "nothing of it is in a log");
    }
    let store = Store::open(dir.path(), &options()).unwrap();
    let keys = store.key_store("secrets").unwrap();
    assert_eq!(keys.get(b"k1").unwrap().as_deref(), Some(&b"wrapped"[..]));
    assert_eq!(keys.get(b"k2").unwrap(), None);
}

/// Streams written before they had deadlines (by an older version) are given one, their
/// retention after their last event, once; streams that have one keep it.
#[tokio::test]
async fn streams_written_without_a_deadline_are_given_one_after_their_last_event() {
    use eventlog::StreamExpiry;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &options()).unwrap();
    let log = store.log("test", 0, vec![Arc::new(KeptCounts)]).unwrap();
    log.append_durable(vec![append("tmp/old", ExpectedVersion::NoStream, vec![event("x", 1)])]).await.unwrap();
    let dated = vec![StreamExpiry { stream: "tmp/dated".into(), expires_at_ms: 5 }];
    let appends = vec![append("tmp/dated", ExpectedVersion::NoStream, vec![event("x", 1)])];
    log.append_expiring(appends, dated).unwrap().durable().await.unwrap();
    let last = log.read_stream("tmp/old", 1).unwrap()[0].recorded_at_ms;

    assert_eq!(log.expire_unexpiring("tmp/", 1_000).unwrap(), 1);
    assert_eq!(log.expire_unexpiring("tmp/", 1_000).unwrap(), 0, "once given, a deadline stays");
    assert_eq!(log.expired_streams(last + 999, 10).unwrap(), vec!["tmp/dated"]);
    assert_eq!(log.expired_streams(last + 1_000, 10).unwrap(), vec!["tmp/dated", "tmp/old"]);
}
