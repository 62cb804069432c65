//! The conversions between protobuf and domain types, both ways.

use domain::ids::OrgId;
use domain::ledger::{
    Balance, ChargeKind, Grant, LedgerCommand, LedgerError, LedgerReply, ReserveLimit, Transaction, TransactionKind,
};
use domain::{FieldErrors, Timestamp};
use wire::pb::{self, Failure, FailureKind};
use wire::{BillingError, BillingFailure};

const ORG: OrgId = OrgId(5);

#[test]
fn every_command_a_caller_sends_billing_reads_as_it_was_sent() {
    let commands = [
        LedgerCommand::Reserve {
            reference: "call/1".into(),
            limit: ReserveLimit::Seconds(600),
            kind: ChargeKind::Call,
            call_id: Some(1),
            charge_multiplier: 1,
            expires_in_seconds: 660,
        },
        LedgerCommand::Reserve {
            reference: "run/2".into(),
            limit: ReserveLimit::Cents(90),
            kind: ChargeKind::TestCall,
            call_id: None,
            charge_multiplier: 3,
            expires_in_seconds: 60,
        },
        LedgerCommand::Settle { reference: "call/1".into(), cents: 42 },
        LedgerCommand::Void { reference: "call/1".into() },
        LedgerCommand::TopUp { reference: "stripe/1".into(), cents: 500, description: "card".into() },
        LedgerCommand::SetRate { cents_per_minute: 12 },
    ];
    for command in commands {
        assert_eq!(wire::billing_command(&wire::billing_request(ORG, &command)), Ok((ORG, command)));
    }
}

#[test]
fn a_message_that_is_no_billing_command_is_refused_as_undecodable() {
    let empty = wire::encode(&pb::BillingCommand { org_id: ORG.0, kind: None });
    assert_eq!(wire::billing_command(&empty), Err(BillingError::Undecodable("undecodable billing command")));
    let failure = Failure::from(BillingError::Undecodable("undecodable billing command"));
    assert_eq!((failure.kind, failure.code.as_str()), (FailureKind::Invalid as i32, "bad_message"));
}

#[test]
fn every_reply_billing_gives_reads_back_as_it_was_given() {
    let transaction = Transaction {
        id: 64,
        kind: TransactionKind::CallCharge,
        amount_cents: -130,
        balance_after_cents: 370,
        reference: "call/1".into(),
        call_id: Some(1),
        description: "Call at 10 c/min".into(),
        created_at: Timestamp(1_700_000_000_000),
    };
    let replies = [
        LedgerReply::Reservation(Grant {
            reference: "call/1".into(),
            granted_cents: 200,
            rate_cents_per_minute: 10,
            charge_multiplier: 1,
            expires_at: Timestamp(1_700_000_660_000),
        }),
        LedgerReply::Settlement { charged_cents: 130, released_cents: 70, transaction_id: Some(64) },
        LedgerReply::Settlement { charged_cents: 0, released_cents: 200, transaction_id: None },
        LedgerReply::Transaction(transaction.clone()),
        LedgerReply::Balance(Balance {
            balance_cents: 370,
            reserved_cents: 50,
            available_cents: 320,
            rate_cents_per_minute: 10,
        }),
        LedgerReply::Transactions { transactions: vec![transaction], total: 9 },
        LedgerReply::Done,
    ];
    for reply in replies {
        assert_eq!(wire::billing_response(&wire::billing_reply(Ok(reply.clone()))), Ok(reply));
    }
}

#[test]
fn the_ledgers_refusals_come_back_by_name_with_the_code_billing_sent() {
    let refusals = [
        (BillingError::Ledger(LedgerError::InsufficientBalance), BillingFailure::InsufficientBalance),
        (BillingError::Ledger(LedgerError::UnknownReservation("call/1".into())), BillingFailure::ReservationNotFound),
        (BillingError::Ledger(LedgerError::ReservationClosed("call/1".into())), BillingFailure::ReservationClosed),
        (BillingError::Ledger(LedgerError::ReferenceReused("stripe/1".into())), BillingFailure::ReferenceReused),
        (
            BillingError::Ledger(LedgerError::Invalid { field: "cents", message: "Too many.".into() }),
            BillingFailure::Invalid(FieldErrors::single("cents", "Too many.")),
        ),
        (BillingError::Unavailable, BillingFailure::Unavailable),
    ];
    for (error, failure) in refusals {
        let sent = Failure::from(error.clone());
        assert_eq!(sent.code, error.code());
        assert_eq!(sent.code, failure.code(), "{error:?}");
        assert_eq!(Failure::from(failure.clone()).kind, sent.kind, "{failure:?} is passed on as billing sent it");
        assert_eq!(wire::billing_response(&wire::billing_reply(Err(error))), Err(failure));
    }
}

#[test]
fn a_refused_reservation_is_passed_on_as_billing_sent_it() {
    let sent = Failure::from(LedgerError::InsufficientBalance);
    assert_eq!(Failure::from(BillingFailure::InsufficientBalance), sent);
    let unavailable = Failure::from(BillingError::Unavailable);
    assert_eq!(Failure::from(BillingFailure::Unavailable), unavailable);
}

#[test]
fn what_billing_never_answers_is_undecodable() {
    assert_eq!(wire::billing_response(b"\xff\xff\xff"), Err(BillingFailure::Undecodable));
    assert_eq!(
        wire::billing_response(&wire::encode(&pb::BillingReply { result: None })),
        Err(BillingFailure::Undecodable)
    );
    let odd_kind = pb::Transaction { kind: "refund".into(), ..Default::default() };
    let reply = pb::BillingReply::with(pb::billing_reply::Result::Transaction(odd_kind));
    assert_eq!(wire::billing_response(&wire::encode(&reply)), Err(BillingFailure::Undecodable));
}
