//! Runs a partition on the bus and a carrier: feeds it its inputs in order (commands, work that
//! came back, carrier reports, timers, sweeps) and performs the effects it decides, each once
//! what it rests on is durable. The partition itself performs nothing (see `effects`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bus::{Headers, SharedBus};
use domain::Timestamp;
use domain::call::{Action, CallCommand, CarrierEvent, EndReason};
use domain::directory::DirectoryCommand;
use domain::ids::{CallId, OrgId};
use domain::ledger::{LedgerCommand, LedgerReply};
use telephony::Carrier;
use tokio::sync::{mpsc, oneshot, watch};
use wire::BillingFailure;
use wire::pb::{self, Failure, FailureKind, Reply, reply};

use super::Partition;
use super::effects::{self, ClaimFailure, Effect, Finished, Work};

/// How often settlements that billing could not take are sent again.
pub const SETTLEMENT_SWEEP: Duration = Duration::from_secs(30);
/// Attempts at one settlement before waiting for the next sweep.
const BILLING_ATTEMPTS: u32 = 8;
const BILLING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claim or release waits for the directory.
const DIRECTORY_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at a release before the claim is left to the org (logged): it stays the org's, so
/// uniqueness holds; only the org can no longer free the number for others.
const RELEASE_ATTEMPTS: u32 = 6;
/// Bounds the work in flight outside the actor and the carrier events waiting for it; a full
/// channel makes the sender wait, never grows without bound.
const CHANNEL_CAPACITY: usize = 1024;

/// What the runner performs effects with, shared by the partitions of a process.
#[derive(Clone)]
pub(crate) struct Peers {
    pub carrier: Arc<dyn Carrier>,
    pub bus: SharedBus,
    /// The partition that holds the directory, where numbers are claimed.
    pub directory_partition: u32,
    /// Shreds the data keys of deleted connections' secrets.
    pub vault: crate::vault::Vault,
}

struct Runner {
    peers: Peers,
    partition: u32,
    /// Calls whose dial is in flight, each with the way to tell its dial task that the call
    /// was ended meanwhile: the carrier can end a call only once its dial has begun.
    dialing: HashMap<CallId, oneshot::Sender<()>>,
    finished_tx: mpsc::Sender<Finished>,
    carrier_tx: telephony::CarrierEvents,
}

/// Runs the partition until `shutdown`.
pub(crate) async fn run(
    mut partition: Partition,
    peers: Peers,
    mut commands: bus::Subscription,
    mut shutdown: watch::Receiver<bool>,
) {
    let (finished_tx, mut finished_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (carrier_tx, mut carrier_rx) = mpsc::channel::<(CallId, CarrierEvent)>(CHANNEL_CAPACITY);
    let mut runner =
        Runner { peers, partition: partition.partition(), dialing: HashMap::new(), finished_tx, carrier_tx };
    partition.start();
    runner.perform_all(partition.take_effects());
    let mut sweep = tokio::time::interval(SETTLEMENT_SWEEP);
    let mut key_sweep =
        tokio::time::interval(super::idempotency::sweep_interval(partition.limits.idempotency_retention_ms));
    loop {
        let next_timer = partition.next_deadline();
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(request) = commands.next() => partition.command(request),
            Some(finished) = finished_rx.recv() => {
                if let Finished::Dialed { call, .. } = &finished {
                    // The dial is over (taken or refused): from now on a hang-up goes to the carrier itself.
                    runner.dialing.remove(call);
                }
                partition.finished(finished);
            }
            Some((call, event)) = carrier_rx.recv() => partition.finished(Finished::Carrier { call, event }),
            _ = sleep_until(next_timer, partition.now()) => partition.fire_due_timers(),
            _ = sweep.tick() => partition.sweep_settlements(),
            _ = key_sweep.tick() => partition.sweep_expired_keys(),
        }
        runner.perform_all(partition.take_effects());
    }
}

