//! The directory: what must be unique across organizations. It allocates org ids and records
//! which org holds each phone number. One stream, owned by the directory partition.
//!
//! A number is claimed for the phone number its org is about to record, named by a token (the
//! phone number's id): the org's partition claims, then records, and releases only what it
//! claimed and will not record, or deleted. A release names the claim it releases, so a late
//! or repeated one cannot undo a later claim of the same number by the same org. Only the org's
//! partition, which alone records its numbers, claims and releases them: nothing another
//! request of the org does can take away a claim that a recorded number rests on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Ctx, OrgId};
use crate::{E164, Timestamp};

/// Demo numbers come from a range no carrier assigns: +1 500 555 0000 to +1 500 555 9989 go to
/// orgs; the last ten are switchboard's own (the test bot's, for one).
pub const DEMO_PREFIX: &str = "+1500555";
pub const DEMO_POOL_SIZE: u32 = 9_990;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectoryState {
    pub last_org_id: u64,
    pub numbers: BTreeMap<E164, Claim>,
}

/// Who holds a number, and for which of its phone numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub org_id: OrgId,
    /// The phone number the org records the number as; 0 for claims made before claims had
    /// tokens, which any release by the org releases.
    pub token: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryCommand {
    RegisterOrg {
        name: String,
    },
    ClaimNumber {
        org_id: OrgId,
        number: E164,
        token: u64,
    },
    ClaimDemoNumber {
        org_id: OrgId,
        token: u64,
    },
    /// Releases what the claim `token` holds: `number`, or (`None`, for a demo claim whose
    /// answer was lost) whichever number it took.
    ReleaseNumber {
        org_id: OrgId,
        number: Option<E164>,
        token: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryEvent {
    OrgRegistered {
        org_id: OrgId,
        name: String,
        at: Timestamp,
    },
    NumberClaimed {
        number: E164,
        org_id: OrgId,
        #[serde(default)]
        token: u64,
        at: Timestamp,
    },
    NumberReleased {
        number: E164,
        org_id: OrgId,
        #[serde(default)]
        token: u64,
        at: Timestamp,
    },
}

impl DirectoryEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::OrgRegistered { .. } => "org_registered",
            Self::NumberClaimed { .. } => "number_claimed",
            Self::NumberReleased { .. } => "number_released",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0} is held by another organization")]
    NumberTaken(E164),
    #[error("{0} is in the range reserved for demo numbers")]
    ReservedForDemo(E164),
    #[error("no demo numbers are left")]
    DemoPoolExhausted,
}

pub fn is_demo_number(number: &E164) -> bool {
    number.as_str().starts_with(DEMO_PREFIX)
}

impl DirectoryState {
    pub fn apply(&mut self, event: &DirectoryEvent) {
        match event {
            DirectoryEvent::OrgRegistered { org_id, .. } => self.last_org_id = self.last_org_id.max(org_id.0),
            DirectoryEvent::NumberClaimed { number, org_id, token, .. } => {
                self.numbers.insert(number.clone(), Claim { org_id: *org_id, token: *token });
            }
            DirectoryEvent::NumberReleased { number, .. } => {
                self.numbers.remove(number);
            }
        }
    }

    pub fn holder(&self, number: &E164) -> Option<OrgId> {
        self.numbers.get(number).map(|claim| claim.org_id)
    }

    /// The number a claim holds.
    pub fn claimed_as(&self, claim: Claim) -> Option<&E164> {
        self.numbers.iter().find(|(_, c)| **c == claim).map(|(number, _)| number)
    }
}

/// Decides a directory command. Claiming again what the org claimed under the same token, or
/// releasing what it does not hold under that token, changes nothing and is not an error, so
/// both are safe to retry. A claim under another token replaces the org's earlier claim of the
/// number: its partition claims a number only when it records no phone number for it, so the
/// earlier claim was one it gave up on.
pub fn decide(
    state: &DirectoryState,
    command: DirectoryCommand,
    ctx: &Ctx<'_>,
) -> Result<Vec<DirectoryEvent>, DirectoryError> {
    let at = ctx.now;
    match command {
        DirectoryCommand::RegisterOrg { name } => {
            Ok(vec![DirectoryEvent::OrgRegistered { org_id: OrgId(state.last_org_id + 1), name, at }])
        }
        DirectoryCommand::ClaimNumber { org_id, number, token } => {
            if is_demo_number(&number) {
                return Err(DirectoryError::ReservedForDemo(number));
            }
            match state.numbers.get(&number) {
                Some(claim) if claim.org_id != org_id => Err(DirectoryError::NumberTaken(number)),
                Some(claim) if claim.token == token => Ok(vec![]),
                _ => Ok(vec![DirectoryEvent::NumberClaimed { number, org_id, token, at }]),
            }
        }
        DirectoryCommand::ClaimDemoNumber { org_id, token } => {
            // A retry changes nothing: the number this claim took is still its own.
            if state.claimed_as(Claim { org_id, token }).is_some() {
                return Ok(vec![]);
            }
            let number = (0..DEMO_POOL_SIZE)
                .map(|n| E164::parse(&format!("{DEMO_PREFIX}{n:04}")).expect("demo numbers are E.164"))
                .find(|n| state.holder(n).is_none())
                .ok_or(DirectoryError::DemoPoolExhausted)?;
            Ok(vec![DirectoryEvent::NumberClaimed { number, org_id, token, at }])
        }
        DirectoryCommand::ReleaseNumber { org_id, number, token } => {
            let Some(number) = number.or_else(|| state.claimed_as(Claim { org_id, token }).cloned()) else {
                return Ok(vec![]);
            };
            match state.numbers.get(&number) {
                Some(claim) if claim.org_id == org_id && (claim.token == token || claim.token == 0) => {
                    Ok(vec![DirectoryEvent::NumberReleased { number, org_id, token, at }])
                }
                _ => Ok(vec![]),
            }
        }
    }
}
