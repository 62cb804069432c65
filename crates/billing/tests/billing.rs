//! The billing service through the bus, on real sled files.

use std::sync::Arc;
use std::time::Duration;

use actor::ManualClock;
use billing::{Billing, Options};
use bus::{Headers, InProcessBus, SharedBus};
use domain::ids::OrgId;
use domain::ledger::{Balance, ChargeKind, LedgerCommand, LedgerError, LedgerQuery, LedgerReply, ReserveLimit};
use domain::{Partitioning, Timestamp};
use eventlog::Store;
use wire::BillingError;
use wire::pb::{self, BillingReply, FailureKind, billing_command::Kind, billing_reply::Result as R};

const ORG: u64 = 5;

struct Running {
    bus: SharedBus,
    store: Store,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &std::path::Path, expiry_check: Duration) -> Running {
    let store = Store::open(dir, &eventlog::Options { cache_capacity_bytes: 8 << 20, ..Default::default() }).unwrap();
    let bus: SharedBus = Arc::new(InProcessBus::new());
    let billing = Billing::build(Options {
        partitioning: Partitioning::new(8),
        partitions: (0..8).collect(),
        store: store.clone(),
        bus: bus.clone(),
        expiry_check_interval: expiry_check,
        clock: actor::system_clock(),
        payments: billing::Payments {
            provider: Arc::new(billing::payments::SimulatedProvider::new()),
            charge_timeout: Duration::from_secs(5),
        },
    })
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        billing
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running { bus, store, stop, task }
}

impl Running {
    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        drop(self.store);
    }

    async fn command(&self, kind: Kind) -> Result<R, pb::Failure> {
        let subject = bus::subjects::billing_commands(ORG as u32 % 8);
        let message = pb::BillingCommand { org_id: ORG, kind: Some(kind) };
        let bytes =
            self.bus.request(&subject, &Headers::new(), wire::encode(&message), Duration::from_secs(5)).await.unwrap();
        match wire::decode::<BillingReply>(&bytes).unwrap().result.unwrap() {
            R::Failure(f) => Err(f),
            other => Ok(other),
        }
    }

    async fn balance(&self) -> pb::Balance {
        let subject = bus::subjects::billing_queries(ORG as u32 % 8);
        let query = pb::BillingQuery { org_id: ORG, kind: Some(pb::billing_query::Kind::Balance(pb::Empty {})) };
        let bytes =
            self.bus.request(&subject, &Headers::new(), wire::encode(&query), Duration::from_secs(5)).await.unwrap();
        match wire::decode::<BillingReply>(&bytes).unwrap().result.unwrap() {
            R::Balance(b) => b,
            other => panic!("{other:?}"),
        }
    }

    async fn transactions(&self) -> pb::TransactionPage {
        let subject = bus::subjects::billing_queries(ORG as u32 % 8);
        let page = pb::Page { limit: 200, offset: 0 };
        let query = pb::BillingQuery { org_id: ORG, kind: Some(pb::billing_query::Kind::Transactions(page)) };
        let bytes =
            self.bus.request(&subject, &Headers::new(), wire::encode(&query), Duration::from_secs(5)).await.unwrap();
        match wire::decode::<BillingReply>(&bytes).unwrap().result.unwrap() {
            R::Transactions(t) => t,
            other => panic!("{other:?}"),
        }
    }
}

fn top_up(reference: &str, cents: i64) -> Kind {
    Kind::TopUp(pb::TopUp { reference: reference.into(), cents, description: "test".into() })
}

fn reserve(reference: &str, max_cents: i64, expires_in_seconds: u32) -> Kind {
    Kind::Reserve(pb::Reserve {
        reference: reference.into(),
        limit: Some(pb::reserve::Limit::MaxCents(max_cents)),
        kind: pb::ChargeKind::Call as i32,
        call_id: Some(77),
        charge_multiplier: 1,
        expires_in_seconds,
    })
}

