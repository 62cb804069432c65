//! Test-call runs and batches: the limit of concurrent runs, who calls whom, the SIP loopback's
//! companion leg, the multiplier, a batch's spawns and cancel, and how runs and batches show.

use domain::call::{CallEvent, CallSetup, CallState, Direction, EndReason, Funds, Status};
use domain::ids::{AgentId, IdSequence, OrgId, PhoneNumberId};
use domain::ledger::{DEFAULT_RATE_CENTS_PER_MINUTE, cost_cents};
use domain::org::{NumberBacking, OrgError, OrgEvent, OrgState, Quota, Resource, TestTargetError};
use domain::test_call::{
    self, AGENT_SIDE_NUMBER, BatchError, BatchEvent, BatchSpec, BatchState, BatchStatus, DEFAULT_CHARGE_MULTIPLIER,
    LIMIT_RETRY_MS, Mode, RunAction, RunDecision, RunDirection, RunError, RunEvent, RunRequest, RunSettings, RunStatus,
    RunView, Spawn, TEST_BOT_NUMBER, TargetType,
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
        assert_eq!(setup.id, run.call_id);
        assert_eq!(setup.test_run_id, Some(run.id));
        assert_eq!(setup.scenario_prompt.as_deref(), Some("Ask for a refund"));
        assert_eq!(
            (setup.ring_timeout_ms, setup.max_duration_seconds, setup.placement_timeout_ms),
            (30_000, 3_600, 60_000)
        );
        assert_eq!(setup.reservation_reference, Some(format!("call/{}", run.call_id)));
        assert_eq!((run.org, run.batch_id, run.created_at, run.expected_seconds), (ORG, None, NOW, 60));
        assert_eq!(then.spawned, None);
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
        assert_ne!(leg.id, run.call_id);
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
        assert!(matches!(then.actions.as_slice(), [RunAction::Reserve { call, .. }] if *call == run.call_id));
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
                call: run.call_id,
                reference: format!("call/{}", run.call_id),
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
        requested_by_key_id: None,
    }
}

fn batch(run_count: u32, stagger_seconds: u32) -> BatchState {
    BatchState::start(&BatchEvent::Created { id: 77, org: ORG, spec: spec(run_count, stagger_seconds), at: STARTED })
        .unwrap()
}

fn when_due(batch: &BatchState, org: &OrgState, running: u32, now: Timestamp) -> Spawn {
    test_call::spawn_due_run(batch, org, running, &settings(), &mut Ctx { now, ids: &mut ids() })
}

/// Records a spawn as the owner does: the batch advances by the event the run came with.
fn spawned(batch: &mut BatchState, spawn: Spawn) -> RunDecision {
    let Spawn::Run(run) = spawn else { panic!("no run spawned: {spawn:?}") };
    batch.apply(run.spawned.as_ref().expect("a batch run records its spawn"));
    *run
}

/// When the batch's timer fires at `now`, with room for runs, the run it spawns, recorded.
fn spawn_at(batch: &mut BatchState, now: Timestamp) -> RunDecision {
    let spawn = when_due(batch, &org(), 0, now);
    spawned(batch, spawn)
}

mod creating_batches {
    use super::*;

    fn when_created(org: &OrgState, open: usize) -> Result<BatchEvent, BatchError> {
        test_call::create_batch(ORG, org, spec(3, 10), open, &mut Ctx { now: NOW, ids: &mut ids() })
    }

    #[test]
    fn a_batch_is_created_with_a_fresh_id_of_the_partition() {
        let then = when_created(&org(), 0).unwrap();
        assert_eq!(then, BatchEvent::Created { id: ids().next_id(), org: ORG, spec: spec(3, 10), at: NOW });
    }

    #[test]
    fn a_batch_of_a_missing_org_is_refused() {
        assert_eq!(when_created(&OrgState::default(), 0), Err(BatchError::Org(OrgError::NotFound(Resource::Org))));
    }

    #[test]
    fn a_batch_past_the_open_batch_quota_is_refused() {
        let limit = Quota::OpenBatches.default_limit();
        assert_eq!(
            when_created(&org(), limit as usize),
            Err(BatchError::Org(OrgError::QuotaExceeded { quota: Quota::OpenBatches, limit }))
        );
    }

