//! The event log: append-only streams and the projections folded from them, on sled.
//!
//! This is the only crate that knows sled. A [`Store`] is one sled database (one data directory);
//! it holds one [`Log`] per partition, each in a tree of its own. A log is written by one owner
//! (the partition's actor) but is safe to share: appends are serialised by a lock and checked
//! against each stream's expected version.
//!
//! Durability is group-committed: [`Log::append`] applies its events and projections atomically
//! (visible to readers at once) and hands back a [`Pending`] that resolves once a flush has made
//! them durable. One flusher thread per store serves every partition, so a burst of appends from
//! many callers pays for one fsync. sled recovers a prefix of its log after a crash, so an event
//! that a durable event depended on is durable too.
//!
//! Two things sit beside the logs, outside every stream and so outside every hash chain: a
//! stream may be given a retention deadline when it is appended to, after which
//! [`Log::expire_streams`] removes it whole (for records kept for a while, not for business
//! history), and a [`KeyStore`] keeps small values that must be deletable, such as the data keys
//! that seal secrets.

pub mod chain;
mod envelope;
mod flusher;
mod keys;
mod projection;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use envelope::{NewEvent, RecordedEvent};
pub use projection::{Projection, ProjectionWriter};

pub use flusher::FlushHold;
use flusher::Flusher;

/// The ways the event log fails. Conflicts are expected and recoverable; the rest are I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    Conflict { stream: String, expected: ExpectedVersion, actual: u64 },
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("projection {name}: {message}")]
    Projection { name: &'static str, message: String },
    #[error("the store is closed")]
    Closed,
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a writer believes a stream's version to be. Version 0 means the stream has no events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    Any,
    NoStream,
    Exactly(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exactly(v) => write!(f, "{v}"),
        }
    }
}

impl ExpectedVersion {
    fn admits(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exactly(v) => v == actual,
        }
    }
}

/// Events for one stream, appended only if the stream is at the expected version.
#[derive(Debug)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Tuning for a store. The defaults suit a service; tests shrink the cache.
#[derive(Clone, Debug)]
pub struct Options {
    /// sled's page cache; bounded because every process keeps one per data directory.
    pub cache_capacity_bytes: u64,
    /// The most flush waiters one fsync serves; bounds the latency one flush can add.
    pub max_group_commit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { cache_capacity_bytes: 256 * 1024 * 1024, max_group_commit: 4096 }
    }
}

/// One sled database holding the logs of the partitions this process owns.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    flusher: Arc<Flusher>,
}

impl Store {
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Self> {
        let db = sled::Config::new()
            .path(path.as_ref())
            .cache_capacity(options.cache_capacity_bytes)
            // Our flusher makes writes durable; sled's own timer only bounds how stale
            // unacknowledged writes may get.
            .flush_every_ms(Some(1000))
            .open()?;
        let flusher = Arc::new(Flusher::start(db.clone(), options.max_group_commit));
        Ok(Self { db, flusher })
    }

    /// Reads a setting recorded when the store was created, or records `default` if there is none.
    /// Used for facts that must never change for a data directory, such as the partition count.
    pub fn setting_or_init(&self, name: &str, default: &str) -> Result<String> {
        let key = format!("setting/{name}");
        match self.db.compare_and_swap(&key, None as Option<&[u8]>, Some(default.as_bytes()))? {
            Ok(()) => {
                self.db.flush()?;
                Ok(default.to_owned())
            }
            Err(current) => Ok(String::from_utf8_lossy(&current.current.unwrap_or_default()).into_owned()),
        }
    }

    /// Opens the log of one partition of one service (`namespace`) with the projections it
    /// maintains. Services that own the same partition number in one process keep apart.
    /// Projections built by another version of their shape are rebuilt from the events first.
    pub fn log(&self, namespace: &str, partition: u32, projections: Vec<Arc<dyn Projection>>) -> Result<Log> {
        let tree = self.db.open_tree(format!("{namespace}/{partition:05}"))?;
        let next_position = keys::read_u64(&tree, keys::NEXT_POSITION)?.unwrap_or(1);
        let log = Log {
            inner: Arc::new(LogInner {
                partition,
                tree,
                flusher: self.flusher.clone(),
                projections,
                write_lock: Mutex::new(WriteState { next_position }),
            }),
        };
        log.rebuild_outdated_projections()?;
        Ok(log)
    }

