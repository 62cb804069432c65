//! Calls inside the partition actor: placing them, driving their state machines with carrier
//! events and timers, recording the effects they decide, and resuming them after a restart.
//!
//! Placing a call goes: check the org's rules, record the call, reserve its funds with billing
//! once the record is durable, record the grant, dial once that is durable, and answer 201 once
//! the carrier took the call. A crash before the dial was confirmed fails the call on restart
//! rather than risk dialing twice.

use domain::Timestamp;
use domain::call::{self, Action, CallCommand, CallEvent, CallSetup, CallState, EndReason, Funds, Phase};
use domain::ids::{CallId, OrgId};
use domain::ledger::Grant;
use domain::org::{self, OutboundRequest};
use domain::secret::Sealed;
use domain::test_call::counts_as_running;
use domain::voip::Provider;
use eventlog::{ExpectedVersion, Pending, StreamAppend};
use wire::BillingFailure;
use wire::pb::{Failure, FailureKind, Reply, reply};

use super::effects::Effect;
use super::{Partition, load_org, storage_failure};
use crate::{calls_projection, streams};

/// How long a call may ring, and run.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    pub ring_timeout_ms: i64,
    pub max_duration_seconds: u32,
    /// The duration a test call's cost estimate assumes.
    pub expected_test_call_seconds: u32,
    /// How long the first run of a request with an idempotency key may take before a retry
    /// runs it again (its gateway is taken for dead).
    pub idempotency_abandoned_after_ms: i64,
    /// See [`domain::call::CallSetup::placement_timeout_ms`]; longer than a dial may wait for
    /// the carrier's first answer.
    pub placement_timeout_ms: i64,
    /// How long an idempotency key is kept: a day, or less in tests.
    pub idempotency_retention_ms: i64,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            ring_timeout_ms: 30_000,
            max_duration_seconds: 3_600,
            expected_test_call_seconds: 60,
            idempotency_abandoned_after_ms: domain::idempotency::ABANDONED_AFTER_MS,
            placement_timeout_ms: domain::call::DEFAULT_PLACEMENT_TIMEOUT_MS,
            idempotency_retention_ms: domain::idempotency::RETENTION_MS,
        }
    }
}

/// How long a call whose events could not be appended waits before its timers try again.
const STORAGE_RETRY_MS: i64 = 1_000;

/// A call being placed, while billing reserves its funds.
#[derive(Debug)]
pub struct Placement {
    pub(super) org: OrgId,
    pub(super) call: CallId,
    /// The carrier to dial with, its password sealed until the dial opens it.
    pub(super) provider: Provider<Sealed>,
    /// Who waits for the answer; nobody for the runs a batch launches.
    pub(super) request: Option<bus::Message>,
    /// The test-call run the call is for, answered with once its funds are reserved.
    pub(super) run: Option<u64>,
    /// An unbilled leg dialed with the call: the inbound leg of a SIP loopback.
    pub(super) companion: Option<CallId>,
}

impl Placement {
    pub fn org(&self) -> OrgId {
        self.org
    }

    pub fn call(&self) -> CallId {
        self.call
    }
}

impl Partition {
    /// Records the call as requested (with its plan and the ids it uses, in one append),
    /// then, once that is durable, asks billing for the funds.
    pub(super) fn place_call(
        &mut self,
        org: OrgId,
        outbound: OutboundRequest,
        idempotency_key: Option<String>,
        request: bus::Message,
    ) {
        // A request run again after its gateway died: the call it placed is its answer.
        let key = match idempotency_key.map(|k| self.running_key(org, k)).transpose() {
            Ok(key) => key.flatten(),
            Err(failure) => return self.answer(request, Err(failure)),
        };
        if let Some(call) = key.as_ref().and_then(|k| k.1.state.effect()) {
            let outcome = self.placement_outcome(org, CallId(call));
            return self.answer(request, outcome);
        }
        let planned = load_org(&self.log, &mut self.orgs, org)
            .and_then(|folded| org::plan_outbound(&folded.state, outbound).map_err(Failure::from));
        let plan = match planned {
            Ok(plan) => plan,
            Err(failure) => return self.answer(request, Err(failure)),
        };
        let call = CallId(self.ids.next_id());
        let setup = plan.setup(call, org, &self.run_settings());
        let reserve = call::reservation(&setup, 1).expect("an outbound call is billed");
        let now = self.clock.now();
        let first = CallEvent::Requested { setup: Box::new(setup), at: now };
        let mut appends = vec![StreamAppend {
            stream: streams::call(call),
            expected: ExpectedVersion::NoStream,
            events: vec![actor::encode(first.event_type(), &first)],
        }];
        appends.extend(actor::id_reservation(&mut self.ids));
        if let Some((key, folded)) = &key {
            appends.push(Self::effected(org, key, folded, call.0, now));
        }
        let pending = match super::append(&self.log, self.request_id.as_deref(), appends) {
            Ok(pending) => pending,
            Err(e) => return self.answer(request, Err(storage_failure(e))),
        };
        let state = CallState::start(&first).expect("a request starts a call");
        self.follow(call, actor::Folded { state, version: 1 });
        let placement = Box::new(Placement {
            org,
            call,
            provider: plan.provider,
            request: Some(request),
            run: None,
            companion: None,
        });
        // Billing hears of the call only once the call is on record: a restart then knows
        // every reservation it may have to release.
        self.perform(Effect::Reserve { placement, reserve, after: pending });
    }

