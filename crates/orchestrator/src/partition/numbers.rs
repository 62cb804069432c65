//! Phone numbers inside the org's partition actor. A number is unique across orgs, so adding
//! one is a small saga that only this actor runs: check the org may add it, claim it in the
//! directory under the id the org will record it as, record it, and release the claim only if
//! it will not be recorded. Deleting a number records the deletion, then releases its claim.
//!
//! Because this actor alone records the org's numbers and runs one claim of each number at a
//! time, and a release names the claim it releases (see `domain::directory`), the directory holds
//! a claim for every number an org records: no failure report, timeout or parallel request can
//! undo it.

use std::time::Duration;

use bus::Headers;
use domain::E164;
use domain::ids::{OrgId, PhoneNumberId};
use domain::org::{self, NewNumber, OrgCommand, OrgError};
use wire::pb::{self, Failure, FailureKind, Reply, command::Kind, reply};

use super::{Internal, Partition, answer, load_org};

/// The code of a request the directory did not answer: it may or may not have been decided.
const DIRECTORY_UNAVAILABLE: &str = "directory_unavailable";
/// How long a claim or release waits for the directory.
const DIRECTORY_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at a release before the claim is left to the org (logged): it stays the org's, so
/// uniqueness holds; only the org can no longer free the number for others.
const RELEASE_ATTEMPTS: u32 = 6;

/// A number being claimed for an org, and who waits for it.
pub struct PendingClaim {
    org: OrgId,
    /// The id the number will be recorded under: the claim's token.
    id: PhoneNumberId,
    number: NewNumber,
    request: bus::Message,
}

impl Partition {
    /// Checks the org may add the number, then asks the directory to claim it.
    pub(super) fn create_number(&mut self, org: OrgId, number: NewNumber, request: bus::Message) {
        let checked = load_org(&self.log, &mut self.orgs, org)
            .and_then(|folded| org::check_new_number(&folded.state, None, &number).map_err(Failure::from));
        if let Err(failure) = checked {
            return answer(request, Err(failure));
        }
        if let Some(own) = &number.number
            && !self.claiming.insert((org, own.clone()))
        {
            // Another request of the org is adding it now; it alone may hold the claim.
            return answer(request, Err(OrgError::NumberExists(own.clone()).into()));
        }
        let id = PhoneNumberId(self.ids.next_id());
        // The id is the claim's token, which the directory records: the block it comes from must
        // be on record before the claim is sent, or a restart could hand the id out again.
        if let Some(reservation) = actor::id_reservation(&mut self.ids)
            && let Err(e) = super::append(&self.log, self.request_id.as_deref(), vec![reservation])
        {
            if let Some(own) = &number.number {
                self.claiming.remove(&(org, own.clone()));
            }
            return answer(request, Err(super::storage_failure(e)));
        }
        let recorded = self.log.barrier();
        let kind = match &number.number {
            Some(own) => Kind::ClaimNumber(pb::ClaimNumber { number: own.to_string(), token: id.0 }),
            None => Kind::ClaimDemoNumber(pb::ClaimDemoNumber { token: id.0 }),
        };
        let directory = self.directory_client();
        let internal_tx = self.internal_tx.clone();
        let claim = Box::new(PendingClaim { org, id, number, request });
        tokio::spawn(async move {
            let outcome = match recorded.durable().await {
                Err(e) => Err(super::storage_failure(e)),
                Ok(_) => match directory.send(org, kind).await {
                    Ok(reply::Result::NumberClaimed(c)) => wire::parse_number(&c.number),
                    Ok(_) => Err(Failure::internal("unexpected directory reply")),
                    Err(failure) => Err(failure),
                },
            };
            let _ = internal_tx.send(Internal::Claimed { claim, outcome }).await;
        });
    }

    /// The directory answered: the number is recorded, or (if it will not be) released.
    pub(super) fn claimed(&mut self, claim: PendingClaim, outcome: Result<E164, Failure>) {
        let PendingClaim { org, id, number, request } = claim;
        if let Some(own) = &number.number {
            self.claiming.remove(&(org, own.clone()));
        }
        let claimed = match outcome {
            Ok(claimed) => claimed,
            Err(failure) => {
                // A refusal (taken, reserved, none left) claimed nothing. A directory that did
                // not answer may have claimed all the same: release that claim, whose token only
                // this request used (for a demo number, whichever number it took).
                if failure.code == DIRECTORY_UNAVAILABLE {
                    self.release_number(org, number.number, id, None);
                }
                return answer(request, Err(failure));
            }
        };
        let command = OrgCommand::CreatePhoneNumber { id, number: claimed.clone(), request: number };
        let outcome = self.decide_org(org, command);
        if outcome.is_err() {
            // The org changed while the directory claimed (an agent deleted, say): the number
            // will not be recorded under this claim.
            self.release_number(org, Some(claimed), id, None);
        }
        answer(request, outcome);
    }

