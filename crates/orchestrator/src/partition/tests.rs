//! The partition on simulated time: commands in, effects out, with no runner, no bus and no
//! carrier. Each test sets up an org as a user does, then asks what the partition decided to do.

use std::sync::Arc;

use actor::{Clock, ManualClock};
use bytes::Bytes;
use domain::Timestamp;
use domain::call::{Action, Phase};
use domain::ids::{CallId, OrgId};
use domain::ledger::{ChargeKind, Grant, LedgerCommand, ReserveLimit};
use tokio::sync::{Semaphore, oneshot};
use wire::pb::{self, command::Kind, reply};

use super::effects::{Effect, Finished};
use super::{CallLimits, Partition, Verifications};
use crate::calls_projection;

const START: Timestamp = Timestamp(1_800_000_000_000);
const FROM: &str = "+14155550100";

struct Harness {
    _dir: tempfile::TempDir,
    store: eventlog::Store,
    clock: ManualClock,
    limits: CallLimits,
    partition: Partition,
    org: OrgId,
}

impl Harness {
    /// A partition holding everything (the directory too), with an org that has an agent, a
    /// verified simulated connection and a number.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = eventlog::Store::open(dir.path(), &eventlog::Options::default()).unwrap();
        let clock = ManualClock::starting_at(START);
        let limits = CallLimits::default();
        let partition = open(&store, &clock, limits);
        let mut harness = Self { _dir: dir, store, clock, limits, partition, org: OrgId(0) };
        let Some(reply::Result::Org(org)) =
            harness.ask(Kind::RegisterOrg(pb::RegisterOrg { name: "Acme".into() })).await
        else {
            panic!("no org")
        };
        harness.org = OrgId(org.id);
        harness.ask(Kind::CreateOrg(pb::CreateOrg { name: "Acme".into() })).await;
        let agent =
            pb::AgentSpec { name: "Agent".into(), prompt: "Help.".into(), voice: "alloy".into(), ..Default::default() };
        let Some(reply::Result::Agent(agent)) = harness.ask(Kind::CreateAgent(agent)).await else { panic!("no agent") };
        let sim = || pb::VoipConnectionSpec {
            name: "Sim".into(),
            provider: Some(pb::voip_connection_spec::Provider::Sim(pb::Empty {})),
            vendor: "manual".into(),
            evidence_id: String::new(),
        };
        let test = pb::TestVoipConnection { spec: Some(sim()), connection_id: None, target_number: None };
        let Some(reply::Result::ConnectionTest(evidence)) = harness.ask(Kind::TestVoipConnection(test)).await else {
            panic!("no connection test")
        };
        let spec = pb::VoipConnectionSpec { evidence_id: evidence.id, ..sim() };
        let Some(reply::Result::VoipConnection(connection)) = harness.ask(Kind::CreateVoipConnection(spec)).await
        else {
            panic!("no connection")
        };
        let number = pb::CreatePhoneNumber {
            number: FROM.into(),
            voip_connection_id: connection.id,
            outbound_agent_id: Some(agent.id),
            ..Default::default()
        };
        let number = harness.ask(Kind::CreatePhoneNumber(number)).await;
        let Some(reply::Result::PhoneNumber(number)) = number else { panic!("no number: {number:?}") };
        harness.ask(Kind::VerifyPhoneNumber(pb::ById { id: number.id })).await;
        harness
    }

    fn send(&mut self, kind: Kind) -> oneshot::Receiver<Bytes> {
        self.send_bytes(wire::encode(&pb::Command { org_id: self.org.0, kind: Some(kind) }))
    }

    fn send_bytes(&mut self, payload: Bytes) -> oneshot::Receiver<Bytes> {
        let (message, answer) = bus::Message::local_request("test", bus::Headers::new(), payload);
        self.partition.command(message);
        answer
    }

    /// Sends a set-up command and performs what it asks for (answers, probes that pass, claims
    /// in the directory this partition holds) until it is answered.
    async fn ask(&mut self, kind: Kind) -> Option<reply::Result> {
        let mut answer = self.send(kind);
        for _ in 0..100 {
            for work in self.partition.take_effects() {
                match work.effect {
                    Effect::Answer { requests, reply, after } => respond(requests, &reply, after).await,
                    Effect::Verify { org, subject, .. } => {
                        self.partition.finished(Finished::Verified { org, subject, outcome: Ok(()) })
                    }
                    Effect::Claim { claim, command, after } => {
                        after.durable().await.unwrap();
                        let mut claimed = self.send_bytes(wire::directory_request(&command));
                        let reply = loop {
                            for work in self.partition.take_effects() {
                                if let Effect::Answer { requests, reply, after } = work.effect {
                                    respond(requests, &reply, after).await;
                                }
                            }
                            if let Ok(bytes) = claimed.try_recv() {
                                break decode(&bytes);
                            }
                        };
                        let Some(reply::Result::NumberClaimed(c)) = reply else { panic!("no claim: {reply:?}") };
                        let outcome = Ok(wire::parse_number(&c.number).unwrap());
                        self.partition.finished(Finished::Claimed { claim, outcome });
                    }
                    other => panic!("set-up asked for {other:?}"),
                }
            }
            if let Ok(bytes) = answer.try_recv() {
                return decode(&bytes);
            }
        }
        panic!("a set-up command was never answered")
    }

    fn place_call(&mut self) -> oneshot::Receiver<Bytes> {
        self.send(Kind::PlaceCall(pb::PlaceCall {
            from_number: FROM.into(),
            to_number: "+14155550123".into(),
            ..Default::default()
        }))
    }

    fn call(&self, call: CallId) -> domain::call::CallState {
        calls_projection::read_call(self.partition_log(), call).unwrap().expect("the call is recorded")
    }

    fn partition_log(&self) -> &eventlog::Log {
        &self.partition.log
    }

    /// The partition drops everything it holds and opens again on its log.
    fn restart(&mut self) {
        self.partition = open(&self.store, &self.clock, self.limits);
        self.partition.start();
    }
}

