//! Agents: `GET/POST /v1/agents`, `GET/PATCH/PUT/DELETE /v1/agents/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::Timestamp;
use domain::agent::settings::{self, Applies, Kind as Shaped, Setting, SettingSource, Shape};
use domain::agent::{self, AgentPatch, AgentSettingsPatch, AgentSpec, Tool, Voice, check_tools};
use domain::fields::{NOT_NULL, REQUIRED};
use serde_json::Value;
use wire::pb::{self, command::Kind, query, reply::Result as R};

use super::{Created, created, path_id};
use crate::auth::Caller;
use crate::body::{Fields, JsonObject, json_type};
use crate::error::ApiError;
use crate::{App, render};

/// Parses an agent body: `AgentRequest` (create) and `AgentWriteRequest` (PUT) when `full`,
/// which require `name`, `prompt` and `voice`; `PatchedAgentWriteRequest` (PATCH) otherwise.
/// `greeting`, `max_hold_seconds` and `tools` are switchboard's own, beside the contract's.
pub fn parse_patch(f: &mut Fields, full: bool) -> AgentPatch {
    let name = if full { f.required_str("name") } else { f.optional_str("name") };
    let name = f.parse("name", name, |n| AgentSpec::parse_name(&n));
    let prompt = if full { f.required_str("prompt") } else { f.optional_str("prompt") };
    let prompt = f.parse("prompt", prompt, |p| AgentSpec::parse_prompt(&p));
    let voice = if full { f.required_str("voice") } else { f.optional_str("voice") };
    let voice = f.parse("voice", voice, |v| Voice::parse(&v));
    let greeting = f.optional_str("greeting");
    let greeting = f.parse("greeting", greeting, |g| AgentSpec::parse_greeting(&g));
    let hold = f.optional_int("max_hold_seconds");
    let max_hold_seconds = f.parse("max_hold_seconds", hold, AgentSpec::parse_max_hold_seconds);
    let tools = f.optional_list("tools").map(|items| parse_tools(f, items));
    let settings = AgentSettingsPatch::read(&mut BodySettings { f: &mut *f, inline: false });
    check_drafts(f);
    AgentPatch { name, prompt, voice, greeting, max_hold_seconds, tools, settings }
}

/// Reads the settings of a body, checking each value's JSON type against the setting's shape
/// (with DRF's messages) before the setting's own type parses it.
struct BodySettings<'a> {
    f: &'a mut Fields,
    /// A call's inline `config` (`WebhookConfigRequest`) rather than an agent's body: it names
    /// some settings its own way and leaves some out.
    inline: bool,
}

/// Settings an inline config may send as null, meaning the default.
const INLINE_NULL_MEANS_DEFAULT: &[&str] =
    &["silence_hangup_seconds", "silence_interval_seconds", "silence_max_checkins", "transfer_destinations"];

impl SettingSource for BodySettings<'_> {
    fn take<T: Setting>(&mut self, field: &'static str, shape: Shape) -> Option<T> {
        let applies = settings::shape_of(field).map(|(_, a)| a);
        let (name, shape) = match (self.inline, applies) {
            (false, Some(Applies::Inline)) | (true, Some(Applies::Agent)) => return None,
            (true, _) if field == "acknowledgement_feedback_mode" => {
                ("storm_feedback_mode", Shape::of(Shaped::Choice(settings::FeedbackMode::VALUES)))
            }
            (true, _) if field == "thinking_level" => {
                (field, Shape::of(Shaped::Choice(settings::ThinkingLevel::VALUES)))
            }
            (true, _) if field == "primary_language" => {
                // `language` is an alias: checked when both are given, and the setting's own name wins.
                if self.f.has(field) {
                    if let Some(alias) = self.f.optional_value("language") {
                        let alias = checked(self.f, "language", shape, alias);
                        if let Err(e) = alias.map(serde_json::from_value::<T>).transpose() {
                            self.f.error("language", e.to_string());
                        }
                    }
                    (field, shape)
                } else {
                    ("language", shape)
                }
            }
            (true, _) if INLINE_NULL_MEANS_DEFAULT.contains(&field) => (field, shape.nullable()),
            _ => (field, shape),
        };
        let value = self.f.optional_value(name)?;
        let free_form = matches!(shape.kind, Shaped::FreeForm { .. });
        if value.is_null() && !T::SHAPE.nullable && !free_form {
            // Only where null means the default (above): the setting stays as it is.
            return if shape.nullable { None } else { self.refuse(name, NOT_NULL) };
        }
        let value = checked(self.f, name, shape, value)?;
        match serde_json::from_value::<T>(value) {
            Ok(v) => Some(v),
            Err(e) => self.refuse(name, e.to_string()),
        }
    }
}

