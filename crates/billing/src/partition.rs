//! The actor that owns one billing partition's ledgers.
//!
//! Deciding is synchronous and knows no bus: [`Partition::decide`] takes a typed command and
//! answers a typed reply with the append it rests on, and [`Partition::expire`] releases what
//! is past its expiry on the partition's clock. [`Partition::run`] feeds both from the bus and
//! a timer; the deterministic simulation drives them directly.

use std::collections::BTreeMap;
use std::time::Duration;

use actor::{Folded, RequestContext, SharedClock};
use domain::Ctx;
use domain::ids::{IdSequence, OrgId, Partitioning};
use domain::ledger::{self, Closed, Grant, LedgerCommand, LedgerReply, LedgerState, Recorded};
use eventlog::{ExpectedVersion, Log, Pending, StreamAppend};
use tokio::sync::watch;
use wire::BillingError;

use crate::{projection, streams};

pub struct Partition {
    log: Log,
    ids: IdSequence,
    /// Every ledger of the partition, read from the projection at start: the expiry timer must
    /// see every open reservation. Small whatever the history: balances, rate, open reservations.
    /// Ordered, so an expiry visits them in the same order on every run.
    ledgers: BTreeMap<OrgId, Folded<LedgerState>>,
    /// Where decisions read the time: the wall clock, or simulated time.
    clock: SharedClock,
}

/// What a command answers, named before the command is consumed.
enum Answer {
    Reservation(String),
    Settlement,
    Transaction,
    Balance,
    Done,
}

impl Partition {
    pub fn open(partitioning: Partitioning, log: Log, clock: SharedClock) -> Result<Self, eventlog::Error> {
        let ledgers = projection::read_ledgers(&log)?;
        Ok(Self { ids: actor::resume_ids(&log, partitioning)?, log, ledgers, clock })
    }

    pub async fn run(
        mut self,
        mut commands: bus::Subscription,
        expiry_check: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut expiry = tokio::time::interval(expiry_check);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(request) = commands.next() => self.handle(request),
                _ = expiry.tick() => self.expire(),
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
            Ok((reply, durable)) => actor::reply_when_durable(request, durable, wire::billing_reply(Ok(reply)), |_| {
                wire::billing_reply(Err(BillingError::Unavailable))
            }),
            Err(error) => actor::reply_now(request, wire::billing_reply(Err(error))),
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
            LedgerCommand::Void { .. } | LedgerCommand::Expire => Answer::Done,
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
            Some(reference) => self.recorded(org, reference)?,
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

    /// Releases every reservation past its expiry on the partition's clock. Nobody waits on an
    /// expiry: if one is lost in a crash, the next call repeats it.
    pub fn expire(&mut self) {
        let now = self.clock.now();
        let due: Vec<OrgId> = self
            .ledgers
            .iter()
            .filter(|(_, l)| ledger::next_expiry(&l.state).is_some_and(|at| at <= now))
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