fn settle(reference: &str, cents: i64) -> Kind {
    Kind::Settle(pb::Settle { reference: reference.into(), cents })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_grant_more_than_the_balance() {
    let dir = tempfile::tempdir().unwrap();
    let billing = Arc::new(start(dir.path(), Duration::from_secs(60)).await);
    billing.command(top_up("t1", 100)).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..200 {
        let billing = billing.clone();
        tasks.push(tokio::spawn(async move { billing.command(reserve(&format!("call-{i}"), 10, 600)).await }));
    }
    let (mut granted, mut refused) = (0i64, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(R::Reservation(r)) => granted += r.granted_cents,
            Err(f) if f.kind == FailureKind::PaymentRequired as i32 => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 100, "granted {granted} cents of a 100-cent balance");
    assert_eq!(refused, 190);
    let b = billing.balance().await;
    assert_eq!((b.balance_cents, b.reserved_cents, b.available_cents), (100, 100, 0));
}

#[tokio::test]
async fn redelivered_settles_and_top_ups_post_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let billing = start(dir.path(), Duration::from_secs(60)).await;
    billing.command(top_up("stripe_ch_1", 500)).await.unwrap();
    let R::Reservation(r) = billing.command(reserve("call-1", 200, 600)).await.unwrap() else { panic!() };
    assert_eq!(r.granted_cents, 200);
    let R::Settlement(s) = billing.command(settle("call-1", 130)).await.unwrap() else { panic!() };
    assert_eq!((s.charged_cents, s.released_cents), (130, 70));
    // Redelivered at once: the same answer, nothing posted.
    assert_eq!(billing.command(settle("call-1", 130)).await.unwrap(), R::Settlement(s));
    billing.command(top_up("stripe_ch_1", 500)).await.unwrap();
    assert_eq!(billing.balance().await.balance_cents, 370);
    // One reservation is still open when the service stops.
    billing.command(reserve("call-2", 50, 600)).await.unwrap();
    billing.shut_down().await;

    // The restarted service starts from the projected ledgers, and finds each reference's past
    // on disk: the open reservation is still held, the closed ones stay closed.
    let billing = start(dir.path(), Duration::from_secs(60)).await;
    assert_eq!(billing.balance().await.reserved_cents, 50);
    let R::Settlement(s2) = billing.command(settle("call-2", 0)).await.unwrap() else { panic!() };
    assert_eq!((s2.charged_cents, s2.released_cents), (0, 50));
    assert_eq!(billing.command(settle("call-1", 130)).await.unwrap(), R::Settlement(s));
    let R::Transaction(t) = billing.command(top_up("stripe_ch_1", 500)).await.unwrap() else { panic!() };
    assert_eq!((t.kind.as_str(), t.amount_cents, t.balance_after_cents), ("top_up", 500, 500));
    let b = billing.balance().await;
    assert_eq!((b.balance_cents, b.reserved_cents, b.available_cents), (370, 0, 370));
    let page = billing.transactions().await;
    assert_eq!(page.total, 2);
    let kinds: Vec<_> = page.transactions.iter().map(|t| (t.kind.as_str(), t.amount_cents, t.call_id)).collect();
    assert_eq!(kinds, vec![("call_charge", -130, Some(77)), ("top_up", 500, None)]);

    // A reused reference with another amount is refused, and a closed reservation stays closed.
    let err = billing.command(top_up("stripe_ch_1", 501)).await.unwrap_err();
    assert_eq!(err.code, "reference_reused");
    let err = billing.command(reserve("call-1", 10, 600)).await.unwrap_err();
    assert_eq!(err.code, "reservation_closed");
}

