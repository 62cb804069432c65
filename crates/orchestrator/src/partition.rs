//! The actor that owns one partition: it takes the partition's inputs one at a time, decides
//! with the domain, appends, and records what is to be done (an answer included) as effects,
//! which the runner performs once what they rest on is durable (see `effects`).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use actor::Folded;
use domain::call::{CallCommand, CallState, Timer};
use domain::directory::{self, DirectoryCommand, DirectoryEvent, DirectoryState};
use domain::ids::{CallId, IdSequence, OrgId, Partitioning};
use domain::org::{self, OrgCommand, OrgEvent, OrgState};
use domain::{Ctx, Timestamp};
use eventlog::{ExpectedVersion, Log, Pending, StreamAppend};
use wire::pb::{self, Failure, FailureKind, Reply, reply};

use crate::streams;

mod calls;
pub mod effects;
mod idempotency;
mod numbers;
pub(crate) mod runner;
mod secrets;
mod test_calls;
mod verification;

#[cfg(test)]
mod tests;

pub use calls::CallLimits;
use effects::{Effect, Finished, Work};
pub use verification::Verifications;

pub struct Partition {
    log: Log,
    ids: IdSequence,
    /// Org states folded so far. Configurations are small, so they stay in memory once read.
    orgs: BTreeMap<OrgId, Folded<OrgState>>,
    /// Present only in the directory partition.
    directory: Option<Folded<DirectoryState>>,
    /// Numbers of an org being claimed in the directory: one claim of a number at a time, so
    /// the org records a number under the claim the directory holds for it.
    claiming: HashSet<(OrgId, domain::E164)>,
    limits: CallLimits,
    /// Calls that run or are not yet billed. Ended and billed calls leave memory.
    calls: BTreeMap<CallId, Folded<CallState>>,
    /// Deadlines of the calls' timers, earliest first. Derived from the calls' states.
    timers: BTreeSet<(Timestamp, CallId, Timer)>,
    /// How many test-call runs of each org run now (queued or in progress), kept as calls
    /// change, so the limit of concurrent runs is checked without looking at other calls.
    running_tests: BTreeMap<OrgId, u32>,
    /// Calls whose settlement or void is being sent to billing.
    billing_in_flight: HashSet<CallId>,
    /// The verifications of connections running, and what bounds them.
    verifications: Verifications,
    /// Test-call batches with runs left to launch.
    batches: BTreeMap<u64, Folded<domain::test_call::BatchState>>,
    /// When each batch's next run is due. Derived from the batches' states.
    batch_timers: BTreeSet<(Timestamp, u64)>,
    /// The id of the request being handled, recorded as the correlation id of its events.
    request_id: Option<String>,
    /// Seals and opens the partition's secrets, and keys idempotency fingerprints.
    vault: crate::vault::Vault,
    clock: actor::SharedClock,
    /// What the decisions so far asked of the world, not yet taken by whoever performs it.
    outbox: Vec<Work>,
}

/// The reply to a command and what it rests on: the events the command appended, or for one that
/// appended nothing, the partition's [`Log::barrier`]. The reply goes once that is durable.
struct Decided {
    pending: Pending,
    reply: Reply,
}

type Outcome = Result<Decided, Failure>;

impl Partition {
    pub fn open(
        partitioning: Partitioning,
        log: Log,
        limits: CallLimits,
        verifications: Verifications,
        vault: crate::vault::Vault,
        clock: actor::SharedClock,
    ) -> Result<Self, eventlog::Error> {
        let directory = if log.partition() == partitioning.directory() {
            Some(actor::fold(&log, streams::DIRECTORY, DirectoryState::apply)?)
        } else {
            None
        };
        Ok(Self {
            ids: actor::resume_ids(&log, partitioning)?,
            log,
            orgs: BTreeMap::new(),
            directory,
            claiming: HashSet::new(),
            limits,
            calls: BTreeMap::new(),
            timers: BTreeSet::new(),
            running_tests: BTreeMap::new(),
            billing_in_flight: HashSet::new(),
            verifications,
            batches: BTreeMap::new(),
            batch_timers: BTreeSet::new(),
            request_id: None,
            vault,
            clock,
            outbox: Vec::new(),
        })
    }