    /// Funds are reserved (or refused): the call is placed and dialed once that is durable,
    /// or the request is rejected.
    pub(super) fn initiate_call(&mut self, placement: Placement, reserved: Result<Grant, BillingFailure>) {
        let Placement { org, call, provider, request, run, companion } = placement;
        let (command, failure) = match reserved {
            Ok(grant) => (CallCommand::FundsReserved(Funds::from(&grant)), None),
            Err(refusal) => {
                let code = refusal.code().to_owned();
                (CallCommand::ReservationRefused { code }, Some(Failure::from(refusal)))
            }
        };
        let granted = failure.is_none();
        let pending = match self.drive_call(call, command) {
            Ok(pending) => pending,
            Err(f) => return self.reply_to(request, Err(f)),
        };
        // Billing may answer after the call's placement deadline gave it up (rejected, its funds
        // voided): such a call is never dialed, and the late grant is released, since the void
        // may have reached billing before the reservation did.
        let placed = self.calls.get(&call).is_some_and(|f| f.state.phase == Phase::Initiated);
        if granted && !placed {
            self.void_late_grant(org, call);
        }
        if let Some(failure) = failure.or_else(|| (!placed).then(|| self.placement_failure(call))) {
            if let Some(leg) = companion {
                // The loopback's other leg never rings without its call.
                if let Err(f) = self.drive_call(leg, CallCommand::Hangup) {
                    tracing::error!(call = %leg, detail = %f.detail, "could not end a companion leg");
                }
            }
            let pending = self.rests_on(pending);
            return self.reply_to(request, Ok(super::Decided { pending, reply: Reply::failure(failure) }));
        }
        // A run answers now, queued; a call answers once the carrier took it.
        let request = match (run, request) {
            (Some(run), Some(request)) => {
                let reply = crate::test_calls_projection::read_run(&self.log, run)
                    .map_err(storage_failure)
                    .and_then(|r| r.ok_or_else(|| Failure::internal("the run vanished")))
                    .and_then(|r| crate::queries::run_reply(&self.log, &r))
                    .map(|r| Reply::with(reply::Result::TestRun(r)));
                let pending = self.rests_on(pending);
                self.answer(request, reply.map(|reply| super::Decided { pending, reply }));
                None
            }
            (_, request) => request,
        };
        for (leg, request) in [(Some(call), request), (companion, None)] {
            let Some(leg) = leg else { continue };
            let Some(setup) = self.calls.get(&leg).map(|f| f.state.setup.clone()) else { continue };
            // The password is opened only now, for the carrier, and lives no longer than the dial.
            let dial = self.open_provider(&provider).map(|provider| dial_of(&setup, provider));
            // Dial only what is on record: a crash can then never leave an unrecorded call ringing.
            let after = self.log.barrier();
            self.perform(Effect::Dial { call: leg, dial, request, after });
        }
    }

