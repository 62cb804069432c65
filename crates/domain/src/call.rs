//! A call as a state machine: requested -> initiated -> dialing -> ringing -> answered -> ended.
//!
//! A call is recorded as *requested* before its funds are reserved, so that an owner that dies
//! in between knows, on restart, which reservation to release. It becomes a call the API shows
//! once billing granted its funds (*initiated*); a request billing refuses ends as *rejected*
//! and stays in the log for audits only.
//!
//! The call's terminal state is final: carrier events that arrive after it are recorded and
//! change nothing. Timers are not stored; they follow from the state ([`timers`]), so a
//! restart re-arms exactly the timers a call still needs. Side effects (hang up, settle, void)
//! come back from [`decide`] as [`Action`]s for the owner to perform, so a replay never repeats
//! them.

use serde::{Deserialize, Serialize};

use crate::agent::AgentSpec;
use crate::ids::{AgentId, CallId, OrgId, VoipConnectionId};
use crate::ledger::{ChargeKind, Grant, LedgerCommand, ReserveLimit, cost_cents};
use crate::{E164, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    AgentHangup,
    CalleeHangup,
    MaxDuration,
    InsufficientBalance,
    Busy,
    NoAnswer,
    InvalidNumber,
    CarrierError,
    Canceled,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentHangup => "agent_hangup",
            Self::CalleeHangup => "callee_hangup",
            Self::MaxDuration => "max_duration",
            Self::InsufficientBalance => "insufficient_balance",
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
            Self::InvalidNumber => "invalid_number",
            Self::CarrierError => "carrier_error",
            Self::Canceled => "canceled",
        }
    }
}

/// The public status: `in_progress` until the call is `completed` or `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InProgress,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "in_progress" => Ok(Self::InProgress),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            _ => Err(format!("\"{raw}\" is not a valid choice.")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Requested,
    /// Billing refused the funds, or the owner died before it knew: never a call.
    Rejected,
    Initiated,
    Dialing,
    Ringing,
    Answered,
    Ended,
}

/// A reservation outlives its call's maximum duration by this much, so a call that ends on time
/// is always settled before billing releases its funds by itself.
pub const RESERVATION_GRACE_SECONDS: u32 = 600;

/// What a call asks billing to hold before it is dialed: its whole maximum duration at the rate
/// times `charge_multiplier`, under its reservation reference (`None`: an unbilled leg).
pub fn reservation(setup: &CallSetup, charge_multiplier: u32) -> Option<LedgerCommand> {
    Some(LedgerCommand::Reserve {
        reference: setup.reservation_reference.clone()?,
        limit: ReserveLimit::Seconds(setup.max_duration_seconds),
        kind: if setup.test_run_id.is_some() { ChargeKind::TestCall } else { ChargeKind::Call },
        call_id: Some(setup.id.0),
        charge_multiplier,
        expires_in_seconds: setup.max_duration_seconds + RESERVATION_GRACE_SECONDS,
    })
}

/// The funds a call holds, as billing granted them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funds {
    pub granted_cents: i64,
    pub rate_cents_per_minute: u32,
    pub charge_multiplier: u32,
}

impl From<&Grant> for Funds {
    fn from(grant: &Grant) -> Self {
        Self {
            granted_cents: grant.granted_cents,
            rate_cents_per_minute: grant.rate_cents_per_minute,
            charge_multiplier: grant.charge_multiplier,
        }
    }
}

impl Funds {
    /// How long the grant pays for, in milliseconds.
    pub fn talk_limit_ms(&self) -> i64 {
        let per_minute = i64::from(self.rate_cents_per_minute) * i64::from(self.charge_multiplier);
        if per_minute == 0 { i64::MAX } else { self.granted_cents.saturating_mul(60_000) / per_minute }
    }

    pub fn cost_of(&self, seconds: u64) -> i64 {
        cost_cents(seconds, self.rate_cents_per_minute, self.charge_multiplier)
    }
}