fn open(store: &eventlog::Store, clock: &ManualClock, limits: CallLimits) -> Partition {
    let log = store.log(crate::NAMESPACE, 0, crate::projections()).unwrap();
    let key = crate::vault::MasterKey::parse(&"7c".repeat(32)).unwrap();
    let vault = crate::vault::Vault::new(&key, store.key_store(crate::NAMESPACE).unwrap());
    let verifications = Verifications::new(Default::default(), Arc::new(Semaphore::new(1)));
    let partitioning = domain::ids::Partitioning::new(1);
    Partition::open(partitioning, log, limits, verifications, vault, Arc::new(clock.clone())).unwrap()
}

async fn respond(requests: Vec<bus::Message>, reply: &pb::Reply, after: Option<eventlog::Pending>) {
    if let Some(after) = after {
        after.durable().await.unwrap();
    }
    for request in requests {
        request.respond(wire::encode(reply)).await.unwrap();
    }
}

fn decode(bytes: &Bytes) -> Option<reply::Result> {
    wire::decode::<pb::Reply>(bytes).unwrap().result
}

/// The reservation the partition asked billing for, with the call it is for.
fn reservation(effects: &mut Vec<Effect>) -> (Box<super::effects::Placement>, LedgerCommand) {
    let at = effects.iter().position(|e| matches!(e, Effect::Reserve { .. })).expect("a reservation is asked for");
    match effects.remove(at) {
        Effect::Reserve { placement, reserve, .. } => (placement, reserve),
        _ => unreachable!(),
    }
}

fn effects(partition: &mut Partition) -> Vec<Effect> {
    partition.take_effects().into_iter().map(|w| w.effect).collect()
}

fn grant(reference: &str) -> Grant {
    Grant {
        reference: reference.into(),
        granted_cents: 900,
        rate_cents_per_minute: 9,
        charge_multiplier: 1,
        expires_at: Timestamp(START.0 + 4_200_000),
    }
}

