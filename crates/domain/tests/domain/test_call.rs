//! Test-call runs and batches: the limit of concurrent runs, who calls whom, the SIP loopback's
//! companion leg, the multiplier, a batch's runs (created queued with it, launched apart) and
//! its cancel, and how runs and batches show.

use domain::call::{CallEvent, CallSetup, CallState, Direction, EndReason, Funds, Status};
use domain::ids::{AgentId, IdSequence, OrgId, PhoneNumberId};
use domain::ledger::{DEFAULT_RATE_CENTS_PER_MINUTE, cost_cents};
use domain::org::{NumberBacking, OrgError, OrgEvent, OrgState, Quota, Resource, TestTargetError};
use domain::test_call::{
    self, AGENT_SIDE_NUMBER, BatchCancel, BatchCreation, BatchError, BatchEvent, BatchSpec, BatchState, BatchStatus,
    DEFAULT_CHARGE_MULTIPLIER, LIMIT_RETRY_MS, Launch, Mode, NextLaunch, RunAction, RunDecision, RunDirection,
    RunError, RunEvent, RunRequest, RunSettings, RunState, RunStatus, RunView, TEST_BOT_NUMBER, TargetType,
};
use domain::{Ctx, E164, Partitioning, Timestamp};

use crate::common::{EARLIER, NOW, agent, created, given, number};

const ORG: OrgId = OrgId(5);
/// The org's number: agent 69 answers it, agent 70 calls from it.
const NUMBER: &str = "+14155550100";
const NUMBER_ID: u64 = 261;

fn e164(raw: &str) -> E164 {
    E164::parse(raw).unwrap()
}

fn org() -> OrgState {
    given(&[
        created(),
        agent(69),
        agent(70),
        agent(71),
        number(NUMBER_ID, NUMBER, NumberBacking::Demo, Some(69), Some(70)),
    ])
}

fn settings() -> RunSettings {
    RunSettings {
        ring_timeout_ms: 30_000,
        max_duration_seconds: 3_600,
        placement_timeout_ms: 60_000,
        expected_seconds: 60,
    }
}

fn ids() -> IdSequence {
    IdSequence::resume(Partitioning::new(64), 5, 0)
}

fn request(target_type: TargetType, target_id: u64, direction: RunDirection, mode: Mode) -> RunRequest {
    RunRequest {
        target_type,
        target_id,
        direction,
        target_number: None,
        scenario_prompt: "Ask for a refund".into(),
        mode,
        requested_by_key_id: Some(9),
    }
}

fn at_number(direction: RunDirection) -> RunRequest {
    request(TargetType::PhoneNumber, NUMBER_ID, direction, Mode::Bot)
}

/// When the org asks for a run, holding `running` runs already.
fn when_run(org: &OrgState, request: RunRequest, running: u32) -> Result<RunDecision, RunError> {
    test_call::decide_run(ORG, org, request, running, &settings(), &mut Ctx { now: NOW, ids: &mut ids() })
}

fn setup_of(event: &CallEvent) -> &CallSetup {
    match event {
        CallEvent::Requested { setup, .. } => setup,
        other => panic!("not a request: {other:?}"),
    }
}

mod limits {
    use super::*;

    #[test]
    fn a_run_past_the_orgs_default_limit_of_concurrent_runs_is_refused() {
        let org = org();
        assert!(when_run(&org, at_number(RunDirection::Outbound), 9).is_ok());
        assert_eq!(
            when_run(&org, at_number(RunDirection::Outbound), 10),
            Err(RunError::TooManyRuns { limit: test_call::DEFAULT_MAX_CONCURRENT_RUNS })
        );
    }

    #[test]
    fn the_limit_is_the_one_the_admin_set() {
        let mut org = org();
        org.apply(&OrgEvent::TestCallLimitSet { limit: 2, at: EARLIER });
        assert!(when_run(&org, at_number(RunDirection::Outbound), 1).is_ok());
        assert_eq!(when_run(&org, at_number(RunDirection::Outbound), 2), Err(RunError::TooManyRuns { limit: 2 }));
    }

    #[test]
    fn a_target_that_does_not_resolve_is_refused_whatever_the_count() {
        let missing = request(TargetType::Agent, 404, RunDirection::Outbound, Mode::Bot);
        assert_eq!(when_run(&org(), missing, 99), Err(RunError::Target(TestTargetError::AgentNotFound)));
        let no_number = request(TargetType::PhoneNumber, 404, RunDirection::Outbound, Mode::Bot);
        assert_eq!(when_run(&org(), no_number, 0), Err(RunError::Target(TestTargetError::NumberNotFound)));
    }

    #[test]
    fn a_refused_run_takes_no_ids() {
        let mut ids = ids();
        let mut ctx = Ctx { now: NOW, ids: &mut ids };
        let refused = test_call::decide_run(ORG, &org(), at_number(RunDirection::Outbound), 10, &settings(), &mut ctx);
        assert!(refused.is_err());
        assert_eq!(ids.next_id(), self::ids().next_id());
    }

