//! Test-call runs and batches inside the partition actor.
//!
//! A run asked for alone records itself, its launch, its call (and, in `sip` mode, the
//! loopback's inbound leg) in one append, then reserves its call's funds at the test multiplier
//! like any call; it answers 201, queued, once they are granted. A batch records itself and all
//! its runs, queued, in one append (its 201 lists them), and launches them on a timer derived
//! from its state, each launch recorded with the run's call, so a restart goes on where it
//! stopped and no run is launched twice or skipped.

use domain::Ctx;
use domain::call::CallState;
use domain::ids::OrgId;
use domain::org::OrgState;
use domain::test_call::{
    self, BatchCancel, BatchSpec, BatchState, Launch, RunAction, RunDecision, RunEvent, RunRequest, RunSettings,
    RunState,
};
use domain::voip::Provider;
use eventlog::{ExpectedVersion, Pending, StreamAppend};
use wire::pb::{self, Failure, Reply, reply};

use super::calls::Placement;
use super::effects::Effect;
use super::{Partition, load_org, storage_failure};
use crate::{queries, streams, test_calls_projection};

impl Partition {
    pub(super) fn create_test_run(&mut self, org: OrgId, request: RunRequest, reply: bus::Message) {
        let running = self.active_runs(org);
        let settings = self.run_settings();
        let mut ctx = Ctx { now: self.clock.now(), ids: &mut self.ids };
        let decided = load_org(&self.log, &mut self.orgs, org)
            .and_then(|folded| Ok(test_call::decide_run(org, &folded.state, request, running, &settings, &mut ctx)?));
        let started = match decided {
            Ok(decision) => self.start_run(decision, Some(reply)),
            Err(failure) => {
                self.answer(reply, Err(failure.clone()));
                Err(failure)
            }
        };
        if let Err(failure) = started {
            tracing::debug!(%org, code = %failure.code, "test-call run refused");
        }
    }

    /// How the partition sets up a run's calls.
    pub(super) fn run_settings(&self) -> RunSettings {
        RunSettings {
            ring_timeout_ms: self.limits.ring_timeout_ms,
            max_duration_seconds: self.limits.max_duration_seconds,
            placement_timeout_ms: self.limits.placement_timeout_ms,
            expected_seconds: self.limits.expected_test_call_seconds,
        }
    }

    /// Test-call runs of the org that are queued or in progress, counted as their calls come
    /// and go (see [`test_call::counts_as_running`]).
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

    /// Records a run's launch with its call legs (with the run's creation, for a run asked for
    /// alone; with the batch's record of the launch, for a batch's) in one append, then performs
    /// what it asks for. On an error nothing is recorded and `reply`, if any, has been answered.
    fn start_run(&mut self, decision: RunDecision, reply: Option<bus::Message>) -> Result<(), Failure> {
        let creates_run = decision.creates_run();
        let RunDecision {
            state: run,
            run: run_events,
            call: main_event,
            companion: companion_events,
            launched,
            actions,
        } = decision;
        let call = run.call_id.expect("a launched run has its call");
        let (org, run_id, companion, batch) = (run.org, run.id, run.sip_call_id, run.batch_id);
        let mut appends = vec![
            StreamAppend {
                stream: streams::run(run_id),
                // A batch's queued run holds its creation alone: the launch is its second event.
                expected: if creates_run { ExpectedVersion::NoStream } else { ExpectedVersion::Exactly(1) },
                events: run_events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
            },
            StreamAppend {
                stream: streams::call(call),
                expected: ExpectedVersion::NoStream,
                events: vec![actor::encode(main_event.event_type(), &main_event)],
            },
        ];
        if let (Some(id), Some(events)) = (companion, &companion_events) {
            appends.push(StreamAppend {
                stream: streams::call(id),
                expected: ExpectedVersion::NoStream,
                events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
            });
        }
        let launched =
            batch.zip(launched).and_then(|(id, event)| self.batches.get(&id).map(|f| (id, f.version, event)));
        if let Some((id, version, event)) = &launched {
            appends.push(StreamAppend {
                stream: streams::batch(*id),
                expected: ExpectedVersion::Exactly(*version),
                events: vec![actor::encode(event.event_type(), event)],
            });
        }
        appends.extend(actor::id_reservation(&mut self.ids));
        let pending = match super::append(&self.log, self.request_id.as_deref(), appends) {
            Ok(pending) => pending,
            Err(e) => {
                let failure = storage_failure(e);
                self.reply_to(reply, Err(failure.clone()));
                return Err(failure);
            }
        };
        // Billing hears of the run's call only once the run is on record.
        let mut recorded = Some(pending);

        self.follow(call, actor::Folded { state: CallState::start(&main_event).expect("a request"), version: 1 });
        if let (Some(id), Some(events)) = (companion, companion_events) {
            let mut state = CallState::start(&events[0]).expect("a request");
            state.apply(&events[1]);
            self.follow(id, actor::Folded { state, version: 2 });
        }
        if let Some((id, _, event)) = launched
            && let Some(folded) = self.batches.get_mut(&id)
        {
            folded.advance(&[event], BatchState::apply);
        }

        let mut reply = reply;
        for action in actions {
            match action {
                RunAction::Reserve { call, charge_multiplier, .. } => {
                    let setup = &self.calls.get(&call).expect("the run's call was just followed").state.setup;
                    let reserve = domain::call::reservation(setup, charge_multiplier).expect("a run's call is billed");
                    let placement = Box::new(Placement {
                        org,
                        call,
                        provider: Provider::Sim,
                        request: reply.take(),
                        run: Some(run_id),
                        companion,
                    });
                    let after = recorded.take().unwrap_or_else(|| self.log.barrier());
                    self.perform(Effect::Reserve { placement, reserve, after });
                }
            }
        }
        Ok(())
    }

