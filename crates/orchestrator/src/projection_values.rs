//! How the orchestrator's projections store their values: MessagePack with field names, as the
//! events are, so a value written before a field was added still reads. Inside
//! `Projection::apply` a failure is a message (the append fails with it); outside, a log error.

use eventlog::Log;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

/// The value of projection `name` under `key`, if there is one.
pub(crate) fn read<T: DeserializeOwned>(log: &Log, name: &str, key: &[u8]) -> Result<Option<T>, eventlog::Error> {
    log.projection_get(name, key)?.map(|bytes| Ok(rmp_serde::from_slice(&bytes)?)).transpose()
}

/// A count or an id stored as 8 big-endian bytes (so that keys ending in ids sort by id).
pub(crate) fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("counts and ids are 8 bytes"))
}
