//! Stream names: every stream an orchestrator partition writes is named here. Each names one
//! aggregate; the prefix says which kind.

use domain::ids::{CallId, OrgId};

/// The partition's id reservations. Named in `actor`, which records them for billing's
/// partitions too; listed here so that this module names every stream of the partition.
pub use actor::IDS_STREAM;

/// Orgs and phone numbers, unique across orgs. Only in the directory partition.
pub const DIRECTORY: &str = "directory";

const ORG_PREFIX: &str = "org/";

/// An org's configuration: profile, keys, agents, connections, numbers.
pub fn org(org: OrgId) -> String {
    format!("{ORG_PREFIX}{org}")
}

/// The org an org stream is of; `None` for every other stream.
pub fn org_of(stream: &str) -> Option<OrgId> {
    stream.strip_prefix(ORG_PREFIX)?.parse().ok().map(OrgId)
}

const CALL_PREFIX: &str = "call/";

/// A call, from its request to its settlement.
pub fn call(call: CallId) -> String {
    format!("{CALL_PREFIX}{call}")
}

/// The call a call stream is of; `None` for every other stream.
pub fn call_of(stream: &str) -> Option<CallId> {
    stream.strip_prefix(CALL_PREFIX)?.parse().ok().map(CallId)
}

const RUN_PREFIX: &str = "run/";

/// A test-call run: created once, its status derived from its call.
pub fn run(id: u64) -> String {
    format!("{RUN_PREFIX}{id}")
}

/// The run a run stream is of; `None` for every other stream.
pub fn run_of(stream: &str) -> Option<u64> {
    stream.strip_prefix(RUN_PREFIX)?.parse().ok()
}

const BATCH_PREFIX: &str = "batch/";

/// A batch of test-call runs: its creation, each run it spawned, its cancel.
pub fn batch(id: u64) -> String {
    format!("{BATCH_PREFIX}{id}")
}

/// The batch a batch stream is of; `None` for every other stream.
pub fn batch_of(stream: &str) -> Option<u64> {
    stream.strip_prefix(BATCH_PREFIX)?.parse().ok()
}

/// The prefix of every idempotency key's stream, which retention sweeps and audits count.
pub const IDEMPOTENCY_PREFIX: &str = "idempotency/";

/// An org's idempotency key: `idempotency/<org>/<key>`, kept for its retention, then removed.
pub fn idempotency(org: OrgId, key: &str) -> String {
    format!("{IDEMPOTENCY_PREFIX}{org}/{key}")
}
