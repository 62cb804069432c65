//! Billing messages to and from the domain's ledger, both ways: billing reads typed requests
//! and answers typed replies ([`billing_command`], [`billing_query`], [`billing_reply`]), and
//! its callers send typed commands and read typed answers ([`billing_request`],
//! [`billing_response`]). Only this module knows the protobuf shape of either.

use domain::FieldErrors;
use domain::Timestamp;
use domain::funding::{
    AccountView, AutoReloadPatch, AutoReloadSettings, AutoReloadStatus, ChargeState, ChargeView, Credit, Declines,
    MonthSpend,
};
use domain::ids::OrgId;
use domain::ledger::{
    Balance, ChargeKind, Grant, LedgerCommand, LedgerError, LedgerQuery, LedgerReply, ReserveLimit, Transaction,
    TransactionKind,
};

use crate::pb::{self, Failure, FailureKind, billing_command::Kind, billing_reply::Result as R};

/// Why billing did not carry out a request, as billing answers it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// A rule of the ledger refused the command.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger's storage failed; the request may be retried.
    #[error("the ledger is unavailable")]
    Unavailable,
    /// The message is no billing request at all (the text says what it lacks).
    #[error("{0}")]
    Undecodable(&'static str),
    /// A field of the request does not parse.
    #[error("{0}")]
    Invalid(FieldErrors),
}

/// Why a request to billing failed, as its caller reads the answer. The ledger's refusals come
/// back by name, so a caller matches on them instead of on codes; they name no reference, since
/// the caller knows the one it sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillingFailure {
    #[error("insufficient balance")]
    InsufficientBalance,
    /// No reservation was ever made under the reference.
    #[error("no such reservation")]
    ReservationNotFound,
    /// The reservation was settled or released already.
    #[error("the reservation is closed")]
    ReservationClosed,
    /// The reference was used for a different top-up.
    #[error("the reference was used for a different amount")]
    ReferenceReused,
    /// Billing found a field of the request invalid.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// Billing's storage failed; the request may be retried.
    #[error("the ledger is unavailable")]
    Unavailable,
    /// Billing could not be asked, or did not answer (the bus says why); the request may be
    /// retried. Made by the caller's transport, never decoded from an answer.
    #[error("billing is unavailable: {0}")]
    Unreachable(String),
    /// Billing's answer could not be read, or named a failure billing never answers with.
    #[error("undecodable billing reply")]
    Undecodable,
}

/// The code of [`Failure::invalid`].
const INVALID: &str = "invalid";
const STORAGE_UNAVAILABLE: &str = "storage_unavailable";
const UNAVAILABLE_DETAIL: &str = "The ledger is unavailable; retry later.";
const UNDECODABLE_REPLY: &str = "undecodable billing reply";

impl BillingFailure {
    /// The stable code of the failure, as the failure's [`Failure`] carries it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientBalance => "insufficient_balance",
            Self::ReservationNotFound => "reservation_not_found",
            Self::ReservationClosed => "reservation_closed",
            Self::ReferenceReused => "reference_reused",
            Self::Invalid(_) => INVALID,
            Self::Unavailable => STORAGE_UNAVAILABLE,
            Self::Unreachable(_) => "billing_unavailable",
            Self::Undecodable => "internal_error",
        }
    }

    fn of(failure: Failure) -> Self {
        match failure.code.as_str() {
            "insufficient_balance" => Self::InsufficientBalance,
            "reservation_not_found" => Self::ReservationNotFound,
            "reservation_closed" => Self::ReservationClosed,
            "reference_reused" => Self::ReferenceReused,
            INVALID => Self::Invalid(failure.field_errors()),
            STORAGE_UNAVAILABLE => Self::Unavailable,
            _ => Self::Undecodable,
        }
    }
}