    /// A small key-value store beside the logs (a tree of its own, in no stream and no hash
    /// chain), whose entries can be deleted for good. Its writes become durable with the next
    /// flush of the store, so with the next append anyone waits for.
    pub fn key_store(&self, name: &str) -> Result<KeyStore> {
        Ok(KeyStore { tree: self.db.open_tree(format!("keys/{name}"))?, flusher: self.flusher.clone() })
    }

    /// Flushes everything written so far, now, without waiting for other writers.
    /// This is the "one fsync per append" baseline the benchmark compares group commit against.
    pub fn flush_now(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Waits until everything written before this call is durable, sharing a flush with others.
    pub async fn durable(&self) -> Result<()> {
        self.flusher.request(self.flusher.last_written()).await
    }

    /// Holds every flush of the store until the guard drops: appends stay visible but none
    /// becomes durable. For tests (and fault injection) that must see what waits for durability.
    pub fn hold_flushes(&self) -> FlushHold {
        self.flusher.hold()
    }
}

/// See [`Store::key_store`].
#[derive(Clone)]
pub struct KeyStore {
    tree: sled::Tree,
    flusher: Arc<Flusher>,
}

impl KeyStore {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree.insert(key, value)?;
        // Numbered like an append, so that the next flush is known to cover it.
        self.flusher.written();
        Ok(())
    }

    pub fn remove(&self, key: &[u8]) -> Result<()> {
        self.tree.remove(key)?;
        self.flusher.written();
        Ok(())
    }

    /// Waits until every write so far is durable, sharing a flush with the logs.
    pub async fn durable(&self) -> Result<()> {
        self.flusher.request(self.flusher.last_written()).await
    }
}

/// When a stream may be removed: see [`Log::append_expiring`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamExpiry {
    pub stream: String,
    pub expires_at_ms: i64,
}

/// The log of one partition: its streams, its global order and its projections.
#[derive(Clone)]
pub struct Log {
    inner: Arc<LogInner>,
}

struct LogInner {
    partition: u32,
    tree: sled::Tree,
    flusher: Arc<Flusher>,
    projections: Vec<Arc<dyn Projection>>,
    /// Serialises appends so that version checks and position allocation see every earlier append.
    write_lock: Mutex<WriteState>,
}

struct WriteState {
    next_position: u64,
}

/// Appended events that are visible but not yet known to be durable, or (from
/// [`Log::barrier`]) no events, standing for everything appended so far.
#[must_use = "an append is acknowledged only once it is durable"]
pub struct Pending {
    pub events: Vec<RecordedEvent>,
    /// The number of the append (see `flusher`) whose flush makes these events durable.
    mark: u64,
    flusher: Arc<Flusher>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("events", &self.events.len()).field("mark", &self.mark).finish()
    }
}

impl Pending {
    /// Waits for the group flush that makes these events durable (at once if one already did).
    pub async fn durable(self) -> Result<Vec<RecordedEvent>> {
        self.flusher.request(self.mark).await?;
        Ok(self.events)
    }
}

impl Log {
    pub fn partition(&self) -> u32 {
        self.inner.partition
    }

    /// Appends events to one or more streams atomically, folding them into every projection
    /// in the same batch. Nothing is written if any stream is not at its expected version.
    pub fn append(&self, appends: Vec<StreamAppend>) -> Result<Pending> {
        self.append_expiring(appends, Vec::new())
    }

