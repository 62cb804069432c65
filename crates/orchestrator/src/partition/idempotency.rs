//! Idempotency keys inside the partition actor: one small stream per key of an org
//! (`idempotency/<org>/<key>`), folded when a request names the key. Nothing is kept in memory
//! between requests, and no request reads another key's history.

use domain::idempotency::{self, Begin, IdempotencyEvent, KeyState, StoredResponse};
use domain::ids::OrgId;
use eventlog::{ExpectedVersion, StreamAppend};
use wire::pb::{self, Failure, FailureKind, Reply, idempotency_decision::Decision, reply};

use super::{Decided, Outcome, Partition, storage_failure};

fn stream(org: OrgId, key: &str) -> String {
    format!("idempotency/{org}/{key}")
}

/// Events for a key's stream, at the version the key was folded to.
fn key_append(org: OrgId, key: &str, folded: &actor::Folded<KeyState>, events: &[IdempotencyEvent]) -> StreamAppend {
    StreamAppend {
        stream: stream(org, key),
        expected: ExpectedVersion::Exactly(folded.version),
        events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
    }
}

impl Partition {
    fn load_key(&self, org: OrgId, key: &str) -> Result<actor::Folded<KeyState>, Failure> {
        actor::fold(&self.log, &stream(org, key), KeyState::apply).map_err(storage_failure)
    }

    /// The key a command was sent under, if its request is running (begun, not completed):
    /// only then is what the command creates recorded with it.
    pub(super) fn running_key(
        &self,
        org: OrgId,
        raw: &str,
    ) -> Result<Option<(String, actor::Folded<KeyState>)>, Failure> {
        let key =
            idempotency::parse_key(raw).map_err(|detail| Failure::new(FailureKind::Invalid, "bad_message", detail))?;
        let folded = self.load_key(org, &key)?;
        Ok(folded.state.is_running().then_some((key, folded)))
    }

    /// The append that records, with the key, what its request created.
    pub(super) fn effected(org: OrgId, key: &str, folded: &actor::Folded<KeyState>, resource: u64) -> StreamAppend {
        key_append(org, key, folded, &[IdempotencyEvent::Effected { key: key.to_owned(), resource, at: actor::now() }])
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
        let pending = super::append(&self.log, self.request_id.as_deref(), vec![key_append(org, key, folded, &events)])
            .map_err(storage_failure)?;
        Ok(Some(pending))
    }

    pub(super) fn begin_idempotent(&mut self, org: OrgId, request: pb::IdempotentRequest) -> Outcome {
        let folded = self.load_key(org, &request.key)?;
        let abandoned_after_ms = self.limits.idempotency_abandoned_after_ms;
        let (decision, events) =
            idempotency::begin(&folded.state, &request.key, &request.fingerprint, actor::now(), abandoned_after_ms);
        let pending = self.record_key(org, &request.key, &folded, events)?;
        // A replay rests on the key's completion, which may not be flushed yet.
        let pending = self.rests_on(pending);
        let decision = match decision {
            Begin::Proceed => Decision::Proceed(pb::Empty {}),
            Begin::Replay(r) => Decision::Replay(pb::IdempotentResponse {
                key: request.key,
                fingerprint: request.fingerprint,
                status: r.status.into(),
                body: r.body,
            }),
            Begin::Conflict => Decision::Conflict(pb::Empty {}),
            Begin::InProgress => Decision::InProgress(pb::Empty {}),
        };
        let reply = Reply::with(reply::Result::Idempotency(pb::IdempotencyDecision { decision: Some(decision) }));
        Ok(Decided { pending, reply })
    }

    pub(super) fn complete_idempotent(&mut self, org: OrgId, response: pb::IdempotentResponse) -> Outcome {
        let folded = self.load_key(org, &response.key)?;
        let stored = StoredResponse { status: response.status.min(u16::MAX.into()) as u16, body: response.body };
        let events = idempotency::complete(&folded.state, &response.key, &response.fingerprint, stored, actor::now());
        let pending = self.rests_on(self.record_key(org, &response.key, &folded, events)?);
        Ok(Decided { pending, reply: Reply::with(reply::Result::Done(pb::Empty {})) })
    }
}