    pub(super) fn dialed(
        &mut self,
        call: CallId,
        outcome: Result<(), telephony::DialError>,
        request: Option<bus::Message>,
    ) {
        let (command, failure) = match outcome {
            Ok(()) => (CallCommand::DialAccepted, None),
            Err(e) => {
                let failure = Failure::new(
                    FailureKind::Upstream,
                    "carrier_error",
                    format!("Upstream carrier failure: {} Safe to retry.", e.detail),
                );
                (CallCommand::DialFailed { reason: e.reason, sip_code: e.sip_code }, Some(failure))
            }
        };
        let pending = match self.drive_call(call, command) {
            Ok(pending) => pending,
            Err(f) => return self.reply_to(request, Err(f)),
        };
        let Some(request) = request else { return };
        // A call its org hung up before the carrier took it was placed all the same: it answers
        // 201, canceled, whatever the carrier did (it may have left memory, billed, by now).
        let reply = match (failure, self.call_as_it_is(call)) {
            (_, Err(f)) => Reply::failure(f),
            (_, Ok(None)) => Reply::failure(Failure::internal("the call vanished while it was placed")),
            (Some(failure), Ok(Some(state))) if !was_canceled(&state) => Reply::failure(failure),
            (_, Ok(Some(state))) => placement_reply(&state),
        };
        let pending = self.rests_on(pending);
        self.answer(request, Ok(super::Decided { pending, reply }));
    }

    /// How the placement of a call went, as `POST /v1/call` answers it: the call, or why it
    /// was never placed.
    fn placement_outcome(&self, org: OrgId, call: CallId) -> super::Outcome {
        let state = self.call_as_it_is(call)?.filter(|c| c.setup.org == org).ok_or_else(wire::call_not_found)?;
        Ok(super::Decided { pending: self.log.barrier(), reply: placement_reply(&state) })
    }

    /// Why a call that was to be dialed was not placed after all (its placement deadline passed).
    fn placement_failure(&self, call: CallId) -> Failure {
        match self.call_as_it_is(call) {
            Ok(Some(state)) => placement_failure_of(&state)
                .unwrap_or_else(|| Failure::internal("a call given up on answers as placed")),
            Ok(None) => Failure::internal("the call vanished while it was placed"),
            Err(failure) => failure,
        }
    }

    /// Releases funds billing granted a call that was given up on before they arrived.
    fn void_late_grant(&mut self, org: OrgId, call: CallId) {
        self.perform(Effect::VoidLateGrant { org, call });
    }

    /// The call as it is now: in memory while it runs or is not yet billed, else as projected.
    fn call_as_it_is(&self, call: CallId) -> Result<Option<CallState>, Failure> {
        match self.calls.get(&call) {
            Some(folded) => Ok(Some(folded.state.clone())),
            None => calls_projection::read_call(&self.log, call).map_err(storage_failure),
        }
    }

    /// Ends a call at the org's request. Idempotent: an ended call answers as it is.
    pub(super) fn hang_up(&mut self, org: OrgId, call: CallId, request: bus::Message) {
        let outcome = self.hang_up_call(org, call);
        self.answer(request, outcome);
    }

    fn hang_up_call(&mut self, org: OrgId, call: CallId) -> super::Outcome {
        let own = |c: &CallState| c.setup.org == org && c.is_placed();
        let pending = match self.calls.get(&call) {
            Some(folded) if own(&folded.state) => self.drive_call(call, CallCommand::Hangup)?,
            Some(_) => return Err(wire::call_not_found()),
            None => None,
        };
        // The projection holds the call as it is now, this hang-up included.
        let state = calls_projection::read_call(&self.log, call)
            .map_err(storage_failure)?
            .filter(own)
            .ok_or_else(wire::call_not_found)?;
        Ok(super::Decided { pending: self.rests_on(pending), reply: Reply::with(reply::Result::Call((&state).into())) })
    }

