//! The actor that owns one billing partition's ledgers.
//!
//! Deciding is synchronous and knows no bus: [`Partition::decide`] takes a typed command and
//! answers a typed reply with the append it rests on, and [`Partition::expire`] releases what
//! is past its expiry on the partition's clock. [`Partition::run`] feeds both from the bus and
//! a timer; the deterministic simulation drives them directly.
//!
//! Charges are the partition's one side effect. A decision that records a charge
//! (`charge_requested`: a top-up asked for, or auto-reload) leaves it in the partition's outbox
//! ([`Partition::take_charges`]); the loop performs it through the payment provider once the
//! append is durable, and the provider's answer comes back into the same loop as a command
//! (`RecordCharge`), in order with every other. A top-up's request waits for that outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use actor::{Folded, RequestContext, SharedClock};
use domain::funding::{Charge, ChargeOutcome, ChargeState, ChargeView};
use domain::ids::{IdSequence, OrgId, Partitioning};
use domain::ledger::{self, Closed, Grant, LedgerCommand, LedgerEvent, LedgerReply, LedgerState, Recorded};
use domain::{Ctx, Timestamp};
use eventlog::{ExpectedVersion, Log, Pending, StreamAppend};
use tokio::sync::{mpsc, watch};
use wire::BillingError;

use crate::payments::{ChargeRequest, SharedPayments, Unavailable};
use crate::{projection, streams};

/// How long after a charge went unanswered billing asks the provider again.
const CHARGE_RETRY_MS: i64 = 30_000;
/// Provider answers on their way back into the loop: bounded, so a provider answering faster
/// than the loop records makes its tasks wait.
const OUTCOMES_CAPACITY: usize = 256;

/// How the loop performs charges.
#[derive(Clone)]
pub struct Payments {
    pub provider: SharedPayments,
    /// How long one charge may take before its outcome is taken as unknown (and the charge
    /// asked again later). Shorter than the gateway's wait, so a top-up's caller hears back.
    pub charge_timeout: Duration,
}

/// A provider's answer to one charge, back in the loop.
struct Attempted {
    org: OrgId,
    intent_id: String,
    outcome: Result<ChargeOutcome, Unavailable>,
}

pub struct Partition {
    log: Log,
    ids: IdSequence,
    /// Every ledger of the partition, read from the projection at start: the expiry timer must
    /// see every open reservation. Small whatever the history: balances, rate, open reservations.
    /// Ordered, so an expiry visits them in the same order on every run.
    ledgers: BTreeMap<OrgId, Folded<LedgerState>>,
    /// Where decisions read the time: the wall clock, or simulated time.
    clock: SharedClock,
    /// Charges recorded but not yet handed to the provider: performed once durable.
    outbox: Vec<(OrgId, Charge)>,
    /// Charges the loop handed to the provider, by intent: `None` while in flight, else when to
    /// ask again after no answer. Every pending charge is in the outbox or here.
    attempts: BTreeMap<String, (OrgId, Option<Timestamp>)>,
    /// Top-up requests waiting for their charge's outcome, by intent.
    waiting: BTreeMap<String, Vec<bus::Message>>,
}

/// What a command answers, named before the command is consumed.
enum Answer {
    Reservation(String),
    Settlement,
    Transaction,
    Balance,
    Charge,
    Account,
    Done,
}

impl Partition {
    pub fn open(partitioning: Partitioning, log: Log, clock: SharedClock) -> Result<Self, eventlog::Error> {
        let ledgers = projection::read_ledgers(&log)?;
        // Charges recorded but never answered (the process stopped between): asked again,
        // under the same intent, so the provider charges once.
        let outbox = ledgers
            .iter()
            .flat_map(|(org, l)| l.state.funding.pending.values().map(|charge| (*org, charge.clone())))
            .collect();
        Ok(Self {
            ids: actor::resume_ids(&log, partitioning)?,
            log,
            ledgers,
            clock,
            outbox,
            attempts: BTreeMap::new(),
            waiting: BTreeMap::new(),
        })
    }