/// Resolves at `at` (as the partition's clock reads `now`), or never when there is no timer.
async fn sleep_until(at: Option<Timestamp>, now: Timestamp) {
    match at {
        Some(at) => tokio::time::sleep(Duration::from_millis((at.0 - now.0).max(0) as u64)).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    fn perform_all(&mut self, work: Vec<Work>) {
        for work in work {
            self.perform(work);
        }
    }

    fn perform(&mut self, Work { request_id, effect }: Work) {
        let finished_tx = self.finished_tx.clone();
        let back = move |finished: Finished| async move {
            // The actor is gone only at shutdown, when nobody waits for what comes back.
            let _ = finished_tx.send(finished).await;
        };
        match effect {
            Effect::Answer { requests, reply, after } => {
                let reply_bytes = wire::encode(&reply);
                match after {
                    Some(after) => actor::reply_all_when_durable(requests, after, reply_bytes, |e| {
                        wire::encode(&Reply::failure(super::storage_failure(e)))
                    }),
                    None => requests.into_iter().for_each(|request| actor::reply_now(request, reply_bytes.clone())),
                }
            }
            Effect::Reserve { placement, reserve, after } => {
                let billing = self.billing(request_id);
                let org = placement.org;
                tokio::spawn(async move {
                    // Billing hears of the call only once the call is on record: a restart then
                    // knows every reservation it may have to release.
                    let outcome = match after.durable().await {
                        Ok(_) => effects::reserved(billing.send(org, &reserve).await),
                        Err(e) => {
                            tracing::error!(error = %e, "a call's request could not be made durable");
                            Err(BillingFailure::Unavailable)
                        }
                    };
                    back(Finished::Reserved { placement, outcome }).await;
                });
            }
            Effect::Dial { call, dial, request, after } => {
                let carrier = self.peers.carrier.clone();
                let carrier_tx = self.carrier_tx.clone();
                let (hung_up_tx, hung_up) = oneshot::channel();
                self.dialing.insert(call, hung_up_tx);
                tokio::spawn(async move {
                    // Dial only what is on record: a crash can then never leave an unrecorded call ringing.
                    let outcome = match (after.durable().await, dial) {
                        (Ok(_), Ok(dial)) => dial_unless_hung_up(carrier.as_ref(), dial, carrier_tx, hung_up).await,
                        (Err(e), _) => Err(carrier_error(format!("the call could not be recorded: {e}"))),
                        (Ok(_), Err(detail)) => Err(carrier_error(detail)),
                    };
                    back(Finished::Dialed { call, outcome, request }).await;
                });
            }
            Effect::HangUp { call, after } => {
                let carrier = self.peers.carrier.clone();
                let dialing = self.dialing.remove(&call);
                tokio::spawn(async move {
                    match after.durable().await {
                        // A dial task that closed its end has seen the dial end: the carrier holds the call.
                        Ok(_) => {
                            if dialing.is_none_or(|dial_task| dial_task.send(()).is_err()) {
                                carrier.hang_up(call);
                            }
                        }
                        Err(e) => tracing::error!(%call, error = %e, "the end of a call could not be made durable"),
                    }
                });
            }
            Effect::Bill { org, call, action, after } => {
                let billing = self.billing(request_id);
                tokio::spawn(async move {
                    let outcome = match after.durable().await {
                        Ok(_) => bill(&billing, org, call, action).await,
                        Err(_) => None,
                    };
                    back(Finished::Billed { call, outcome }).await;
                });
            }
            Effect::VoidLateGrant { org, call } => {
                let billing = self.billing(request_id);
                tokio::spawn(async move {
                    // Nothing comes back: the call was given up on, and recorded its own void.
                    let void = Action::Void { reference: format!("call/{call}") };
                    if bill(&billing, org, call, void).await.is_none() {
                        tracing::error!(%call, "gave up releasing a late grant: billing releases it at its expiry");
                    }
                });
            }
            Effect::Resume { dial, progress } => self.peers.carrier.resume(dial, progress, self.carrier_tx.clone()),
            Effect::Verify { org, subject, provider, slot } => {
                let carrier = self.peers.carrier.clone();
                tokio::spawn(async move {
                    let outcome = match provider {
                        Ok(provider) => carrier.verify(&provider).await,
                        Err(detail) => Err(detail),
                    };
                    // The process's slot is free again once the probe is over.
                    drop(slot);
                    back(Finished::Verified { org, subject, outcome }).await;
                });
            }
            Effect::Claim { claim, command, after } => {
                let directory = self.directory(request_id);
                tokio::spawn(async move {
                    let outcome = match after.durable().await {
                        Err(e) => Err(ClaimFailure::Refused(super::storage_failure(e))),
                        Ok(_) => match directory.send(&command).await {
                            Ok(reply::Result::NumberClaimed(c)) => {
                                wire::parse_number(&c.number).map_err(ClaimFailure::Refused)
                            }
                            Ok(_) => Err(ClaimFailure::Refused(Failure::internal("unexpected directory reply"))),
                            Err(failure) => Err(failure),
                        },
                    };
                    back(Finished::Claimed { claim, outcome }).await;
                });
            }
            Effect::Release { command, then, after } => {
                let directory = self.directory(request_id);
                tokio::spawn(release(directory, command, then, after));
            }
            Effect::Shred { sealed, request, reply, after } => {
                let vault = self.peers.vault.clone();
                tokio::spawn(async move {
                    if let Err(e) = after.durable().await {
                        return reply_failure(request, super::storage_failure(e));
                    }
                    let shredded = match sealed {
                        Some(sealed) => vault.shred(&sealed).await,
                        None => Ok(()),
                    };
                    match shredded {
                        // The deletion is durable (awaited above), and so is the shredding.
                        Ok(()) => actor::reply_now(request, wire::encode(&reply)),
                        Err(e) => reply_failure(request, super::secrets::vault_failure(e)),
                    }
                });
            }
            Effect::Flush { call, after } => {
                tokio::spawn(async move {
                    if let Err(e) = after.durable().await {
                        tracing::error!(%call, error = %e, "a carrier event could not be made durable");
                    }
                });
            }
        }
    }

    fn billing(&self, request_id: Option<String>) -> BillingClient {
        BillingClient { bus: self.peers.bus.clone(), partition: self.partition, request_id }
    }

    fn directory(&self, request_id: Option<String>) -> DirectoryClient {
        DirectoryClient {
            bus: self.peers.bus.clone(),
            subject: bus::subjects::orchestrator_commands(self.peers.directory_partition),
            request_id,
        }
    }
}

fn carrier_error(detail: String) -> telephony::DialError {
    telephony::DialError { reason: EndReason::CarrierError, sip_code: None, detail }
}

fn reply_failure(request: bus::Message, failure: Failure) {
    actor::reply_now(request, wire::encode(&Reply::failure(failure)));
}

/// Settles or voids a call's reservation, retrying with backoff; what billing confirmed comes
/// back as a command for the call, `None` once the attempts gave out (the sweep sends it again).
async fn bill(billing: &BillingClient, org: OrgId, call: CallId, action: Action) -> Option<CallCommand> {
    let mut backoff = Duration::from_millis(100);
    for _ in 0..BILLING_ATTEMPTS {
        let command = action.ledger_command().expect("a billing action");
        match effects::billed(&action, billing.send(org, &command).await) {
            Ok(command) => return Some(command),
            Err(failure) => {
                tracing::warn!(%call, %failure, "billing did not take a settlement or void; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    None
}

/// Releases the claim a `ReleaseNumber` names (its number, or whichever number the claim took),
/// once `after` is durable (a deletion must not free the number while a crash could still
/// bring it back), retrying a directory that does not answer. `then` is answered after the
/// first attempt.
async fn release(
    directory: DirectoryClient,
    command: DirectoryCommand,
    mut then: Option<(bus::Message, Reply)>,
    after: eventlog::Pending,
) {
    if let Err(e) = after.durable().await {
        tracing::error!(?command, error = %e, "a number's release waits for a log that fails");
        if let Some((request, _)) = then {
            reply_failure(request, super::storage_failure(e));
        }
        return;
    }
    let mut backoff = Duration::from_millis(100);
    for _ in 0..RELEASE_ATTEMPTS {
        let released = directory.send(&command).await;
        if let Some((request, reply)) = then.take() {
            actor::reply_now(request, wire::encode(&reply));
        }
        match released {
            Ok(_) => return,
            Err(ClaimFailure::Refused(failure) | ClaimFailure::Unanswered(failure)) => {
                tracing::warn!(?command, code = %failure.code, "the directory did not release a number; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::error!(?command, "gave up releasing a number: the org keeps its claim");
}

fn headers_for(request_id: &Option<String>) -> Headers {
    let mut headers = Headers::new();
    if let Some(id) = request_id {
        headers.insert(actor::REQUEST_ID_HEADER.to_owned(), id.clone());
    }
    headers
}

/// Requests to the billing partition that owns the same orgs as this one.
struct BillingClient {
    bus: SharedBus,
    partition: u32,
    /// The request the billing work is for, passed on in the message headers.
    request_id: Option<String>,
}

impl BillingClient {
    async fn send(&self, org: OrgId, command: &LedgerCommand) -> Result<LedgerReply, BillingFailure> {
        let subject = bus::subjects::billing_commands(self.partition);
        let headers = headers_for(&self.request_id);
        let request = wire::billing_request(org, command);
        let bytes = self
            .bus
            .request(&subject, &headers, request, BILLING_TIMEOUT)
            .await
            .map_err(|e| BillingFailure::Unreachable(e.to_string()))?;
        wire::billing_response(&bytes)
    }
}

/// Commands to the partition that holds the directory (which may be this one: the request
/// then waits in a task while the actor answers it from its inbox).
struct DirectoryClient {
    bus: SharedBus,
    subject: String,
    /// The request the claim is for, passed on in the message headers.
    request_id: Option<String>,
}

impl DirectoryClient {
    /// `Err(Unanswered)` when the directory did not answer: it may have decided all the same.
    async fn send(&self, command: &DirectoryCommand) -> Result<reply::Result, ClaimFailure> {
        let headers = headers_for(&self.request_id);
        let request = wire::directory_request(command);
        let bytes = self.bus.request(&self.subject, &headers, request, DIRECTORY_TIMEOUT).await.map_err(|e| {
            ClaimFailure::Unanswered(Failure::new(
                FailureKind::Unavailable,
                "directory_unavailable",
                format!("The directory is unavailable: {e}"),
            ))
        })?;
        let reply: pb::Reply = wire::decode(&bytes)
            .map_err(|_| ClaimFailure::Refused(Failure::internal("undecodable directory reply")))?;
        match reply.result {
            Some(reply::Result::Failure(f)) => Err(ClaimFailure::Refused(f)),
            Some(result) => Ok(result),
            None => Err(ClaimFailure::Refused(Failure::internal("empty directory reply"))),
        }
    }
}

/// Dials, unless the call is ended before the dial begins; a hang-up that arrives while the
/// dial is in flight is passed to the carrier once the dial has begun (the carrier knows a
/// call from then on), and one that arrives as the dial ends is passed on too. So whatever
/// the carrier answers later, a call ended here is ended there.
async fn dial_unless_hung_up(
    carrier: &dyn telephony::Carrier,
    dial: telephony::Dial,
    events: telephony::CarrierEvents,
    mut hung_up: oneshot::Receiver<()>,
) -> Result<(), telephony::DialError> {
    let call = dial.call_id;
    if hung_up.try_recv().is_ok() {
        return Err(telephony::DialError {
            reason: EndReason::Canceled,
            sip_code: None,
            detail: "The call was hung up before it was dialed.".into(),
        });
    }
    let dialing = carrier.dial(dial, events);
    tokio::pin!(dialing);
    let outcome = tokio::select! {
        // The dial is polled first, so that the carrier holds the call before it is told to end it.
        biased;
        outcome = &mut dialing => outcome,
        Ok(()) = &mut hung_up => {
            carrier.hang_up(call);
            return dialing.await;
        }
    };
    // A hang-up sent from now on fails, and its sender tells the carrier itself.
    hung_up.close();
    if hung_up.try_recv().is_ok() {
        carrier.hang_up(call);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use domain::voip::Provider;
    use telephony::{Carrier, CarrierEvents, Dial, DialError, Progress};

    use super::*;

    /// A carrier that records what it is asked, and takes each dial when the test says so.
    #[derive(Default)]
    struct Recording {
        asked: Mutex<Vec<&'static str>>,
        take: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl Carrier for Recording {
        async fn verify(&self, _: &Provider) -> Result<(), String> {
            Ok(())
        }
        async fn dial(&self, _: Dial, _: CarrierEvents) -> Result<(), DialError> {
            // Like the SIP carrier, it knows the call from the first poll of its dial on.
            self.asked.lock().unwrap().push("dial");
            self.take.notified().await;
            Ok(())
        }
        fn resume(&self, _: Dial, _: Progress, _: CarrierEvents) {}
        fn hang_up(&self, _: CallId) {
            self.asked.lock().unwrap().push("hang_up");
        }
    }

    fn dial() -> Dial {
        Dial {
            call_id: CallId(69),
            from: domain::E164::parse("+14155550100").unwrap(),
            to: domain::E164::parse("+14155550123").unwrap(),
            provider: Provider::Sim,
            agent: domain::agent::AgentSpec::named("Support".into()),
            scenario_prompt: None,
        }
    }

    #[tokio::test]
    async fn a_call_hung_up_before_its_dial_began_is_never_dialed() {
        let carrier = Recording::default();
        let (events, _rx) = tokio::sync::mpsc::channel(1);
        let (tx, rx) = oneshot::channel();
        tx.send(()).unwrap();
        let outcome = dial_unless_hung_up(&carrier, dial(), events, rx).await;
        assert_eq!(outcome.unwrap_err().reason, EndReason::Canceled);
        assert!(carrier.asked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_hang_up_while_the_dial_is_in_flight_reaches_the_carrier_after_the_dial_began() {
        let carrier = Arc::new(Recording::default());
        let (events, _rx) = tokio::sync::mpsc::channel(1);
        let (tx, rx) = oneshot::channel();
        let dialing = {
            let carrier = carrier.clone();
            tokio::spawn(async move { dial_unless_hung_up(carrier.as_ref(), dial(), events, rx).await })
        };
        while carrier.asked.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // The carrier is dialing and has not answered: the hang-up goes to it now, not later.
        tx.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while carrier.asked.lock().unwrap().len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the hang-up never reached the carrier");
            tokio::task::yield_now().await;
        }
        assert_eq!(*carrier.asked.lock().unwrap(), ["dial", "hang_up"]);
        carrier.take.notify_one();
        assert!(dialing.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn once_the_dial_is_over_a_hang_up_is_refused_so_its_sender_tells_the_carrier() {
        let carrier = Recording::default();
        carrier.take.notify_one();
        let (events, _rx) = tokio::sync::mpsc::channel(1);
        let (tx, rx) = oneshot::channel();
        assert!(dial_unless_hung_up(&carrier, dial(), events, rx).await.is_ok());
        assert!(tx.send(()).is_err(), "Effect::HangUp then calls the carrier itself");
        assert_eq!(*carrier.asked.lock().unwrap(), ["dial"]);
    }
}
