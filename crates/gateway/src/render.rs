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

/// Cents as the contract's dollar strings: `-0.10`, `25.00`.
pub fn usd(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The contract's `BalanceTransaction`'s kind for the ledger's: the admin's credits and debits
/// are adjustments, call and test-call charges usage.
fn transaction_kind(kind: &str) -> &'static str {
    match kind {
        "manual_topup" => "manual_topup",
        "auto_reload" => "auto_reload",
        "call_charge" | "test_call_charge" => "call_usage",
        _ => "adjustment",
    }
}

/// The contract's `BalanceTransaction`, with the ledger's `reference` and `balance_after_cents`
/// kept beside it. Switchboard keeps no phone-number charges nor receipts: those fields are
/// null and false.
pub fn transaction(t: &pb::Transaction) -> Value {
    let mut metadata = json!({ "reference": t.reference });
    if t.kind == "test_call_charge" {
        metadata["test_call"] = json!(true);
    }
    json!({
        "id": t.id,
        "kind": transaction_kind(&t.kind),
        "amount_cents": t.amount_cents,
        "amount_usd": usd(t.amount_cents),
        "balance_after_cents": t.balance_after_cents,
        "reference": t.reference,
        "call_id": t.call_id,
        "description": t.description,
        "has_receipt": false,
        "metadata": metadata,
        "phone_number_id": null,
        "phone_number_value": null,
        "created_at": at(t.created_at_ms),
    })
}

/// The contract's `TopUpResponse`: the charge is confirmed server-side, so there is no client
/// secret to hand a browser.
pub fn top_up(c: &pb::Charge) -> Value {
    json!({
        "client_secret": null,
        "payment_intent_id": c.intent_id,
        "status": if c.status == "succeeded" { "succeeded" } else { "processing" },
        "amount_cents": c.amount_cents,
    })
}

/// The contract's `BillingAccount`, with `reserved_cents`, `available_cents` and
/// `rate_cents_per_minute` beside it. Spending limits, test-call budgets and pausing belong to
/// no feature of this engine: false, null and 0.
pub fn billing_account(a: &pb::BillingAccount) -> Value {
    let balance = a.balance.clone().unwrap_or_default();
    let declined = a.auto_reload_consecutive_declines > 0;
    json!({
        "balance_cents": balance.balance_cents,
        "balance_usd": usd(balance.balance_cents),
        "currency": "usd",
        "reserved_cents": balance.reserved_cents,
        "available_cents": balance.available_cents,
        "available_cash_cents": balance.available_cents,
        "rate_cents_per_minute": balance.rate_cents_per_minute,
        "auto_reload_enabled": a.auto_reload_enabled,
        "auto_reload_amount_cents": a.auto_reload_amount_cents,
        "auto_reload_minimum_cents": a.auto_reload_minimum_cents,
        "auto_reload_monthly_limit_cents": a.auto_reload_monthly_limit_cents,
        "auto_reload_status": a.auto_reload_status,
        "auto_reload_in_progress": a.auto_reload_in_progress,
        "auto_reload_consecutive_declines": a.auto_reload_consecutive_declines,
        "auto_reload_failed_amount_cents": a.auto_reload_failed_amount_cents.filter(|_| declined),
        "auto_reload_failed_at": a.auto_reload_failed_at_ms.filter(|_| declined).map(at),
        "auto_reload_failure_code": a.auto_reload_failure_code.as_ref().filter(|_| declined),
        "auto_reload_last_error": a.auto_reload_last_error.as_ref().filter(|_| declined),
        "auto_reload_next_retry_at": a.auto_reload_next_retry_at_ms.map(at),
        "auto_reload_paused": false,
        "auto_reload_paused_until": null,
        "auto_reload_month_spend_cents": a.auto_reload_month_spend_cents,
        "current_month_usage_spend_cents": a.current_month_usage_spend_cents,
        "average_daily_spend_cents_7d": a.average_daily_spend_cents_7d,
        "balance_runway_days": a.balance_runway_days,
        "has_ever_topped_up": a.last_top_up.is_some(),
        "has_payment_method": a.has_payment_method,
        "last_top_up": a.last_top_up.as_ref().map(|c| json!({
            "amount_cents": c.amount_cents,
            "created_at": at(c.at_ms),
            "kind": if c.automatic { "auto" } else { "manual" },
        })),
        "last_auto_reload": a.last_auto_reload.as_ref().map(|c| json!({
            "amount_cents": c.amount_cents,
            "created_at": at(c.at_ms),
        })),
        "last_manual_topup_error": a.last_manual_topup_error,
        "last_manual_topup_intent_id": a.last_manual_topup_intent_id,
        "monthly_spending_limit_cents": null,
        "spending_limit_reached": false,
        "test_call_budget_cents": 0,
        "test_call_budget_remaining_cents": 0,
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

pub fn test_run(r: &pb::TestRun) -> Value {
    json!({
        "id": r.id,
        "target_type": r.target_type,
        "target_id": r.target_id,
        "direction": r.direction,
        "target_number": r.target_number,
        "scenario_prompt": r.scenario_prompt,
        "mode": r.mode,
        "status": r.status,
        "charge_multiplier": r.charge_multiplier,
        "estimated_cost_cents": r.estimated_cost_cents,
        "call_id": r.call_id,
        "sip_call_id": r.sip_call_id,
        "error_message": r.error_message,
        "started_at": r.started_at_ms.map(at),
        "completed_at": r.completed_at_ms.map(at),
        "batch_id": r.batch_id,
        "created_at": at(r.created_at_ms),
        "updated_at": at(r.updated_at_ms),
    })
}

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
        // Batches are started with API keys, and keys are not users: the key's id stands in.
        "requested_by_id": b.requested_by_key_id,
        "started_at": at(b.created_at_ms),
        "completed_at": b.completed_at_ms.map(at),
        "created_at": at(b.created_at_ms),
        "updated_at": at(b.updated_at_ms),
        "run_ids": b.run_ids,
    })
}
