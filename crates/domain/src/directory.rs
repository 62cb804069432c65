//! The directory: what must be unique across organizations. It allocates org ids and records
//! which org holds each phone number. One stream, owned by the directory partition.

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
    pub numbers: BTreeMap<E164, OrgId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryCommand {
    RegisterOrg { name: String },
    ClaimNumber { org_id: OrgId, number: E164 },
    ClaimDemoNumber { org_id: OrgId },
    ReleaseNumber { org_id: OrgId, number: E164 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryEvent {
    OrgRegistered { org_id: OrgId, name: String, at: Timestamp },
    NumberClaimed { number: E164, org_id: OrgId, at: Timestamp },
    NumberReleased { number: E164, org_id: OrgId, at: Timestamp },
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
            DirectoryEvent::NumberClaimed { number, org_id, .. } => {
                self.numbers.insert(number.clone(), *org_id);
            }
            DirectoryEvent::NumberReleased { number, .. } => {
                self.numbers.remove(number);
            }
        }
    }

    pub fn holder(&self, number: &E164) -> Option<OrgId> {
        self.numbers.get(number).copied()
    }
}

/// Decides a directory command. Claiming a number the org already holds, or releasing one it
/// does not, changes nothing and is not an error, so both are safe to retry.
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
        DirectoryCommand::ClaimNumber { org_id, number } => {
            if is_demo_number(&number) {
                return Err(DirectoryError::ReservedForDemo(number));
            }
            match state.holder(&number) {
                Some(holder) if holder == org_id => Ok(vec![]),
                Some(_) => Err(DirectoryError::NumberTaken(number)),
                None => Ok(vec![DirectoryEvent::NumberClaimed { number, org_id, at }]),
            }
        }
        DirectoryCommand::ClaimDemoNumber { org_id } => {
            let number = (0..DEMO_POOL_SIZE)
                .map(|n| E164::parse(&format!("{DEMO_PREFIX}{n:04}")).expect("demo numbers are E.164"))
                .find(|n| state.holder(n).is_none())
                .ok_or(DirectoryError::DemoPoolExhausted)?;
            Ok(vec![DirectoryEvent::NumberClaimed { number, org_id, at }])
        }
        DirectoryCommand::ReleaseNumber { org_id, number } => match state.holder(&number) {
            Some(holder) if holder == org_id => Ok(vec![DirectoryEvent::NumberReleased { number, org_id, at }]),
            _ => Ok(vec![]),
        },
    }
}