    #[test]
    fn a_batch_whose_first_run_would_have_no_target_is_refused() {
        let no_agents = given(&[created(), number(NUMBER_ID, NUMBER, NumberBacking::Demo, None, None)]);
        assert_eq!(
            when_created(&no_agents, 0),
            Err(BatchError::Target(TestTargetError::NoAgentOnNumber { number: e164(NUMBER), which: "inbound" }))
        );
    }
}

mod spawning {
    use super::*;

    #[test]
    fn the_first_run_is_due_at_once_and_each_next_a_stagger_later() {
        let mut batch = batch(3, 10);
        assert_eq!(test_call::next_spawn_at(&batch), Some(STARTED));
        let first = spawn_at(&mut batch, STARTED);
        assert_eq!(test_call::next_spawn_at(&batch), Some(seconds_after_start(10)));
        assert_eq!(when_due(&batch, &org(), 0, seconds_after_start(9)), Spawn::WaitUntil(seconds_after_start(10)));
        let second = spawn_at(&mut batch, seconds_after_start(10));
        assert_eq!(
            second.spawned,
            Some(BatchEvent::RunSpawned { index: 1, run_id: second.run_state().id, at: seconds_after_start(10) })
        );
        assert_eq!(batch.run_ids, vec![first.run_state().id, second.run_state().id]);
    }

    #[test]
    fn a_batch_run_is_the_batchs_with_its_prompt_rotated_by_index() {
        let mut batch = batch(3, 0);
        let prompts: Vec<String> = (0..3)
            .map(|_| {
                let run = spawn_at(&mut batch, STARTED);
                assert_eq!(run.run_state().batch_id, Some(77));
                run.run_state().request.scenario_prompt.clone()
            })
            .collect();
        assert_eq!(prompts, ["refund", "complaint", "refund"]);
    }

    #[test]
    fn a_batch_never_spawns_more_than_run_count() {
        let mut batch = batch(2, 0);
        spawn_at(&mut batch, STARTED);
        spawn_at(&mut batch, STARTED);
        assert!(batch.is_spawned());
        assert_eq!(when_due(&batch, &org(), 0, seconds_after_start(3600)), Spawn::Finished);
        assert_eq!(test_call::next_spawn_at(&batch), None);
    }

    #[test]
    fn a_due_run_waits_while_the_org_is_at_its_limit() {
        let batch = batch(3, 10);
        let limit = test_call::DEFAULT_MAX_CONCURRENT_RUNS;
        let now = seconds_after_start(4);
        assert_eq!(when_due(&batch, &org(), limit, now), Spawn::WaitUntil(Timestamp(now.0 + LIMIT_RETRY_MS)));
        assert!(matches!(when_due(&batch, &org(), limit - 1, now), Spawn::Run(_)));
    }

    #[test]
    fn a_due_run_of_an_org_that_cannot_be_read_waits_too() {
        // The owner passes an empty org when it cannot read the batch's: it has no room for runs.
        let batch = batch(3, 10);
        assert_eq!(
            when_due(&batch, &OrgState::default(), 0, STARTED),
            Spawn::WaitUntil(Timestamp(STARTED.0 + LIMIT_RETRY_MS))
        );
        assert_eq!(when_due(&batch, &OrgState::default(), 0, Timestamp(STARTED.0 - 1)), Spawn::WaitUntil(STARTED));
    }

    #[test]
    fn a_batch_whose_target_is_gone_is_canceled() {
        let mut gone = org();
        gone.apply(&OrgEvent::PhoneNumberDeleted { id: PhoneNumberId(NUMBER_ID), at: NOW });
        assert_eq!(
            when_due(&batch(3, 10), &gone, 0, NOW),
            Spawn::Cancel { event: BatchEvent::Canceled { at: NOW }, reason: TestTargetError::NumberNotFound }
        );
    }

    #[test]
    fn a_canceled_batch_spawns_nothing_more() {
        let mut batch = batch(3, 10);
        spawn_at(&mut batch, STARTED);
        batch.apply(&BatchEvent::Canceled { at: seconds_after_start(1) });
        assert_eq!(when_due(&batch, &org(), 0, seconds_after_start(60)), Spawn::Finished);
    }

