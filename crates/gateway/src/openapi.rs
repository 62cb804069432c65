//! The OpenAPI 3.1 document of the public API, served at `GET /v1/openapi.json`.
//!
//! Operations come from one table ([`OPERATIONS`]); a test sends each to the router and fails
//! if any is not served, so the document cannot name a route the gateway lacks. Schemas mirror
//! `render.rs`, and schemathesis (run by `.ci/run`) checks real responses against them.

use std::sync::OnceLock;

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
fn boolean() -> Value {
    json!({ "type": "boolean" })
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
    op!("post" "/v1/voip-connections/test", "Test a connection's configuration; answers the evidence a create presents", Key, body: Some("VoipConnectionTestInput"), ok: 201 Some("ConnectionTest"), query: &[], errors: &[409]),
    op!("post" "/v1/voip-connections", "Create a VoIP connection on the evidence of its test", Key, body: Some("VoipConnectionInput"), ok: 201 Some("VoipConnection"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/voip-connections/sip-host", "The SIP host trunks send inbound calls to", Key, body: None, ok: 200 Some("VoipSipHost"), query: &[], errors: &[]),
    op!("get" "/v1/voip-connections/{id}", "Get a VoIP connection", Key, body: None, ok: 200 Some("VoipConnection"), query: &[], errors: &[]),
    op!("patch" "/v1/voip-connections/{id}", "Rename a connection, or change its configuration on new evidence", Key, body: Some("VoipConnectionPatch"), ok: 200 Some("VoipConnection"), query: &[], errors: &[409]),
    op!("delete" "/v1/voip-connections/{id}", "Delete a VoIP connection", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("post" "/v1/voip-connections/{id}/import-numbers", "Import the org's own numbers onto a connection", Key, body: Some("NumberImportInput"), ok: 201 Some("ImportedNumbers"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/phone-numbers", "List phone numbers", Key, body: None, ok: 200 Some("PhoneNumberList"), query: &[], errors: &[]),
    op!("post" "/v1/phone-numbers", "Provision an inbound-only demo number", Key, body: Some("PhoneNumberProvisionInput"), ok: 201 Some("PhoneNumber"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/phone-numbers/{id}", "Get a phone number", Key, body: None, ok: 200 Some("PhoneNumber"), query: &[], errors: &[]),
    op!("patch" "/v1/phone-numbers/{id}", "Change a phone number's agents, label or webhook", Key, body: Some("PhoneNumberUpdateInput"), ok: 200 Some("PhoneNumberUpdate"), query: &[], errors: &[409]),
    op!("put" "/v1/phone-numbers/{id}", "Change a phone number's agents, label or webhook", Key, body: Some("PhoneNumberUpdateInput"), ok: 200 Some("PhoneNumberUpdate"), query: &[], errors: &[409]),
    op!("delete" "/v1/phone-numbers/{id}", "Release a phone number (confirm=true)", Key, body: None, ok: 200 Some("PhoneNumberReleased"),
        query: &[("confirm", boolean), ("release_at_provider", boolean)], errors: &[409]),
    op!("post" "/v1/phone-numbers/{id}/verify-voip", "Verify a VoIP number on its trunk", Key, body: Some("FreeForm"), ok: 200 Some("NumberVerification"), query: &[], errors: &[409]),
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
    op!("get" "/v1/billing/balance", "Get the prepaid balance", Key, body: None, ok: 200 Some("Balance"), query: &[], errors: &[]),
    op!("get" "/v1/billing/transactions", "List transactions, newest first", Key, body: None, ok: 200 Some("TransactionPage"), query: PAGE, errors: &[]),
    op!("post" "/admin/v1/orgs", "Create an org (admin)", Admin, body: Some("NameInput"), ok: 201 Some("Org"), query: &[], errors: &[409]),
    op!("get" "/admin/v1/orgs/{id}", "Get an org (admin)", Admin, body: None, ok: 200 Some("Org"), query: &[], errors: &[]),
    op!("patch" "/admin/v1/orgs/{id}", "Change an org's standing and limits (admin)", Admin, body: Some("OrgPatch"), ok: 200 Some("Org"), query: &[], errors: &[409]),
    op!("post" "/admin/v1/orgs/{id}/keys", "Create an org's API key (admin)", Admin, body: Some("NameInput"), ok: 201 Some("CreatedApiKey"), query: &[], errors: &[403, 409]),
    op!("post" "/admin/v1/orgs/{id}/credits", "Add funds (admin)", Admin, body: Some("CreditInput"), ok: 201 Some("Transaction"), query: &[], errors: &[409]),
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
        402 => ("Insufficient balance", reference("Error")),
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
    // A SIP trunk's fields (see `domain::voip::SipTrunk`): no control character, and not blank.
    let credential = json!({
        "type": "string", "minLength": 1, "maxLength": domain::voip::MAX_CREDENTIAL_CHARS,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    });
    let sip_config = json!({
        "type": "object", "required": ["host"], "additionalProperties": false, "properties": {
            "host": { "type": "string", "minLength": 1, "maxLength": domain::voip::MAX_HOST_CHARS, "pattern": "^[A-Za-z0-9.:\\[\\]-]+$" },
            "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
            "transport": { "type": "string", "enum": ["udp", "tcp", "tls"] }
        }
    });
    let credentials = json!({
        "type": "object", "additionalProperties": false, "properties": { "username": credential.clone(), "password": credential }
    });
    let provider = json!({ "type": "string", "enum": domain::voip::Vendor::ALL.map(domain::voip::Vendor::as_str) });
    // A trunk needs its username and password; the simulated carrier (host `sim`, a manual
    // connection) none.
    let trunk_or_sim = json!([
        { "required": ["credentials"], "properties": {
            "sip_config": { "properties": { "host": { "not": { "const": "sim" } } } },
            "credentials": { "required": ["username", "password"] }
        } },
        { "properties": { "provider": { "const": "manual" }, "sip_config": { "properties": { "host": { "const": "sim" } } } } }
    ]);
    let uuid = json!({ "type": "string", "format": "uuid", "pattern": "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$" });
    let number_status =
        json!({ "type": "string", "enum": ["active", "draft", "failed", "provisioning", "released", "releasing"] });
    let provision_text = json!({ "type": "string", "maxLength": crate::routes::numbers::MAX_PROVISION_FIELD_CHARS });
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
        "VoipConnection": object(&["id", "name", "provider", "status", "sip_config", "credentials", "inferred_name", "last_tested_at",
                "test_result", "numbers_imported", "numbers_pending_verification", "provisioning_supported", "provisioning_message",
                "transfer_enabled_at", "transfer_refused_at", "created_at", "updated_at"], json!({
            "id": int(), "name": { "type": "string" }, "provider": provider.clone(),
            "status": { "type": "string", "enum": ["connected", "draft", "error", "pending", "testing"] },
            "sip_config": { "type": "object" }, "credentials": { "type": "object" }, "inferred_name": { "type": "boolean" },
            "last_tested_at": time_or_null, "test_result": {}, "numbers_imported": int(), "numbers_pending_verification": int(),
            "provisioning_supported": { "type": "boolean" }, "provisioning_message": nullable("string"),
            "transfer_enabled_at": time_or_null, "transfer_refused_at": time_or_null, "created_at": time, "updated_at": time
        })),
        "VoipConnectionList": list("VoipConnection"),
        "SipConfig": sip_config.clone(),
        "Credentials": credentials.clone(),
        "VoipConnectionTestInput": {
            "type": "object", "required": ["provider", "sip_config"], "additionalProperties": false,
            "properties": {
                "provider": provider.clone(), "sip_config": reference("SipConfig"), "credentials": reference("Credentials"),
                "connection_id": { "type": "integer", "minimum": 1, "maximum": domain::ids::MAX_SAFE_ID }, "target_number": e164
            },
            "anyOf": trunk_or_sim.clone()
        },
        "VoipConnectionInput": {
            "type": "object", "required": ["provider", "verification_evidence_id", "sip_config"], "additionalProperties": false,
            "properties": {
                "provider": provider.clone(), "verification_evidence_id": uuid.clone(), "sip_config": reference("SipConfig"),
                "credentials": reference("Credentials"), "name": { "type": "string", "maxLength": 100 },
                "setup_method": { "type": "string", "enum": ["api_key", "guided_telnyx", "manual", "twilio_subaccount"] }
            },
            "anyOf": trunk_or_sim
        },
        "VoipConnectionPatch": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "maxLength": 100 }, "sip_config": reference("SipConfig"),
                "credentials": reference("Credentials"), "verification_evidence_id": uuid.clone()
            },
            // A new configuration is a whole one (the password is never read back to merge), on
            // the evidence of its test.
            "dependentRequired": { "sip_config": ["verification_evidence_id"], "credentials": ["sip_config", "verification_evidence_id"] }
        },
        "VerificationEvidence": object(&["id", "provider", "config_fingerprint", "outbound_status", "inbound_status", "evidence",
                "provider_charge_currency", "provider_charge_estimate_cents", "provider_charge_note", "created_at"], json!({
            "id": uuid.clone(), "provider": provider.clone(), "config_fingerprint": { "type": "string" },
            "outbound_status": { "type": "string", "enum": ["pass", "fail"] }, "inbound_status": { "type": "string", "enum": ["pass", "fail"] },
            "evidence": {}, "provider_charge_currency": { "type": "string" }, "provider_charge_estimate_cents": nullable("integer"),
            "provider_charge_note": { "type": "string" }, "created_at": time
        })),
        "ConnectionTest": object(&["suggested_connection_name", "suggested_connection_name_inferred", "test_result", "verification_evidence"], json!({
            "suggested_connection_name": { "type": "string" }, "suggested_connection_name_inferred": { "type": "boolean" },
            "test_result": { "type": "object" }, "verification_evidence": reference("VerificationEvidence")
        })),
        "VoipSipHost": object(&["sip_host"], json!({ "sip_host": nullable("string") })),
        "NumberImportInput": { "type": "object", "required": ["numbers"], "additionalProperties": false, "properties": {
            "numbers": { "type": "array", "minItems": 1, "maxItems": crate::routes::voip::MAX_IMPORT_NUMBERS, "items": e164.clone() }
        } },
        "ImportedNumbers": object(&["imported_count", "results", "provider_charge_estimate_cents", "provider_charge_note"], json!({
            "imported_count": int(), "provider_charge_estimate_cents": int(), "provider_charge_note": { "type": "string" },
            "results": { "type": "array", "items": object(&["id", "number", "status"], json!({
                "id": int(), "number": { "type": "string" }, "status": { "type": "string" }
            })) }
        })),
        "PhoneNumber": object(&["id", "number", "label", "source", "status", "voip_connection_id", "inbound_agent_id", "outbound_agent_id",
                "outbound_eligible", "outbound_ineligible_reason", "voip_verification_status", "voip_last_verified_at", "webhook_url",
                "webhook_signing_secret", "voip_inbound_status", "voip_inbound_result", "voip_inbound_test_method", "voip_inbound_tested_at",
                "sms_capable", "sms_capability_checked_at"], json!({
            "id": int(), "number": { "type": "string" }, "label": { "type": "string" },
            "source": { "type": "string", "enum": ["voip", "demo"] }, "status": number_status.clone(),
            "voip_connection_id": nullable("integer"), "inbound_agent_id": nullable("integer"), "outbound_agent_id": nullable("integer"),
            "outbound_eligible": { "type": "boolean" }, "outbound_ineligible_reason": nullable("string"),
            "voip_verification_status": { "type": "string", "enum": ["carrier_accepted", "failed", "unverified", "verified"] },
            "voip_last_verified_at": time_or_null, "webhook_url": nullable("string"), "webhook_signing_secret": nullable("string"),
            "voip_inbound_status": { "type": "string", "enum": ["failed", "passed", "untested"] }, "voip_inbound_result": {},
            "voip_inbound_test_method": { "type": ["string", "null"], "enum": ["loopback", "platform", null] },
            "voip_inbound_tested_at": time_or_null, "sms_capable": nullable("boolean"), "sms_capability_checked_at": time_or_null,
            "created_at": time, "updated_at": time
        })),
        "PhoneNumberList": list("PhoneNumber"),
        "PhoneNumberProvisionInput": { "type": "object", "additionalProperties": false, "properties": {
            "area_code": provision_text.clone(), "city": provision_text.clone(), "state": provision_text.clone(), "idempotency_key": provision_text
        } },
        "PhoneNumberUpdateInput": { "type": "object", "additionalProperties": false, "properties": {
            "inbound_agent_id": nullable("integer"), "outbound_agent_id": nullable("integer"),
            "label": { "type": "string", "maxLength": domain::org::MAX_NUMBER_LABEL_CHARS },
            // Only `active`: a number is active until it is released.
            "status": { "type": "string", "enum": ["active"] },
            "webhook_url": { "type": ["string", "null"], "maxLength": domain::agent::MAX_URL_CHARS, "pattern": "^https?://[^/\\s][^\\s]*$" }
        } },
        "PhoneNumberUpdate": object(&["inbound_agent_id", "outbound_agent_id", "label", "status", "webhook_url"], json!({
            "inbound_agent_id": nullable("integer"), "outbound_agent_id": nullable("integer"), "label": { "type": "string" },
            "status": number_status, "webhook_url": nullable("string")
        })),
        "PhoneNumberReleased": object(&["detail", "released_at_provider", "routing_removed"], json!({
            "detail": { "type": "string" }, "released_at_provider": { "type": "boolean" }, "routing_removed": { "type": "boolean" }
        })),
        "NumberVerification": object(&["phone_number_id", "status", "voip_verification_status", "verification_evidence",
                "provider_charge_currency", "provider_charge_estimate_cents", "provider_charge_note"], json!({
            "phone_number_id": int(), "status": { "type": "string" }, "voip_verification_status": { "type": "string" },
            "verification_evidence": reference("VerificationEvidence"), "provider_charge_currency": { "type": "string" },
            "provider_charge_estimate_cents": nullable("integer"), "provider_charge_note": { "type": "string" }
        })),
        "FreeForm": { "type": "object" },
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
        "Transaction": object(&["id", "kind", "amount_cents", "balance_after_cents", "reference", "call_id", "description", "created_at"], json!({
            "id": int(), "kind": { "type": "string", "enum": ["top_up", "call_charge", "test_call_charge"] }, "amount_cents": int(),
            "balance_after_cents": int(), "reference": { "type": "string" }, "call_id": nullable("integer"),
            "description": { "type": "string" }, "created_at": time
        })),
        "TransactionPage": object(&["results", "total", "limit", "offset"], json!({ "results": list("Transaction"), "total": int(), "limit": int(), "offset": int() })),
        "CreditInput": { "type": "object", "required": ["amount_cents", "reference"], "additionalProperties": false, "properties": {
            "amount_cents": { "type": "integer", "minimum": 1, "maximum": 100000000 }, "reference": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "\\S" },
            "description": { "type": "string" }
        } },
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
