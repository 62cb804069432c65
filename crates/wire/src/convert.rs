//! Domain types to protobuf and back. Protobuf to domain re-parses every value, so a message
//! from a foreign or buggy sender cannot put an invalid value inside the engine.

use domain::FieldErrors;
use domain::agent::{AgentPatch, AgentSettings, AgentSettingsPatch, AgentSpec, Tool, Voice, check_tools};
use domain::ids::AgentId;
use domain::org::{self, NumberBacking};
use domain::secret::Secret;
use domain::voip::{Evidence, Provider, SipTrunk, Transport, Vendor};

use crate::pb;

impl From<&Tool> for pb::Tool {
    fn from(t: &Tool) -> Self {
        Self {
            name: t.name.clone(),
            description: t.description.clone(),
            url: t.url.clone(),
            parameters_json: t.parameters_json.clone(),
        }
    }
}

fn tools_from_pb(tools: Vec<pb::Tool>, field: &str, errors: &mut FieldErrors) -> Vec<Tool> {
    let mut parsed = Vec::with_capacity(tools.len());
    for (i, t) in tools.into_iter().enumerate() {
        let mut ok = true;
        let mut check = |name: &str, r: Result<String, String>| match r {
            Ok(v) => Some(v),
            Err(e) => {
                errors.add(format!("{field}.{i}.{name}"), e);
                ok = false;
                None
            }
        };
        let name = check("name", Tool::parse_name(&t.name));
        let description = check("description", Tool::parse_description(&t.description));
        let url = t.url.map(|u| check("url", Tool::parse_url(&u)));
        if ok {
            parsed.push(Tool {
                name: name.expect("checked"),
                description: description.expect("checked"),
                url: url.flatten(),
                parameters_json: t.parameters_json,
            });
        }
    }
    if let Err(e) = check_tools(&parsed) {
        errors.add(field, e);
    }
    parsed
}

impl From<&AgentSpec> for pb::AgentSpec {
    fn from(s: &AgentSpec) -> Self {
        Self {
            name: s.name.clone(),
            prompt: s.prompt.clone(),
            voice: s.voice.as_str().to_owned(),
            greeting: s.greeting.clone(),
            max_hold_seconds: s.max_hold_seconds,
            tools: s.tools.iter().map(Into::into).collect(),
            settings: encode_settings(&s.settings),
        }
    }
}

fn encode_settings<T: serde::Serialize>(settings: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(settings).expect("settings serialize: every field is a plain value")
}

/// Decodes settings; decoding re-parses every value (each setting's type refuses what its rule
/// refuses), so a bad value is a field error, not a stored one.
fn decode_settings<T: serde::de::DeserializeOwned + Default>(bytes: &[u8], errors: &mut FieldErrors) -> Option<T> {
    if bytes.is_empty() {
        return Some(T::default());
    }
    rmp_serde::from_slice(bytes).map_err(|e| errors.add("settings", e.to_string())).ok()
}

/// Records a field's parse error and yields its value if it parsed.
fn field<T>(errors: &mut FieldErrors, name: &str, parsed: Result<T, String>) -> Option<T> {
    parsed.map_err(|e| errors.add(name, e)).ok()
}

impl TryFrom<pb::AgentSpec> for AgentSpec {
    type Error = FieldErrors;
    fn try_from(s: pb::AgentSpec) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::new();
        let name = field(&mut e, "name", AgentSpec::parse_name(&s.name));
        let prompt = field(&mut e, "prompt", AgentSpec::parse_prompt(&s.prompt));
        let voice = field(&mut e, "voice", Voice::parse(&s.voice));
        let greeting = field(&mut e, "greeting", AgentSpec::parse_greeting(&s.greeting));
        let hold = field(&mut e, "max_hold_seconds", AgentSpec::parse_max_hold_seconds(s.max_hold_seconds.into()));
        let tools = tools_from_pb(s.tools, "tools", &mut e);
        let settings = decode_settings::<AgentSettings>(&s.settings, &mut e);
        match (name, prompt, voice, greeting, hold, settings) {
            (Some(name), Some(prompt), Some(voice), Some(greeting), Some(max_hold_seconds), Some(settings))
                if e.is_empty() =>
            {
                Ok(AgentSpec { name, prompt, voice, greeting, max_hold_seconds, tools, settings })
            }
            _ => Err(e),
        }
    }
}

impl From<&AgentPatch> for pb::AgentPatch {
    fn from(p: &AgentPatch) -> Self {
        Self {
            name: p.name.clone(),
            prompt: p.prompt.clone(),
            voice: p.voice.as_ref().map(|v| v.as_str().to_owned()),
            greeting: p.greeting.clone(),
            max_hold_seconds: p.max_hold_seconds,
            tools: p.tools.as_ref().map(|t| pb::ToolList { tools: t.iter().map(Into::into).collect() }),
            settings: if p.settings == AgentSettingsPatch::default() {
                Vec::new()
            } else {
                encode_settings(&p.settings)
            },
        }
    }
}

