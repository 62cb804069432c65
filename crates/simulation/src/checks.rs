//! The invariants, checked against what the partitions recorded (their logs and projections),
//! never against what they hold in memory.

use std::collections::{BTreeMap, BTreeSet};

use domain::call::{Billing, CallState, Phase};
use domain::ids::CallId;
use domain::ledger::{Account, LedgerEvent};
use domain::test_call::{BatchEvent, RunEvent};

use crate::world::{World, ledger_events};

/// What the clients were told, and what the checks saw settle.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Calls a client was told exist (a call placed, a run queued).
    pub calls: BTreeSet<CallId>,
    /// Batches a client was told exist, with their run counts.
    pub batches: BTreeMap<u64, u32>,
    /// What each idempotency key asked for (the number it calls).
    pub key_requests: BTreeMap<String, String>,
    /// The call each key was answered with.
    pub key_calls: BTreeMap<String, CallId>,
    /// How each call that reached a terminal state ended, as first seen.
    pub terminal: BTreeMap<CallId, CallState>,
}

impl Observed {
    pub fn acknowledge(&mut self, call: CallId, key: Option<String>) -> Result<(), String> {
        self.calls.insert(call);
        match key {
            Some(key) => self.key_answered(&key, call),
            None => Ok(()),
        }
    }

    /// A key answers with one call, however often its request is sent.
    pub fn key_answered(&mut self, key: &str, call: CallId) -> Result<(), String> {
        match self.key_calls.insert(key.to_owned(), call) {
            Some(before) if before != call => Err(format!("key {key} answered call {before}, then call {call}")),
            _ => Ok(()),
        }
    }
}

/// What must hold after every step.
pub(crate) fn after_step(world: &mut World) -> Result<(), String> {
    balances_never_below_zero(world)?;
    for call in world.observed.calls.clone() {
        let Some(state) = read_call(world, call)? else {
            return Err(format!("call {call} was acknowledged but does not exist"));
        };
        charge_within_grant(&state)?;
        if state.is_ended() {
            terminal_never_changes(world, state)?;
        }
    }
    Ok(())
}

/// What must hold once everything settled.
pub(crate) fn at_rest(world: &mut World) -> Result<(), String> {
    after_step(world)?;
    for call in world.observed.calls.clone() {
        let state = read_call(world, call)?.expect("checked after the last step");
        if !state.is_ended() {
            return Err(format!("call {call} never reached a terminal state: {:?}", state.phase));
        }
        if state.billing == Billing::Open && state.setup.reservation_reference.is_some() {
            return Err(format!("call {call} ended but its reservation was never closed"));
        }
    }
    ledger_balances(world)?;
    batches_launch_each_run_once(world)?;
    replay_rebuilds_the_projections(world)
}

fn read_call(world: &World, call: CallId) -> Result<Option<CallState>, String> {
    orchestrator::calls_projection::read_call(&world.orchestrator_log, call).map_err(|e| e.to_string())
}

fn balances_never_below_zero(world: &World) -> Result<(), String> {
    let ledgers = billing::projection::read_ledgers(&world.billing_log).map_err(|e| e.to_string())?;
    for (org, ledger) in &ledgers {
        let balances = &ledger.state.balances;
        if balances.available_cents() < 0 || balances.reserved_cents() < 0 {
            return Err(format!(
                "org {org}: available {} cents, reserved {} cents",
                balances.available_cents(),
                balances.reserved_cents()
            ));
        }
    }
    Ok(())
}

/// A call is charged only if it connected, and never more than billing granted it.
fn charge_within_grant(state: &CallState) -> Result<(), String> {
    let Billing::Settled { charged_cents } = state.billing else { return Ok(()) };
    let call = state.setup.id;
    if charged_cents > 0 && state.answered_at.is_none() {
        return Err(format!("call {call} never connected but was charged {charged_cents} cents"));
    }
    let granted = state.funds.as_ref().map_or(0, |f| f.granted_cents);
    if charged_cents > granted {
        return Err(format!("call {call} was charged {charged_cents} cents of a grant of {granted}"));
    }
    Ok(())
}

