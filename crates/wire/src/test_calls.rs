//! Test-call runs and batches between the wire and the domain.

use domain::org::TestTargetError;
use domain::test_call::{
    BatchError, BatchSpec, BatchState, BatchView, MAX_RUN_COUNT, MAX_STAGGER_SECONDS, Mode, RunDirection, RunError,
    RunRequest, RunState, RunView, TEST_BOT_NUMBER, TargetType, parse_scenario,
};
use domain::{E164, FieldErrors};

use crate::pb::{self, Failure, FailureKind};

fn field<T>(errors: &mut FieldErrors, name: &str, parsed: Result<T, String>) -> Option<T> {
    parsed.map_err(|e| errors.add(name, e)).ok()
}

struct Common {
    target_type: Option<TargetType>,
    direction: Option<RunDirection>,
    target_number: Option<Option<E164>>,
    mode: Option<Mode>,
}

fn common(e: &mut FieldErrors, target_type: &str, direction: &str, number: Option<&str>, mode: &str) -> Common {
    Common {
        target_type: field(e, "target_type", TargetType::parse(target_type)),
        direction: field(e, "direction", RunDirection::parse(direction)),
        target_number: match number {
            None => Some(None),
            Some(n) => field(e, "target_number", E164::parse(n)).map(Some),
        },
        mode: field(e, "mode", Mode::parse(if mode.is_empty() { "bot" } else { mode })),
    }
}

pub fn run_request(r: pb::RunRequest) -> Result<RunRequest, Failure> {
    let mut e = FieldErrors::new();
    let c = common(&mut e, &r.target_type, &r.direction, r.target_number.as_deref(), &r.mode);
    let scenario_prompt = field(&mut e, "scenario_prompt", parse_scenario(&r.scenario_prompt));
    match (c.target_type, c.direction, c.target_number, c.mode, scenario_prompt) {
        (Some(target_type), Some(direction), Some(target_number), Some(mode), Some(scenario_prompt))
            if e.is_empty() =>
        {
            Ok(RunRequest {
                target_type,
                target_id: r.target_id,
                direction,
                target_number,
                scenario_prompt,
                mode,
                requested_by_key_id: r.requested_by_key_id,
            })
        }
        _ => Err(Failure::invalid(e)),
    }
}

pub fn batch_spec(b: pb::CreateTestBatch) -> Result<BatchSpec, Failure> {
    let mut e = FieldErrors::new();
    let c = common(&mut e, &b.target_type, &b.direction, b.target_number.as_deref(), &b.mode);
    if !(1..=MAX_RUN_COUNT).contains(&b.run_count) {
        e.add("run_count", format!("Ensure this value is between 1 and {MAX_RUN_COUNT}."));
    }
    if b.stagger_seconds > MAX_STAGGER_SECONDS {
        e.add("stagger_seconds", format!("Ensure this value is between 0 and {MAX_STAGGER_SECONDS}."));
    }
    for (i, prompt) in b.scenario_prompts.iter().enumerate() {
        if let Err(m) = parse_scenario(prompt) {
            e.add(format!("scenario_prompts.{i}"), m);
        }
    }
    let name = field(&mut e, "name", domain::test_call::parse_batch_name(&b.name));
    match (c.target_type, c.direction, c.target_number, c.mode, name) {
        (Some(target_type), Some(direction), Some(target_number), Some(mode), Some(name)) if e.is_empty() => {
            Ok(BatchSpec {
                name,
                target_type,
                target_id: b.target_id,
                direction,
                target_number,
                scenario_prompts: b.scenario_prompts,
                run_count: b.run_count,
                stagger_seconds: b.stagger_seconds,
                mode,
                requested_by_key_id: b.requested_by_key_id,
            })
        }
        _ => Err(Failure::invalid(e)),
    }
}