/// Everything fixed when a call starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSetup {
    pub id: CallId,
    pub org: OrgId,
    pub direction: Direction,
    pub from: E164,
    pub to: E164,
    /// The saved agent the call runs with, if any (an inline config has none).
    pub agent_id: Option<AgentId>,
    /// The org's VoIP connection that carries the call.
    pub voip_connection_id: Option<VoipConnectionId>,
    /// The configuration the call runs with, as it was when the call started.
    pub agent: AgentSpec,
    pub max_hold_seconds: u32,
    /// The reference the call's funds are reserved, settled and voided under; `None` for a
    /// leg that is not billed (the inbound leg of a test call's SIP loopback).
    pub reservation_reference: Option<String>,
    /// The test-call run this call is the call of.
    pub test_run_id: Option<u64>,
    pub ring_timeout_ms: i64,
    pub max_duration_seconds: u32,
    /// What drives the simulated caller or callee, for test calls.
    pub scenario_prompt: Option<String>,
    /// How long each step of placing the call (billing's grant, then the carrier's acceptance of
    /// the dial) may take before the call is given up on ([`Timer::Placement`]). Calls recorded
    /// before it existed get [`DEFAULT_PLACEMENT_TIMEOUT_MS`].
    #[serde(default = "default_placement_timeout_ms")]
    pub placement_timeout_ms: i64,
    /// What the request said the conversation is about: its variables and language. Calls
    /// recorded before it existed have none.
    #[serde(default)]
    pub context: CallContext,
}

/// What a call's request gives the agent runtime beside the agent: the variables its prompt
/// fills in, and the language it speaks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallContext {
    pub variables: Variables,
    /// A BCP 47 language tag; `None`: [`DEFAULT_LOCALE`].
    pub locale: Option<String>,
}

impl CallContext {
    pub fn locale(&self) -> &str {
        self.locale.as_deref().unwrap_or(DEFAULT_LOCALE)
    }
}

/// How far an outbound call's dial got, as the contract's `outbound_dial_state` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialState {
    /// Not yet sent to the carrier.
    Pending,
    /// The carrier took the dial; nobody answered yet.
    Submitted,
    Answered,
    /// It ended unanswered.
    Failed,
}

impl DialState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Answered => "answered",
            Self::Failed => "failed",
        }
    }
}

/// The language a call is held in when its request names none.
pub const DEFAULT_LOCALE: &str = "en-US";

/// A call's variables: a JSON object of at most [`MAX_VARIABLES`] entries, names of at most
/// [`MAX_VARIABLE_NAME_CHARS`] characters, and [`MAX_VARIABLES_BYTES`] bytes as JSON, so one
/// request cannot grow a call's record without bound.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Variables(serde_json::Map<String, serde_json::Value>);

pub const MAX_VARIABLES: usize = 100;
pub const MAX_VARIABLE_NAME_CHARS: usize = 64;
pub const MAX_VARIABLES_BYTES: usize = 16 * 1024;

impl Variables {
    pub fn parse(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        if map.len() > MAX_VARIABLES {
            return Err(format!("Ensure this dictionary has no more than {MAX_VARIABLES} elements."));
        }
        if let Some(name) = map.keys().find(|k| k.is_empty() || k.chars().count() > MAX_VARIABLE_NAME_CHARS) {
            return Err(format!(
                "\"{name}\" is not a valid variable name (1 to {MAX_VARIABLE_NAME_CHARS} characters)."
            ));
        }
        let bytes = serde_json::to_vec(&map).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_VARIABLES_BYTES {
            return Err(format!("Ensure the variables take no more than {MAX_VARIABLES_BYTES} bytes as JSON."));
        }
        Ok(Self(map))
    }