    pub async fn run(
        mut self,
        mut commands: bus::Subscription,
        expiry_check: Duration,
        payments: Payments,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut expiry = tokio::time::interval(expiry_check);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (outcomes, mut answered) = mpsc::channel::<Attempted>(OUTCOMES_CAPACITY);
        loop {
            self.perform_charges(&payments, &outcomes);
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(request) = commands.next() => self.handle(request),
                Some(attempted) = answered.recv() => self.record_attempt(attempted),
                _ = expiry.tick() => {
                    self.expire();
                    self.retry_unanswered_charges();
                }
                else => break,
            }
        }
    }

    fn handle(&mut self, request: bus::Message) {
        let context = RequestContext::of(&request);
        let _entered = context.span("billing", self.log.partition()).entered();
        let decided = wire::billing_command(&request.payload)
            .and_then(|(org, command)| self.decide(org, command, context.request_id()));
        match decided {
            // A top-up whose charge is on its way to the provider waits for its outcome.
            Ok((LedgerReply::Charge(view), _))
                if view.state == ChargeState::Pending && self.in_flight(&view.intent_id) =>
            {
                self.waiting.entry(view.intent_id).or_default().push(request);
            }
            Ok((reply, durable)) => actor::reply_when_durable(request, durable, wire::billing_reply(Ok(reply)), |_| {
                wire::billing_reply(Err(BillingError::Unavailable))
            }),
            Err(error) => actor::reply_now(request, wire::billing_reply(Err(error))),
        }
    }

    /// Whether a charge is about to be, or being, asked of the provider.
    fn in_flight(&self, intent_id: &str) -> bool {
        self.outbox.iter().any(|(_, c)| c.intent_id == intent_id)
            || matches!(self.attempts.get(intent_id), Some((_, None)))
    }

    /// The charges recorded since the last call, to be performed once their appends are
    /// durable (the simulation takes them to perform on its own schedule).
    pub fn take_charges(&mut self) -> Vec<(OrgId, Charge)> {
        std::mem::take(&mut self.outbox)
    }

    /// Hands every recorded charge to the provider once what recorded it is durable.
    fn perform_charges(&mut self, payments: &Payments, outcomes: &mpsc::Sender<Attempted>) {
        if self.outbox.is_empty() {
            return;
        }
        for (org, charge) in self.take_charges() {
            if matches!(self.attempts.get(&charge.intent_id), Some((_, None))) {
                continue;
            }
            self.attempts.insert(charge.intent_id.clone(), (org, None));
            // Everything appended so far, the charge's own decision with it.
            let durable = self.log.barrier();
            let (payments, outcomes) = (payments.clone(), outcomes.clone());
            tokio::spawn(async move {
                let request = ChargeRequest {
                    org,
                    intent_id: charge.intent_id.clone(),
                    amount_cents: charge.amount_cents,
                    payment_method_id: charge.payment_method_id.clone(),
                    purpose: charge.purpose,
                };
                let outcome = match durable.durable().await {
                    Err(e) => Err(Unavailable(format!("the charge is not durable: {e}"))),
                    Ok(_) => {
                        match tokio::time::timeout(payments.charge_timeout, payments.provider.charge(&request)).await {
                            Ok(outcome) => outcome,
                            Err(_) => Err(Unavailable("no answer in time".into())),
                        }
                    }
                };
                let _ = outcomes.send(Attempted { org, intent_id: request.intent_id, outcome }).await;
            });
        }
    }

    /// Records a provider's answer and tells the top-ups waiting on it.
    fn record_attempt(&mut self, attempted: Attempted) {
        let Attempted { org, intent_id, outcome } = attempted;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%org, intent_id, %error, "a charge went unanswered; asking again later");
                let retry_at = Timestamp(self.clock.now().0 + CHARGE_RETRY_MS);
                self.attempts.insert(intent_id.clone(), (org, Some(retry_at)));
                // Its decision is durable (the provider was asked only then): "processing".
                let pending = self.ledgers.get(&org).and_then(|l| l.state.funding.pending.get(&intent_id));
                if let Some(charge) = pending {
                    let view = ChargeView {
                        intent_id: intent_id.clone(),
                        amount_cents: charge.amount_cents,
                        state: ChargeState::Pending,
                    };
                    for request in self.waiting.remove(&intent_id).unwrap_or_default() {
                        actor::reply_now(request, wire::billing_reply(Ok(LedgerReply::Charge(view.clone()))));
                    }
                }
                return;
            }
        };
        self.attempts.remove(&intent_id);
        let waiting = self.waiting.remove(&intent_id).unwrap_or_default();
        let command = LedgerCommand::RecordCharge { intent_id: intent_id.clone(), outcome };
        match self.commit(org, command, None) {
            Ok((_, pending)) => {
                let view = self.charge_view(org, &intent_id, pending.as_ref().map(|p| p.events.as_slice()));
                let pending = pending.unwrap_or_else(|| self.log.barrier());
                if !waiting.is_empty() {
                    let reply = match view {
                        Some(view) => wire::billing_reply(Ok(LedgerReply::Charge(view))),
                        None => wire::billing_reply(Err(BillingError::Unavailable)),
                    };
                    actor::reply_all_when_durable(waiting, pending, reply, |_| {
                        wire::billing_reply(Err(BillingError::Unavailable))
                    });
                }
            }
            Err(error) => {
                tracing::error!(%org, intent_id, %error, "could not record a charge's outcome");
                for request in waiting {
                    actor::reply_now(request, wire::billing_reply(Err(BillingError::Unavailable)));
                }
            }
        }
    }

    /// Where a charge stands once its outcome is recorded, from the events that recorded it.
    fn charge_view(
        &self,
        _org: OrgId,
        intent_id: &str,
        events: Option<&[eventlog::RecordedEvent]>,
    ) -> Option<ChargeView> {
        for event in events.unwrap_or_default() {
            let Ok(event) = event.decode::<LedgerEvent>() else { continue };
            match event {
                LedgerEvent::ChargeSucceeded { charge, transaction_id, .. } if charge.intent_id == intent_id => {
                    return Some(ChargeView {
                        intent_id: charge.intent_id,
                        amount_cents: charge.amount_cents,
                        state: ChargeState::Succeeded { transaction_id },
                    });
                }
                LedgerEvent::ChargeDeclined { charge, code, message, .. } if charge.intent_id == intent_id => {
                    return Some(ChargeView {
                        intent_id: charge.intent_id,
                        amount_cents: charge.amount_cents,
                        state: ChargeState::Declined { code, message },
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// Asks the provider again for the charges it left unanswered, once their wait is over.
    fn retry_unanswered_charges(&mut self) {
        let now = self.clock.now();
        let due: Vec<(String, OrgId)> = self
            .attempts
            .iter()
            .filter(|(_, (_, retry_at))| retry_at.is_some_and(|at| at <= now))
            .map(|(intent, (org, _))| (intent.clone(), *org))
            .collect();
        for (intent, org) in due {
            self.attempts.remove(&intent);
            if let Some(charge) = self.ledgers.get(&org).and_then(|l| l.state.funding.pending.get(&intent)) {
                self.outbox.push((org, charge.clone()));
            }
        }
    }

    /// Decides a command against the org's ledger and appends what it decided. Returns the
    /// reply and what it rests on: the append, or for a command found already done (a repeated
    /// top-up, say), which appended nothing, the log's barrier, since the state it reports may
    /// not be flushed yet. The reply may be sent once that is durable; a refusal at once.
    /// `request_id` is recorded as the correlation id of the events.
    pub fn decide(
        &mut self,
        org: OrgId,
        command: LedgerCommand,
        request_id: Option<&str>,
    ) -> Result<(LedgerReply, Pending), BillingError> {
        let answer = match &command {
            LedgerCommand::Reserve { reference, .. } => Answer::Reservation(reference.clone()),
            LedgerCommand::Settle { .. } => Answer::Settlement,
            LedgerCommand::TopUp { .. } => Answer::Transaction,
            LedgerCommand::SetRate { .. } => Answer::Balance,
            LedgerCommand::RequestTopUp { .. } => Answer::Charge,
            LedgerCommand::SetAutoReload(_) => Answer::Account,
            LedgerCommand::Void { .. } | LedgerCommand::Expire | LedgerCommand::RecordCharge { .. } => Answer::Done,
        };
        let is_reserve = matches!(answer, Answer::Reservation(_));
        let (recorded, pending) = self.commit(org, command, request_id).inspect_err(|error| {
            if is_reserve {
                metrics::counter!("billing_reservations_total", "outcome" => error.code()).increment(1);
            }
        })?;
        if is_reserve && pending.is_some() {
            metrics::counter!("billing_reservations_total", "outcome" => "granted").increment(1);
        }
        let ledger = &self.ledgers[&org].state;
        let reply = match answer {
            Answer::Reservation(reference) => LedgerReply::Reservation(Grant::from(&ledger.open[&reference])),
            Answer::Settlement => match recorded.closed {
                Some(Closed::Settled { charged_cents, released_cents, transaction_id }) => {
                    LedgerReply::Settlement { charged_cents, released_cents, transaction_id }
                }
                _ => unreachable!("a settle that succeeds leaves its reference settled"),
            },
            Answer::Transaction => {
                LedgerReply::Transaction(recorded.top_up.expect("a top-up that succeeds is recorded"))
            }
            Answer::Balance => LedgerReply::Balance(ledger::Balance::of(&ledger.balances, ledger.rate())),
            Answer::Charge => LedgerReply::Charge(recorded.charge.expect("a top-up that succeeds records its charge")),
            Answer::Account => LedgerReply::Account(Box::new(ledger.account(self.clock.now()))),
            Answer::Done => LedgerReply::Done,
        };
        Ok((reply, pending.unwrap_or_else(|| self.log.barrier())))
    }

    /// Decides a command against the org's ledger and appends what it decided, if anything.
    /// Returns what is recorded under the command's reference afterwards, and the append.
    fn commit(
        &mut self,
        org: OrgId,
        command: LedgerCommand,
        request_id: Option<&str>,
    ) -> Result<(Recorded, Option<Pending>), BillingError> {
        let mut recorded = match command.reference() {
            Some(reference) => self.recorded(org, &reference)?,
            None => Recorded::default(),
        };
        let folded = self.ledgers.entry(org).or_default();
        let mut ctx = Ctx { now: self.clock.now(), ids: &mut self.ids };
        let events = ledger::decide(&folded.state, &recorded, command, &mut ctx)?;
        if events.is_empty() {
            return Ok((recorded, None));
        }
        let mut appends = vec![StreamAppend {
            stream: streams::ledger(org),
            expected: ExpectedVersion::Exactly(folded.version),
            events: events
                .iter()
                .map(|e| actor::encode(e.event_type(), e).caused_by(None, request_id.map(str::to_owned)))
                .collect(),
        }];
        appends.extend(actor::id_reservation(&mut self.ids));
        let pending = self.log.append(appends).map_err(|e| {
            tracing::error!(error = %e, %org, "ledger append failed");
            BillingError::Unavailable
        })?;
        folded.advance(&events, LedgerState::apply);
        for event in &events {
            recorded.apply(event);
            if let LedgerEvent::ChargeRequested { charge, .. } = event {
                self.outbox.push((org, charge.clone()));
            }
        }
        Ok((recorded, Some(pending)))
    }

    /// What the ledger recorded under `reference`, from the projection (which every append
    /// updates at once, so it has seen every command decided before this one).
    fn recorded(&self, org: OrgId, reference: &str) -> Result<Recorded, BillingError> {
        projection::read_recorded(&self.log, org, reference).map_err(|e| {
            tracing::error!(error = %e, %org, "ledger record unreadable");
            BillingError::Unavailable
        })
    }

    /// Releases every reservation past its expiry on the partition's clock, and lets
    /// auto-reload try again where its wait after a decline is over. Nobody waits on an
    /// expiry: if one is lost in a crash, the next call repeats it.
    pub fn expire(&mut self) {
        let now = self.clock.now();
        let due: Vec<OrgId> = self
            .ledgers
            .iter()
            .filter(|(_, l)| {
                ledger::next_expiry(&l.state).is_some_and(|at| at <= now)
                    || l.state.funding.reload_due(&l.state.balances, now)
            })
            .map(|(org, _)| *org)
            .collect();
        for org in due {
            match self.commit(org, LedgerCommand::Expire, None) {
                Ok((_, Some(_pending))) => tracing::info!(%org, "released expired reservations"),
                Ok((_, None)) => {}
                Err(error) => tracing::error!(%org, %error, "could not expire reservations"),
            }
        }
    }

    /// The earliest expiry of an open reservation in the partition, if any is open.
    pub fn next_expiry(&self) -> Option<domain::Timestamp> {
        self.ledgers.values().filter_map(|l| ledger::next_expiry(&l.state)).min()
    }
}
