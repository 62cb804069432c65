//! Test-call runs and batches.
//!
//! A run drives one real call (its `call_id`), billed at `charge_multiplier` times the rate,
//! between a simulated test bot, following `scenario_prompt`, and the agent under test. Its
//! status follows from its call ([`run_view`]): `queued` until the call is dialed,
//! `in_progress` while it runs, then `completed` or `failed`. A batch creates its `run_count`
//! runs at once, queued and without calls, in the append that creates it, and launches them
//! (starts each one's call) in order, `stagger_seconds` apart; its next launch follows from its
//! state ([`next_launch`]), so a restart goes on launching where it stopped, skipping and
//! repeating none. A cancel ends the runs not launched yet: they fail, and say why.
//!
//! What a run records and asks for is decided here ([`decide_run`], [`create_batch`],
//! [`launch_due_run`], [`cancel_batch`]): its call legs, who calls whom, the multiplier its
//! funds are reserved at. The owner appends the events and performs the [`RunAction`]s.

use serde::{Deserialize, Serialize};

use crate::call::{CallEvent, CallSetup, CallState, Direction, Funds, Phase, Status as CallStatus};
use crate::fields::check_length;
use crate::ids::{AgentId, CallId, Ctx, OrgId};
use crate::ledger::{DEFAULT_RATE_CENTS_PER_MINUTE, cost_cents};
use crate::org::{self, OrgError, OrgProfile, OrgState, Quota, Resource, TestTarget, TestTargetError};
use crate::{E164, Timestamp};

pub const DEFAULT_CHARGE_MULTIPLIER: u32 = 2;
pub const DEFAULT_MAX_CONCURRENT_RUNS: u32 = 10;
pub const MAX_SCENARIO_CHARS: usize = 4_000;
pub const MAX_RUN_COUNT: u32 = 20;
pub const MAX_STAGGER_SECONDS: u32 = 60;
/// The test bot's caller id when a run names none: a demo number kept out of the demo pool.
pub const TEST_BOT_NUMBER: &str = "+15005559999";
/// The agent's side of a bot-to-bot run that targets an agent rather than a number.
pub const AGENT_SIDE_NUMBER: &str = "+15005559998";
/// How long a batch whose due run cannot launch yet (its org at its limit of concurrent runs)
/// waits before it tries again.
pub const LIMIT_RETRY_MS: i64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    Agent,
    PhoneNumber,
}

impl TargetType {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "agent" => Ok(Self::Agent),
            "phone_number" => Ok(Self::PhoneNumber),
            _ => Err(format!("\"{raw}\" is not a valid choice.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::PhoneNumber => "phone_number",
        }
    }
}

/// Who places the call: the test bot (`outbound`) or the agent under test (`inbound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunDirection {
    Outbound,
    Inbound,
}

impl RunDirection {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "outbound" => Ok(Self::Outbound),
            "inbound" => Ok(Self::Inbound),
            _ => Err(format!("\"{raw}\" is not a valid choice.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Bot to bot, on simulated media.
    Bot,
    /// A loopback call through the org's own number, whose inbound leg is a call of its own.
    Sip,
}

impl Mode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "bot" => Ok(Self::Bot),
            "sip" => Ok(Self::Sip),
            _ => Err(format!("\"{raw}\" is not a valid choice.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::Sip => "sip",
        }
    }
}

/// A batch's name (blank allowed).
pub fn parse_batch_name(raw: &str) -> Result<String, String> {
    crate::fields::name(raw, 100)
}

pub fn parse_scenario(raw: &str) -> Result<String, String> {
    check_length(raw, MAX_SCENARIO_CHARS)?;
    Ok(raw.to_owned())
}

/// What a run targets and how, as the request gave it (or the batch passed it on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    pub target_type: TargetType,
    pub target_id: u64,
    pub direction: RunDirection,
    /// `None`: the test bot's own number.
    pub target_number: Option<E164>,
    pub scenario_prompt: String,
    pub mode: Mode,
    /// The API key that asked for the run (keys stand where the contract names a user).
    /// Absent from runs recorded before it was kept.
    #[serde(default)]
    pub requested_by_key_id: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub id: u64,
    pub org: OrgId,
    pub request: RunRequest,
    /// The agent under test, resolved from the target.
    pub agent_id: AgentId,
    /// The agent's name, and what the run calls its target, as they were at its creation.
    #[serde(default)]
    pub agent_name: String,
    #[serde(default)]
    pub target_name: String,
    pub charge_multiplier: u32,
    /// The duration the estimate assumes.
    pub expected_seconds: u32,
    /// The run's call, from its launch on: a batch's runs are created queued, without one.
    pub call_id: Option<CallId>,
    pub sip_call_id: Option<CallId>,
    pub batch_id: Option<u64>,
    pub created_at: Timestamp,
    /// When the run's call was started (runs recorded before launches were recorded apart
    /// were launched as they were created, and have none).
    #[serde(default)]
    pub launched_at: Option<Timestamp>,
    /// When its batch's cancel ended the run before its launch.
    #[serde(default)]
    pub canceled_at: Option<Timestamp>,
}

