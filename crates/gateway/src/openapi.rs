//! The OpenAPI 3.1 document of the public API, served at `GET /v1/openapi.json`.
//!
//! Operations come from one table ([`OPERATIONS`]); a test sends each to the router and fails
//! if any is not served, so the document cannot name a route the gateway lacks. Schemas mirror
//! `render.rs`, and schemathesis (run by `.ci/run`) checks real responses against them.

use std::sync::OnceLock;

use domain::funding;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum Auth {
    None,
    Key,
    Admin,
}

struct Operation {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    body: Option<&'static str>,
    /// The success status and the schema of its body (`None`: no body).
    ok: (u16, Option<&'static str>),
    /// Query parameters: name and schema.
    query: &'static [QueryParameter],
    /// Errors beyond those every authenticated operation may answer.
    errors: &'static [u16],
}

fn int() -> Value {
    json!({ "type": "integer" })
}
/// A quota the admin sets (see `domain::org::MAX_QUOTA`).
fn quota() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": domain::org::MAX_QUOTA })
}
fn limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 200 })
}
fn offset() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}
fn call_status() -> Value {
    json!({ "type": "string", "enum": ["in_progress", "completed", "failed"] })
}
fn run_status() -> Value {
    json!({ "type": "string", "enum": ["queued", "in_progress", "completed", "failed"] })
}
fn direction() -> Value {
    json!({ "type": "string", "enum": ["outbound", "inbound"] })
}
fn target_type() -> Value {
    json!({ "type": "string", "enum": ["agent", "phone_number"] })
}

