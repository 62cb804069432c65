//! Verifying VoIP connections inside the partition actor, within the bounds of
//! [`domain::verification_budget`]: the budget decides, the actor applies it (probes run outside
//! the actor, and their outcome comes back through its inbox, to be recorded like any command).

use std::collections::HashMap;
use std::sync::Arc;

use domain::ids::{OrgId, VoipConnectionId};
use domain::org::{OrgCommand, Resource};
use domain::verification_budget::{Admission, VerificationBudget, VerificationLimits};
use tokio::sync::Semaphore;
use wire::pb::{Failure, FailureKind};

use super::effects::Effect;
use super::{Partition, load_org};

/// What the partition keeps of the verifications it runs.
pub struct Verifications {
    limits: VerificationLimits,
    /// Bounds the probes of the whole process; shared by every partition it owns.
    slots: Arc<Semaphore>,
    budget: VerificationBudget,
    /// Who waits for the probe of each connection in flight: the request that started it and
    /// any that joined it.
    waiting: HashMap<(OrgId, VoipConnectionId), Vec<bus::Message>>,
}

impl Verifications {
    /// `slots` holds [`VerificationLimits::max_probes_in_flight`] permits, for the process.
    pub fn new(limits: VerificationLimits, slots: Arc<Semaphore>) -> Self {
        Self { limits, slots, budget: VerificationBudget::default(), waiting: HashMap::new() }
    }
}

impl Partition {
    /// Asks the carrier to check a connection, outside the actor, if the budget allows; a
    /// request for a connection already being probed waits for that probe's outcome.
    pub(super) fn start_verification(&mut self, org: OrgId, connection: VoipConnectionId, request: bus::Message) {
        let provider = match load_org(&self.log, &mut self.orgs, org) {
            Ok(folded) => match folded.state.connections.get(&connection) {
                Some(c) => c.provider.clone(),
                None => return self.answer(request, Err(wire::not_found(Resource::VoipConnection))),
            },
            Err(failure) => return self.answer(request, Err(failure)),
        };
        let v = &mut self.verifications;
        let permit = v.slots.clone().try_acquire_owned().ok();
        match v.budget.admit(&v.limits, org, connection, self.clock.now(), permit.is_some()) {
            Admission::Probe => {}
            Admission::Join => return v.waiting.entry((org, connection)).or_default().push(request),
            Admission::OrgRateLimited { retry_after_seconds } => {
                let detail = format!(
                    "Too many verifications: at most {} per organization per minute.",
                    v.limits.per_org_per_minute
                );
                return self.answer(request, Err(too_many(detail, retry_after_seconds)));
            }
            Admission::Busy => {
                let detail = "Too many verifications are in progress; retry shortly.";
                return self.answer(request, Err(too_many(detail.into(), 1)));
            }
        }
        v.waiting.insert((org, connection), vec![request]);
        let provider = self.open_provider(&provider);
        self.perform(Effect::Verify { org, connection, provider, slot: permit });
    }

    /// Records how a probe went and answers everyone who waited for it, once it is durable.
    pub(super) fn verified(&mut self, org: OrgId, connection: VoipConnectionId, outcome: Result<(), String>) {
        self.verifications.budget.finished(org, connection);
        let waiting = self.verifications.waiting.remove(&(org, connection)).unwrap_or_default();
        let outcome = self.decide_org(org, OrgCommand::RecordVerification { id: connection, outcome });
        self.answer_all(waiting, outcome);
    }
}

fn too_many(detail: String, retry_after_seconds: u32) -> Failure {
    Failure {
        retry_after_seconds: Some(retry_after_seconds),
        ..Failure::new(FailureKind::TooManyRequests, "rate_limited", detail)
    }
}