/// The failure a caller of billing answers its own caller with.
impl From<BillingFailure> for Failure {
    fn from(failure: BillingFailure) -> Self {
        let code = failure.code();
        match failure {
            BillingFailure::InsufficientBalance => LedgerError::InsufficientBalance.into(),
            BillingFailure::ReservationNotFound => Failure::new(FailureKind::NotFound, code, "No such reservation."),
            BillingFailure::ReservationClosed => {
                Failure::new(FailureKind::Conflict, code, "The reservation is already closed.")
            }
            BillingFailure::ReferenceReused => {
                Failure::new(FailureKind::Conflict, code, "The reference was already used for a different amount.")
            }
            BillingFailure::Invalid(errors) => Failure::invalid(errors),
            BillingFailure::Unavailable => Failure::new(FailureKind::Unavailable, code, UNAVAILABLE_DETAIL),
            BillingFailure::Unreachable(detail) => {
                Failure::new(FailureKind::Unavailable, code, format!("Billing is unavailable: {detail}"))
            }
            BillingFailure::Undecodable => Failure::internal(UNDECODABLE_REPLY),
        }
    }
}

// ---- billing's side: typed requests in, typed replies out ----

/// Parses a billing command from the bus.
pub fn billing_command(payload: &[u8]) -> Result<(OrgId, LedgerCommand), BillingError> {
    match crate::decode::<pb::BillingCommand>(payload) {
        Ok(pb::BillingCommand { org_id, kind: Some(kind) }) => Ok((OrgId(org_id), ledger_command(kind)?)),
        Ok(_) | Err(_) => Err(BillingError::Undecodable("undecodable billing command")),
    }
}

/// Parses a billing query from the bus.
pub fn billing_query(payload: &[u8]) -> Result<(OrgId, LedgerQuery), BillingError> {
    let query: pb::BillingQuery = crate::decode(payload).map_err(|_| BillingError::Undecodable("undecodable query"))?;
    let read = match query.kind {
        Some(pb::billing_query::Kind::Balance(_)) => LedgerQuery::Balance,
        Some(pb::billing_query::Kind::Account(_)) => LedgerQuery::Account,
        Some(pb::billing_query::Kind::Transactions(page)) => {
            LedgerQuery::Transactions { limit: page.limit, offset: page.offset }
        }
        None => return Err(BillingError::Undecodable("empty query")),
    };
    Ok((OrgId(query.org_id), read))
}

fn ledger_command(kind: Kind) -> Result<LedgerCommand, BillingError> {
    let invalid = |field, message| BillingError::Invalid(FieldErrors::single(field, message));
    Ok(match kind {
        Kind::Reserve(r) => LedgerCommand::Reserve {
            kind: match pb::ChargeKind::try_from(r.kind) {
                Ok(pb::ChargeKind::Call) => ChargeKind::Call,
                Ok(pb::ChargeKind::TestCall) => ChargeKind::TestCall,
                _ => return Err(invalid("kind", "Unknown charge kind.")),
            },
            reference: r.reference,
            limit: match r.limit {
                Some(pb::reserve::Limit::MaxCents(cents)) => ReserveLimit::Cents(cents),
                Some(pb::reserve::Limit::MaxSeconds(seconds)) => ReserveLimit::Seconds(seconds),
                None => return Err(invalid("max_cents", domain::fields::REQUIRED)),
            },
            call_id: r.call_id,
            charge_multiplier: r.charge_multiplier,
            expires_in_seconds: r.expires_in_seconds,
        },
        Kind::Settle(s) => LedgerCommand::Settle { reference: s.reference, cents: s.cents },
        Kind::Void(v) => LedgerCommand::Void { reference: v.reference },
        Kind::TopUp(t) => LedgerCommand::TopUp { reference: t.reference, cents: t.cents, description: t.description },
        Kind::SetRate(r) => LedgerCommand::SetRate { cents_per_minute: r.cents_per_minute },
        Kind::RequestTopUp(t) => LedgerCommand::RequestTopUp {
            cents: t.cents,
            idempotency_key: t.idempotency_key,
            payment_method_id: t.payment_method_id,
        },
        Kind::SetAutoReload(p) => LedgerCommand::SetAutoReload(AutoReloadPatch {
            enabled: p.enabled,
            amount_cents: p.amount_cents,
            minimum_cents: p.minimum_cents,
            monthly_limit_cents: if p.clear_monthly_limit { Some(None) } else { p.monthly_limit_cents.map(Some) },
        }),
    })
}

