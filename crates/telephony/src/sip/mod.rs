//! SIP trunks: verified with an `OPTIONS` probe ([`probe`]), and calls placed over them as a
//! user agent client ([`call`]), over UDP or TCP ([`transport`]). TLS trunks can be stored, not yet used.

mod call;
mod digest;
mod message;
mod probe;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::call::{CarrierEvent, EndReason, SipDialog};
use domain::ids::CallId;
use domain::voip::SipTrunk;
use tokio::sync::{mpsc, oneshot};

pub use probe::probe;

/// Random letters and digits, for the branches, tags and Call-IDs that must not repeat.
fn token(chars: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), chars)
}

use crate::{CarrierEvents, Dial, DialError};

/// A dial that failed at the carrier, not at the callee.
fn carrier_error(detail: String, sip_code: Option<u16>) -> DialError {
    DialError { reason: EndReason::CarrierError, sip_code, detail }
}

/// Places calls on SIP trunks, and keeps the calls under way so a hang-up reaches the call's task.
pub struct SipCarrier {
    /// See [`crate::Options::sip_answer_timeout`].
    answer_timeout: Duration,
    /// Where trunks may be; see [`crate::Options::egress`].
    egress: egress::Policy,
    /// One slot per call: a hang-up is asked once, and the task takes it when it can.
    sessions: Arc<Mutex<HashMap<CallId, mpsc::Sender<()>>>>,
}

impl SipCarrier {
    pub fn new(answer_timeout: Duration, egress: egress::Policy) -> Self {
        Self { answer_timeout, egress, sessions: Arc::default() }
    }

    pub async fn dial(&self, dial: Dial, trunk: SipTrunk, events: CarrierEvents) -> Result<(), DialError> {
        let call_id = dial.call_id;
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let (hang_up_tx, hang_up_rx) = mpsc::channel(1);
        self.sessions.lock().expect("sessions lock").insert(call_id, hang_up_tx);
        let sessions = self.sessions.clone();
        let (answer_timeout, egress) = (self.answer_timeout, self.egress);
        tokio::spawn(async move {
            call::run(dial, trunk, egress, answer_timeout, accepted_tx, events, hang_up_rx).await;
            sessions.lock().expect("sessions lock").remove(&call_id);
        });
        accepted_rx.await.unwrap_or_else(|_| {
            Err(DialError {
                reason: EndReason::CarrierError,
                sip_code: None,
                detail: "The SIP call task ended.".into(),
            })
        })
    }

    /// A call under way when its owner restarted cannot be followed: its transaction and the
    /// agent's media lived in the process that died. An answered call's dialog was recorded with
    /// the answer, so the far end is sent its BYE; either way the call ends as the carrier's
    /// failure, billed up to now. (A call still ringing is left to the trunk's timers: the
    /// INVITE's identifiers are not recorded.)
    pub fn resume(&self, call_id: CallId, trunk: SipTrunk, dialog: Option<SipDialog>, events: CarrierEvents) {
        let egress = self.egress;
        tokio::spawn(async move {
            if let Some(dialog) = dialog {
                call::end_dialog(&trunk, egress, dialog).await;
            }
            let ended = CarrierEvent::Ended { reason: EndReason::CarrierError, sip_code: None };
            let _ = events.send((call_id, ended)).await;
        });
    }

    pub fn hang_up(&self, call_id: CallId) {
        if let Some(session) = self.sessions.lock().expect("sessions lock").remove(&call_id) {
            // The task may be finishing already; then there is nothing left to end.
            let _ = session.try_send(());
        }
    }
}