impl RunState {
    pub fn is_launched(&self) -> bool {
        self.call_id.is_some()
    }

    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Created { run } => *self = (**run).clone(),
            RunEvent::Launched { call_id, sip_call_id, at } => {
                self.call_id = Some(*call_id);
                self.sip_call_id = *sip_call_id;
                self.launched_at = Some(*at);
            }
            RunEvent::Canceled { at } => self.canceled_at = Some(*at),
        }
    }

    /// Folds one event of a run's stream into what is known of the run so far.
    pub fn evolve(state: &mut Option<Self>, event: &RunEvent) {
        match (state.as_mut(), event) {
            (None, RunEvent::Created { run }) => *state = Some((**run).clone()),
            (Some(run), event) => run.apply(event),
            (None, _) => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunEvent {
    /// The run exists: queued, or (recorded before launches were) with its call.
    Created { run: Box<RunState> },
    /// Its call was requested, in the same append as the call's own request.
    Launched { call_id: CallId, sip_call_id: Option<CallId>, at: Timestamp },
    /// Its batch was canceled before the run was launched: it never will be.
    Canceled { at: Timestamp },
}

impl RunEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "test_run_created",
            Self::Launched { .. } => "test_run_launched",
            Self::Canceled { .. } => "test_run_canceled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    InProgress,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "queued" => Ok(Self::Queued),
            "in_progress" => Ok(Self::InProgress),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            _ => Err(format!("\"{raw}\" is not a valid choice.")),
        }
    }

    pub fn is_over(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// A run as the API shows it: its state joined with its call's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunView {
    pub status: RunStatus,
    pub estimated_cost_cents: i64,
    /// The duration the estimate assumes.
    pub expected_seconds: u32,
    pub error_message: String,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    /// How long the call was connected, once it ended.
    pub duration_seconds: Option<u64>,
    pub updated_at: Timestamp,
}

