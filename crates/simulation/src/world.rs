//! The world around the partitions: clients, billing's network, the carrier, the clock, crashes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use actor::{Clock, ManualClock};
use bytes::Bytes;
use domain::call::{Action, CarrierEvent, EndReason, Speaker};
use domain::ids::{CallId, OrgId, Partitioning};
use domain::ledger::{LedgerCommand, LedgerReply};
use domain::{Timestamp, ledger};
use orchestrator::effects::ClaimFailure;
use orchestrator::{CallLimits, Effect, Finished, Partition, PendingClaim, Placement, Verifications, Work};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, oneshot};
use wire::BillingFailure;
use wire::pb::{self, Failure, command::Kind, reply};

use crate::checks::{self, Observed};

/// One run: the seed it plays and how many steps.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub steps: u32,
}

/// What a run did, for the report.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub calls_placed: u32,
    /// Calls (and runs' calls) a client was told exist.
    pub calls_acknowledged: u32,
    pub cents_charged: i64,
    pub test_runs: u32,
    pub batches: u32,
    pub crashes: u32,
    pub effects: u64,
}

/// A failed run: the seed, the step, what broke, and the last steps before it.
pub type Failed = String;

/// Runs one seed to the end, checking the invariants after every step and once all is idle.
pub fn run(options: &Options) -> Result<Outcome, Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut world = World::new(options.seed).await;
        let result = world.play(options.steps).await;
        result.map(|()| world.outcome()).map_err(|detail| world.failure(options, &detail))
    })
}

const START: Timestamp = Timestamp(1_800_000_000_000);
const FROM_NUMBER: &str = "+14155550100";
/// How long a request to billing waits before the runner takes billing for gone.
const BILLING_TIMEOUT_MS: i64 = 5_000;

/// What the simulation has in flight, delivered when it is due (in any order among those due).
struct Flight {
    due: Timestamp,
    what: Delivery,
}

enum Delivery {
    /// A request to billing, and what its answer goes back as. `answer_lost`: billing decides,
    /// but its answer never reaches the orchestrator.
    Billing { org: OrgId, command: LedgerCommand, then: Then, answer_lost: bool },
    /// Work that came back, on its way into the orchestrator's inbox.
    Back(Finished),
    /// A carrier's report about a call.
    Report { call: CallId, event: CarrierEvent },
    /// A dial on its way to the carrier.
    Dial { call: CallId, request: Option<bus::Message> },
}

/// What billing's answer becomes.
enum Then {
    Reserved(Box<Placement>),
    Billed {
        call: CallId,
        action: Action,
        attempt: u32,
    },
    /// A top-up by a client, or a void nobody waits for.
    Nothing,
}

/// A call as the carrier holds it: what it will report, and when.
#[derive(Default)]
struct Line {
    script: VecDeque<(Timestamp, CarrierEvent)>,
    /// Reports go to the partition's owner only once it follows the call (after a restart, once
    /// it resumed it).
    attached: bool,
    ended: bool,
}

/// A client's request, waiting for its answer.
struct Waiting {
    answer: oneshot::Receiver<Bytes>,
    asked: Asked,
}

enum Asked {
    Call {
        key: Option<String>,
    },
    Begin {
        key: String,
    },
    TestRun,
    Batch,
    Hangup,
    /// A request of the world itself (setup, a directory claim).
    Claim(Box<PendingClaim>),
    Other,
}

pub(crate) struct World {
    rng: StdRng,
    clock: ManualClock,
    _dir: tempfile::TempDir,
    store: eventlog::Store,
    partitioning: Partitioning,
    key: orchestrator::vault::MasterKey,
    slots: Arc<Semaphore>,
    limits: CallLimits,
    pub(crate) orchestrator: Partition,
    pub(crate) orchestrator_log: eventlog::Log,
    billing: billing::Partition,
    pub(crate) billing_log: eventlog::Log,
    net: Vec<Flight>,
    lines: BTreeMap<CallId, Line>,
    /// Calls whose hang-up reached the dial before the carrier had it: never dialed.
    hung_up_before_dial: BTreeSet<CallId>,
    clients: Vec<Waiting>,
    pub(crate) org: OrgId,
    agent: u64,
    keys: Vec<String>,
    pub(crate) observed: Observed,
    outcome: Outcome,
    step: u32,
    trace: VecDeque<String>,
}

