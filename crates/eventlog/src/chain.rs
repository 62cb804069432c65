//! The hash chain that makes the log tamper-evident. Each event carries the SHA-256 of its
//! stream's previous event as stored, and the hash of each stream's last event is kept beside
//! its version. Changing, removing or reordering any stored event then breaks the chain at the
//! next event, or at the head; [`verify`] walks every stream and says where.
//!
//! It detects tampering with the stored log; it cannot stop someone who rewrites a whole stream
//! and its head together. An export of the heads kept elsewhere would close that gap.

use sha2::{Digest, Sha256};

use crate::{RecordedEvent, Result, keys};

pub(crate) fn hash(stored: &[u8]) -> Vec<u8> {
    Sha256::digest(stored).to_vec()
}

/// Where a stream's chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub stream: String,
    /// The event at which the chain stops holding; the stream's version + 1 when only its
    /// head is wrong (its last event was changed or removed).
    pub version: u64,
    pub reason: String,
}

/// What [`verify`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainReport {
    pub streams: u64,
    pub events: u64,
    pub breaks: Vec<ChainBreak>,
}

/// Walks every stream of a partition's tree, event by event, recomputing the chain.
pub(crate) fn verify(tree: &sled::Tree) -> Result<ChainReport> {
    let mut report = ChainReport::default();
    for entry in tree.scan_prefix(keys::STREAM_VERSION_PREFIX) {
        let (key, version) = entry?;
        let stream = String::from_utf8_lossy(&key[keys::STREAM_VERSION_PREFIX.len()..]).into_owned();
        let version = keys::be_u64(&version);
        report.streams += 1;
        let mut previous = Vec::new();
        let mut broken = None;
        for expected_version in 1..=version {
            report.events += 1;
            let stored = tree
                .get(keys::stream_entry(&stream, expected_version))?
                .map(|position| tree.get(keys::event(keys::be_u64(&position))))
                .transpose()?
                .flatten();
            let Some(stored) = stored else {
                broken = Some((expected_version, "the event is missing".to_owned()));
                break;
            };
            let event: RecordedEvent = rmp_serde::from_slice(&stored)?;
            if event.stream != stream || event.version != expected_version {
                broken = Some((expected_version, format!("holds {} v{}", event.stream, event.version)));
                break;
            }
            if event.previous_hash != previous {
                broken = Some((expected_version, "does not follow the event before it".to_owned()));
                break;
            }
            previous = hash(&stored);
        }
        if broken.is_none() && tree.get(keys::stream_head(&stream))?.as_deref() != Some(previous.as_slice()) {
            broken = Some((version + 1, "the stream's last event is not the one recorded".to_owned()));
        }
        if let Some((version, reason)) = broken {
            report.breaks.push(ChainBreak { stream, version, reason });
        }
    }
    Ok(report)
}
