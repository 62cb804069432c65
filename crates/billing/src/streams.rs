//! Stream names: every stream a billing partition writes is named here.

use domain::ids::OrgId;

/// The partition's id reservations. Named in `actor`, which records them for the
/// orchestrator's partitions too; listed here so that this module names every stream of the
/// partition.
pub use actor::IDS_STREAM;

const LEDGER_PREFIX: &str = "ledger/";

/// An org's prepaid ledger: reservations, settlements, releases, top-ups, its rate.
pub fn ledger(org: OrgId) -> String {
    format!("{LEDGER_PREFIX}{org}")
}

/// The org a ledger stream is of; `None` for every other stream.
pub fn org_of(stream: &str) -> Option<OrgId> {
    stream.strip_prefix(LEDGER_PREFIX)?.parse().ok().map(OrgId)
}