    pub fn partition(&self) -> u32 {
        self.log.partition()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Takes back what was under way before a restart: calls, batches, and old keys' deadlines.
    pub fn start(&mut self) {
        if let Err(failure) = self.resume_calls().and_then(|()| self.resume_batches()) {
            tracing::error!(partition = self.log.partition(), detail = %failure.detail, "could not resume calls");
        }
        self.expire_keys_recorded_without_deadline();
    }

    /// What the decisions so far asked of the world, for the caller to perform.
    pub fn take_effects(&mut self) -> Vec<Work> {
        std::mem::take(&mut self.outbox)
    }

    /// Records an effect of the decision being made.
    fn perform(&mut self, effect: Effect) {
        self.outbox.push(Work { request_id: self.request_id.clone(), effect });
    }

    /// When the earliest timer (of a call or a batch) is due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let call = self.timers.first().map(|(at, _, _)| *at);
        let batch = self.batch_timers.first().map(|(at, _)| *at);
        call.into_iter().chain(batch).min()
    }

    /// Takes in work that finished outside the actor.
    pub fn finished(&mut self, finished: Finished) {
        match finished {
            Finished::Verified { org, subject, outcome } => self.verified(org, subject, outcome),
            Finished::Reserved { placement, outcome } => {
                // The work continues the request that placed the call, under its id.
                self.request_id = placement.request.as_ref().and_then(request_id_of);
                self.initiate_call(*placement, outcome);
                self.request_id = None;
            }
            Finished::Dialed { call, outcome, request } => {
                self.request_id = request.as_ref().and_then(request_id_of);
                self.dialed(call, outcome, request);
                self.request_id = None;
            }
            Finished::Claimed { claim, outcome } => self.claimed(*claim, outcome),
            Finished::Billed { call, outcome } => {
                self.billing_in_flight.remove(&call);
                if let Some(command) = outcome
                    && let Err(f) = self.drive_call(call, command)
                {
                    tracing::error!(%call, detail = %f.detail, "could not record billing");
                }
            }
            Finished::Carrier { call, event } => match self.drive_call(call, CallCommand::Carrier(event)) {
                // Nobody waits on a carrier event, but what it records (an answer, and the SIP
                // dialog with it) must outlive a crash soon, not at sled's next timed flush.
                Ok(Some(after)) => self.perform(Effect::Flush { call, after }),
                Ok(None) => {}
                Err(f) => tracing::error!(call = %call, detail = %f.detail, "could not record a carrier event"),
            },
        }
    }

    /// Takes in a command from the bus.
    pub fn command(&mut self, request: bus::Message) {
        let context = actor::RequestContext::of(&request);
        let _entered = context.span("orchestrator", self.log.partition()).entered();
        self.request_id = context.into_request_id();
        self.handle_command(request);
        self.request_id = None;
    }

