//! An org's prepaid ledger: top-ups, reservations held for calls, and their settlement.
//!
//! Money is integer cents. Every event carries double-entry `entries` that sum to zero, and
//! the balances are nothing but the sums of those entries, so the books always balance. A call
//! reserves funds before it is placed (a pending transfer), and its end settles the actual
//! cost and releases the rest, as TigerBeetle's pending/post/void transfers do; so concurrent
//! calls can never spend more than the org has.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::funding::{
    self, AccountView, AutoReloadPatch, AutoReloadSettings, Charge, ChargeOutcome, ChargePurpose, ChargeState,
    ChargeView, Funding,
};
use crate::ids::Ctx;

/// The rate an org pays unless the admin sets another: 10 cents a minute, prorated per second.
pub const DEFAULT_RATE_CENTS_PER_MINUTE: u32 = 10;
/// The most a single top-up or reservation may move: $1,000,000.
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000;
pub const MAX_RATE_CENTS_PER_MINUTE: u32 = 10_000;
/// A reservation no one settles is released after at most this long.
pub const MAX_RESERVATION_SECONDS: u32 = 86_400;
pub const MAX_REFERENCE_CHARS: usize = 128;
pub const MAX_CHARGE_MULTIPLIER: u32 = 10;

/// The cost of a call: `seconds` at `rate` times `multiplier`, rounded up to the whole cent.
pub fn cost_cents(seconds: u64, rate_cents_per_minute: u32, multiplier: u32) -> i64 {
    let per_minute = u128::from(rate_cents_per_minute) * u128::from(multiplier);
    (u128::from(seconds) * per_minute).div_ceil(60) as i64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// The org's funds that nothing holds.
    Available,
    /// The org's funds held by open reservations.
    Reserved,
    /// Where top-ups come from (the payment provider).
    Funding,
    /// Where charges go.
    Revenue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub account: Account,
    pub amount_cents: i64,
}

fn transfer(from: Account, to: Account, cents: i64) -> [Entry; 2] {
    [Entry { account: from, amount_cents: -cents }, Entry { account: to, amount_cents: cents }]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeKind {
    Call,
    TestCall,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub reference: String,
    pub granted_cents: i64,
    pub kind: ChargeKind,
    pub call_id: Option<u64>,
    /// The rate times the multiplier, fixed when the funds were reserved.
    pub rate_cents_per_minute: u32,
    pub charge_multiplier: u32,
    pub expires_at: Timestamp,
}

/// How a reservation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Closed {
    Settled { charged_cents: i64, released_cents: i64, transaction_id: Option<u64> },
    Released { released_cents: i64, expired: bool },
}

/// A posted movement, as the transactions API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: u64,
    pub kind: TransactionKind,
    /// Signed: top-ups are positive, charges negative.
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub reference: String,
    pub call_id: Option<u64>,
    pub description: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// Funds the admin added or took away (an adjustment).
    TopUp,
    CallCharge,
    TestCallCharge,
    /// A top-up the org paid for through the payment provider.
    ManualTopUp,
    /// Auto-reload's credit, paid through the payment provider.
    AutoReload,
}

impl TransactionKind {
    const ALL: [Self; 5] = [Self::TopUp, Self::CallCharge, Self::TestCallCharge, Self::ManualTopUp, Self::AutoReload];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::CallCharge => "call_charge",
            Self::TestCallCharge => "test_call_charge",
            Self::ManualTopUp => "manual_topup",
            Self::AutoReload => "auto_reload",
        }
    }

    /// The kind [`TransactionKind::as_str`] names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// The sums of every account's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances(pub BTreeMap<Account, i64>);

impl Balances {
    pub fn apply(&mut self, entries: &[Entry]) {
        for e in entries {
            *self.0.entry(e.account).or_default() += e.amount_cents;
        }
    }

    pub fn of(&self, account: Account) -> i64 {
        self.0.get(&account).copied().unwrap_or(0)
    }

    pub fn available_cents(&self) -> i64 {
        self.of(Account::Available)
    }