impl BodySettings<'_> {
    fn refuse<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.f.error(field, message);
        None
    }
}

/// A value whose JSON type fits `shape`, made ready for the setting's type (a free-form value
/// becomes its JSON text); `None`, with the field's errors recorded, if it does not fit.
fn checked(f: &mut Fields, field: &str, shape: Shape, value: Value) -> Option<Value> {
    if value.is_null() {
        // A free-form value may be any JSON, null among them (its default).
        if let Shaped::FreeForm { .. } = shape.kind {
            return Some(Value::String("null".to_owned()));
        }
        return if shape.nullable { Some(Value::Null) } else { error(f, field, NOT_NULL) };
    }
    match (shape.kind, value) {
        (Shaped::Bool, v @ Value::Bool(_)) => Some(v),
        (Shaped::Bool, _) => error(f, field, "Must be a valid boolean."),
        (Shaped::Int { .. }, v) if crate::body::whole_number(&v).is_some() => {
            crate::body::whole_number(&v).map(Value::from)
        }
        (Shaped::Int { .. }, _) => error(f, field, "A valid integer is required."),
        (Shaped::Text { .. }, v @ Value::String(_)) => Some(v),
        (Shaped::Text { .. }, _) => error(f, field, "Not a valid string."),
        (Shaped::Choice(values), Value::String(s)) if values.contains(&s.as_str()) => Some(Value::String(s)),
        (Shaped::Choice(_), Value::String(s)) => error(f, field, format!("\"{s}\" is not a valid choice.")),
        (Shaped::Choice(_), _) => error(f, field, "Not a valid string."),
        (Shaped::Texts { .. }, Value::Array(items)) => {
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    f.error(&format!("{field}.{i}"), "Not a valid string.");
                    ok = false;
                }
            }
            ok.then_some(Value::Array(items))
        }
        (Shaped::Records { fields, .. }, Value::Array(items)) => {
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let Value::Object(map) = item else {
                    f.error(&format!("{field}.{i}"), "Expected a dictionary of items.");
                    ok = false;
                    continue;
                };
                for name in fields.iter() {
                    match map.get(*name) {
                        Some(Value::String(_)) => {}
                        None => f.error(&format!("{field}.{i}.{name}"), REQUIRED),
                        Some(_) => f.error(&format!("{field}.{i}.{name}"), "Not a valid string."),
                    }
                }
                for key in map.keys().filter(|k| !fields.contains(&k.as_str())) {
                    f.error(&format!("{field}.{i}.{key}"), "Unknown field.");
                }
                ok &= !f.has_error_under(&format!("{field}.{i}"));
            }
            ok.then_some(Value::Array(items))
        }
        (Shaped::Texts { .. } | Shaped::Records { .. }, v) => {
            error(f, field, format!("Expected a list of items but got type \"{}\".", json_type(&v)))
        }
        (Shaped::FreeForm { .. }, v) => Some(Value::String(v.to_string())),
    }
}

fn error<T>(f: &mut Fields, field: &str, message: impl Into<String>) -> Option<T> {
    f.error(field, message);
    None
}