    fn handle_command(&mut self, request: bus::Message) {
        use wire::OrchestratorCommand as C;
        let (org, command) = match wire::orchestrator_command(&request.payload) {
            Ok(read) => read,
            Err(failure) => return self.answer(request, Err(failure)),
        };
        let outcome = match command {
            C::RegisterOrg { name } => {
                self.commit_directory(DirectoryCommand::RegisterOrg { name }).map(|(events, pending)| {
                    let Some(DirectoryEvent::OrgRegistered { org_id, name, at }) = events.into_iter().next() else {
                        unreachable!("registering an org always records it")
                    };
                    let profile = org::OrgProfile::new(org_id, name, at);
                    Decided { pending, reply: Reply::with(reply::Result::Org((&profile).into())) }
                })
            }
            C::ClaimNumber { number, token } => {
                let command = DirectoryCommand::ClaimNumber { org_id: org, number: number.clone(), token };
                self.commit_directory(command).map(|(_, pending)| Decided { pending, reply: claimed(number.as_str()) })
            }
            C::ClaimDemoNumber { token } => {
                let claim = domain::directory::Claim { org_id: org, token };
                let command = DirectoryCommand::ClaimDemoNumber { org_id: org, token };
                self.commit_directory(command).map(|(_, pending)| {
                    let directory = &self.directory.as_ref().expect("a claim was decided here").state;
                    let number = directory.claimed_as(claim).expect("a demo claim that succeeds holds a number");
                    Decided { pending, reply: claimed(number.as_str()) }
                })
            }
            C::ReleaseNumber { number, token } => self
                .commit_directory(DirectoryCommand::ReleaseNumber { org_id: org, number, token })
                .map(|(_, pending)| Decided { pending, reply: done() }),
            C::CreatePhoneNumber(number) => return self.create_number(org, number, request),
            C::DeletePhoneNumber(id) => return self.delete_number(org, id, request),
            C::TestVoipConnection { vendor, provider, connection_id } => {
                return self.test_connection(org, vendor, provider, connection_id, request);
            }
            C::VerifyPhoneNumber(id) => return self.verify_number(org, id, request),
            C::CreateVoipConnection { name, vendor, provider, evidence_id } => {
                self.create_connection(org, name, vendor, provider, evidence_id)
            }
            C::UpdateVoipConnection { id, name, trunk } => {
                return self.update_connection(org, id, name, trunk, request);
            }
            C::DeleteVoipConnection(id) => return self.delete_connection(org, id, request),
            C::PlaceCall { call, idempotency_key } => return self.place_call(org, call, idempotency_key, request),
            C::CreateTestRun(run) => return self.create_test_run(org, run, request),
            C::CreateTestBatch(spec) => return self.create_test_batch(org, spec, request),
            C::CancelTestBatch(id) => return self.cancel_test_batch(org, id, request),
            C::BeginIdempotent { key, fingerprint } => self.begin_idempotent(org, &key, &fingerprint),
            C::CompleteIdempotent { key, fingerprint, response } => {
                self.complete_idempotent(org, &key, &fingerprint, response)
            }
            C::HangupCall(call) => return self.hang_up(org, call, request),
            C::Org(command) => self.decide_org(org, command),
        };
        self.answer(request, outcome);
    }

    /// Decides an org command against the org's state and appends what it decided.
    fn decide_org(&mut self, org: OrgId, command: OrgCommand) -> Outcome {
        let folded = load_org(&self.log, &mut self.orgs, org)?;
        let events = org::decide(&folded.state, command, &mut Ctx { now: self.clock.now(), ids: &mut self.ids })?;
        let mut appends = vec![StreamAppend {
            stream: streams::org(org),
            expected: ExpectedVersion::Exactly(folded.version),
            events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
        }];
        appends.extend(actor::id_reservation(&mut self.ids));
        let pending = append(&self.log, self.request_id.as_deref(), appends).map_err(storage_failure)?;
        folded.advance(&events, OrgState::apply);
        let reply = reply_for(&folded.state, events.last().expect("every org command records an event"));
        Ok(Decided { pending, reply })
    }

    fn commit_directory(&mut self, command: DirectoryCommand) -> Result<(Vec<DirectoryEvent>, Pending), Failure> {
        let Some(folded) = &mut self.directory else {
            return Err(Failure::new(FailureKind::Internal, "misrouted", "this partition does not hold the directory"));
        };
        let events = directory::decide(&folded.state, command, &Ctx { now: self.clock.now(), ids: &mut self.ids })?;
        if events.is_empty() {
            // Already done (a claim the org holds): the answer still rests on state that may
            // not be flushed yet.
            return Ok((events, self.log.barrier()));
        }
        let pending = append(
            &self.log,
            self.request_id.as_deref(),
            vec![StreamAppend {
                stream: streams::DIRECTORY.to_owned(),
                expected: ExpectedVersion::Exactly(folded.version),
                events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
            }],
        )
        .map_err(storage_failure)?;
        folded.advance(&events, DirectoryState::apply);
        Ok((events, pending))
    }

    /// What an answer rests on: the append a decision made, or everything appended before it.
    fn rests_on(&self, appended: Option<Pending>) -> Pending {
        appended.unwrap_or_else(|| self.log.barrier())
    }
}

impl Partition {
    /// Answers a request: at once for a failure, once what it rests on is durable otherwise.
    fn answer(&mut self, request: bus::Message, outcome: Outcome) {
        self.answer_all(vec![request], outcome);
    }

    /// Answers every one of `requests` alike, as [`Partition::answer`] answers one.
    fn answer_all(&mut self, requests: Vec<bus::Message>, outcome: Outcome) {
        let effect = match outcome {
            Ok(Decided { pending, reply }) => Effect::Answer { requests, reply, after: Some(pending) },
            Err(failure) => Effect::Answer { requests, reply: Reply::failure(failure), after: None },
        };
        self.perform(effect);
    }

