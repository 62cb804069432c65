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

/// The contract's `WhoAmI` for an API key of `org`.
pub fn whoami(org: &pb::Org, key_id: u64, key_label: Option<String>) -> Value {
    json!({
        "credential_kind": "api_key",
        "key_label": key_label,
        "key_prefix": crate::auth::key_prefix(key_id),
        "oauth_client_id": null,
        "organization": { "id": org.id, "name": org.name },
        "role": null,
        "scopes": [],
    })
}

/// An agent as the contract's `Agent`: switchboard's fields (`greeting`, `max_hold_seconds`,
/// `tools`), every setting an agent takes, and the contract's fields for features outside the
/// engine at their neutral values (no draft, no integrations or knowledge).
/// An agent's tools as the API shows them, each with its parameters' JSON Schema.
fn tools_json(tools: &[domain::agent::Tool]) -> Value {
    tools
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "url": t.url,
                "parameters": serde_json::from_str::<Value>(&t.parameters_json).unwrap_or_else(|_| json!({})),
            })
        })
        .collect()
}

pub fn agent(a: &pb::Agent) -> Value {
    let pb_spec = a.spec.clone().unwrap_or_default();
    let spec = domain::agent::AgentSpec::try_from(pb_spec.clone())
        .unwrap_or_else(|_| domain::agent::AgentSpec::named(pb_spec.name.clone()));
    let tools = tools_json(&spec.tools);
    let mut body = json!({
        "id": a.id,
        "name": spec.name,
        "prompt": spec.prompt,
        "voice": spec.voice.as_str(),
        "greeting": spec.greeting,
        "max_hold_seconds": spec.max_hold_seconds,
        "tools": tools,
        "created_at": at(a.created_at_ms),
        "updated_at": at(a.updated_at_ms),
        "consent_disabled_reason": "",
        "has_draft": false,
        "draft_updated_at": null,
        "draft_additional_languages": [],
        "draft_handoffs": null,
        "draft_steps": null,
        "draft_max_call_duration_seconds": null,
        "draft_ring_duration_seconds": null,
        "integrations": [],
        "knowledge_bases": [],
        "knowledge_documents": [],
        "mcp_servers": [],
        "reusable_instructions": [],
        "tool_collision_warnings": [],
    });
    let settings = serde_json::to_value(&spec.settings).unwrap_or_default();
    for (name, shape, applies) in domain::agent::settings::SETTINGS {
        if *applies == domain::agent::settings::Applies::Inline {
            continue;
        }
        body[*name] = setting_json(*shape, settings.get(*name).cloned().unwrap_or(Value::Null));
    }
    body
}