/// The contract's `draft_*` fields: a draft is edited, then deployed, in ThunderPhone's
/// dashboard, which switchboard does not have. They are accepted, checked like the settings
/// they draft (nullable, and a choice may be blank), and not kept: an agent reads back with no
/// draft (`has_draft` false).
pub const DRAFT_FIELDS: &[&str] = &[
    "draft_acknowledgement_feedback_mode",
    "draft_acknowledgement_prompt",
    "draft_acknowledgement_prompt_mode",
    "draft_additional_audio_context",
    "draft_audio_context_mode",
    "draft_background_track",
    "draft_business_hours",
    "draft_call_summary_enabled",
    "draft_connect_tone_enabled",
    "draft_consent_announcement_enabled",
    "draft_consent_announcement_text",
    "draft_extraction_blocks_completion",
    "draft_extraction_fields",
    "draft_inbound_speak_order",
    "draft_integration_ids",
    "draft_knowledge_base_ids",
    "draft_knowledge_document_ids",
    "draft_mcp_server_ids",
    "draft_name",
    "draft_native_voice_switching",
    "draft_outbound_speak_order",
    "draft_outcome_labels",
    "draft_phi_processing_override",
    "draft_play_sound_asset",
    "draft_primary_language",
    "draft_product",
    "draft_prompt",
    "draft_report_instructions",
    "draft_reusable_instruction_ids",
    "draft_send_email_enabled",
    "draft_send_email_recipient",
    "draft_send_sms_enabled",
    "draft_silence_checkins_enabled",
    "draft_silence_hangup_seconds",
    "draft_silence_interval_seconds",
    "draft_silence_max_checkins",
    "draft_sms_allow_other_recipients",
    "draft_sms_allowed_recipients",
    "draft_sms_followup_enabled",
    "draft_sms_followup_template",
    "draft_sms_from_number",
    "draft_speak_uninterruptible_enabled",
    "draft_split_testing_enabled",
    "draft_thinking_level",
    "draft_timezone",
    "draft_transfer_destinations",
    "draft_typing_sounds_enabled",
    "draft_voice",
    "draft_voicemail_action",
    "draft_voicemail_message",
    "draft_watchdog_enabled",
    "draft_widget_enabled",
];

/// The shape a draft field is checked against.
pub fn draft_shape(field: &str) -> Shape {
    let drafted = field.trim_start_matches("draft_");
    let base = match drafted {
        "name" => Shape::of(Shaped::Text { max_chars: domain::agent::MAX_NAME_CHARS }),
        "prompt" => Shape::of(Shaped::Text { max_chars: domain::agent::MAX_PROMPT_CHARS }),
        "voice" => Shape::of(Shaped::Text { max_chars: 100 }),
        _ => settings::shape_of(drafted)
            .map(|(shape, _)| shape)
            .unwrap_or(Shape::of(Shaped::FreeForm { max_bytes: settings::MAX_FREE_FORM_BYTES })),
    };
    match base.kind {
        Shaped::Choice(values) => Shape::of(Shaped::Choice(draft_choices(values))).nullable(),
        _ => base.nullable(),
    }
}

/// A draft's choices: its setting's, and blank.
fn draft_choices(values: &'static [&'static str]) -> &'static [&'static str] {
    use settings::*;
    const SETS: &[(&[&str], &[&str])] = &[
        (&["acknowledgement", "tick"], &["", "acknowledgement", "tick"]),
        (PromptMode::VALUES, &["", "auto", "manual"]),
        (AudioContextMode::VALUES, &["", "full", "reduced"]),
        (ExtractionBlocksCompletion::VALUES, &["", "always", "except_transfers", "never"]),
        (SpeakOrder::VALUES, &["", "agent_first", "caller_first"]),
        (PhiProcessingOverride::VALUES, &["", "inherit", "no_phi", "phi"]),
        (SoundAsset::VALUES, &["", "beep", "chime", "ding"]),
        (
            Product::VALUES,
            &[
                "",
                "bolt",
                "bolt-base-experimental",
                "bolt-extra-experimental",
                "spark",
                "storm-base",
                "storm-base-with-ack",
                "storm-extra",
                "storm-extra-with-ack",
            ],
        ),
        (&["base", "extra"], &["", "base", "extra"]),
        (VoicemailAction::VALUES, &["", "hangup", "message", "prompt"]),
    ];
    SETS.iter().find(|(of, _)| *of == values).map_or(values, |(_, with_blank)| with_blank)
}

fn check_drafts(f: &mut Fields) {
    for field in DRAFT_FIELDS {
        if let Some(value) = f.optional_value(field) {
            checked(f, field, draft_shape(field), value);
        }
    }
}

/// `if_updated_at` (the precondition of a PUT or PATCH) and `updated_at`, which a client may
/// send back as it read it and which is the server's to set: accepted, ignored.
fn parse_precondition(f: &mut Fields) -> Option<Timestamp> {
    let raw = f.optional_str("if_updated_at");
    let at = f.parse("if_updated_at", raw, |t| agent::parse_if_updated_at(&t));
    let updated_at = f.optional_str("updated_at");
    f.parse("updated_at", updated_at, |t| agent::parse_if_updated_at(&t));
    at
}