    #[test]
    fn only_a_runs_billed_call_counts_while_it_runs() {
        let sip = request(TargetType::Agent, 69, RunDirection::Outbound, Mode::Sip);
        let then = when_run(&org(), sip, 0).unwrap();
        let mut main = CallState::start(&then.call).unwrap();
        let companion = then.companion.as_ref().unwrap();
        let mut leg = CallState::start(&companion[0]).unwrap();
        leg.apply(&companion[1]);
        assert!(test_call::counts_as_running(&main));
        assert!(!test_call::counts_as_running(&leg), "the loopback's inbound leg is not a run of its own");
        main.apply(&CallEvent::Rejected { code: "insufficient_balance".into(), at: NOW });
        assert!(!test_call::counts_as_running(&main));
    }
}

mod direction {
    use super::*;

    #[test]
    fn an_outbound_run_is_the_bot_calling_the_numbers_inbound_agent() {
        let then = when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap();
        let setup = setup_of(&then.call);
        assert_eq!(setup.direction, Direction::Inbound, "from the org's side the bot calls in");
        assert_eq!((setup.from.clone(), setup.to.clone()), (e164(TEST_BOT_NUMBER), e164(NUMBER)));
        assert_eq!((setup.agent_id, then.run_state().agent_id), (Some(AgentId(69)), AgentId(69)));
    }

    #[test]
    fn an_inbound_run_is_the_numbers_outbound_agent_calling_the_bot() {
        let then = when_run(&org(), at_number(RunDirection::Inbound), 0).unwrap();
        let setup = setup_of(&then.call);
        assert_eq!(setup.direction, Direction::Outbound);
        assert_eq!((setup.from.clone(), setup.to.clone()), (e164(NUMBER), e164(TEST_BOT_NUMBER)));
        assert_eq!(setup.agent_id, Some(AgentId(70)));
    }

    #[test]
    fn the_bot_calls_from_the_number_the_run_names() {
        let own = RunRequest { target_number: Some(e164("+14155550199")), ..at_number(RunDirection::Outbound) };
        let then = when_run(&org(), own, 0).unwrap();
        assert_eq!(setup_of(&then.call).from, e164("+14155550199"));
    }

    #[test]
    fn a_bot_run_at_an_agent_reaches_it_on_the_agent_side_number() {
        let then = when_run(&org(), request(TargetType::Agent, 71, RunDirection::Outbound, Mode::Bot), 0).unwrap();
        let setup = setup_of(&then.call);
        assert_eq!((setup.to.clone(), setup.agent_id), (e164(AGENT_SIDE_NUMBER), Some(AgentId(71))));
    }

    #[test]
    fn a_runs_call_is_set_up_as_the_partition_sets_up_calls() {
        let then = when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap();
        let run = then.run_state();
        let setup = setup_of(&then.call);
        assert_eq!(Some(setup.id), run.call_id);
        assert_eq!(setup.test_run_id, Some(run.id));
        assert_eq!(setup.scenario_prompt.as_deref(), Some("Ask for a refund"));
        assert_eq!(
            (setup.ring_timeout_ms, setup.max_duration_seconds, setup.placement_timeout_ms),
            (30_000, 3_600, 60_000)
        );
        assert_eq!(setup.reservation_reference, Some(format!("call/{}", run.call_id.unwrap())));
        assert_eq!((run.org, run.batch_id, run.created_at, run.expected_seconds), (ORG, None, NOW, 60));
        assert_eq!((run.launched_at, run.request.requested_by_key_id), (Some(NOW), Some(9)));
        assert_eq!(then.launched, None);
    }
}

mod companion_leg {
    use super::*;

    #[test]
    fn a_sip_outbound_run_has_an_unbilled_inbound_leg_funded_at_once() {
        let then = when_run(&org(), request(TargetType::Agent, 69, RunDirection::Outbound, Mode::Sip), 0).unwrap();
        let run = then.run_state();
        let events = then.companion.as_ref().expect("a companion leg");
        let leg = setup_of(&events[0]);
        assert_eq!(run.sip_call_id, Some(leg.id));
        assert_ne!(Some(leg.id), run.call_id);
        assert_eq!(leg.direction, Direction::Inbound);
        assert_eq!((leg.from.clone(), leg.to.clone()), (e164(TEST_BOT_NUMBER), e164(NUMBER)));
        assert_eq!((leg.reservation_reference.clone(), leg.test_run_id), (None, Some(run.id)));
        assert_eq!(
            events[1],
            CallEvent::FundsReserved {
                funds: Funds { granted_cents: 0, rate_cents_per_minute: 0, charge_multiplier: 0 },
                at: NOW
            }
        );
        // Only the run's own call is reserved with billing.
        assert!(matches!(then.actions.as_slice(), [RunAction::Reserve { call, .. }] if Some(*call) == run.call_id));
    }

