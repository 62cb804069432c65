//! The read model of org configuration, folded from org streams by the domain's own `apply`.
//!
//! Each resource has keys of its own, so an event rewrites only what it changed and a query
//! reads only what it shows, however large the org grows:
//!
//! - `profile/<org>`: the org's profile and limits.
//! - `key/<key id>`: an API key and its org, which authenticating a request reads.
//! - `org/<org>/key/<key id>`: an empty entry per key of the org, for listing them.
//! - `org/<org>/agent/<id>`, `org/<org>/connection/<id>`, `org/<org>/number/<id>`: one value
//!   each; a list is a prefix scan.
//! - `org/<org>/e164/<number>`: the id of the org's phone number with that E.164 number.

use domain::E164;
use domain::ids::{AgentId, ApiKeyId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{Agent, ApiKey, OrgEvent, OrgProfile, OrgState, PhoneNumber, VoipConnection};
use eventlog::{Log, Projection, ProjectionWriter, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::projection_values::{decode, encode};
use crate::{projection_values, streams};

pub struct OrgConfigProjection;

pub const NAME: &str = "org_config";

fn profile_key(org: OrgId) -> Vec<u8> {
    [b"profile/".as_slice(), &org.0.to_be_bytes()].concat()
}

fn api_key_key(key: ApiKeyId) -> Vec<u8> {
    [b"key/".as_slice(), &key.0.to_be_bytes()].concat()
}

/// The prefix of one kind of resource of an org (`key`, `agent`, `connection`, `number`, `e164`).
fn resources(org: OrgId, kind: &str) -> Vec<u8> {
    [b"org/".as_slice(), &org.0.to_be_bytes(), b"/", kind.as_bytes(), b"/"].concat()
}

fn resource_key(org: OrgId, kind: &str, id: u64) -> Vec<u8> {
    [resources(org, kind), id.to_be_bytes().to_vec()].concat()
}

fn e164_key(org: OrgId, number: &E164) -> Vec<u8> {
    [resources(org, "e164"), number.as_str().as_bytes().to_vec()].concat()
}

/// An API key and the org it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub org: OrgId,
    pub key: ApiKey,
}

/// The one resource an org event changes.
enum Touched {
    Profile,
    Key(ApiKeyId),
    Agent(AgentId),
    Connection(VoipConnectionId),
    Number(PhoneNumberId),
    /// Connection tests: evidence the actor alone reads, from the stream.
    Nothing,
}

fn touched(event: &OrgEvent) -> Touched {
    match event {
        OrgEvent::OrgCreated { .. }
        | OrgEvent::TrialSet { .. }
        | OrgEvent::TestCallLimitSet { .. }
        | OrgEvent::RateLimitSet { .. }
        | OrgEvent::QuotaSet { .. } => Touched::Profile,
        OrgEvent::ApiKeyCreated { id, .. } | OrgEvent::ApiKeyRevoked { id, .. } => Touched::Key(*id),
        OrgEvent::AgentCreated { id, .. } | OrgEvent::AgentUpdated { id, .. } | OrgEvent::AgentDeleted { id, .. } => {
            Touched::Agent(*id)
        }
        OrgEvent::VoipConnectionCreated { id, .. }
        | OrgEvent::VoipConnectionVerified { id, .. }
        | OrgEvent::VoipConnectionProven { id, .. }
        | OrgEvent::VoipConnectionUpdated { id, .. }
        | OrgEvent::VoipConnectionDeleted { id, .. } => Touched::Connection(*id),
        OrgEvent::PhoneNumberCreated { id, .. }
        | OrgEvent::PhoneNumberAgentsChanged { id, .. }
        | OrgEvent::PhoneNumberUpdated { id, .. }
        | OrgEvent::PhoneNumberVerified { id, .. }
        | OrgEvent::PhoneNumberDeleted { id, .. } => Touched::Number(*id),
        OrgEvent::VoipConnectionTested { .. } => Touched::Nothing,
    }
}

impl Projection for OrgConfigProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 2: one key per resource (1 kept the whole configuration in one value); SIP passwords are
    /// sealed. A log whose projection was built before holds passwords in the clear in it; the
    /// rebuild rewrites every value from the events, upcast (see `domain::secret`), so no
    /// projection value holds one any more.
    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let Some(org) = streams::org_of(&event.stream) else {
            return Ok(());
        };
        let org_event: OrgEvent = event.decode().map_err(|e| e.to_string())?;
        // The event is folded by the domain's own rules, into a state that holds only the
        // resource it touches: what it was, then what it is.
        let mut state = OrgState::default();
        let touched = touched(&org_event);
        let get = |key: &[u8]| writer.get(key);
        match touched {
            Touched::Nothing => return Ok(()),
            Touched::Profile => state.profile = get(&profile_key(org))?.map(|b| decode(&b)).transpose()?,
            Touched::Key(id) => {
                if let Some(bytes) = get(&api_key_key(id))? {
                    state.keys.insert(id, decode::<KeyRecord>(&bytes)?.key);
                }
            }
            Touched::Agent(id) => {
                if let Some(bytes) = get(&resource_key(org, "agent", id.0))? {
                    state.agents.insert(id, decode(&bytes)?);
                }
            }
            Touched::Connection(id) => {
                if let Some(bytes) = get(&resource_key(org, "connection", id.0))? {
                    state.connections.insert(id, decode(&bytes)?);
                }
            }
            Touched::Number(id) => {
                if let Some(bytes) = get(&resource_key(org, "number", id.0))? {
                    state.numbers.insert(id, decode(&bytes)?);
                }
            }
        }
        let before = state.numbers.values().next().map(|n| n.number.clone());
        state.apply(&org_event);
        match touched {
            Touched::Nothing => {}
            Touched::Profile => {
                let profile = state.profile.as_ref().ok_or("an org event without a profile")?;
                writer.put(&profile_key(org), encode(profile)?);
            }
            Touched::Key(id) => {
                let key = state.keys.remove(&id).ok_or("a key event for a key never created")?;
                writer.put(&api_key_key(id), encode(&KeyRecord { org, key })?);
                writer.put(&resource_key(org, "key", id.0), Vec::new());
            }
            Touched::Agent(id) => put_or_remove(writer, resource_key(org, "agent", id.0), state.agents.get(&id))?,
            Touched::Connection(id) => {
                put_or_remove(writer, resource_key(org, "connection", id.0), state.connections.get(&id))?
            }
            Touched::Number(id) => {
                let number = state.numbers.get(&id);
                if let Some(old) = before.filter(|old| number.is_none_or(|n| &n.number != old)) {
                    writer.remove(&e164_key(org, &old));
                }
                if let Some(n) = number {
                    writer.put(&e164_key(org, &n.number), id.0.to_be_bytes().to_vec());
                }
                put_or_remove(writer, resource_key(org, "number", id.0), number)?;
            }
        }
        Ok(())
    }
}

