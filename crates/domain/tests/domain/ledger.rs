//! An org's ledger: top-ups, reservations, settlements and voids.

use std::collections::BTreeMap;

use domain::ledger::{
    self, Account, ChargeKind, Closed, LedgerCommand, LedgerError, LedgerEvent, LedgerState, Recorded, ReserveLimit,
    TransactionKind, cost_cents,
};
use domain::{Ctx, IdSequence, Partitioning, Timestamp};

use crate::common::NOW;

/// An org's ledger as its owner keeps it: the state in memory, and the records by reference.
#[derive(Debug, Default, PartialEq)]
struct Books {
    state: LedgerState,
    records: BTreeMap<String, Recorded>,
}

impl Books {
    fn record_for(&self, command: &LedgerCommand) -> Recorded {
        command.reference().and_then(|r| self.records.get(r.as_ref())).cloned().unwrap_or_default()
    }

    fn apply(&mut self, event: &LedgerEvent) {
        self.state.apply(event);
        if let Some(reference) = event.recorded_under() {
            self.records.entry(reference.to_owned()).or_default().apply(event);
        }
    }

    fn decide(&self, command: LedgerCommand, ctx: &mut Ctx<'_>) -> Result<Vec<LedgerEvent>, LedgerError> {
        ledger::decide(&self.state, &self.record_for(&command), command, ctx)
    }
}

impl std::ops::Deref for Books {
    type Target = LedgerState;

    fn deref(&self) -> &LedgerState {
        &self.state
    }
}

fn given(commands: &[LedgerCommand]) -> (Books, IdSequence) {
    let mut ids = IdSequence::resume(Partitioning::new(64), 3, 0);
    let mut books = Books::default();
    for c in commands {
        for e in books.decide(c.clone(), &mut Ctx { now: NOW, ids: &mut ids }).unwrap() {
            books.apply(&e);
        }
    }
    (books, ids)
}

fn when_at(books: &Books, now: Timestamp, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 3, 1000);
    books.decide(command, &mut Ctx { now, ids: &mut ids })
}

fn when(books: &Books, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
    when_at(books, NOW, command)
}

fn top_up(reference: &str, cents: i64) -> LedgerCommand {
    LedgerCommand::TopUp { reference: reference.into(), cents, description: String::new() }
}

fn reserve(reference: &str, max_cents: i64) -> LedgerCommand {
    LedgerCommand::Reserve {
        reference: reference.into(),
        limit: ReserveLimit::Cents(max_cents),
        kind: ChargeKind::Call,
        call_id: Some(7),
        charge_multiplier: 1,
        expires_in_seconds: 60,
    }
}

fn settle(reference: &str, cents: i64) -> LedgerCommand {
    LedgerCommand::Settle { reference: reference.into(), cents }
}

#[test]
fn cost_is_prorated_per_second_and_rounded_up_per_call() {
    assert_eq!(cost_cents(0, 10, 1), 0);
    assert_eq!(cost_cents(1, 10, 1), 1);
    assert_eq!(cost_cents(60, 10, 1), 10);
    assert_eq!(cost_cents(61, 10, 1), 11);
    assert_eq!(cost_cents(90, 10, 2), 30);
}

#[test]
fn nothing_is_reserved_from_a_balance_at_or_below_zero() {
    let (empty, _) = given(&[]);
    assert_eq!(when(&empty, reserve("c1", 50)), Err(LedgerError::InsufficientBalance));
    let (spent, _) = given(&[top_up("t", 30), reserve("c1", 30)]);
    assert_eq!(when(&spent, reserve("c2", 5)), Err(LedgerError::InsufficientBalance));
}

