//! Idempotency keys inside the partition actor: one small stream per key of an org
//! (`idempotency/<org>/<key>`), folded when a request names the key. Nothing is kept in memory
//! between requests, and no request reads another key's history.
//!
//! Each start of a key's use sets when its stream expires (its retention after that start), in
//! the event log's expiry index, and a periodic sweep removes streams past it, a bounded number
//! at a time, reading only the index entries that are due. The fingerprint a key records is an
//! HMAC, under the vault's key, of the digest the gateway sent.

use domain::Timestamp;
use domain::idempotency::{self, IdempotencyEvent, KeyState, StoredResponse, Window};
use domain::ids::OrgId;
use eventlog::{ExpectedVersion, StreamAppend, StreamExpiry};
use wire::pb::{self, Failure, Reply, reply};

use super::{Decided, Outcome, Partition, storage_failure};
use crate::streams;

/// How often expired keys are swept: every minute, or more often when keys are kept shorter (in
/// tests), so a key is gone soon after its retention whatever it is.
pub(super) fn sweep_interval(retention_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis((retention_ms / 4).clamp(50, 60_000) as u64)
}

/// How many expired keys one sweep removes at most, so a sweep never holds up the actor long.
pub(super) const MAX_EXPIRED_PER_SWEEP: usize = 256;

/// Events for a key's stream, at the version the key was folded to.
fn key_append(org: OrgId, key: &str, folded: &actor::Folded<KeyState>, events: &[IdempotencyEvent]) -> StreamAppend {
    StreamAppend {
        stream: streams::idempotency(org, key),
        expected: ExpectedVersion::Exactly(folded.version),
        events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
    }
}

impl Partition {
    fn load_key(&self, org: OrgId, key: &str) -> Result<actor::Folded<KeyState>, Failure> {
        actor::fold(&self.log, &streams::idempotency(org, key), KeyState::apply).map_err(storage_failure)
    }

    /// The key a command was sent under, if its request is running (begun, not completed):
    /// only then is what the command creates recorded with it.
    pub(super) fn running_key(
        &self,
        org: OrgId,
        key: String,
    ) -> Result<Option<(String, actor::Folded<KeyState>)>, Failure> {
        let folded = self.load_key(org, &key)?;
        Ok(folded.state.is_running().then_some((key, folded)))
    }

    /// The append that records, with the key, what its request created.
    pub(super) fn effected(
        org: OrgId,
        key: &str,
        folded: &actor::Folded<KeyState>,
        resource: u64,
        at: Timestamp,
    ) -> StreamAppend {
        key_append(org, key, folded, &[IdempotencyEvent::Effected { key: key.to_owned(), resource, at }])
    }

    fn record_key(
        &self,
        org: OrgId,
        key: &str,
        folded: &actor::Folded<KeyState>,
        events: Vec<IdempotencyEvent>,
    ) -> Result<Option<eventlog::Pending>, Failure> {
        if events.is_empty() {
            return Ok(None);
        }
        let window = self.window();
        let expiries = events
            .iter()
            .filter_map(|e| window.expiry_of(e))
            .map(|at| StreamExpiry { stream: streams::idempotency(org, key), expires_at_ms: at.0 })
            .collect();
        let pending = super::append_expiring(
            &self.log,
            self.request_id.as_deref(),
            vec![key_append(org, key, folded, &events)],
            expiries,
        )
        .map_err(storage_failure)?;
        Ok(Some(pending))
    }

    fn window(&self) -> Window {
        Window {
            retention_ms: self.limits.idempotency_retention_ms,
            abandoned_after_ms: self.limits.idempotency_abandoned_after_ms,
        }
    }

    /// Gives the keys recorded before keys had deadlines (by an older version, which also kept
    /// the responses' secrets) the deadline of their retention after their last event, so that
    /// the sweep removes them too. The log does it once (see `Log::expire_unexpiring`).
    pub(super) fn expire_keys_recorded_without_deadline(&self) {
        let prefix = streams::IDEMPOTENCY_PREFIX;
        match self.log.expire_unexpiring(prefix, self.limits.idempotency_retention_ms) {
            Ok(0) => {}
            Ok(given) => tracing::info!(keys = given, "gave idempotency keys recorded without a deadline one"),
            Err(e) => tracing::error!(error = %e, "could not give old idempotency keys a deadline"),
        }
    }

    /// Removes the streams of keys whose retention is over, up to [`MAX_EXPIRED_PER_SWEEP`].
    /// They are records kept for a while, not history: no projection folds them, so the
    /// projections' replay and every other stream's chain are as they were.
    pub fn sweep_expired_keys(&mut self) {
        let expired = match self.log.expired_streams(self.clock.now().0, MAX_EXPIRED_PER_SWEEP) {
            Ok(expired) => expired,
            Err(e) => return tracing::error!(error = %e, "could not read expired idempotency keys"),
        };
        if expired.is_empty() {
            return;
        }
        match self.log.expire_streams(&expired) {
            Ok(events) => tracing::debug!(keys = expired.len(), events, "expired idempotency keys"),
            Err(e) => tracing::error!(error = %e, "could not expire idempotency keys"),
        }
    }

    pub(super) fn begin_idempotent(&mut self, org: OrgId, key: &str, digest: &[u8]) -> Outcome {
        let folded = self.load_key(org, key)?;
        let fingerprint = self.vault.fingerprint(digest);
        let (begin, events) = idempotency::begin(&folded.state, key, &fingerprint, self.clock.now(), self.window());
        let pending = self.record_key(org, key, &folded, events)?;
        // A replay rests on the key's completion, which may not be flushed yet.
        let pending = self.rests_on(pending);
        Ok(Decided { pending, reply: wire::idempotency_decision(key, digest, begin) })
    }

    pub(super) fn complete_idempotent(
        &mut self,
        org: OrgId,
        key: &str,
        digest: &[u8],
        response: StoredResponse,
    ) -> Outcome {
        let folded = self.load_key(org, key)?;
        let fingerprint = self.vault.fingerprint(digest);
        let events = idempotency::complete(&folded.state, key, &fingerprint, response, self.clock.now());
        let pending = self.rests_on(self.record_key(org, key, &folded, events)?);
        Ok(Decided { pending, reply: Reply::with(reply::Result::Done(pb::Empty {})) })
    }
}
