//! The OpenAPI 3.1 document of the public API, served at `GET /v1/openapi.json`.
//!
//! Operations come from one table ([`OPERATIONS`]); a test sends each to the router and fails
//! if any is not served, so the document cannot name a route the gateway lacks. Schemas mirror
//! `render.rs`, and schemathesis (run by `.ci/run`) checks real responses against them.

use std::sync::OnceLock;

use domain::agent::settings::{self, Applies, Kind, Shape};
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

/// A name or label as `domain::fields` takes one: not blank, at most `max` characters, and none of
/// the characters a name may not hold (`fields::hidden_ranges`).
fn visible_text(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "allOf": [{ "pattern": "\\S" }, { "pattern": no_hidden_characters() }] })
}

/// `^[^...]*$` over the hidden ranges: BMP characters as `\uXXXX` escapes (ECMA-262 and Python
/// read them alike), the few beyond it written as themselves.
fn no_hidden_characters() -> &'static str {
    static PATTERN: OnceLock<String> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let class_char = |c: char| if (c as u32) < 0x10000 { format!("\\u{:04x}", c as u32) } else { c.to_string() };
        let ranges: String = domain::fields::hidden_ranges()
            .into_iter()
            .map(|r| {
                if r.start() == r.end() {
                    class_char(*r.start())
                } else {
                    format!("{}-{}", class_char(*r.start()), class_char(*r.end()))
                }
            })
            .collect();
        format!("^[^{ranges}]*$")
    })
}

/// A name or label that may be blank (`""` is what the client sends unset), holding none of the
/// characters a name may not hold.
fn plain_text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": no_hidden_characters() })
}

/// Query parameters a request must give.
const REQUIRED_QUERY: &[&str] = &["confirm"];

/// A release names `confirm=true`: the contract requires the parameter, and only true releases.
fn confirm_true() -> Value {
    json!({ "type": "boolean", "enum": [true] })
}

/// An agent a number names, or null for none.
fn agent_reference() -> Value {
    json!({ "type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX })
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
/// What `routes::page` takes: an offset fits in 32 bits.
fn offset() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX })
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
/// A call list's direction filter: `test` selects test calls' legs, `web` nothing (switchboard
/// takes no web calls).
fn call_direction() -> Value {
    json!({ "type": "string", "enum": ["outbound", "inbound", "test", "web"] })
}
fn id_filter() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })
}
fn e164_filter() -> Value {
    json!({ "type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$" })
}
/// A date (a whole day in UTC) or an ISO 8601 datetime with an offset.
fn time_bound() -> Value {
    json!({ "anyOf": [{ "type": "string", "format": "date" }, { "type": "string", "format": "date-time" }] })
}
fn export_format() -> Value {
    json!({ "type": "string", "enum": ["json", "csv"] })
}

const CALL_LIST_QUERY: &[QueryParameter] = &[
    ("limit", limit),
    ("offset", offset),
    ("status", call_status),
    ("agent_id", id_filter),
    ("direction", call_direction),
    ("from_number", e164_filter),
    ("to_number", e164_filter),
    ("phone_number", e164_filter),
    ("start_date", time_bound),
    ("end_date", time_bound),
    ("exclude_test_calls", boolean),
];

const CALL_EXPORT_QUERY: &[QueryParameter] = &[
    ("format", export_format),
    ("status", call_status),
    ("agent_id", id_filter),
    ("direction", call_direction),
    ("from_number", e164_filter),
    ("to_number", e164_filter),
    ("phone_number", e164_filter),
    ("start_date", time_bound),
    ("end_date", time_bound),
    ("exclude_test_calls", boolean),
];
fn target_type() -> Value {
    json!({ "type": "string", "enum": ["agent", "phone_number"] })
}