/// Billing's answer to a request, for the bus.
pub fn billing_reply(outcome: Result<LedgerReply, BillingError>) -> prost::bytes::Bytes {
    let result = match outcome {
        Ok(reply) => reply_result(reply),
        Err(error) => R::Failure(error.into()),
    };
    crate::encode(&pb::BillingReply::with(result))
}

fn reply_result(reply: LedgerReply) -> R {
    match reply {
        LedgerReply::Reservation(grant) => R::Reservation((&grant).into()),
        LedgerReply::Settlement { charged_cents, released_cents, transaction_id } => {
            R::Settlement(pb::Settlement { charged_cents, released_cents, transaction_id })
        }
        LedgerReply::Transaction(transaction) => R::Transaction((&transaction).into()),
        LedgerReply::Balance(balance) => R::Balance(balance.into()),
        LedgerReply::Transactions { transactions, total } => R::Transactions(pb::TransactionPage {
            transactions: transactions.iter().map(pb::Transaction::from).collect(),
            total,
        }),
        LedgerReply::Done => R::Done(pb::Empty {}),
        LedgerReply::Charge(view) => R::Charge((&view).into()),
        LedgerReply::Account(account) => R::Account((&*account).into()),
    }
}

impl BillingError {
    /// The stable code of the error, as its [`Failure`] carries it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ledger(LedgerError::InsufficientBalance) => BillingFailure::InsufficientBalance.code(),
            Self::Ledger(LedgerError::UnknownReservation(_)) => BillingFailure::ReservationNotFound.code(),
            Self::Ledger(LedgerError::ReservationClosed(_)) => BillingFailure::ReservationClosed.code(),
            Self::Ledger(LedgerError::ReferenceReused(_)) => BillingFailure::ReferenceReused.code(),
            Self::Ledger(LedgerError::Invalid { .. }) | Self::Invalid(_) => INVALID,
            Self::Unavailable => STORAGE_UNAVAILABLE,
            Self::Undecodable(_) => "bad_message",
        }
    }
}

impl From<BillingError> for Failure {
    fn from(error: BillingError) -> Self {
        let code = error.code();
        match error {
            BillingError::Ledger(e) => e.into(),
            BillingError::Unavailable => Failure::new(FailureKind::Unavailable, code, UNAVAILABLE_DETAIL),
            BillingError::Undecodable(detail) => Failure::new(FailureKind::Invalid, code, detail),
            BillingError::Invalid(errors) => Failure::invalid(errors),
        }
    }
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        let code = BillingError::Ledger(e.clone()).code();
        match e {
            LedgerError::InsufficientBalance => Failure::new(
                FailureKind::PaymentRequired,
                code,
                "Insufficient balance. Org balance is <= $0.00; top up first.",
            ),
            LedgerError::Invalid { field, message } => Failure::invalid(FieldErrors::single(field, message)),
            LedgerError::ReferenceReused(reference) => Failure::new(
                FailureKind::Conflict,
                code,
                format!("Reference {reference:?} was already used for a different amount."),
            ),
            LedgerError::ReservationClosed(reference) => {
                Failure::new(FailureKind::Conflict, code, format!("Reservation {reference:?} is already closed."))
            }
            LedgerError::UnknownReservation(reference) => {
                Failure::new(FailureKind::NotFound, code, format!("No reservation {reference:?}."))
            }
        }
    }
}

// ---- the callers' side: typed commands out, typed answers in ----