/// The run's view, from the run and its call (`None` while it has none, or has none yet).
pub fn run_view(run: &RunState, call: Option<&CallState>) -> RunView {
    let rate = call.and_then(|c| c.funds.as_ref()).map_or(DEFAULT_RATE_CENTS_PER_MINUTE, |f| f.rate_cents_per_minute);
    let estimated_cost_cents = cost_cents(run.expected_seconds.into(), rate, run.charge_multiplier);
    let mut view = RunView {
        status: RunStatus::Queued,
        estimated_cost_cents,
        expected_seconds: run.expected_seconds,
        error_message: String::new(),
        started_at: None,
        completed_at: None,
        duration_seconds: None,
        updated_at: run.created_at,
    };
    if let Some(at) = run.canceled_at {
        view.status = RunStatus::Failed;
        view.error_message = "The batch was canceled before this run was launched.".to_owned();
        view.completed_at = Some(at);
        view.updated_at = at;
        return view;
    }
    let Some(call) = call else { return view };
    view.updated_at = call.updated_at.max(run.created_at);
    view.started_at = call.dialed_at;
    match call.phase {
        Phase::Requested | Phase::Initiated => {}
        Phase::Dialing | Phase::Ringing | Phase::Answered => view.status = RunStatus::InProgress,
        Phase::Rejected => {
            view.status = RunStatus::Failed;
            view.completed_at = Some(call.updated_at);
            view.error_message = match rejected_code(call) {
                Some("insufficient_balance") => "Insufficient balance.".to_owned(),
                Some(code) => format!("The call could not be placed ({code})."),
                None => "The call could not be placed.".to_owned(),
            };
        }
        Phase::Ended => {
            let ending = call.ending.as_ref().expect("an ended call has an ending");
            view.completed_at = call.ended_at;
            view.duration_seconds = Some(ending.duration_seconds);
            if ending.status == CallStatus::Completed {
                view.status = RunStatus::Completed;
            } else {
                view.status = RunStatus::Failed;
                view.error_message = format!("The call failed: {}.", ending.reason.as_str());
            }
        }
    }
    view
}

fn rejected_code(call: &CallState) -> Option<&str> {
    call.rejection.as_deref()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSpec {
    pub name: String,
    pub target_type: TargetType,
    pub target_id: u64,
    pub direction: RunDirection,
    pub target_number: Option<E164>,
    /// Rotated through by run index; empty means every run has no scenario.
    pub scenario_prompts: Vec<String>,
    pub run_count: u32,
    pub stagger_seconds: u32,
    pub mode: Mode,
    /// The API key that asked for the batch (keys stand where the contract names a user).
    /// Absent from batches recorded before it was kept.
    #[serde(default)]
    pub requested_by_key_id: Option<u64>,
}

impl BatchSpec {
    /// The request of the run at `index`: prompts rotate modulo their count.
    pub fn run_request(&self, index: usize) -> RunRequest {
        let scenario_prompt = match self.scenario_prompts.len() {
            0 => String::new(),
            n => self.scenario_prompts[index % n].clone(),
        };
        RunRequest {
            target_type: self.target_type,
            target_id: self.target_id,
            direction: self.direction,
            target_number: self.target_number.clone(),
            scenario_prompt,
            mode: self.mode,
            requested_by_key_id: self.requested_by_key_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchState {
    pub id: u64,
    pub org: OrgId,
    pub spec: BatchSpec,
    /// Every run of the batch, by index.
    pub run_ids: Vec<u64>,
    /// How many of them were launched: runs launch in the order of their index, so these are
    /// the first `launched`.
    #[serde(default)]
    pub launched: u32,
    /// When its first run was launched.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    pub canceled_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchEvent {
    /// The batch and its runs, created queued in the same append (`run_ids` is empty in
    /// batches recorded before runs were created with their batch).
    Created {
        id: u64,
        org: OrgId,
        spec: BatchSpec,
        at: Timestamp,
        #[serde(default)]
        run_ids: Vec<u64>,
    },
    /// A run created and launched at once, as batches recorded before this one spawned them.
    RunSpawned {
        index: u32,
        run_id: u64,
        at: Timestamp,
    },
    /// The run at `index` was launched, in the same append as the run's own launch.
    RunLaunched {
        index: u32,
        run_id: u64,
        at: Timestamp,
    },
    Canceled {
        at: Timestamp,
    },
}

impl BatchEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "batch_created",
            Self::RunSpawned { .. } => "run_spawned",
            Self::RunLaunched { .. } => "run_launched",
            Self::Canceled { .. } => "batch_canceled",
        }
    }
}

impl BatchState {
    pub fn start(event: &BatchEvent) -> Option<Self> {
        match event {
            BatchEvent::Created { id, org, spec, at, run_ids } => Some(Self {
                id: *id,
                org: *org,
                spec: spec.clone(),
                run_ids: run_ids.clone(),
                launched: 0,
                started_at: None,
                canceled_at: None,
                created_at: *at,
                updated_at: *at,
            }),
            _ => None,
        }
    }

    pub fn apply(&mut self, event: &BatchEvent) {
        match event {
            BatchEvent::Created { .. } => {}
            BatchEvent::RunSpawned { run_id, at, .. } => {
                self.run_ids.push(*run_id);
                self.launched += 1;
                self.started_at.get_or_insert(*at);
                self.updated_at = *at;
            }
            BatchEvent::RunLaunched { at, .. } => {
                self.launched += 1;
                self.started_at.get_or_insert(*at);
                self.updated_at = *at;
            }
            BatchEvent::Canceled { at } => {
                self.canceled_at = Some(*at);
                self.updated_at = *at;
            }
        }
    }

    /// Folds one event of a batch's stream into what is known of the batch so far.
    pub fn evolve(state: &mut Option<Self>, event: &BatchEvent) {
        match state {
            None => *state = Self::start(event),
            Some(batch) => batch.apply(event),
        }
    }

    /// Whether some of its runs wait for their launch. (A batch recorded before runs were
    /// created with it, caught half-way by the upgrade, has none: it stops at the runs it has.)
    pub fn has_runs_to_launch(&self) -> bool {
        self.canceled_at.is_none() && (self.launched as usize) < self.run_ids.len()
    }

    /// The runs not launched yet, by index.
    pub fn queued_runs(&self) -> &[u64] {
        let launched = (self.launched as usize).min(self.run_ids.len());
        if self.canceled_at.is_some() { &[] } else { &self.run_ids[launched..] }
    }
}

/// The batch's next launch: the run at the next index, and when it is due (run `i` is due
/// `i * stagger_seconds` after the batch's creation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextLaunch {
    pub index: u32,
    pub run_id: u64,
    pub due: Timestamp,
}