    #[test]
    fn only_a_sip_run_of_the_bot_calling_in_has_one() {
        // Agent 69 answers the org's number and agent 70 calls from it.
        for (agent, direction, mode) in [
            (70, RunDirection::Inbound, Mode::Sip),
            (69, RunDirection::Outbound, Mode::Bot),
            (70, RunDirection::Inbound, Mode::Bot),
        ] {
            let then = when_run(&org(), request(TargetType::Agent, agent, direction, mode), 0).unwrap();
            assert_eq!((&then.companion, then.run_state().sip_call_id), (&None, None), "{direction:?} {mode:?}");
        }
    }
}

mod multiplier {
    use super::*;

    #[test]
    fn a_run_reserves_its_calls_funds_at_the_test_multiplier() {
        let then = when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap();
        let run = then.run_state();
        assert_eq!(run.charge_multiplier, DEFAULT_CHARGE_MULTIPLIER);
        assert_eq!(
            then.actions,
            vec![RunAction::Reserve {
                call: run.call_id.unwrap(),
                reference: format!("call/{}", run.call_id.unwrap()),
                charge_multiplier: DEFAULT_CHARGE_MULTIPLIER,
                max_seconds: 3_600,
            }]
        );
    }

    #[test]
    fn the_estimate_is_the_expected_duration_at_the_multiplier() {
        let then = when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap();
        let view = test_call::run_view(then.run_state(), None);
        assert_eq!(view.estimated_cost_cents, cost_cents(60, DEFAULT_RATE_CENTS_PER_MINUTE, DEFAULT_CHARGE_MULTIPLIER));
        let granted = granted(&then, 30);
        let view = test_call::run_view(then.run_state(), Some(&granted));
        assert_eq!(view.estimated_cost_cents, cost_cents(60, 30, DEFAULT_CHARGE_MULTIPLIER));
    }
}

/// The run's call once billing granted it at `rate` cents a minute.
fn granted(run: &RunDecision, rate: u32) -> CallState {
    let mut call = CallState::start(&run.call).unwrap();
    let funds = Funds { granted_cents: 500, rate_cents_per_minute: rate, charge_multiplier: DEFAULT_CHARGE_MULTIPLIER };
    call.apply(&CallEvent::FundsReserved { funds, at: NOW });
    call
}

const STARTED: Timestamp = Timestamp(1_776_709_000_000);

fn seconds_after_start(seconds: i64) -> Timestamp {
    Timestamp(STARTED.0 + seconds * 1000)
}

fn spec(run_count: u32, stagger_seconds: u32) -> BatchSpec {
    BatchSpec {
        name: "Nightly".into(),
        target_type: TargetType::PhoneNumber,
        target_id: NUMBER_ID,
        direction: RunDirection::Outbound,
        target_number: None,
        scenario_prompts: vec!["refund".into(), "complaint".into()],
        run_count,
        stagger_seconds,
        mode: Mode::Bot,
        requested_by_key_id: Some(9),
    }
}

fn when_created(
    org: &OrgState,
    spec: BatchSpec,
    open: usize,
    ids: &mut domain::ids::IdSequence,
) -> Result<BatchCreation, BatchError> {
    test_call::create_batch(ORG, org, spec, open, &settings(), &mut Ctx { now: STARTED, ids })
}

/// A batch and its runs as the owner holds them once their creation is recorded.
struct Batch {
    state: BatchState,
    runs: Vec<RunState>,
    ids: domain::ids::IdSequence,
}

fn created_runs(creation: &BatchCreation) -> Vec<RunState> {
    creation
        .runs
        .iter()
        .map(|event| match event {
            RunEvent::Created { run } => (**run).clone(),
            other => panic!("a batch creates its runs, not {other:?}"),
        })
        .collect()
}

fn batch(run_count: u32, stagger_seconds: u32) -> Batch {
    let mut ids = ids();
    let creation = when_created(&org(), spec(run_count, stagger_seconds), 0, &mut ids).unwrap();
    let state = BatchState::start(&creation.batch).unwrap();
    Batch { state, runs: created_runs(&creation), ids }
}

impl Batch {
    /// The run the batch launches next (any run once none is left: nothing is launched then).
    fn next_run(&self) -> &RunState {
        let id = test_call::next_launch(&self.state).map_or(self.runs[0].id, |n| n.run_id);
        self.runs.iter().find(|r| r.id == id).unwrap()
    }

    /// When the batch's timer fires at `now` for an org (`org`) holding `running` runs.
    fn when_due(&mut self, org: &OrgState, running: u32, now: Timestamp) -> Launch {
        let next = self.next_run().clone();
        test_call::launch_due_run(&self.state, &next, org, running, &settings(), &mut Ctx { now, ids: &mut self.ids })
    }

    /// Records a launch as the owner does: the batch advances by the event the launch came
    /// with, and the run becomes the launched one.
    fn record(&mut self, launch: Launch) -> RunDecision {
        let Launch::Run(run) = launch else { panic!("no run launched: {launch:?}") };
        self.state.apply(run.launched.as_ref().expect("a batch's launch is recorded on the batch"));
        let at = self.runs.iter().position(|r| r.id == run.state.id).unwrap();
        self.runs[at] = run.state.clone();
        *run
    }

