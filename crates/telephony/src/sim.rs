//! The simulated carrier. Deterministic: what a call does depends only on its destination
//! number and the configured durations.
//!
//! | destination      | what happens                                                         |
//! |------------------|----------------------------------------------------------------------|
//! | `+15550000486`   | busy (SIP 486) after half the ring time                              |
//! | `+15550000480`   | rings and is never answered (the engine's ring timeout ends it)      |
//! | `+15550000404`   | invalid number (SIP 404) after a quarter of the ring time            |
//! | `+15550000503`   | the carrier refuses to dial: `POST /v1/call` answers 502             |
//! | `+15550000001`   | answered; the callee hangs up after the agent's greeting             |
//! | `+15550000002`   | answered; the agent puts the callee on hold after its greeting and   |
//! |                  | never takes them off (the engine ends the hold at `max_hold_seconds`) |
//! | any other E.164  | rings for `ring_ms`, is answered, the simulated agent and callee     |
//! |                  | talk for `talk_ms`, and the agent hangs up                           |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::Timestamp;
use domain::call::{CarrierEvent, EndReason, Phase, Speaker};
use domain::ids::CallId;
use tokio::task::AbortHandle;

use crate::{CarrierEvents, Dial, DialError, Progress, runtime};

pub const BUSY: &str = "+15550000486";
pub const NO_ANSWER: &str = "+15550000480";
pub const INVALID_NUMBER: &str = "+15550000404";
pub const CARRIER_ERROR: &str = "+15550000503";
pub const CALLEE_HANGS_UP: &str = "+15550000001";
pub const LEFT_ON_HOLD: &str = "+15550000002";

#[derive(Clone, Debug)]
pub struct Options {
    /// How long a call rings before it is answered.
    pub ring_ms: u64,
    /// How long an answered call talks before the agent hangs up.
    pub talk_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { ring_ms: 2_000, talk_ms: 10_000 }
    }
}

pub struct SimulatedCarrier {
    options: Options,
    /// The scripts of calls under way, so a hang-up can stop them.
    sessions: Arc<Mutex<HashMap<CallId, AbortHandle>>>,
}

impl SimulatedCarrier {
    pub fn new(options: Options) -> Self {
        Self { options, sessions: Arc::default() }
    }

    pub fn dial(&self, dial: Dial, events: CarrierEvents) -> Result<(), DialError> {
        if dial.to.as_str() == CARRIER_ERROR {
            return Err(DialError {
                reason: EndReason::CarrierError,
                sip_code: Some(503),
                detail: "The simulated carrier refused the call (503).".into(),
            });
        }
        let progress =
            Progress { phase: Phase::Dialing, dialed_at: now(), answered_at: None, turns_done: 0, sip_dialog: None };
        self.start(dial, progress, events);
        Ok(())
    }

    pub fn resume(&self, dial: Dial, progress: Progress, events: CarrierEvents) {
        self.start(dial, progress, events);
    }

    pub fn hang_up(&self, call_id: CallId) {
        if let Some(session) = self.sessions.lock().expect("sessions lock").remove(&call_id) {
            session.abort();
        }
    }

    fn start(&self, dial: Dial, progress: Progress, events: CarrierEvents) {
        let call_id = dial.call_id;
        let options = self.options.clone();
        let sessions = self.sessions.clone();
        // Held while registering, so a session that ends at once cannot unregister first.
        let mut registry = self.sessions.lock().expect("sessions lock");
        let task = tokio::spawn(async move {
            play(&dial, &progress, &options, &events).await;
            sessions.lock().expect("sessions lock").remove(&dial.call_id);
        });
        registry.insert(call_id, task.abort_handle());
    }
}

fn now() -> Timestamp {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp(ms)
}

async fn sleep_until(at: Timestamp) {
    let wait = at.0 - now().0;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

fn after(t: Timestamp, ms: u64) -> Timestamp {
    Timestamp(t.0 + ms as i64)
}

/// Plays a call's script from where `progress` says it is.
async fn play(dial: &Dial, progress: &Progress, options: &Options, events: &CarrierEvents) {
    let send = |event: CarrierEvent| async move {
        // The owner is gone only at shutdown; the script has no one left to tell.
        let _ = events.send((dial.call_id, event)).await;
    };
    let ring_ms = options.ring_ms;
    let dialed = progress.dialed_at;
    match dial.to.as_str() {
        BUSY => {
            sleep_until(after(dialed, ring_ms / 2)).await;
            return send(CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) }).await;
        }
        INVALID_NUMBER => {
            sleep_until(after(dialed, ring_ms / 4)).await;
            return send(CarrierEvent::Ended { reason: EndReason::InvalidNumber, sip_code: Some(404) }).await;
        }
        _ => {}
    }
    let answered_at = match progress.answered_at {
        Some(at) => at,
        None => {
            if progress.phase == Phase::Dialing {
                sleep_until(after(dialed, ring_ms / 4)).await;
                send(CarrierEvent::Ringing).await;
            }
            if dial.to.as_str() == NO_ANSWER {
                // Rings until the engine gives up.
                return std::future::pending().await;
            }
            sleep_until(after(dialed, ring_ms)).await;
            send(CarrierEvent::Answered { sip_dialog: None }).await;
            now()
        }
    };
    if progress.turns_done >= 1 && dial.to.as_str() == CALLEE_HANGS_UP {
        // Resumed after the greeting: the callee has already hung up by the script.
        return send(CarrierEvent::Ended { reason: EndReason::CalleeHangup, sip_code: Some(200) }).await;
    }
    let turns = runtime::conversation(&dial.agent, dial.scenario_prompt.as_deref());
    let talk_ms = options.talk_ms;
    let spacing = talk_ms / (turns.len() as u64 + 1);
    for (i, (speaker, text)) in turns.into_iter().enumerate().skip(progress.turns_done as usize) {
        sleep_until(after(answered_at, spacing * (i as u64 + 1))).await;
        send(CarrierEvent::Turn { speaker, text }).await;
        if i == 0 && speaker == Speaker::Agent {
            match dial.to.as_str() {
                CALLEE_HANGS_UP => {
                    return send(CarrierEvent::Ended { reason: EndReason::CalleeHangup, sip_code: Some(200) }).await;
                }
                LEFT_ON_HOLD => send(CarrierEvent::HoldStarted).await,
                _ => {}
            }
        }
    }
    sleep_until(after(answered_at, talk_ms)).await;
    send(CarrierEvent::Ended { reason: EndReason::AgentHangup, sip_code: Some(200) }).await;
}
