//! Phone numbers inside the org's partition actor. A number is unique across orgs, so adding
//! one is a small saga that only this actor runs: check the org may add it, claim it in the
//! directory under the id the org will record it as, record it, and release the claim only if
//! it will not be recorded. Deleting a number records the deletion, then releases its claim.
//!
//! Because this actor alone records the org's numbers and runs one claim of each number at a
//! time, and a release names the claim it releases (see `domain::directory`), the directory holds
//! a claim for every number an org records: no failure report, timeout or parallel request can
//! undo it.

use domain::E164;
use domain::directory::DirectoryCommand;
use domain::ids::{OrgId, PhoneNumberId};
use domain::org::{self, NewNumber, OrgCommand, OrgError};
use wire::pb::{Failure, Reply};

use super::effects::{ClaimFailure, Effect};
use super::{Partition, load_org};

/// A number being claimed for an org, and who waits for it.
#[derive(Debug)]
pub struct PendingClaim {
    pub(super) org: OrgId,
    /// The id the number will be recorded under: the claim's token.
    id: PhoneNumberId,
    number: NewNumber,
    request: bus::Message,
}

impl PendingClaim {
    pub fn org(&self) -> OrgId {
        self.org
    }
}

impl Partition {
    /// Checks the org may add the number, then asks the directory to claim it.
    pub(super) fn create_number(&mut self, org: OrgId, number: NewNumber, request: bus::Message) {
        let checked = load_org(&self.log, &mut self.orgs, org)
            .and_then(|folded| org::check_new_number(&folded.state, None, &number).map_err(Failure::from));
        if let Err(failure) = checked {
            return self.answer(request, Err(failure));
        }
        if let Some(own) = &number.number
            && !self.claiming.insert((org, own.clone()))
        {
            // Another request of the org is adding it now; it alone may hold the claim.
            return self.answer(request, Err(OrgError::NumberExists(own.clone()).into()));
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
            return self.answer(request, Err(super::storage_failure(e)));
        }
        let recorded = self.log.barrier();
        let command = match &number.number {
            Some(own) => DirectoryCommand::ClaimNumber { org_id: org, number: own.clone(), token: id.0 },
            None => DirectoryCommand::ClaimDemoNumber { org_id: org, token: id.0 },
        };
        let claim = Box::new(PendingClaim { org, id, number, request });
        self.perform(Effect::Claim { claim, command, after: recorded });
    }

    /// The directory answered: the number is recorded, or (if it will not be) released.
    pub(super) fn claimed(&mut self, claim: PendingClaim, outcome: Result<E164, ClaimFailure>) {
        let PendingClaim { org, id, number, request } = claim;
        if let Some(own) = &number.number {
            self.claiming.remove(&(org, own.clone()));
        }
        let claimed = match outcome {
            Ok(claimed) => claimed,
            // A refusal (taken, reserved, none left) claimed nothing.
            Err(ClaimFailure::Refused(failure)) => return self.answer(request, Err(failure)),
            // A directory that did not answer may have claimed all the same: release that
            // claim, whose token only this request used (for a demo number, whichever it took).
            Err(ClaimFailure::Unanswered(failure)) => {
                self.release_number(org, number.number, id, None);
                return self.answer(request, Err(failure));
            }
        };
        let command = OrgCommand::CreatePhoneNumber { id, number: claimed.clone(), request: number };
        let outcome = self.decide_org(org, command);
        if outcome.is_err() {
            // The org changed while the directory claimed (an agent deleted, say): the number
            // will not be recorded under this claim.
            self.release_number(org, Some(claimed), id, None);
        }
        self.answer(request, outcome);
    }

    /// Records the deletion, then releases the number's claim once that is durable, and
    /// answers once the directory was asked: whoever deleted a number may add it elsewhere next.
    pub(super) fn delete_number(&mut self, org: OrgId, id: PhoneNumberId, request: bus::Message) {
        let number = match load_org(&self.log, &mut self.orgs, org) {
            Ok(folded) => folded.state.numbers.get(&id).map(|n| n.number.clone()),
            Err(failure) => return self.answer(request, Err(failure)),
        };
        match (self.decide_org(org, OrgCommand::DeletePhoneNumber { id }), number) {
            (Ok(decided), Some(number)) => self.release_number(org, Some(number), id, Some((request, decided.reply))),
            (outcome, _) => self.answer(request, outcome),
        }
    }

    /// Releases the claim `id` holds on `number` (or, with none, on whichever number it took),
    /// once everything appended so far is durable: a deletion must not free the number while a
    /// crash could still bring it back. See [`Effect::Release`] for the retries and `then`.
    fn release_number(
        &mut self,
        org: OrgId,
        number: Option<E164>,
        id: PhoneNumberId,
        then: Option<(bus::Message, Reply)>,
    ) {
        let command = DirectoryCommand::ReleaseNumber { org_id: org, number, token: id.0 };
        let after = self.log.barrier();
        self.perform(Effect::Release { command, then, after });
    }
}