/// A setting as the API shows it: a free-form value as the JSON it holds, a transfer number
/// with the contract's `platform_ok` (not known here: null).
pub fn setting_json(shape: domain::agent::settings::Shape, value: Value) -> Value {
    use domain::agent::settings::Kind;
    match (shape.kind, value) {
        (Kind::FreeForm { .. }, Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
        (Kind::Records { fields, .. }, Value::Array(items)) if fields.contains(&"name") => Value::Array(
            items
                .into_iter()
                .map(|mut d| {
                    d["platform_ok"] = Value::Null;
                    d
                })
                .collect(),
        ),
        (_, v) => v,
    }
}

/// A connection as the contract shows it: its `sip_config` and `credentials` without the
/// password (never shown after it was given), and `connected` once a test backs it.
pub fn voip_connection(c: &pb::VoipConnection) -> Value {
    let spec = c.spec.clone().unwrap_or_default();
    let (sip_config, credentials) = match &spec.provider {
        Some(pb::voip_connection_spec::Provider::Sip(t)) => {
            (json!({ "host": t.host, "port": t.port, "transport": t.transport }), json!({ "username": t.username }))
        }
        _ => (json!({ "host": domain::voip::SIM_HOST }), json!({})),
    };
    let status = if c.verified {
        "connected"
    } else if c.verification_error.is_some() {
        "error"
    } else {
        "pending"
    };
    let vendor = if spec.vendor.is_empty() { "manual" } else { spec.vendor.as_str() };
    json!({
        "id": c.id,
        "name": spec.name,
        "provider": vendor,
        "status": status,
        "sip_config": sip_config,
        "credentials": credentials,
        "inferred_name": false,
        "last_tested_at": c.verified_at_ms.map(at),
        "test_result": {
            "ok": c.verified,
            "detail": c.verification_error,
            "verification_evidence_id": c.evidence_id,
        },
        "numbers_imported": c.numbers_imported,
        // Numbers are not demoted by routing changes here: none waits to be proven again.
        "numbers_pending_verification": 0,
        "provisioning_supported": false,
        "provisioning_message": "switchboard does not call providers' APIs: import numbers you hold with your provider.",
        "transfer_enabled_at": null,
        "transfer_refused_at": null,
        "created_at": at(c.created_at_ms),
        "updated_at": at(c.updated_at_ms),
    })
}

/// The contract's `VoipVerificationEvidence`: what was tested, how it went, and when.
fn evidence(id: &str, vendor: &str, passed: bool, at_ms: i64, fingerprint: &str, detail: Value) -> Value {
    let status = if passed { "pass" } else { "fail" };
    json!({
        "id": id,
        "provider": if vendor.is_empty() { "manual" } else { vendor },
        "config_fingerprint": fingerprint,
        "outbound_status": status,
        // Inbound is not tested: the trunk's OPTIONS answer says nothing of its routing to us.
        "inbound_status": status,
        "evidence": detail,
        // An OPTIONS probe costs nothing at the provider.
        "provider_charge_currency": "usd",
        "provider_charge_estimate_cents": 0,
        "provider_charge_note": "An OPTIONS probe places no call: the provider charges nothing for it.",
        "created_at": at(at_ms),
    })
}

/// The answer to a connection test (`ConnectionTest`).
pub fn connection_test(e: &pb::ConnectionEvidence, suggested_name: &str, target: Option<&domain::E164>) -> Value {
    let passed = e.error.is_none();
    let probe = if e.trunk.is_some() { "sip_options" } else { "simulated_carrier" };
    let trunk = e
        .trunk
        .as_ref()
        .map(|t| json!({ "host": t.host, "port": t.port, "transport": t.transport, "username": t.username }));
    let detail = json!({
        "probe": probe,
        "sip_config": trunk,
        "connection_id": e.connection_id,
        "target_number": target.map(ToString::to_string),
        "error": e.error,
    });
    json!({
        "suggested_connection_name": suggested_name,
        "suggested_connection_name_inferred": true,
        "test_result": {
            "ok": passed,
            "probe": probe,
            "detail": e.error.clone().unwrap_or_else(|| "The trunk answered.".to_owned()),
        },
        "verification_evidence": evidence(&e.id, &e.vendor, passed, e.at_ms, &e.fingerprint, detail),
    })
}

pub fn imported_numbers(imported: usize, numbers: &[pb::PhoneNumber]) -> Value {
    let results: Vec<Value> =
        numbers.iter().map(|n| json!({ "id": n.id, "number": n.number, "status": "active" })).collect();
    json!({
        "imported_count": imported,
        "results": results,
        "provider_charge_estimate_cents": 0,
        "provider_charge_note": "Importing a number you hold with your provider costs nothing here.",
    })
}

/// Why a number may not place outbound calls, or `None` when it may.
fn outbound_ineligible_reason(n: &pb::PhoneNumber) -> Option<&'static str> {
    match (n.voip_connection_id, n.verification_status.as_str()) {
        (None, _) => Some("Demo numbers are inbound-only."),
        (Some(_), "verified") => None,
        (Some(_), "failed") => Some("The last verification failed; verify the number again."),
        (Some(_), _) => Some("Verify the number with POST /v1/phone-numbers/{id}/verify-voip."),
    }
}

pub fn phone_number(n: &pb::PhoneNumber) -> Value {
    let reason = outbound_ineligible_reason(n);
    json!({
        "id": n.id,
        "number": n.number,
        "label": n.label,
        "source": if n.voip_connection_id.is_some() { "voip" } else { "demo" },
        "status": "active",
        "voip_connection_id": n.voip_connection_id,
        "inbound_agent_id": n.inbound_agent_id,
        "outbound_agent_id": n.outbound_agent_id,
        "outbound_eligible": reason.is_none(),
        "outbound_ineligible_reason": reason,
        "voip_verification_status": if n.verification_status.is_empty() { "unverified" } else { n.verification_status.as_str() },
        "voip_last_verified_at": n.verified_at_ms.map(at),
        "webhook_url": n.webhook_url,
        // Issued once inbound webhooks are signed.
        "webhook_signing_secret": null,
        // Inbound tests and SMS are outside this engine.
        "voip_inbound_status": "untested",
        "voip_inbound_result": null,
        "voip_inbound_test_method": null,
        "voip_inbound_tested_at": null,
        "sms_capable": null,
        "sms_capability_checked_at": null,
        "created_at": at(n.created_at_ms),
        "updated_at": at(n.updated_at_ms),
    })
}

/// What an update answers (`PhoneNumberUpdate`): the fields it may change.
pub fn phone_number_update(n: &pb::PhoneNumber) -> Value {
    json!({
        "inbound_agent_id": n.inbound_agent_id,
        "outbound_agent_id": n.outbound_agent_id,
        "label": n.label,
        "status": "active",
        "webhook_url": n.webhook_url,
    })
}

