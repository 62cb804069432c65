//! The read model of calls, folded from call streams by the domain's own `apply`.
//!
//! - `call/<id>`: the call's state, from its request on (the API shows it once placed).
//! - `org/<org>/<id>`: one entry per call of an org; ids grow with time in a partition, so a
//!   reverse scan lists calls newest first.
//! - `active/<id>`: present while the call runs or is not yet billed; the owner resumes
//!   exactly these after a restart.
//! - `turn/<id>/<seq>`: the transcript.

use domain::Timestamp;
use domain::call::{CallEvent, CallState, Speaker};
use domain::ids::{CallId, OrgId};
use eventlog::{Log, Projection, ProjectionWriter, RecordedEvent};
use serde::{Deserialize, Serialize};

pub const NAME: &str = "calls";
pub const STREAM_PREFIX: &str = "call/";

pub fn stream(call: CallId) -> String {
    format!("{STREAM_PREFIX}{call}")
}

fn call_of(stream: &str) -> Option<CallId> {
    stream.strip_prefix(STREAM_PREFIX)?.parse().ok().map(CallId)
}

pub fn call_key(call: CallId) -> Vec<u8> {
    [b"call/".as_slice(), &call.0.to_be_bytes()].concat()
}

pub fn org_prefix(org: OrgId) -> Vec<u8> {
    [b"org/".as_slice(), &org.0.to_be_bytes(), b"/"].concat()
}

pub fn active_prefix() -> &'static [u8] {
    b"active/"
}

fn active_key(call: CallId) -> Vec<u8> {
    [active_prefix(), &call.0.to_be_bytes()].concat()
}

pub fn turns_prefix(call: CallId) -> Vec<u8> {
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

impl Projection for CallsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        let Some(call) = call_of(&event.stream) else {
            return Ok(());
        };
        let call_event: CallEvent = event.decode().map_err(|e| e.to_string())?;
        let key = call_key(call);
        let state = match writer.get(&key)? {
            Some(bytes) => {
                let mut state: CallState = rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())?;
                state.apply(&call_event);
                state
            }
            None => CallState::start(&call_event).ok_or("a call stream starts with its request")?,
        };
        // Listed from the moment it is a call: once its funds are reserved.
        if let CallEvent::FundsReserved { .. } = call_event {
            writer.put(&[org_prefix(state.setup.org), call.0.to_be_bytes().to_vec()].concat(), Vec::new());
        }
        if let CallEvent::TranscriptTurn { seq, speaker, text, at } = &call_event {
            let turn = Turn { seq: *seq, speaker: *speaker, text: text.clone(), at: *at };
            let turn_key = [turns_prefix(call), seq.to_be_bytes().to_vec()].concat();
            writer.put(&turn_key, rmp_serde::to_vec_named(&turn).map_err(|e| e.to_string())?);
        }
        if state.is_active() {
            writer.put(&active_key(call), Vec::new());
        } else {
            writer.remove(&active_key(call));
        }
        writer.put(&key, rmp_serde::to_vec_named(&state).map_err(|e| e.to_string())?);
        Ok(())
    }
}

pub fn read_call(log: &Log, call: CallId) -> Result<Option<CallState>, eventlog::Error> {
    log.projection_get(NAME, &call_key(call))?.map(|bytes| Ok(rmp_serde::from_slice(&bytes)?)).transpose()
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
