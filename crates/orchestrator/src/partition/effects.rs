//! What the partition asks of the world, and what comes back.
//!
//! A decision never performs anything: it records an [`Effect`] in the partition's outbox,
//! with what the effect rests on (`after`: the append that decided it, or the log's barrier).
//! The runner (`super::runner`) takes the outbox after every input and performs each effect
//! once `after` is durable; work that waits on the network comes back as a [`Finished`], decided
//! in order with the rest. The deterministic simulation performs the same effects itself, on
//! its own schedule, which is what lets it lose, delay and repeat them.

use domain::call::{Action, CallCommand, CarrierEvent};
use domain::directory::DirectoryCommand;
use domain::ids::{CallId, OrgId};
use domain::ledger::{Grant, LedgerCommand, LedgerReply};
use domain::secret::Sealed;
use domain::verification_budget::ProbeSubject;
use domain::voip::Provider;
use eventlog::Pending;
use tokio::sync::OwnedSemaphorePermit;
use wire::BillingFailure;
use wire::pb::{Failure, Reply};

pub use super::calls::Placement;
pub use super::numbers::PendingClaim;

/// An effect, and the request whose handling decided it (passed on to billing and the
/// directory, and logged).
#[derive(Debug)]
pub struct Work {
    pub request_id: Option<String>,
    pub effect: Effect,
}

#[derive(Debug)]
pub enum Effect {
    /// Answer requests alike (a probe answers everyone who waited for it). `after` is `None`
    /// for a refusal: it acknowledges nothing, so it goes at once.
    Answer { requests: Vec<bus::Message>, reply: Reply, after: Option<Pending> },
    /// Ask billing for a call's funds; comes back as [`Finished::Reserved`].
    Reserve { placement: Box<Placement>, reserve: LedgerCommand, after: Pending },
    /// Dial a recorded call (`Err`: it cannot be, and why); comes back as [`Finished::Dialed`].
    /// A hang-up decided while the dial is in flight goes to the carrier through the dial.
    Dial { call: CallId, dial: Result<telephony::Dial, String>, request: Option<bus::Message>, after: Pending },
    /// End a call at the carrier.
    HangUp { call: CallId, after: Pending },
    /// Settle or void a call's reservation, retrying; comes back as [`Finished::Billed`].
    Bill { org: OrgId, call: CallId, action: Action, after: Pending },
    /// Release funds billing granted a call given up on before they arrived. Nothing comes back:
    /// billing releases them at their expiry if this is lost.
    VoidLateGrant { org: OrgId, call: CallId },
    /// Follow a call again on its carrier after a restart.
    Resume { dial: telephony::Dial, progress: telephony::Progress },
    /// Probe a trunk (a configuration under test, or a number's); comes back as
    /// [`Finished::Verified`]. `slot` is the process's probe slot, held until the probe is over.
    Verify { org: OrgId, subject: ProbeSubject, provider: Result<Provider, String>, slot: Option<OwnedSemaphorePermit> },
    /// Claim a number in the directory; comes back as [`Finished::Claimed`].
    Claim { claim: Box<PendingClaim>, command: DirectoryCommand, after: Pending },
    /// Release a directory claim (retrying), then answer `then`, if given.
    Release { command: DirectoryCommand, then: Option<(bus::Message, Reply)>, after: Pending },
    /// Shred a deleted connection's data key, then answer the deletion.
    Shred { sealed: Option<Sealed>, request: bus::Message, reply: Reply, after: Pending },
    /// Make what was recorded durable soon, though nobody waits for it (a carrier's report).
    Flush { call: CallId, after: Pending },
}

/// Why the directory holds no claim for a number, as far as the org's partition can tell.
#[derive(Debug)]
pub enum ClaimFailure {
    /// The directory refused (taken, reserved, none left): nothing was claimed.
    Refused(Failure),
    /// The directory did not answer: it may have claimed all the same.
    Unanswered(Failure),
}

/// Work that finished outside the actor (it waited on the network), on its way back in.
#[derive(Debug)]
pub enum Finished {
    Verified {
        org: OrgId,
        subject: ProbeSubject,
        outcome: Result<(), String>,
    },
    Reserved {
        placement: Box<Placement>,
        outcome: Result<Grant, BillingFailure>,
    },
    Dialed {
        call: CallId,
        outcome: Result<(), telephony::DialError>,
        request: Option<bus::Message>,
    },
    /// Billing confirmed a settlement or void (`Some`), or the attempts gave out (`None`).
    Billed {
        call: CallId,
        outcome: Option<CallCommand>,
    },
    /// The directory claimed a number for the org (the number it holds), or did not.
    Claimed {
        claim: Box<PendingClaim>,
        outcome: Result<domain::E164, ClaimFailure>,
    },
    /// The carrier reports on a call.
    Carrier {
        call: CallId,
        event: CarrierEvent,
    },
}

/// What billing's answer to an [`Effect::Reserve`] brings back.
pub fn reserved(answer: Result<LedgerReply, BillingFailure>) -> Result<Grant, BillingFailure> {
    match answer? {
        LedgerReply::Reservation(grant) => Ok(grant),
        _ => Err(BillingFailure::Undecodable),
    }
}

/// What billing's answer to an [`Effect::Bill`] or [`Effect::VoidLateGrant`] confirms: the
/// command that records it for the call, or `Err` to try again.
pub fn billed(action: &Action, answer: Result<LedgerReply, BillingFailure>) -> Result<CallCommand, BillingFailure> {
    let voiding = matches!(action, Action::Void { .. });
    match answer {
        Ok(LedgerReply::Settlement { charged_cents, .. }) => Ok(CallCommand::RecordSettlement { charged_cents }),
        Ok(_) => Ok(CallCommand::RecordVoid),
        // Billing never reserved (it refused, or never heard of the call): nothing to release.
        Err(BillingFailure::ReservationNotFound) if voiding => Ok(CallCommand::RecordVoid),
        // Released already (expired, or voided before): nothing was charged.
        Err(BillingFailure::ReservationClosed) => Ok(CallCommand::RecordVoid),
        Err(failure) => Err(failure),
    }
}