/// Once ended, a call's ending (and once settled, its charge) never changes.
fn terminal_never_changes(world: &mut World, state: CallState) -> Result<(), String> {
    let call = state.setup.id;
    match world.observed.terminal.get_mut(&call) {
        None => {
            world.observed.terminal.insert(call, state);
        }
        Some(before) => {
            if before.ending != state.ending || before.phase != state.phase {
                return Err(format!("call {call} ended as {:?}, then as {:?}", before.ending, state.ending));
            }
            match (&before.billing, &state.billing) {
                (Billing::Open, _) => *before = state,
                (a, b) if a != b => return Err(format!("call {call} was billed {a:?}, then {b:?}")),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Every transaction balances; nothing stays reserved; no reference is closed twice; what each
/// call records as charged is what the ledger charged it.
fn ledger_balances(world: &World) -> Result<(), String> {
    let mut closed: BTreeMap<String, i64> = BTreeMap::new();
    for event in ledger_events(world)? {
        let (entries, reference, charged) = match &event {
            LedgerEvent::TopUpPosted { entries, .. } | LedgerEvent::FundsReserved { entries, .. } => (entries, None, 0),
            LedgerEvent::ReservationSettled { entries, reference, charged_cents, .. } => {
                (entries, Some(reference), *charged_cents)
            }
            LedgerEvent::ReservationReleased { entries, reference, .. } => (entries, Some(reference), 0),
            LedgerEvent::RateSet { .. } => continue,
        };
        let sum: i64 = entries.iter().map(|e| e.amount_cents).sum();
        if sum != 0 {
            return Err(format!("a ledger transaction's entries sum to {sum}: {event:?}"));
        }
        if let Some(reference) = reference
            && closed.insert(reference.clone(), charged).is_some()
        {
            return Err(format!("reservation {reference} was closed twice"));
        }
    }
    let ledgers = billing::projection::read_ledgers(&world.billing_log).map_err(|e| e.to_string())?;
    for (org, ledger) in &ledgers {
        if ledger.state.balances.of(Account::Reserved) != 0 || !ledger.state.open.is_empty() {
            return Err(format!(
                "org {org} still has {} cents reserved by {:?} once all is idle",
                ledger.state.balances.reserved_cents(),
                ledger.state.open.keys().collect::<Vec<_>>()
            ));
        }
    }
    for call in &world.observed.calls {
        let state = read_call(world, *call)?.expect("checked");
        let Some(reference) = &state.setup.reservation_reference else { continue };
        let charged_by_ledger = closed.get(reference).copied().unwrap_or(0);
        let charged_by_call = match state.billing {
            Billing::Settled { charged_cents } => charged_cents,
            _ => 0,
        };
        if state.phase == Phase::Ended && charged_by_ledger != charged_by_call {
            return Err(format!("call {call} records {charged_by_call} cents charged, the ledger {charged_by_ledger}"));
        }
    }
    Ok(())
}

/// A batch is created with all its runs, queued, and launches them 0, 1, 2, ... in order, each
/// once and none before it is due (`index * stagger_seconds` after the creation), none after
/// its cancel; each launch records the run's call, and a run is launched or canceled, never
/// both. Once everything settled, no run waits: each was launched, or its batch canceled.
fn batches_launch_each_run_once(world: &World) -> Result<(), String> {
    let log = &world.orchestrator_log;
    for &id in world.observed.batches.keys() {
        let events = log.read_stream(&orchestrator::streams::batch(id), 1).map_err(|e| e.to_string())?;
        let (mut run_ids, mut created_at, mut stagger_ms) = (Vec::new(), 0, 0);
        let (mut launched, mut canceled) = (0u32, false);
        for event in events {
            match event.decode::<BatchEvent>().map_err(|e| e.to_string())? {
                BatchEvent::Created { spec, run_ids: ids, at, .. } => {
                    if ids.len() != spec.run_count as usize {
                        return Err(format!("batch {id} was created with {} runs of {}", ids.len(), spec.run_count));
                    }
                    (run_ids, created_at, stagger_ms) = (ids, at.0, i64::from(spec.stagger_seconds) * 1000);
                }
                BatchEvent::RunLaunched { index, run_id, at } => {
                    if canceled {
                        return Err(format!("batch {id} launched run {index} after its cancel"));
                    }
                    if index != launched || run_ids.get(index as usize) != Some(&run_id) {
                        return Err(format!(
                            "batch {id} launched run {index} ({run_id}) where run {launched} was next"
                        ));
                    }
                    if at.0 < created_at + i64::from(index) * stagger_ms {
                        return Err(format!("batch {id} launched run {index} before it was due"));
                    }
                    launched += 1;
                }
                BatchEvent::RunSpawned { .. } => return Err(format!("batch {id} spawned a run the old way")),
                BatchEvent::Canceled { .. } => canceled = true,
            }
        }
        if !canceled && (launched as usize) < run_ids.len() {
            return Err(format!("batch {id} settled with {launched} of {} runs launched", run_ids.len()));
        }
        for (index, run) in run_ids.iter().enumerate() {
            let events = log.read_stream(&orchestrator::streams::run(*run), 1).map_err(|e| e.to_string())?;
            let events: Vec<RunEvent> =
                events.iter().map(|e| e.decode::<RunEvent>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
            match events.as_slice() {
                [RunEvent::Created { run: queued }, rest @ ..]
                    if queued.call_id.is_none() && queued.batch_id == Some(id) =>
                {
                    match rest {
                        [RunEvent::Launched { call_id, .. }] if index < launched as usize => {
                            let call = orchestrator::calls_projection::read_call(log, *call_id)
                                .map_err(|e| e.to_string())?
                                .ok_or_else(|| {
                                    format!("run {run} of batch {id} launched call {call_id}, not recorded")
                                })?;
                            if !call.is_ended() {
                                return Err(format!("run {run} of batch {id} settled with its call {call_id} running"));
                            }
                        }
                        [RunEvent::Canceled { .. }] if canceled && index >= launched as usize => {}
                        other => return Err(format!("run {run} (index {index}) of batch {id} recorded {other:?}")),
                    }
                }
                other => return Err(format!("run {run} of batch {id} was not created queued: {other:?}")),
            }
        }
    }
    Ok(())
}

/// Replaying each log rebuilds exactly the projections the live partitions wrote.
fn replay_rebuilds_the_projections(world: &World) -> Result<(), String> {
    for (name, log) in [("orchestrator", &world.orchestrator_log), ("billing", &world.billing_log)] {
        let live = log.live_projections().map_err(|e| e.to_string())?;
        let replayed = log.replay_projections().map_err(|e| e.to_string())?;
        if live != replayed {
            let differs = live
                .keys()
                .chain(replayed.keys())
                .find(|k| live.get(*k) != replayed.get(*k))
                .map(|k| String::from_utf8_lossy(k).into_owned());
            return Err(format!("{name}: the replay differs from the live projections at {differs:?}"));
        }
        let chains = log.verify_chains().map_err(|e| e.to_string())?;
        if !chains.breaks.is_empty() {
            return Err(format!("{name}: broken hash chains {:?}", chains.breaks));
        }
    }
    Ok(())
}
