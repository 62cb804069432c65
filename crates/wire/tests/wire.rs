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

#[test]
fn every_directory_command_an_org_partition_sends_is_read_back_as_it_was_sent() {
    use domain::directory::DirectoryCommand;
    use wire::OrchestratorCommand as C;
    let number = domain::E164::parse("+14155550100").unwrap();
    let sent = [
        DirectoryCommand::ClaimNumber { org_id: ORG, number: number.clone(), token: 9 },
        DirectoryCommand::ClaimDemoNumber { org_id: ORG, token: 10 },
        DirectoryCommand::ReleaseNumber { org_id: ORG, number: Some(number.clone()), token: 9 },
        DirectoryCommand::ReleaseNumber { org_id: ORG, number: None, token: 10 },
    ];
    for command in sent {
        let (org, read) = wire::orchestrator_command(&wire::directory_request(&command)).unwrap();
        assert_eq!(org, ORG);
        let read_back = match read {
            C::ClaimNumber { number, token } => DirectoryCommand::ClaimNumber { org_id: org, number, token },
            C::ClaimDemoNumber { token } => DirectoryCommand::ClaimDemoNumber { org_id: org, token },
            C::ReleaseNumber { number, token } => DirectoryCommand::ReleaseNumber { org_id: org, number, token },
            other => panic!("{command:?} read as {other:?}"),
        };
        assert_eq!(read_back, command);
    }
}

#[test]
fn an_orchestrator_command_that_does_not_parse_is_refused_before_the_actor_sees_it() {
    let refusal = |payload: &[u8]| wire::orchestrator_command(payload).map(|_| ()).unwrap_err();
    assert_eq!(refusal(b"\xff\xff").code, "bad_message");
    let no_kind = wire::encode(&pb::Command { org_id: 5, kind: None });
    assert_eq!(refusal(&no_kind).code, "bad_message");
    let bad_key = pb::Command {
        org_id: 5,
        kind: Some(pb::command::Kind::BeginIdempotent(pb::IdempotentRequest {
            key: "has a space".into(),
            fingerprint: vec![1],
        })),
    };
    assert_eq!(refusal(&wire::encode(&bad_key)).code, "bad_message");
    let bad_number = pb::Command {
        org_id: 5,
        kind: Some(pb::command::Kind::ClaimNumber(pb::ClaimNumber { number: "555".into(), token: 1 })),
    };
    assert_eq!(refusal(&wire::encode(&bad_number)).kind, FailureKind::Invalid as i32);
}