fn put_or_remove<T: Serialize>(
    writer: &mut ProjectionWriter<'_>,
    key: Vec<u8>,
    value: Option<&T>,
) -> Result<(), String> {
    match value {
        Some(value) => writer.put(&key, encode(value)?),
        None => writer.remove(&key),
    }
    Ok(())
}

fn read<T: DeserializeOwned>(log: &Log, key: &[u8]) -> Result<Option<T>, eventlog::Error> {
    projection_values::read(log, NAME, key)
}

/// Every value under a prefix, in id order.
fn scan<T: DeserializeOwned>(log: &Log, prefix: &[u8]) -> Result<Vec<T>, eventlog::Error> {
    log.projection_scan(NAME, prefix).map(|entry| Ok(rmp_serde::from_slice(&entry?.1)?)).collect()
}

pub fn read_profile(log: &Log, org: OrgId) -> Result<Option<OrgProfile>, eventlog::Error> {
    read(log, &profile_key(org))
}

pub fn read_key(log: &Log, key: ApiKeyId) -> Result<Option<KeyRecord>, eventlog::Error> {
    read(log, &api_key_key(key))
}

/// The org's API keys, revoked ones included, in id order.
pub fn list_keys(log: &Log, org: OrgId) -> Result<Vec<ApiKey>, eventlog::Error> {
    let prefix = resources(org, "key");
    let mut keys = Vec::new();
    for entry in log.projection_scan(NAME, &prefix) {
        let (key, _) = entry?;
        let id: [u8; 8] = key[prefix.len()..].try_into().expect("key ids are 8 bytes");
        if let Some(record) = read_key(log, ApiKeyId(u64::from_be_bytes(id)))? {
            keys.push(record.key);
        }
    }
    Ok(keys)
}

pub fn read_agent(log: &Log, org: OrgId, id: AgentId) -> Result<Option<Agent>, eventlog::Error> {
    read(log, &resource_key(org, "agent", id.0))
}

pub fn list_agents(log: &Log, org: OrgId) -> Result<Vec<Agent>, eventlog::Error> {
    scan(log, &resources(org, "agent"))
}

pub fn read_connection(log: &Log, org: OrgId, id: VoipConnectionId) -> Result<Option<VoipConnection>, eventlog::Error> {
    read(log, &resource_key(org, "connection", id.0))
}

pub fn list_connections(log: &Log, org: OrgId) -> Result<Vec<VoipConnection>, eventlog::Error> {
    scan(log, &resources(org, "connection"))
}

pub fn read_number(log: &Log, org: OrgId, id: PhoneNumberId) -> Result<Option<PhoneNumber>, eventlog::Error> {
    read(log, &resource_key(org, "number", id.0))
}

pub fn list_numbers(log: &Log, org: OrgId) -> Result<Vec<PhoneNumber>, eventlog::Error> {
    scan(log, &resources(org, "number"))
}

/// The org's phone number with this E.164 number, through the index.
pub fn read_number_by_e164(log: &Log, org: OrgId, number: &E164) -> Result<Option<PhoneNumber>, eventlog::Error> {
    match log.projection_get(NAME, &e164_key(org, number))? {
        Some(id) => {
            let id: [u8; 8] = id.as_slice().try_into().expect("phone number ids are 8 bytes");
            read_number(log, org, PhoneNumberId(u64::from_be_bytes(id)))
        }
        None => Ok(None),
    }
}