impl TryFrom<pb::AgentPatch> for AgentPatch {
    type Error = FieldErrors;
    fn try_from(p: pb::AgentPatch) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::new();
        let patch = AgentPatch {
            name: p.name.and_then(|v| field(&mut e, "name", AgentSpec::parse_name(&v))),
            prompt: p.prompt.and_then(|v| field(&mut e, "prompt", AgentSpec::parse_prompt(&v))),
            voice: p.voice.and_then(|v| field(&mut e, "voice", Voice::parse(&v))),
            greeting: p.greeting.and_then(|v| field(&mut e, "greeting", AgentSpec::parse_greeting(&v))),
            max_hold_seconds: p
                .max_hold_seconds
                .and_then(|v| field(&mut e, "max_hold_seconds", AgentSpec::parse_max_hold_seconds(v.into()))),
            tools: p.tools.map(|t| tools_from_pb(t.tools, "tools", &mut e)),
            settings: decode_settings::<AgentSettingsPatch>(&p.settings, &mut e).unwrap_or_default(),
        };
        e.into_result(patch)
    }
}

impl From<&org::Agent> for pb::Agent {
    fn from(a: &org::Agent) -> Self {
        Self {
            id: a.id.0,
            spec: Some((&a.spec).into()),
            created_at_ms: a.created_at.as_millis(),
            updated_at_ms: a.updated_at.as_millis(),
        }
    }
}

impl From<&org::OrgProfile> for pb::Org {
    fn from(o: &org::OrgProfile) -> Self {
        Self {
            id: o.id.0,
            name: o.name.clone(),
            trial: o.trial,
            created_at_ms: o.created_at.as_millis(),
            updated_at_ms: o.updated_at.as_millis(),
            max_concurrent_test_calls: o.test_call_limit(),
            rate_limit_per_second: o.rate_limit(),
            max_agents: o.quotas.limit(org::Quota::Agents),
            max_api_keys: o.quotas.limit(org::Quota::ApiKeys),
            max_voip_connections: o.quotas.limit(org::Quota::VoipConnections),
            max_phone_numbers: o.quotas.limit(org::Quota::PhoneNumbers),
            max_open_batches: o.quotas.limit(org::Quota::OpenBatches),
            max_webhook_endpoints: o.quotas.limit(org::Quota::WebhookEndpoints),
        }
    }
}

impl From<&org::ApiKey> for pb::ApiKey {
    fn from(k: &org::ApiKey) -> Self {
        Self { id: k.id.0, name: k.name.clone(), created_at_ms: k.created_at.as_millis() }
    }
}

/// A connection's configuration as the wire carries it: to test, create or reconfigure.
#[derive(Debug)]
pub struct ConnectionSpec {
    pub name: String,
    pub vendor: Vendor,
    pub provider: Provider,
    /// The connection test a create or reconfiguration rests on; empty for a test.
    pub evidence_id: String,
}

/// A connection to test, create or reconfigure, for the wire: the only message that carries a
/// SIP password, in the clear, from the gateway that received it to the actor that seals it.
pub fn connection_spec(name: &str, vendor: Vendor, provider: &Provider, evidence_id: &str) -> pb::VoipConnectionSpec {
    let mut spec = spec_of(name, vendor, provider, |p| p.expose().to_owned());
    spec.evidence_id = evidence_id.to_owned();
    spec
}

/// A connection's provider as replies show it: never with its password.
fn spec_of<P>(
    name: &str,
    vendor: Vendor,
    provider: &Provider<P>,
    password: impl Fn(&P) -> String,
) -> pb::VoipConnectionSpec {
    let provider = match provider {
        Provider::Sim => pb::voip_connection_spec::Provider::Sim(pb::Empty {}),
        Provider::Sip(t) => pb::voip_connection_spec::Provider::Sip(pb::SipTrunk {
            host: t.host.clone(),
            port: t.port.into(),
            transport: t.transport.as_str().to_owned(),
            username: t.username.clone(),
            password: password(&t.password),
        }),
    };
    pb::VoipConnectionSpec {
        name: name.to_owned(),
        provider: Some(provider),
        vendor: vendor.as_str().to_owned(),
        evidence_id: String::new(),
    }
}