pub fn next_launch(batch: &BatchState) -> Option<NextLaunch> {
    if !batch.has_runs_to_launch() {
        return None;
    }
    let index = batch.launched;
    Some(NextLaunch {
        index,
        run_id: batch.run_ids[index as usize],
        due: Timestamp(batch.created_at.0 + i64::from(index) * i64::from(batch.spec.stagger_seconds) * 1000),
    })
}

/// Whether the org may start another batch, holding `open` batches that still have runs to
/// launch. Those are what a batch costs its partition (a timer, and runs that wait for slots);
/// a batch whose runs are all launched is bounded by the org's limit of concurrent runs.
pub fn admit_batch(profile: &OrgProfile, open: usize) -> Result<(), OrgError> {
    profile.quotas.admit(Quota::OpenBatches, open)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// No run launched yet.
    Pending,
    InProgress,
    Completed,
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchView {
    pub status: BatchStatus,
    pub total_runs: u32,
    pub completed_runs: u32,
    pub failed_runs: u32,
    pub error_message: String,
    /// The sum of its runs' estimates, and of the minutes they assume (each run's rounded up).
    pub estimated_cost_cents: i64,
    pub estimated_minutes: u32,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// A batch as the API shows it, from its state and its runs' views.
pub fn batch_view(batch: &BatchState, runs: &[RunView]) -> BatchView {
    let completed_runs = runs.iter().filter(|r| r.status == RunStatus::Completed).count() as u32;
    let failed_runs = runs.iter().filter(|r| r.status == RunStatus::Failed).count() as u32;
    let all_over = !batch.has_runs_to_launch() && runs.iter().all(|r| r.status.is_over());
    let updated_at = runs.iter().map(|r| r.updated_at).chain([batch.updated_at]).max().unwrap_or(batch.updated_at);
    let mut view = BatchView {
        status: if batch.launched == 0 { BatchStatus::Pending } else { BatchStatus::InProgress },
        total_runs: batch.run_ids.len() as u32,
        completed_runs,
        failed_runs,
        error_message: String::new(),
        estimated_cost_cents: runs.iter().map(|r| r.estimated_cost_cents).sum(),
        estimated_minutes: runs.iter().map(|r| r.expected_seconds.div_ceil(60)).sum(),
        started_at: batch.started_at,
        completed_at: None,
        updated_at,
    };
    if all_over {
        view.completed_at = runs.iter().filter_map(|r| r.completed_at).chain(batch.canceled_at).max();
        if batch.launched == 0 {
            view.status = BatchStatus::Failed;
            view.error_message = "The batch was canceled before any run was launched.".to_owned();
        } else if completed_runs == 0 {
            view.status = BatchStatus::Failed;
            view.error_message = "No run completed.".to_owned();
        } else {
            view.status = BatchStatus::Completed;
        }
    }
    view
}

/// Whether a call is a test-call run's own (billed) call that has not ended: what the org's
/// limit of concurrent runs counts. Only launched runs have calls, so a batch's queued runs
/// take no slot. The SIP loopback's unbilled leg is not a run of its own.
pub fn counts_as_running(call: &CallState) -> bool {
    let setup = &call.setup;
    setup.test_run_id.is_some() && setup.reservation_reference.is_some() && !call.is_ended()
}

/// How the partition sets up every call, test calls included (see `OutboundPlan::setup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSettings {
    pub ring_timeout_ms: i64,
    pub max_duration_seconds: u32,
    pub placement_timeout_ms: i64,
    /// The duration a run's cost estimate assumes.
    pub expected_seconds: u32,
}

/// A side effect a launched run asks for, performed once its events are appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAction {
    /// Reserve the funds of the run's call with billing, as a test call at `charge_multiplier`
    /// times the rate, for up to `max_seconds`; the call is dialed once they are granted.
    Reserve { call: CallId, reference: String, charge_multiplier: u32, max_seconds: u32 },
}