    pub fn reserved_cents(&self) -> i64 {
        self.of(Account::Reserved)
    }

    /// The org's funds: available plus reserved.
    pub fn balance_cents(&self) -> i64 {
        self.available_cents() + self.reserved_cents()
    }
}

/// What deciding a ledger command needs at hand: the balances, the rate and the open
/// reservations. It stays small however long the org has been paying. Everything else the
/// ledger ever recorded (how each reservation closed, each top-up) is history, looked up by
/// the reference a command names (see [`Recorded`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerState {
    pub balances: Balances,
    pub rate_cents_per_minute: Option<u32>,
    pub open: BTreeMap<String, Reservation>,
    /// Auto-reload, charges in flight, and what the account shows of its funding.
    pub funding: Funding,
}

/// The rate an org pays: the one the admin set, or the default.
pub fn rate_or_default(rate_cents_per_minute: Option<u32>) -> u32 {
    rate_cents_per_minute.unwrap_or(DEFAULT_RATE_CENTS_PER_MINUTE)
}

impl LedgerState {
    pub fn rate(&self) -> u32 {
        rate_or_default(self.rate_cents_per_minute)
    }

    pub fn apply(&mut self, event: &LedgerEvent) {
        self.balances.apply(event.entries());
        self.funding.apply(event);
        match event {
            LedgerEvent::FundsReserved { reservation, .. } => {
                self.open.insert(reservation.reference.clone(), reservation.clone());
            }
            LedgerEvent::ReservationSettled { reference, .. } | LedgerEvent::ReservationReleased { reference, .. } => {
                self.open.remove(reference);
            }
            LedgerEvent::RateSet { cents_per_minute, .. } => self.rate_cents_per_minute = Some(*cents_per_minute),
            LedgerEvent::TopUpPosted { .. }
            | LedgerEvent::AutoReloadSet { .. }
            | LedgerEvent::ChargeRequested { .. }
            | LedgerEvent::ChargeSucceeded { .. }
            | LedgerEvent::ChargeDeclined { .. } => {}
        }
    }

    /// The account as the API shows it at `now`.
    pub fn account(&self, now: Timestamp) -> AccountView {
        AccountView::of(&self.balances, self.rate(), &self.funding, now)
    }
}

/// What the ledger recorded under one reference: how the reservation of that reference closed,
/// and the top-up posted with it (reservations and top-ups name theirs apart, so a reference
/// may have both). Commands are idempotent by reference, so a decision needs the record of the
/// reference its command names; the owner keeps records on disk and reads that one first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub closed: Option<Closed>,
    pub top_up: Option<Transaction>,
    /// The charge a top-up's idempotency key asked for, and where it stands.
    #[serde(default)]
    pub charge: Option<ChargeView>,
}

impl Recorded {
    /// Folds an event into the record of [`LedgerEvent::reference`].
    pub fn apply(&mut self, event: &LedgerEvent) {
        match event {
            LedgerEvent::TopUpPosted { transaction, .. } => self.top_up = Some(transaction.clone()),
            LedgerEvent::ReservationSettled { charged_cents, released_cents, transaction, .. } => {
                self.closed = Some(Closed::Settled {
                    charged_cents: *charged_cents,
                    released_cents: *released_cents,
                    transaction_id: transaction.as_ref().map(|t| t.id),
                });
            }
            LedgerEvent::ReservationReleased { released_cents, expired, .. } => {
                self.closed = Some(Closed::Released { released_cents: *released_cents, expired: *expired });
            }
            LedgerEvent::ChargeRequested { charge, .. } if charge.purpose == ChargePurpose::TopUp => {
                self.charge = Some(ChargeView {
                    intent_id: charge.intent_id.clone(),
                    amount_cents: charge.amount_cents,
                    state: ChargeState::Pending,
                });
            }
            LedgerEvent::ChargeSucceeded { charge, transaction_id, .. } if charge.purpose == ChargePurpose::TopUp => {
                if let Some(view) = &mut self.charge {
                    view.state = ChargeState::Succeeded { transaction_id: *transaction_id };
                }
            }
            LedgerEvent::ChargeDeclined { charge, code, message, .. } if charge.purpose == ChargePurpose::TopUp => {
                if let Some(view) = &mut self.charge {
                    view.state = ChargeState::Declined { code: code.clone(), message: message.clone() };
                }
            }
            _ => {}
        }
    }
}

