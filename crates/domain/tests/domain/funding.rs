//! Funding the balance: top-ups charged through the provider, and auto-reload below the minimum,
//! within the monthly cap, one at a time, retried after a decline and stopped after three.

use std::collections::BTreeMap;

use domain::funding::{
    AutoReloadPatch, AutoReloadStatus, Charge, ChargeOutcome, ChargePurpose, ChargeState, MAX_CONSECUTIVE_DECLINES,
    RETRY_AFTER_MS, month_of, top_up_reference,
};
use domain::ledger::{
    self, ChargeKind, LedgerCommand, LedgerError, LedgerEvent, LedgerState, Recorded, ReserveLimit, TransactionKind,
};
use domain::{Ctx, IdSequence, Partitioning, Timestamp};

use crate::common::NOW;

/// The ledger as its owner keeps it, and the time and ids decisions read.
struct Books {
    state: LedgerState,
    records: BTreeMap<String, Recorded>,
    ids: IdSequence,
    now: Timestamp,
}

impl Books {
    fn new() -> Self {
        Self {
            state: LedgerState::default(),
            records: BTreeMap::new(),
            ids: IdSequence::resume(Partitioning::new(64), 3, 0),
            now: NOW,
        }
    }

    /// Decides without recording: the "when".
    fn when(&mut self, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
        let recorded = command.reference().and_then(|r| self.records.get(r.as_ref())).cloned().unwrap_or_default();
        ledger::decide(&self.state, &recorded, command, &mut Ctx { now: self.now, ids: &mut self.ids })
    }

    /// Decides and records: the "given".
    fn given(&mut self, command: LedgerCommand) -> Vec<LedgerEvent> {
        let events = self.when(command).expect("the given command is decided");
        for event in &events {
            self.state.apply(event);
            if let Some(reference) = event.recorded_under() {
                self.records.entry(reference.to_owned()).or_default().apply(event);
            }
        }
        events
    }

    fn status(&self) -> AutoReloadStatus {
        self.state.funding.status(self.now)
    }
}

fn admin_credit(reference: &str, cents: i64) -> LedgerCommand {
    LedgerCommand::TopUp { reference: reference.into(), cents, description: String::new() }
}

fn top_up(key: Option<&str>, cents: i64, method: Option<&str>) -> LedgerCommand {
    LedgerCommand::RequestTopUp {
        cents,
        idempotency_key: key.map(str::to_owned),
        payment_method_id: method.map(str::to_owned),
    }
}

fn auto_reload(amount: i64, minimum: i64, limit: Option<i64>) -> LedgerCommand {
    LedgerCommand::SetAutoReload(AutoReloadPatch {
        enabled: Some(true),
        amount_cents: Some(amount),
        minimum_cents: Some(minimum),
        monthly_limit_cents: Some(limit),
    })
}

fn succeeded(intent_id: &str) -> LedgerCommand {
    LedgerCommand::RecordCharge {
        intent_id: intent_id.into(),
        outcome: ChargeOutcome::Succeeded { provider_reference: format!("ch_{intent_id}") },
    }
}

fn declined(intent_id: &str) -> LedgerCommand {
    LedgerCommand::RecordCharge {
        intent_id: intent_id.into(),
        outcome: ChargeOutcome::Declined { code: "card_declined".into(), message: "Your card was declined.".into() },
    }
}

/// The charge the events ask for, if they ask for one.
fn requested(events: &[LedgerEvent]) -> Option<Charge> {
    events.iter().find_map(|e| match e {
        LedgerEvent::ChargeRequested { charge, .. } => Some(charge.clone()),
        _ => None,
    })
}

#[test]
fn a_top_up_is_recorded_as_a_charge_before_anything_is_credited() {
    let mut books = Books::new();
    let then = books.given(top_up(Some("k1"), 2_500, Some("pm_card")));
    let charge = requested(&then).expect("a charge");
    assert_eq!(
        (charge.purpose, charge.amount_cents, charge.payment_method_id.as_deref(), charge.reference),
        (ChargePurpose::TopUp, 2_500, Some("pm_card"), Some(top_up_reference("k1")))
    );
    assert!(charge.intent_id.starts_with("pi_"));
    assert_eq!(books.state.balances.available_cents(), 0, "nothing is credited before the provider answers");
    assert_eq!(books.records[&top_up_reference("k1")].charge.as_ref().unwrap().state, ChargeState::Pending);

    // The same key again: the same charge, nothing new; with another amount, refused.
    assert_eq!(books.when(top_up(Some("k1"), 2_500, None)), Ok(vec![]));
    assert!(matches!(books.when(top_up(Some("k1"), 900, None)), Err(LedgerError::ReferenceReused(_))));
    // Without a key, every request is a charge of its own.
    let other = requested(&books.given(top_up(None, 2_500, None))).unwrap();
    assert_ne!(other.intent_id, charge.intent_id);
}