/// The name an inline configuration runs under when it gives none.
pub const INLINE_AGENT_NAME: &str = "Inline agent";

/// Parses the `config` of `POST /v1/call` (the contract's `WebhookConfigRequest`) into the agent
/// the call runs with: the same spec and settings a saved agent has. `prompt` is required; what
/// the client always sends at its defaults is taken as given.
pub fn parse_inline_config(f: &mut Fields) -> Option<AgentSpec> {
    let prompt = f.required_str("prompt");
    let prompt = f.parse("prompt", prompt, |p| AgentSpec::parse_prompt(&p));
    let name = f.optional_str("agent_name").filter(|n| !n.trim().is_empty());
    let name = f
        .parse("agent_name", Some(name.unwrap_or_else(|| INLINE_AGENT_NAME.to_owned())), |n| AgentSpec::parse_name(&n));
    let voice = f.optional_str("voice");
    let voice = match voice {
        Some(v) => f.parse("voice", Some(v), |v| Voice::parse(&v)),
        None => Some(Voice::default()),
    };
    // Read, and not kept: the runtime's display name of the voice, the id of a call the
    // config answers (the engine allocates a placed call's id), the org's name (the engine
    // knows it), whether there are additional languages (they are listed), and variables
    // (the call's own `variables` fill a prompt's).
    let voice_name = f.optional_str("voice_name");
    f.parse("voice_name", voice_name, |v| domain::fields::name(&v, 100));
    f.optional_int("call_id");
    let org_name = f.optional_str("org_name");
    f.parse("org_name", org_name, |n| domain::fields::name(&n, 200));
    f.optional_bool("has_additional_languages");
    if let Some(variables) = f.optional_value("variables") {
        checked(f, "variables", Shape::of(Shaped::FreeForm { max_bytes: settings::MAX_FREE_FORM_BYTES }), variables);
    }
    let tools = f.optional_list("tools").map(|items| parse_inline_tools(f, items)).unwrap_or_default();
    let settings = AgentSettingsPatch::read(&mut BodySettings { f: &mut *f, inline: true });
    let settings = settings.apply(&domain::agent::AgentSettings::default());
    let mut spec = AgentSpec::named(name?);
    spec.prompt = prompt?;
    spec.voice = voice?;
    spec.tools = tools;
    spec.settings = settings;
    Some(spec)
}

/// The contract's `ToolDefinitionRequest`s: a function (by `function` or at the top level) and
/// where the runtime posts its calls (`endpoint.url` or `url`). Headers, MCP and provider
/// details, timeouts and request formats are accepted and not kept: switchboard's runtime posts
/// a tool's calls as JSON to its URL.
fn parse_inline_tools(f: &mut Fields, items: Vec<Value>) -> Vec<Tool> {
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(map) = item else {
            f.error(&format!("tools.{i}"), "Expected a dictionary of items.");
            continue;
        };
        let prefix = format!("tools.{i}.");
        let mut t = Fields::nested(map, &prefix);
        let mut function = t.optional_object("function").map(|m| Fields::nested(m, &format!("{prefix}function.")));
        let mut endpoint = t.optional_object("endpoint").map(|m| Fields::nested(m, &format!("{prefix}endpoint.")));
        let name = t.optional_str("name").or_else(|| function.as_mut().and_then(|f| f.required_str("name")));
        if name.is_none() && !t.has_error("name") && !t.has_error("function.name") {
            t.error("name", REQUIRED);
        }
        let name = t.parse("name", name, |n| Tool::parse_name(&n));
        let description = t
            .optional_str("description")
            .or_else(|| function.as_mut().and_then(|f| f.optional_str("description")))
            .unwrap_or_default();
        let description = t.parse("description", Some(description), |d| Tool::parse_description(&d));
        let url =
            t.optional_nullable_str("url").flatten().or_else(|| endpoint.as_mut().and_then(|e| e.required_str("url")));
        let url = match url {
            Some(u) => t.parse("url", Some(u), |u| Tool::parse_url(&u)).map(Some),
            None => Some(None),
        };
        let parameters = t
            .optional_object("parameters")
            .or_else(|| function.as_mut().and_then(|f| f.optional_object("parameters")))
            .unwrap_or_default();
        let kind = t.optional_str("type");
        t.parse("type", kind, |k| domain::fields::name(&k, 64));
        for free in ["headers", "mcp", "provider"] {
            t.optional_object(free);
        }
        t.optional_value("timeout");
        if let Some(e) = endpoint.as_mut() {
            e.optional_object("headers");
            for text in ["method", "request_format"] {
                let v = e.optional_str(text);
                e.parse(text, v, |v| domain::fields::name(&v, 32));
            }
        }
        for nested in [function, endpoint].into_iter().flatten() {
            t.absorb(nested);
        }
        if let (Some(name), Some(description), Some(url)) = (name, description, url) {
            tools.push(Tool { name, description, url, parameters_json: Value::Object(parameters).to_string() });
        }
        f.absorb(t);
    }
    if let Err(e) = check_tools(&tools) {
        f.error("tools", e);
    }
    tools
}

