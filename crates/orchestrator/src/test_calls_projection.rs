//! The read model of test-call runs and batches.
//!
//! - `run/<id>`: a run; `org_run/<org>/<id>`: an org's runs, newest last.
//! - `batch/<id>`: a batch; `org_batch/<org>/<id>`: an org's batches.
//! - `active_batch/<id>`: present while a batch has runs left to launch; the owner resumes
//!   exactly these after a restart.

use domain::ids::OrgId;
use domain::test_call::{BatchEvent, BatchState, RunEvent, RunState};
use eventlog::{Log, Projection, ProjectionWriter, RecordedEvent};

use crate::projection_values::{self, decode, encode};
use crate::streams;

pub const NAME: &str = "test_calls";
fn key(kind: &str, id: u64) -> Vec<u8> {
    [kind.as_bytes(), &id.to_be_bytes()].concat()
}

pub fn org_runs(org: OrgId) -> Vec<u8> {
    [b"org_run/".as_slice(), &org.0.to_be_bytes(), b"/"].concat()
}

pub fn org_batches(org: OrgId) -> Vec<u8> {
    [b"org_batch/".as_slice(), &org.0.to_be_bytes(), b"/"].concat()
}

pub const ACTIVE_BATCHES: &[u8] = b"active_batch/";

pub struct TestCallsProjection;

impl Projection for TestCallsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// 2: runs are created queued (with their batch) and launched apart; a batch is active
    /// while it has runs to launch.
    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, event: &RecordedEvent, writer: &mut ProjectionWriter<'_>) -> Result<(), String> {
        if let Some(id) = streams::run_of(&event.stream) {
            let run_event: RunEvent = event.decode().map_err(|e| e.to_string())?;
            let run = match &run_event {
                RunEvent::Created { run } => {
                    writer.put(&[org_runs(run.org), run.id.to_be_bytes().to_vec()].concat(), Vec::new());
                    (**run).clone()
                }
                RunEvent::Launched { .. } | RunEvent::Canceled { .. } => {
                    let mut run: RunState =
                        decode(&writer.get(&key("run/", id))?.ok_or("a run event before its creation")?)?;
                    run.apply(&run_event);
                    run
                }
            };
            writer.put(&key("run/", run.id), encode(&run)?);
        } else if let Some(id) = streams::batch_of(&event.stream) {
            let batch_event: BatchEvent = event.decode().map_err(|e| e.to_string())?;
            let state = match &batch_event {
                BatchEvent::Created { id, org, .. } => {
                    writer.put(&[org_batches(*org), id.to_be_bytes().to_vec()].concat(), Vec::new());
                    BatchState::start(&batch_event).expect("a creation starts a batch")
                }
                BatchEvent::RunSpawned { .. } | BatchEvent::RunLaunched { .. } | BatchEvent::Canceled { .. } => {
                    let mut state: BatchState =
                        decode(&writer.get(&key("batch/", id))?.ok_or("a batch event before its creation")?)?;
                    state.apply(&batch_event);
                    state
                }
            };
            let active = [ACTIVE_BATCHES, &state.id.to_be_bytes()].concat();
            if state.has_runs_to_launch() {
                writer.put(&active, Vec::new());
            } else {
                writer.remove(&active);
            }
            writer.put(&key("batch/", state.id), encode(&state)?);
        }
        Ok(())
    }
}

pub fn read_run(log: &Log, id: u64) -> Result<Option<RunState>, eventlog::Error> {
    projection_values::read(log, NAME, &key("run/", id))
}

pub fn read_batch(log: &Log, id: u64) -> Result<Option<BatchState>, eventlog::Error> {
    projection_values::read(log, NAME, &key("batch/", id))
}

/// Ids under an index prefix, newest first.
pub fn ids_newest_first<'a>(
    log: &'a Log,
    prefix: &[u8],
) -> impl Iterator<Item = Result<u64, eventlog::Error>> + use<'a> {
    log.projection_scan(NAME, prefix).rev().map(|entry| {
        let (key, _) = entry?;
        Ok(projection_values::be_u64(&key[key.len() - 8..]))
    })
}