    /// Appends as [`Log::append`] does, and in the same batch sets when each of `expiries`'
    /// streams may be removed by [`Log::expire_streams`] (replacing a deadline set before).
    pub fn append_expiring(&self, appends: Vec<StreamAppend>, expiries: Vec<StreamExpiry>) -> Result<Pending> {
        let inner = &*self.inner;
        let mut state = inner.write_lock.lock().expect("event log write lock poisoned");
        let recorded_at_ms = now_ms();
        let mut position = state.next_position;
        let mut versions: BTreeMap<String, u64> = BTreeMap::new();
        let mut recorded = Vec::new();
        for append in appends {
            assert!(!append.stream.as_bytes().contains(&0), "stream names never contain NUL");
            let actual = match versions.get(&append.stream) {
                Some(v) => *v,
                None => self.stream_version(&append.stream)?,
            };
            if !append.expected.admits(actual) {
                return Err(Error::Conflict { stream: append.stream, expected: append.expected, actual });
            }
            let mut version = actual;
            for event in append.events {
                version += 1;
                recorded.push(event.record(&append.stream, version, position, recorded_at_ms));
                position += 1;
            }
            versions.insert(append.stream, version);
        }

        let mut batch = sled::Batch::default();
        let mut overlay = BTreeMap::new();
        let mut heads: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for event in &mut recorded {
            let head = match heads.remove(&event.stream) {
                Some(head) => head,
                None => inner.tree.get(keys::stream_head(&event.stream))?.map(|h| h.to_vec()).unwrap_or_default(),
            };
            event.previous_hash = head;
            let stored = rmp_serde::to_vec_named(&*event)?;
            heads.insert(event.stream.clone(), chain::hash(&stored));
            batch.insert(keys::event(event.position), stored);
            batch.insert(keys::stream_entry(&event.stream, event.version), &event.position.to_be_bytes());
            fold(&inner.projections, &inner.tree, &mut overlay, event)?;
        }
        for (stream, version) in &versions {
            batch.insert(keys::stream_version(stream), &version.to_be_bytes());
        }
        for (stream, head) in heads {
            batch.insert(keys::stream_head(&stream), head);
        }
        for (key, value) in overlay {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        for StreamExpiry { stream, expires_at_ms } in expiries {
            if let Some(previous) = keys::read_u64(&inner.tree, &keys::stream_expiry(&stream))? {
                batch.remove(keys::expiry(previous, &stream));
            }
            let at = expires_at_ms.max(0) as u64;
            batch.insert(keys::expiry(at, &stream), &[]);
            batch.insert(keys::stream_expiry(&stream), &at.to_be_bytes());
        }
        batch.insert(keys::NEXT_POSITION, &position.to_be_bytes());
        inner.tree.apply_batch(batch)?;
        let mark = inner.flusher.written();
        metrics::counter!("eventlog_appends_total").increment(1);
        metrics::counter!("eventlog_events_appended_total").increment(recorded.len() as u64);
        state.next_position = position;
        Ok(Pending { events: recorded, mark, flusher: inner.flusher.clone() })
    }

    /// Appends and waits until the events are durable.
    pub async fn append_durable(&self, appends: Vec<StreamAppend>) -> Result<Vec<RecordedEvent>> {
        self.append(appends)?.durable().await
    }

    /// Waits until everything appended to this log so far is durable. For side effects that
    /// must not run before the events that asked for them are on disk.
    pub async fn durable(&self) -> Result<()> {
        self.barrier().durable().await.map(drop)
    }

    /// What a decision that appended nothing must wait for before it is acknowledged: the
    /// durability of everything appended before it (a command found "already done" rests on
    /// state that may not be flushed yet). Resolves at once when that is on disk already.
    pub fn barrier(&self) -> Pending {
        let flusher = self.inner.flusher.clone();
        Pending { events: Vec::new(), mark: flusher.last_written(), flusher }
    }

    /// The stream's version: the number of events in it.
    pub fn stream_version(&self, stream: &str) -> Result<u64> {
        Ok(keys::read_u64(&self.inner.tree, &keys::stream_version(stream))?.unwrap_or(0))
    }

    /// The events of one stream from `from_version` (1-based, inclusive) on, in order.
    pub fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<RecordedEvent>> {
        let tree = &self.inner.tree;
        let start = keys::stream_entry(stream, from_version.max(1));
        let end = keys::stream_entry(stream, u64::MAX);
        tree.range(start..=end)
            .map(|entry| {
                let (_, position) = entry?;
                let bytes = tree
                    .get(keys::event(keys::be_u64(&position)))?
                    .expect("a stream entry always points at a stored event");
                Ok(rmp_serde::from_slice(&bytes)?)
            })
            .collect()
    }

    /// Every event of the partition in the order it was appended.
    pub fn read_all(&self) -> impl Iterator<Item = Result<RecordedEvent>> + '_ {
        self.inner.tree.scan_prefix(keys::EVENT_PREFIX).map(|entry| {
            let (_, bytes) = entry?;
            Ok(rmp_serde::from_slice(&bytes)?)
        })
    }