/// A query parameter's name, and its schema.
type QueryParameter = (&'static str, fn() -> Value);

const PAGE: &[QueryParameter] = &[("limit", limit), ("offset", offset)];

macro_rules! op {
    ($method:literal $path:literal, $summary:literal, $auth:ident, body: $body:expr, ok: $status:literal $schema:expr, query: $query:expr, errors: $errors:expr) => {
        Operation {
            method: $method,
            path: $path,
            summary: $summary,
            auth: Auth::$auth,
            body: $body,
            ok: ($status, $schema),
            query: $query,
            errors: $errors,
        }
    };
}

static OPERATIONS: &[Operation] = &[
    op!("get" "/v1/healthz", "Health check", None, body: None, ok: 200 Some("Health"), query: &[], errors: &[]),
    op!("get" "/v1/openapi.json", "This document", None, body: None, ok: 200 Some("Document"), query: &[], errors: &[]),
    op!("get" "/v1/keys", "List API keys", Key, body: None, ok: 200 Some("ApiKeyList"), query: &[], errors: &[]),
    op!("post" "/v1/keys", "Create an API key", Key, body: Some("NameInput"), ok: 201 Some("CreatedApiKey"), query: &[], errors: &[403, 409]),
    op!("delete" "/v1/keys/{id}", "Revoke an API key", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("get" "/v1/agents", "List agents", Key, body: None, ok: 200 Some("AgentList"), query: &[], errors: &[]),
    op!("post" "/v1/agents", "Create an agent", Key, body: Some("AgentInput"), ok: 201 Some("Agent"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/agents/{id}", "Get an agent", Key, body: None, ok: 200 Some("Agent"), query: &[], errors: &[]),
    op!("patch" "/v1/agents/{id}", "Change some of an agent's fields", Key, body: Some("AgentPatch"), ok: 200 Some("Agent"), query: &[], errors: &[409]),
    op!("put" "/v1/agents/{id}", "Replace an agent", Key, body: Some("AgentInput"), ok: 200 Some("Agent"), query: &[], errors: &[409]),
    op!("delete" "/v1/agents/{id}", "Delete an agent", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("get" "/v1/voip-connections", "List VoIP connections", Key, body: None, ok: 200 Some("VoipConnectionList"), query: &[], errors: &[]),
    op!("post" "/v1/voip-connections", "Create a VoIP connection", Key, body: Some("VoipConnectionInput"), ok: 201 Some("VoipConnection"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/voip-connections/{id}", "Get a VoIP connection", Key, body: None, ok: 200 Some("VoipConnection"), query: &[], errors: &[]),
    op!("delete" "/v1/voip-connections/{id}", "Delete a VoIP connection", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("post" "/v1/voip-connections/{id}/verify", "Verify a VoIP connection with its carrier", Key, body: None, ok: 200 Some("VoipConnection"), query: &[], errors: &[409]),
    op!("get" "/v1/phone-numbers", "List phone numbers", Key, body: None, ok: 200 Some("PhoneNumberList"), query: &[], errors: &[]),
    op!("post" "/v1/phone-numbers", "Add a phone number on a VoIP connection", Key, body: Some("PhoneNumberInput"), ok: 201 Some("PhoneNumber"), query: &[], errors: &[403, 409]),
    op!("post" "/v1/phone-numbers/demo", "Provision an inbound-only demo number", Key, body: Some("DemoNumberInput"), ok: 201 Some("PhoneNumber"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/phone-numbers/{id}", "Get a phone number", Key, body: None, ok: 200 Some("PhoneNumber"), query: &[], errors: &[]),
    op!("patch" "/v1/phone-numbers/{id}", "Assign a phone number's agents", Key, body: Some("PhoneNumberPatch"), ok: 200 Some("PhoneNumber"), query: &[], errors: &[409]),
    op!("delete" "/v1/phone-numbers/{id}", "Delete a phone number", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("post" "/v1/call", "Place an outbound call", Key, body: Some("PlaceCall"), ok: 201 Some("CallPlaced"), query: &[], errors: &[402, 403, 409, 502]),
    op!("get" "/v1/calls", "List calls, newest first", Key, body: None, ok: 200 Some("CallPage"),
        query: &[("limit", limit), ("offset", offset), ("status", call_status), ("agent_id", int), ("direction", direction)], errors: &[]),
    op!("get" "/v1/calls/{id}", "Get a call", Key, body: None, ok: 200 Some("Call"), query: &[], errors: &[]),
    op!("get" "/v1/calls/{id}/transcript", "Get a call's transcript", Key, body: None, ok: 200 Some("Transcript"), query: &[], errors: &[]),
    op!("get" "/v1/calls/{id}/events", "Get a call's event history", Key, body: None, ok: 200 Some("EventList"), query: &[], errors: &[]),
    op!("post" "/v1/calls/{id}/hangup", "Hang up a call (idempotent)", Key, body: None, ok: 200 Some("Call"), query: &[], errors: &[409]),
    op!("get" "/v1/test-calls", "List test-call runs", Key, body: None, ok: 200 Some("TestRunList"),
        query: &[("limit", limit), ("offset", offset), ("target_type", target_type), ("status", run_status), ("agent_id", int)], errors: &[]),
    op!("post" "/v1/test-calls", "Start a test-call run", Key, body: Some("TestRunInput"), ok: 201 Some("TestRun"), query: &[], errors: &[402, 409]),
    op!("get" "/v1/test-calls/{id}", "Get a test-call run", Key, body: None, ok: 200 Some("TestRun"), query: &[], errors: &[]),
    op!("get" "/v1/test-call-batches", "List test-call batches", Key, body: None, ok: 200 Some("TestBatchList"), query: PAGE, errors: &[]),
    op!("post" "/v1/test-call-batches", "Start a test-call batch", Key, body: Some("TestBatchInput"), ok: 201 Some("TestBatch"), query: &[], errors: &[402, 403, 409]),
    op!("get" "/v1/test-call-batches/{id}", "Get a batch and its run ids", Key, body: None, ok: 200 Some("TestBatch"), query: &[], errors: &[]),
    op!("get" "/v1/test-call-batches/{id}/events", "Get a batch's event history", Key, body: None, ok: 200 Some("EventList"), query: &[], errors: &[]),
    op!("post" "/v1/test-call-batches/{id}/cancel", "Stop the runs a batch has not spawned (idempotent)", Key, body: None, ok: 200 Some("TestBatch"), query: &[], errors: &[409]),
    op!("get" "/v1/billing", "Get the billing account: balance and auto-reload", Key, body: None, ok: 200 Some("BillingAccount"), query: &[], errors: &[]),
    op!("patch" "/v1/billing", "Change the auto-reload settings", Key, body: Some("PatchedAutoReloadRequest"), ok: 200 Some("BillingAccount"), query: &[], errors: &[]),
    op!("post" "/v1/billing/top-up", "Top up: charge the card and credit the balance", Key, body: Some("TopUpRequest"), ok: 201 Some("TopUpResponse"), query: &[], errors: &[402, 409]),
    op!("get" "/v1/billing/transactions", "List transactions, newest first (a page with limit or offset)", Key, body: None, ok: 200 Some("TransactionListOrPage"), query: PAGE, errors: &[]),
    op!("post" "/admin/v1/orgs", "Create an org (admin)", Admin, body: Some("NameInput"), ok: 201 Some("Org"), query: &[], errors: &[409]),
    op!("get" "/admin/v1/orgs/{id}", "Get an org (admin)", Admin, body: None, ok: 200 Some("Org"), query: &[], errors: &[]),
    op!("patch" "/admin/v1/orgs/{id}", "Change an org's standing and limits (admin)", Admin, body: Some("OrgPatch"), ok: 200 Some("Org"), query: &[], errors: &[409]),
    op!("post" "/admin/v1/orgs/{id}/keys", "Create an org's API key (admin)", Admin, body: Some("NameInput"), ok: 201 Some("CreatedApiKey"), query: &[], errors: &[403, 409]),
    op!("post" "/admin/v1/orgs/{id}/credits", "Add funds, or take them away with a negative amount (admin)", Admin, body: Some("CreditInput"), ok: 201 Some("Transaction"), query: &[], errors: &[402, 409]),
    op!("patch" "/admin/v1/orgs/{id}/billing", "Set an org's rate (admin)", Admin, body: Some("RatePatch"), ok: 200 Some("Balance"), query: &[], errors: &[409]),
];

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn reference(schema: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{schema}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn error_response(status: u16) -> (String, Value) {
    let (description, schema) = match status {
        400 => (
            "Invalid input: field errors, or a detail and code",
            json!({ "anyOf": [reference("Error"), reference("FieldErrors")] }),
        ),
        401 => ("Missing or invalid credentials", reference("Error")),
        402 => ("Insufficient balance, or the card was declined", reference("Error")),
        403 => ("Policy forbids it; the detail says why", reference("Error")),
        404 => ("Not found, or another org's", reference("Error")),
        405 => ("Method not allowed", reference("Error")),
        409 => ("Conflict, or an idempotency key in use", reference("Error")),
        413 => ("Body larger than 64 KiB", reference("Error")),
        429 => {
            ("Request rate, concurrent test calls or verifications over the limit; see Retry-After", reference("Error"))
        }
        502 => ("The carrier failed; safe to retry", reference("Error")),
        503 => ("No worker could answer; retry after Retry-After", reference("Error")),
        _ => unreachable!("undocumented status {status}"),
    };
    (status.to_string(), json!({ "description": description, "content": json_content(schema) }))
}

fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in OPERATIONS {
        let mut responses = Map::new();
        let (status, schema) = op.ok;
        let mut ok = json!({ "description": "Success" });
        if let Some(schema) = schema {
            ok["content"] = json_content(reference(schema));
        }
        responses.insert(status.to_string(), ok);
        let mut errors: Vec<u16> = match op.auth {
            // Needing no credentials, but checking those presented (see `auth::middleware`).
            Auth::None => vec![401, 405, 429, 503],
            Auth::Key | Auth::Admin => vec![400, 401, 404, 405, 413, 429, 503],
        };
        errors.extend_from_slice(op.errors);
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            let (code, response) = error_response(status);
            responses.insert(code, response);
        }
        let mut parameters: Vec<Value> = op
            .query
            .iter()
            .map(|(name, schema)| json!({ "name": name, "in": "query", "required": false, "schema": schema() }))
            .collect();
        if op.path.contains("{id}") {
            parameters.push(
                json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } }),
            );
        }
        if matches!(op.auth, Auth::Key) && op.method == "post" {
            parameters.push(json!({
                "name": "Idempotency-Key", "in": "header", "required": false,
                "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" }
            }));
        }
        let mut operation = json!({ "summary": op.summary, "responses": responses });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = op.body {
            operation["requestBody"] = json!({ "required": true, "content": json_content(reference(body)) });
        }
        operation["security"] = match op.auth {
            Auth::None => json!([]),
            Auth::Key => json!([{ "apiKey": [] }]),
            Auth::Admin => json!([{ "adminToken": [] }]),
        };
        paths.entry(op.path.to_owned()).or_insert_with(|| json!({}))[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "switchboard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Call orchestration for AI voice agents. Errors are {detail, code} or DRF-style field errors."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer", "description": "An sk_live_ API key" },
                "adminToken": { "type": "http", "scheme": "bearer", "description": "The admin token" }
            },
            "schemas": schemas()
        }
    })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn list(item: &str) -> Value {
    json!({ "type": "array", "items": reference(item) })
}

fn schemas() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let e164 = json!({ "type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$" });
    let voice = json!({ "type": "string", "enum": domain::agent::VOICES });
    let tool = object(
        &["name", "description", "url", "parameters"],
        json!({
            "name": { "type": "string" }, "description": { "type": "string" }, "url": nullable("string"), "parameters": { "type": "object" }
        }),
    );
    let tool_input = json!({
        "type": "object", "required": ["name"], "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
            "description": { "type": "string", "maxLength": 1000 },
            "url": { "type": ["string", "null"], "format": "uri" },
            "parameters": { "type": "object" }
        }
    });
    let agent_fields = json!({
        "name": { "type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S" },
        "prompt": { "type": "string", "maxLength": 20000 },
        "voice": voice,
        "greeting": { "type": "string", "maxLength": 1000 },
        "max_hold_seconds": { "type": "integer", "minimum": 0, "maximum": 3600 },
        "tools": { "type": "array", "maxItems": 32, "items": tool_input }
    });
    json!({
        "Health": object(&["ok"], json!({ "ok": { "type": "boolean" } })),
        "Document": { "type": "object" },
        "Error": object(&["detail", "code"], json!({ "detail": { "type": "string" }, "code": { "type": "string" } })),
        "FieldErrors": { "type": "object", "minProperties": 1, "additionalProperties": { "type": "array", "items": { "type": "string" } } },
        "NameInput": { "type": "object", "required": ["name"], "additionalProperties": false,
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S" } } },
        "Org": object(&["id", "name", "trial", "max_concurrent_test_calls", "rate_limit_per_second", "max_agents",
                "max_api_keys", "max_voip_connections", "max_phone_numbers", "max_open_batches", "max_webhook_endpoints",
                "created_at", "updated_at"], json!({
            "id": int(), "name": { "type": "string" }, "trial": { "type": "boolean" },
            "max_concurrent_test_calls": int(), "rate_limit_per_second": int(), "max_agents": int(),
            "max_api_keys": int(), "max_voip_connections": int(), "max_phone_numbers": int(),
            "max_open_batches": int(), "max_webhook_endpoints": int(), "created_at": time, "updated_at": time
        })),
        "OrgPatch": { "type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
            "trial": { "type": "boolean" },
            "max_concurrent_test_calls": { "type": "integer", "minimum": 1, "maximum": 1000 },
            "rate_limit_per_second": { "type": "integer", "minimum": 1, "maximum": 100000 },
            "max_agents": quota(), "max_api_keys": quota(), "max_voip_connections": quota(),
            "max_phone_numbers": quota(), "max_open_batches": quota(), "max_webhook_endpoints": quota()
        } },
        "ApiKey": object(&["id", "name", "key_prefix", "created_at"], json!({
            "id": int(), "name": { "type": "string" }, "key_prefix": { "type": "string" }, "created_at": time
        })),
        "CreatedApiKey": object(&["id", "name", "key_prefix", "key", "created_at"], json!({
            "id": int(), "name": { "type": "string" }, "key_prefix": { "type": "string" }, "key": { "type": "string" }, "created_at": time
        })),
        "ApiKeyList": list("ApiKey"),
        "Tool": tool,
        "Agent": object(&["id", "name", "prompt", "voice", "greeting", "max_hold_seconds", "tools", "created_at", "updated_at"], json!({
            "id": int(), "name": { "type": "string" }, "prompt": { "type": "string" }, "voice": { "type": "string" },
            "greeting": { "type": "string" }, "max_hold_seconds": int(), "tools": list("Tool"), "created_at": time, "updated_at": time
        })),
        "AgentList": list("Agent"),
        "AgentInput": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": agent_fields.clone() },
        "AgentPatch": { "type": "object", "additionalProperties": false, "properties": agent_fields.clone() },
        "VoipConnection": object(&["id", "name", "provider", "host", "port", "transport", "username", "verified", "verified_at", "verification_error", "created_at", "updated_at"], json!({
            "id": int(), "name": { "type": "string" }, "provider": { "type": "string", "enum": ["sim", "sip"] },
            "host": nullable("string"), "port": nullable("integer"), "transport": nullable("string"), "username": nullable("string"),
            "verified": { "type": "boolean" }, "verified_at": time_or_null, "verification_error": nullable("string"),
            "created_at": time, "updated_at": time
        })),
        "VoipConnectionList": list("VoipConnection"),
        "VoipConnectionInput": { "type": "object", "required": ["provider"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "maxLength": 100 }, "provider": { "type": "string", "enum": ["sim", "sip"] },
            "host": { "type": "string" }, "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
            "transport": { "type": "string", "enum": ["udp", "tcp", "tls"] }, "username": { "type": "string" }, "password": { "type": "string" }
        } },
        "PhoneNumber": object(&["id", "number", "type", "voip_connection_id", "inbound_agent_id", "outbound_agent_id", "created_at", "updated_at"], json!({
            "id": int(), "number": { "type": "string" }, "type": { "type": "string", "enum": ["voip", "demo"] },
            "voip_connection_id": nullable("integer"), "inbound_agent_id": nullable("integer"), "outbound_agent_id": nullable("integer"),
            "created_at": time, "updated_at": time
        })),
        "PhoneNumberList": list("PhoneNumber"),
        "PhoneNumberInput": { "type": "object", "required": ["number", "voip_connection_id"], "additionalProperties": false, "properties": {
            "number": e164, "voip_connection_id": { "type": "integer", "minimum": 1 },
            "inbound_agent_id": nullable("integer"), "outbound_agent_id": nullable("integer")
        } },
        "DemoNumberInput": { "type": "object", "additionalProperties": false, "properties": { "inbound_agent_id": nullable("integer") } },
        "PhoneNumberPatch": { "type": "object", "additionalProperties": false, "properties": {
            "inbound_agent_id": nullable("integer"), "outbound_agent_id": nullable("integer")
        } },
        "PlaceCall": { "type": "object", "required": ["from_number", "to_number"], "additionalProperties": false, "properties": {
            "from_number": e164, "to_number": e164, "agent_id": { "type": "integer", "minimum": 1 },
            "config": { "type": "object", "additionalProperties": false, "properties": agent_fields },
            "max_hold_seconds": { "type": "integer", "minimum": 0, "maximum": 3600 }
        } },
        "CallPlaced": object(&["call_id", "status"], json!({ "call_id": int(), "status": { "const": "initiated" } })),
        "Call": object(&["id", "direction", "from_number", "to_number", "agent_id", "status", "end_reason", "started_at", "answered_at", "ended_at", "duration_seconds", "cost_cents", "created_at", "updated_at"], json!({
            "id": int(), "direction": direction(), "from_number": { "type": "string" }, "to_number": { "type": "string" },
            "agent_id": nullable("integer"), "status": call_status(), "end_reason": nullable("string"),
            "started_at": time_or_null, "answered_at": time_or_null, "ended_at": time_or_null,
            "duration_seconds": int(), "cost_cents": nullable("integer"), "created_at": time, "updated_at": time
        })),
        "CallPage": object(&["results", "total", "limit", "offset"], json!({ "results": list("Call"), "total": int(), "limit": int(), "offset": int() })),
        "Transcript": object(&["call_id", "turns"], json!({ "call_id": int(), "turns": { "type": "array", "items": object(&["seq", "speaker", "text", "at"], json!({
            "seq": int(), "speaker": { "type": "string", "enum": ["agent", "callee"] }, "text": { "type": "string" }, "at": time
        })) } })),
        "Event": object(&["type", "version", "at", "request_id", "data"], json!({
            "type": { "type": "string" }, "version": int(), "at": time, "request_id": nullable("string"), "data": {}
        })),
        "EventList": list("Event"),
        "Balance": object(&["balance_cents", "reserved_cents", "available_cents", "currency", "rate_cents_per_minute"], json!({
            "balance_cents": int(), "reserved_cents": int(), "available_cents": int(), "currency": { "const": "usd" }, "rate_cents_per_minute": int()
        })),
        "RatePatch": { "type": "object", "required": ["rate_cents_per_minute"], "additionalProperties": false, "properties": {
            "rate_cents_per_minute": { "type": "integer", "minimum": 1, "maximum": 10000 }
        } },
        "Transaction": object(&["id", "kind", "amount_cents", "amount_usd", "balance_after_cents", "reference", "call_id", "description",
                "has_receipt", "metadata", "phone_number_id", "phone_number_value", "created_at"], json!({
            "id": int(),
            "kind": { "type": "string", "enum": ["adjustment", "auto_reload", "call_usage", "conversion_report", "manual_topup",
                "phone_number_monthly", "transfer_bridge", "voice_sample_usage"] },
            "amount_cents": int(), "amount_usd": { "type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$" },
            "balance_after_cents": int(), "reference": { "type": "string" }, "call_id": nullable("integer"),
            "description": { "type": "string" }, "has_receipt": { "type": "boolean" }, "metadata": { "type": "object" },
            "phone_number_id": nullable("integer"), "phone_number_value": nullable("string"), "created_at": time
        })),
        "TransactionList": list("Transaction"),
        "TransactionPage": object(&["results", "total", "limit", "offset"], json!({ "results": list("Transaction"), "total": int(), "limit": int(), "offset": int() })),
        "TransactionListOrPage": { "oneOf": [reference("TransactionList"), reference("TransactionPage")] },
        "CreditInput": { "type": "object", "required": ["amount_cents", "reference"], "additionalProperties": false, "properties": {
            "amount_cents": { "type": "integer", "minimum": -100000000, "maximum": 100000000, "not": { "const": 0 } },
            "reference": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "\\S" },
            "description": { "type": "string" }
        } },
        "BillingAccount": billing_account(),
        "PatchedAutoReloadRequest": { "type": "object", "additionalProperties": false, "properties": {
            "auto_reload_enabled": { "type": "boolean" },
            "auto_reload_amount_cents": { "type": "integer", "minimum": funding::MIN_RELOAD_CENTS, "maximum": funding::MAX_RELOAD_CENTS },
            "auto_reload_minimum_cents": { "type": "integer", "minimum": 0, "maximum": funding::MAX_RELOAD_MINIMUM_CENTS },
            "auto_reload_monthly_limit_cents": { "type": ["integer", "null"], "minimum": funding::MIN_MONTHLY_LIMIT_CENTS,
                "maximum": funding::MAX_MONTHLY_LIMIT_CENTS }
        } },
        "TopUpRequest": { "type": "object", "required": ["amount_cents"], "additionalProperties": false, "properties": {
            "amount_cents": { "type": "integer", "minimum": funding::MIN_TOP_UP_CENTS, "maximum": funding::MAX_TOP_UP_CENTS },
            "idempotency_key": { "type": "string", "minLength": 1, "maxLength": funding::MAX_KEY_CHARS, "pattern": "\\S" },
            "payment_method_id": { "type": "string", "minLength": 1, "maxLength": funding::MAX_KEY_CHARS, "pattern": "\\S" }
        } },
        "TopUpResponse": object(&["client_secret", "payment_intent_id", "status"], json!({
            "client_secret": nullable("string"), "payment_intent_id": { "type": "string" },
            "status": { "type": "string", "enum": ["succeeded", "processing"] }, "amount_cents": int()
        })),
        "TestRunInput": { "type": "object", "required": ["target_type", "target_id", "direction", "consent_to_charge"], "additionalProperties": false, "properties": {
            "target_type": target_type(), "target_id": { "type": "integer", "minimum": 0 }, "direction": direction(),
            "target_number": { "type": ["string", "null"], "pattern": "^\\+[1-9][0-9]{7,14}$" }, "scenario_prompt": { "type": "string", "maxLength": 4000 },
            "mode": { "type": "string", "enum": ["bot", "sip"] }, "consent_to_charge": { "const": true }
        } },
        "TestRun": object(&["id", "target_type", "target_id", "direction", "target_number", "scenario_prompt", "mode", "status", "charge_multiplier", "estimated_cost_cents", "call_id", "sip_call_id", "error_message", "started_at", "completed_at", "batch_id", "created_at", "updated_at"], json!({
            "id": int(), "target_type": target_type(), "target_id": int(), "direction": direction(), "target_number": { "type": "string" },
            "scenario_prompt": { "type": "string" }, "mode": { "type": "string", "enum": ["bot", "sip"] }, "status": run_status(),
            "charge_multiplier": int(), "estimated_cost_cents": int(), "call_id": nullable("integer"), "sip_call_id": nullable("integer"),
            "error_message": { "type": "string" }, "started_at": time_or_null, "completed_at": time_or_null, "batch_id": nullable("integer"),
            "created_at": time, "updated_at": time
        })),
        "TestRunList": list("TestRun"),
        "TestBatchInput": { "type": "object", "required": ["target_type", "target_id", "direction", "run_count", "consent_to_charge"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "maxLength": 100 }, "target_type": target_type(), "target_id": { "type": "integer", "minimum": 0 },
            "direction": direction(), "run_count": { "type": "integer", "minimum": 1, "maximum": 20 },
            "stagger_seconds": { "type": "integer", "minimum": 0, "maximum": 60 },
            "scenario_prompts": { "type": "array", "items": { "type": "string", "maxLength": 4000 } },
            "target_number": { "type": ["string", "null"], "pattern": "^\\+[1-9][0-9]{7,14}$" },
            "mode": { "type": "string", "enum": ["bot", "sip"] }, "consent_to_charge": { "const": true }
        } },
        "TestBatch": object(&["id", "name", "target_type", "target_id", "direction", "target_number", "scenario_prompts", "run_count", "stagger_seconds", "mode", "status", "total_runs", "completed_runs", "failed_runs", "error_message", "requested_by_id", "started_at", "completed_at", "created_at", "updated_at", "run_ids"], json!({
            "id": int(), "name": { "type": "string" }, "target_type": target_type(), "target_id": int(), "direction": direction(),
            "target_number": { "type": "string" }, "scenario_prompts": { "type": "array", "items": { "type": "string" } },
            "run_count": int(), "stagger_seconds": int(), "mode": { "type": "string" },
            "status": { "type": "string", "enum": ["in_progress", "completed", "failed"] },
            "total_runs": int(), "completed_runs": int(), "failed_runs": int(), "error_message": { "type": "string" },
            "requested_by_id": nullable("integer"), "started_at": time, "completed_at": time_or_null, "created_at": time, "updated_at": time,
            "run_ids": { "type": "array", "items": int() }
        })),
        "TestBatchList": list("TestBatch")
    })
}