/// What launching a run records, one stream at a time, in one append, and what it asks for then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDecision {
    /// The run as it stands once this is recorded: launched, with its call.
    pub state: RunState,
    /// The run's stream: its creation and its launch for a run asked for alone; the launch
    /// alone for a batch's run, created queued with its batch (its stream holds that one
    /// event, so the launch is its second).
    pub run: Vec<RunEvent>,
    /// The run's call's stream: its request.
    pub call: CallEvent,
    /// The SIP loopback's inbound leg's stream, in `sip` mode: its request and, since the leg
    /// is not billed, its (empty) funds at once.
    pub companion: Option<Vec<CallEvent>>,
    /// The batch's stream, for a batch's run: the launch.
    pub launched: Option<BatchEvent>,
    pub actions: Vec<RunAction>,
}

impl RunDecision {
    pub fn run_state(&self) -> &RunState {
        &self.state
    }

    /// Whether the run's stream starts here (a run asked for alone) rather than goes on.
    pub fn creates_run(&self) -> bool {
        matches!(self.run.first(), Some(RunEvent::Created { .. }))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Target(#[from] TestTargetError),
    #[error("the org already runs {limit} test calls, its limit")]
    TooManyRuns { limit: u32 },
}

/// How many launched runs the org may have running at once; an org without a profile may
/// have none.
fn run_limit(org: &OrgState) -> u32 {
    org.profile.as_ref().map_or(0, OrgProfile::test_call_limit)
}

/// Decides a run the org asked for, holding `running` runs already (see [`counts_as_running`]):
/// it is created and launched at once.
pub fn decide_run(
    org_id: OrgId,
    org: &OrgState,
    request: RunRequest,
    running: u32,
    settings: &RunSettings,
    ctx: &mut Ctx<'_>,
) -> Result<RunDecision, RunError> {
    let target = org::resolve_test_target(org, &request)?;
    let limit = run_limit(org);
    if running >= limit {
        return Err(RunError::TooManyRuns { limit });
    }
    let queued = queued_run(org_id, &target, request, None, settings, ctx);
    let created = RunEvent::Created { run: Box::new(queued.clone()) };
    let mut decision = launch(queued, target, None, settings, ctx);
    decision.run.insert(0, created);
    Ok(decision)
}

/// A run as it is created, before its launch: queued, without a call.
fn queued_run(
    org: OrgId,
    target: &TestTarget,
    request: RunRequest,
    batch_id: Option<u64>,
    settings: &RunSettings,
    ctx: &mut Ctx<'_>,
) -> RunState {
    let target_name = match (request.target_type, &target.number) {
        (TargetType::PhoneNumber, Some(number)) => number.number.to_string(),
        _ => target.agent.name.clone(),
    };
    RunState {
        id: ctx.ids.next_id(),
        org,
        request,
        agent_id: target.agent_id,
        agent_name: target.agent.name.clone(),
        target_name,
        charge_multiplier: DEFAULT_CHARGE_MULTIPLIER,
        expected_seconds: settings.expected_seconds,
        call_id: None,
        sip_call_id: None,
        batch_id,
        created_at: ctx.now,
        launched_at: None,
        canceled_at: None,
    }
}

/// Launches a queued run: its call, placed from the org's side (the bot calling in is an
/// inbound call to the agent), and in `sip` mode the loopback's inbound leg. `batch` is the
/// run's batch, whose record of the launch comes with it.
fn launch(
    mut run: RunState,
    target: TestTarget,
    batch: Option<&BatchState>,
    settings: &RunSettings,
    ctx: &mut Ctx<'_>,
) -> RunDecision {
    let now = ctx.now;
    let (org, run_id, request) = (run.org, run.id, &run.request);
    let call = CallId(ctx.ids.next_id());
    let bot = request.target_number.clone().unwrap_or_else(|| own_number(TEST_BOT_NUMBER));
    let agent_side = target.number.as_ref().map_or_else(|| own_number(AGENT_SIDE_NUMBER), |n| n.number.clone());
    let (from, to, direction) = match request.direction {
        RunDirection::Outbound => (bot.clone(), agent_side.clone(), Direction::Inbound),
        RunDirection::Inbound => (agent_side.clone(), bot.clone(), Direction::Outbound),
    };
    let reference = format!("call/{call}");
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
        ring_timeout_ms: settings.ring_timeout_ms,
        max_duration_seconds: settings.max_duration_seconds,
        scenario_prompt: Some(request.scenario_prompt.clone()),
        placement_timeout_ms: settings.placement_timeout_ms,
        context: Default::default(),
    };
    let main = setup(call, Some(reference.clone()), direction, from, to);
    // In sip mode the bot's call reaches the org's number, whose inbound leg is a call of its own.
    let companion = (request.mode == Mode::Sip && request.direction == RunDirection::Outbound).then(|| {
        let id = CallId(ctx.ids.next_id());
        setup(id, None, Direction::Inbound, bot.clone(), agent_side.clone())
    });
    let sip_call_id = companion.as_ref().map(|c| c.id);
    let companion = companion.map(|setup| {
        // The unbilled leg needs no reservation: it is placed as it is requested.
        let free = Funds { granted_cents: 0, rate_cents_per_minute: 0, charge_multiplier: 0 };
        vec![
            CallEvent::Requested { setup: Box::new(setup), at: now },
            CallEvent::FundsReserved { funds: free, at: now },
        ]
    });
    let launched = batch.map(|b| BatchEvent::RunLaunched { index: b.launched, run_id, at: now });
    let event = RunEvent::Launched { call_id: call, sip_call_id, at: now };
    run.apply(&event);
    RunDecision {
        state: run,
        run: vec![event],
        call: CallEvent::Requested { setup: Box::new(main), at: now },
        companion,
        launched,
        actions: vec![RunAction::Reserve {
            call,
            reference,
            charge_multiplier: DEFAULT_CHARGE_MULTIPLIER,
            max_seconds: settings.max_duration_seconds,
        }],
    }
}

fn own_number(raw: &str) -> E164 {
    E164::parse(raw).expect("switchboard's own numbers are E.164")
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error(transparent)]
    Target(#[from] TestTargetError),
}

/// What a new batch records in one append: itself, and each of its runs' streams, queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCreation {
    pub batch: BatchEvent,
    /// Each run's creation (a [`RunEvent::Created`]), by index.
    pub runs: Vec<RunEvent>,
}