/// A test call's `target_number`: E.164, or `""` (what the client sends when none was given)
/// or null for the bot's own number.
fn test_target_number() -> Value {
    json!({ "type": ["string", "null"], "pattern": "^(\\+[1-9][0-9]{7,14})?$" })
}
/// A language the test bot is asked to speak (checked for length, not kept).
fn language() -> Value {
    json!({ "type": "string", "maxLength": crate::routes::test_calls::MAX_LANGUAGE_CHARS })
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
    op!("get" "/v1/whoami", "The calling credential and its organization", Key, body: None, ok: 200 Some("WhoAmI"), query: &[], errors: &[]),
    op!("get" "/v1/openapi.json", "This document", None, body: None, ok: 200 Some("Document"), query: &[], errors: &[]),
    op!("get" "/v1/keys", "List API keys", Key, body: None, ok: 200 Some("ApiKeyList"), query: &[], errors: &[]),
    op!("post" "/v1/keys", "Create an API key", Key, body: Some("NameInput"), ok: 201 Some("CreatedApiKey"), query: &[], errors: &[403, 409]),
    op!("delete" "/v1/keys/{id}", "Revoke an API key", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("get" "/v1/agents", "List agents", Key, body: None, ok: 200 Some("AgentList"), query: &[], errors: &[]),
    op!("post" "/v1/agents", "Create an agent", Key, body: Some("AgentInput"), ok: 201 Some("Agent"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/agents/{id}", "Get an agent", Key, body: None, ok: 200 Some("Agent"), query: &[], errors: &[]),
    op!("patch" "/v1/agents/{id}", "Change some of an agent's fields", Key, body: Some("AgentPatch?"), ok: 200 Some("Agent"), query: &[], errors: &[409]),
    op!("put" "/v1/agents/{id}", "Replace an agent", Key, body: Some("AgentReplace"), ok: 200 Some("Agent"), query: &[], errors: &[409]),
    op!("delete" "/v1/agents/{id}", "Delete an agent", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("get" "/v1/voip-connections", "List VoIP connections", Key, body: None, ok: 200 Some("VoipConnectionList"), query: &[], errors: &[]),
    op!("post" "/v1/voip-connections/test", "Test a connection's configuration; answers the evidence a create presents", Key, body: Some("VoipConnectionTestInput"), ok: 201 Some("ConnectionTest"), query: &[], errors: &[403, 409]),
    op!("post" "/v1/voip-connections", "Create a VoIP connection on the evidence of its test", Key, body: Some("VoipConnectionInput"), ok: 201 Some("VoipConnection"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/voip-connections/sip-host", "The SIP host trunks send inbound calls to", Key, body: None, ok: 200 Some("VoipSipHost"), query: &[], errors: &[]),
    op!("get" "/v1/voip-connections/{id}", "Get a VoIP connection", Key, body: None, ok: 200 Some("VoipConnection"), query: &[], errors: &[]),
    op!("patch" "/v1/voip-connections/{id}", "Rename a connection, or change its configuration on new evidence", Key, body: Some("VoipConnectionPatch"), ok: 200 Some("VoipConnection"), query: &[], errors: &[403, 409]),
    op!("delete" "/v1/voip-connections/{id}", "Delete a VoIP connection", Key, body: None, ok: 204 None, query: &[], errors: &[409]),
    op!("post" "/v1/voip-connections/{id}/import-numbers", "Import the org's own numbers onto a connection", Key, body: Some("NumberImportInput"), ok: 201 Some("ImportedNumbers"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/phone-numbers", "List phone numbers", Key, body: None, ok: 200 Some("PhoneNumberList"), query: &[], errors: &[]),
    op!("post" "/v1/phone-numbers", "Provision an inbound-only demo number", Key, body: Some("PhoneNumberProvisionInput"), ok: 201 Some("PhoneNumber"), query: &[], errors: &[403, 409]),
    op!("get" "/v1/phone-numbers/{id}", "Get a phone number", Key, body: None, ok: 200 Some("PhoneNumber"), query: &[], errors: &[]),
    op!("patch" "/v1/phone-numbers/{id}", "Change a phone number's agents, label or webhook", Key, body: Some("PhoneNumberUpdateInput?"), ok: 200 Some("PhoneNumberUpdate"), query: &[], errors: &[409]),
    op!("put" "/v1/phone-numbers/{id}", "Change a phone number's agents, label or webhook", Key, body: Some("PhoneNumberUpdateInput?"), ok: 200 Some("PhoneNumberUpdate"), query: &[], errors: &[409]),
    op!("delete" "/v1/phone-numbers/{id}", "Release a phone number (confirm=true)", Key, body: None, ok: 200 Some("PhoneNumberReleased"),
        query: &[("confirm", confirm_true), ("release_at_provider", boolean)], errors: &[409]),
    op!("post" "/v1/phone-numbers/{id}/verify-voip", "Verify a VoIP number on its trunk", Key, body: Some("FreeForm"), ok: 200 Some("NumberVerification"), query: &[], errors: &[409]),
    op!("post" "/v1/call", "Place an outbound call", Key, body: Some("PlaceCall"), ok: 201 Some("PlaceCallResponse"), query: &[], errors: &[402, 403, 409, 502]),
    op!("get" "/v1/calls", "List calls, newest first", Key, body: None, ok: 200 Some("CallListResponse"), query: CALL_LIST_QUERY, errors: &[]),
    op!("get" "/v1/calls/export", "Export calls, newest first, as JSON (at most 1000) or CSV (all, streamed)", Key, body: None, ok: 200 Some("CallExport"), query: CALL_EXPORT_QUERY, errors: &[]),
    op!("get" "/v1/calls/{id}", "Get a call", Key, body: None, ok: 200 Some("Call"), query: &[], errors: &[]),
    op!("get" "/v1/calls/{id}/transcript", "Get a call's transcript", Key, body: None, ok: 200 Some("CallTranscript"), query: &[("live", boolean)], errors: &[]),
    op!("get" "/v1/calls/{id}/history", "Get a call's event timeline", Key, body: None, ok: 200 Some("EventList"), query: &[], errors: &[]),
    op!("post" "/v1/calls/{id}/hangup", "Hang up a call (idempotent)", Key, body: None, ok: 200 Some("Call"), query: &[], errors: &[409]),
    op!("get" "/v1/test-calls", "List test-call runs", Key, body: None, ok: 200 Some("TestRunList"),
        query: &[("limit", limit), ("offset", offset), ("target_type", target_type), ("status", run_status), ("agent_id", id_filter)], errors: &[]),
    op!("post" "/v1/test-calls", "Start a test-call run", Key, body: Some("TestRunInput"), ok: 201 Some("TestRun"), query: &[], errors: &[402, 409]),
    op!("get" "/v1/test-calls/{id}", "Get a test-call run", Key, body: None, ok: 200 Some("TestRun"), query: &[], errors: &[]),
    op!("get" "/v1/test-call-batches", "List test-call batches", Key, body: None, ok: 200 Some("TestBatchList"), query: PAGE, errors: &[]),
    op!("post" "/v1/test-call-batches", "Start a test-call batch", Key, body: Some("TestBatchInput"), ok: 201 Some("TestBatch"), query: &[], errors: &[402, 403, 409]),
    op!("get" "/v1/test-call-batches/{id}", "Get a batch and its run ids", Key, body: None, ok: 200 Some("TestBatch"), query: &[], errors: &[]),
    op!("get" "/v1/test-call-batches/{id}/events", "Get a batch's event history", Key, body: None, ok: 200 Some("EventList"), query: &[], errors: &[]),
    op!("post" "/v1/test-call-batches/{id}/cancel", "Stop the runs a batch has not launched; they end failed (idempotent)", Key, body: None, ok: 200 Some("TestBatch"), query: &[], errors: &[409]),
    op!("get" "/v1/simulations", "List test-call runs (alias of /v1/test-calls)", Key, body: None, ok: 200 Some("TestRunList"),
        query: &[("limit", limit), ("offset", offset), ("target_type", target_type), ("status", run_status), ("agent_id", id_filter)], errors: &[]),
    op!("post" "/v1/simulations", "Start a test-call run (alias of /v1/test-calls)", Key, body: Some("TestRunInput"), ok: 201 Some("TestRun"), query: &[], errors: &[402, 409]),
    op!("get" "/v1/simulations/batches", "List test-call batches (alias of /v1/test-call-batches)", Key, body: None, ok: 200 Some("TestBatchList"), query: PAGE, errors: &[]),
    op!("post" "/v1/simulations/batches", "Start a test-call batch (alias of /v1/test-call-batches)", Key, body: Some("TestBatchInput"), ok: 201 Some("TestBatch"), query: &[], errors: &[402, 403, 409]),
    op!("get" "/v1/simulations/batches/{id}", "Get a batch and its run ids (alias of /v1/test-call-batches/{id})", Key, body: None, ok: 200 Some("TestBatch"), query: &[], errors: &[]),
    op!("get" "/v1/billing", "Get the billing account: balance and auto-reload", Key, body: None, ok: 200 Some("BillingAccount"), query: &[], errors: &[]),
    op!("patch" "/v1/billing", "Change the auto-reload settings", Key, body: Some("PatchedAutoReloadRequest?"), ok: 200 Some("BillingAccount"), query: &[], errors: &[]),
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
            .map(|(name, schema)| json!({ "name": name, "in": "query", "required": REQUIRED_QUERY.contains(name), "schema": schema() }))
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
            let (body, required) = match body.strip_suffix('?') {
                Some(optional) => (optional, false),
                None => (body, true),
            };
            operation["requestBody"] = json!({ "required": required, "content": json_content(reference(body)) });
        }
        operation["security"] = match op.auth {
            Auth::None => json!([]),
            Auth::Key => json!([{ "apiKey": [] }]),
            Auth::Admin => json!([{ "adminToken": [] }]),
        };
        operation["operationId"] = Value::String(operation_id(op));
        paths.entry(op.path.to_owned()).or_insert_with(|| json!({}))[op.method] = operation;
    }
    add_links(&mut paths);
    // The export answers CSV too, when asked.
    paths["/v1/calls/export"]["get"]["responses"]["200"]["content"]["text/csv"] =
        json!({ "schema": { "type": "string" } });
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

/// `get /v1/calls/{id}/transcript` is `get_v1_calls_id_transcript`.
fn operation_id(op: &Operation) -> String {
    let path: String =
        op.path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>().replace("__", "_");
    format!("{}_{}", op.method, path.trim_matches('_'))
}

/// What a create answers with the id of (`from` is the create, `pointer` where its body holds the
/// id) and the path of what it created (`to`): every operation at `to` or below it is linked.
const CREATES: &[(&str, &str, &str)] = &[
    ("post /v1/agents", "/id", "/v1/agents/{id}"),
    ("post /v1/keys", "/id", "/v1/keys/{id}"),
    ("post /v1/voip-connections", "/id", "/v1/voip-connections/{id}"),
    ("post /v1/phone-numbers", "/id", "/v1/phone-numbers/{id}"),
    ("post /v1/voip-connections/{id}/import-numbers", "/results/0/id", "/v1/phone-numbers/{id}"),
    ("post /v1/call", "/call_id", "/v1/calls/{id}"),
    ("post /v1/test-calls", "/id", "/v1/test-calls/{id}"),
    ("post /v1/test-call-batches", "/id", "/v1/test-call-batches/{id}"),
    ("post /v1/simulations", "/id", "/v1/test-calls/{id}"),
    ("post /v1/simulations/batches", "/id", "/v1/simulations/batches/{id}"),
    ("post /admin/v1/orgs", "/id", "/admin/v1/orgs/{id}"),
];

/// OpenAPI links from each create's success to the operations on what it created, so a stateful
/// fuzzer (schemathesis' stateful phase) works on real resources rather than guessing ids.
fn add_links(paths: &mut Map<String, Value>) {
    let targets: Vec<(String, String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().into_iter().flatten().map(move |(method, operation)| {
                (path.clone(), method.clone(), operation["operationId"].as_str().unwrap_or_default().to_owned())
            })
        })
        .collect();
    for (from, pointer, to) in CREATES {
        let (method, path) = from.split_once(' ').expect("method and path");
        let Some(operation) = paths.get_mut(path).and_then(|item| item.get_mut(method)) else { continue };
        let Some(responses) = operation["responses"].as_object_mut() else { continue };
        let Some(ok) = responses.iter_mut().find(|(status, _)| status.starts_with('2')).map(|(_, r)| r) else {
            continue;
        };
        let mut links = Map::new();
        for (target_path, _, operation_id) in &targets {
            if target_path == to || target_path.starts_with(&format!("{to}/")) {
                links.insert(
                    operation_id.clone(),
                    json!({ "operationId": operation_id, "parameters": { "id": format!("$response.body#{pointer}") } }),
                );
            }
        }
        if !links.is_empty() {
            ok["links"] = Value::Object(links);
        }
    }
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

fn voice() -> Value {
    json!({ "type": "string", "enum": domain::agent::VOICES })
}

fn tool_input() -> Value {
    json!({
        "type": "object", "required": ["name"], "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
            "description": { "type": "string", "maxLength": 1000 },
            "url": { "type": ["string", "null"], "format": "uri", "pattern": "^https?://[^/\\s]", "maxLength": 2048 },
            "parameters": { "type": "object" }
        }
    })
}

/// The fields of an agent body that are switchboard's (the contract's `name`, `prompt`,
/// `voice`, and `greeting`, `max_hold_seconds` and `tools` beside them).
fn agent_spec_fields() -> Map<String, Value> {
    let fields = json!({
        "name": visible_text(domain::agent::MAX_NAME_CHARS),
        "prompt": { "type": "string", "maxLength": domain::agent::MAX_PROMPT_CHARS },
        "voice": voice(),
        "greeting": { "type": "string", "maxLength": domain::agent::MAX_GREETING_CHARS },
        "max_hold_seconds": { "type": "integer", "minimum": 0, "maximum": domain::agent::MAX_HOLD_SECONDS_LIMIT },
        "tools": { "type": "array", "maxItems": domain::agent::MAX_TOOLS, "items": tool_input() }
    });
    let Value::Object(map) = fields else { unreachable!("an object literal") };
    map
}

/// A setting's schema, from its shape: every bound the setting's type enforces that JSON
/// Schema can state. `response`: as the API shows it (transfer numbers carry `platform_ok`).
fn setting_schema(field: &str, shape: Shape, response: bool) -> Value {
    let with_null = |t: &str| if shape.nullable { json!([t, "null"]) } else { json!(t) };
    let mut schema = match shape.kind {
        Kind::Bool => json!({ "type": with_null("boolean") }),
        Kind::Int { min, max } => json!({ "type": with_null("integer"), "minimum": min, "maximum": max }),
        Kind::Text { max_chars } => {
            let mut s = json!({ "type": with_null("string"), "maxLength": max_chars });
            if let Some(pattern) = text_pattern(field) {
                s["pattern"] = json!(pattern);
            }
            s
        }
        Kind::Choice(values) => {
            let mut values: Vec<Value> = values.iter().map(|v| json!(v)).collect();
            if shape.nullable {
                values.push(Value::Null);
            }
            json!({ "enum": values })
        }
        Kind::Texts { max_items, max_chars } => json!({
            "type": with_null("array"), "maxItems": max_items, "uniqueItems": true,
            "items": { "type": "string", "maxLength": max_chars, "pattern": LANGUAGE_PATTERN }
        }),
        Kind::Records { max_items, fields } => {
            let mut properties = Map::new();
            for name in fields {
                let pattern = if *name == "number" && fields.contains(&"name") {
                    TRANSFER_NUMBER_PATTERN
                } else if *name == "number" {
                    E164_PATTERN
                } else {
                    "\\S"
                };
                properties
                    .insert((*name).to_owned(), json!({ "type": "string", "maxLength": 100, "pattern": pattern }));
            }
            if response && fields.contains(&"name") {
                properties.insert("platform_ok".to_owned(), nullable("boolean"));
            }
            json!({
                "type": with_null("array"), "maxItems": max_items,
                "items": { "type": "object", "required": fields, "additionalProperties": response, "properties": properties }
            })
        }
        Kind::FreeForm { max_bytes } => {
            json!({ "description": format!("Any JSON value of at most {max_bytes} bytes; its meaning is the agent runtime's.") })
        }
    };
    if response {
        // What the API answers is already valid: its types suffice.
        if let Some(map) = schema.as_object_mut() {
            for bound in ["maxLength", "pattern", "maxItems", "uniqueItems"] {
                map.remove(bound);
            }
        }
    }
    schema
}

const E164_PATTERN: &str = "^\\+[1-9][0-9]{7,14}$";
const LANGUAGE_PATTERN: &str = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$";
/// E.164, ten US digits, or one `{{variable}}`.
const TRANSFER_NUMBER_PATTERN: &str = "^(\\+[1-9][0-9]{7,14}|[0-9]{10}|\\{\\{[A-Za-z_][A-Za-z0-9_]{0,63}\\}\\})$";

fn text_pattern(field: &str) -> Option<&'static str> {
    match field {
        "primary_language" => Some(LANGUAGE_PATTERN),
        "timezone" => Some("^([A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*)?$"),
        _ => None,
    }
}

/// `AgentRequest` (create: `full`), `AgentWriteRequest` (PUT: `full` and `precondition`) and
/// `PatchedAgentWriteRequest` (PATCH: `precondition`).
fn agent_input(full: bool, precondition: bool) -> Value {
    let mut properties = agent_spec_fields();
    for (name, shape, applies) in settings::SETTINGS {
        if *applies != Applies::Inline {
            properties.insert((*name).to_owned(), setting_schema(name, *shape, false));
        }
    }
    for name in crate::routes::agents::DRAFT_FIELDS {
        properties.insert((*name).to_owned(), setting_schema(name, crate::routes::agents::draft_shape(name), false));
    }
    if precondition {
        properties.insert("if_updated_at".to_owned(), json!({ "type": "string", "format": "date-time" }));
        properties.insert("updated_at".to_owned(), json!({ "type": "string", "format": "date-time" }));
    }
    let required: &[&str] = if full { &["name", "prompt", "voice"] } else { &[] };
    json!({ "type": "object", "required": required, "additionalProperties": false, "properties": properties })
}

/// The contract's `Agent`: every key it requires (the neutral ones included) and every setting.
fn agent_schema() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    let mut properties = Map::new();
    for (name, schema) in [
        ("id", int()),
        ("name", json!({ "type": "string" })),
        ("prompt", json!({ "type": "string" })),
        ("voice", json!({ "type": "string" })),
        ("greeting", json!({ "type": "string" })),
        ("max_hold_seconds", int()),
        ("tools", list("Tool")),
        ("created_at", time.clone()),
        ("updated_at", time),
        ("consent_disabled_reason", json!({ "type": "string" })),
        ("has_draft", json!({ "type": "boolean" })),
        ("draft_updated_at", json!({ "type": ["string", "null"], "format": "date-time" })),
        ("draft_additional_languages", json!({ "type": "array", "items": { "type": "string" } })),
        ("draft_handoffs", json!({})),
        ("draft_steps", json!({})),
        ("draft_max_call_duration_seconds", nullable("integer")),
        ("draft_ring_duration_seconds", nullable("integer")),
        ("integrations", json!({ "type": "array", "maxItems": 0 })),
        ("knowledge_bases", json!({ "type": "array", "maxItems": 0 })),
        ("knowledge_documents", json!({ "type": "array", "maxItems": 0 })),
        ("mcp_servers", json!({ "type": "array", "maxItems": 0 })),
        ("reusable_instructions", json!({ "type": "array", "maxItems": 0 })),
        ("tool_collision_warnings", json!({ "type": "array", "maxItems": 0 })),
    ] {
        properties.insert(name.to_owned(), schema);
    }
    let mut required: Vec<String> = properties.keys().cloned().collect();
    for (name, shape, applies) in settings::SETTINGS {
        if *applies != Applies::Inline {
            properties.insert((*name).to_owned(), setting_schema(name, *shape, true));
            required.push((*name).to_owned());
        }
    }
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The contract's `ToolDefinitionRequest`, as an inline config's `tools` take it.
fn tool_definition() -> Value {
    let free = json!({ "type": "object" });
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
            "description": { "type": "string", "maxLength": 1000 },
            "url": { "type": ["string", "null"], "format": "uri", "pattern": "^https?://[^/\\s]", "maxLength": 2048 },
            "parameters": { "type": "object" },
            "type": { "type": "string", "maxLength": 64 },
            "headers": free, "mcp": free, "provider": free, "timeout": {},
            "function": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
                "description": { "type": "string", "maxLength": 1000 },
                "parameters": { "type": "object" }
            } },
            "endpoint": { "type": "object", "required": ["url"], "additionalProperties": false, "properties": {
                "url": { "type": "string", "format": "uri", "pattern": "^https?://[^/\\s]", "maxLength": 2048 },
                "headers": free,
                "method": { "type": "string", "maxLength": 32 },
                "request_format": { "type": "string", "maxLength": 32 }
            } }
        },
        "anyOf": [{ "required": ["name"] }, { "required": ["function"] }]
    })
}