/// A command to billing, for the bus.
///
/// # Panics
///
/// On [`LedgerCommand::Expire`]: billing expires reservations by itself, and nobody asks it to.
pub fn billing_request(org: OrgId, command: &LedgerCommand) -> prost::bytes::Bytes {
    let kind = match command.clone() {
        LedgerCommand::Reserve { reference, limit, kind, call_id, charge_multiplier, expires_in_seconds } => {
            Kind::Reserve(pb::Reserve {
                reference,
                limit: Some(match limit {
                    ReserveLimit::Cents(cents) => pb::reserve::Limit::MaxCents(cents),
                    ReserveLimit::Seconds(seconds) => pb::reserve::Limit::MaxSeconds(seconds),
                }),
                kind: match kind {
                    ChargeKind::Call => pb::ChargeKind::Call,
                    ChargeKind::TestCall => pb::ChargeKind::TestCall,
                } as i32,
                call_id,
                charge_multiplier,
                expires_in_seconds,
            })
        }
        LedgerCommand::Settle { reference, cents } => Kind::Settle(pb::Settle { reference, cents }),
        LedgerCommand::Void { reference } => Kind::Void(pb::Reference { reference }),
        LedgerCommand::TopUp { reference, cents, description } => {
            Kind::TopUp(pb::TopUp { reference, cents, description })
        }
        LedgerCommand::SetRate { cents_per_minute } => Kind::SetRate(pb::SetRate { cents_per_minute }),
        LedgerCommand::RequestTopUp { cents, idempotency_key, payment_method_id } => {
            Kind::RequestTopUp(pb::RequestTopUp { cents, idempotency_key, payment_method_id })
        }
        LedgerCommand::SetAutoReload(patch) => Kind::SetAutoReload(pb::AutoReloadPatch {
            enabled: patch.enabled,
            amount_cents: patch.amount_cents,
            minimum_cents: patch.minimum_cents,
            monthly_limit_cents: patch.monthly_limit_cents.flatten(),
            clear_monthly_limit: patch.monthly_limit_cents == Some(None),
        }),
        LedgerCommand::Expire => panic!("billing expires reservations by itself; nobody sends it an expiry"),
        LedgerCommand::RecordCharge { .. } => panic!("billing records its charges' outcomes itself"),
    };
    crate::encode(&pb::BillingCommand { org_id: org.0, kind: Some(kind) })
}

/// Reads billing's answer to a command or a query.
pub fn billing_response(bytes: &[u8]) -> Result<LedgerReply, BillingFailure> {
    let reply: pb::BillingReply = crate::decode(bytes).map_err(|_| BillingFailure::Undecodable)?;
    match reply.result.ok_or(BillingFailure::Undecodable)? {
        R::Failure(failure) => Err(BillingFailure::of(failure)),
        R::Done(pb::Empty {}) => Ok(LedgerReply::Done),
        R::Reservation(r) => Ok(LedgerReply::Reservation(Grant {
            reference: r.reference,
            granted_cents: r.granted_cents,
            rate_cents_per_minute: r.rate_cents_per_minute,
            charge_multiplier: r.charge_multiplier,
            expires_at: Timestamp::from_millis(r.expires_at_ms),
        })),
        R::Settlement(s) => Ok(LedgerReply::Settlement {
            charged_cents: s.charged_cents,
            released_cents: s.released_cents,
            transaction_id: s.transaction_id,
        }),
        R::Transaction(t) => Ok(LedgerReply::Transaction(transaction(t)?)),
        R::Balance(b) => Ok(LedgerReply::Balance(Balance {
            balance_cents: b.balance_cents,
            reserved_cents: b.reserved_cents,
            available_cents: b.available_cents,
            rate_cents_per_minute: b.rate_cents_per_minute,
        })),
        R::Transactions(page) => Ok(LedgerReply::Transactions {
            transactions: page.transactions.into_iter().map(transaction).collect::<Result<_, _>>()?,
            total: page.total,
        }),
        R::Charge(c) => Ok(LedgerReply::Charge(charge_view(c)?)),
        R::Account(a) => Ok(LedgerReply::Account(Box::new(account_view(a)?))),
    }
}