    /// The names of every stream whose name starts with `prefix`.
    pub fn streams_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let key_prefix = keys::stream_version(prefix);
        self.inner
            .tree
            .scan_prefix(&key_prefix)
            .map(|entry| {
                let (key, _) = entry?;
                Ok(String::from_utf8_lossy(&key[1..]).into_owned())
            })
            .collect()
    }

    /// Gives every stream under `prefix` that has no deadline yet (one written before it had
    /// one) the deadline `after_ms` past its last event, so that [`Log::expire_streams`] removes
    /// it in time too. Returns how many it gave one. It reads every stream under the prefix, so
    /// it does so once per log: the pass records that it ran, and every stream appended since
    /// was given its deadline with its events.
    pub fn expire_unexpiring(&self, prefix: &str, after_ms: i64) -> Result<usize> {
        let inner = &*self.inner;
        let _writer = inner.write_lock.lock().expect("event log write lock poisoned");
        let done = keys::deadlines_given(prefix);
        if inner.tree.contains_key(&done)? {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        let mut given = 0;
        for stream in self.streams_with_prefix(prefix)? {
            if inner.tree.contains_key(keys::stream_expiry(&stream))? {
                continue;
            }
            let version = self.stream_version(&stream)?;
            let Some(last) = self.read_stream(&stream, version)?.pop() else { continue };
            let at = (last.recorded_at_ms.saturating_add(after_ms)).max(0) as u64;
            batch.insert(keys::expiry(at, &stream), &[]);
            batch.insert(keys::stream_expiry(&stream), &at.to_be_bytes());
            given += 1;
        }
        batch.insert(done, &[]);
        inner.tree.apply_batch(batch)?;
        inner.flusher.written();
        Ok(given)
    }

    /// Up to `limit` streams whose deadline (see [`Log::append_expiring`]) is at or before
    /// `now_ms`, the earliest first. Reads only the index entries it returns.
    pub fn expired_streams(&self, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        let end = keys::expiry(now_ms.max(0) as u64 + 1, "");
        let skip = keys::expiry(0, "").len();
        self.inner
            .tree
            .range(keys::EXPIRY_PREFIX.to_vec()..end)
            .keys()
            .take(limit)
            .map(|key| Ok(String::from_utf8_lossy(&key?[skip..]).into_owned()))
            .collect()
    }

    /// Removes streams whole: their events, their index entries, their version, the head of
    /// their chain and their deadline, in one batch. What remains still verifies: no other
    /// stream's chain passes through them, and a stream removed this way must be one no
    /// projection folds (its records are kept for a while, not history), so the projections'
    /// replay equals them still. A removed stream starts again from version 0.
    /// Returns how many events were removed.
    pub fn expire_streams(&self, streams: &[String]) -> Result<u64> {
        let inner = &*self.inner;
        let _writer = inner.write_lock.lock().expect("event log write lock poisoned");
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for stream in streams {
            let version = self.stream_version(stream)?;
            for v in 1..=version {
                let entry = keys::stream_entry(stream, v);
                if let Some(position) = inner.tree.get(&entry)? {
                    batch.remove(keys::event(keys::be_u64(&position)));
                    removed += 1;
                }
                batch.remove(entry);
            }
            batch.remove(keys::stream_version(stream));
            batch.remove(keys::stream_head(stream));
            if let Some(at) = keys::read_u64(&inner.tree, &keys::stream_expiry(stream))? {
                batch.remove(keys::expiry(at, stream));
            }
            batch.remove(keys::stream_expiry(stream));
        }
        inner.tree.apply_batch(batch)?;
        inner.flusher.written();
        metrics::counter!("eventlog_streams_expired_total").increment(streams.len() as u64);
        Ok(removed)
    }

    /// One value of a projection.
    pub fn projection_get(&self, projection: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.tree.get(keys::projection(projection, key))?.map(|v| v.to_vec()))
    }

    /// The values of a projection whose keys start with `prefix`, in key order.
    pub fn projection_scan<'a>(
        &'a self,
        projection: &str,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(Vec<u8>, Vec<u8>)>> + use<'a> {
        let strip = keys::projection(projection, b"").len();
        self.inner.tree.scan_prefix(keys::projection(projection, prefix)).map(move |entry| {
            let (k, v) = entry?;
            Ok((k[strip..].to_vec(), v.to_vec()))
        })
    }

    /// Recomputes every stream's hash chain (see [`chain`]) and says where one does not hold.
    pub fn verify_chains(&self) -> Result<chain::ChainReport> {
        chain::verify(&self.inner.tree)
    }

    /// Replays every event through the projections from nothing and returns what they would hold.
    pub fn replay_projections(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let empty = sled::Config::new().temporary(true).open()?.open_tree("replay")?;
        let mut rebuilt = BTreeMap::new();
        for event in self.read_all() {
            fold(&self.inner.projections, &empty, &mut rebuilt, &event?)?;
        }
        Ok(rebuilt.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// What the projections hold now, keyed as [`Log::replay_projections`] keys them.
    pub fn live_projections(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.inner
            .tree
            .scan_prefix(keys::PROJECTION_PREFIX)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// Rebuilds the projections if any of them was built by another version of its shape (or
    /// by none: a log that held events before the projection existed), and records the versions.
    fn rebuild_outdated_projections(&self) -> Result<()> {
        let tree = &self.inner.tree;
        let recorded = |p: &Arc<dyn Projection>| -> Result<Option<u64>> {
            Ok(keys::read_u64(tree, &keys::projection_version(p.name()))?)
        };
        let mut outdated = false;
        for projection in &self.inner.projections {
            outdated |= recorded(projection)? != Some(u64::from(projection.version()));
        }
        if !outdated {
            return Ok(());
        }
        let has_events = tree.scan_prefix(keys::EVENT_PREFIX).next().is_some();
        if has_events {
            tracing::info!(partition = self.inner.partition, "rebuilding projections of an older shape");
            self.rebuild_projections()?;
        }
        for projection in &self.inner.projections {
            tree.insert(keys::projection_version(projection.name()), &u64::from(projection.version()).to_be_bytes())?;
        }
        tree.flush()?;
        Ok(())
    }

    /// Replaces every projection with its replay from the log. Used after a projection changes
    /// shape, and by audits that distrust the live copy.
    pub fn rebuild_projections(&self) -> Result<()> {
        let _writer = self.inner.write_lock.lock().expect("event log write lock poisoned");
        let rebuilt = self.replay_projections()?;
        let mut batch = sled::Batch::default();
        for entry in self.inner.tree.scan_prefix(keys::PROJECTION_PREFIX).keys() {
            batch.remove(entry?);
        }
        for (k, v) in rebuilt {
            batch.insert(k, v);
        }
        self.inner.tree.apply_batch(batch)?;
        Ok(())
    }
}

/// Folds one event into every projection, reading through `overlay` so that events earlier in
/// the same batch are seen.
fn fold(
    projections: &[Arc<dyn Projection>],
    tree: &sled::Tree,
    overlay: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    event: &RecordedEvent,
) -> Result<()> {
    for projection in projections {
        let mut writer = ProjectionWriter::new(projection.name(), tree, overlay);
        projection
            .apply(event, &mut writer)
            .map_err(|message| Error::Projection { name: projection.name(), message })?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