/// Decides a new batch of an org that holds `open_batches` batches with runs left to launch,
/// with all its runs, queued. Its target is resolved as its first run's, so a batch that could
/// run nothing is refused.
pub fn create_batch(
    org_id: OrgId,
    org: &OrgState,
    spec: BatchSpec,
    open_batches: usize,
    settings: &RunSettings,
    ctx: &mut Ctx<'_>,
) -> Result<BatchCreation, BatchError> {
    let profile = org.profile.as_ref().ok_or(OrgError::NotFound(Resource::Org))?;
    admit_batch(profile, open_batches)?;
    let target = org::resolve_test_target(org, &spec.run_request(0))?;
    let id = ctx.ids.next_id();
    let runs: Vec<RunState> = (0..spec.run_count as usize)
        .map(|index| queued_run(org_id, &target, spec.run_request(index), Some(id), settings, ctx))
        .collect();
    let run_ids = runs.iter().map(|r| r.id).collect();
    Ok(BatchCreation {
        batch: BatchEvent::Created { id, org: org_id, spec, at: ctx.now, run_ids },
        runs: runs.into_iter().map(|run| RunEvent::Created { run: Box::new(run) }).collect(),
    })
}

/// What a batch does when its timer fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Every run of the batch was launched, or it was canceled.
    Finished,
    /// Nothing to do before `at`: the next run is not due, or the org is at its limit.
    WaitUntil(Timestamp),
    /// The next run's launch, with the batch's record of it.
    Run(Box<RunDecision>),
    /// The next run cannot start (its target is gone), so the batch is canceled.
    Cancel { cancel: Box<BatchCancel>, reason: TestTargetError },
}