#[test]
fn a_succeeded_charge_credits_once_however_often_it_is_reported() {
    let mut books = Books::new();
    let charge = requested(&books.given(top_up(Some("k1"), 2_500, None))).unwrap();
    let then = books.given(succeeded(&charge.intent_id));
    let [LedgerEvent::ChargeSucceeded { transaction_id, .. }, LedgerEvent::TopUpPosted { transaction, .. }] =
        then.as_slice()
    else {
        panic!("{then:?}")
    };
    assert_eq!(
        (transaction.id, transaction.kind, transaction.amount_cents, transaction.reference.as_str()),
        (*transaction_id, TransactionKind::ManualTopUp, 2_500, charge.intent_id.as_str())
    );
    assert_eq!(books.state.balances.available_cents(), 2_500);
    assert_eq!(
        books.records[&top_up_reference("k1")].charge.as_ref().unwrap().state,
        ChargeState::Succeeded { transaction_id: *transaction_id }
    );
    // A repeated or late report changes nothing, and so does a decline after the success.
    assert_eq!(books.when(succeeded(&charge.intent_id)), Ok(vec![]));
    assert_eq!(books.when(declined(&charge.intent_id)), Ok(vec![]));
    let funding = &books.state.funding;
    assert_eq!(funding.last_top_up.map(|c| (c.amount_cents, c.automatic)), Some((2_500, false)));
    assert_eq!(funding.last_manual_topup_intent_id.as_deref(), Some(charge.intent_id.as_str()));
}

#[test]
fn a_declined_top_up_credits_nothing_and_says_why() {
    let mut books = Books::new();
    let charge = requested(&books.given(top_up(Some("k1"), 2_500, Some("pm_sim_decline")))).unwrap();
    books.given(declined(&charge.intent_id));
    assert_eq!(books.state.balances.available_cents(), 0);
    assert_eq!(books.state.funding.last_manual_topup_error.as_deref(), Some("Your card was declined."));
    assert!(matches!(
        books.records[&top_up_reference("k1")].charge.as_ref().unwrap().state,
        ChargeState::Declined { .. }
    ));
    assert!(books.state.funding.pending.is_empty());
}

#[test]
fn top_up_amounts_are_bounded() {
    let mut books = Books::new();
    for cents in [0, 99, 1_000_001] {
        assert!(matches!(
            books.when(top_up(None, cents, None)),
            Err(LedgerError::Invalid { field: "amount_cents", .. })
        ));
    }
}

#[test]
fn auto_reload_charges_when_the_available_balance_falls_below_the_minimum() {
    let mut books = Books::new();
    books.given(admin_credit("a", 600));
    assert_eq!(requested(&books.given(auto_reload(1_000, 500, None))), None, "600 is not below 500");
    assert_eq!(books.status(), AutoReloadStatus::Ok);

    // A call holds funds and takes the available balance below the minimum: the same decision
    // asks for the reload.
    let reserved = books.given(LedgerCommand::Reserve {
        reference: "call/1".into(),
        limit: ReserveLimit::Cents(200),
        kind: ChargeKind::Call,
        call_id: Some(1),
        charge_multiplier: 1,
        expires_in_seconds: 60,
    });
    let reload = requested(&reserved).expect("holding 200 of 600 leaves 400 available, below 500");
    assert_eq!((reload.purpose, reload.amount_cents), (ChargePurpose::AutoReload, 1_000));
    // One reload in flight at a time: the settlement that follows asks for none.
    assert_eq!(requested(&books.given(LedgerCommand::Settle { reference: "call/1".into(), cents: 150 })), None);

    let then = books.given(succeeded(&reload.intent_id));
    let Some(LedgerEvent::TopUpPosted { transaction, .. }) = then.get(1) else { panic!("{then:?}") };
    assert_eq!((transaction.kind, transaction.amount_cents), (TransactionKind::AutoReload, 1_000));
    assert_eq!(books.state.balances.available_cents(), 1_450);
    let funding = &books.state.funding;
    assert_eq!(funding.last_auto_reload.map(|c| c.amount_cents), Some(1_000));
    assert_eq!(funding.month_spend(NOW).auto_reload_cents, 1_000);
    assert_eq!(funding.month_spend(NOW).usage_cents, 150);
}

#[test]
fn turning_auto_reload_on_below_the_minimum_reloads_at_once() {
    let mut books = Books::new();
    books.given(admin_credit("a", 100));
    let reload = requested(&books.given(auto_reload(1_000, 500, None))).expect("100 is below 500");
    assert_eq!(reload.amount_cents, 1_000);
    assert!(books.state.funding.reload_in_flight());
}