/// What `verify-voip` answers (`NumberVerification`).
pub fn number_verification(n: &pb::PhoneNumber) -> Value {
    let passed = n.verification_status == "verified";
    let detail = json!({
        "probe": "trunk_options",
        "number": n.number,
        "voip_connection_id": n.voip_connection_id,
        "error": n.verification_error,
    });
    let id = n.verification_evidence_id.clone().unwrap_or_default();
    json!({
        "phone_number_id": n.id,
        "status": if passed { "verified" } else { "failed" },
        "voip_verification_status": n.verification_status,
        "verification_evidence": evidence(&id, "manual", passed, n.verified_at_ms.unwrap_or(n.updated_at_ms), "", detail),
        "provider_charge_currency": "usd",
        "provider_charge_estimate_cents": 0,
        "provider_charge_note": "An OPTIONS probe places no call: the provider charges nothing for it.",
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

/// A call as the contract's `Call`. Fields of features outside this engine (grading, extraction,
/// recording, transfers, LiveKit, agent variants, issues) answer their neutral value.
pub fn call(c: &pb::Call) -> Value {
    let agent = c.agent.clone().unwrap_or_default();
    // The agent the call runs with, as it was when the call was placed.
    let spec = domain::agent::AgentSpec::try_from(agent.clone()).ok();
    let tools = tools_json(spec.as_ref().map_or(&[][..], |s| &s.tools));
    let settings = spec.and_then(|s| serde_json::to_value(&s.settings).ok()).unwrap_or_default();
    let variables = serde_json::from_str::<Value>(&c.variables_json).unwrap_or_else(|_| json!({}));
    let ended = c.ended_at_ms.is_some();
    json!({
        "call_id": c.id,
        "direction": c.direction,
        "from_number": c.from_number,
        "to_number": c.to_number,
        "agent_id": c.agent_id,
        "agent_variant_id": null,
        "agent_variant_label": null,
        "status": c.status,
        "end_reason": c.end_reason,
        "start_time": at(c.created_at_ms),
        "sip_answered_at": c.answered_at_ms.map(at),
        "end_time": c.ended_at_ms.map(at),
        "duration_seconds": ended.then_some(c.duration_seconds),
        "billable_minutes": c.billed_seconds.map(|s| s as f64 / 60.0),
        "billing_total_cents": c.cost_cents,
        "billed_at": c.billed_at_ms.map(at),
        "outbound_dial_state": c.dial_state,
        "is_test_call": c.is_test_call,
        "is_simulation": c.is_test_call,
        "is_scenario_call": false,
        "locale": c.locale,
        "prompt_snapshot": agent.prompt,
        "voice": (!agent.voice.is_empty()).then_some(&agent.voice),
        "tool_snapshot": tools,
        "thinking_level": settings.get("thinking_level").cloned().unwrap_or_else(|| json!("base")),
        "product": settings.get("product").cloned().unwrap_or(Value::Null),
        "variables": variables,
        "unresolved_variables": c.unresolved_variables,
        "call_outcome": null,
        "collected_values": null,
        "extracted_data": null,
        "steps_trace": null,
        "goal_achievement": null,
        "goal_reasoning": null,
        "grade_score": null,
        "grade_status": null,
        "grade_updated_at": null,
        "issue_count": 0,
        "critical_issue_count": 0,
        "consent_evidence": null,
        "recording_mode": "disabled_by_config",
        "recording_policy": null,
        "recording_retention_notice": null,
        "recording_started_at": null,
        "recording_url": null,
        "livekit_room_name": null,
        "livekit_room_sid": null,
        "cloud_run_execution_name": null,
        "transfer_destination": "",
        "transfer_outcome": null,
        "transfer_bridge_kind": null,
        "transfer_bridge_seconds": null,
        "transfer_bridge_total_cents": null,
        "transfer_sip_status": null,
        "created_at": at(c.created_at_ms),
        "updated_at": at(c.updated_at_ms),
    })
}

/// The columns of a CSV export, in order, and each one's value for a call as [`call`] shows it.
pub const CALL_CSV_COLUMNS: &[&str] = &[
    "call_id",
    "direction",
    "status",
    "from_number",
    "to_number",
    "agent_id",
    "start_time",
    "sip_answered_at",
    "end_time",
    "duration_seconds",
    "end_reason",
    "billable_minutes",
    "billing_total_cents",
    "billed_at",
    "is_test_call",
    "locale",
    "variables",
];

/// One CSV line (RFC 4180: fields quoted when they hold a comma, quote or line break) of a call.
pub fn call_csv_row(c: &pb::Call) -> String {
    let shown = call(c);
    let mut line = CALL_CSV_COLUMNS
        .iter()
        .map(|column| {
            let text = match &shown[*column] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            csv_field(&text)
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

pub fn csv_field(text: &str) -> String {
    // A leading = or @ would be read as a formula by spreadsheets: a ' goes first. (A number's
    // leading + is E.164's, and variables are a JSON object.)
    let text = if text.starts_with(['=', '@']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\r', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// A transcript turn as the contract's `TranscriptEntry`: `role` is `agent` or `user`, and
/// `start_ms` counts from `started_at_ms` (the answer).
pub fn transcript_entry(t: &pb::Turn, started_at_ms: i64) -> Value {
    let role = if t.speaker == "agent" { "agent" } else { "user" };
    json!({ "role": role, "content": t.text, "start_ms": (t.at_ms - started_at_ms).max(0), "seq": t.seq, "at": at(t.at_ms) })
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