/// Decides the launch of the batch's next run (`next`, the run [`next_launch`] names), if it
/// is due, for an org (`org`, the batch's) holding `running` launched runs. The launch is the
/// batch's next index, so no run is launched twice and none is skipped. A batch's runs wait
/// for a free slot rather than fail at the limit.
pub fn launch_due_run(
    batch: &BatchState,
    next: &RunState,
    org: &OrgState,
    running: u32,
    settings: &RunSettings,
    ctx: &mut Ctx<'_>,
) -> Launch {
    let Some(due) = next_launch(batch) else { return Launch::Finished };
    assert_eq!(due.run_id, next.id, "a batch launches its next run");
    let now = ctx.now;
    if due.due > now {
        return Launch::WaitUntil(due.due);
    }
    if running >= run_limit(org) {
        return Launch::WaitUntil(retry_at(now));
    }
    match org::resolve_test_target(org, &next.request) {
        Ok(target) => Launch::Run(Box::new(launch(next.clone(), target, Some(batch), settings, ctx))),
        Err(reason) => {
            let cancel = cancel_batch(batch, now).expect("a batch with a run to launch is open");
            Launch::Cancel { cancel: Box::new(cancel), reason }
        }
    }
}

/// When a batch whose due run could not start tries again.
fn retry_at(now: Timestamp) -> Timestamp {
    Timestamp(now.0 + LIMIT_RETRY_MS)
}

/// What a batch's cancel records in one append: the batch's, and each queued run's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCancel {
    pub batch: BatchEvent,
    /// The runs not launched, each with its cancel: they end failed, never launched.
    pub runs: Vec<(u64, RunEvent)>,
}

/// Stops the runs the batch has not launched yet (they end failed); launched ones finish. A
/// batch with nothing left to launch (all launched, or canceled already) records nothing.
pub fn cancel_batch(batch: &BatchState, now: Timestamp) -> Option<BatchCancel> {
    batch.has_runs_to_launch().then(|| BatchCancel {
        batch: BatchEvent::Canceled { at: now },
        runs: batch.queued_runs().iter().map(|id| (*id, RunEvent::Canceled { at: now })).collect(),
    })
}