    /// Decides a command for a call, appends what it decided and performs its actions.
    pub(super) fn drive_call(&mut self, call: CallId, command: CallCommand) -> Result<Option<Pending>, Failure> {
        let Some(folded) = self.calls.get_mut(&call) else {
            if let Some(Action::HangUp) = call::teardown_of_forgotten(&command) {
                // Only ended, billed calls leave memory, so the end is durable already.
                tracing::info!(%call, "the carrier reported on an ended call; ending it there");
                let after = self.log.barrier();
                self.perform(Effect::HangUp { call, after });
            }
            return Ok(None);
        };
        let decision = call::decide(&folded.state, command, self.clock.now());
        if decision.events.is_empty() {
            return Ok(None);
        }
        let appended = super::append(
            &self.log,
            self.request_id.as_deref(),
            vec![StreamAppend {
                stream: streams::call(call),
                expected: ExpectedVersion::Exactly(folded.version),
                events: decision.events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
            }],
        );
        let pending = match appended {
            Ok(pending) => pending,
            Err(e) => {
                // The call stays as it was, and so do the timers it needs (the one that fired
                // included): they come back a little later, so the failure is retried rather
                // than forgotten, and a log that keeps failing is not spun on.
                let retry_at = Timestamp(self.clock.now().0 + STORAGE_RETRY_MS);
                self.rearm_not_before(call, retry_at);
                return Err(storage_failure(e));
            }
        };
        let was_running_test = counts_as_running(&folded.state);
        folded.advance(&decision.events, CallState::apply);
        let is_running_test = counts_as_running(&folded.state);
        for event in &decision.events {
            match event {
                CallEvent::FundsReserved { .. } => metrics::counter!("calls_placed_total").increment(1),
                CallEvent::Ended { status, reason, .. } => {
                    metrics::counter!("calls_ended_total", "status" => status.as_str(), "end_reason" => reason.as_str())
                        .increment(1)
                }
                _ => {}
            }
        }
        let active = folded.state.is_active();
        let org = folded.state.setup.org;
        self.count_running_test(org, was_running_test, is_running_test);
        for action in decision.actions {
            match action {
                // Ended at the carrier once the end is on disk, like every side effect: a crash
                // before then must not leave a call ended at the far end that the log still has
                // talking (and bills as talking until the restart).
                Action::HangUp => self.perform(Effect::HangUp { call, after: self.log.barrier() }),
                billing @ (Action::Settle { .. } | Action::Void { .. }) => self.bill(call, billing),
            }
        }
        if active {
            self.rearm(call);
        } else {
            self.calls.remove(&call);
            self.timers.retain(|(_, c, _)| *c != call);
        }
        let in_progress = self.calls.values().filter(|f| f.state.is_placed() && !f.state.is_ended()).count();
        metrics::gauge!("calls_in_progress", "partition" => self.log.partition().to_string()).set(in_progress as f64);
        Ok(Some(pending))
    }

    /// Keeps a call in memory with the timers its state needs (every call the actor holds has
    /// them, whatever happens to it next), counted if it is a running test call.
    pub(super) fn follow(&mut self, call: CallId, folded: actor::Folded<CallState>) {
        self.count_running_test(folded.state.setup.org, false, counts_as_running(&folded.state));
        self.calls.insert(call, folded);
        self.rearm(call);
    }

    pub(super) fn rearm(&mut self, call: CallId) {
        self.rearm_not_before(call, Timestamp(i64::MIN));
    }

    fn rearm_not_before(&mut self, call: CallId, earliest: Timestamp) {
        self.timers.retain(|(_, c, _)| *c != call);
        if let Some(folded) = self.calls.get(&call) {
            for (timer, at) in call::timers(&folded.state) {
                self.timers.insert((at.max(earliest), call, timer));
            }
        }
    }