/// How much a reservation may hold at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveLimit {
    Cents(i64),
    /// The cost of this many seconds at the org's rate times the multiplier: what a caller that
    /// does not know the rate asks for.
    Seconds(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerCommand {
    Reserve {
        reference: String,
        limit: ReserveLimit,
        kind: ChargeKind,
        call_id: Option<u64>,
        charge_multiplier: u32,
        expires_in_seconds: u32,
    },
    /// Posts `cents` (at most the grant) and releases the rest.
    Settle {
        reference: String,
        cents: i64,
    },
    /// Releases the whole reservation.
    Void {
        reference: String,
    },
    /// Releases every reservation past its expiry.
    Expire,
    TopUp {
        reference: String,
        cents: i64,
        description: String,
    },
    SetRate {
        cents_per_minute: u32,
    },
    /// Charges `cents` through the payment provider and credits them once it succeeds; at most
    /// once per `idempotency_key`.
    RequestTopUp {
        cents: i64,
        idempotency_key: Option<String>,
        payment_method_id: Option<String>,
    },
    /// Changes the auto-reload settings.
    SetAutoReload(AutoReloadPatch),
    /// What the provider answered a recorded charge (from the ledger's owner, never the bus).
    RecordCharge {
        intent_id: String,
        outcome: ChargeOutcome,
    },
}

impl LedgerCommand {
    /// The reference whose [`Recorded`] history deciding this command needs.
    pub fn reference(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::Reserve { reference, .. }
            | Self::Settle { reference, .. }
            | Self::Void { reference }
            | Self::TopUp { reference, .. } => Some(Cow::Borrowed(reference)),
            Self::RequestTopUp { idempotency_key, .. } => {
                idempotency_key.as_deref().map(|key| Cow::Owned(funding::top_up_reference(key)))
            }
            Self::Expire | Self::SetRate { .. } | Self::SetAutoReload(_) | Self::RecordCharge { .. } => None,
        }
    }
}

/// What the ledger answers a command or a query with, once it is decided (and, for a command,
/// durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerReply {
    /// A reserve: the funds held (a repeated reserve answers the same grant).
    Reservation(Grant),
    /// A settle: what was charged and what released.
    Settlement { charged_cents: i64, released_cents: i64, transaction_id: Option<u64> },
    /// A top-up: its transaction.
    Transaction(Transaction),
    /// A rate set, or a balance asked for.
    Balance(Balance),
    /// A page of transactions, newest first.
    Transactions { transactions: Vec<Transaction>, total: u64 },
    /// A void (or an expiry): nothing to report.
    Done,
    /// A top-up asked for: its charge and where it stands.
    Charge(ChargeView),
    /// Auto-reload set, or the account asked for.
    Account(Box<AccountView>),
}

/// What a reservation granted, as its caller needs it to run the call it pays for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub reference: String,
    pub granted_cents: i64,
    /// The rate fixed at the reservation (before the multiplier).
    pub rate_cents_per_minute: u32,
    pub charge_multiplier: u32,
    pub expires_at: Timestamp,
}

impl From<&Reservation> for Grant {
    fn from(r: &Reservation) -> Self {
        Self {
            reference: r.reference.clone(),
            granted_cents: r.granted_cents,
            rate_cents_per_minute: r.rate_cents_per_minute,
            charge_multiplier: r.charge_multiplier,
            expires_at: r.expires_at,
        }
    }
}

/// An org's funds as the balance API shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    pub balance_cents: i64,
    pub reserved_cents: i64,
    pub available_cents: i64,
    pub rate_cents_per_minute: u32,
}