    pub(super) fn create_test_batch(&mut self, org: OrgId, spec: BatchSpec, reply: bus::Message) {
        let open = self.batches.values().filter(|f| f.state.org == org).count();
        let settings = self.run_settings();
        let mut ctx = Ctx { now: self.clock.now(), ids: &mut self.ids };
        let decided = load_org(&self.log, &mut self.orgs, org)
            .and_then(|folded| Ok(test_call::create_batch(org, &folded.state, spec, open, &settings, &mut ctx)?));
        let created = match decided {
            Ok(created) => created,
            Err(failure) => return self.answer(reply, Err(failure)),
        };
        let state = BatchState::start(&created.batch).expect("a creation starts a batch");
        let id = state.id;
        let mut appends = vec![StreamAppend {
            stream: streams::batch(id),
            expected: ExpectedVersion::NoStream,
            events: vec![actor::encode(created.batch.event_type(), &created.batch)],
        }];
        for run in &created.runs {
            let RunEvent::Created { run: state } = run else { unreachable!("a batch creates its runs") };
            appends.push(StreamAppend {
                stream: streams::run(state.id),
                expected: ExpectedVersion::NoStream,
                events: vec![actor::encode(run.event_type(), run)],
            });
        }
        appends.extend(actor::id_reservation(&mut self.ids));
        if let Err(e) = super::append(&self.log, self.request_id.as_deref(), appends) {
            return self.answer(reply, Err(storage_failure(e)));
        }
        self.batches.insert(id, actor::Folded { state, version: 1 });
        self.launch_due_runs(id);
        self.answer_batch(org, id, reply);
    }