    /// When the batch's timer fires at `now`, with room for runs, the launch, recorded.
    fn launch_at(&mut self, now: Timestamp) -> RunDecision {
        let launch = self.when_due(&org(), 0, now);
        self.record(launch)
    }

    fn cancel(&mut self, at: Timestamp) -> BatchCancel {
        let cancel = test_call::cancel_batch(&self.state, at).expect("a batch with runs to launch");
        self.state.apply(&cancel.batch);
        for (id, event) in &cancel.runs {
            self.runs.iter_mut().find(|r| r.id == *id).unwrap().apply(event);
        }
        cancel
    }
}

mod creating_batches {
    use super::*;

    #[test]
    fn a_batch_is_created_with_all_its_runs_queued_in_one_decision() {
        let mut ids = ids();
        let then = when_created(&org(), spec(3, 10), 0, &mut ids).unwrap();
        let mut fresh = self::ids();
        let id = fresh.next_id();
        let run_ids: Vec<u64> = (0..3).map(|_| fresh.next_id()).collect();
        assert_eq!(
            then.batch,
            BatchEvent::Created { id, org: ORG, spec: spec(3, 10), at: STARTED, run_ids: run_ids.clone() }
        );
        let runs = created_runs(&then);
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), run_ids);
        for run in &runs {
            assert_eq!((run.call_id, run.sip_call_id, run.launched_at), (None, None, None), "queued, without a call");
            assert_eq!((run.batch_id, run.org, run.agent_id, run.created_at), (Some(id), ORG, AgentId(69), STARTED));
            assert_eq!((run.request.requested_by_key_id, run.target_name.as_str()), (Some(9), NUMBER));
            assert_eq!(test_call::run_view(run, None).status, RunStatus::Queued);
        }
    }

    #[test]
    fn a_batchs_runs_have_its_prompts_rotated_by_index() {
        let batch = batch(3, 0);
        let prompts: Vec<&str> = batch.runs.iter().map(|r| r.request.scenario_prompt.as_str()).collect();
        assert_eq!(prompts, ["refund", "complaint", "refund"]);
    }

    #[test]
    fn a_batch_of_a_missing_org_is_refused() {
        assert_eq!(
            when_created(&OrgState::default(), spec(3, 10), 0, &mut ids()),
            Err(BatchError::Org(OrgError::NotFound(Resource::Org)))
        );
    }

    #[test]
    fn a_batch_past_the_open_batch_quota_is_refused() {
        let limit = Quota::OpenBatches.default_limit();
        assert_eq!(
            when_created(&org(), spec(3, 10), limit as usize, &mut ids()),
            Err(BatchError::Org(OrgError::QuotaExceeded { quota: Quota::OpenBatches, limit }))
        );
    }

    #[test]
    fn a_batch_whose_runs_would_have_no_target_is_refused() {
        let no_agents = given(&[created(), number(NUMBER_ID, NUMBER, NumberBacking::Demo, None, None)]);
        assert_eq!(
            when_created(&no_agents, spec(3, 10), 0, &mut ids()),
            Err(BatchError::Target(TestTargetError::NoAgentOnNumber { number: e164(NUMBER), which: "inbound" }))
        );
    }
}

mod launching {
    use super::*;

    #[test]
    fn the_first_run_is_due_at_once_and_each_next_a_stagger_later() {
        let mut batch = batch(3, 10);
        let (first_id, second_id) = (batch.runs[0].id, batch.runs[1].id);
        assert_eq!(test_call::next_launch(&batch.state), Some(NextLaunch { index: 0, run_id: first_id, due: STARTED }));
        batch.launch_at(STARTED);
        assert_eq!(test_call::next_launch(&batch.state).map(|n| n.due), Some(seconds_after_start(10)));
        assert_eq!(batch.when_due(&org(), 0, seconds_after_start(9)), Launch::WaitUntil(seconds_after_start(10)));
        let second = batch.launch_at(seconds_after_start(10));
        assert_eq!(
            second.launched,
            Some(BatchEvent::RunLaunched { index: 1, run_id: second_id, at: seconds_after_start(10) })
        );
        assert_eq!((batch.state.launched, batch.state.started_at), (2, Some(STARTED)));
    }

    #[test]
    fn a_launch_starts_the_queued_runs_call_and_reserves_its_funds() {
        let mut batch = batch(2, 0);
        let queued = batch.runs[0].clone();
        let then = batch.launch_at(STARTED);
        assert!(!then.creates_run(), "the run was created with its batch");
        let call = setup_of(&then.call).id;
        assert_eq!(then.run, vec![RunEvent::Launched { call_id: call, sip_call_id: None, at: STARTED }]);
        assert_eq!((then.state.id, then.state.call_id, then.state.launched_at), (queued.id, Some(call), Some(STARTED)));
        assert_eq!(setup_of(&then.call).test_run_id, Some(queued.id));
        assert_eq!(setup_of(&then.call).scenario_prompt.as_deref(), Some("refund"));
        assert!(
            matches!(then.actions.as_slice(), [RunAction::Reserve { call: c, charge_multiplier: 2, .. }] if *c == call)
        );
    }