impl Balance {
    pub fn of(balances: &Balances, rate_cents_per_minute: u32) -> Self {
        Self {
            balance_cents: balances.balance_cents(),
            reserved_cents: balances.reserved_cents(),
            available_cents: balances.available_cents(),
            rate_cents_per_minute,
        }
    }
}

/// A read of the ledger, answered from its projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerQuery {
    Balance,
    /// The account as `GET /v1/billing` shows it.
    Account,
    /// Transactions newest first: `limit` of them after skipping `offset`.
    Transactions {
        limit: u32,
        offset: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerEvent {
    TopUpPosted {
        transaction: Transaction,
        entries: Vec<Entry>,
    },
    FundsReserved {
        reservation: Reservation,
        entries: Vec<Entry>,
        at: Timestamp,
    },
    ReservationSettled {
        reference: String,
        charged_cents: i64,
        released_cents: i64,
        /// Absent when nothing was charged.
        transaction: Option<Transaction>,
        entries: Vec<Entry>,
        at: Timestamp,
    },
    ReservationReleased {
        reference: String,
        released_cents: i64,
        expired: bool,
        entries: Vec<Entry>,
        at: Timestamp,
    },
    RateSet {
        cents_per_minute: u32,
        at: Timestamp,
    },
    AutoReloadSet {
        settings: AutoReloadSettings,
        at: Timestamp,
    },
    /// A charge decided: the owner performs it once this is durable.
    ChargeRequested {
        charge: Charge,
        at: Timestamp,
    },
    /// The provider took the charge; the credit (`top_up_posted`, transaction
    /// `transaction_id`) is in the same append.
    ChargeSucceeded {
        charge: Charge,
        provider_reference: String,
        transaction_id: u64,
        at: Timestamp,
    },
    ChargeDeclined {
        charge: Charge,
        code: String,
        message: String,
        at: Timestamp,
    },
}

impl LedgerEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::TopUpPosted { .. } => "top_up_posted",
            Self::FundsReserved { .. } => "funds_reserved",
            Self::ReservationSettled { .. } => "reservation_settled",
            Self::ReservationReleased { .. } => "reservation_released",
            Self::RateSet { .. } => "rate_set",
            Self::AutoReloadSet { .. } => "auto_reload_set",
            Self::ChargeRequested { .. } => "charge_requested",
            Self::ChargeSucceeded { .. } => "charge_succeeded",
            Self::ChargeDeclined { .. } => "charge_declined",
        }
    }

    pub fn entries(&self) -> &[Entry] {
        match self {
            Self::TopUpPosted { entries, .. }
            | Self::FundsReserved { entries, .. }
            | Self::ReservationSettled { entries, .. }
            | Self::ReservationReleased { entries, .. } => entries,
            Self::RateSet { .. }
            | Self::AutoReloadSet { .. }
            | Self::ChargeRequested { .. }
            | Self::ChargeSucceeded { .. }
            | Self::ChargeDeclined { .. } => &[],
        }
    }

    /// The reference whose [`Recorded`] history this event adds to, if it adds any.
    pub fn recorded_under(&self) -> Option<&str> {
        match self {
            Self::TopUpPosted { transaction, .. } => Some(&transaction.reference),
            Self::ReservationSettled { reference, .. } | Self::ReservationReleased { reference, .. } => Some(reference),
            Self::ChargeRequested { charge, .. }
            | Self::ChargeSucceeded { charge, .. }
            | Self::ChargeDeclined { charge, .. } => charge.reference.as_deref(),
            Self::FundsReserved { .. } | Self::RateSet { .. } | Self::AutoReloadSet { .. } => None,
        }
    }

    pub fn transaction(&self) -> Option<&Transaction> {
        match self {
            Self::TopUpPosted { transaction, .. } => Some(transaction),
            Self::ReservationSettled { transaction, .. } => transaction.as_ref(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("Insufficient balance.")]
    InsufficientBalance,
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("reference {0} was used for a different top-up")]
    ReferenceReused(String),
    #[error("reservation {0} is already closed")]
    ReservationClosed(String),
    #[error("no reservation {0}")]
    UnknownReservation(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::Invalid { field, message: message.into() }
}

fn check_reference(reference: &str) -> Result<(), LedgerError> {
    if reference.trim().is_empty() || reference.chars().count() > MAX_REFERENCE_CHARS {
        return Err(invalid("reference", format!("A reference is 1 to {MAX_REFERENCE_CHARS} characters.")));
    }
    Ok(())
}

fn check_amount(field: &'static str, cents: i64, min: i64) -> Result<(), LedgerError> {
    if cents < min || cents > MAX_AMOUNT_CENTS {
        return Err(invalid(field, format!("Ensure this value is between {min} and {MAX_AMOUNT_CENTS}.")));
    }
    Ok(())
}

/// Decides a ledger command, given what was recorded under the reference it names (the
/// default record for a new reference, or a command that names none). Commands are idempotent
/// by reference: a repeated top-up, reserve, settle or void changes nothing (`Ok(vec![])`); the
/// caller answers from the state and the record.
///
/// After any command, auto-reload may be due (the available balance below its minimum, see
/// [`Funding::reload_due`]): then the events end with the charge it asks for, which the owner
/// performs once they are durable.
pub fn decide(
    state: &LedgerState,
    recorded: &Recorded,
    command: LedgerCommand,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<LedgerEvent>, LedgerError> {
    let mut events = decide_command(state, recorded, command, ctx)?;
    let settings_set = events.iter().any(|e| matches!(e, LedgerEvent::AutoReloadSet { .. }));
    if state.funding.settings.enabled || settings_set {
        let (mut balances, mut funding) = (state.balances.clone(), state.funding.clone());
        for event in &events {
            balances.apply(event.entries());
            funding.apply(event);
        }
        let at = ctx.now;
        if let Some(charge) = funding.reload(&balances, at, || intent_id(ctx)) {
            events.push(LedgerEvent::ChargeRequested { charge, at });
        }
    }
    Ok(events)
}

/// A new payment intent's id, which the provider takes as the charge's idempotency key.
fn intent_id(ctx: &mut Ctx<'_>) -> String {
    format!("pi_{}", ctx.ids.next_id())
}

fn decide_command(
    state: &LedgerState,
    recorded: &Recorded,
    command: LedgerCommand,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<LedgerEvent>, LedgerError> {
    let at = ctx.now;
    match command {
        LedgerCommand::TopUp { reference, cents, description } => {
            check_reference(&reference)?;
            // Negative: an adjustment that takes funds away, never more than are available.
            if cents == 0 || cents.abs() > MAX_AMOUNT_CENTS {
                return Err(invalid(
                    "amount_cents",
                    format!("Ensure this value is between -{MAX_AMOUNT_CENTS} and {MAX_AMOUNT_CENTS}, and not 0."),
                ));
            }
            if let Some(existing) = &recorded.top_up {
                return if existing.amount_cents == cents {
                    Ok(vec![])
                } else {
                    Err(LedgerError::ReferenceReused(reference))
                };
            }
            if cents < 0 && state.balances.available_cents() < -cents {
                return Err(LedgerError::InsufficientBalance);
            }
            let transaction = Transaction {
                id: ctx.ids.next_id(),
                kind: TransactionKind::TopUp,
                amount_cents: cents,
                balance_after_cents: state.balances.balance_cents() + cents,
                reference,
                call_id: None,
                description,
                created_at: at,
            };
            Ok(vec![LedgerEvent::TopUpPosted {
                transaction,
                entries: transfer(Account::Funding, Account::Available, cents).to_vec(),
            }])
        }
        LedgerCommand::Reserve { reference, limit, kind, call_id, charge_multiplier, expires_in_seconds } => {
            check_reference(&reference)?;
            let max_cents = match limit {
                ReserveLimit::Cents(cents) => cents,
                ReserveLimit::Seconds(seconds) => {
                    cost_cents(seconds.into(), state.rate(), charge_multiplier.max(1)).min(MAX_AMOUNT_CENTS)
                }
            };
            check_amount("max_cents", max_cents, 1)?;
            if !(1..=MAX_CHARGE_MULTIPLIER).contains(&charge_multiplier) {
                return Err(invalid(
                    "charge_multiplier",
                    format!("Ensure this value is between 1 and {MAX_CHARGE_MULTIPLIER}."),
                ));
            }
            if !(1..=MAX_RESERVATION_SECONDS).contains(&expires_in_seconds) {
                return Err(invalid(
                    "expires_in_seconds",
                    format!("Ensure this value is between 1 and {MAX_RESERVATION_SECONDS}."),
                ));
            }
            if state.open.contains_key(&reference) {
                return Ok(vec![]);
            }
            if recorded.closed.is_some() {
                return Err(LedgerError::ReservationClosed(reference));
            }
            let available = state.balances.available_cents();
            if available <= 0 {
                return Err(LedgerError::InsufficientBalance);
            }
            let granted_cents = max_cents.min(available);
            let reservation = Reservation {
                reference,
                granted_cents,
                kind,
                call_id,
                rate_cents_per_minute: state.rate(),
                charge_multiplier,
                expires_at: Timestamp(at.0 + i64::from(expires_in_seconds) * 1000),
            };
            let entries = transfer(Account::Available, Account::Reserved, granted_cents).to_vec();
            Ok(vec![LedgerEvent::FundsReserved { reservation, entries, at }])
        }
        LedgerCommand::Settle { reference, cents } => {
            check_amount("cents", cents, 0)?;
            let Some(reservation) = state.open.get(&reference) else {
                return match &recorded.closed {
                    Some(Closed::Settled { .. }) => Ok(vec![]),
                    Some(Closed::Released { .. }) => Err(LedgerError::ReservationClosed(reference)),
                    None => Err(LedgerError::UnknownReservation(reference)),
                };
            };
            let charged_cents = cents.min(reservation.granted_cents);
            let released_cents = reservation.granted_cents - charged_cents;
            let mut entries = Vec::with_capacity(4);
            entries.extend(transfer(Account::Reserved, Account::Revenue, charged_cents));
            entries.extend(transfer(Account::Reserved, Account::Available, released_cents));
            let transaction = (charged_cents > 0).then(|| Transaction {
                id: ctx.ids.next_id(),
                kind: match reservation.kind {
                    ChargeKind::Call => TransactionKind::CallCharge,
                    ChargeKind::TestCall => TransactionKind::TestCallCharge,
                },
                amount_cents: -charged_cents,
                balance_after_cents: state.balances.balance_cents() - charged_cents,
                reference: reference.clone(),
                call_id: reservation.call_id,
                description: match reservation.kind {
                    ChargeKind::Call => format!("Call at {} c/min", reservation.rate_cents_per_minute),
                    ChargeKind::TestCall => format!(
                        "Test call at {} c/min x{}",
                        reservation.rate_cents_per_minute, reservation.charge_multiplier
                    ),
                },
                created_at: at,
            });
            Ok(vec![LedgerEvent::ReservationSettled {
                reference,
                charged_cents,
                released_cents,
                transaction,
                entries,
                at,
            }])
        }
        LedgerCommand::Void { reference } => match state.open.get(&reference) {
            Some(r) => Ok(vec![release(r, false, at)]),
            None if recorded.closed.is_some() => Ok(vec![]),
            None => Err(LedgerError::UnknownReservation(reference)),
        },
        LedgerCommand::Expire => {
            Ok(state.open.values().filter(|r| r.expires_at <= at).map(|r| release(r, true, at)).collect())
        }
        LedgerCommand::SetRate { cents_per_minute } => {
            if !(1..=MAX_RATE_CENTS_PER_MINUTE).contains(&cents_per_minute) {
                return Err(invalid(
                    "rate_cents_per_minute",
                    format!("Ensure this value is between 1 and {MAX_RATE_CENTS_PER_MINUTE}."),
                ));
            }
            Ok(vec![LedgerEvent::RateSet { cents_per_minute, at }])
        }
        LedgerCommand::RequestTopUp { cents, idempotency_key, payment_method_id } => {
            check_amount_between("amount_cents", cents, funding::MIN_TOP_UP_CENTS, funding::MAX_TOP_UP_CENTS)?;
            for (field, value) in [("idempotency_key", &idempotency_key), ("payment_method_id", &payment_method_id)] {
                if let Some(value) = value
                    && (value.trim().is_empty() || value.chars().count() > funding::MAX_KEY_CHARS)
                {
                    return Err(invalid(
                        field,
                        format!("Ensure this field has 1 to {} characters.", funding::MAX_KEY_CHARS),
                    ));
                }
            }
            if let Some(existing) = &recorded.charge {
                return if existing.amount_cents == cents {
                    Ok(vec![])
                } else {
                    Err(LedgerError::ReferenceReused(funding::top_up_reference(
                        idempotency_key.as_deref().unwrap_or(""),
                    )))
                };
            }
            let charge = Charge {
                intent_id: intent_id(ctx),
                purpose: ChargePurpose::TopUp,
                amount_cents: cents,
                payment_method_id,
                reference: idempotency_key.as_deref().map(funding::top_up_reference),
            };
            Ok(vec![LedgerEvent::ChargeRequested { charge, at }])
        }
        LedgerCommand::SetAutoReload(patch) => {
            let settings =
                state.funding.settings.patched(&patch).map_err(|(field, message)| invalid(field, message))?;
            if settings == state.funding.settings && state.funding.declines.is_none() {
                return Ok(vec![]);
            }
            Ok(vec![LedgerEvent::AutoReloadSet { settings, at }])
        }
        LedgerCommand::RecordCharge { intent_id, outcome } => {
            // Only a pending charge takes an outcome: a repeated or late report changes nothing.
            let Some(charge) = state.funding.pending.get(&intent_id).cloned() else { return Ok(vec![]) };
            Ok(match outcome {
                ChargeOutcome::Succeeded { provider_reference } => {
                    let transaction = Transaction {
                        id: ctx.ids.next_id(),
                        kind: match charge.purpose {
                            ChargePurpose::TopUp => TransactionKind::ManualTopUp,
                            ChargePurpose::AutoReload => TransactionKind::AutoReload,
                        },
                        amount_cents: charge.amount_cents,
                        balance_after_cents: state.balances.balance_cents() + charge.amount_cents,
                        reference: intent_id,
                        call_id: None,
                        description: match charge.purpose {
                            ChargePurpose::TopUp => "Top-up".to_owned(),
                            ChargePurpose::AutoReload => "Automatic top-up".to_owned(),
                        },
                        created_at: at,
                    };
                    let entries = transfer(Account::Funding, Account::Available, charge.amount_cents).to_vec();
                    vec![
                        LedgerEvent::ChargeSucceeded { charge, provider_reference, transaction_id: transaction.id, at },
                        LedgerEvent::TopUpPosted { transaction, entries },
                    ]
                }
                ChargeOutcome::Declined { code, message } => {
                    vec![LedgerEvent::ChargeDeclined { charge, code, message, at }]
                }
            })
        }
    }
}

fn check_amount_between(field: &'static str, cents: i64, min: i64, max: i64) -> Result<(), LedgerError> {
    if cents < min || cents > max {
        return Err(invalid(field, format!("Ensure this value is between {min} and {max}.")));
    }
    Ok(())
}

fn release(r: &Reservation, expired: bool, at: Timestamp) -> LedgerEvent {
    LedgerEvent::ReservationReleased {
        reference: r.reference.clone(),
        released_cents: r.granted_cents,
        expired,
        entries: transfer(Account::Reserved, Account::Available, r.granted_cents).to_vec(),
        at,
    }
}

/// The earliest expiry among open reservations, for the owner's timer.
pub fn next_expiry(state: &LedgerState) -> Option<Timestamp> {
    state.open.values().map(|r| r.expires_at).min()
}
