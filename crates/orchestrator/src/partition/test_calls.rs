//! Test-call runs and batches inside the partition actor.
//!
//! A run records itself, its call (and, in `sip` mode, the loopback's inbound leg) in one
//! append, then reserves its call's funds at the test multiplier like any call; it answers 201,
//! queued, once they are granted. A batch spawns its runs on a timer derived from its state, each
//! spawn recorded with the run it created, so a restart goes on where it stopped and no run is
//! spawned twice.

use domain::E164;
use domain::call::{CallEvent, CallSetup, CallState, Direction, Funds};
use domain::ids::{CallId, OrgId};
use domain::test_call::{
    AGENT_SIDE_NUMBER, BatchEvent, BatchSpec, BatchState, DEFAULT_CHARGE_MULTIPLIER, Mode, RunDirection, RunEvent,
    RunRequest, RunState, TEST_BOT_NUMBER, next_spawn_at,
};
use domain::voip::Provider;
use domain::{org, test_call};
use eventlog::{ExpectedVersion, StreamAppend};
use wire::pb::{self, Failure, Reply, reply};

use super::calls::Placement;
use super::effects::Effect;
use super::{Partition, load_org, storage_failure};
use crate::{queries, streams, test_calls_projection};

/// How long a batch whose org is at its limit of concurrent runs waits before trying again.
const LIMIT_RETRY_MS: i64 = 1_000;

impl Partition {
    pub(super) fn create_test_run(&mut self, org: OrgId, request: RunRequest, reply: bus::Message) {
        if let Err(failure) = self.start_run(org, request, None, Some(reply)) {
            tracing::debug!(%org, code = %failure.code, "test-call run refused");
        }
    }

    /// Test-call runs of the org that are queued or in progress, counted as their calls come
    /// and go (see [`counts_as_running_test`]).
    fn active_runs(&self, org: OrgId) -> u32 {
        self.running_tests.get(&org).copied().unwrap_or(0)
    }

    /// Keeps the count of the org's running test calls as one of its calls changes from
    /// counting (`was`) to counting (`is`), or not.
    pub(super) fn count_running_test(&mut self, org: OrgId, was: bool, is: bool) {
        match (was, is) {
            (false, true) => *self.running_tests.entry(org).or_default() += 1,
            (true, false) => {
                if let std::collections::btree_map::Entry::Occupied(mut count) = self.running_tests.entry(org) {
                    *count.get_mut() -= 1;
                    if *count.get() == 0 {
                        count.remove();
                    }
                }
            }
            _ => {}
        }
    }

