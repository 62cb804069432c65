//! Stream names. Each names one aggregate; the prefix says which kind.

use domain::ids::OrgId;

/// An org's configuration: profile, keys, agents, connections, numbers.
pub fn org(org: OrgId) -> String {
    format!("org/{org}")
}

pub const ORG_PREFIX: &str = "org/";

/// Orgs and phone numbers, unique across orgs. Only in the directory partition.
pub const DIRECTORY: &str = "directory";

pub fn org_of(stream: &str) -> Option<OrgId> {
    stream.strip_prefix(ORG_PREFIX)?.parse().ok().map(OrgId)
}

/// An org's idempotency key: `idempotency/<org>/<key>`, kept for its retention, then removed.
pub fn idempotency(org: OrgId, key: &str) -> String {
    format!("{IDEMPOTENCY_PREFIX}{org}/{key}")
}

pub const IDEMPOTENCY_PREFIX: &str = "idempotency/";