impl From<TestTargetError> for Failure {
    fn from(e: TestTargetError) -> Self {
        match e {
            TestTargetError::AgentNotFound => {
                Failure::new(FailureKind::NotFound, "target_not_found", "Target agent not found.")
            }
            TestTargetError::NumberNotFound => {
                Failure::new(FailureKind::NotFound, "target_not_found", "Target phone number not found.")
            }
            TestTargetError::NoAgentOnNumber { number, which } => Failure::invalid(FieldErrors::single(
                "target_id",
                format!("{number} has no {which} agent to test; set its {which}_agent_id first."),
            )),
            TestTargetError::NoNumberForAgent { which } => Failure::invalid(FieldErrors::single(
                "mode",
                format!("mode sip calls the agent through the org's number, and no number has it as {which} agent."),
            )),
        }
    }
}

pub fn test_run(run: &RunState, view: &RunView) -> pb::TestRun {
    let r = &run.request;
    pb::TestRun {
        id: run.id,
        target_type: r.target_type.as_str().to_owned(),
        target_id: r.target_id,
        direction: r.direction.as_str().to_owned(),
        target_number: r.target_number.as_ref().map_or(TEST_BOT_NUMBER.to_owned(), |n| n.to_string()),
        scenario_prompt: r.scenario_prompt.clone(),
        mode: r.mode.as_str().to_owned(),
        status: view.status.as_str().to_owned(),
        charge_multiplier: run.charge_multiplier,
        estimated_cost_cents: view.estimated_cost_cents,
        call_id: run.call_id.map(|c| c.0),
        sip_call_id: run.sip_call_id.map(|c| c.0),
        error_message: view.error_message.clone(),
        started_at_ms: view.started_at.map(|t| t.as_millis()),
        completed_at_ms: view.completed_at.map(|t| t.as_millis()),
        batch_id: run.batch_id,
        created_at_ms: run.created_at.as_millis(),
        updated_at_ms: view.updated_at.as_millis(),
        agent_name: run.agent_name.clone(),
        target_name: run.target_name.clone(),
        duration_seconds: view.duration_seconds,
        requested_by_key_id: r.requested_by_key_id,
        // The transcript is the call's, which the caller reads beside the run.
        transcript: Vec::new(),
    }
}

pub fn test_batch(batch: &BatchState, view: &BatchView) -> pb::TestBatch {
    let s = &batch.spec;
    pb::TestBatch {
        id: batch.id,
        name: s.name.clone(),
        target_type: s.target_type.as_str().to_owned(),
        target_id: s.target_id,
        direction: s.direction.as_str().to_owned(),
        target_number: s.target_number.as_ref().map(|n| n.to_string()).unwrap_or_default(),
        scenario_prompts: s.scenario_prompts.clone(),
        run_count: s.run_count,
        stagger_seconds: s.stagger_seconds,
        mode: s.mode.as_str().to_owned(),
        status: view.status.as_str().to_owned(),
        total_runs: view.total_runs,
        completed_runs: view.completed_runs,
        failed_runs: view.failed_runs,
        error_message: view.error_message.clone(),
        completed_at_ms: view.completed_at.map(|t| t.as_millis()),
        created_at_ms: batch.created_at.as_millis(),
        updated_at_ms: view.updated_at.as_millis(),
        run_ids: batch.run_ids.clone(),
        requested_by_key_id: s.requested_by_key_id,
        estimated_cost_cents: view.estimated_cost_cents,
        estimated_minutes: view.estimated_minutes,
        started_at_ms: view.started_at.map(|t| t.as_millis()),
    }
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Target(e) => e.into(),
            RunError::TooManyRuns { limit } => Failure::new(
                FailureKind::TooManyRequests,
                "too_many_test_calls",
                format!(
                    "This organization already has {limit} test-call runs queued or in progress, its limit; retry when one ends."
                ),
            ),
        }
    }
}

impl From<BatchError> for Failure {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::Org(e) => e.into(),
            BatchError::Target(e) => e.into(),
        }
    }
}