    #[test]
    fn a_batch_never_launches_more_than_its_runs() {
        let mut batch = batch(2, 0);
        batch.launch_at(STARTED);
        batch.launch_at(STARTED);
        assert!(!batch.state.has_runs_to_launch());
        assert_eq!(batch.when_due(&org(), 0, seconds_after_start(3600)), Launch::Finished);
        assert_eq!(test_call::next_launch(&batch.state), None);
    }

    #[test]
    fn a_due_run_waits_while_the_org_is_at_its_limit_of_launched_runs() {
        let mut batch = batch(3, 10);
        let limit = test_call::DEFAULT_MAX_CONCURRENT_RUNS;
        let now = seconds_after_start(4);
        assert_eq!(batch.when_due(&org(), limit, now), Launch::WaitUntil(Timestamp(now.0 + LIMIT_RETRY_MS)));
        assert!(matches!(batch.when_due(&org(), limit - 1, now), Launch::Run(_)));
    }

    #[test]
    fn a_due_run_of_an_org_that_cannot_be_read_waits_too() {
        // The owner passes an empty org when it cannot read the batch's: it has no room for runs.
        let mut batch = batch(3, 10);
        assert_eq!(
            batch.when_due(&OrgState::default(), 0, STARTED),
            Launch::WaitUntil(Timestamp(STARTED.0 + LIMIT_RETRY_MS))
        );
        assert_eq!(batch.when_due(&OrgState::default(), 0, Timestamp(STARTED.0 - 1)), Launch::WaitUntil(STARTED));
    }

    #[test]
    fn a_batch_whose_target_is_gone_is_canceled_with_its_queued_runs() {
        let mut batch = batch(3, 10);
        batch.launch_at(STARTED);
        let mut gone = org();
        gone.apply(&OrgEvent::PhoneNumberDeleted { id: PhoneNumberId(NUMBER_ID), at: NOW });
        let queued = [batch.runs[1].id, batch.runs[2].id];
        assert_eq!(
            batch.when_due(&gone, 0, NOW),
            Launch::Cancel {
                cancel: Box::new(BatchCancel {
                    batch: BatchEvent::Canceled { at: NOW },
                    runs: queued.iter().map(|id| (*id, RunEvent::Canceled { at: NOW })).collect(),
                }),
                reason: TestTargetError::NumberNotFound
            }
        );
    }

    #[test]
    fn a_canceled_batch_launches_nothing_more() {
        let mut batch = batch(3, 10);
        batch.launch_at(STARTED);
        batch.cancel(seconds_after_start(1));
        assert_eq!(batch.when_due(&org(), 0, seconds_after_start(60)), Launch::Finished);
    }

    #[test]
    fn a_batch_folded_from_its_log_goes_on_where_it_stopped() {
        let mut ids = ids();
        let creation = when_created(&org(), spec(3, 10), 0, &mut ids).unwrap();
        let mut live = Batch { state: BatchState::start(&creation.batch).unwrap(), runs: created_runs(&creation), ids };
        let first = live.launch_at(STARTED);
        let mut replayed = None;
        for event in [creation.batch.clone(), first.launched.clone().unwrap()] {
            BatchState::evolve(&mut replayed, &event);
        }
        assert_eq!(replayed.as_ref(), Some(&live.state));
        // The first run's stream folds to the launched run the owner holds.
        let mut run = None;
        for event in [creation.runs[0].clone()].iter().chain(&first.run) {
            RunState::evolve(&mut run, event);
        }
        assert_eq!(run.as_ref(), Some(&live.runs[0]));
        let next = live.launch_at(seconds_after_start(10));
        assert!(matches!(next.launched, Some(BatchEvent::RunLaunched { index: 1, .. })));
        assert_eq!(next.state.id, creation_run_id(&creation, 1));
    }

    fn creation_run_id(creation: &BatchCreation, index: usize) -> u64 {
        created_runs(creation)[index].id
    }

    #[test]
    fn a_batch_recorded_before_runs_were_created_with_it_folds_and_launches_nothing() {
        // Its creation has no run ids; its runs were spawned and launched at once.
        let legacy = BatchEvent::Created { id: 77, org: ORG, spec: spec(3, 10), at: STARTED, run_ids: Vec::new() };
        let mut state = BatchState::start(&legacy).unwrap();
        state.apply(&BatchEvent::RunSpawned { index: 0, run_id: 1000, at: STARTED });
        assert_eq!((state.run_ids.clone(), state.launched, state.started_at), (vec![1000], 1, Some(STARTED)));
        assert!(!state.has_runs_to_launch());
        assert_eq!(test_call::next_launch(&state), None);
    }
}

mod canceling {
    use super::*;