    /// Parses the variables from their JSON text (as they cross the bus).
    pub fn parse_json(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => Self::parse(map),
            _ => Err("Expected a dictionary of items.".to_owned()),
        }
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a JSON object always serializes")
    }

    /// The `{{name}}` placeholders of `prompt` these variables do not fill, in order, once each.
    pub fn unresolved_in(&self, prompt: &str) -> Vec<String> {
        let mut unresolved: Vec<String> = Vec::new();
        let mut rest = prompt;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            let name = after[..end].trim();
            if !name.is_empty() && !self.0.contains_key(name) && !unresolved.iter().any(|n| n == name) {
                unresolved.push(name.to_owned());
            }
            rest = &after[end + 2..];
        }
        unresolved
    }
}

/// A language tag as requests give it (`en`, `en-US`, `pt-BR`, `zh-Hant-TW`): BCP 47's shape,
/// letters and digits in parts of 1 to 8 joined by `-`, a language of 2 or 3 letters first.
pub fn parse_locale(raw: &str) -> Result<String, String> {
    let invalid = || format!("\"{raw}\" is not a valid language tag (such as en or en-US).");
    if raw.len() > 35 {
        return Err(invalid());
    }
    let mut parts = raw.split('-');
    let language = parts.next().unwrap_or_default();
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid());
    }
    if !parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric())) {
        return Err(invalid());
    }
    Ok(raw.to_owned())
}

/// One end of a range of calls' start times, as list filters give it: a date (`2026-04-20`, the
/// day in UTC) or an ISO 8601 datetime with an offset (`2026-04-20T18:24:10Z`). A date as a
/// range's start is its first millisecond; as its end, its last: both ends are inclusive.
pub fn parse_time_bound(raw: &str, end: bool) -> Result<Timestamp, String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis();
        return Ok(Timestamp(if end { start + 86_400_000 - 1 } else { start }));
    }
    match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(at) => Ok(Timestamp(at.timestamp_millis())),
        Err(_) => Err("Enter a valid date (YYYY-MM-DD) or datetime (ISO 8601 with a UTC offset).".to_owned()),
    }
}

pub const DEFAULT_PLACEMENT_TIMEOUT_MS: i64 = 60_000;

fn default_placement_timeout_ms() -> i64 {
    DEFAULT_PLACEMENT_TIMEOUT_MS
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Agent,
    Callee,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Callee => "callee",
        }
    }
}

/// An established SIP dialog (RFC 3261 §12): what a request within it, such as the BYE that
/// ends it, must carry. Recorded with the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipDialog {
    pub call_id: String,
    /// Our side: the From of our requests.
    pub local_uri: String,
    pub local_tag: String,
    /// The far end: the To of our requests, and its tag.
    pub remote_uri: String,
    pub remote_tag: Option<String>,
    /// Where requests within the dialog go: the far end's Contact.
    pub remote_target: String,
    /// The last CSeq we used; the next request takes the one after.
    pub local_cseq: u32,
}

/// What the carrier (and the media runtime behind it) reports about a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CarrierEvent {
    Ringing,
    /// The far end answered; on a SIP trunk, with the dialog it answered in.
    Answered {
        sip_dialog: Option<SipDialog>,
    },
    HoldStarted,
    HoldEnded,
    Turn {
        speaker: Speaker,
        text: String,
    },
    /// The far end or the carrier ended the call; `sip_code` as SIP reported it, if it did.
    Ended {
        reason: EndReason,
        sip_code: Option<u16>,
    },
}