    /// Records the deletion, then releases the number's claim once that is durable, and
    /// answers once the directory was asked: whoever deleted a number may add it elsewhere next.
    pub(super) fn delete_number(&mut self, org: OrgId, id: PhoneNumberId, request: bus::Message) {
        let number = match load_org(&self.log, &mut self.orgs, org) {
            Ok(folded) => folded.state.numbers.get(&id).map(|n| n.number.clone()),
            Err(failure) => return answer(request, Err(failure)),
        };
        match (self.decide_org(org, OrgCommand::DeletePhoneNumber { id }), number) {
            (Ok(decided), Some(number)) => self.release_number(org, Some(number), id, Some((request, decided.reply))),
            (outcome, _) => answer(request, outcome),
        }
    }

    /// Releases the claim `id` holds on `number` (or, with none, on whichever number it took),
    /// once everything appended so far is durable (a deletion must not free the number while a
    /// crash could still bring it back), retrying a directory that does not answer. `then` is
    /// answered after the first attempt.
    fn release_number(
        &self,
        org: OrgId,
        number: Option<E164>,
        id: PhoneNumberId,
        mut then: Option<(bus::Message, Reply)>,
    ) {
        let number = number.map(|n| n.to_string()).unwrap_or_default();
        let durable = self.log.barrier();
        let directory = self.directory_client();
        tokio::spawn(async move {
            if let Err(e) = durable.durable().await {
                tracing::error!(%org, %number, error = %e, "a number's release waits for a log that fails");
                if let Some((request, _)) = then {
                    actor::reply_now(request, wire::encode(&Reply::failure(super::storage_failure(e))));
                }
                return;
            }
            let mut backoff = Duration::from_millis(100);
            for _ in 0..RELEASE_ATTEMPTS {
                let release = Kind::ReleaseNumber(pb::ClaimNumber { number: number.clone(), token: id.0 });
                let released = directory.send(org, release).await;
                if let Some((request, reply)) = then.take() {
                    actor::reply_now(request, wire::encode(&reply));
                }
                match released {
                    Ok(_) => return,
                    Err(failure) => {
                        tracing::warn!(%org, %number, code = %failure.code, "the directory did not release a number; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            tracing::error!(%org, %number, "gave up releasing a number: the org keeps its claim");
        });
    }

    fn directory_client(&self) -> DirectoryClient {
        DirectoryClient {
            bus: self.bus.clone(),
            subject: bus::subjects::orchestrator_commands(self.directory_partition),
            request_id: self.request_id.clone(),
        }
    }
}

/// Commands to the partition that holds the directory (which may be this one: the request
/// then waits in a task while the actor answers it from its inbox).
struct DirectoryClient {
    bus: bus::SharedBus,
    subject: String,
    /// The request the claim is for, passed on in the message headers.
    request_id: Option<String>,
}

impl DirectoryClient {
    async fn send(&self, org: OrgId, kind: Kind) -> Result<reply::Result, Failure> {
        let mut headers = Headers::new();
        if let Some(id) = &self.request_id {
            headers.insert("x-request-id".to_owned(), id.clone());
        }
        let command = pb::Command { org_id: org.0, kind: Some(kind) };
        let bytes =
            self.bus.request(&self.subject, &headers, wire::encode(&command), DIRECTORY_TIMEOUT).await.map_err(
                |e| {
                    Failure::new(
                        FailureKind::Unavailable,
                        DIRECTORY_UNAVAILABLE,
                        format!("The directory is unavailable: {e}"),
                    )
                },
            )?;
        let reply: pb::Reply = wire::decode(&bytes).map_err(|_| Failure::internal("undecodable directory reply"))?;
        match reply.result {
            Some(reply::Result::Failure(f)) => Err(f),
            Some(result) => Ok(result),
            None => Err(Failure::internal("empty directory reply")),
        }
    }
}