    #[test]
    fn a_cancel_ends_the_queued_runs_once() {
        let mut batch = batch(3, 10);
        batch.launch_at(STARTED);
        let cancel = batch.cancel(NOW);
        assert_eq!(cancel.batch, BatchEvent::Canceled { at: NOW });
        assert_eq!(cancel.runs.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [batch.runs[1].id, batch.runs[2].id]);
        assert_eq!(test_call::cancel_batch(&batch.state, NOW), None);
    }

    #[test]
    fn a_run_its_batch_canceled_before_its_launch_fails_and_says_why() {
        let mut batch = batch(2, 10);
        batch.launch_at(STARTED);
        let at = seconds_after_start(3);
        batch.cancel(at);
        let view = test_call::run_view(&batch.runs[1], None);
        assert_eq!(
            (view.status, view.error_message.as_str(), view.completed_at, view.started_at),
            (RunStatus::Failed, "The batch was canceled before this run was launched.", Some(at), None)
        );
    }

    #[test]
    fn a_batch_with_every_run_launched_has_nothing_to_cancel() {
        let mut batch = batch(1, 0);
        batch.launch_at(STARTED);
        assert_eq!(test_call::cancel_batch(&batch.state, NOW), None);
    }
}

mod views {
    use super::*;

    fn a_run() -> RunDecision {
        when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap()
    }

    fn after(call: &mut CallState, events: &[CallEvent]) {
        for event in events {
            call.apply(event);
        }
    }

    fn ended(status: Status, reason: EndReason, at: Timestamp) -> CallEvent {
        CallEvent::Ended { status, reason, sip_code: None, duration_seconds: 30, at }
    }

    #[test]
    fn a_run_is_queued_until_its_call_is_dialed() {
        let run = a_run();
        let view = test_call::run_view(run.run_state(), None);
        assert_eq!((view.status, view.started_at, view.updated_at), (RunStatus::Queued, None, NOW));
        let call = granted(&run, 10);
        assert_eq!(test_call::run_view(run.run_state(), Some(&call)).status, RunStatus::Queued);
    }

    #[test]
    fn a_run_is_in_progress_from_the_dial_and_completes_with_its_call() {
        let run = a_run();
        let mut call = granted(&run, 10);
        let dialed = Timestamp(NOW.0 + 1_000);
        after(&mut call, &[CallEvent::DialAccepted { at: dialed }]);
        let view = test_call::run_view(run.run_state(), Some(&call));
        assert_eq!((view.status, view.started_at, view.updated_at), (RunStatus::InProgress, Some(dialed), dialed));
        let end = Timestamp(NOW.0 + 40_000);
        after(
            &mut call,
            &[
                CallEvent::Answered { sip_dialog: None, at: dialed },
                ended(Status::Completed, EndReason::CalleeHangup, end),
            ],
        );
        let view = test_call::run_view(run.run_state(), Some(&call));
        assert_eq!(
            view,
            RunView {
                status: RunStatus::Completed,
                estimated_cost_cents: cost_cents(60, 10, DEFAULT_CHARGE_MULTIPLIER),
                expected_seconds: 60,
                error_message: String::new(),
                started_at: Some(dialed),
                completed_at: Some(end),
                duration_seconds: Some(30),
                updated_at: end,
            }
        );
    }

    #[test]
    fn a_run_whose_call_failed_says_why() {
        let run = a_run();
        let mut call = granted(&run, 10);
        after(&mut call, &[CallEvent::DialAccepted { at: NOW }, ended(Status::Failed, EndReason::Busy, NOW)]);
        let view = test_call::run_view(run.run_state(), Some(&call));
        assert_eq!((view.status, view.error_message.as_str()), (RunStatus::Failed, "The call failed: busy."));
    }

    #[test]
    fn a_run_whose_call_was_never_placed_says_why() {
        let run = a_run();
        for (code, message) in [
            ("insufficient_balance", "Insufficient balance."),
            ("placement_timeout", "The call could not be placed (placement_timeout)."),
        ] {
            let mut call = CallState::start(&run.call).unwrap();
            let rejected_at = Timestamp(NOW.0 + 5);
            after(&mut call, &[CallEvent::Rejected { code: code.into(), at: rejected_at }]);
            let view = test_call::run_view(run.run_state(), Some(&call));
            assert_eq!(
                (view.status, view.error_message.as_str(), view.completed_at),
                (RunStatus::Failed, message, Some(rejected_at))
            );
        }
    }

    fn run_view(status: RunStatus, completed_at: Option<i64>) -> RunView {
        RunView {
            status,
            estimated_cost_cents: 20,
            expected_seconds: 90,
            error_message: String::new(),
            started_at: None,
            completed_at: completed_at.map(seconds_after_start),
            duration_seconds: None,
            updated_at: seconds_after_start(completed_at.unwrap_or(1)),
        }
    }

    /// The batch with its first `launched` runs launched at its start.
    fn launched(run_count: u32, launched: usize) -> Batch {
        let mut batch = batch(run_count, 0);
        for _ in 0..launched {
            batch.launch_at(STARTED);
        }
        batch
    }

