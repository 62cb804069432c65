//! Billing messages to and from the domain's ledger.

use domain::FieldErrors;
use domain::ledger::{Balances, ChargeKind, LedgerCommand, LedgerError, Reservation, ReserveLimit, Transaction};

use crate::pb::{self, Failure, FailureKind, billing_command::Kind};

pub fn ledger_command(kind: Kind) -> Result<LedgerCommand, Failure> {
    Ok(match kind {
        Kind::Reserve(r) => LedgerCommand::Reserve {
            kind: match pb::ChargeKind::try_from(r.kind) {
                Ok(pb::ChargeKind::Call) => ChargeKind::Call,
                Ok(pb::ChargeKind::TestCall) => ChargeKind::TestCall,
                _ => return Err(Failure::invalid(FieldErrors::single("kind", "Unknown charge kind."))),
            },
            reference: r.reference,
            limit: match r.limit {
                Some(pb::reserve::Limit::MaxCents(cents)) => ReserveLimit::Cents(cents),
                Some(pb::reserve::Limit::MaxSeconds(seconds)) => ReserveLimit::Seconds(seconds),
                None => return Err(Failure::invalid(FieldErrors::single("max_cents", domain::fields::REQUIRED))),
            },
            call_id: r.call_id,
            charge_multiplier: r.charge_multiplier,
            expires_in_seconds: r.expires_in_seconds,
        },
        Kind::Settle(s) => LedgerCommand::Settle { reference: s.reference, cents: s.cents },
        Kind::Void(v) => LedgerCommand::Void { reference: v.reference },
        Kind::TopUp(t) => LedgerCommand::TopUp { reference: t.reference, cents: t.cents, description: t.description },
        Kind::SetRate(r) => LedgerCommand::SetRate { cents_per_minute: r.cents_per_minute },
    })
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::InsufficientBalance => Failure::new(
                FailureKind::PaymentRequired,
                "insufficient_balance",
                "Insufficient balance. Org balance is <= $0.00; top up first.",
            ),
            LedgerError::Invalid { field, message } => Failure::invalid(FieldErrors::single(field, message)),
            LedgerError::ReferenceReused(reference) => Failure::new(
                FailureKind::Conflict,
                "reference_reused",
                format!("Reference {reference:?} was already used for a different amount."),
            ),
            LedgerError::ReservationClosed(reference) => Failure::new(
                FailureKind::Conflict,
                "reservation_closed",
                format!("Reservation {reference:?} is already closed."),
            ),
            LedgerError::UnknownReservation(reference) => {
                Failure::new(FailureKind::NotFound, "reservation_not_found", format!("No reservation {reference:?}."))
            }
        }
    }
}

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

impl From<&Reservation> for pb::Reservation {
    fn from(r: &Reservation) -> Self {
        Self {
            reference: r.reference.clone(),
            granted_cents: r.granted_cents,
            rate_cents_per_minute: r.rate_cents_per_minute,
            charge_multiplier: r.charge_multiplier,
            expires_at_ms: r.expires_at.as_millis(),
        }
    }
}

pub fn balance(balances: &Balances, rate_cents_per_minute: u32) -> pb::Balance {
    pb::Balance {
        balance_cents: balances.balance_cents(),
        reserved_cents: balances.reserved_cents(),
        available_cents: balances.available_cents(),
        rate_cents_per_minute,
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