impl World {
    async fn new(seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = eventlog::Store::open(dir.path().join("events"), &eventlog::Options::default()).expect("a store");
        let partitioning = Partitioning::new(1);
        let clock = ManualClock::starting_at(START);
        let key = orchestrator::vault::MasterKey::parse(&"5a".repeat(32)).expect("a key");
        let limits = CallLimits {
            ring_timeout_ms: 20_000,
            max_duration_seconds: 600,
            placement_timeout_ms: 60_000,
            idempotency_abandoned_after_ms: 10_000,
            ..CallLimits::default()
        };
        let slots = Arc::new(Semaphore::new(4));
        let (orchestrator, orchestrator_log) = open_orchestrator(&store, partitioning, &key, &slots, limits, &clock);
        let billing_log = store.log(billing::NAMESPACE, 0, billing::projections()).expect("billing's log");
        let billing =
            billing::Partition::open(partitioning, billing_log.clone(), Arc::new(clock.clone())).expect("billing");
        let mut world = Self {
            rng: StdRng::seed_from_u64(seed),
            clock,
            _dir: dir,
            store,
            partitioning,
            key,
            slots,
            limits,
            orchestrator,
            orchestrator_log,
            billing,
            billing_log,
            net: Vec::new(),
            lines: BTreeMap::new(),
            hung_up_before_dial: BTreeSet::new(),
            clients: Vec::new(),
            org: OrgId(0),
            agent: 0,
            keys: Vec::new(),
            observed: Observed::default(),
            outcome: Outcome::default(),
            step: 0,
            trace: VecDeque::new(),
        };
        world.set_up().await;
        world
    }

    /// An org with an agent, a verified simulated connection and a number, as a user makes them.
    async fn set_up(&mut self) {
        let org = self.ask(OrgId(0), Kind::RegisterOrg(pb::RegisterOrg { name: "Sim".into() })).await;
        let Some(reply::Result::Org(org)) = org else { panic!("no org: {org:?}") };
        self.org = OrgId(org.id);
        self.ask(self.org, Kind::CreateOrg(pb::CreateOrg { name: "Sim".into() })).await;
        let agent =
            pb::AgentSpec { name: "Agent".into(), prompt: "Help.".into(), voice: "alloy".into(), ..Default::default() };
        let Some(reply::Result::Agent(agent)) = self.ask(self.org, Kind::CreateAgent(agent)).await else {
            panic!("no agent")
        };
        self.agent = agent.id;
        // A connection is tested first, and created on the evidence of its test.
        let sim = || pb::VoipConnectionSpec {
            name: "Sim".into(),
            provider: Some(pb::voip_connection_spec::Provider::Sim(pb::Empty {})),
            vendor: "manual".into(),
            evidence_id: String::new(),
        };
        let test = pb::TestVoipConnection { spec: Some(sim()), connection_id: None, target_number: None };
        let Some(reply::Result::ConnectionTest(evidence)) = self.ask(self.org, Kind::TestVoipConnection(test)).await
        else {
            panic!("no connection test")
        };
        let spec = pb::VoipConnectionSpec { evidence_id: evidence.id, ..sim() };
        let Some(reply::Result::VoipConnection(connection)) =
            self.ask(self.org, Kind::CreateVoipConnection(spec)).await
        else {
            panic!("no connection")
        };
        let number = pb::CreatePhoneNumber {
            number: FROM_NUMBER.into(),
            voip_connection_id: connection.id,
            outbound_agent_id: Some(self.agent),
            ..Default::default()
        };
        let number = self.ask(self.org, Kind::CreatePhoneNumber(number)).await;
        let Some(reply::Result::PhoneNumber(number)) = number else { panic!("no number: {number:?}") };
        // Outbound calls go only from a verified number.
        let verified = self.ask(self.org, Kind::VerifyPhoneNumber(pb::ById { id: number.id })).await;
        assert!(
            matches!(&verified, Some(reply::Result::PhoneNumber(n)) if n.verification_status == "verified"),
            "not verified: {verified:?}"
        );
        // Some orgs start with nothing, some with a few calls' worth, some with plenty.
        let cents = [0, 150, 2_000, 50_000][self.rng.random_range(0..4)];
        if cents > 0 {
            let top_up = LedgerCommand::TopUp { reference: "top-up/start".into(), cents, description: "sim".into() };
            let answer = self.billing_decides(self.org, top_up).await;
            assert!(answer.is_ok(), "the first top-up failed: {answer:?}");
        }
    }

    /// Sends a command and plays the world (without faults) until it is answered.
    async fn ask(&mut self, org: OrgId, kind: Kind) -> Option<reply::Result> {
        let answer = self.send(org, kind);
        let mut answer = std::pin::pin!(answer);
        for _ in 0..1_000 {
            self.perform_effects(false).await;
            self.deliver_all_due().await;
            self.collect_answers().expect("set-up answers decode");
            if let Ok(bytes) = answer.as_mut().try_recv() {
                return wire::decode::<pb::Reply>(&bytes).expect("a reply").result;
            }
            self.clock.advance_ms(10);
        }
        panic!("a set-up request was never answered");
    }

    fn send(&mut self, org: OrgId, kind: Kind) -> oneshot::Receiver<Bytes> {
        self.send_bytes(wire::encode(&pb::Command { org_id: org.0, kind: Some(kind) }))
    }