#[test]
fn a_reservation_is_granted_what_is_available_up_to_its_maximum() {
    let (state, _) = given(&[top_up("t", 100), reserve("c1", 70)]);
    let then = when(&state, reserve("c2", 70)).unwrap();
    let [LedgerEvent::FundsReserved { reservation, entries, .. }] = then.as_slice() else { panic!("{then:?}") };
    assert_eq!(reservation.granted_cents, 30);
    assert_eq!(entries.iter().map(|e| e.amount_cents).sum::<i64>(), 0);
    // Asked again with the same reference, nothing more is reserved.
    assert_eq!(when(&state, reserve("c1", 70)), Ok(vec![]));
}

#[test]
fn a_limit_in_seconds_is_priced_at_the_orgs_rate_and_multiplier() {
    let (state, _) = given(&[top_up("t", 1_000), LedgerCommand::SetRate { cents_per_minute: 12 }]);
    let reserve = |multiplier| LedgerCommand::Reserve {
        reference: "c".into(),
        limit: ReserveLimit::Seconds(90),
        kind: ChargeKind::TestCall,
        call_id: None,
        charge_multiplier: multiplier,
        expires_in_seconds: 60,
    };
    for (multiplier, expected) in [(1, 18), (2, 36)] {
        let then = when(&state, reserve(multiplier)).unwrap();
        let [LedgerEvent::FundsReserved { reservation, .. }] = then.as_slice() else { panic!("{then:?}") };
        assert_eq!((reservation.granted_cents, reservation.rate_cents_per_minute), (expected, 12));
    }
}

#[test]
fn settling_charges_at_most_the_grant_and_releases_the_rest() {
    let (state, _) = given(&[top_up("t", 100), reserve("c1", 40)]);
    let then = when(&state, settle("c1", 25)).unwrap();
    let [LedgerEvent::ReservationSettled { charged_cents: 25, released_cents: 15, transaction: Some(tx), .. }] =
        then.as_slice()
    else {
        panic!("{then:?}")
    };
    assert_eq!(
        (tx.kind, tx.amount_cents, tx.balance_after_cents, tx.call_id),
        (TransactionKind::CallCharge, -25, 75, Some(7))
    );

    let over = when(&state, settle("c1", 1_000)).unwrap();
    assert!(matches!(over.as_slice(), [LedgerEvent::ReservationSettled { charged_cents: 40, released_cents: 0, .. }]));

    let (settled, _) = given(&[top_up("t", 100), reserve("c1", 40), settle("c1", 25)]);
    assert_eq!(settled.balances.balance_cents(), 75);
    assert_eq!(settled.balances.available_cents(), 75);
    assert_eq!(settled.balances.reserved_cents(), 0);
    assert_eq!(when(&settled, settle("c1", 25)), Ok(vec![]), "a redelivered settle posts nothing");
    assert_eq!(when(&settled, reserve("c1", 10)), Err(LedgerError::ReservationClosed("c1".into())));
}

#[test]
fn a_call_that_never_connected_is_voided_not_charged() {
    let (state, _) = given(&[top_up("t", 100), reserve("c1", 40), LedgerCommand::Void { reference: "c1".into() }]);
    assert_eq!((state.balances.balance_cents(), state.balances.available_cents()), (100, 100));
    assert!(matches!(state.records["c1"].closed, Some(Closed::Released { released_cents: 40, expired: false })));
    assert_eq!(when(&state, LedgerCommand::Void { reference: "c1".into() }), Ok(vec![]));
    assert_eq!(when(&state, settle("c1", 5)), Err(LedgerError::ReservationClosed("c1".into())));
}

#[test]
fn reservations_expire_by_themselves() {
    let (state, _) = given(&[top_up("t", 100), reserve("c1", 40)]);
    assert_eq!(when(&state, LedgerCommand::Expire), Ok(vec![]));
    let later = Timestamp(NOW.0 + 60_000);
    let then = when_at(&state, later, LedgerCommand::Expire).unwrap();
    assert!(matches!(then.as_slice(), [LedgerEvent::ReservationReleased { released_cents: 40, expired: true, .. }]));
    assert_eq!(ledger::next_expiry(&state), Some(later));
}