#[tokio::test]
async fn a_call_is_on_record_before_billing_is_asked_for_its_whole_maximum_duration() {
    let mut h = Harness::new().await;
    let _answer = h.place_call();
    let mut decided = effects(&mut h.partition);
    let (placement, reserve) = reservation(&mut decided);
    // Asked for once the request is on record: the call is there, waiting for its funds.
    assert_eq!(h.call(placement.call()).phase, Phase::Requested);
    let max = h.limits.max_duration_seconds;
    assert_eq!(
        reserve,
        LedgerCommand::Reserve {
            reference: format!("call/{}", placement.call()),
            limit: ReserveLimit::Seconds(max),
            kind: ChargeKind::Call,
            call_id: Some(placement.call().0),
            charge_multiplier: 1,
            expires_in_seconds: max + domain::call::RESERVATION_GRACE_SECONDS,
        }
    );
    assert!(decided.iter().all(|e| !matches!(e, Effect::Dial { .. })), "nothing is dialed before its funds");
}

#[tokio::test]
async fn a_call_billing_never_answers_is_given_up_at_its_placement_deadline_and_not_before() {
    let mut h = Harness::new().await;
    let _answer = h.place_call();
    let (placement, _) = reservation(&mut effects(&mut h.partition));
    let call = placement.call();
    let deadline = h.call(call).created_at.0 + h.limits.placement_timeout_ms;
    assert_eq!(h.partition.next_deadline(), Some(Timestamp(deadline)));

    h.clock.advance_to(Timestamp(deadline - 1));
    h.partition.fire_due_timers();
    assert_eq!(h.call(call).phase, Phase::Requested, "a millisecond early, the call still waits");

    h.clock.advance_to(Timestamp(deadline));
    h.partition.fire_due_timers();
    let state = h.call(call);
    assert_eq!((state.phase, state.rejection.as_deref()), (Phase::Rejected, Some("placement_timeout")));
    let decided = effects(&mut h.partition);
    // Billing may have reserved without answering: the reservation is released.
    let void = Action::Void { reference: format!("call/{call}") };
    assert!(decided.iter().any(|e| matches!(e, Effect::Bill { action, .. } if *action == void)), "{decided:?}");
}

#[tokio::test]
async fn a_grant_that_arrives_after_the_deadline_is_released_and_never_dialed() {
    let mut h = Harness::new().await;
    let _answer = h.place_call();
    let (placement, _) = reservation(&mut effects(&mut h.partition));
    let call = placement.call();
    h.clock.advance_ms(h.limits.placement_timeout_ms);
    h.partition.fire_due_timers();
    drop(effects(&mut h.partition));

    let reference = format!("call/{call}");
    h.partition.finished(Finished::Reserved { placement, outcome: Ok(grant(&reference)) });
    let decided = effects(&mut h.partition);
    assert!(decided.iter().any(|e| matches!(e, Effect::VoidLateGrant { call: c, .. } if *c == call)), "{decided:?}");
    assert!(decided.iter().all(|e| !matches!(e, Effect::Dial { .. })), "a call given up on is never dialed");
    assert_eq!(h.call(call).phase, Phase::Rejected);
}

#[tokio::test]
async fn a_granted_call_is_dialed_once_its_funds_are_on_record() {
    let mut h = Harness::new().await;
    let _answer = h.place_call();
    let (placement, _) = reservation(&mut effects(&mut h.partition));
    let call = placement.call();
    let reference = format!("call/{call}");
    h.partition.finished(Finished::Reserved { placement, outcome: Ok(grant(&reference)) });
    let decided = effects(&mut h.partition);
    assert!(
        decided.iter().any(|e| matches!(e, Effect::Dial { call: c, dial: Ok(_), .. } if *c == call)),
        "{decided:?}"
    );
    let state = h.call(call);
    assert_eq!(state.phase, Phase::Initiated);
    assert_eq!(state.funds.map(|f| f.granted_cents), Some(900));
}