#[tokio::test]
async fn reservations_nobody_settles_are_released_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let billing = start(dir.path(), Duration::from_millis(50)).await;
    billing.command(top_up("t", 100)).await.unwrap();
    billing.command(reserve("forgotten", 60, 1)).await.unwrap();
    assert_eq!(billing.balance().await.available_cents, 40);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while billing.balance().await.available_cents != 100 {
        assert!(tokio::time::Instant::now() < deadline, "the reservation was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = billing.command(settle("forgotten", 10)).await.unwrap_err();
    assert_eq!(err.code, "reservation_closed");
    assert_eq!(billing.balance().await.reserved_cents, 0);
}

#[tokio::test]
async fn nothing_is_reserved_without_funds_and_voids_release_everything() {
    let dir = tempfile::tempdir().unwrap();
    let billing = start(dir.path(), Duration::from_secs(60)).await;
    let err = billing.command(reserve("c", 10, 60)).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (FailureKind::PaymentRequired as i32, "insufficient_balance"));
    billing.command(top_up("t", 50)).await.unwrap();
    billing.command(reserve("c", 30, 60)).await.unwrap();
    billing.command(Kind::Void(pb::Reference { reference: "c".into() })).await.unwrap();
    billing.command(Kind::Void(pb::Reference { reference: "c".into() })).await.unwrap();
    let b = billing.balance().await;
    assert_eq!((b.balance_cents, b.available_cents), (50, 50));
    assert_eq!(billing.transactions().await.total, 1, "a void is not a transaction");
}