#[test]
fn a_repeated_top_up_posts_once_and_a_reused_reference_is_refused() {
    let (state, _) = given(&[top_up("stripe_1", 500)]);
    assert_eq!(when(&state, top_up("stripe_1", 500)), Ok(vec![]));
    assert_eq!(when(&state, top_up("stripe_1", 600)), Err(LedgerError::ReferenceReused("stripe_1".into())));
    assert!(matches!(when(&state, top_up("x", 0)), Err(LedgerError::Invalid { field: "amount_cents", .. })));
    assert!(matches!(when(&state, top_up("", 5)), Err(LedgerError::Invalid { field: "reference", .. })));
}

#[test]
fn test_calls_record_their_multiplier() {
    let (state, _) = given(&[
        top_up("t", 100),
        LedgerCommand::Reserve {
            reference: "r".into(),
            limit: ReserveLimit::Cents(50),
            kind: ChargeKind::TestCall,
            call_id: None,
            charge_multiplier: 2,
            expires_in_seconds: 60,
        },
    ]);
    let then = when(&state, settle("r", 20)).unwrap();
    let tx = then[0].transaction().unwrap();
    assert_eq!((tx.kind, tx.amount_cents), (TransactionKind::TestCallCharge, -20));
    assert!(tx.description.contains("x2"), "{}", tx.description);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        TopUp(u8, i64),
        Reserve(u8, i64),
        Settle(u8, i64),
        Void(u8),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6, 1i64..200).prop_map(|(r, c)| Op::TopUp(r, c)),
            (0u8..12, 1i64..150).prop_map(|(r, c)| Op::Reserve(r, c)),
            (0u8..12, 0i64..200).prop_map(|(r, c)| Op::Settle(r, c)),
            (0u8..12).prop_map(Op::Void),
            (1i64..90).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn the_books_balance_whatever_happens(ops in proptest::collection::vec(op(), 1..80)) {
            let mut ids = IdSequence::resume(Partitioning::new(64), 3, 0);
            let mut state = Books::default();
            let mut log: Vec<LedgerEvent> = Vec::new();
            let mut now = NOW;
            for op in ops {
                let command = match op {
                    Op::TopUp(r, c) => top_up(&format!("t{r}"), c),
                    Op::Reserve(r, c) => reserve(&format!("c{r}"), c),
                    Op::Settle(r, c) => settle(&format!("c{r}"), c),
                    Op::Void(r) => LedgerCommand::Void { reference: format!("c{r}") },
                    Op::Advance(s) => { now = Timestamp(now.0 + s * 1000); LedgerCommand::Expire }
                };
                let Ok(events) = state.decide(command, &mut Ctx { now, ids: &mut ids }) else { continue };
                for e in &events {
                    prop_assert_eq!(e.entries().iter().map(|x| x.amount_cents).sum::<i64>(), 0, "entries of {:?}", e);
                    if let LedgerEvent::ReservationSettled { reference, charged_cents, .. } = e {
                        prop_assert!(*charged_cents <= state.open[reference].granted_cents);
                    }
                    state.apply(e);
                    prop_assert!(state.balances.available_cents() >= 0);
                    prop_assert!(state.balances.reserved_cents() >= 0);
                    prop_assert_eq!(state.balances.reserved_cents(), state.open.values().map(|r| r.granted_cents).sum::<i64>());
                }
                log.extend(events);
            }
            let total: i64 = state.balances.0.values().sum();
            prop_assert_eq!(total, 0);
            prop_assert_eq!(state.balances.of(Account::Funding), -state.records.values().filter_map(|r| r.top_up.as_ref()).map(|t| t.amount_cents).sum::<i64>());
            let mut replayed = Books::default();
            for e in &log {
                replayed.apply(e);
            }
            prop_assert_eq!(replayed, state);
        }
    }
}