#[test]
fn the_monthly_cap_stops_reloads_until_next_month() {
    let mut books = Books::new();
    let first = requested(&books.given(auto_reload(1_000, 500, Some(1_500)))).expect("0 is below the minimum");
    books.given(succeeded(&first.intent_id));
    assert_eq!(requested(&books.given(admin_credit("a", 100))), None, "1,100 is not below the minimum");
    // 1,100 available; take 700 away: below the minimum, but another 1,000 would pass 1,500.
    assert_eq!(requested(&books.given(admin_credit("b", -700))), None);
    assert_eq!(books.status(), AutoReloadStatus::Capped);
    assert_eq!(books.state.funding.month_spend(NOW).auto_reload_cents, 1_000);

    // Next month the cap starts over, and the next look at the ledger reloads.
    books.now = Timestamp(NOW.0 + 32 * 86_400_000);
    assert_ne!(month_of(books.now), month_of(NOW));
    assert_eq!(books.status(), AutoReloadStatus::Ok);
    assert!(requested(&books.given(LedgerCommand::Expire)).is_some());
}

#[test]
fn a_declined_reload_retries_later_and_stops_after_three_in_a_row() {
    let mut books = Books::new();
    books.given(admin_credit("a", 100));
    let mut reload = requested(&books.given(auto_reload(1_002, 500, None))).unwrap();
    for decline in 1..=MAX_CONSECUTIVE_DECLINES {
        books.given(declined(&reload.intent_id));
        let declines = books.state.funding.declines.clone().unwrap();
        assert_eq!((declines.count, declines.amount_cents, declines.code.as_str()), (decline, 1_002, "card_declined"));
        if decline == MAX_CONSECUTIVE_DECLINES {
            assert_eq!(books.status(), AutoReloadStatus::Stopped);
            assert_eq!(declines.next_retry_at, None);
            break;
        }
        assert_eq!(books.status(), AutoReloadStatus::Retrying);
        let retry_at = declines.next_retry_at.unwrap();
        assert_eq!(retry_at, Timestamp(books.now.0 + RETRY_AFTER_MS * i64::from(decline)));
        // Nothing is charged before the retry is due, however the balance changes.
        assert_eq!(requested(&books.given(admin_credit(&format!("d{decline}"), -1))), None);
        books.now = retry_at;
        reload = requested(&books.given(LedgerCommand::Expire)).expect("the retry is due");
    }
    books.now = Timestamp(books.now.0 + 100 * RETRY_AFTER_MS);
    assert_eq!(requested(&books.given(LedgerCommand::Expire)), None, "stopped: no more tries");

    // New settings start over.
    let patch = LedgerCommand::SetAutoReload(AutoReloadPatch { amount_cents: Some(1_000), ..Default::default() });
    assert!(requested(&books.given(patch)).is_some());
    assert_eq!(books.state.funding.declines, None);
}

#[test]
fn auto_reload_settings_are_bounded_and_keep_what_a_patch_leaves_out() {
    let mut books = Books::new();
    for (patch, field) in [
        (AutoReloadPatch { amount_cents: Some(99), ..Default::default() }, "auto_reload_amount_cents"),
        (AutoReloadPatch { minimum_cents: Some(-1), ..Default::default() }, "auto_reload_minimum_cents"),
        (
            AutoReloadPatch { monthly_limit_cents: Some(Some(50)), ..Default::default() },
            "auto_reload_monthly_limit_cents",
        ),
    ] {
        assert!(
            matches!(books.when(LedgerCommand::SetAutoReload(patch)), Err(LedgerError::Invalid { field: f, .. }) if f == field)
        );
    }
    books.given(auto_reload(3_000, 1_000, Some(9_000)));
    books
        .given(LedgerCommand::SetAutoReload(AutoReloadPatch { monthly_limit_cents: Some(None), ..Default::default() }));
    let settings = &books.state.funding.settings;
    assert_eq!(
        (settings.enabled, settings.amount_cents, settings.minimum_cents, settings.monthly_limit_cents),
        (true, 3_000, 1_000, None)
    );
    // The same settings again record nothing.
    assert_eq!(books.when(auto_reload(3_000, 1_000, None)), Ok(vec![]));
}

#[test]
fn an_adjustment_never_takes_more_than_is_available() {
    let mut books = Books::new();
    books.given(admin_credit("a", 300));
    assert_eq!(books.when(admin_credit("b", -301)), Err(LedgerError::InsufficientBalance));
    books.given(admin_credit("b", -300));
    assert_eq!(books.state.balances.available_cents(), 0);
}
