//! The actor that owns one billing partition's ledgers.

use std::collections::HashMap;
use std::time::Duration;

use actor::Folded;
use domain::Ctx;
use domain::ids::{IdSequence, OrgId, Partitioning};
use domain::ledger::{self, Closed, LedgerCommand, LedgerState, Recorded};
use eventlog::{ExpectedVersion, Log, Pending, StreamAppend};
use tokio::sync::watch;
use wire::pb::{self, BillingReply, Failure, FailureKind, billing_reply::Result as R};

use crate::{projection, streams};

pub struct Partition {
    log: Log,
    ids: IdSequence,
    /// Every ledger of the partition, read from the projection at start: the expiry timer must
    /// see every open reservation. Small whatever the history: balances, rate, open reservations.
    ledgers: HashMap<OrgId, Folded<LedgerState>>,
    /// The id of the request being handled, recorded as the correlation id of its events.
    request_id: Option<String>,
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
    pub fn open(partitioning: Partitioning, log: Log) -> Result<Self, eventlog::Error> {
        let ledgers = projection::read_ledgers(&log)?;
        Ok(Self { ids: actor::resume_ids(&log, partitioning)?, log, ledgers, request_id: None })
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
        let request_id = request.headers.get("x-request-id").cloned();
        let span = tracing::info_span!("billing", partition = self.log.partition(), request_id = request_id.as_deref());
        let _entered = span.enter();
        self.request_id = request_id;
        self.handle_command(request);
        self.request_id = None;
    }

    fn handle_command(&mut self, request: bus::Message) {
        let decoded = match wire::decode::<pb::BillingCommand>(&request.payload) {
            Ok(pb::BillingCommand { org_id, kind: Some(kind) }) => {
                wire::ledger_command(kind).map(|c| (OrgId(org_id), c))
            }
            _ => Err(Failure::new(FailureKind::Invalid, "bad_message", "undecodable billing command")),
        };
        match decoded.and_then(|(org, command)| self.decide(org, command)) {
            Ok((result, pending)) => {
                // A command found already done (a repeated top-up, say) appended nothing, but its
                // answer reports state that may not be flushed yet.
                let durable = pending.unwrap_or_else(|| self.log.barrier());
                actor::reply_when_durable(request, durable, wire::encode(&BillingReply::with(result)), |_| {
                    wire::encode(&BillingReply::failure(unavailable()))
                });
            }
            Err(failure) => actor::reply_now(request, wire::encode(&BillingReply::failure(failure))),
        }
    }

    fn decide(&mut self, org: OrgId, command: LedgerCommand) -> Result<(R, Option<Pending>), Failure> {
        let answer = match &command {
            LedgerCommand::Reserve { reference, .. } => Answer::Reservation(reference.clone()),
            LedgerCommand::Settle { .. } => Answer::Settlement,
            LedgerCommand::TopUp { .. } => Answer::Transaction,
            LedgerCommand::SetRate { .. } => Answer::Balance,
            LedgerCommand::Void { .. } | LedgerCommand::Expire => Answer::Done,
        };
        let is_reserve = matches!(answer, Answer::Reservation(_));
        let (recorded, pending) = self.commit(org, command).inspect_err(|f| {
            if is_reserve {
                metrics::counter!("billing_reservations_total", "outcome" => f.code.clone()).increment(1);
            }
        })?;
        if is_reserve && pending.is_some() {
            metrics::counter!("billing_reservations_total", "outcome" => "granted").increment(1);
        }
        let ledger = &self.ledgers[&org].state;
        let result = match answer {
            Answer::Reservation(reference) => R::Reservation((&ledger.open[&reference]).into()),
            Answer::Settlement => match recorded.closed {
                Some(Closed::Settled { charged_cents, released_cents, transaction_id }) => {
                    R::Settlement(pb::Settlement { charged_cents, released_cents, transaction_id })
                }
                _ => unreachable!("a settle that succeeds leaves its reference settled"),
            },
            Answer::Transaction => {
                R::Transaction(recorded.top_up.as_ref().expect("a top-up that succeeds is recorded").into())
            }
            Answer::Balance => R::Balance(wire::balance(&ledger.balances, ledger.rate())),
            Answer::Done => R::Done(pb::Empty {}),
        };
        Ok((result, pending))
    }

    /// Decides a command against the org's ledger and appends what it decided, if anything.
    /// Returns what is recorded under the command's reference afterwards.
    fn commit(&mut self, org: OrgId, command: LedgerCommand) -> Result<(Recorded, Option<Pending>), Failure> {
        let mut recorded = match command.reference() {
            Some(reference) => self.recorded(org, reference)?,
            None => Recorded::default(),
        };
        let folded = self.ledgers.entry(org).or_default();
        let events =
            ledger::decide(&folded.state, &recorded, command, &mut Ctx { now: actor::now(), ids: &mut self.ids })?;
        if events.is_empty() {
            return Ok((recorded, None));
        }
        let mut appends = vec![StreamAppend {
            stream: streams::ledger(org),
            expected: ExpectedVersion::Exactly(folded.version),
            events: events
                .iter()
                .map(|e| actor::encode(e.event_type(), e).caused_by(None, self.request_id.clone()))
                .collect(),
        }];
        appends.extend(actor::id_reservation(&mut self.ids));
        let pending = self.log.append(appends).map_err(|e| {
            tracing::error!(error = %e, %org, "ledger append failed");
            unavailable()
        })?;
        folded.advance(&events, LedgerState::apply);
        for event in &events {
            recorded.apply(event);
        }
        Ok((recorded, Some(pending)))
    }

    /// What the ledger recorded under `reference`, from the projection (which every append
    /// updates at once, so it has seen every command decided before this one).
    fn recorded(&self, org: OrgId, reference: &str) -> Result<Recorded, Failure> {
        projection::read_recorded(&self.log, org, reference).map_err(|e| {
            tracing::error!(error = %e, %org, "ledger record unreadable");
            unavailable()
        })
    }

    /// Releases every reservation past its expiry.
    fn expire(&mut self) {
        let now = actor::now();
        let due: Vec<OrgId> = self
            .ledgers
            .iter()
            .filter(|(_, l)| ledger::next_expiry(&l.state).is_some_and(|at| at <= now))
            .map(|(org, _)| *org)
            .collect();
        for org in due {
            match self.commit(org, LedgerCommand::Expire) {
                Ok((_, Some(pending))) => {
                    tracing::info!(%org, "released expired reservations");
                    // Nobody waits on an expiry; if it is lost in a crash, the next tick repeats it.
                    drop(pending);
                }
                Ok((_, None)) => {}
                Err(failure) => tracing::error!(%org, detail = %failure.detail, "could not expire reservations"),
            }
        }
    }
}

fn unavailable() -> Failure {
    Failure::new(FailureKind::Unavailable, "storage_unavailable", "The ledger is unavailable; retry later.")
}