/// The contract's `WebhookConfigRequest`: the `config` of `POST /v1/call`.
fn inline_config() -> Value {
    let mut properties = Map::new();
    properties.insert("prompt".to_owned(), json!({ "type": "string", "maxLength": domain::agent::MAX_PROMPT_CHARS }));
    properties.insert("agent_name".to_owned(), json!({ "type": "string", "maxLength": domain::agent::MAX_NAME_CHARS }));
    properties.insert("voice".to_owned(), voice());
    properties.insert("voice_name".to_owned(), json!({ "type": "string", "maxLength": 100 }));
    properties.insert("org_name".to_owned(), json!({ "type": "string", "maxLength": 200 }));
    properties.insert("call_id".to_owned(), int());
    properties.insert("has_additional_languages".to_owned(), json!({ "type": "boolean" }));
    properties.insert("variables".to_owned(), json!({}));
    properties.insert(
        "tools".to_owned(),
        json!({ "type": "array", "maxItems": domain::agent::MAX_TOOLS, "items": tool_definition() }),
    );
    for (name, shape, applies) in settings::SETTINGS {
        if *applies == Applies::Agent {
            continue;
        }
        let (name, shape) = match *name {
            "acknowledgement_feedback_mode" => {
                ("storm_feedback_mode", Shape::of(Kind::Choice(settings::FeedbackMode::VALUES)))
            }
            "thinking_level" => (*name, Shape::of(Kind::Choice(settings::ThinkingLevel::VALUES))),
            "silence_hangup_seconds"
            | "silence_interval_seconds"
            | "silence_max_checkins"
            | "transfer_destinations" => (*name, shape.nullable()),
            _ => (*name, *shape),
        };
        properties.insert(name.to_owned(), setting_schema(name, shape, false));
    }
    properties.insert(
        "language".to_owned(),
        setting_schema("primary_language", settings::shape_of("primary_language").expect("a setting").0, false),
    );
    json!({ "type": "object", "required": ["prompt"], "additionalProperties": false, "properties": properties })
}

