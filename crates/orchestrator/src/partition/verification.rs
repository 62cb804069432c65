//! Probes inside the partition actor, within the bounds of [`domain::verification_budget`]: the
//! budget decides, the actor applies it (probes run outside the actor, and their outcome comes
//! back through its inbox, to be recorded like any command).
//!
//! Two things probe: a connection test (`POST /v1/voip-connections/test`), whose outcome is
//! recorded as evidence a create may present, and a number's verification (`verify-voip`),
//! which probes the trunk that carries the number (an `OPTIONS` probe: signaling only, no call
//! is billed at the carrier) and records the number verified or failed.

use std::collections::HashMap;
use std::sync::Arc;

use domain::ids::{OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{self, OrgCommand};
use domain::verification_budget::{Admission, ProbeSubject, VerificationBudget, VerificationLimits};
use domain::voip::{Evidence, Provider, Vendor};
use tokio::sync::Semaphore;
use wire::pb::{self, Failure, FailureKind, Reply, reply};

use super::effects::Effect;
use super::{Decided, Partition, load_org};

/// What the partition keeps of the probes it runs.
pub struct Verifications {
    limits: VerificationLimits,
    /// Bounds the probes of the whole process; shared by every partition it owns.
    slots: Arc<Semaphore>,
    budget: VerificationBudget,
    /// Names each connection test's probe: tests never share a probe.
    next_test: u64,
    /// What each probe in flight will record, and who waits for it: the request that started
    /// it and any that joined it.
    waiting: HashMap<(OrgId, ProbeSubject), (Probed, Vec<bus::Message>)>,
}

/// What a probe's outcome is recorded as.
#[derive(Debug)]
enum Probed {
    /// The evidence of a connection test, its outcome still to be filled in.
    Test(Evidence),
    /// A number's verification, named by this evidence id.
    Number { id: PhoneNumberId, evidence_id: String },
}

impl Verifications {
    /// `slots` holds [`VerificationLimits::max_probes_in_flight`] permits, for the process.
    pub fn new(limits: VerificationLimits, slots: Arc<Semaphore>) -> Self {
        Self { limits, slots, budget: VerificationBudget::default(), next_test: 0, waiting: HashMap::new() }
    }
}

/// An evidence id: a UUID (version 8) holding an id allocated in the partition, so it is unique
/// without a random source and a replay or a simulation reproduces it. It names evidence of
/// one org only, which only that org's requests look up.
fn evidence_id(id: u64) -> String {
    format!("00000000-0000-8000-8{:03x}-{:012x}", id >> 48, id & 0xffff_ffff_ffff)
}

impl Partition {
    /// Tests a configuration: probes it (if the budget allows) and records the outcome as
    /// evidence, which the answer shows.
    pub(super) fn test_connection(
        &mut self,
        org: OrgId,
        vendor: Vendor,
        provider: Provider,
        connection_id: Option<VoipConnectionId>,
        request: bus::Message,
    ) {
        let checked = load_org(&self.log, &mut self.orgs, org).and_then(|folded| match connection_id {
            Some(c) if !folded.state.connections.contains_key(&c) => {
                Err(wire::not_found(domain::org::Resource::VoipConnection))
            }
            _ => Ok(()),
        });
        if let Err(failure) = checked {
            return self.answer(request, Err(failure));
        }
        self.verifications.next_test += 1;
        let subject = ProbeSubject::Test(self.verifications.next_test);
        let evidence = Evidence {
            id: evidence_id(self.ids.next_id()),
            vendor,
            trunk: provider.summary(),
            fingerprint: self.vault.config_fingerprint(vendor, &provider),
            connection_id,
            error: None,
            at: self.clock.now(),
            used: false,
        };
        self.probe(org, subject, Probed::Test(evidence), Ok(provider), request);
    }

    /// Verifies a number by probing the trunk of its connection.
    pub(super) fn verify_number(&mut self, org: OrgId, id: PhoneNumberId, request: bus::Message) {
        let provider = match load_org(&self.log, &mut self.orgs, org) {
            Ok(folded) => match org::number_to_verify(&folded.state, id) {
                Ok((_, connection)) => connection.provider.clone(),
                Err(e) => return self.answer(request, Err(e.into())),
            },
            Err(failure) => return self.answer(request, Err(failure)),
        };
        let provider = self.open_provider(&provider);
        let probed = Probed::Number { id, evidence_id: evidence_id(self.ids.next_id()) };
        self.probe(org, ProbeSubject::Number(id), probed, provider, request);
    }

    /// Asks the carrier to probe, outside the actor, if the budget allows; a request for a
    /// subject already being probed waits for that probe's outcome.
    fn probe(
        &mut self,
        org: OrgId,
        subject: ProbeSubject,
        probed: Probed,
        provider: Result<Provider, String>,
        request: bus::Message,
    ) {
        let v = &mut self.verifications;
        let permit = v.slots.clone().try_acquire_owned().ok();
        match v.budget.admit(&v.limits, org, subject, self.clock.now(), permit.is_some()) {
            Admission::Probe => {}
            Admission::Join => {
                if let Some((_, waiting)) = v.waiting.get_mut(&(org, subject)) {
                    waiting.push(request);
                }
                return;
            }
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
        v.waiting.insert((org, subject), (probed, vec![request]));
        self.perform(Effect::Verify { org, subject, provider, slot: permit });
    }

    /// Records how a probe went and answers everyone who waited for it, once it is durable.
    pub(super) fn verified(&mut self, org: OrgId, subject: ProbeSubject, outcome: Result<(), String>) {
        self.verifications.budget.finished(org, subject);
        let Some((probed, waiting)) = self.verifications.waiting.remove(&(org, subject)) else {
            return;
        };
        let outcome = match probed {
            Probed::Test(mut evidence) => {
                evidence.error = outcome.err();
                let shown = pb::ConnectionEvidence::from(&evidence);
                self.decide_org(org, OrgCommand::RecordConnectionTest { evidence }).map(|decided| Decided {
                    pending: decided.pending,
                    reply: Reply::with(reply::Result::ConnectionTest(shown)),
                })
            }
            Probed::Number { id, evidence_id } => {
                self.decide_org(org, OrgCommand::RecordNumberVerification { id, evidence_id, outcome })
            }
        };
        self.answer_all(waiting, outcome);
    }
}

fn too_many(detail: String, retry_after_seconds: u32) -> Failure {
    Failure {
        retry_after_seconds: Some(retry_after_seconds),
        ..Failure::new(FailureKind::TooManyRequests, "rate_limited", detail)
    }
}