fn charge_view(c: pb::Charge) -> Result<ChargeView, BillingFailure> {
    let state = match (c.status.as_str(), c.transaction_id) {
        ("pending", _) => ChargeState::Pending,
        ("succeeded", Some(transaction_id)) => ChargeState::Succeeded { transaction_id },
        ("declined", _) => ChargeState::Declined { code: c.decline_code, message: c.decline_message },
        _ => return Err(BillingFailure::Undecodable),
    };
    Ok(ChargeView { intent_id: c.intent_id, amount_cents: c.amount_cents, state })
}

fn credit(c: Option<pb::Credit>) -> Option<Credit> {
    c.map(|c| Credit { amount_cents: c.amount_cents, at: Timestamp::from_millis(c.at_ms), automatic: c.automatic })
}

fn account_view(a: pb::BillingAccount) -> Result<AccountView, BillingFailure> {
    let balance = a.balance.ok_or(BillingFailure::Undecodable)?;
    let status = match a.auto_reload_status.as_str() {
        "off" => AutoReloadStatus::Off,
        "ok" => AutoReloadStatus::Ok,
        "capped" => AutoReloadStatus::Capped,
        "retrying" => AutoReloadStatus::Retrying,
        "stopped" => AutoReloadStatus::Stopped,
        _ => return Err(BillingFailure::Undecodable),
    };
    let declines = (a.auto_reload_consecutive_declines > 0).then(|| Declines {
        count: a.auto_reload_consecutive_declines,
        amount_cents: a.auto_reload_failed_amount_cents.unwrap_or_default(),
        code: a.auto_reload_failure_code.clone().unwrap_or_default(),
        message: a.auto_reload_last_error.clone().unwrap_or_default(),
        at: Timestamp::from_millis(a.auto_reload_failed_at_ms.unwrap_or_default()),
        next_retry_at: a.auto_reload_next_retry_at_ms.map(Timestamp::from_millis),
    });
    Ok(AccountView {
        balance_cents: balance.balance_cents,
        reserved_cents: balance.reserved_cents,
        available_cents: balance.available_cents,
        rate_cents_per_minute: balance.rate_cents_per_minute,
        settings: AutoReloadSettings {
            enabled: a.auto_reload_enabled,
            amount_cents: a.auto_reload_amount_cents,
            minimum_cents: a.auto_reload_minimum_cents,
            monthly_limit_cents: a.auto_reload_monthly_limit_cents,
        },
        status,
        reload_in_flight: a.auto_reload_in_progress,
        declines,
        // The message names no month: the sums are this month's, as of the answer.
        month: MonthSpend {
            month: 0,
            usage_cents: a.current_month_usage_spend_cents,
            auto_reload_cents: a.auto_reload_month_spend_cents,
        },
        last_top_up: credit(a.last_top_up),
        last_auto_reload: credit(a.last_auto_reload),
        last_manual_topup_error: a.last_manual_topup_error,
        last_manual_topup_intent_id: a.last_manual_topup_intent_id,
        has_payment_method: a.has_payment_method,
        average_daily_spend_cents_7d: a.average_daily_spend_cents_7d,
        balance_runway_days: a.balance_runway_days,
    })
}

fn transaction(t: pb::Transaction) -> Result<Transaction, BillingFailure> {
    Ok(Transaction {
        id: t.id,
        kind: TransactionKind::parse(&t.kind).ok_or(BillingFailure::Undecodable)?,
        amount_cents: t.amount_cents,
        balance_after_cents: t.balance_after_cents,
        reference: t.reference,
        call_id: t.call_id,
        description: t.description,
        created_at: Timestamp::from_millis(t.created_at_ms),
    })
}

// ---- the messages ----

impl From<&Transaction> for pb::Transaction {
    fn from(t: &Transaction) -> Self {
        Self {
            id: t.id,
            kind: t.kind.as_str().to_owned(),
            amount_cents: t.amount_cents,
            balance_after_cents: t.balance_after_cents,
            reference: t.reference.clone(),
            call_id: t.call_id,
            description: t.description.clone(),
            created_at_ms: t.created_at.as_millis(),
        }
    }
}