impl CarrierEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Answered { .. } => "answered",
            Self::HoldStarted => "hold_started",
            Self::HoldEnded => "hold_ended",
            Self::Turn { .. } => "turn",
            Self::Ended { .. } => "ended",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// A call still waiting for its funds or for the carrier to take its dial: whatever was to
    /// answer (billing, the carrier, an append that failed) never did, so the call is given up.
    Placement,
    RingTimeout,
    /// The grant from billing runs out.
    TalkLimit,
    /// The watchdog: no call outlives its maximum duration.
    MaxDuration,
    MaxHold,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEvent {
    Requested {
        setup: Box<CallSetup>,
        at: Timestamp,
    },
    FundsReserved {
        funds: Funds,
        at: Timestamp,
    },
    /// `code` says why, as billing said it, or `interrupted`.
    Rejected {
        code: String,
        at: Timestamp,
    },
    DialAccepted {
        at: Timestamp,
    },
    Ringing {
        at: Timestamp,
    },
    Answered {
        /// What ending the call's SIP dialog takes, for a call on a SIP trunk: kept so that an
        /// owner that restarts can still end the call at the far end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sip_dialog: Option<SipDialog>,
        at: Timestamp,
    },
    HoldStarted {
        at: Timestamp,
    },
    /// `forced` when the engine took the callee off hold at `max_hold_seconds`.
    HoldEnded {
        forced: bool,
        at: Timestamp,
    },
    TranscriptTurn {
        seq: u32,
        speaker: Speaker,
        text: String,
        at: Timestamp,
    },
    Ended {
        status: Status,
        reason: EndReason,
        sip_code: Option<u16>,
        duration_seconds: u64,
        at: Timestamp,
    },
    /// A carrier event after the end, or one that makes no sense now: kept for the record.
    CarrierEventIgnored {
        event: String,
        at: Timestamp,
    },
    Settled {
        charged_cents: i64,
        at: Timestamp,
    },
    Voided {
        at: Timestamp,
    },
}

impl CallEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Requested { .. } => "call_requested",
            Self::FundsReserved { .. } => "funds_reserved",
            Self::Rejected { .. } => "call_rejected",
            Self::DialAccepted { .. } => "dial_accepted",
            Self::Ringing { .. } => "ringing",
            Self::Answered { .. } => "answered",
            Self::HoldStarted { .. } => "hold_started",
            Self::HoldEnded { .. } => "hold_ended",
            Self::TranscriptTurn { .. } => "transcript_turn",
            Self::Ended { .. } => "call_ended",
            Self::CarrierEventIgnored { .. } => "carrier_event_ignored",
            Self::Settled { .. } => "charge_settled",
            Self::Voided { .. } => "reservation_voided",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub status: Status,
    pub reason: EndReason,
    pub sip_code: Option<u16>,
    pub duration_seconds: u64,
}

/// Whether the call's reservation has been closed with billing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Billing {
    Open,
    Settled { charged_cents: i64 },
    Voided,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallState {
    pub setup: CallSetup,
    pub phase: Phase,
    /// What billing granted; set from `initiated` on.
    pub funds: Option<Funds>,
    /// Why the request was rejected, if it was.
    pub rejection: Option<String>,
    pub created_at: Timestamp,
    pub dialed_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub ending: Option<Ending>,
    pub on_hold_since: Option<Timestamp>,
    pub turns: u32,
    pub billing: Billing,
    pub updated_at: Timestamp,
    /// See [`CallEvent::Answered`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_dialog: Option<SipDialog>,
    /// When the call was closed with billing (settled or voided).
    #[serde(default)]
    pub billed_at: Option<Timestamp>,
}

impl CallState {
    pub fn status(&self) -> Status {
        self.ending.as_ref().map_or(Status::InProgress, |e| e.status)
    }