    #[test]
    fn a_batch_folded_from_its_log_goes_on_where_it_stopped() {
        let mut live = batch(3, 10);
        let first = spawn_at(&mut live, STARTED);
        let log =
            [BatchEvent::Created { id: 77, org: ORG, spec: spec(3, 10), at: STARTED }, first.spawned.clone().unwrap()];
        let mut replayed = None;
        for event in &log {
            BatchState::evolve(&mut replayed, event);
        }
        let replayed = replayed.unwrap();
        assert_eq!(replayed, live);
        let next = spawned(&mut live, when_due(&replayed, &org(), 0, seconds_after_start(10)));
        assert!(matches!(next.spawned, Some(BatchEvent::RunSpawned { index: 1, .. })));
    }
}

mod canceling {
    use super::*;

    #[test]
    fn a_cancel_stops_a_batch_with_runs_left_once() {
        let mut batch = batch(3, 10);
        let canceled = test_call::cancel_batch(&batch, NOW).unwrap();
        assert_eq!(canceled, BatchEvent::Canceled { at: NOW });
        batch.apply(&canceled);
        assert_eq!(test_call::cancel_batch(&batch, NOW), None);
    }

    #[test]
    fn a_batch_with_every_run_spawned_has_nothing_to_cancel() {
        let mut batch = batch(1, 0);
        spawn_at(&mut batch, STARTED);
        assert_eq!(test_call::cancel_batch(&batch, NOW), None);
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
                error_message: String::new(),
                started_at: Some(dialed),
                completed_at: Some(end),
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
            error_message: String::new(),
            started_at: None,
            completed_at: completed_at.map(seconds_after_start),
            updated_at: seconds_after_start(completed_at.unwrap_or(1)),
        }
    }

    fn with_runs(mut batch: BatchState, count: usize) -> BatchState {
        for i in 0..count {
            batch.apply(&BatchEvent::RunSpawned { index: i as u32, run_id: 1000 + i as u64, at: STARTED });
        }
        batch
    }

    #[test]
    fn a_batch_is_in_progress_while_it_has_runs_to_spawn_or_running() {
        let batch = with_runs(batch(3, 10), 2);
        let done = [run_view(RunStatus::Completed, Some(20)), run_view(RunStatus::Completed, Some(30))];
        let view = test_call::batch_view(&batch, &done);
        assert_eq!((view.status, view.total_runs, view.completed_at), (BatchStatus::InProgress, 3, None));
        let batch = with_runs(self::batch(2, 10), 2);
        let running = [run_view(RunStatus::Completed, Some(20)), run_view(RunStatus::InProgress, None)];
        assert_eq!(test_call::batch_view(&batch, &running).status, BatchStatus::InProgress);
    }

    #[test]
    fn a_batch_completes_when_every_run_is_over_and_one_completed() {
        let batch = with_runs(batch(2, 10), 2);
        let runs = [run_view(RunStatus::Failed, Some(40)), run_view(RunStatus::Completed, Some(30))];
        let view = test_call::batch_view(&batch, &runs);
        assert_eq!(
            (view.status, view.completed_runs, view.failed_runs, view.completed_at, view.updated_at),
            (BatchStatus::Completed, 1, 1, Some(seconds_after_start(40)), seconds_after_start(40))
        );
    }

    #[test]
    fn a_batch_of_failed_runs_fails() {
        let batch = with_runs(batch(2, 10), 2);
        let runs = [run_view(RunStatus::Failed, Some(40)), run_view(RunStatus::Failed, Some(30))];
        let view = test_call::batch_view(&batch, &runs);
        assert_eq!((view.status, view.error_message.as_str()), (BatchStatus::Failed, "No run completed."));
    }

    #[test]
    fn a_canceled_batch_counts_only_the_runs_it_spawned() {
        let mut batch = with_runs(batch(5, 10), 1);
        batch.apply(&BatchEvent::Canceled { at: seconds_after_start(50) });
        let view = test_call::batch_view(&batch, &[run_view(RunStatus::Completed, Some(20))]);
        assert_eq!(
            (view.status, view.total_runs, view.completed_at),
            (BatchStatus::Completed, 1, Some(seconds_after_start(50)))
        );

        let mut empty = self::batch(5, 10);
        empty.apply(&BatchEvent::Canceled { at: seconds_after_start(2) });
        let view = test_call::batch_view(&empty, &[]);
        assert_eq!(
            (view.status, view.total_runs, view.error_message.as_str()),
            (BatchStatus::Failed, 0, "The batch was canceled before any run started.")
        );
    }

    #[test]
    fn next_spawn_at_is_the_start_plus_a_stagger_per_spawned_run() {
        assert_eq!(test_call::next_spawn_at(&with_runs(batch(3, 15), 0)), Some(STARTED));
        assert_eq!(test_call::next_spawn_at(&with_runs(batch(3, 15), 2)), Some(seconds_after_start(30)));
        assert_eq!(test_call::next_spawn_at(&with_runs(batch(3, 15), 3)), None);
        let mut canceled = batch(3, 15);
        canceled.apply(&BatchEvent::Canceled { at: STARTED });
        assert_eq!(test_call::next_spawn_at(&canceled), None);
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
        /// Whatever the timing, the org's load and a cancel, a batch spawns the indices
        /// 0, 1, 2, ... in order, never one twice, never more than `run_count`, none after a
        /// cancel, and a replay of what it recorded is the batch the owner holds.
        #[test]
        fn a_batch_spawns_each_index_once_in_order_up_to_run_count(
            run_count in 1u32..=test_call::MAX_RUN_COUNT,
            stagger_seconds in 0u32..=test_call::MAX_STAGGER_SECONDS,
            steps in proptest::collection::vec(step(), 1..80),
        ) {
            let org = org();
            let created = BatchEvent::Created { id: 77, org: ORG, spec: spec(run_count, stagger_seconds), at: STARTED };
            let mut batch = BatchState::start(&created).unwrap();
            let mut log = vec![created];
            let mut ids = ids();
            let (mut now, mut running) = (STARTED, 0);
            let mut run_ids = Vec::new();
            for step in steps {
                match step {
                    Step::Wait { ms } => now = Timestamp(now.0 + ms),
                    Step::Running(count) => running = count,
                    Step::Cancel => {
                        if let Some(canceled) = test_call::cancel_batch(&batch, now) {
                            batch.apply(&canceled);
                            log.push(canceled);
                        }
                    }
                    Step::Fire => match test_call::spawn_due_run(&batch, &org, running, &settings(), &mut Ctx { now, ids: &mut ids }) {
                        Spawn::Run(run) => {
                            let event = run.spawned.clone().unwrap();
                            prop_assert_eq!(&event, &BatchEvent::RunSpawned { index: batch.run_ids.len() as u32, run_id: run.run_state().id, at: now });
                            prop_assert!(!batch.is_spawned());
                            run_ids.push(run.run_state().id);
                            batch.apply(&event);
                            log.push(event);
                        }
                        Spawn::WaitUntil(at) => prop_assert!(at > now),
                        Spawn::Finished => prop_assert!(batch.is_spawned()),
                        Spawn::Cancel { .. } => prop_assert!(false, "the target exists"),
                    },
                }
            }
            let indices: Vec<u32> = log.iter().filter_map(|e| match e {
                BatchEvent::RunSpawned { index, .. } => Some(*index),
                _ => None,
            }).collect();
            prop_assert_eq!(indices, (0..batch.run_ids.len() as u32).collect::<Vec<_>>());
            prop_assert!(batch.run_ids.len() as u32 <= run_count);
            prop_assert_eq!(&batch.run_ids, &run_ids);
            let cancels = log.iter().filter(|e| matches!(e, BatchEvent::Canceled { .. })).count();
            prop_assert!(cancels <= 1);
            if let Some(canceled_at) = log.iter().position(|e| matches!(e, BatchEvent::Canceled { .. })) {
                let after_cancel = &log[canceled_at..];
                prop_assert!(after_cancel.iter().all(|e| !matches!(e, BatchEvent::RunSpawned { .. })), "a spawn after the cancel");
            }
            let mut replayed = None;
            for event in &log {
                BatchState::evolve(&mut replayed, event);
            }
            prop_assert_eq!(replayed, Some(batch));
        }
    }
}

#[test]
fn a_run_is_recorded_as_its_creation_and_its_calls_request() {
    let then = when_run(&org(), at_number(RunDirection::Outbound), 0).unwrap();
    let RunEvent::Created { run } = &then.run;
    assert_eq!(then.run_state(), &**run);
    assert_eq!((then.run.event_type(), then.call.event_type()), ("test_run_created", "call_requested"));
    assert_eq!(setup_of(&then.call).id, run.call_id);
}