/// The contract's `BillingAccount` (its 24 required keys, and the optional ones switchboard
/// always sends), with the ledger's `reserved_cents`, `available_cents` and rate beside them.
fn billing_account() -> Value {
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let credit = |kind: bool| {
        let mut properties =
            json!({ "amount_cents": int(), "created_at": { "type": "string", "format": "date-time" } });
        let mut required = vec!["amount_cents", "created_at"];
        if kind {
            properties["kind"] = json!({ "type": "string", "enum": ["auto", "manual"] });
            required.push("kind");
        }
        json!({ "type": ["object", "null"], "required": required, "properties": properties })
    };
    let required = [
        "auto_reload_consecutive_declines",
        "auto_reload_failed_amount_cents",
        "auto_reload_failed_at",
        "auto_reload_failure_code",
        "auto_reload_last_error",
        "auto_reload_month_spend_cents",
        "auto_reload_next_retry_at",
        "auto_reload_paused",
        "auto_reload_paused_until",
        "auto_reload_status",
        "average_daily_spend_cents_7d",
        "balance_runway_days",
        "balance_usd",
        "current_month_usage_spend_cents",
        "has_ever_topped_up",
        "has_payment_method",
        "last_auto_reload",
        "last_manual_topup_error",
        "last_manual_topup_intent_id",
        "last_top_up",
        "monthly_spending_limit_cents",
        "spending_limit_reached",
        "test_call_budget_cents",
        "test_call_budget_remaining_cents",
        "balance_cents",
        "currency",
        "auto_reload_enabled",
        "auto_reload_amount_cents",
        "auto_reload_minimum_cents",
        "auto_reload_monthly_limit_cents",
        "auto_reload_in_progress",
        "available_cash_cents",
        "reserved_cents",
        "available_cents",
        "rate_cents_per_minute",
    ];
    object(
        &required,
        json!({
            "balance_cents": int(), "balance_usd": { "type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$" },
            "currency": { "const": "usd" }, "reserved_cents": int(), "available_cents": int(), "available_cash_cents": int(),
            "rate_cents_per_minute": int(),
            "auto_reload_enabled": { "type": "boolean" }, "auto_reload_amount_cents": int(), "auto_reload_minimum_cents": int(),
            "auto_reload_monthly_limit_cents": nullable("integer"),
            "auto_reload_status": { "type": "string", "enum": ["capped", "off", "ok", "retrying", "stopped"] },
            "auto_reload_in_progress": { "type": "boolean" }, "auto_reload_consecutive_declines": int(),
            "auto_reload_failed_amount_cents": nullable("integer"), "auto_reload_failed_at": time_or_null,
            "auto_reload_failure_code": nullable("string"), "auto_reload_last_error": nullable("string"),
            "auto_reload_next_retry_at": time_or_null, "auto_reload_paused": { "type": "boolean" },
            "auto_reload_paused_until": time_or_null, "auto_reload_month_spend_cents": int(),
            "current_month_usage_spend_cents": int(), "average_daily_spend_cents_7d": nullable("integer"),
            "balance_runway_days": nullable("integer"), "has_ever_topped_up": { "type": "boolean" },
            "has_payment_method": { "type": "boolean" }, "last_top_up": credit(true), "last_auto_reload": credit(false),
            "last_manual_topup_error": nullable("string"), "last_manual_topup_intent_id": nullable("string"),
            "monthly_spending_limit_cents": nullable("integer"), "spending_limit_reached": { "type": "boolean" },
            "test_call_budget_cents": int(), "test_call_budget_remaining_cents": int()
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every documented operation is served: it answers something other than the router's own
    /// "no such route" (404 `not_found`) or "no such method" (405).
    #[tokio::test]
    async fn every_documented_operation_is_served() {
        use tower::ServiceExt;
        let app = crate::Gateway::router_for_tests();
        for op in OPERATIONS {
            let path = op.path.replace("{id}", "1");
            let request = axum::http::Request::builder()
                .method(op.method.to_uppercase().as_str())
                .uri(&path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_ne!(response.status(), 405, "{} {} is documented but not served", op.method, op.path);
            if response.status() == 404 {
                let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_ne!(body["detail"], "Not found.", "{} {} is documented but not served", op.method, op.path);
            }
        }
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        // Every referenced schema exists.
        let text = document.to_string();
        for reference in text.split("#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "schema {name} is referenced but not defined"
            );
        }
    }
}