    fn send_bytes(&mut self, payload: Bytes) -> oneshot::Receiver<Bytes> {
        let subject = bus::subjects::orchestrator_commands(0);
        let headers = bus::Headers::from([(actor::REQUEST_ID_HEADER.to_owned(), format!("sim-{}", self.step))]);
        let (message, answer) = bus::Message::local_request(&subject, headers, payload);
        self.orchestrator.command(message);
        answer
    }

    async fn play(&mut self, steps: u32) -> Result<(), String> {
        for step in 0..steps {
            self.step = step;
            self.take_a_step().await;
            self.perform_effects(true).await;
            self.collect_answers()?;
            checks::after_step(self)?;
        }
        self.settle_down().await?;
        checks::at_rest(self)
    }

    async fn take_a_step(&mut self) {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=11 => self.place_call(),
            12..=14 => self.retry_keyed_call(),
            15..=18 => self.create_test_run(),
            19..=20 => self.create_batch(),
            21 => self.cancel_batch(),
            22..=24 => self.top_up(),
            25..=28 => self.hang_up(),
            29..=64 => {
                for _ in 0..self.rng.random_range(1..=4) {
                    self.deliver_one().await;
                }
            }
            65..=84 => {
                let ms = self.rng.random_range(0..4_000);
                self.advance(ms);
            }
            85..=86 => {
                let ms = self.rng.random_range(10_000..120_000);
                self.advance(ms);
            }
            87..=88 => self.crash().await,
            89..=91 => {
                self.note("sweep settlements");
                self.orchestrator.sweep_settlements();
            }
            92..=93 => {
                self.note("billing expiry");
                self.billing.expire();
            }
            _ => self.deliver_one().await,
        }
    }

    fn note(&mut self, what: impl Into<String>) {
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>5} t+{:>9}ms {}", self.step, self.clock.now().0 - START.0, what.into()));
    }

    fn failure(&self, options: &Options, detail: &str) -> String {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        format!(
            "invariant broken at step {} of seed {}: {detail}\nreplay it: SWITCHBOARD_SIM_SEED={} SWITCHBOARD_SIM_SEEDS=1 SWITCHBOARD_SIM_STEPS={} cargo test -p simulation\nthe last steps:\n{}",
            self.step,
            options.seed,
            options.seed,
            options.steps,
            trace.join("\n")
        )
    }

    fn outcome(&self) -> Outcome {
        let charged = self.observed.terminal.values().map(|c| match c.billing {
            domain::call::Billing::Settled { charged_cents } => charged_cents,
            _ => 0,
        });
        Outcome {
            calls_acknowledged: self.observed.calls.len() as u32,
            cents_charged: charged.sum(),
            ..self.outcome.clone()
        }
    }

    // --- Clients ---

    fn place_call(&mut self) {
        let to = format!("+1415555{:04}", self.rng.random_range(0..10_000));
        let keyed = self.rng.random_bool(0.3);
        self.outcome.calls_placed += 1;
        if keyed {
            let key = format!("key-{}", self.keys.len());
            self.keys.push(key.clone());
            self.observed.key_requests.insert(key.clone(), to.clone());
            self.note(format!("begin key {key} for a call to {to}"));
            self.begin(key);
        } else {
            self.note(format!("place a call to {to}"));
            self.send_call(to, None);
        }
    }

    fn send_call(&mut self, to: String, key: Option<String>) {
        let place = pb::PlaceCall {
            from_number: FROM_NUMBER.into(),
            to_number: to,
            agent: Some(pb::place_call::Agent::AgentId(self.agent)),
            idempotency_key: key.clone(),
            ..Default::default()
        };
        let answer = self.send(self.org, Kind::PlaceCall(place));
        self.clients.push(Waiting { answer, asked: Asked::Call { key } });
    }

    fn begin(&mut self, key: String) {
        let fingerprint = key.as_bytes().to_vec();
        let answer =
            self.send(self.org, Kind::BeginIdempotent(pb::IdempotentRequest { key: key.clone(), fingerprint }));
        self.clients.push(Waiting { answer, asked: Asked::Begin { key } });
    }

    /// A client whose gateway died, or who never heard back, sends a keyed request again.
    fn retry_keyed_call(&mut self) {
        if self.keys.is_empty() {
            return self.place_call();
        }
        let key = self.keys[self.rng.random_range(0..self.keys.len())].clone();
        self.note(format!("retry key {key}"));
        self.begin(key);
    }

    fn create_test_run(&mut self) {
        let mode = if self.rng.random_bool(0.3) { "sip" } else { "bot" };
        let direction = if self.rng.random_bool(0.7) { "outbound" } else { "inbound" };
        self.note(format!("create a {mode} test run, {direction}"));
        self.outcome.test_runs += 1;
        let run = pb::RunRequest {
            target_type: "agent".into(),
            target_id: self.agent,
            direction: direction.into(),
            scenario_prompt: "Ask about hours.".into(),
            mode: mode.into(),
            ..Default::default()
        };
        let answer = self.send(self.org, Kind::CreateTestRun(run));
        self.clients.push(Waiting { answer, asked: Asked::TestRun });
    }

    fn create_batch(&mut self) {
        let run_count = self.rng.random_range(1..=6);
        let stagger_seconds = self.rng.random_range(0..=20);
        self.note(format!("create a batch of {run_count} runs, {stagger_seconds} s apart"));
        self.outcome.batches += 1;
        let batch = pb::CreateTestBatch {
            name: "Sim".into(),
            target_type: "agent".into(),
            target_id: self.agent,
            direction: "outbound".into(),
            scenario_prompts: vec!["One.".into(), "Two.".into()],
            run_count,
            stagger_seconds,
            mode: "bot".into(),
            ..Default::default()
        };
        let answer = self.send(self.org, Kind::CreateTestBatch(batch));
        self.clients.push(Waiting { answer, asked: Asked::Batch });
    }

    fn cancel_batch(&mut self) {
        let Some(&id) = self.pick(&self.observed.batches.keys().copied().collect::<Vec<_>>()) else { return };
        self.note(format!("cancel batch {id}"));
        let answer = self.send(self.org, Kind::CancelTestBatch(pb::ById { id }));
        self.clients.push(Waiting { answer, asked: Asked::Other });
    }

    fn top_up(&mut self) {
        let cents = [1, 5, 50, 500, 5_000][self.rng.random_range(0..5)];
        let reference = format!("top-up/{}", self.step);
        self.note(format!("top up {cents} cents"));
        let command = LedgerCommand::TopUp { reference, cents, description: "sim".into() };
        // A client's top-up goes to billing directly, as the gateway sends it.
        self.net.push(Flight {
            due: self.clock.now(),
            what: Delivery::Billing { org: self.org, command, then: Then::Nothing, answer_lost: false },
        });
    }

    fn hang_up(&mut self) {
        let known: Vec<CallId> = self.observed.calls.iter().copied().collect();
        let Some(&call) = self.pick(&known) else { return };
        self.note(format!("hang up call {call}"));
        let answer = self.send(self.org, Kind::HangupCall(pb::ById { id: call.0 }));
        self.clients.push(Waiting { answer, asked: Asked::Hangup });
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.rng.random_range(0..items.len())])
    }

    /// Reads what came back to the clients, and records what it acknowledged.
    fn collect_answers(&mut self) -> Result<(), String> {
        let mut still = Vec::new();
        for mut waiting in std::mem::take(&mut self.clients) {
            let bytes = match waiting.answer.try_recv() {
                Ok(bytes) => bytes,
                Err(oneshot::error::TryRecvError::Empty) => {
                    still.push(waiting);
                    continue;
                }
                // The process that held the request died: the client hears nothing.
                Err(oneshot::error::TryRecvError::Closed) => continue,
            };
            let result = wire::decode::<pb::Reply>(&bytes).map_err(|e| format!("an undecodable reply: {e}"))?.result;
            match (waiting.asked, result) {
                (Asked::Call { key }, Some(reply::Result::Call(call))) => {
                    self.note(format!("call {} acknowledged ({})", call.id, call.status));
                    self.observed.acknowledge(CallId(call.id), key.clone())?;
                    if let Some(key) = key {
                        self.complete(key, call.id);
                    }
                }
                (Asked::Call { key }, Some(reply::Result::Failure(f))) => {
                    self.note(format!("call refused: {} ({})", f.code, key.unwrap_or_default()));
                }
                (Asked::Begin { key }, Some(reply::Result::Idempotency(decision))) => match decision.decision {
                    Some(pb::idempotency_decision::Decision::Proceed(_)) => {
                        let to = self.observed.key_requests[&key].clone();
                        self.note(format!("key {key}: proceed"));
                        self.send_call(to, Some(key));
                    }
                    Some(pb::idempotency_decision::Decision::Replay(response)) => {
                        let id = u64::from_be_bytes(
                            response.body.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default(),
                        );
                        self.note(format!("key {key}: replay of call {id}"));
                        self.observed.key_answered(&key, CallId(id))?;
                    }
                    other => self.note(format!("key {key}: {other:?}")),
                },
                (Asked::TestRun, Some(reply::Result::TestRun(run))) => {
                    self.note(format!("run {} acknowledged (call {:?})", run.id, run.call_id));
                    if let Some(call) = run.call_id {
                        self.observed.acknowledge(CallId(call), None)?;
                    }
                }
                (Asked::Batch, Some(reply::Result::TestBatch(batch))) => {
                    self.note(format!("batch {} acknowledged", batch.id));
                    // The seed's rule: a batch's 201 already lists every one of its runs.
                    if batch.run_ids.len() != batch.run_count as usize {
                        return Err(format!(
                            "batch {} was acknowledged with {} runs of {}",
                            batch.id,
                            batch.run_ids.len(),
                            batch.run_count
                        ));
                    }
                    self.observed.batches.insert(batch.id, batch.total_runs);
                }
                (Asked::Claim(claim), result) => {
                    let outcome = match result {
                        Some(reply::Result::NumberClaimed(c)) => wire::parse_number(&c.number),
                        Some(reply::Result::Failure(f)) => Err(f),
                        _ => Err(Failure::internal("unexpected directory reply")),
                    }
                    .map_err(ClaimFailure::Refused);
                    self.orchestrator.finished(Finished::Claimed { claim, outcome });
                }
                (_, Some(reply::Result::Failure(f))) => self.note(format!("refused: {}", f.code)),
                _ => {}
            }
        }
        self.clients.extend(still);
        Ok(())
    }

    /// The gateway records the response for its key (when its gateway did not die first).
    fn complete(&mut self, key: String, call: u64) {
        if self.rng.random_bool(0.3) {
            return self.note(format!("key {key}: its gateway died before recording the response"));
        }
        let response = pb::IdempotentResponse {
            key: key.clone(),
            fingerprint: key.as_bytes().to_vec(),
            status: 201,
            body: call.to_be_bytes().to_vec(),
            withheld: Vec::new(),
        };
        let answer = self.send(self.org, Kind::CompleteIdempotent(response));
        self.clients.push(Waiting { answer, asked: Asked::Other });
    }

    // --- Time and crashes ---

    fn advance(&mut self, ms: i64) {
        self.clock.advance_ms(ms);
        self.note(format!("advance {ms} ms"));
        self.carrier_sends();
        self.orchestrator.fire_due_timers();
    }

    /// The orchestrator dies with everything it held in memory, and is rebuilt from its log.
    async fn crash(&mut self) {
        self.note("crash the orchestrator");
        self.outcome.crashes += 1;
        // What it had not performed dies with it.
        drop(self.orchestrator.take_effects());
        let mut kept = Vec::new();
        for flight in std::mem::take(&mut self.net) {
            match flight.what {
                Delivery::Back(_) | Delivery::Report { .. } | Delivery::Dial { .. } => {}
                // A request already on its way to billing may get there; its answer goes nowhere.
                // A client's top-up is the gateway's, not the orchestrator's: it goes on.
                Delivery::Billing { org, command: command @ LedgerCommand::TopUp { .. }, then, answer_lost } => {
                    kept.push(Flight { due: flight.due, what: Delivery::Billing { org, command, then, answer_lost } })
                }
                // A request already on its way to billing may get there; its answer goes nowhere.
                Delivery::Billing { org, command, .. } if self.rng.random_bool(0.5) => {
                    let what = Delivery::Billing { org, command, then: Then::Nothing, answer_lost: true };
                    kept.push(Flight { due: flight.due, what });
                }
                Delivery::Billing { .. } => {}
            }
        }
        self.net = kept;
        for line in self.lines.values_mut() {
            line.attached = false;
        }
        self.clients.retain(|w| !matches!(w.asked, Asked::Claim(_)));
        let (orchestrator, log) =
            open_orchestrator(&self.store, self.partitioning, &self.key, &self.slots, self.limits, &self.clock);
        // The old partition's requests are answered by nobody now.
        self.orchestrator = orchestrator;
        self.orchestrator_log = log;
        self.orchestrator.start();
    }

    /// Lets everything finish: no new requests, time moves on, every flight lands, billing
    /// confirms, until the partitions are idle.
    async fn settle_down(&mut self) -> Result<(), String> {
        self.note("settle down");
        for _ in 0..400 {
            self.perform_effects(false).await;
            self.deliver_all_due().await;
            self.collect_answers()?;
            if self.net.is_empty() {
                self.clock.advance_ms(30_000);
                self.carrier_sends();
                self.orchestrator.fire_due_timers();
                self.orchestrator.sweep_settlements();
                self.billing.expire();
            } else {
                self.clock.advance_ms(1_000);
                self.carrier_sends();
                self.orchestrator.fire_due_timers();
            }
            checks::after_step(self)?;
        }
        self.perform_effects(false).await;
        Ok(())
    }

    // --- The network ---

    async fn deliver_one(&mut self) {
        let now = self.clock.now();
        let due: Vec<usize> = (0..self.net.len()).filter(|&i| self.net[i].due <= now).collect();
        match self.pick(&due).copied() {
            Some(i) => {
                let flight = self.net.remove(i);
                self.deliver(flight.what, true).await;
            }
            None => {
                if let Some(next) = self.net.iter().map(|f| f.due).min() {
                    self.clock.advance_to(next);
                    self.carrier_sends();
                    self.orchestrator.fire_due_timers();
                }
            }
        }
    }

    async fn deliver_all_due(&mut self) {
        loop {
            let now = self.clock.now();
            let Some(i) = self.net.iter().position(|f| f.due <= now) else { return };
            let flight = self.net.remove(i);
            self.deliver(flight.what, false).await;
            self.perform_effects(false).await;
        }
    }

    async fn deliver(&mut self, delivery: Delivery, faults: bool) {
        match delivery {
            Delivery::Back(finished) => {
                self.note(format!("back: {}", describe(&finished)));
                if let Finished::Dialed { call, .. } = &finished {
                    self.hung_up_before_dial.remove(call);
                }
                self.orchestrator.finished(finished);
            }
            Delivery::Report { call, event } => {
                self.note(format!("carrier reports {} for call {call}", event.name()));
                self.orchestrator.finished(Finished::Carrier { call, event });
            }
            Delivery::Dial { call, request } => self.carrier_dial(call, request, faults),
            Delivery::Billing { org, command, then, answer_lost } => {
                self.note(format!("billing takes {command:?}"));
                let answer = self.billing_decides(org, command.clone()).await;
                let answer =
                    if answer_lost { Err(BillingFailure::Unreachable("the answer was lost".into())) } else { answer };
                self.billing_answered(org, command, then, answer, faults);
            }
        }
    }

    /// Billing decides as its actor would: the command and its answer go through the codec
    /// they cross the bus in.
    async fn billing_decides(&mut self, org: OrgId, command: LedgerCommand) -> Result<LedgerReply, BillingFailure> {
        let request = wire::billing_request(org, &command);
        let reply = match wire::billing_command(&request) {
            Ok((org, command)) => match self.billing.decide(org, command, None) {
                Ok((reply, durable)) => match durable.durable().await {
                    Ok(_) => wire::billing_reply(Ok(reply)),
                    Err(_) => wire::billing_reply(Err(wire::BillingError::Unavailable)),
                },
                Err(error) => wire::billing_reply(Err(error)),
            },
            Err(error) => wire::billing_reply(Err(error)),
        };
        wire::billing_response(&reply)
    }

    fn billing_answered(
        &mut self,
        org: OrgId,
        command: LedgerCommand,
        then: Then,
        answer: Result<LedgerReply, BillingFailure>,
        faults: bool,
    ) {
        let due = self.later(faults, 0..800);
        match then {
            Then::Nothing => {}
            Then::Reserved(placement) => {
                let outcome = orchestrator::effects::reserved(answer);
                self.net.push(Flight { due, what: Delivery::Back(Finished::Reserved { placement, outcome }) });
            }
            Then::Billed { call, action, attempt } => match orchestrator::effects::billed(&action, answer) {
                Ok(command) => self
                    .net
                    .push(Flight { due, what: Delivery::Back(Finished::Billed { call, outcome: Some(command) }) }),
                // The runner tries again, a few times, then leaves it to the sweep.
                Err(_) if attempt < 3 => {
                    let then = Then::Billed { call, action, attempt: attempt + 1 };
                    let answer_lost = self.fault(faults, 0.2);
                    self.net.push(Flight { due, what: Delivery::Billing { org, command, then, answer_lost } });
                }
                Err(_) => self.net.push(Flight { due, what: Delivery::Back(Finished::Billed { call, outcome: None }) }),
            },
        }
    }

    fn fault(&mut self, faults: bool, p: f64) -> bool {
        faults && self.rng.random_bool(p)
    }

    fn later(&mut self, faults: bool, range: std::ops::Range<i64>) -> Timestamp {
        let delay = if faults { self.rng.random_range(range) } else { 0 };
        Timestamp(self.clock.now().0 + delay)
    }

    // --- The carrier ---

    fn carrier_dial(&mut self, call: CallId, request: Option<bus::Message>, faults: bool) {
        let back = |outcome| Delivery::Back(Finished::Dialed { call, outcome, request });
        if self.hung_up_before_dial.remove(&call) {
            self.note(format!("carrier: call {call} was hung up before its dial began"));
            let error = telephony::DialError { reason: EndReason::Canceled, sip_code: None, detail: "hung up".into() };
            let due = self.later(faults, 0..100);
            return self.net.push(Flight { due, what: back(Err(error)) });
        }
        let roll = if faults { self.rng.random_range(0..100) } else { 99 };
        if roll < 8 {
            self.note(format!("carrier refuses call {call}"));
            let error =
                telephony::DialError { reason: EndReason::CarrierError, sip_code: Some(503), detail: "refused".into() };
            let due = self.later(faults, 0..2_000);
            return self.net.push(Flight { due, what: back(Err(error)) });
        }
        let now = self.clock.now().0;
        let ring = self.rng.random_range(100..3_000);
        let mut script = VecDeque::from([(Timestamp(now + ring), CarrierEvent::Ringing)]);
        match self.rng.random_range(0..100) {
            0..=9 => script.push_back((
                Timestamp(now + ring + 500),
                CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) },
            )),
            10..=17 => {} // rings until the engine gives up
            _ => {
                let answered = now + ring + self.rng.random_range(100..5_000);
                script.push_back((Timestamp(answered), CarrierEvent::Answered { sip_dialog: None }));
                let talk = self.rng.random_range(1_000..200_000);
                let turns = self.rng.random_range(0..4);
                for t in 0..turns {
                    let at = answered + talk * (t + 1) / (turns + 1);
                    let speaker = if t % 2 == 0 { Speaker::Agent } else { Speaker::Callee };
                    script.push_back((Timestamp(at), CarrierEvent::Turn { speaker, text: format!("turn {t}") }));
                }
                if self.rng.random_bool(0.8) {
                    script.push_back((
                        Timestamp(answered + talk),
                        CarrierEvent::Ended { reason: EndReason::CalleeHangup, sip_code: None },
                    ));
                }
            }
        }
        self.note(format!("carrier takes call {call}"));
        self.lines.insert(call, Line { script, attached: true, ended: false });
        // The carrier's answer to the dial may be lost: the placement deadline then gives up.
        if !self.fault(faults, 0.03) {
            let due = self.later(faults, 0..1_500);
            self.net.push(Flight { due, what: back(Ok(())) });
        }
    }

    /// The carrier sends what its lines have to report by now, through a network that may lose,
    /// delay and repeat it.
    fn carrier_sends(&mut self) {
        let now = self.clock.now();
        let mut sent = Vec::new();
        for (call, line) in &mut self.lines {
            while let Some((at, _)) = line.script.front()
                && *at <= now
            {
                let (_, event) = line.script.pop_front().expect("a front");
                if matches!(event, CarrierEvent::Ended { .. }) {
                    line.ended = true;
                }
                if line.attached {
                    sent.push((*call, event));
                }
            }
        }
        for (call, event) in sent {
            if self.rng.random_bool(0.04) {
                self.note(format!("carrier report {} of call {call} is lost", event.name()));
                continue;
            }
            let copies = if self.rng.random_bool(0.05) { 2 } else { 1 };
            for _ in 0..copies {
                let due = self.later(true, 0..2_500);
                self.net.push(Flight { due, what: Delivery::Report { call, event: event.clone() } });
            }
        }
    }

    // --- Effects ---

    /// Performs what the orchestrator decided, each once what it rests on is durable, as the
    /// runner does; with `faults`, lossy and late.
    async fn perform_effects(&mut self, faults: bool) {
        loop {
            let work = self.orchestrator.take_effects();
            if work.is_empty() {
                return;
            }
            for Work { effect, .. } in work {
                self.outcome.effects += 1;
                self.perform(effect, faults).await;
            }
        }
    }

    async fn perform(&mut self, effect: Effect, faults: bool) {
        match effect {
            Effect::Answer { requests, reply, after } => {
                let bytes = match after {
                    Some(after) => match after.durable().await {
                        Ok(_) => wire::encode(&reply),
                        Err(_) => wire::encode(&pb::Reply::failure(Failure::internal("storage"))),
                    },
                    None => wire::encode(&reply),
                };
                for request in requests {
                    let _ = request.respond(bytes.clone()).await;
                }
            }
            Effect::Reserve { placement, reserve, after } => {
                durable(after).await;
                let org = placement.org();
                let lost = self.fault(faults, 0.05);
                let due = self.later(faults, 0..1_500);
                if lost {
                    // Billing never hears of it; the runner's request times out.
                    self.note(format!("the reservation of call {} is lost on its way", placement.call()));
                    let outcome = Err(BillingFailure::Unreachable("timed out".into()));
                    let due = Timestamp(due.0 + BILLING_TIMEOUT_MS);
                    return self
                        .net
                        .push(Flight { due, what: Delivery::Back(Finished::Reserved { placement, outcome }) });
                }
                let answer_lost = self.fault(faults, 0.05);
                self.net.push(Flight {
                    due,
                    what: Delivery::Billing { org, command: reserve, then: Then::Reserved(placement), answer_lost },
                });
            }
            Effect::Dial { call, dial, request, after } => {
                durable(after).await;
                let due = self.later(faults, 0..1_000);
                match dial {
                    Ok(_) => self.net.push(Flight { due, what: Delivery::Dial { call, request } }),
                    Err(detail) => {
                        let error = telephony::DialError { reason: EndReason::CarrierError, sip_code: None, detail };
                        self.net.push(Flight {
                            due,
                            what: Delivery::Back(Finished::Dialed { call, outcome: Err(error), request }),
                        });
                    }
                }
            }
            Effect::HangUp { call, after } => {
                durable(after).await;
                match self.lines.get_mut(&call) {
                    Some(line) => {
                        line.ended = true;
                        line.script.clear();
                    }
                    // The dial has not reached the carrier yet: it never will dial.
                    None => {
                        if self.net.iter().any(|f| matches!(f.what, Delivery::Dial { call: c, .. } if c == call)) {
                            self.hung_up_before_dial.insert(call);
                        }
                    }
                }
            }
            Effect::Bill { org, call, action, after } => {
                durable(after).await;
                let command = action.ledger_command().expect("a billing action");
                let due = self.later(faults, 0..1_000);
                let answer_lost = self.fault(faults, 0.1);
                let then = Then::Billed { call, action, attempt: 0 };
                self.net.push(Flight { due, what: Delivery::Billing { org, command, then, answer_lost } });
            }
            Effect::VoidLateGrant { org, call } => {
                let command = LedgerCommand::Void { reference: format!("call/{call}") };
                let due = self.later(faults, 0..1_000);
                self.net.push(Flight {
                    due,
                    what: Delivery::Billing { org, command, then: Then::Nothing, answer_lost: false },
                });
            }
            Effect::Resume { dial, .. } => {
                let call = dial.call_id;
                self.note(format!("resume call {call} on the carrier"));
                if let Some(line) = self.lines.get_mut(&call) {
                    line.attached = true;
                }
            }
            Effect::Verify { org, subject, slot, .. } => {
                drop(slot);
                let due = self.later(faults, 0..500);
                self.net
                    .push(Flight { due, what: Delivery::Back(Finished::Verified { org, subject, outcome: Ok(()) }) });
            }
            Effect::Claim { claim, command, after } => {
                durable(after).await;
                // The directory is this partition (one partition holds everything here).
                let answer = self.send_bytes(wire::directory_request(&command));
                self.clients.push(Waiting { answer, asked: Asked::Claim(claim) });
            }
            Effect::Release { command, then, after } => {
                durable(after).await;
                let answer = self.send_bytes(wire::directory_request(&command));
                self.clients.push(Waiting { answer, asked: Asked::Other });
                if let Some((request, reply)) = then {
                    let _ = request.respond(wire::encode(&reply)).await;
                }
            }
            Effect::Shred { request, reply, after, .. } => {
                durable(after).await;
                let _ = request.respond(wire::encode(&reply)).await;
            }
            Effect::Flush { after, .. } => durable(after).await,
        }
    }
}