    /// Creates a run: records it with its call legs (and the batch's spawn), then asks billing
    /// for the funds. On an error nothing is recorded and `reply`, if any, has been answered.
    fn start_run(
        &mut self,
        org: OrgId,
        request: RunRequest,
        batch: Option<u64>,
        reply: Option<bus::Message>,
    ) -> Result<(), Failure> {
        let refuse = |partition: &mut Self, reply: Option<bus::Message>, failure: Failure| {
            partition.reply_to(reply, Err(failure.clone()));
            Err(failure)
        };
        let (target, limit) = match load_org(&self.log, &mut self.orgs, org).and_then(|folded| {
            let limit = folded.state.profile.as_ref().map_or(0, |p| p.test_call_limit());
            Ok((org::resolve_test_target(&folded.state, &request)?, limit))
        }) {
            Ok(resolved) => resolved,
            Err(failure) => return refuse(self, reply, failure),
        };
        if batch.is_none() && self.active_runs(org) >= limit {
            return refuse(self, reply, wire::too_many_runs(limit));
        }
        let now = self.clock.now();
        let run_id = self.ids.next_id();
        let call = CallId(self.ids.next_id());
        let bot = request.target_number.clone().unwrap_or_else(|| number(TEST_BOT_NUMBER));
        let agent_side = target.number.as_ref().map_or_else(|| number(AGENT_SIDE_NUMBER), |n| n.number.clone());
        // From the org's side: the bot calling in is an inbound call to the agent.
        let (from, to, direction) = match request.direction {
            RunDirection::Outbound => (bot.clone(), agent_side.clone(), Direction::Inbound),
            RunDirection::Inbound => (agent_side.clone(), bot.clone(), Direction::Outbound),
        };
        let setup = |id: CallId, reference: Option<String>, direction, from: E164, to: E164| CallSetup {
            id,
            org,
            direction,
            from,
            to,
            agent_id: Some(target.agent_id),
            voip_connection_id: None,
            agent: target.agent.clone(),
            max_hold_seconds: target.agent.max_hold_seconds,
            reservation_reference: reference,
            test_run_id: Some(run_id),
            ring_timeout_ms: self.limits.ring_timeout_ms,
            max_duration_seconds: self.limits.max_duration_seconds,
            scenario_prompt: Some(request.scenario_prompt.clone()),
            placement_timeout_ms: self.limits.placement_timeout_ms,
        };
        let main = setup(call, Some(format!("call/{call}")), direction, from, to);
        // In sip mode the bot's call reaches the org's number, whose inbound leg is a call of its own.
        let companion = (request.mode == Mode::Sip && request.direction == RunDirection::Outbound).then(|| {
            let id = CallId(self.ids.next_id());
            setup(id, None, Direction::Inbound, bot.clone(), agent_side.clone())
        });
        let run = RunState {
            id: run_id,
            org,
            request,
            agent_id: target.agent_id,
            charge_multiplier: DEFAULT_CHARGE_MULTIPLIER,
            expected_seconds: self.limits.expected_test_call_seconds,
            call_id: call,
            sip_call_id: companion.as_ref().map(|c| c.id),
            batch_id: batch,
            created_at: now,
        };

        let run_event = RunEvent::Created { run: Box::new(run) };
        let main_event = CallEvent::Requested { setup: Box::new(main), at: now };
        let mut appends = vec![
            StreamAppend {
                stream: streams::run(run_id),
                expected: ExpectedVersion::NoStream,
                events: vec![actor::encode(run_event.event_type(), &run_event)],
            },
            StreamAppend {
                stream: streams::call(call),
                expected: ExpectedVersion::NoStream,
                events: vec![actor::encode(main_event.event_type(), &main_event)],
            },
        ];
        let companion_events = companion.map(|setup| {
            // The unbilled leg needs no reservation: it is placed as it is requested.
            let free = Funds { granted_cents: 0, rate_cents_per_minute: 0, charge_multiplier: 0 };
            (
                setup.id,
                vec![
                    CallEvent::Requested { setup: Box::new(setup), at: now },
                    CallEvent::FundsReserved { funds: free, at: now },
                ],
            )
        });
        if let Some((id, events)) = &companion_events {
            appends.push(StreamAppend {
                stream: streams::call(*id),
                expected: ExpectedVersion::NoStream,
                events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
            });
        }
        let spawn = batch.and_then(|id| self.batches.get(&id).map(|f| (id, f.version, f.state.run_ids.len() as u32)));
        let spawned =
            spawn.map(|(id, version, index)| (id, BatchEvent::RunSpawned { index, run_id, at: now }, version));
        if let Some((id, event, version)) = &spawned {
            appends.push(StreamAppend {
                stream: streams::batch(*id),
                expected: ExpectedVersion::Exactly(*version),
                events: vec![actor::encode(event.event_type(), event)],
            });
        }
        appends.extend(actor::id_reservation(&mut self.ids));
        let pending = match super::append(&self.log, self.request_id.as_deref(), appends) {
            Ok(pending) => pending,
            Err(e) => return refuse(self, reply, storage_failure(e)),
        };
        // Nobody waits on this append itself: the reservation below waits for the log to be durable.
        drop(pending);

        self.follow(call, actor::Folded { state: CallState::start(&main_event).expect("a request"), version: 1 });
        let companion = companion_events.map(|(id, events)| {
            let mut state = CallState::start(&events[0]).expect("a request");
            state.apply(&events[1]);
            self.follow(id, actor::Folded { state, version: 2 });
            id
        });
        if let Some((id, event, _)) = spawned
            && let Some(folded) = self.batches.get_mut(&id)
        {
            folded.advance(&[event], BatchState::apply);
        }

        let reserve = pb::Reserve {
            reference: format!("call/{call}"),
            limit: Some(pb::reserve::Limit::MaxSeconds(self.limits.max_duration_seconds)),
            kind: pb::ChargeKind::TestCall as i32,
            call_id: Some(call.0),
            charge_multiplier: DEFAULT_CHARGE_MULTIPLIER,
            expires_in_seconds: self.limits.max_duration_seconds + super::calls::RESERVATION_GRACE_SECONDS,
        };
        let placement =
            Box::new(Placement { org, call, provider: Provider::Sim, request: reply, run: Some(run_id), companion });
        // Billing hears of the run's call only once it is on record.
        let after = self.log.barrier();
        self.perform(Effect::Reserve { placement, reserve, after });
        Ok(())
    }

    pub(super) fn create_test_batch(&mut self, org: OrgId, spec: BatchSpec, reply: bus::Message) {
        let open = self.batches.values().filter(|f| f.state.org == org).count();
        let checked = load_org(&self.log, &mut self.orgs, org).and_then(|folded| {
            let profile = folded.state.profile.as_ref().ok_or_else(|| wire::not_found(org::Resource::Org))?;
            test_call::admit_batch(profile, open)?;
            Ok(org::resolve_test_target(&folded.state, &spec.run_request(0))?)
        });
        if let Err(failure) = checked {
            return self.answer(reply, Err(failure));
        }
        let id = self.ids.next_id();
        let created = BatchEvent::Created { id, org, spec, at: self.clock.now() };
        let mut appends = vec![StreamAppend {
            stream: streams::batch(id),
            expected: ExpectedVersion::NoStream,
            events: vec![actor::encode(created.event_type(), &created)],
        }];
        appends.extend(actor::id_reservation(&mut self.ids));
        if let Err(e) = super::append(&self.log, self.request_id.as_deref(), appends) {
            return self.answer(reply, Err(storage_failure(e)));
        }
        let state = BatchState::start(&created).expect("a creation starts a batch");
        self.batches.insert(id, actor::Folded { state, version: 1 });
        self.spawn_due_runs(id);
        self.answer_batch(org, id, reply);
    }

