//! The read model of calls, folded from call streams by the domain's own `apply`.
//!
//! - `call/<id>`: the call's state, from its request on (the API shows it once placed).
//! - `list/<filter>/<id>`: one entry per call on each list the API offers ([`CallFilter`]: all
//!   of an org's calls, those of a status, a direction, an agent, and every combination of
//!   these), and `count/<filter>`, how many calls the list holds. Ids grow with time in a
//!   partition, so a reverse scan of a list pages newest first, and a page costs the page
//!   whatever the history. A call's status changes over its life: its entries move with it.
//! - `active/<id>`: present while the call runs or is not yet billed; the owner resumes
//!   exactly these after a restart.
//! - `turn/<id>/<seq>`: the transcript.

use domain::Timestamp;
use domain::call::{CallEvent, CallState, Direction, Speaker, Status};
use domain::ids::{AgentId, CallId, OrgId};
use eventlog::{Log, Projection, ProjectionWriter, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::projection_values::{self, be_u64, decode, encode};
use crate::streams;

pub const NAME: &str = "calls";
pub fn call_key(call: CallId) -> Vec<u8> {
    [b"call/".as_slice(), &call.0.to_be_bytes()].concat()
}

/// One list of an org's calls that the API offers: each field given narrows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    pub status: Option<Status>,
    pub direction: Option<Direction>,
    pub agent_id: Option<AgentId>,
}

impl CallFilter {
    /// Every list the call is on: each combination of its status, direction and agent (a
    /// call without a saved agent is on no agent's list).
    fn lists_of(call: &CallState) -> Vec<CallFilter> {
        let (status, direction, agent) = (call.status(), call.setup.direction, call.setup.agent_id);
        let mut lists = Vec::with_capacity(8);
        for status in [None, Some(status)] {
            for direction in [None, Some(direction)] {
                let agents = match agent {
                    Some(agent) => vec![None, Some(agent)],
                    None => vec![None],
                };
                for agent_id in agents {
                    lists.push(CallFilter { status, direction, agent_id });
                }
            }
        }
        lists
    }

    /// The list's name in keys. Each part has a tag byte that says whether it is given (and so
    /// how long it is), so no list's name is a prefix of another's.
    fn key(&self, org: OrgId) -> Vec<u8> {
        let mut key = org.0.to_be_bytes().to_vec();
        key.push(match self.status {
            None => 0,
            Some(Status::InProgress) => 1,
            Some(Status::Completed) => 2,
            Some(Status::Failed) => 3,
        });
        key.push(match self.direction {
            None => 0,
            Some(Direction::Outbound) => 1,
            Some(Direction::Inbound) => 2,
        });
        match self.agent_id {
            None => key.push(0),
            Some(agent) => {
                key.push(1);
                key.extend_from_slice(&agent.0.to_be_bytes());
            }
        }
        key
    }
}

fn list_prefix(org: OrgId, filter: &CallFilter) -> Vec<u8> {
    [b"list/".as_slice(), &filter.key(org)].concat()
}

fn count_key(org: OrgId, filter: &CallFilter) -> Vec<u8> {
    [b"count/".as_slice(), &filter.key(org)].concat()
}

pub fn active_prefix() -> &'static [u8] {
    b"active/"
}

fn active_key(call: CallId) -> Vec<u8> {
    [active_prefix(), &call.0.to_be_bytes()].concat()
}

fn turns_prefix(call: CallId) -> Vec<u8> {
    [b"turn/".as_slice(), &call.0.to_be_bytes(), b"/"].concat()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub seq: u32,
    pub speaker: Speaker,
    pub text: String,
    pub at: Timestamp,
}

pub struct CallsProjection;

/// The lists a call is on: none until its funds are reserved (from then on the API shows it).
fn listed(call: &CallState) -> Vec<CallFilter> {
    if call.is_placed() { CallFilter::lists_of(call) } else { Vec::new() }
}

