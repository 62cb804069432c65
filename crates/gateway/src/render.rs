//! Resources as the API shows them. Timestamps are ISO 8601 UTC with milliseconds.

use domain::Timestamp;
use serde_json::{Value, json};
use wire::pb;

fn at(ms: i64) -> String {
    Timestamp::from_millis(ms).to_rfc3339()
}

pub fn org(o: &pb::Org) -> Value {
    json!({
        "id": o.id,
        "name": o.name,
                "trial": o.trial,
                "max_concurrent_test_calls": o.max_concurrent_test_calls,
        "rate_limit_per_second": o.rate_limit_per_second,
        "max_agents": o.max_agents,
        "max_api_keys": o.max_api_keys,
        "max_voip_connections": o.max_voip_connections,
        "max_phone_numbers": o.max_phone_numbers,
        "max_open_batches": o.max_open_batches,
        "max_webhook_endpoints": o.max_webhook_endpoints,
        "created_at": at(o.created_at_ms),
        "updated_at": at(o.updated_at_ms),
    })
}

pub fn api_key(k: &pb::ApiKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "key_prefix": crate::auth::key_prefix(k.id),
        "created_at": at(k.created_at_ms),
    })
}

pub fn agent(a: &pb::Agent) -> Value {
    let spec = a.spec.clone().unwrap_or_default();
    let tools: Vec<Value> = spec
        .tools
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "url": t.url,
                "parameters": serde_json::from_str::<Value>(&t.parameters_json).unwrap_or_else(|_| json!({})),
            })
        })
        .collect();
    json!({
        "id": a.id,
        "name": spec.name,
        "prompt": spec.prompt,
        "voice": spec.voice,
        "greeting": spec.greeting,
        "max_hold_seconds": spec.max_hold_seconds,
        "tools": tools,
        "created_at": at(a.created_at_ms),
        "updated_at": at(a.updated_at_ms),
    })
}

pub fn voip_connection(c: &pb::VoipConnection) -> Value {
    let spec = c.spec.clone().unwrap_or_default();
    let sip = match &spec.provider {
        Some(pb::voip_connection_spec::Provider::Sip(t)) => Some(t),
        _ => None,
    };
    json!({
        "id": c.id,
        "name": spec.name,
        "provider": if sip.is_some() { "sip" } else { "sim" },
        "host": sip.map(|t| &t.host),
        "port": sip.map(|t| t.port),
        "transport": sip.map(|t| &t.transport),
        "username": sip.map(|t| &t.username),
        "verified": c.verified,
        "verified_at": c.verified_at_ms.map(at),
        "verification_error": c.verification_error,
        "created_at": at(c.created_at_ms),
        "updated_at": at(c.updated_at_ms),
    })
}

pub fn phone_number(n: &pb::PhoneNumber) -> Value {
    json!({
        "id": n.id,
        "number": n.number,
        "type": if n.voip_connection_id.is_some() { "voip" } else { "demo" },
        "voip_connection_id": n.voip_connection_id,
        "inbound_agent_id": n.inbound_agent_id,
        "outbound_agent_id": n.outbound_agent_id,
        "created_at": at(n.created_at_ms),
        "updated_at": at(n.updated_at_ms),
    })
}

pub fn transaction(t: &pb::Transaction) -> Value {
    json!({
        "id": t.id,
        "kind": t.kind,
        "amount_cents": t.amount_cents,
        "balance_after_cents": t.balance_after_cents,
        "reference": t.reference,
        "call_id": t.call_id,
        "description": t.description,
        "created_at": at(t.created_at_ms),
    })
}

pub fn call(c: &pb::Call) -> Value {
    json!({
        "id": c.id,
        "direction": c.direction,
        "from_number": c.from_number,
        "to_number": c.to_number,
        "agent_id": c.agent_id,
        "status": c.status,
        "end_reason": c.end_reason,
        "started_at": c.started_at_ms.map(at),
        "answered_at": c.answered_at_ms.map(at),
        "ended_at": c.ended_at_ms.map(at),
        "duration_seconds": c.duration_seconds,
        "cost_cents": c.cost_cents,
        "created_at": at(c.created_at_ms),
        "updated_at": at(c.updated_at_ms),
    })
}

pub fn turn(t: &pb::Turn) -> Value {
    json!({ "seq": t.seq, "speaker": t.speaker, "text": t.text, "at": at(t.at_ms) })
}

/// An event as stored: its payload (MessagePack with named fields) shown as JSON, without the
/// wrapper that names its variant (the `type` names it).
pub fn stream_event(e: &pb::StreamEvent) -> Value {
    let data = match rmp_serde::from_slice::<Value>(&e.payload) {
        Ok(Value::Object(map)) if map.len() == 1 => map.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null),
        Ok(other) => other,
        Err(_) => Value::Null,
    };
    json!({ "type": e.r#type, "version": e.version, "at": at(e.recorded_at_ms), "request_id": e.correlation_id, "data": data })
}

/// A run as the contract's `SimulationRun`. Grading, recordings and run metadata belong to
/// ThunderPhone's platform, not this engine: `grade` and `recording_url` are null, `metadata`
/// is `{}`.
pub fn test_run(r: &pb::TestRun) -> Value {
    let transcript: Vec<Value> = r
        .transcript
        .iter()
        .map(|t| json!({ "role": t.speaker, "content": t.text, "created_at": at(t.at_ms) }))
        .collect();
    json!({
        "id": r.id,
        "target_type": r.target_type,
        "target_id": r.target_id,
        "target_name": r.target_name,
        "agent_name": r.agent_name,
        "direction": r.direction,
        "target_number": r.target_number,
        "scenario_prompt": r.scenario_prompt,
        "mode": r.mode,
        "status": r.status,
        "charge_multiplier": r.charge_multiplier,
        "estimated_cost_cents": r.estimated_cost_cents,
        "call_id": r.call_id,
        "sip_call_id": r.sip_call_id,
        "duration_seconds": r.duration_seconds,
        "transcript": transcript,
        "grade": null,
        "recording_url": null,
        "metadata": {},
        "error_message": r.error_message,
        // Runs are started with API keys, and keys are not users: the key's id stands in.
        "requested_by_id": r.requested_by_key_id,
        "started_at": r.started_at_ms.map(at),
        "completed_at": r.completed_at_ms.map(at),
        "batch_id": r.batch_id,
        "created_at": at(r.created_at_ms),
        "updated_at": at(r.updated_at_ms),
    })
}

/// A batch as the contract's `SimulationBatch`. Voice-condition matrices are ThunderPhone's:
/// `matrix_dimensions` is `{}`.
pub fn test_batch(b: &pb::TestBatch) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "target_type": b.target_type,
        "target_id": b.target_id,
        "direction": b.direction,
        "target_number": b.target_number,
        "scenario_prompts": b.scenario_prompts,
        "run_count": b.run_count,
        "stagger_seconds": b.stagger_seconds,
        "mode": b.mode,
        "status": b.status,
        "total_runs": b.total_runs,
        "completed_runs": b.completed_runs,
        "failed_runs": b.failed_runs,
        "error_message": b.error_message,
        "estimated_cost_cents": b.estimated_cost_cents,
        "estimated_minutes": b.estimated_minutes,
        "matrix_dimensions": {},
        // Batches are started with API keys, and keys are not users: the key's id stands in.
        "requested_by_id": b.requested_by_key_id,
        "started_at": b.started_at_ms.map(at),
        "completed_at": b.completed_at_ms.map(at),
        "created_at": at(b.created_at_ms),
        "updated_at": at(b.updated_at_ms),
        "run_ids": b.run_ids,
    })
}