    /// Stops the runs a batch has not spawned yet; running ones finish. Idempotent.
    pub(super) fn cancel_test_batch(&mut self, org: OrgId, id: u64, reply: bus::Message) {
        if let Some(folded) = self.batches.get(&id).filter(|f| f.state.org == org) {
            let canceled = BatchEvent::Canceled { at: self.clock.now() };
            let appended = super::append(
                &self.log,
                self.request_id.as_deref(),
                vec![StreamAppend {
                    stream: streams::batch(id),
                    expected: ExpectedVersion::Exactly(folded.version),
                    events: vec![actor::encode(canceled.event_type(), &canceled)],
                }],
            );
            if let Err(e) = appended {
                return self.answer(reply, Err(storage_failure(e)));
            }
            self.batches.remove(&id);
            self.batch_timers.retain(|(_, b)| *b != id);
        }
        self.answer_batch(org, id, reply);
    }

    /// Answers with the batch as the projection shows it, once everything so far is durable.
    fn answer_batch(&mut self, org: OrgId, id: u64, reply: bus::Message) {
        let outcome = test_calls_projection::read_batch(&self.log, id)
            .map_err(storage_failure)
            .and_then(|b| {
                b.filter(|b| b.org == org).ok_or_else(|| {
                    Failure::new(pb::FailureKind::NotFound, "test_batch_not_found", "Test-call batch not found.")
                })
            })
            .and_then(|b| queries::batch_reply(&self.log, &b))
            .map(|b| Reply::with(reply::Result::TestBatch(b)));
        let outcome = outcome.map(|reply| super::Decided { pending: self.log.barrier(), reply });
        self.answer(reply, outcome);
    }

    /// Spawns every run of the batch that is due, and arms the timer for the next.
    pub(super) fn spawn_due_runs(&mut self, id: u64) {
        self.batch_timers.retain(|(_, b)| *b != id);
        loop {
            let Some(folded) = self.batches.get(&id) else { return };
            let Some(due) = next_spawn_at(&folded.state) else {
                self.batches.remove(&id);
                return;
            };
            let now = self.clock.now();
            if due > now {
                self.batch_timers.insert((due, id));
                return;
            }
            let (org, index) = (folded.state.org, folded.state.run_ids.len());
            let request = folded.state.spec.run_request(index);
            let limit = load_org(&self.log, &mut self.orgs, org)
                .map(|f| f.state.profile.as_ref().map_or(0, |p| p.test_call_limit()))
                .unwrap_or(0);
            if self.active_runs(org) >= limit {
                self.batch_timers.insert((domain::Timestamp(now.0 + LIMIT_RETRY_MS), id));
                return;
            }
            if let Err(failure) = self.start_run(org, request, Some(id), None) {
                // The target is gone, or the log is: nothing more can be spawned.
                tracing::warn!(batch = id, code = %failure.code, "a batch run could not start; canceling the batch");
                let canceled = BatchEvent::Canceled { at: now };
                let version = self.batches.get(&id).map_or(0, |f| f.version);
                let _ = super::append(
                    &self.log,
                    self.request_id.as_deref(),
                    vec![StreamAppend {
                        stream: streams::batch(id),
                        expected: ExpectedVersion::Exactly(version),
                        events: vec![actor::encode(canceled.event_type(), &canceled)],
                    }],
                );
                self.batches.remove(&id);
                return;
            }
        }
    }

    /// Takes back the batches that still had runs to spawn before a restart.
    pub(super) fn resume_batches(&mut self) -> Result<(), Failure> {
        let active: Vec<u64> = self
            .log
            .projection_scan(test_calls_projection::NAME, test_calls_projection::ACTIVE_BATCHES)
            .map(|entry| {
                let (key, _) = entry?;
                Ok(u64::from_be_bytes(key[key.len() - 8..].try_into().expect("ids are 8 bytes")))
            })
            .collect::<Result<_, eventlog::Error>>()
            .map_err(storage_failure)?;
        for id in active {
            let folded = actor::fold(&self.log, &streams::batch(id), |s: &mut Option<BatchState>, e| match s {
                None => *s = BatchState::start(e),
                Some(state) => state.apply(e),
            })
            .map_err(storage_failure)?;
            if let Some(state) = folded.state {
                tracing::info!(batch = id, spawned = state.run_ids.len(), "resumed a batch");
                self.batches.insert(id, actor::Folded { state, version: folded.version });
                self.spawn_due_runs(id);
            }
        }
        Ok(())
    }
}

/// Whether a call is a test-call run's own (billed) call that has not ended: what the org's
/// limit of concurrent runs counts.
pub(super) fn counts_as_running_test(call: &CallState) -> bool {
    let setup = &call.setup;
    setup.test_run_id.is_some() && setup.reservation_reference.is_some() && !call.is_ended()
}

fn number(raw: &str) -> E164 {
    E164::parse(raw).expect("switchboard's own numbers are E.164")
}