#[tokio::test]
async fn after_a_restart_a_call_whose_funds_were_never_confirmed_is_rejected_and_its_funds_released() {
    let mut h = Harness::new().await;
    let _answer = h.place_call();
    let (placement, _) = reservation(&mut effects(&mut h.partition));
    let call = placement.call();
    h.restart();
    let state = h.call(call);
    assert_eq!((state.phase, state.rejection.as_deref()), (Phase::Rejected, Some("interrupted")));
    let void = Action::Void { reference: format!("call/{call}") };
    let decided = effects(&mut h.partition);
    assert!(decided.iter().any(|e| matches!(e, Effect::Bill { action, .. } if *action == void)), "{decided:?}");
    assert_eq!(h.partition.now(), h.clock.now(), "the partition reads the clock it was given");
}

/// The batch `reply` is, if it is one.
fn batch_answer(decided: &[Effect]) -> Option<pb::TestBatch> {
    decided.iter().find_map(|e| match e {
        Effect::Answer { reply, .. } => match &reply.result {
            Some(reply::Result::TestBatch(batch)) => Some(batch.clone()),
            _ => None,
        },
        _ => None,
    })
}

#[tokio::test]
async fn a_batch_records_its_runs_queued_and_launches_them_a_stagger_apart_across_restarts() {
    use domain::test_call::BatchEvent;

    use crate::{streams, test_calls_projection};

    let mut h = Harness::new().await;
    let agent = h.partition.orgs[&h.org].state.agents.keys().next().unwrap().0;
    let _answer = h.send(Kind::CreateTestBatch(pb::CreateTestBatch {
        target_type: "agent".into(),
        target_id: agent,
        direction: "outbound".into(),
        run_count: 3,
        stagger_seconds: 10,
        mode: "bot".into(),
        ..Default::default()
    }));
    let mut decided = effects(&mut h.partition);
    let batch = batch_answer(&decided).expect("the batch is answered");
    assert_eq!(batch.run_ids.len(), 3, "the answer lists every run");
    let run = |h: &Harness, index: usize| {
        test_calls_projection::read_run(h.partition_log(), batch.run_ids[index]).unwrap().expect("recorded")
    };
    // Only the first run is launched at once: one reservation, for its call.
    let (placement, _) = reservation(&mut decided);
    assert!(decided.iter().all(|e| !matches!(e, Effect::Reserve { .. })), "{decided:?}");
    assert_eq!(run(&h, 0).call_id, Some(placement.call()));
    assert_eq!((run(&h, 1).call_id, run(&h, 2).call_id), (None, None), "queued, without calls");
    let due = Timestamp(batch.created_at_ms + 10_000);
    assert_eq!(h.partition.batch_timers.first(), Some(&(due, batch.id)));

    // A restart takes the batch back with the same next launch.
    h.restart();
    drop(effects(&mut h.partition));
    assert_eq!(h.partition.batch_timers.first(), Some(&(due, batch.id)));
    h.clock.advance_to(Timestamp(due.0 - 1));
    h.partition.fire_due_timers();
    assert_eq!(run(&h, 1).call_id, None, "a millisecond early, the run still waits");
    h.clock.advance_to(due);
    h.partition.fire_due_timers();
    let (placement, _) = reservation(&mut effects(&mut h.partition));
    assert_eq!((run(&h, 1).call_id, run(&h, 2).call_id), (Some(placement.call()), None));

    // Another restart launches neither again, and the last run comes a stagger later.
    h.restart();
    let decided = effects(&mut h.partition);
    assert!(decided.iter().all(|e| !matches!(e, Effect::Reserve { .. })), "nothing is launched again: {decided:?}");
    assert_eq!(h.partition.batch_timers.first(), Some(&(Timestamp(due.0 + 10_000), batch.id)));
    let launches: Vec<u32> = h
        .partition_log()
        .read_stream(&streams::batch(batch.id), 1)
        .unwrap()
        .iter()
        .filter_map(|e| match e.decode::<BatchEvent>().unwrap() {
            BatchEvent::RunLaunched { index, .. } => Some(index),
            _ => None,
        })
        .collect();
    assert_eq!(launches, [0, 1]);
}