    #[test]
    fn a_batch_is_pending_until_its_first_launch() {
        let batch = launched(3, 0);
        let queued = vec![run_view(RunStatus::Queued, None); 3];
        let view = test_call::batch_view(&batch.state, &queued);
        assert_eq!((view.status, view.total_runs, view.started_at), (BatchStatus::Pending, 3, None));
        let batch = launched(3, 1);
        let view = test_call::batch_view(&batch.state, &queued);
        assert_eq!((view.status, view.started_at), (BatchStatus::InProgress, Some(STARTED)));
    }

    #[test]
    fn a_batchs_estimate_is_its_runs() {
        let batch = launched(3, 0);
        let view = test_call::batch_view(&batch.state, &vec![run_view(RunStatus::Queued, None); 3]);
        // Each run assumes 90 s: two minutes, rounded up.
        assert_eq!((view.estimated_cost_cents, view.estimated_minutes), (60, 6));
    }

    #[test]
    fn a_batch_is_in_progress_while_it_has_runs_to_launch_or_running() {
        let batch = launched(3, 2);
        let done = [
            run_view(RunStatus::Completed, Some(20)),
            run_view(RunStatus::Completed, Some(30)),
            run_view(RunStatus::Queued, None),
        ];
        let view = test_call::batch_view(&batch.state, &done);
        assert_eq!((view.status, view.total_runs, view.completed_at), (BatchStatus::InProgress, 3, None));
        let batch = launched(2, 2);
        let running = [run_view(RunStatus::Completed, Some(20)), run_view(RunStatus::InProgress, None)];
        assert_eq!(test_call::batch_view(&batch.state, &running).status, BatchStatus::InProgress);
    }

    #[test]
    fn a_batch_completes_when_every_run_is_over_and_one_completed() {
        let batch = launched(2, 2);
        let runs = [run_view(RunStatus::Failed, Some(40)), run_view(RunStatus::Completed, Some(30))];
        let view = test_call::batch_view(&batch.state, &runs);
        assert_eq!(
            (view.status, view.completed_runs, view.failed_runs, view.completed_at, view.updated_at),
            (BatchStatus::Completed, 1, 1, Some(seconds_after_start(40)), seconds_after_start(40))
        );
    }

    #[test]
    fn a_batch_of_failed_runs_fails() {
        let batch = launched(2, 2);
        let runs = [run_view(RunStatus::Failed, Some(40)), run_view(RunStatus::Failed, Some(30))];
        let view = test_call::batch_view(&batch.state, &runs);
        assert_eq!((view.status, view.error_message.as_str()), (BatchStatus::Failed, "No run completed."));
    }

    #[test]
    fn a_canceled_batch_counts_its_canceled_runs_as_failed() {
        let mut batch = launched(3, 1);
        batch.cancel(seconds_after_start(50));
        let runs = [
            run_view(RunStatus::Completed, Some(20)),
            run_view(RunStatus::Failed, Some(50)),
            run_view(RunStatus::Failed, Some(50)),
        ];
        let view = test_call::batch_view(&batch.state, &runs);
        assert_eq!(
            (view.status, view.total_runs, view.completed_runs, view.failed_runs, view.completed_at),
            (BatchStatus::Completed, 3, 1, 2, Some(seconds_after_start(50)))
        );

        let mut none = launched(2, 0);
        none.cancel(seconds_after_start(2));
        let canceled = [run_view(RunStatus::Failed, Some(2)), run_view(RunStatus::Failed, Some(2))];
        let view = test_call::batch_view(&none.state, &canceled);
        assert_eq!(
            (view.status, view.total_runs, view.error_message.as_str()),
            (BatchStatus::Failed, 2, "The batch was canceled before any run was launched.")
        );
    }

    #[test]
    fn the_next_launch_is_the_start_plus_a_stagger_per_launched_run() {
        let due = |run_count, launched_runs| {
            let mut batch = batch(run_count, 15);
            for i in 0..launched_runs {
                batch.launch_at(seconds_after_start(15 * i as i64));
            }
            test_call::next_launch(&batch.state).map(|n| n.due)
        };
        assert_eq!(due(3, 0), Some(STARTED));
        assert_eq!(due(3, 2), Some(seconds_after_start(30)));
        assert_eq!(due(3, 3), None);
        let mut canceled = batch(3, 15);
        canceled.cancel(STARTED);
        assert_eq!(test_call::next_launch(&canceled.state), None);
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// One step of a batch's life: time passes, the org's running runs change, a timer fires,
    /// or the org cancels.
    #[derive(Clone, Debug)]
    enum Step {
        Wait { ms: i64 },
        Running(u32),
        Fire,
        Cancel,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (0i64..30_000).prop_map(|ms| Step::Wait { ms }),
            1 => (0u32..12).prop_map(Step::Running),
            4 => Just(Step::Fire),
            1 => Just(Step::Cancel),
        ]
    }

