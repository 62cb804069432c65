//! The key layout of a partition's tree. Each kind of entry has a one-byte prefix so that a
//! prefix scan reads exactly one kind.
//!
//! - `e` position                -> the event's envelope (global order within the partition)
//! - `s` stream NUL version      -> the event's position (a stream's events in order)
//! - `v` stream                  -> the stream's current version
//! - `h` stream                  -> the hash of the stream's last event (the head of its chain)
//! - `p` projection NUL key      -> a projection's value
//! - `m` name                    -> bookkeeping, such as the next position and the version of
//!                                    each projection's shape
//! - `x` expires_at_ms stream     -> nothing: the index of streams by when they expire
//! - `X` stream                  -> when the stream expires (to move its `x` entry)

pub const EVENT_PREFIX: &[u8] = b"e";
pub const STREAM_VERSION_PREFIX: &[u8] = b"v";
pub const PROJECTION_PREFIX: &[u8] = b"p";
pub const NEXT_POSITION: &[u8] = b"mnext_position";

/// The version of a projection's shape that the projection's keys were built by.
pub fn projection_version(name: &str) -> Vec<u8> {
    [b"mprojection_version/".as_slice(), name.as_bytes()].concat()
}

/// Set once every stream under a prefix has a deadline (see `Log::expire_unexpiring`).
pub fn deadlines_given(prefix: &str) -> Vec<u8> {
    [b"mdeadlines_given/".as_slice(), prefix.as_bytes()].concat()
}

pub fn event(position: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(b'e');
    key.extend_from_slice(&position.to_be_bytes());
    key
}

pub fn stream_entry(stream: &str, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(b's');
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

pub fn stream_version(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 1);
    key.push(b'v');
    key.extend_from_slice(stream.as_bytes());
    key
}

pub fn stream_head(stream: &str) -> Vec<u8> {
    [b"h".as_slice(), stream.as_bytes()].concat()
}

pub fn projection(name: &str, key: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(name.len() + key.len() + 2);
    full.push(b'p');
    full.extend_from_slice(name.as_bytes());
    full.push(0);
    full.extend_from_slice(key);
    full
}

pub const EXPIRY_PREFIX: &[u8] = b"x";

/// An expiry index entry: sorted by time, so the streams due first are read first.
pub fn expiry(expires_at_ms: u64, stream: &str) -> Vec<u8> {
    [b"x".as_slice(), &expires_at_ms.to_be_bytes(), stream.as_bytes()].concat()
}

pub fn stream_expiry(stream: &str) -> Vec<u8> {
    [b"X".as_slice(), stream.as_bytes()].concat()
}

pub fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("stored counters are 8 bytes"))
}

pub fn read_u64(tree: &sled::Tree, key: &[u8]) -> sled::Result<Option<u64>> {
    Ok(tree.get(key)?.map(|v| be_u64(&v)))
}