    /// Fires every timer that is due by the partition's clock.
    pub fn fire_due_timers(&mut self) {
        let now = self.clock.now();
        while let Some(&(at, batch)) = self.batch_timers.first() {
            if at > now {
                break;
            }
            self.batch_timers.pop_first();
            self.launch_due_runs(batch);
        }
        while let Some(&(at, call, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Err(f) = self.drive_call(call, CallCommand::TimerFired(timer)) {
                tracing::error!(%call, ?timer, detail = %f.detail, "could not fire a timer");
            }
        }
    }

    /// Sends again the settlements of ended calls that billing has not confirmed.
    pub fn sweep_settlements(&mut self) {
        let owed: Vec<(CallId, Action)> = self
            .calls
            .iter()
            .filter(|(id, _)| !self.billing_in_flight.contains(id))
            .filter_map(|(id, f)| call::pending_settlement(&f.state).map(|a| (*id, a)))
            .collect();
        for (call, action) in owed {
            self.bill(call, action);
        }
    }

    /// Settles or voids a call's reservation once the decision that asked for it is durable;
    /// the outcome comes back as a command for the call.
    fn bill(&mut self, call: CallId, action: Action) {
        let Some(org) = self.calls.get(&call).map(|f| f.state.setup.org) else { return };
        if !self.billing_in_flight.insert(call) {
            return;
        }
        let after = self.log.barrier();
        self.perform(Effect::Bill { org, call, action, after });
    }

    /// Takes back the calls that were under way before a restart: re-arms their timers,
    /// follows them again on their carrier, fails dials that were never confirmed, and sends
    /// settlements billing never confirmed.
    pub(super) fn resume_calls(&mut self) -> Result<(), Failure> {
        let active = calls_projection::active_calls(&self.log).map_err(storage_failure)?;
        for call in active {
            let folded = actor::fold(&self.log, &streams::call(call), |s: &mut Option<CallState>, e| match s {
                None => *s = CallState::start(e),
                Some(state) => state.apply(e),
            })
            .map_err(storage_failure)?;
            let Some(state) = folded.state else { continue };
            let phase = state.phase;
            let (org, connection) = (state.setup.org, state.setup.voip_connection_id);
            let progress = telephony::Progress {
                phase,
                dialed_at: state.dialed_at.unwrap_or(state.created_at),
                answered_at: state.answered_at,
                turns_done: state.turns,
                sip_dialog: state.sip_dialog.clone(),
            };
            let setup = state.setup.clone();
            self.follow(call, actor::Folded { state, version: folded.version });
            match phase {
                Phase::Requested | Phase::Initiated => {
                    self.drive_call(call, CallCommand::Interrupted)?;
                }
                Phase::Ended | Phase::Rejected => {
                    if let Some(action) = self.calls.get(&call).and_then(|f| call::pending_settlement(&f.state)) {
                        self.bill(call, action);
                    }
                }
                Phase::Dialing | Phase::Ringing | Phase::Answered => {
                    // Test calls run on the simulated carrier; others on their connection's.
                    let provider: Option<Provider<Sealed>> = match setup.test_run_id {
                        Some(_) => Some(Provider::Sim),
                        None => load_org(&self.log, &mut self.orgs, org)?
                            .state
                            .connections
                            .get(&connection.unwrap_or(domain::ids::VoipConnectionId(0)))
                            .map(|c| c.provider.clone()),
                    };
                    // A call whose connection (or its password) is gone cannot be followed; its
                    // timers end it.
                    match provider.map(|p| self.open_provider(&p)) {
                        Some(Ok(provider)) => {
                            self.perform(Effect::Resume { dial: dial_of(&setup, provider), progress })
                        }
                        Some(Err(detail)) => tracing::warn!(%call, %detail, "cannot follow a call again"),
                        None => {}
                    }
                }
            }
            tracing::info!(%call, ?phase, "resumed a call");
        }
        Ok(())
    }
}

pub(super) fn dial_of(setup: &CallSetup, provider: Provider) -> telephony::Dial {
    telephony::Dial {
        call_id: setup.id,
        from: setup.from.clone(),
        to: setup.to.clone(),
        provider,
        agent: setup.agent.clone(),
        scenario_prompt: setup.scenario_prompt.clone(),
    }
}

/// How the placement of a call went, as `POST /v1/call` answers it: the call, or why it was
/// never placed.
fn placement_reply(state: &CallState) -> Reply {
    match placement_failure_of(state) {
        Some(failure) => Reply::failure(failure),
        None => Reply::with(reply::Result::Call(state.into())),
    }
}

/// Why a call was never placed, if it was not: what `POST /v1/call` answers instead of the call.
fn placement_failure_of(state: &CallState) -> Option<Failure> {
    match state.rejection.as_deref() {
        Some("insufficient_balance") => Some(domain::ledger::LedgerError::InsufficientBalance.into()),
        Some(code) => Some(Failure::new(
            FailureKind::Unavailable,
            "service_unavailable",
            format!("The call could not be placed ({code}); retry."),
        )),
        None if state.is_ended() && state.dialed_at.is_none() && !was_canceled(state) => Some(Failure::new(
            FailureKind::Upstream,
            "carrier_error",
            "Upstream carrier failure: the carrier did not take the call. Safe to retry.",
        )),
        None => None,
    }
}

/// Whether the org hung the call up before it ended otherwise.
fn was_canceled(state: &CallState) -> bool {
    state.ending.as_ref().is_some_and(|e| e.reason == EndReason::Canceled)
}