async fn durable(after: eventlog::Pending) {
    after.durable().await.expect("the simulation's log does not fail");
}

fn open_orchestrator(
    store: &eventlog::Store,
    partitioning: Partitioning,
    key: &orchestrator::vault::MasterKey,
    slots: &Arc<Semaphore>,
    limits: CallLimits,
    clock: &ManualClock,
) -> (Partition, eventlog::Log) {
    let log = store.log(orchestrator::NAMESPACE, 0, orchestrator::projections()).expect("the orchestrator's log");
    let vault = orchestrator::vault::Vault::new(key, store.key_store(orchestrator::NAMESPACE).expect("a key store"));
    let verifications = Verifications::new(Default::default(), slots.clone());
    let partition = Partition::open(partitioning, log.clone(), limits, verifications, vault, Arc::new(clock.clone()))
        .expect("the partition opens");
    (partition, log)
}

fn describe(finished: &Finished) -> String {
    match finished {
        Finished::Verified { subject, .. } => format!("probed {subject:?}"),
        Finished::Reserved { placement, outcome } => {
            format!(
                "reservation of call {}: {}",
                placement.call(),
                outcome.as_ref().map_or_else(|f| f.code().to_owned(), |r| format!("{} cents", r.granted_cents))
            )
        }
        Finished::Dialed { call, outcome, .. } => {
            format!("dial of call {call}: {}", if outcome.is_ok() { "taken" } else { "refused" })
        }
        Finished::Billed { call, outcome } => format!("billing of call {call}: {outcome:?}"),
        Finished::Claimed { .. } => "a claim".into(),
        Finished::Carrier { call, event } => format!("carrier {} for call {call}", event.name()),
    }
}

/// Every transaction's entries sum to zero; the ledger's events as billing recorded them.
pub(crate) fn ledger_events(world: &World) -> Result<Vec<ledger::LedgerEvent>, String> {
    let stream = billing::streams::ledger(world.org);
    let events = world.billing_log.read_stream(&stream, 1).map_err(|e| e.to_string())?;
    events.iter().map(|e| e.decode::<ledger::LedgerEvent>().map_err(|e| e.to_string())).collect()
}