impl Projection for CallsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 3: calls record when they were billed (2 added a list and a count per filter; 1 had
    /// one unfiltered list, and no counts).
    fn version(&self) -> u32 {
        3
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let Some(call) = streams::call_of(&event.stream) else {
            return Ok(());
        };
        let call_event: CallEvent = event.decode().map_err(|e| e.to_string())?;
        let key = call_key(call);
        let (state, listed_before) = match writer.get(&key)? {
            Some(bytes) => {
                let mut state: CallState = decode(&bytes)?;
                let listed_before = listed(&state);
                state.apply(&call_event);
                (state, listed_before)
            }
            None => (CallState::start(&call_event).ok_or("a call stream starts with its request")?, Vec::new()),
        };
        let listed_now = listed(&state);
        let org = state.setup.org;
        for (filter, delta) in listed_before
            .iter()
            .filter(|f| !listed_now.contains(f))
            .map(|f| (f, -1))
            .chain(listed_now.iter().filter(|f| !listed_before.contains(f)).map(|f| (f, 1)))
        {
            let entry = [list_prefix(org, filter), call.0.to_be_bytes().to_vec()].concat();
            if delta > 0 {
                writer.put(&entry, Vec::new());
            } else {
                writer.remove(&entry);
            }
            let count_key = count_key(org, filter);
            let count = writer.get(&count_key)?.map_or(0, |b| be_u64(&b));
            writer.put(&count_key, count.saturating_add_signed(delta).to_be_bytes().to_vec());
        }
        if let CallEvent::TranscriptTurn { seq, speaker, text, at } = &call_event {
            let turn = Turn { seq: *seq, speaker: *speaker, text: text.clone(), at: *at };
            let turn_key = [turns_prefix(call), seq.to_be_bytes().to_vec()].concat();
            writer.put(&turn_key, encode(&turn)?);
        }
        if state.is_active() {
            writer.put(&active_key(call), Vec::new());
        } else {
            writer.remove(&active_key(call));
        }
        writer.put(&key, encode(&state)?);
        Ok(())
    }
}

pub fn read_call(log: &Log, call: CallId) -> Result<Option<CallState>, eventlog::Error> {
    projection_values::read(log, NAME, &call_key(call))
}

/// The call's transcript, in the order it was spoken.
pub fn read_turns(log: &Log, call: CallId) -> Result<Vec<Turn>, eventlog::Error> {
    log.projection_scan(NAME, &turns_prefix(call)).map(|entry| Ok(rmp_serde::from_slice(&entry?.1)?)).collect()
}

/// The calls that still need their owner, for a restart.
pub fn active_calls(log: &Log) -> Result<Vec<CallId>, eventlog::Error> {
    log.projection_scan(NAME, active_prefix())
        .map(|entry| {
            let (key, _) = entry?;
            let id: [u8; 8] = key[active_prefix().len()..].try_into().expect("call ids are 8 bytes");
            Ok(CallId(u64::from_be_bytes(id)))
        })
        .collect()
}

/// How many calls a list holds.
pub fn count(log: &Log, org: OrgId, filter: &CallFilter) -> Result<u64, eventlog::Error> {
    Ok(log.projection_get(NAME, &count_key(org, filter))?.map_or(0, |b| be_u64(&b)))
}

/// A list's ids, newest first, from the one before `before` (from the newest, with none):
/// keys only, for a query that reads and filters the calls itself.
pub fn ids_newest_first<'a>(
    log: &'a Log,
    org: OrgId,
    filter: &CallFilter,
    before: Option<CallId>,
) -> impl Iterator<Item = Result<CallId, eventlog::Error>> + use<'a> {
    let prefix_len = list_prefix(org, filter).len();
    log.projection_scan(NAME, &list_prefix(org, filter))
        .rev()
        .map(move |entry| Ok(CallId(be_u64(&entry?.0[prefix_len..]))))
        // Newest first: the ids at or after `before` come first, and are skipped.
        .skip_while(move |id| matches!(id, Ok(id) if before.is_some_and(|b| id.0 >= b.0)))
}

/// A page of a list, newest first: the ids after the first `offset`. Skipping reads keys
/// only; the calls themselves are read for the page alone.
pub fn page(
    log: &Log,
    org: OrgId,
    filter: &CallFilter,
    offset: usize,
    limit: usize,
) -> Result<Vec<CallId>, eventlog::Error> {
    let prefix_len = list_prefix(org, filter).len();
    log.projection_scan(NAME, &list_prefix(org, filter))
        .rev()
        .skip(offset)
        .take(limit)
        .map(|entry| Ok(CallId(be_u64(&entry?.0[prefix_len..]))))
        .collect()
}
