//! The read model of org configuration, folded from org streams by the domain's own `evolve`.
//!
//! - `org/<id>`: an org's whole configuration, because configurations are small and the API's
//!   lists read them whole.
//! - `profile/<id>` and `key/<key id>`: what authenticating a request needs (the key, its org,
//!   the org's limits), small, because every request reads them.

use domain::ids::{ApiKeyId, OrgId};
use domain::org::{ApiKey, OrgEvent, OrgProfile, OrgState};
use eventlog::{Projection, ProjectionWriter, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::streams;

pub struct OrgConfigProjection;

pub const NAME: &str = "org_config";

fn org_key(org: OrgId) -> Vec<u8> {
    [b"org/".as_slice(), &org.0.to_be_bytes()].concat()
}

fn profile_key(org: OrgId) -> Vec<u8> {
    [b"profile/".as_slice(), &org.0.to_be_bytes()].concat()
}

fn api_key_key(key: ApiKeyId) -> Vec<u8> {
    [b"key/".as_slice(), &key.0.to_be_bytes()].concat()
}

/// An API key and the org it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub org: OrgId,
    pub key: ApiKey,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

impl Projection for OrgConfigProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 2: SIP passwords are sealed. A log whose projection was built before holds passwords in
    /// the clear in it; the rebuild rewrites every value from the events, upcast (see
    /// `domain::secret`), so no projection value holds one any more.
    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let Some(org) = streams::org_of(&event.stream) else {
            return Ok(());
        };
        let org_event: OrgEvent = event.decode().map_err(|e| e.to_string())?;
        let key = org_key(org);
        let mut state: OrgState = match writer.get(&key)? {
            Some(bytes) => rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())?,
            None => OrgState::default(),
        };
        state.apply(&org_event);
        match &org_event {
            OrgEvent::ApiKeyCreated { id, .. } | OrgEvent::ApiKeyRevoked { id, .. } => {
                let record = KeyRecord { org, key: state.keys[id].clone() };
                writer.put(&api_key_key(*id), encode(&record)?);
            }
            OrgEvent::OrgCreated { .. }
            | OrgEvent::TrialSet { .. }
            | OrgEvent::TestCallLimitSet { .. }
            | OrgEvent::RateLimitSet { .. } => {
                let profile = state.profile.as_ref().ok_or("an org event without a profile")?;
                writer.put(&profile_key(org), encode(profile)?);
            }
            _ => {}
        }
        writer.put(&key, encode(&state)?);
        Ok(())
    }
}

fn read<T: serde::de::DeserializeOwned>(log: &eventlog::Log, key: &[u8]) -> Result<Option<T>, eventlog::Error> {
    log.projection_get(NAME, key)?.map(|bytes| rmp_serde::from_slice(&bytes).map_err(eventlog::Error::from)).transpose()
}

/// An org's whole configuration.
pub fn read_org(log: &eventlog::Log, org: OrgId) -> Result<Option<OrgState>, eventlog::Error> {
    read(log, &org_key(org))
}

pub fn read_profile(log: &eventlog::Log, org: OrgId) -> Result<Option<OrgProfile>, eventlog::Error> {
    read(log, &profile_key(org))
}

pub fn read_key(log: &eventlog::Log, key: ApiKeyId) -> Result<Option<KeyRecord>, eventlog::Error> {
    read(log, &api_key_key(key))
}
