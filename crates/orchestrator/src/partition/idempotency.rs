//! Idempotency keys inside the partition actor: one stream per org (`idempotency/<org>`).

use domain::idempotency::{self, Begin, IdempotencyState, StoredResponse};
use domain::ids::OrgId;
use eventlog::{ExpectedVersion, StreamAppend};
use wire::pb::{self, Failure, Reply, idempotency_decision::Decision, reply};

use super::{Decided, Outcome, Partition, storage_failure};

fn stream(org: OrgId) -> String {
    format!("idempotency/{org}")
}

impl Partition {
    fn record_idempotency(
        &mut self,
        org: OrgId,
        events: Vec<idempotency::IdempotencyEvent>,
    ) -> Result<Option<eventlog::Pending>, Failure> {
        if events.is_empty() {
            return Ok(None);
        }
        let folded = self.idempotency.get_mut(&org).expect("loaded before deciding");
        let pending = super::append(
            &self.log,
            self.request_id.as_deref(),
            vec![StreamAppend {
                stream: stream(org),
                expected: ExpectedVersion::Exactly(folded.version),
                events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
            }],
        )
        .map_err(storage_failure)?;
        folded.advance(&events, IdempotencyState::apply);
        Ok(Some(pending))
    }

    fn load_idempotency(&mut self, org: OrgId) -> Result<&mut actor::Folded<IdempotencyState>, Failure> {
        if !self.idempotency.contains_key(&org) {
            let folded = actor::fold(&self.log, &stream(org), IdempotencyState::apply).map_err(storage_failure)?;
            self.idempotency.insert(org, folded);
        }
        let folded = self.idempotency.get_mut(&org).expect("inserted above");
        folded.state.forget_expired(actor::now());
        Ok(folded)
    }

    pub(super) fn begin_idempotent(&mut self, org: OrgId, request: pb::IdempotentRequest) -> Outcome {
        let folded = self.load_idempotency(org)?;
        let (decision, events) = idempotency::begin(&folded.state, &request.key, &request.fingerprint, actor::now());
        let pending = self.record_idempotency(org, events)?;
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
        let folded = self.load_idempotency(org)?;
        let stored = StoredResponse { status: response.status.min(u16::MAX.into()) as u16, body: response.body };
        let events = idempotency::complete(&folded.state, &response.key, &response.fingerprint, stored, actor::now());
        let pending = self.record_idempotency(org, events)?;
        Ok(Decided { pending, reply: Reply::with(reply::Result::Done(pb::Empty {})) })
    }
}