    /// Whether the call is past changing: ended, or rejected before it was a call.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended | Phase::Rejected)
    }

    /// Whether the API shows the call: from the moment its funds were reserved.
    pub fn is_placed(&self) -> bool {
        self.funds.is_some()
    }

    /// Whether the owner still has work to do for this call: it runs, or it is not yet billed.
    pub fn is_active(&self) -> bool {
        !self.is_ended() || self.billing == Billing::Open
    }

    /// Starts a state from the first event of a call's stream.
    pub fn start(event: &CallEvent) -> Option<Self> {
        match event {
            CallEvent::Requested { setup, at } => Some(Self {
                setup: (**setup).clone(),
                phase: Phase::Requested,
                funds: None,
                rejection: None,
                created_at: *at,
                dialed_at: None,
                answered_at: None,
                ended_at: None,
                ending: None,
                on_hold_since: None,
                turns: 0,
                billing: Billing::Open,
                updated_at: *at,
                sip_dialog: None,
                billed_at: None,
            }),
            _ => None,
        }
    }

    pub fn apply(&mut self, event: &CallEvent) {
        match event {
            CallEvent::Requested { .. } => {}
            CallEvent::FundsReserved { funds, at } => {
                self.phase = Phase::Initiated;
                self.funds = Some(funds.clone());
                self.created_at = *at;
            }
            CallEvent::Rejected { code, .. } => {
                self.phase = Phase::Rejected;
                self.rejection = Some(code.clone());
            }
            CallEvent::DialAccepted { at } => {
                self.phase = Phase::Dialing;
                self.dialed_at = Some(*at);
            }
            CallEvent::Ringing { .. } => self.phase = Phase::Ringing,
            CallEvent::Answered { sip_dialog, at } => {
                self.phase = Phase::Answered;
                self.answered_at = Some(*at);
                self.sip_dialog.clone_from(sip_dialog);
            }
            CallEvent::HoldStarted { at } => self.on_hold_since = Some(*at),
            CallEvent::HoldEnded { .. } => self.on_hold_since = None,
            CallEvent::TranscriptTurn { seq, .. } => self.turns = self.turns.max(seq + 1),
            CallEvent::Ended { status, reason, sip_code, duration_seconds, at } => {
                self.phase = Phase::Ended;
                self.ended_at = Some(*at);
                self.on_hold_since = None;
                self.ending = Some(Ending {
                    status: *status,
                    reason: *reason,
                    sip_code: *sip_code,
                    duration_seconds: *duration_seconds,
                });
            }
            CallEvent::CarrierEventIgnored { .. } => {}
            CallEvent::Settled { charged_cents, at } => {
                self.billing = Billing::Settled { charged_cents: *charged_cents };
                self.billed_at = Some(*at);
            }
            CallEvent::Voided { at } => {
                self.billing = Billing::Voided;
                self.billed_at = Some(*at);
            }
        }
        self.updated_at = event_time(event);
    }

    /// How far an outbound call's dial got; `None` for an inbound call.
    pub fn dial_state(&self) -> Option<DialState> {
        if self.setup.direction != Direction::Outbound {
            return None;
        }
        Some(match (self.phase, self.answered_at) {
            (_, Some(_)) => DialState::Answered,
            (Phase::Requested | Phase::Initiated, _) => DialState::Pending,
            (Phase::Dialing | Phase::Ringing, _) => DialState::Submitted,
            (Phase::Answered, None) => DialState::Answered,
            (Phase::Ended | Phase::Rejected, None) => DialState::Failed,
        })
    }

    /// Whether the call is a test call's leg.
    pub fn is_test_call(&self) -> bool {
        self.setup.test_run_id.is_some()
    }

    /// The seconds billing charged the call for, once it confirmed: its talk time when it paid,
    /// none when it did not.
    pub fn billed_seconds(&self) -> Option<u64> {
        match self.billing {
            Billing::Open => None,
            Billing::Settled { charged_cents } if charged_cents > 0 => {
                Some(self.ending.as_ref().map_or(0, |e| e.duration_seconds))
            }
            Billing::Settled { .. } | Billing::Voided => Some(0),
        }
    }

    /// What the call cost, once billing confirmed it.
    pub fn cost_cents(&self) -> Option<i64> {
        match self.billing {
            Billing::Open => None,
            Billing::Settled { charged_cents } => Some(charged_cents),
            Billing::Voided => Some(0),
        }
    }
}

