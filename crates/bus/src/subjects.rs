//! Subject names. Only the owner of partition `p` subscribes to that partition's subjects.

/// Commands for the orchestrator partition `p` (writes, in order, through its actor).
pub fn orchestrator_commands(partition: u32) -> String {
    format!("sb.orch.{partition}.cmd")
}

/// Reads served from the orchestrator partition `p`'s projections.
pub fn orchestrator_queries(partition: u32) -> String {
    format!("sb.orch.{partition}.query")
}

/// Commands for the billing partition `p`.
pub fn billing_commands(partition: u32) -> String {
    format!("sb.billing.{partition}.cmd")
}

/// Live events of one org's stream, fanned out to whoever listens.
pub fn org_events(org_id: u64, stream: &str) -> String {
    format!("sb.evt.{org_id}.{stream}")
}

/// Reads served from the billing partition `p`'s projections.
pub fn billing_queries(partition: u32) -> String {
    format!("sb.billing.{partition}.query")
}