/// A command found already done (here a top-up sent again) must not be acknowledged before the
/// top-up it reports is durable: were it, a crash could lose the funds it told the caller of.
#[tokio::test]
async fn a_repeated_command_is_acknowledged_only_once_what_it_reports_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let billing = Arc::new(start(dir.path(), Duration::from_secs(3600)).await);
    let hold = billing.store.hold_flushes();

    let first = tokio::spawn({
        let billing = billing.clone();
        async move { billing.command(top_up("stripe/1", 500)).await }
    });
    // The first top-up is applied (visible) but not durable; its answer waits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished(), "a top-up was acknowledged before it was durable");
    let again = tokio::spawn({
        let billing = billing.clone();
        async move { billing.command(top_up("stripe/1", 500)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!again.is_finished(), "a repeated top-up was acknowledged before the first was durable");

    drop(hold);
    let (first, again) = (first.await.unwrap().unwrap(), again.await.unwrap().unwrap());
    assert_eq!(first, again, "the repeat answers what the first recorded");
    assert_eq!(billing.balance().await.balance_cents, 500);
    Arc::into_inner(billing).expect("no other handle").shut_down().await;
}

// ---- the partition on simulated time, driven without the bus ----

/// One billing partition over a real log, on a clock that moves only when told to.
struct Simulated {
    store: Store,
    log: eventlog::Log,
    clock: ManualClock,
    partition: billing::Partition,
}

const START: Timestamp = Timestamp(1_700_000_000_000);

impl Simulated {
    fn open(dir: &std::path::Path, clock: ManualClock) -> Self {
        let store =
            Store::open(dir, &eventlog::Options { cache_capacity_bytes: 8 << 20, ..Default::default() }).unwrap();
        let log = store.log(billing::NAMESPACE, ORG as u32 % 8, billing::projections()).unwrap();
        let partition = billing::Partition::open(Partitioning::new(8), log.clone(), Arc::new(clock.clone())).unwrap();
        Self { store, log, clock, partition }
    }

    /// Decides a command and waits until its reply may be sent. Returns the reply and how many
    /// events it appended.
    async fn decide(&mut self, command: LedgerCommand) -> Result<(LedgerReply, usize), BillingError> {
        let (reply, durable) = self.partition.decide(OrgId(ORG), command, None)?;
        let appended = durable.durable().await.unwrap();
        Ok((reply, appended.len()))
    }

    fn balance(&self) -> Balance {
        match billing::queries::answer(&self.log, OrgId(ORG), LedgerQuery::Balance, Timestamp(0)).unwrap() {
            LedgerReply::Balance(balance) => balance,
            other => panic!("{other:?}"),
        }
    }
}

fn ledger_top_up(reference: &str, cents: i64) -> LedgerCommand {
    LedgerCommand::TopUp { reference: reference.into(), cents, description: "test".into() }
}

fn ledger_reserve(reference: &str, max_cents: i64, expires_in_seconds: u32) -> LedgerCommand {
    LedgerCommand::Reserve {
        reference: reference.into(),
        limit: ReserveLimit::Cents(max_cents),
        kind: ChargeKind::Call,
        call_id: Some(77),
        charge_multiplier: 1,
        expires_in_seconds,
    }
}

fn ledger_settle(reference: &str, cents: i64) -> LedgerCommand {
    LedgerCommand::Settle { reference: reference.into(), cents }
}

#[tokio::test]
async fn a_reservation_expires_at_its_expiry_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut billing = Simulated::open(dir.path(), ManualClock::starting_at(START));
    billing.decide(ledger_top_up("t", 100)).await.unwrap();
    let (LedgerReply::Reservation(grant), _) = billing.decide(ledger_reserve("call/1", 60, 10)).await.unwrap() else {
        panic!("a reserve answers its grant")
    };
    assert_eq!((grant.granted_cents, grant.expires_at), (60, Timestamp(START.0 + 10_000)));
    assert_eq!(billing.partition.next_expiry(), Some(grant.expires_at));

    billing.clock.advance_to(Timestamp(grant.expires_at.0 - 1));
    billing.partition.expire();
    assert_eq!(billing.balance().reserved_cents, 60, "released a millisecond early");

    billing.clock.advance_ms(1);
    billing.partition.expire();
    let balance = billing.balance();
    assert_eq!((balance.reserved_cents, balance.available_cents), (0, 100));
    assert_eq!(billing.partition.next_expiry(), None);
}

#[tokio::test]
async fn a_settle_after_the_expiry_is_refused_and_a_void_finds_it_done() {
    let dir = tempfile::tempdir().unwrap();
    let mut billing = Simulated::open(dir.path(), ManualClock::starting_at(START));
    billing.decide(ledger_top_up("t", 100)).await.unwrap();
    billing.decide(ledger_reserve("call/1", 60, 30)).await.unwrap();
    billing.clock.advance_ms(30_000);
    billing.partition.expire();

    let refused = billing.decide(ledger_settle("call/1", 10)).await.unwrap_err();
    assert_eq!(refused, BillingError::Ledger(LedgerError::ReservationClosed("call/1".into())));
    let void = LedgerCommand::Void { reference: "call/1".into() };
    assert_eq!(billing.decide(void).await.unwrap(), (LedgerReply::Done, 0), "released already: nothing to do");
    assert_eq!(billing.balance().available_cents, 100, "nothing was charged");
}

#[tokio::test]
async fn repeated_commands_answer_as_the_first_by_their_reference_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut billing = Simulated::open(dir.path(), ManualClock::starting_at(START));
    let (top_up, appended) = billing.decide(ledger_top_up("stripe/1", 500)).await.unwrap();
    assert!(appended > 0, "the first top-up is recorded");
    assert_eq!(billing.decide(ledger_top_up("stripe/1", 500)).await.unwrap(), (top_up, 0));

    let (grant, _) = billing.decide(ledger_reserve("call/1", 200, 600)).await.unwrap();
    // Later, on the same reference: the same grant, not a new one from the later time.
    billing.clock.advance_ms(5_000);
    assert_eq!(billing.decide(ledger_reserve("call/1", 200, 600)).await.unwrap(), (grant, 0));

    let (settlement, _) = billing.decide(ledger_settle("call/1", 130)).await.unwrap();
    assert!(matches!(settlement, LedgerReply::Settlement { charged_cents: 130, released_cents: 70, .. }));
    assert_eq!(billing.decide(ledger_settle("call/1", 130)).await.unwrap(), (settlement, 0));
    assert_eq!(billing.balance().balance_cents, 370);
}

#[tokio::test]
async fn a_reopened_partition_expires_what_it_held_before_on_the_same_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(START);
    let mut billing = Simulated::open(dir.path(), clock.clone());
    billing.decide(ledger_top_up("t", 100)).await.unwrap();
    billing.decide(ledger_reserve("call/1", 40, 60)).await.unwrap();
    let Simulated { store, log, partition, .. } = billing;
    drop((partition, log));
    drop(store);

    let mut billing = Simulated::open(dir.path(), clock);
    assert_eq!(billing.partition.next_expiry(), Some(Timestamp(START.0 + 60_000)));
    billing.clock.advance_ms(60_000);
    billing.partition.expire();
    assert_eq!(billing.balance().available_cents, 100);
}