fn event_time(event: &CallEvent) -> Timestamp {
    match event {
        CallEvent::Requested { at, .. }
        | CallEvent::FundsReserved { at, .. }
        | CallEvent::Rejected { at, .. }
        | CallEvent::DialAccepted { at }
        | CallEvent::Ringing { at }
        | CallEvent::Answered { at, .. }
        | CallEvent::HoldStarted { at }
        | CallEvent::HoldEnded { at, .. }
        | CallEvent::TranscriptTurn { at, .. }
        | CallEvent::Ended { at, .. }
        | CallEvent::CarrierEventIgnored { at, .. }
        | CallEvent::Settled { at, .. }
        | CallEvent::Voided { at } => *at,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallCommand {
    /// Billing granted the call's funds.
    FundsReserved(Funds),
    /// Billing refused them (or could not be asked); `code` says why.
    ReservationRefused {
        code: String,
    },
    /// The carrier took the dial request.
    DialAccepted,
    /// The carrier refused to dial.
    DialFailed {
        reason: EndReason,
        sip_code: Option<u16>,
    },
    Carrier(CarrierEvent),
    TimerFired(Timer),
    /// The org asked to end the call.
    Hangup,
    /// The owner restarted and cannot know how far an unconfirmed step got: a request whose
    /// reservation was never confirmed is rejected and its reservation released; a call whose
    /// dial was never confirmed fails rather than risk dialing twice.
    Interrupted,
    RecordSettlement {
        charged_cents: i64,
    },
    RecordVoid,
}

/// A side effect the owner performs after appending the events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Tell the carrier to end the call.
    HangUp,
    /// Charge `cents` against the reservation and release the rest.
    Settle { reference: String, cents: i64 },
    /// Release the whole reservation: the call never connected.
    Void { reference: String },
}

impl Action {
    /// The ledger command a billing action sends; `None` for one that is not billing's.
    pub fn ledger_command(&self) -> Option<LedgerCommand> {
        match self.clone() {
            Self::Settle { reference, cents } => Some(LedgerCommand::Settle { reference, cents }),
            Self::Void { reference } => Some(LedgerCommand::Void { reference }),
            Self::HangUp => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decision {
    pub events: Vec<CallEvent>,
    pub actions: Vec<Action>,
}

/// Decides what a command does to a call. Never fails: a command that does not apply to
/// the call's state decides nothing, or records the carrier event it ignored.
pub fn decide(state: &CallState, command: CallCommand, now: Timestamp) -> Decision {
    if state.is_ended() {
        let ignored = |event: &str| CallEvent::CarrierEventIgnored { event: event.into(), at: now };
        return match command {
            // The carrier took, or is still carrying, a call that is over here (a trunk that
            // answers after the call was hung up): it is torn down at the carrier, whatever
            // the carrier says, since nobody else would end it, and it is not billed.
            CallCommand::Carrier(event) if !matches!(event, CarrierEvent::Ended { .. }) => {
                Decision { events: vec![ignored(event.name())], actions: vec![Action::HangUp] }
            }
            CallCommand::DialAccepted => {
                Decision { events: vec![ignored("dial_accepted")], actions: vec![Action::HangUp] }
            }
            CallCommand::Carrier(event) => Decision { events: vec![ignored(event.name())], actions: vec![] },
            CallCommand::RecordSettlement { charged_cents } if state.billing == Billing::Open => {
                Decision { events: vec![CallEvent::Settled { charged_cents, at: now }], actions: vec![] }
            }
            CallCommand::RecordVoid if state.billing == Billing::Open => {
                Decision { events: vec![CallEvent::Voided { at: now }], actions: vec![] }
            }
            _ => Decision::default(),
        };
    }
    let void = || state.setup.reservation_reference.clone().map(|reference| Action::Void { reference });
    match command {
        CallCommand::FundsReserved(funds) if state.phase == Phase::Requested => {
            Decision { events: vec![CallEvent::FundsReserved { funds, at: now }], actions: vec![] }
        }
        // Billing may have reserved even when it could not answer: release whatever it holds.
        CallCommand::ReservationRefused { code } if state.phase == Phase::Requested => {
            Decision { events: vec![CallEvent::Rejected { code, at: now }], actions: void().into_iter().collect() }
        }
        CallCommand::Interrupted if state.phase == Phase::Requested => Decision {
            events: vec![CallEvent::Rejected { code: "interrupted".into(), at: now }],
            actions: void().into_iter().collect(),
        },
        CallCommand::DialAccepted if state.phase == Phase::Initiated => {
            Decision { events: vec![CallEvent::DialAccepted { at: now }], actions: vec![] }
        }
        CallCommand::DialFailed { reason, sip_code } => end(state, reason, sip_code, now, false),
        CallCommand::Interrupted if state.phase == Phase::Initiated => {
            end(state, EndReason::CarrierError, None, now, false)
        }
        // A carrier can report on a call before its acceptance of the dial is recorded (a trunk
        // that answers at once): the report proves the acceptance, which is recorded first.
        CallCommand::Carrier(event) if state.phase == Phase::Initiated => {
            let accepted = CallEvent::DialAccepted { at: now };
            let mut dialing = state.clone();
            dialing.apply(&accepted);
            let mut decision = carrier(&dialing, event, now);
            decision.events.insert(0, accepted);
            decision
        }
        CallCommand::Carrier(event) => carrier(state, event, now),
        CallCommand::TimerFired(timer) if is_due(state, timer, now) => match timer {
            Timer::Placement if state.phase == Phase::Requested => Decision {
                events: vec![CallEvent::Rejected { code: "placement_timeout".into(), at: now }],
                actions: void().into_iter().collect(),
            },
            Timer::Placement => end(state, EndReason::CarrierError, None, now, true),
            Timer::RingTimeout => end(state, EndReason::NoAnswer, None, now, true),
            Timer::TalkLimit => end(state, EndReason::InsufficientBalance, None, now, true),
            Timer::MaxDuration => end(state, EndReason::MaxDuration, None, now, true),
            Timer::MaxHold => {
                Decision { events: vec![CallEvent::HoldEnded { forced: true, at: now }], actions: vec![] }
            }
        },
        CallCommand::Hangup => {
            let reason = if state.phase == Phase::Answered { EndReason::AgentHangup } else { EndReason::Canceled };
            end(state, reason, None, now, true)
        }
        _ => Decision::default(),
    }
}

fn carrier(state: &CallState, event: CarrierEvent, now: Timestamp) -> Decision {
    let record = |e: CallEvent| Decision { events: vec![e], actions: vec![] };
    match (&event, state.phase) {
        (CarrierEvent::Ringing, Phase::Dialing) => record(CallEvent::Ringing { at: now }),
        (CarrierEvent::Answered { sip_dialog }, Phase::Dialing | Phase::Ringing) => {
            record(CallEvent::Answered { sip_dialog: sip_dialog.clone(), at: now })
        }
        (CarrierEvent::HoldStarted, Phase::Answered) if state.on_hold_since.is_none() => {
            record(CallEvent::HoldStarted { at: now })
        }
        (CarrierEvent::HoldEnded, Phase::Answered) if state.on_hold_since.is_some() => {
            record(CallEvent::HoldEnded { forced: false, at: now })
        }
        (CarrierEvent::Turn { speaker, text }, Phase::Answered) => {
            record(CallEvent::TranscriptTurn { seq: state.turns, speaker: *speaker, text: text.clone(), at: now })
        }
        (CarrierEvent::Ended { reason, sip_code }, _) => end(state, *reason, *sip_code, now, false),
        _ => record(CallEvent::CarrierEventIgnored { event: event.name().into(), at: now }),
    }
}

/// Ends the call; `hang_up` when the engine, not the far end, ends it.
fn end(state: &CallState, reason: EndReason, sip_code: Option<u16>, now: Timestamp, hang_up: bool) -> Decision {
    let connected = state.answered_at.is_some();
    let duration_seconds = state.answered_at.map_or(0, |answered| {
        let ms = (now.0 - answered.0).max(0) as u64;
        ms.div_ceil(1000)
    });
    // A call that was established ends normally unless the watchdog had to end it.
    let status = if connected && reason != EndReason::MaxDuration { Status::Completed } else { Status::Failed };
    let mut actions = Vec::new();
    // Also before the carrier accepted the dial: the dial may be in flight, and whatever the
    // carrier answers later, the call must not go on there.
    if hang_up {
        actions.push(Action::HangUp);
    }
    let mut events = vec![CallEvent::Ended { status, reason, sip_code, duration_seconds, at: now }];
    match settlement(state, duration_seconds) {
        Some(action) => actions.push(action),
        // Nothing to bill: the call is closed with billing at once.
        None => events.push(CallEvent::Voided { at: now }),
    }
    Decision { events, actions }
}

fn settlement(state: &CallState, duration_seconds: u64) -> Option<Action> {
    let reference = state.setup.reservation_reference.clone()?;
    Some(match (&state.funds, state.answered_at) {
        (Some(funds), Some(_)) => Action::Settle { reference, cents: funds.cost_of(duration_seconds) },
        _ => Action::Void { reference },
    })
}

/// What a carrier's report on a call that the owner no longer holds asks for. Only ended,
/// billed calls leave the owner's memory; one the carrier still reports as taken or under way
/// is torn down there, as [`decide`] does for an ended call in memory.
pub fn teardown_of_forgotten(command: &CallCommand) -> Option<Action> {
    match command {
        CallCommand::DialAccepted => Some(Action::HangUp),
        CallCommand::Carrier(event) if !matches!(event, CarrierEvent::Ended { .. }) => Some(Action::HangUp),
        _ => None,
    }
}

/// What an ended or rejected call still owes billing, for an owner that restarted before
/// billing confirmed.
pub fn pending_settlement(state: &CallState) -> Option<Action> {
    if !state.is_ended() || state.billing != Billing::Open {
        return None;
    }
    settlement(state, state.ending.as_ref().map_or(0, |e| e.duration_seconds))
}

/// The timers a call needs now, with their deadlines.
pub fn timers(state: &CallState) -> Vec<(Timer, Timestamp)> {
    if state.is_ended() {
        return Vec::new();
    }
    let setup = &state.setup;
    let mut timers =
        vec![(Timer::MaxDuration, Timestamp(state.created_at.0 + i64::from(setup.max_duration_seconds) * 1000))];
    match (state.phase, state.dialed_at, state.answered_at) {
        // `created_at` is when the call was requested, then when its funds were granted: each
        // step has the whole window.
        (Phase::Requested | Phase::Initiated, _, _) => {
            timers.push((Timer::Placement, Timestamp(state.created_at.0.saturating_add(setup.placement_timeout_ms))));
        }
        (Phase::Dialing | Phase::Ringing, Some(dialed), _) => {
            timers.push((Timer::RingTimeout, Timestamp(dialed.0 + setup.ring_timeout_ms)));
        }
        (Phase::Answered, _, Some(answered)) => {
            let talk_limit_ms = state.funds.as_ref().map_or(i64::MAX, Funds::talk_limit_ms);
            timers.push((Timer::TalkLimit, Timestamp(answered.0.saturating_add(talk_limit_ms))));
        }
        _ => {}
    }
    if let Some(since) = state.on_hold_since {
        timers.push((Timer::MaxHold, Timestamp(since.0 + i64::from(setup.max_hold_seconds) * 1000)));
    }
    timers
}

fn is_due(state: &CallState, timer: Timer, now: Timestamp) -> bool {
    timers(state).iter().any(|(t, at)| *t == timer && *at <= now)
}