    proptest! {
        /// Whatever the timing, the org's load and a cancel, a batch launches its runs 0, 1,
        /// 2, ... in order, never one twice, none before it is due, none after a cancel; every
        /// run ends launched or canceled, never both; and a replay of what the batch and each
        /// run recorded is what the owner holds.
        #[test]
        fn a_batch_launches_each_run_once_in_order(
            run_count in 1u32..=test_call::MAX_RUN_COUNT,
            stagger_seconds in 0u32..=test_call::MAX_STAGGER_SECONDS,
            steps in proptest::collection::vec(step(), 1..80),
        ) {
            let org = org();
            let mut batch = batch(run_count, stagger_seconds);
            let run_ids = batch.state.run_ids.clone();
            prop_assert_eq!(run_ids.len() as u32, run_count);
            let mut log = vec![BatchEvent::Created {
                id: batch.state.id, org: ORG, spec: batch.state.spec.clone(), at: STARTED, run_ids: run_ids.clone(),
            }];
            let mut run_logs: Vec<Vec<RunEvent>> =
                batch.runs.iter().map(|r| vec![RunEvent::Created { run: Box::new(r.clone()) }]).collect();
            let (mut now, mut running) = (STARTED, 0);
            for step in steps {
                match step {
                    Step::Wait { ms } => now = Timestamp(now.0 + ms),
                    Step::Running(count) => running = count,
                    Step::Cancel => {
                        if test_call::cancel_batch(&batch.state, now).is_some() {
                            let cancel = batch.cancel(now);
                            log.push(cancel.batch.clone());
                            for (id, event) in cancel.runs {
                                run_logs[run_ids.iter().position(|r| *r == id).unwrap()].push(event);
                            }
                        }
                    }
                    Step::Fire => match batch.when_due(&org, running, now) {
                        Launch::Run(run) => {
                            let index = batch.state.launched;
                            let event = run.launched.clone().unwrap();
                            prop_assert_eq!(&event, &BatchEvent::RunLaunched { index, run_id: run_ids[index as usize], at: now });
                            prop_assert!(now.0 >= STARTED.0 + i64::from(index) * i64::from(stagger_seconds) * 1000);
                            run_logs[index as usize].extend(run.run.clone());
                            log.push(event);
                            batch.record(Launch::Run(run));
                        }
                        Launch::WaitUntil(at) => prop_assert!(at > now),
                        Launch::Finished => prop_assert!(!batch.state.has_runs_to_launch()),
                        Launch::Cancel { .. } => prop_assert!(false, "the target exists"),
                    },
                }
            }
            let indices: Vec<u32> = log.iter().filter_map(|e| match e {
                BatchEvent::RunLaunched { index, .. } => Some(*index),
                _ => None,
            }).collect();
            prop_assert_eq!(indices, (0..batch.state.launched).collect::<Vec<_>>());
            let cancels = log.iter().filter(|e| matches!(e, BatchEvent::Canceled { .. })).count();
            prop_assert!(cancels <= 1);
            if let Some(canceled_at) = log.iter().position(|e| matches!(e, BatchEvent::Canceled { .. })) {
                let launched_after = log[canceled_at..].iter().any(|e| matches!(e, BatchEvent::RunLaunched { .. }));
                prop_assert!(!launched_after, "a launch after the cancel");
            }
            for (index, events) in run_logs.iter().enumerate() {
                let launched = events.iter().filter(|e| matches!(e, RunEvent::Launched { .. })).count();
                let canceled = events.iter().filter(|e| matches!(e, RunEvent::Canceled { .. })).count();
                prop_assert!(launched + canceled <= 1, "run {} launched {} times, canceled {}", index, launched, canceled);
                prop_assert_eq!(launched == 1, index < batch.state.launched as usize);
                let mut replayed = None;
                for event in events {
                    RunState::evolve(&mut replayed, event);
                }
                prop_assert_eq!(replayed.as_ref(), Some(&batch.runs[index]));
            }
            let mut replayed = None;
            for event in &log {
                BatchState::evolve(&mut replayed, event);
            }
            prop_assert_eq!(replayed, Some(batch.state));
        }
    }
}

#[test]
fn a_run_asked_for_alone_is_recorded_as_its_creation_its_launch_and_its_calls_request() {
    let then = when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap();
    assert!(then.creates_run());
    let [RunEvent::Created { run: queued }, launched @ RunEvent::Launched { call_id, .. }] = then.run.as_slice() else {
        panic!("not a creation and a launch: {:?}", then.run)
    };
    assert_eq!(queued.call_id, None);
    let mut folded = None;
    for event in &then.run {
        RunState::evolve(&mut folded, event);
    }
    assert_eq!(folded.as_ref(), Some(then.run_state()));
    assert_eq!(
        (then.run[0].event_type(), launched.event_type(), then.call.event_type()),
        ("test_run_created", "test_run_launched", "call_requested")
    );
    assert_eq!(setup_of(&then.call).id, *call_id);
    assert_eq!((then.run_state().agent_name.as_str(), then.run_state().target_name.as_str()), ("agent 69", NUMBER));
}