    /// Stops the runs a batch has not launched yet; launched ones finish. Idempotent.
    pub(super) fn cancel_test_batch(&mut self, org: OrgId, id: u64, reply: bus::Message) {
        if let Some(folded) = self.batches.get(&id).filter(|f| f.state.org == org)
            && let Some(canceled) = test_call::cancel_batch(&folded.state, self.clock.now())
        {
            if let Err(e) = self.append_cancel(id, folded.version, &canceled) {
                return self.answer(reply, Err(storage_failure(e)));
            }
            self.forget_batch(id);
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

    /// Launches every run of the batch that is due, and arms the timer for the next.
    pub(super) fn launch_due_runs(&mut self, id: u64) {
        self.batch_timers.retain(|(_, b)| *b != id);
        let settings = self.run_settings();
        loop {
            let Some(folded) = self.batches.get(&id) else { return };
            let org = folded.state.org;
            let Some(next) = test_call::next_launch(&folded.state) else { return self.forget_batch(id) };
            let run = match test_calls_projection::read_run(&self.log, next.run_id) {
                Ok(Some(run)) => run,
                Ok(None) => unreachable!("a batch's runs are recorded with it"),
                Err(e) => {
                    // The run cannot be read now: try again soon, as at the limit.
                    tracing::warn!(batch = id, error = %e, "could not read a batch's next run");
                    let retry = domain::Timestamp(self.clock.now().0 + test_call::LIMIT_RETRY_MS);
                    self.batch_timers.insert((retry, id));
                    return;
                }
            };
            let running = self.active_runs(org);
            let launch = self.decide_launch(id, &run, org, running, &settings);
            match launch {
                Launch::Finished => return self.forget_batch(id),
                Launch::WaitUntil(at) => {
                    self.batch_timers.insert((at, id));
                    return;
                }
                Launch::Run(decision) => {
                    if let Err(failure) = self.start_run(*decision, None) {
                        // The log refused the launch: nothing more can be launched.
                        tracing::warn!(batch = id, code = %failure.code, "a batch run could not launch; canceling the batch");
                        let canceled = test_call::cancel_batch(&self.batches[&id].state, self.clock.now());
                        return self.stop_launching(id, canceled);
                    }
                }
                Launch::Cancel { cancel, reason } => {
                    tracing::warn!(batch = id, %reason, "a batch run could not launch; canceling the batch");
                    return self.stop_launching(id, Some(*cancel));
                }
            }
        }
    }

    fn decide_launch(&mut self, id: u64, run: &RunState, org: OrgId, running: u32, settings: &RunSettings) -> Launch {
        let folded = &self.batches[&id];
        let mut ctx = Ctx { now: self.clock.now(), ids: &mut self.ids };
        match load_org(&self.log, &mut self.orgs, org) {
            Ok(org_state) => {
                test_call::launch_due_run(&folded.state, run, &org_state.state, running, settings, &mut ctx)
            }
            // An org that cannot be read has no room for runs: a due run waits and tries again.
            Err(failure) => {
                tracing::warn!(batch = id, %org, detail = %failure.detail, "could not read a batch's org");
                test_call::launch_due_run(&folded.state, run, &OrgState::default(), running, settings, &mut ctx)
            }
        }
    }

    /// Records the cancel of a batch that can launch no more runs, and forgets the batch.
    fn stop_launching(&mut self, id: u64, canceled: Option<BatchCancel>) {
        let version = self.batches.get(&id).map(|f| f.version);
        if let (Some(version), Some(canceled)) = (version, canceled)
            && let Err(e) = self.append_cancel(id, version, &canceled)
        {
            // The batch stays open in the log: its next start resumes it and decides again.
            tracing::error!(batch = id, error = %e, "could not record a batch's cancel");
        }
        self.forget_batch(id);
    }

    /// A batch with no runs left to launch leaves memory, with its timer.
    fn forget_batch(&mut self, id: u64) {
        self.batches.remove(&id);
        self.batch_timers.retain(|(_, b)| *b != id);
    }

    /// Appends a batch's cancel at `version`, with each queued run's, in one append; the
    /// batch's and its runs' only writer is this actor, and a queued run holds its creation alone.
    fn append_cancel(&self, id: u64, version: u64, cancel: &BatchCancel) -> Result<Pending, eventlog::Error> {
        let mut appends = vec![StreamAppend {
            stream: streams::batch(id),
            expected: ExpectedVersion::Exactly(version),
            events: vec![actor::encode(cancel.batch.event_type(), &cancel.batch)],
        }];
        appends.extend(cancel.runs.iter().map(|(run, event)| StreamAppend {
            stream: streams::run(*run),
            expected: ExpectedVersion::Exactly(1),
            events: vec![actor::encode(event.event_type(), event)],
        }));
        super::append(&self.log, self.request_id.as_deref(), appends)
    }

    /// Takes back the batches that still had runs to launch before a restart.
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
            let folded = actor::fold(&self.log, &streams::batch(id), BatchState::evolve).map_err(storage_failure)?;
            if let Some(state) = folded.state {
                tracing::info!(batch = id, launched = state.launched, "resumed a batch");
                self.batches.insert(id, actor::Folded { state, version: folded.version });
                self.launch_due_runs(id);
            }
        }
        Ok(())
    }
}