    /// Answers a request, if anyone waits for it.
    fn reply_to(&mut self, request: Option<bus::Message>, outcome: Outcome) {
        if let Some(request) = request {
            self.answer(request, outcome);
        }
    }
}

fn request_id_of(request: &bus::Message) -> Option<String> {
    actor::RequestContext::of(request).into_request_id()
}

fn load_org<'a>(
    log: &Log,
    orgs: &'a mut BTreeMap<OrgId, Folded<OrgState>>,
    org: OrgId,
) -> Result<&'a mut Folded<OrgState>, Failure> {
    if let std::collections::btree_map::Entry::Vacant(e) = orgs.entry(org) {
        let folded = actor::fold(log, &streams::org(org), OrgState::apply).map_err(storage_failure)?;
        e.insert(folded);
    }
    Ok(orgs.get_mut(&org).expect("inserted above"))
}

/// What a command answers: the resource its last event created or changed, or nothing.
fn reply_for(state: &OrgState, last: &OrgEvent) -> Reply {
    use reply::Result as R;
    let result = match last {
        OrgEvent::OrgCreated { .. }
        | OrgEvent::TrialSet { .. }
        | OrgEvent::TestCallLimitSet { .. }
        | OrgEvent::RateLimitSet { .. }
        | OrgEvent::QuotaSet { .. } => R::Org(state.profile.as_ref().expect("an org event leaves a profile").into()),
        OrgEvent::ApiKeyCreated { id, .. } => R::ApiKey((&state.keys[id]).into()),
        OrgEvent::AgentCreated { id, .. } | OrgEvent::AgentUpdated { id, .. } => R::Agent((&state.agents[id]).into()),
        OrgEvent::VoipConnectionCreated { id, .. }
        | OrgEvent::VoipConnectionVerified { id, .. }
        | OrgEvent::VoipConnectionProven { id, .. }
        | OrgEvent::VoipConnectionUpdated { id, .. } => {
            R::VoipConnection(wire::connection_with_numbers(&state.connections[id], state.numbers.values()))
        }
        OrgEvent::PhoneNumberCreated { id, .. }
        | OrgEvent::PhoneNumberAgentsChanged { id, .. }
        | OrgEvent::PhoneNumberUpdated { id, .. }
        | OrgEvent::PhoneNumberVerified { id, .. } => R::PhoneNumber((&state.numbers[id]).into()),
        // Its caller answers with the evidence itself.
        OrgEvent::VoipConnectionTested { .. } => R::Done(pb::Empty {}),
        OrgEvent::ApiKeyRevoked { .. }
        | OrgEvent::AgentDeleted { .. }
        | OrgEvent::VoipConnectionDeleted { .. }
        | OrgEvent::PhoneNumberDeleted { .. } => R::Done(pb::Empty {}),
    };
    Reply::with(result)
}

fn claimed(number: &str) -> Reply {
    Reply::with(reply::Result::NumberClaimed(pb::NumberClaimed { number: number.to_owned() }))
}

fn done() -> Reply {
    Reply::with(reply::Result::Done(pb::Empty {}))
}

pub(crate) fn storage_failure(error: eventlog::Error) -> Failure {
    tracing::error!(%error, "event log failure");
    Failure::new(FailureKind::Unavailable, "storage_unavailable", "The event store is unavailable; retry later.")
}

/// Appends, tagging the events with the request that caused them, if any.
fn append(log: &Log, request_id: Option<&str>, appends: Vec<StreamAppend>) -> Result<Pending, eventlog::Error> {
    append_expiring(log, request_id, appends, Vec::new())
}

/// Appends as [`append`] does, setting when streams kept for a while expire.
fn append_expiring(
    log: &Log,
    request_id: Option<&str>,
    mut appends: Vec<StreamAppend>,
    expiries: Vec<eventlog::StreamExpiry>,
) -> Result<Pending, eventlog::Error> {
    if let Some(id) = request_id {
        for event in appends.iter_mut().flat_map(|a| a.events.iter_mut()) {
            event.correlation_id.get_or_insert_with(|| id.to_owned());
        }
    }
    log.append_expiring(appends, expiries)
}