/// Parses a connection spec from the wire.
pub fn parse_connection_spec(spec: pb::VoipConnectionSpec) -> Result<ConnectionSpec, FieldErrors> {
    let mut e = FieldErrors::new();
    let name = field(&mut e, "name", domain::voip::parse_connection_name(&spec.name));
    let vendor = field(&mut e, "provider", Vendor::parse(&spec.vendor));
    let evidence_id = if spec.evidence_id.is_empty() {
        Some(String::new())
    } else {
        field(&mut e, "verification_evidence_id", domain::voip::parse_evidence_id(&spec.evidence_id))
    };
    let provider = match spec.provider {
        None => {
            e.add("sip_config", domain::fields::REQUIRED);
            None
        }
        Some(pb::voip_connection_spec::Provider::Sim(_)) => Some(Provider::Sim),
        Some(pb::voip_connection_spec::Provider::Sip(t)) => {
            let host = field(&mut e, "sip_config.host", SipTrunk::parse_host(&t.host));
            let port = field(&mut e, "sip_config.port", SipTrunk::parse_port(t.port.into()));
            let transport = field(&mut e, "sip_config.transport", Transport::parse(&t.transport));
            let username = field(&mut e, "credentials.username", SipTrunk::parse_credential(&t.username));
            let password =
                field(&mut e, "credentials.password", SipTrunk::parse_credential(&t.password).map(Secret::new));
            match (host, port, transport, username, password) {
                (Some(host), Some(port), Some(transport), Some(username), Some(password)) => {
                    Some(Provider::Sip(SipTrunk { host, port, transport, username, password }))
                }
                _ => None,
            }
        }
    };
    match (name, vendor, provider, evidence_id) {
        (Some(name), Some(vendor), Some(provider), Some(evidence_id)) if e.is_empty() => {
            Ok(ConnectionSpec { name, vendor, provider, evidence_id })
        }
        _ => Err(e),
    }
}

impl From<&org::VoipConnection> for pb::VoipConnection {
    fn from(c: &org::VoipConnection) -> Self {
        Self {
            id: c.id.0,
            spec: Some(spec_of(&c.name, c.vendor, &c.provider, |_| String::new())),
            verified: c.verified,
            verified_at_ms: c.verified_at.map(|t| t.as_millis()),
            verification_error: c.verification_error.clone(),
            created_at_ms: c.created_at.as_millis(),
            updated_at_ms: c.updated_at.as_millis(),
            evidence_id: c.evidence_id.clone(),
            numbers_imported: 0,
        }
    }
}

/// A connection as replies show it, with the count of the org's numbers it carries.
pub fn connection_with_numbers<'a>(
    c: &org::VoipConnection,
    numbers: impl IntoIterator<Item = &'a org::PhoneNumber>,
) -> pb::VoipConnection {
    let count = numbers.into_iter().filter(|n| n.backing == NumberBacking::Voip(c.id)).count();
    pb::VoipConnection { numbers_imported: u32::try_from(count).unwrap_or(u32::MAX), ..c.into() }
}

impl From<&Evidence> for pb::ConnectionEvidence {
    fn from(e: &Evidence) -> Self {
        Self {
            id: e.id.clone(),
            vendor: e.vendor.as_str().to_owned(),
            trunk: e.trunk.as_ref().map(|t| pb::SipTrunk {
                host: t.host.clone(),
                port: t.port.into(),
                transport: t.transport.as_str().to_owned(),
                username: t.username.clone(),
                password: String::new(),
            }),
            fingerprint: e.fingerprint.iter().map(|b| format!("{b:02x}")).collect(),
            error: e.error.clone(),
            connection_id: e.connection_id.map(|c| c.0),
            at_ms: e.at.as_millis(),
        }
    }
}

impl From<&org::PhoneNumber> for pb::PhoneNumber {
    fn from(n: &org::PhoneNumber) -> Self {
        Self {
            id: n.id.0,
            number: n.number.as_str().to_owned(),
            voip_connection_id: match n.backing {
                NumberBacking::Voip(c) => Some(c.0),
                NumberBacking::Demo => None,
            },
            inbound_agent_id: n.inbound_agent_id.map(|a| a.0),
            outbound_agent_id: n.outbound_agent_id.map(|a| a.0),
            created_at_ms: n.created_at.as_millis(),
            updated_at_ms: n.updated_at.as_millis(),
            label: n.label.clone(),
            webhook_url: n.webhook_url.clone(),
            verification_status: n.verification.status.as_str().to_owned(),
            verified_at_ms: n.verification.at.map(|t| t.as_millis()),
            verification_evidence_id: n.verification.evidence_id.clone(),
            verification_error: n.verification.error.clone(),
        }
    }
}

pub fn assignment_from_pb(a: Option<pb::AgentAssignment>) -> Option<Option<AgentId>> {
    a.map(|a| a.agent_id.map(AgentId))
}

pub fn assignment_to_pb(a: Option<Option<AgentId>>) -> Option<pb::AgentAssignment> {
    a.map(|a| pb::AgentAssignment { agent_id: a.map(|a| a.0) })
}