fn parse_tools(f: &mut Fields, items: Vec<Value>) -> Vec<Tool> {
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(map) = item else {
            f.error(&format!("tools.{i}"), "Expected a dictionary of items.");
            continue;
        };
        let mut t = Fields::nested(map, &format!("tools.{i}."));
        let name = t.required_str("name");
        let name = t.parse("name", name, |n| Tool::parse_name(&n));
        let description = t.optional_str("description").unwrap_or_default();
        let description = t.parse("description", Some(description), |d| Tool::parse_description(&d));
        let url = if t.has("url") { t.optional_nullable_str("url") } else { None };
        let url = match url {
            Some(Some(u)) => t.parse("url", Some(u), |u| Tool::parse_url(&u)).map(Some),
            _ => Some(None),
        };
        let parameters = t.optional_object("parameters").unwrap_or_default();
        if let (Some(name), Some(description), Some(url)) = (name, description, url) {
            tools.push(Tool { name, description, url, parameters_json: Value::Object(parameters).to_string() });
        }
        f.absorb(t);
    }
    if let Err(e) = check_tools(&tools) {
        f.error("tools", e);
    }
    tools
}

/// A full body, and the precondition a PUT may carry (create takes none).
fn full_spec(body: JsonObject, precondition: bool) -> Result<(AgentSpec, Option<Timestamp>), ApiError> {
    let mut f = Fields::new(body);
    let patch = parse_patch(&mut f, true);
    let at = if precondition { parse_precondition(&mut f) } else { None };
    f.finish(|| {
        let name = patch.name.clone()?;
        Some((patch.apply(&AgentSpec::named(name)), at))
    })
}

fn agent_reply(result: R) -> Result<Value, ApiError> {
    match result {
        R::Agent(a) => Ok(render::agent(&a)),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn create(State(app): State<App>, caller: Caller, body: JsonObject) -> Result<Created, ApiError> {
    let (spec, _) = full_spec(body, false)?;
    let result = app.services.command(caller.org, Kind::CreateAgent((&spec).into())).await?;
    Ok(created(agent_reply(result)?))
}

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match app.services.query(caller.org, query::Kind::ListAgents(pb::Empty {})).await? {
        R::Agents(list) => Ok(Json(list.agents.iter().map(render::agent).collect())),
        _ => Err(ApiError::unexpected_reply()),
    }
}

pub async fn get(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let result = app.services.query(caller.org, query::Kind::GetAgent(pb::ById { id })).await?;
    Ok(Json(agent_reply(result)?))
}

async fn update(
    app: &App,
    caller: Caller,
    id: u64,
    patch: AgentPatch,
    if_updated_at: Option<Timestamp>,
) -> Result<Json<Value>, ApiError> {
    let command = Kind::UpdateAgent(pb::UpdateAgent {
        id,
        patch: Some((&patch).into()),
        if_updated_at_ms: if_updated_at.map(Timestamp::as_millis),
    });
    Ok(Json(agent_reply(app.services.command(caller.org, command).await?)?))
}

pub async fn replace(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let (spec, at) = full_spec(body, true)?;
    update(&app, caller, id, AgentPatch::replacing(spec), at).await
}

pub async fn patch(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let mut f = Fields::new(body);
    let patch = parse_patch(&mut f, false);
    let at = parse_precondition(&mut f);
    let patch = f.finish(|| Some(patch))?;
    update(&app, caller, id, patch, at).await
}

pub async fn delete(State(app): State<App>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    match app.services.command(caller.org, Kind::DeleteAgent(pb::ById { id })).await? {
        R::Done(_) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::unexpected_reply()),
    }
}