impl From<&ChargeView> for pb::Charge {
    fn from(c: &ChargeView) -> Self {
        let (status, transaction_id, decline_code, decline_message) = match &c.state {
            ChargeState::Pending => ("pending", None, String::new(), String::new()),
            ChargeState::Succeeded { transaction_id } => {
                ("succeeded", Some(*transaction_id), String::new(), String::new())
            }
            ChargeState::Declined { code, message } => ("declined", None, code.clone(), message.clone()),
        };
        Self {
            intent_id: c.intent_id.clone(),
            amount_cents: c.amount_cents,
            status: status.to_owned(),
            transaction_id,
            decline_code,
            decline_message,
        }
    }
}

impl From<Credit> for pb::Credit {
    fn from(c: Credit) -> Self {
        Self { amount_cents: c.amount_cents, at_ms: c.at.as_millis(), automatic: c.automatic }
    }
}

impl From<&AccountView> for pb::BillingAccount {
    fn from(a: &AccountView) -> Self {
        let declines = a.declines.as_ref();
        Self {
            balance: Some(pb::Balance {
                balance_cents: a.balance_cents,
                reserved_cents: a.reserved_cents,
                available_cents: a.available_cents,
                rate_cents_per_minute: a.rate_cents_per_minute,
            }),
            auto_reload_enabled: a.settings.enabled,
            auto_reload_amount_cents: a.settings.amount_cents,
            auto_reload_minimum_cents: a.settings.minimum_cents,
            auto_reload_monthly_limit_cents: a.settings.monthly_limit_cents,
            auto_reload_status: a.status.as_str().to_owned(),
            auto_reload_in_progress: a.reload_in_flight,
            auto_reload_consecutive_declines: declines.map_or(0, |d| d.count),
            auto_reload_failed_amount_cents: declines.map(|d| d.amount_cents),
            auto_reload_failed_at_ms: declines.map(|d| d.at.as_millis()),
            auto_reload_failure_code: declines.map(|d| d.code.clone()),
            auto_reload_last_error: declines.map(|d| d.message.clone()),
            auto_reload_next_retry_at_ms: declines.and_then(|d| d.next_retry_at).map(Timestamp::as_millis),
            auto_reload_month_spend_cents: a.month.auto_reload_cents,
            current_month_usage_spend_cents: a.month.usage_cents,
            last_top_up: a.last_top_up.map(Into::into),
            last_auto_reload: a.last_auto_reload.map(Into::into),
            last_manual_topup_error: a.last_manual_topup_error.clone(),
            last_manual_topup_intent_id: a.last_manual_topup_intent_id.clone(),
            has_payment_method: a.has_payment_method,
            average_daily_spend_cents_7d: a.average_daily_spend_cents_7d,
            balance_runway_days: a.balance_runway_days,
        }
    }
}

impl From<&Grant> for pb::Reservation {
    fn from(g: &Grant) -> Self {
        Self {
            reference: g.reference.clone(),
            granted_cents: g.granted_cents,
            rate_cents_per_minute: g.rate_cents_per_minute,
            charge_multiplier: g.charge_multiplier,
            expires_at_ms: g.expires_at.as_millis(),
        }
    }
}

impl From<Balance> for pb::Balance {
    fn from(b: Balance) -> Self {
        Self {
            balance_cents: b.balance_cents,
            reserved_cents: b.reserved_cents,
            available_cents: b.available_cents,
            rate_cents_per_minute: b.rate_cents_per_minute,
        }
    }
}

impl pb::BillingReply {
    pub fn with(result: pb::billing_reply::Result) -> Self {
        Self { result: Some(result) }
    }

    pub fn failure(failure: Failure) -> Self {
        Self::with(pb::billing_reply::Result::Failure(failure))
    }
}