fn schemas() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    let time_or_null = json!({ "type": ["string", "null"], "format": "date-time" });
    let e164 = json!({ "type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$" });
    let language_tag = json!({ "type": "string", "maxLength": 35, "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$" });
    let tool = object(
        &["name", "description", "url", "parameters"],
        json!({
            "name": { "type": "string" }, "description": { "type": "string" }, "url": nullable("string"), "parameters": { "type": "object" }
        }),
    );
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
            "properties": { "name": visible_text(100) } },
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
        "Agent": agent_schema(),
        "AgentList": list("Agent"),
        "AgentInput": agent_input(true, false),
        "AgentReplace": agent_input(true, true),
        "AgentPatch": agent_input(false, true),
        "WhoAmI": object(&["credential_kind", "key_label", "key_prefix", "oauth_client_id", "organization", "role", "scopes"], json!({
            "credential_kind": { "type": "string", "enum": ["api_key", "oauth", "session"] },
            "key_label": nullable("string"), "key_prefix": nullable("string"), "oauth_client_id": nullable("string"),
            "organization": object(&["id", "name"], json!({ "id": int(), "name": { "type": "string" } })),
            "role": nullable("string"), "scopes": { "type": "array", "items": { "type": "string" } }
        })),
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
                "credentials": reference("Credentials"), "name": plain_text(100),
                "setup_method": { "type": "string", "enum": ["api_key", "guided_telnyx", "manual", "twilio_subaccount"] }
            },
            "anyOf": trunk_or_sim
        },
        "VoipConnectionPatch": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "name": plain_text(100), "sip_config": reference("SipConfig"),
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
            "inbound_agent_id": agent_reference(), "outbound_agent_id": agent_reference(),
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
            "from_number": e164, "to_number": e164,
            "agent_id": { "type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX },
            "config": { "anyOf": [inline_config(), { "type": "null" }] },
            "max_hold_seconds": { "type": ["integer", "null"], "minimum": 0, "maximum": 3600 },
            "variables": { "type": "object", "maxProperties": domain::call::MAX_VARIABLES,
                "propertyNames": { "minLength": 1, "maxLength": domain::call::MAX_VARIABLE_NAME_CHARS } },
            "language": language_tag, "primary_language": language_tag,
            "phi_mode": { "type": "string", "enum": ["phi"] },
            "idempotency_key": { "type": ["string", "null"], "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" }
        } },
        "PlaceCallResponse": object(&["call_id", "status"], json!({
            "call_id": int(), "status": { "const": "initiated" }, "idempotent_replay": { "type": "boolean" }
        })),
        "Call": object(&["agent_id", "agent_variant_id", "agent_variant_label", "billable_minutes", "billed_at", "billing_total_cents",
                "call_id", "call_outcome", "cloud_run_execution_name", "collected_values", "consent_evidence", "critical_issue_count",
                "direction", "duration_seconds", "end_reason", "end_time", "extracted_data", "from_number", "goal_achievement",
                "goal_reasoning", "grade_score", "grade_status", "grade_updated_at", "is_scenario_call", "is_simulation", "is_test_call",
                "issue_count", "livekit_room_name", "livekit_room_sid", "locale", "outbound_dial_state", "product", "prompt_snapshot",
                "recording_mode", "recording_policy", "recording_retention_notice", "recording_started_at", "recording_url",
                "sip_answered_at", "start_time", "status", "steps_trace", "thinking_level", "to_number", "tool_snapshot",
                "transfer_bridge_kind", "transfer_bridge_seconds", "transfer_bridge_total_cents", "transfer_destination",
                "transfer_outcome", "transfer_sip_status", "unresolved_variables", "variables", "voice"], json!({
            "call_id": int(), "direction": { "type": "string", "enum": ["inbound", "outbound", "test", "web"] },
            "from_number": { "type": "string" }, "to_number": { "type": "string" },
            "agent_id": nullable("integer"), "agent_variant_id": { "type": "null" }, "agent_variant_label": { "type": "null" },
            "status": call_status(), "end_reason": nullable("string"),
            "start_time": time, "sip_answered_at": time_or_null, "end_time": time_or_null,
            "duration_seconds": nullable("integer"), "billable_minutes": nullable("number"), "billing_total_cents": nullable("integer"),
            "billed_at": time_or_null,
            "outbound_dial_state": { "type": ["string", "null"], "enum": ["answered", "failed", "pending", "submitted", "unknown", null] },
            "is_test_call": { "type": "boolean" }, "is_simulation": { "type": "boolean" }, "is_scenario_call": { "type": "boolean" },
            "locale": { "type": "string" }, "prompt_snapshot": { "type": "string" }, "voice": nullable("string"),
            "tool_snapshot": list("Tool"), "thinking_level": { "type": "string" }, "product": nullable("string"),
            "variables": { "type": "object" }, "unresolved_variables": { "type": "array", "items": { "type": "string" } },
            "call_outcome": { "type": "null" }, "collected_values": { "type": "null" }, "extracted_data": { "type": "null" },
            "steps_trace": { "type": "null" }, "goal_achievement": { "type": "null" }, "goal_reasoning": { "type": "null" },
            "grade_score": { "type": "null" }, "grade_status": { "type": "null" }, "grade_updated_at": { "type": "null" },
            "issue_count": int(), "critical_issue_count": int(), "consent_evidence": {},
            "recording_mode": { "type": "string", "enum": ["disabled_by_config", "recording", "recording_failed_before_capture"] },
            "recording_policy": {}, "recording_retention_notice": { "type": "null" }, "recording_started_at": { "type": "null" },
            "recording_url": { "type": "null" }, "livekit_room_name": { "type": "null" }, "livekit_room_sid": { "type": "null" },
            "cloud_run_execution_name": { "type": "null" }, "transfer_destination": { "type": "string" },
            "transfer_outcome": { "type": "null" }, "transfer_bridge_kind": { "type": "null" }, "transfer_bridge_seconds": { "type": "null" },
            "transfer_bridge_total_cents": { "type": "null" }, "transfer_sip_status": { "type": "null" },
            "created_at": time, "updated_at": time
        })),
        "CallListResponse": object(&["results", "total", "limit", "offset"], json!({ "results": list("Call"), "total": int(), "limit": int(), "offset": int() })),
        "CallExport": object(&["calls", "total", "truncated"], json!({
            "calls": { "type": "array", "maxItems": crate::routes::calls::MAX_EXPORT_ROWS, "items": reference("Call") },
            "total": int(), "truncated": { "type": "boolean" }
        })),
        "CallTranscript": object(&["call_id", "transcripts"], json!({ "call_id": int(), "transcripts": { "type": "array", "items": object(&["role", "content", "start_ms"], json!({
            "role": { "type": "string", "enum": ["agent", "user"] }, "content": { "type": "string" }, "start_ms": int(), "seq": int(), "at": time
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
        "TestRunInput": { "type": "object", "required": ["target_type", "target_id", "consent_to_charge"], "additionalProperties": false, "properties": {
            "target_type": target_type(), "target_id": { "type": "integer", "minimum": 0, "maximum": i64::MAX }, "direction": direction(),
            "target_number": test_target_number(), "scenario_prompt": { "type": "string", "maxLength": 4000 },
            "mode": { "type": "string", "enum": ["bot", "sip"] }, "consent_to_charge": { "const": true },
            "language": language(), "primary_language": language(),
            "scenario_mode": { "type": "string", "enum": ["auto", "manual"] },
            "simulator_product": { "type": "string", "enum": ["spark", "testing"] }
        } },
        "TestRun": object(&["id", "target_type", "target_id", "target_name", "agent_name", "direction", "target_number", "scenario_prompt", "mode", "status", "charge_multiplier", "estimated_cost_cents", "call_id", "sip_call_id", "duration_seconds", "transcript", "grade", "recording_url", "metadata", "error_message", "requested_by_id", "started_at", "completed_at", "batch_id", "created_at", "updated_at"], json!({
            "id": int(), "target_type": target_type(), "target_id": int(), "target_name": { "type": "string" }, "agent_name": nullable("string"),
            "direction": direction(), "target_number": { "type": "string" },
            "scenario_prompt": { "type": "string" }, "mode": { "type": "string", "enum": ["bot", "sip"] }, "status": run_status(),
            "charge_multiplier": int(), "estimated_cost_cents": int(), "call_id": nullable("integer"), "sip_call_id": nullable("integer"),
            "duration_seconds": nullable("integer"),
            "transcript": { "type": "array", "items": object(&["role", "content"], json!({ "role": { "type": "string" }, "content": { "type": "string" }, "created_at": time })) },
            "grade": { "type": ["object", "null"] }, "recording_url": nullable("string"), "metadata": {},
            "error_message": { "type": "string" }, "requested_by_id": nullable("integer"),
            "started_at": time_or_null, "completed_at": time_or_null, "batch_id": nullable("integer"),
            "created_at": time, "updated_at": time
        })),
        "TestRunList": list("TestRun"),
        "TestBatchInput": { "type": "object", "required": ["target_type", "target_id", "consent_to_charge"], "additionalProperties": false,
            "not": { "required": ["scenario_prompt", "scenario_prompts"] }, "properties": {
            "name": plain_text(100), "target_type": target_type(), "target_id": { "type": "integer", "minimum": 0, "maximum": i64::MAX },
            "direction": direction(), "run_count": { "type": "integer", "minimum": 1, "maximum": 20 },
            "stagger_seconds": { "type": "integer", "minimum": 0, "maximum": 60 },
            "scenario_prompts": { "type": "array", "items": { "type": "string", "maxLength": 4000 } },
            "scenario_prompt": { "type": "string", "maxLength": 4000 },
            "target_number": test_target_number(),
            "mode": { "type": "string", "enum": ["bot", "sip"] }, "consent_to_charge": { "const": true },
            "language": language(), "primary_language": language()
        } },
        "TestBatch": object(&["id", "name", "target_type", "target_id", "direction", "target_number", "scenario_prompts", "run_count", "stagger_seconds", "mode", "status", "total_runs", "completed_runs", "failed_runs", "error_message", "estimated_cost_cents", "estimated_minutes", "matrix_dimensions", "requested_by_id", "started_at", "completed_at", "created_at", "updated_at", "run_ids"], json!({
            "id": int(), "name": { "type": "string" }, "target_type": target_type(), "target_id": int(), "direction": direction(),
            "target_number": { "type": "string" }, "scenario_prompts": { "type": "array", "items": { "type": "string" } },
            "run_count": int(), "stagger_seconds": int(), "mode": { "type": "string" },
            "status": { "type": "string", "enum": ["pending", "in_progress", "completed", "failed"] },
            "total_runs": int(), "completed_runs": int(), "failed_runs": int(), "error_message": { "type": "string" },
            "estimated_cost_cents": int(), "estimated_minutes": int(), "matrix_dimensions": {},
            "requested_by_id": nullable("integer"), "started_at": time_or_null, "completed_at": time_or_null, "created_at": time, "updated_at": time,
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
