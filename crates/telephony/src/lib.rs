//! Carrier adapters: how switchboard reaches the telephone network.
//!
//! [`Telephony`] serves every provider a VoIP connection may name: the simulated carrier
//! (`sim`, see [`sim`]), which plays a deterministic script so tests and demos need no network,
//! and SIP trunks (`sip`), which are verified with a SIP `OPTIONS` request and dialed as a SIP
//! user agent client (signaling; the media is the agent runtime's).

pub mod runtime;
pub mod sim;
mod sip;

use std::time::Duration;

use domain::agent::AgentSpec;
use domain::call::{CarrierEvent, EndReason, Phase, SipDialog};
use domain::ids::CallId;
use domain::voip::Provider;
use domain::{E164, Timestamp};
use tokio::sync::mpsc;

/// Where a carrier reports what happens to the calls it carries.
pub type CarrierEvents = mpsc::Sender<(CallId, CarrierEvent)>;

/// A call to place.
#[derive(Clone, Debug)]
pub struct Dial {
    pub call_id: CallId,
    pub from: E164,
    pub to: E164,
    pub provider: Provider,
    pub agent: AgentSpec,
    pub scenario_prompt: Option<String>,
}

/// How far a call had come when its owner restarted.
#[derive(Clone, Debug)]
pub struct Progress {
    pub phase: Phase,
    pub dialed_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub turns_done: u32,
    /// The SIP dialog the call was answered in, for a call on a SIP trunk.
    pub sip_dialog: Option<SipDialog>,
}

/// Why a carrier would not place a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialError {
    pub reason: EndReason,
    pub sip_code: Option<u16>,
    pub detail: String,
}

/// What the orchestrator asks of the telephone network.
#[async_trait::async_trait]
pub trait Carrier: Send + Sync + 'static {
    /// Checks that a connection's carrier answers. `Err` says why it does not, for the user.
    async fn verify(&self, provider: &Provider) -> Result<(), String>;

    /// Places a call. `Ok` means the carrier took it; what follows arrives on `events`.
    async fn dial(&self, dial: Dial, events: CarrierEvents) -> Result<(), DialError>;

    /// Follows again a call that was under way when the owner restarted.
    fn resume(&self, dial: Dial, progress: Progress, events: CarrierEvents);

    /// Ends a call the engine ends (a hang-up, a timer). Ending an ended call does nothing.
    /// A carrier knows a call from the moment `dial` is first polled: the owner sends a hang-up
    /// for a call whose dial is in flight only after that (the orchestrator's dial task does),
    /// never before, where it would find no call and be lost.
    fn hang_up(&self, call_id: CallId);
}

#[derive(Clone, Debug)]
pub struct Options {
    /// How long a SIP trunk may take to answer `OPTIONS` before verification fails.
    pub sip_probe_timeout: Duration,
    /// How long a call's INVITE waits for the trunk's first answer (even a 100 Trying) before
    /// the dial fails. RFC 3261 waits 32 s; the API client placing the call waits for this one,
    /// so it is shorter. Once the trunk answered, the call rings as long as the engine lets it.
    pub sip_answer_timeout: Duration,
    pub sim: sim::Options,
    /// Where SIP trunks may be: each probe and each call resolves its trunk's host once and
    /// connects to the address this policy let through.
    pub egress: egress::Policy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sip_probe_timeout: Duration::from_secs(3),
            sip_answer_timeout: Duration::from_secs(8),
            sim: sim::Options::default(),
            egress: egress::Policy::default(),
        }
    }
}

/// The carrier adapter for every provider.
pub struct Telephony {
    sip_probe_timeout: Duration,
    egress: egress::Policy,
    sim: sim::SimulatedCarrier,
    sip: sip::SipCarrier,
}

impl Telephony {
    pub fn new(options: Options) -> Self {
        Self {
            sip_probe_timeout: options.sip_probe_timeout,
            egress: options.egress,
            sim: sim::SimulatedCarrier::new(options.sim),
            sip: sip::SipCarrier::new(options.sip_answer_timeout, options.egress),
        }
    }
}

impl Default for Telephony {
    fn default() -> Self {
        Self::new(Options::default())
    }
}

#[async_trait::async_trait]
impl Carrier for Telephony {
    async fn verify(&self, provider: &Provider) -> Result<(), String> {
        match provider {
            // The simulated carrier is always reachable.
            Provider::Sim => Ok(()),
            Provider::Sip(trunk) => sip::probe(trunk, self.sip_probe_timeout, self.egress).await,
        }
    }

    async fn dial(&self, dial: Dial, events: CarrierEvents) -> Result<(), DialError> {
        match &dial.provider {
            Provider::Sim => self.sim.dial(dial, events),
            Provider::Sip(trunk) => {
                let trunk = trunk.clone();
                self.sip.dial(dial, trunk, events).await
            }
        }
    }

    fn resume(&self, dial: Dial, progress: Progress, events: CarrierEvents) {
        match dial.provider {
            Provider::Sim => self.sim.resume(dial, progress, events),
            Provider::Sip(trunk) => self.sip.resume(dial.call_id, trunk, progress.sip_dialog, events),
        }
    }

    fn hang_up(&self, call_id: CallId) {
        // A call is on one carrier or the other; ending it on the other does nothing.
        self.sim.hang_up(call_id);
        self.sip.hang_up(call_id);
    }
}
