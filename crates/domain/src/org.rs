//! An organization's configuration as one event-sourced aggregate: its profile, API keys,
//! agents, VoIP connections and phone numbers. One stream per org.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentPatch, AgentSpec};
use crate::call::{CallContext, CallSetup, Direction};
use crate::ids::{AgentId, ApiKeyId, CallId, Ctx, OrgId, PhoneNumberId, VoipConnectionId};
use crate::secret::Sealed;
use crate::test_call::RunSettings;
use crate::voip::{Evidence, EvidenceClaim, Provider, Vendor};
use crate::{E164, FieldErrors, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgProfile {
    pub id: OrgId,
    pub name: String,
    /// Trial orgs may not place outbound calls.
    pub trial: bool,
    /// How many test-call runs may be queued or in progress at once; `None` for the default.
    pub max_concurrent_test_calls: Option<u32>,
    /// Requests per second each API key of the org may make; `None` for the default.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// What the admin set of the org's quotas; the others are at their defaults.
    #[serde(default)]
    pub quotas: Quotas,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    /// SHA-256 of the key's secret part; the raw key is never stored.
    #[serde(with = "serde_bytes")]
    pub secret_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub spec: AgentSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoipConnection {
    pub id: VoipConnectionId,
    pub name: String,
    pub provider: Provider<Sealed>,
    pub verified: bool,
    pub verified_at: Option<Timestamp>,
    /// Why the last verification failed, if it did.
    pub verification_error: Option<String>,
    /// Whose trunk it is; connections recorded before providers were named are `manual`.
    #[serde(default)]
    pub vendor: Vendor,
    /// The connection test its configuration was created (or last changed) on.
    #[serde(default)]
    pub evidence_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether a number was proven to carry calls through its trunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberVerificationStatus {
    #[default]
    Unverified,
    Verified,
    Failed,
}

impl NumberVerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }
}

/// The last verification of a number (`verify-voip`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberCheck {
    pub status: NumberVerificationStatus,
    pub at: Option<Timestamp>,
    /// A UUID naming the verification, as the contract shows its evidence.
    pub evidence_id: Option<String>,
    pub error: Option<String>,
}

/// What carries a phone number's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NumberBacking {
    /// The org's own VoIP connection; may place outbound calls once the connection is verified.
    Voip(VoipConnectionId),
    /// A number provisioned by switchboard; inbound only.
    Demo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    pub id: PhoneNumberId,
    pub number: E164,
    pub backing: NumberBacking,
    pub inbound_agent_id: Option<AgentId>,
    pub outbound_agent_id: Option<AgentId>,
    #[serde(default)]
    pub label: String,
    /// Where the number's inbound webhooks go (stored; delivered once webhooks exist).
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub verification: NumberCheck,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A bound on how many of one kind of resource an org may hold, so that no org can grow the
/// partition it shares with others without limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    Agents,
    /// Keys not revoked.
    ApiKeys,
    VoipConnections,
    PhoneNumbers,
    /// Test-call batches with runs left to spawn.
    OpenBatches,
    /// Kept and shown; enforced once webhooks exist.
    WebhookEndpoints,
}

impl Quota {
    pub const ALL: [Quota; 6] = [
        Self::Agents,
        Self::ApiKeys,
        Self::VoipConnections,
        Self::PhoneNumbers,
        Self::OpenBatches,
        Self::WebhookEndpoints,
    ];

    /// The setting's name in the admin API.
    pub fn field(self) -> &'static str {
        match self {
            Self::Agents => "max_agents",
            Self::ApiKeys => "max_api_keys",
            Self::VoipConnections => "max_voip_connections",
            Self::PhoneNumbers => "max_phone_numbers",
            Self::OpenBatches => "max_open_batches",
            Self::WebhookEndpoints => "max_webhook_endpoints",
        }
    }

    pub fn default_limit(self) -> u32 {
        match self {
            Self::Agents => 1_000,
            Self::ApiKeys => 50,
            Self::VoipConnections => 100,
            Self::PhoneNumbers => 1_000,
            Self::OpenBatches => 20,
            Self::WebhookEndpoints => 20,
        }
    }

    /// What the quota counts, for the message that says it is reached.
    pub fn counts(self) -> &'static str {
        match self {
            Self::Agents => "agents",
            Self::ApiKeys => "active API keys",
            Self::VoipConnections => "VoIP connections",
            Self::PhoneNumbers => "phone numbers",
            Self::OpenBatches => "open test-call batches",
            Self::WebhookEndpoints => "webhook endpoints",
        }
    }
}

/// The most any quota may be set to.
pub const MAX_QUOTA: u32 = 100_000;

/// A quota as the admin gives it: 0 (no more of the resource) to [`MAX_QUOTA`].
pub fn parse_quota(raw: i64) -> Result<u32, String> {
    u32::try_from(raw)
        .ok()
        .filter(|n| *n <= MAX_QUOTA)
        .ok_or_else(|| format!("Ensure this value is between 0 and {MAX_QUOTA}."))
}

/// The quotas the admin set; `None` leaves one at its default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    #[serde(default)]
    pub max_agents: Option<u32>,
    #[serde(default)]
    pub max_api_keys: Option<u32>,
    #[serde(default)]
    pub max_voip_connections: Option<u32>,
    #[serde(default)]
    pub max_phone_numbers: Option<u32>,
    #[serde(default)]
    pub max_open_batches: Option<u32>,
    #[serde(default)]
    pub max_webhook_endpoints: Option<u32>,
}

impl Quotas {
    fn setting(&mut self, quota: Quota) -> &mut Option<u32> {
        match quota {
            Quota::Agents => &mut self.max_agents,
            Quota::ApiKeys => &mut self.max_api_keys,
            Quota::VoipConnections => &mut self.max_voip_connections,
            Quota::PhoneNumbers => &mut self.max_phone_numbers,
            Quota::OpenBatches => &mut self.max_open_batches,
            Quota::WebhookEndpoints => &mut self.max_webhook_endpoints,
        }
    }

    /// The quota in force: the admin's, or the default.
    pub fn limit(&self, quota: Quota) -> u32 {
        let set = match quota {
            Quota::Agents => self.max_agents,
            Quota::ApiKeys => self.max_api_keys,
            Quota::VoipConnections => self.max_voip_connections,
            Quota::PhoneNumbers => self.max_phone_numbers,
            Quota::OpenBatches => self.max_open_batches,
            Quota::WebhookEndpoints => self.max_webhook_endpoints,
        };
        set.unwrap_or(quota.default_limit())
    }

    /// Refuses one more of a resource the org holds `held` of already.
    pub fn admit(&self, quota: Quota, held: usize) -> Result<(), OrgError> {
        let limit = self.limit(quota);
        if held >= limit as usize {
            return Err(OrgError::QuotaExceeded { quota, limit });
        }
        Ok(())
    }
}

/// The org's configuration, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgState {
    pub profile: Option<OrgProfile>,
    pub keys: BTreeMap<ApiKeyId, ApiKey>,
    pub agents: BTreeMap<AgentId, Agent>,
    pub connections: BTreeMap<VoipConnectionId, VoipConnection>,
    pub numbers: BTreeMap<PhoneNumberId, PhoneNumber>,
    /// Connection tests of the last [`crate::voip::EVIDENCE_VALID_MS`], by id: older ones can
    /// back nothing, so they are forgotten as new ones arrive.
    #[serde(default)]
    pub evidence: BTreeMap<String, Evidence>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrgCommand {
    /// The directory allocates org ids; the org's partition records the org under it.
    Create {
        org_id: OrgId,
        name: String,
    },
    SetTrial {
        trial: bool,
    },
    SetTestCallLimit {
        limit: u32,
    },
    SetRateLimit {
        per_second: u32,
    },
    /// Sets the quotas named; the others stay as they are.
    SetQuotas {
        limits: Vec<(Quota, u32)>,
    },
    CreateApiKey {
        name: String,
        secret_hash: Vec<u8>,
    },
    RevokeApiKey {
        id: ApiKeyId,
    },
    CreateAgent {
        spec: AgentSpec,
    },
    UpdateAgent {
        id: AgentId,
        patch: AgentPatch,
        /// The update's precondition: the agent is as it was last updated then (optimistic
        /// concurrency, so two editors do not silently overwrite each other).
        if_updated_at: Option<Timestamp>,
    },
    DeleteAgent {
        id: AgentId,
    },
    /// Records a connection test's outcome, as evidence a create may present.
    RecordConnectionTest {
        evidence: Evidence,
    },
    /// Creates a connection on the evidence of a passed test of the same configuration.
    CreateVoipConnection {
        name: String,
        vendor: Vendor,
        provider: Provider<Sealed>,
        evidence: EvidenceClaim,
    },
    /// Renames a connection, and (with `trunk`) changes its configuration on new evidence.
    UpdateVoipConnection {
        id: VoipConnectionId,
        name: Option<String>,
        trunk: Option<(Provider<Sealed>, EvidenceClaim)>,
    },
    /// Records how a number's verification went; `evidence_id` names it.
    RecordNumberVerification {
        id: PhoneNumberId,
        evidence_id: String,
        outcome: Result<(), String>,
    },
    RecordVerification {
        id: VoipConnectionId,
        outcome: Result<(), String>,
    },
    DeleteVoipConnection {
        id: VoipConnectionId,
    },
    /// Records a number the directory has claimed for the org under `id` (see
    /// [`crate::directory`]): the id is chosen before the claim, whose token it is.
    CreatePhoneNumber {
        id: PhoneNumberId,
        number: E164,
        request: NewNumber,
    },
    /// `Some(None)` clears an assignment (or the webhook); `None` leaves it.
    UpdatePhoneNumber {
        id: PhoneNumberId,
        inbound_agent_id: Option<Option<AgentId>>,
        outbound_agent_id: Option<Option<AgentId>>,
        label: Option<String>,
        webhook_url: Option<Option<String>>,
    },
    DeletePhoneNumber {
        id: PhoneNumberId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgEvent {
    OrgCreated {
        org_id: OrgId,
        name: String,
        at: Timestamp,
    },
    TrialSet {
        trial: bool,
        at: Timestamp,
    },
    TestCallLimitSet {
        limit: u32,
        at: Timestamp,
    },
    RateLimitSet {
        per_second: u32,
        at: Timestamp,
    },
    QuotaSet {
        quota: Quota,
        limit: u32,
        at: Timestamp,
    },
    ApiKeyCreated {
        id: ApiKeyId,
        name: String,
        #[serde(with = "serde_bytes")]
        secret_hash: Vec<u8>,
        at: Timestamp,
    },
    ApiKeyRevoked {
        id: ApiKeyId,
        at: Timestamp,
    },
    AgentCreated {
        id: AgentId,
        spec: AgentSpec,
        at: Timestamp,
    },
    AgentUpdated {
        id: AgentId,
        spec: AgentSpec,
        at: Timestamp,
    },
    AgentDeleted {
        id: AgentId,
        at: Timestamp,
    },
    VoipConnectionCreated {
        id: VoipConnectionId,
        name: String,
        provider: Provider<Sealed>,
        at: Timestamp,
    },
    VoipConnectionVerified {
        id: VoipConnectionId,
        error: Option<String>,
        at: Timestamp,
    },
    VoipConnectionDeleted {
        id: VoipConnectionId,
        at: Timestamp,
    },
    VoipConnectionTested {
        evidence: Evidence,
    },
    /// The connection's configuration rests on this evidence (it is used up): it is connected.
    VoipConnectionProven {
        id: VoipConnectionId,
        vendor: Vendor,
        evidence_id: String,
        at: Timestamp,
    },
    VoipConnectionUpdated {
        id: VoipConnectionId,
        name: Option<String>,
        provider: Option<Provider<Sealed>>,
        at: Timestamp,
    },
    PhoneNumberCreated {
        id: PhoneNumberId,
        number: E164,
        backing: NumberBacking,
        inbound_agent_id: Option<AgentId>,
        outbound_agent_id: Option<AgentId>,
        at: Timestamp,
    },
    PhoneNumberAgentsChanged {
        id: PhoneNumberId,
        inbound_agent_id: Option<AgentId>,
        outbound_agent_id: Option<AgentId>,
        at: Timestamp,
    },
    PhoneNumberDeleted {
        id: PhoneNumberId,
        at: Timestamp,
    },
    PhoneNumberUpdated {
        id: PhoneNumberId,
        inbound_agent_id: Option<AgentId>,
        outbound_agent_id: Option<AgentId>,
        label: String,
        webhook_url: Option<String>,
        at: Timestamp,
    },
    PhoneNumberVerified {
        id: PhoneNumberId,
        evidence_id: String,
        error: Option<String>,
        at: Timestamp,
    },
}

impl OrgEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::OrgCreated { .. } => "org_created",
            Self::TrialSet { .. } => "trial_set",
            Self::TestCallLimitSet { .. } => "test_call_limit_set",
            Self::RateLimitSet { .. } => "rate_limit_set",
            Self::QuotaSet { .. } => "quota_set",
            Self::ApiKeyCreated { .. } => "api_key_created",
            Self::ApiKeyRevoked { .. } => "api_key_revoked",
            Self::AgentCreated { .. } => "agent_created",
            Self::AgentUpdated { .. } => "agent_updated",
            Self::AgentDeleted { .. } => "agent_deleted",
            Self::VoipConnectionCreated { .. } => "voip_connection_created",
            Self::VoipConnectionVerified { .. } => "voip_connection_verified",
            Self::VoipConnectionDeleted { .. } => "voip_connection_deleted",
            Self::PhoneNumberCreated { .. } => "phone_number_created",
            Self::PhoneNumberAgentsChanged { .. } => "phone_number_agents_changed",
            Self::PhoneNumberDeleted { .. } => "phone_number_deleted",
            Self::VoipConnectionTested { .. } => "voip_connection_tested",
            Self::VoipConnectionProven { .. } => "voip_connection_proven",
            Self::VoipConnectionUpdated { .. } => "voip_connection_updated",
            Self::PhoneNumberUpdated { .. } => "phone_number_updated",
            Self::PhoneNumberVerified { .. } => "phone_number_verified",
        }
    }
}

/// A phone number the org asks for, before the directory claimed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNumber {
    /// The org's own number; `None` for a demo number, which the directory picks.
    pub number: Option<E164>,
    pub backing: NumberBacking,
    pub inbound_agent_id: Option<AgentId>,
    pub outbound_agent_id: Option<AgentId>,
}

/// The kinds of resource an org owns, for "not found" errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Org,
    ApiKey,
    Agent,
    VoipConnection,
    PhoneNumber,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    #[error("{0:?} not found")]
    NotFound(Resource),
    #[error("organization already exists")]
    AlreadyExists,
    #[error("invalid: {0}")]
    Invalid(FieldErrors),
    #[error("{0} is already registered to this organization")]
    NumberExists(E164),
    #[error("VoIP connection backs {number}")]
    ConnectionInUse { number: E164 },
    #[error("the agent changed since (it was last updated at {updated_at})")]
    AgentChanged { updated_at: Timestamp },
    #[error("the org holds its quota of {limit} {}", quota.counts())]
    QuotaExceeded { quota: Quota, limit: u32 },
    #[error("demo numbers are the platform's: they need no verification and place no outbound calls")]
    DemoNumberNotVerifiable,
}

impl OrgState {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a OrgEvent>) -> Self {
        events.into_iter().fold(Self::default(), evolve)
    }

    pub fn agent(&self, id: AgentId) -> Result<&Agent, OrgError> {
        self.agents.get(&id).ok_or(OrgError::NotFound(Resource::Agent))
    }

    pub fn active_key(&self, id: ApiKeyId) -> Option<&ApiKey> {
        self.keys.get(&id).filter(|k| k.revoked_at.is_none())
    }

    pub fn number_by_e164(&self, number: &E164) -> Option<&PhoneNumber> {
        self.numbers.values().find(|n| &n.number == number)
    }

    pub fn apply(&mut self, event: &OrgEvent) {
        match event.clone() {
            OrgEvent::OrgCreated { org_id, name, at } => {
                self.profile = Some(OrgProfile::new(org_id, name, at));
            }
            OrgEvent::TrialSet { trial, at } => {
                if let Some(p) = &mut self.profile {
                    p.trial = trial;
                    p.updated_at = at;
                }
            }
            OrgEvent::RateLimitSet { per_second, at } => {
                if let Some(p) = &mut self.profile {
                    p.rate_limit_per_second = Some(per_second);
                    p.updated_at = at;
                }
            }
            OrgEvent::QuotaSet { quota, limit, at } => {
                if let Some(p) = &mut self.profile {
                    *p.quotas.setting(quota) = Some(limit);
                    p.updated_at = at;
                }
            }
            OrgEvent::TestCallLimitSet { limit, at } => {
                if let Some(p) = &mut self.profile {
                    p.max_concurrent_test_calls = Some(limit);
                    p.updated_at = at;
                }
            }
            OrgEvent::ApiKeyCreated { id, name, secret_hash, at } => {
                self.keys.insert(id, ApiKey { id, name, secret_hash, created_at: at, revoked_at: None });
            }
            OrgEvent::ApiKeyRevoked { id, at } => {
                if let Some(k) = self.keys.get_mut(&id) {
                    k.revoked_at = Some(at);
                }
            }
            OrgEvent::AgentCreated { id, spec, at } => {
                self.agents.insert(id, Agent { id, spec, created_at: at, updated_at: at });
            }
            OrgEvent::AgentUpdated { id, spec, at } => {
                if let Some(a) = self.agents.get_mut(&id) {
                    a.spec = spec;
                    a.updated_at = at;
                }
            }
            OrgEvent::AgentDeleted { id, .. } => {
                self.agents.remove(&id);
            }
            OrgEvent::VoipConnectionCreated { id, name, provider, at } => {
                self.connections.insert(
                    id,
                    VoipConnection {
                        id,
                        name,
                        provider,
                        verified: false,
                        verified_at: None,
                        verification_error: None,
                        vendor: Vendor::Manual,
                        evidence_id: None,
                        created_at: at,
                        updated_at: at,
                    },
                );
            }
            OrgEvent::VoipConnectionVerified { id, error, at } => {
                if let Some(c) = self.connections.get_mut(&id) {
                    c.verified = error.is_none();
                    c.verified_at = c.verified.then_some(at);
                    c.verification_error = error;
                    c.updated_at = at;
                }
            }
            OrgEvent::VoipConnectionDeleted { id, .. } => {
                self.connections.remove(&id);
            }
            OrgEvent::PhoneNumberCreated { id, number, backing, inbound_agent_id, outbound_agent_id, at } => {
                self.numbers.insert(
                    id,
                    PhoneNumber {
                        id,
                        number,
                        backing,
                        inbound_agent_id,
                        outbound_agent_id,
                        label: String::new(),
                        webhook_url: None,
                        verification: NumberCheck::default(),
                        created_at: at,
                        updated_at: at,
                    },
                );
            }
            OrgEvent::PhoneNumberAgentsChanged { id, inbound_agent_id, outbound_agent_id, at } => {
                if let Some(n) = self.numbers.get_mut(&id) {
                    n.inbound_agent_id = inbound_agent_id;
                    n.outbound_agent_id = outbound_agent_id;
                    n.updated_at = at;
                }
            }
            OrgEvent::PhoneNumberDeleted { id, .. } => {
                self.numbers.remove(&id);
            }
            OrgEvent::VoipConnectionTested { evidence } => {
                let now = evidence.at;
                self.evidence.retain(|_, e| now.0 - e.at.0 <= crate::voip::EVIDENCE_VALID_MS);
                self.evidence.insert(evidence.id.clone(), evidence);
            }
            OrgEvent::VoipConnectionProven { id, vendor, evidence_id, at } => {
                if let Some(e) = self.evidence.get_mut(&evidence_id) {
                    e.used = true;
                }
                if let Some(c) = self.connections.get_mut(&id) {
                    c.vendor = vendor;
                    c.verified = true;
                    c.verified_at = Some(self.evidence.get(&evidence_id).map_or(at, |e| e.at));
                    c.verification_error = None;
                    c.evidence_id = Some(evidence_id);
                    c.updated_at = at;
                }
            }
            OrgEvent::VoipConnectionUpdated { id, name, provider, at } => {
                if let Some(c) = self.connections.get_mut(&id) {
                    if let Some(name) = name {
                        c.name = name;
                    }
                    if let Some(provider) = provider {
                        c.provider = provider;
                    }
                    c.updated_at = at;
                }
            }
            OrgEvent::PhoneNumberUpdated { id, inbound_agent_id, outbound_agent_id, label, webhook_url, at } => {
                if let Some(n) = self.numbers.get_mut(&id) {
                    n.inbound_agent_id = inbound_agent_id;
                    n.outbound_agent_id = outbound_agent_id;
                    n.label = label;
                    n.webhook_url = webhook_url;
                    n.updated_at = at;
                }
            }
            OrgEvent::PhoneNumberVerified { id, evidence_id, error, at } => {
                if let Some(n) = self.numbers.get_mut(&id) {
                    let status = match error {
                        None => NumberVerificationStatus::Verified,
                        Some(_) => NumberVerificationStatus::Failed,
                    };
                    n.verification = NumberCheck { status, at: Some(at), evidence_id: Some(evidence_id), error };
                    n.updated_at = at;
                }
            }
        }
    }
}

pub fn evolve(mut state: OrgState, event: &OrgEvent) -> OrgState {
    state.apply(event);
    state
}

pub fn decide(state: &OrgState, command: OrgCommand, ctx: &mut Ctx<'_>) -> Result<Vec<OrgEvent>, OrgError> {
    let at = ctx.now;
    if let OrgCommand::Create { org_id, name } = command {
        return match state.profile {
            Some(_) => Err(OrgError::AlreadyExists),
            None => Ok(vec![OrgEvent::OrgCreated { org_id, name, at }]),
        };
    }
    let Some(profile) = &state.profile else {
        return Err(OrgError::NotFound(Resource::Org));
    };
    let quotas = &profile.quotas;
    match command {
        OrgCommand::Create { .. } => unreachable!("handled above"),
        OrgCommand::SetTrial { trial } => Ok(vec![OrgEvent::TrialSet { trial, at }]),
        OrgCommand::SetRateLimit { per_second } => {
            if !(1..=MAX_RATE_LIMIT_PER_SECOND).contains(&per_second) {
                let message = format!("Ensure this value is between 1 and {MAX_RATE_LIMIT_PER_SECOND}.");
                return Err(OrgError::Invalid(FieldErrors::single("rate_limit_per_second", message)));
            }
            Ok(vec![OrgEvent::RateLimitSet { per_second, at }])
        }
        OrgCommand::SetTestCallLimit { limit } => {
            if !(1..=MAX_TEST_CALL_LIMIT).contains(&limit) {
                let message = format!("Ensure this value is between 1 and {MAX_TEST_CALL_LIMIT}.");
                return Err(OrgError::Invalid(FieldErrors::single("max_concurrent_test_calls", message)));
            }
            Ok(vec![OrgEvent::TestCallLimitSet { limit, at }])
        }
        OrgCommand::SetQuotas { limits } => {
            let mut errors = FieldErrors::new();
            for (quota, limit) in &limits {
                if let Err(message) = parse_quota(i64::from(*limit)) {
                    errors.add(quota.field(), message);
                }
            }
            if limits.is_empty() {
                errors.add("non_field_errors", "Name at least one quota.");
            }
            errors.into_result(()).map_err(OrgError::Invalid)?;
            Ok(limits.into_iter().map(|(quota, limit)| OrgEvent::QuotaSet { quota, limit, at }).collect())
        }
        OrgCommand::CreateApiKey { name, secret_hash } => {
            quotas.admit(Quota::ApiKeys, state.keys.values().filter(|k| k.revoked_at.is_none()).count())?;
            Ok(vec![OrgEvent::ApiKeyCreated { id: ApiKeyId(ctx.ids.next_id()), name, secret_hash, at }])
        }
        OrgCommand::RevokeApiKey { id } => {
            state.active_key(id).ok_or(OrgError::NotFound(Resource::ApiKey))?;
            Ok(vec![OrgEvent::ApiKeyRevoked { id, at }])
        }
        OrgCommand::CreateAgent { spec } => {
            quotas.admit(Quota::Agents, state.agents.len())?;
            Ok(vec![OrgEvent::AgentCreated { id: AgentId(ctx.ids.next_id()), spec, at }])
        }
        OrgCommand::UpdateAgent { id, patch, if_updated_at } => {
            let agent = state.agent(id)?;
            if if_updated_at.is_some_and(|t| t != agent.updated_at) {
                return Err(OrgError::AgentChanged { updated_at: agent.updated_at });
            }
            Ok(vec![OrgEvent::AgentUpdated { id, spec: patch.apply(&agent.spec), at }])
        }
        OrgCommand::DeleteAgent { id } => {
            state.agent(id)?;
            // Numbers that answered or dialled with the agent are left without one, rather than
            // pointing at nothing.
            let mut events: Vec<OrgEvent> = state
                .numbers
                .values()
                .filter(|n| n.inbound_agent_id == Some(id) || n.outbound_agent_id == Some(id))
                .map(|n| OrgEvent::PhoneNumberAgentsChanged {
                    id: n.id,
                    inbound_agent_id: n.inbound_agent_id.filter(|a| *a != id),
                    outbound_agent_id: n.outbound_agent_id.filter(|a| *a != id),
                    at,
                })
                .collect();
            events.push(OrgEvent::AgentDeleted { id, at });
            Ok(events)
        }
        OrgCommand::RecordConnectionTest { evidence } => {
            if let Some(c) = evidence.connection_id {
                connection(state, c)?;
            }
            Ok(vec![OrgEvent::VoipConnectionTested { evidence }])
        }
        OrgCommand::CreateVoipConnection { name, vendor, provider, evidence } => {
            quotas.admit(Quota::VoipConnections, state.connections.len())?;
            check_evidence(state, vendor, &evidence, at)?;
            let id = VoipConnectionId(ctx.ids.next_id());
            Ok(vec![
                OrgEvent::VoipConnectionCreated { id, name, provider, at },
                OrgEvent::VoipConnectionProven { id, vendor, evidence_id: evidence.id, at },
            ])
        }
        OrgCommand::UpdateVoipConnection { id, name, trunk } => {
            let current = connection(state, id)?;
            let vendor = current.vendor;
            let mut events = Vec::new();
            match trunk {
                Some((provider, evidence)) => {
                    check_evidence(state, vendor, &evidence, at)?;
                    events.push(OrgEvent::VoipConnectionUpdated { id, name, provider: Some(provider), at });
                    events.push(OrgEvent::VoipConnectionProven { id, vendor, evidence_id: evidence.id, at });
                }
                None => events.push(OrgEvent::VoipConnectionUpdated { id, name, provider: None, at }),
            }
            Ok(events)
        }
        OrgCommand::RecordNumberVerification { id, evidence_id, outcome } => {
            number_to_verify(state, id)?;
            Ok(vec![OrgEvent::PhoneNumberVerified { id, evidence_id, error: outcome.err(), at }])
        }
        OrgCommand::RecordVerification { id, outcome } => {
            connection(state, id)?;
            Ok(vec![OrgEvent::VoipConnectionVerified { id, error: outcome.err(), at }])
        }
        OrgCommand::DeleteVoipConnection { id } => {
            connection(state, id)?;
            if let Some(n) = state.numbers.values().find(|n| n.backing == NumberBacking::Voip(id)) {
                return Err(OrgError::ConnectionInUse { number: n.number.clone() });
            }
            Ok(vec![OrgEvent::VoipConnectionDeleted { id, at }])
        }
        OrgCommand::CreatePhoneNumber { id, number, request } => {
            check_new_number(state, Some(&number), &request)?;
            Ok(vec![OrgEvent::PhoneNumberCreated {
                id,
                number,
                backing: request.backing,
                inbound_agent_id: request.inbound_agent_id,
                outbound_agent_id: request.outbound_agent_id,
                at,
            }])
        }
        OrgCommand::UpdatePhoneNumber { id, inbound_agent_id, outbound_agent_id, label, webhook_url } => {
            let current = state.numbers.get(&id).ok_or(OrgError::NotFound(Resource::PhoneNumber))?;
            let inbound = inbound_agent_id.unwrap_or(current.inbound_agent_id);
            let outbound = outbound_agent_id.unwrap_or(current.outbound_agent_id);
            let mut errors = FieldErrors::new();
            check_agents(state, &current.backing, inbound, outbound, &mut errors);
            errors.into_result(()).map_err(OrgError::Invalid)?;
            Ok(vec![OrgEvent::PhoneNumberUpdated {
                id,
                inbound_agent_id: inbound,
                outbound_agent_id: outbound,
                label: label.unwrap_or_else(|| current.label.clone()),
                webhook_url: webhook_url.unwrap_or_else(|| current.webhook_url.clone()),
                at,
            }])
        }
        OrgCommand::DeletePhoneNumber { id } => {
            state.numbers.get(&id).ok_or(OrgError::NotFound(Resource::PhoneNumber))?;
            Ok(vec![OrgEvent::PhoneNumberDeleted { id, at }])
        }
    }
}

/// Whether the org may add this number: checked before the directory is asked to claim it, and
/// again when it is recorded (`number` is the claimed one, for a demo number).
pub fn check_new_number(state: &OrgState, number: Option<&E164>, request: &NewNumber) -> Result<(), OrgError> {
    let profile = state.profile.as_ref().ok_or(OrgError::NotFound(Resource::Org))?;
    profile.quotas.admit(Quota::PhoneNumbers, state.numbers.len())?;
    let mut errors = FieldErrors::new();
    if let NumberBacking::Voip(c) = request.backing
        && !state.connections.contains_key(&c)
    {
        errors.add("voip_connection_id", does_not_exist(c.0));
    }
    check_agents(state, &request.backing, request.inbound_agent_id, request.outbound_agent_id, &mut errors);
    if let Some(number) = number.or(request.number.as_ref())
        && state.number_by_e164(number).is_some()
    {
        return Err(OrgError::NumberExists(number.clone()));
    }
    errors.into_result(()).map_err(OrgError::Invalid)
}

/// Whether the org's evidence backs a change to a `vendor` connection configured as `claim`
/// fingerprints, at `at`: a passed test of this org, of the same configuration, within
/// [`crate::voip::EVIDENCE_VALID_MS`], not used before.
pub fn check_evidence(state: &OrgState, vendor: Vendor, claim: &EvidenceClaim, at: Timestamp) -> Result<(), OrgError> {
    let refusal = match state.evidence.get(&claim.id) {
        None => crate::voip::EvidenceRefusal::Unknown,
        Some(evidence) => match evidence.backs(vendor, claim, at) {
            Ok(()) => return Ok(()),
            Err(refusal) => refusal,
        },
    };
    Err(OrgError::Invalid(FieldErrors::single("verification_evidence_id", refusal.to_string())))
}

/// The number to verify and the connection whose trunk carries it: a demo number has none.
pub fn number_to_verify(state: &OrgState, id: PhoneNumberId) -> Result<(&PhoneNumber, &VoipConnection), OrgError> {
    let number = state.numbers.get(&id).ok_or(OrgError::NotFound(Resource::PhoneNumber))?;
    match number.backing {
        NumberBacking::Demo => Err(OrgError::DemoNumberNotVerifiable),
        NumberBacking::Voip(c) => Ok((number, connection(state, c)?)),
    }
}

fn connection(state: &OrgState, id: VoipConnectionId) -> Result<&VoipConnection, OrgError> {
    state.connections.get(&id).ok_or(OrgError::NotFound(Resource::VoipConnection))
}

fn check_agents(
    state: &OrgState,
    backing: &NumberBacking,
    inbound: Option<AgentId>,
    outbound: Option<AgentId>,
    errors: &mut FieldErrors,
) {
    for (field, agent) in [("inbound_agent_id", inbound), ("outbound_agent_id", outbound)] {
        if let Some(a) = agent
            && !state.agents.contains_key(&a)
        {
            errors.add(field, does_not_exist(a.0));
        }
    }
    if *backing == NumberBacking::Demo && outbound.is_some() {
        errors.add("outbound_agent_id", "Demo numbers are inbound-only.");
    }
}

/// DRF's message for a foreign key that names nothing (another org's ids included).
fn does_not_exist(id: u64) -> String {
    format!("Invalid pk \"{id}\" - object does not exist.")
}

/// Which agent an outbound call runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentChoice {
    Saved(AgentId),
    /// Boxed: a spec with its settings is large beside an id.
    Inline(Box<AgentSpec>),
    /// The `outbound_agent` of the number the call is placed from.
    FromNumber,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRequest {
    pub from: E164,
    pub to: E164,
    pub agent: AgentChoice,
    pub max_hold_seconds: Option<u32>,
    /// The variables and language the request gave.
    pub context: CallContext,
}

/// An outbound call the org may place, with everything it runs with resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundPlan {
    pub from: E164,
    pub to: E164,
    pub agent_id: Option<AgentId>,
    pub agent: AgentSpec,
    pub max_hold_seconds: u32,
    pub voip_connection_id: VoipConnectionId,
    pub provider: Provider<Sealed>,
    pub context: CallContext,
}

impl OutboundPlan {
    /// The call the plan places, as `id`, billed under its own reference, with the partition's
    /// timings.
    pub fn setup(&self, id: CallId, org: OrgId, settings: &RunSettings) -> CallSetup {
        CallSetup {
            id,
            org,
            direction: Direction::Outbound,
            from: self.from.clone(),
            to: self.to.clone(),
            agent_id: self.agent_id,
            voip_connection_id: Some(self.voip_connection_id),
            agent: self.agent.clone(),
            max_hold_seconds: self.max_hold_seconds,
            reservation_reference: Some(format!("call/{id}")),
            test_run_id: None,
            ring_timeout_ms: settings.ring_timeout_ms,
            max_duration_seconds: settings.max_duration_seconds,
            scenario_prompt: None,
            placement_timeout_ms: settings.placement_timeout_ms,
            context: self.context.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRejection {
    #[error("from_number is not registered to this organization")]
    NumberNotRegistered,
    #[error("trial organizations cannot place outbound calls")]
    Trial,
    #[error("demo numbers are inbound-only")]
    DemoNumber,
    #[error("the VoIP connection is not verified")]
    UnverifiedConnection(VoipConnectionId),
    #[error("the number is not verified")]
    UnverifiedNumber(PhoneNumberId),
    #[error("agent not found")]
    AgentNotFound,
    #[error("no agent for the call")]
    NoAgent,
}

/// Checks that the org may place this call, in the order a user fixes things: the number,
/// then the org's standing and the number's kind, then the agent.
pub fn plan_outbound(state: &OrgState, request: OutboundRequest) -> Result<OutboundPlan, OutboundRejection> {
    let number = state.number_by_e164(&request.from).ok_or(OutboundRejection::NumberNotRegistered)?;
    if state.profile.as_ref().is_some_and(|p| p.trial) {
        return Err(OutboundRejection::Trial);
    }
    let connection = match number.backing {
        NumberBacking::Demo => return Err(OutboundRejection::DemoNumber),
        NumberBacking::Voip(id) => state.connections.get(&id).ok_or(OutboundRejection::UnverifiedConnection(id))?,
    };
    if !connection.verified {
        return Err(OutboundRejection::UnverifiedConnection(connection.id));
    }
    if number.verification.status != NumberVerificationStatus::Verified {
        return Err(OutboundRejection::UnverifiedNumber(number.id));
    }
    let (agent_id, agent) = match request.agent {
        AgentChoice::Saved(id) => {
            (Some(id), state.agents.get(&id).ok_or(OutboundRejection::AgentNotFound)?.spec.clone())
        }
        AgentChoice::Inline(spec) => (None, *spec),
        AgentChoice::FromNumber => {
            let id = number.outbound_agent_id.ok_or(OutboundRejection::NoAgent)?;
            (Some(id), state.agents.get(&id).ok_or(OutboundRejection::NoAgent)?.spec.clone())
        }
    };
    Ok(OutboundPlan {
        from: request.from,
        to: request.to,
        agent_id,
        max_hold_seconds: request.max_hold_seconds.unwrap_or(agent.max_hold_seconds),
        agent,
        voip_connection_id: connection.id,
        provider: connection.provider.clone(),
        context: request.context,
    })
}

pub const MAX_TEST_CALL_LIMIT: u32 = 1_000;

/// An org's name, or an API key's.
pub fn parse_name(raw: &str) -> Result<String, String> {
    crate::fields::required_name(raw, 100)
}
/// Requests per second per API key, as the contract says, unless the admin sets another.
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 100;
pub const MAX_RATE_LIMIT_PER_SECOND: u32 = 100_000;

impl OrgProfile {
    /// A new org, with every setting at its default.
    pub fn new(id: OrgId, name: String, at: Timestamp) -> Self {
        Self {
            id,
            name,
            trial: false,
            max_concurrent_test_calls: None,
            rate_limit_per_second: None,
            quotas: Quotas::default(),
            created_at: at,
            updated_at: at,
        }
    }

    pub fn rate_limit(&self) -> u32 {
        self.rate_limit_per_second.unwrap_or(DEFAULT_RATE_LIMIT_PER_SECOND)
    }

    pub fn test_call_limit(&self) -> u32 {
        self.max_concurrent_test_calls.unwrap_or(crate::test_call::DEFAULT_MAX_CONCURRENT_RUNS)
    }
}

/// The agent a test-call run puts to the test, and the org's number it goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestTarget {
    pub agent_id: AgentId,
    pub agent: AgentSpec,
    /// The org's number on the agent's side: the target itself, or (in `sip` mode) the number
    /// that routes to the agent.
    pub number: Option<PhoneNumber>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TestTargetError {
    #[error("target agent not found")]
    AgentNotFound,
    #[error("target phone number not found")]
    NumberNotFound,
    #[error("{number} has no {which} agent to test")]
    NoAgentOnNumber { number: E164, which: &'static str },
    #[error("no number of the org routes to the agent")]
    NoNumberForAgent { which: &'static str },
}

/// Resolves what a run tests: the bot calling the org (`outbound`) tests the number's inbound
/// agent; the org calling the bot (`inbound`) tests its outbound agent.
pub fn resolve_test_target(
    state: &OrgState,
    request: &crate::test_call::RunRequest,
) -> Result<TestTarget, TestTargetError> {
    use crate::test_call::{Mode, RunDirection, TargetType};
    let (which, agent_of): (&'static str, fn(&PhoneNumber) -> Option<AgentId>) = match request.direction {
        RunDirection::Outbound => ("inbound", |n| n.inbound_agent_id),
        RunDirection::Inbound => ("outbound", |n| n.outbound_agent_id),
    };
    let (agent_id, number) = match request.target_type {
        TargetType::Agent => {
            let agent_id = AgentId(request.target_id);
            if !state.agents.contains_key(&agent_id) {
                return Err(TestTargetError::AgentNotFound);
            }
            let number = match request.mode {
                Mode::Bot => None,
                Mode::Sip => Some(
                    state
                        .numbers
                        .values()
                        .find(|n| agent_of(n) == Some(agent_id))
                        .ok_or(TestTargetError::NoNumberForAgent { which })?
                        .clone(),
                ),
            };
            (agent_id, number)
        }
        TargetType::PhoneNumber => {
            let number = state.numbers.get(&PhoneNumberId(request.target_id)).ok_or(TestTargetError::NumberNotFound)?;
            let agent_id =
                agent_of(number).ok_or(TestTargetError::NoAgentOnNumber { number: number.number.clone(), which })?;
            (agent_id, Some(number.clone()))
        }
    };
    let agent = state.agents.get(&agent_id).ok_or(TestTargetError::AgentNotFound)?.spec.clone();
    Ok(TestTarget { agent_id, agent, number })
}

/// A phone number's label: a friendly name, blank for none.
pub fn parse_number_label(raw: &str) -> Result<String, String> {
    crate::fields::name(raw, MAX_NUMBER_LABEL_CHARS)
}

pub const MAX_NUMBER_LABEL_CHARS: usize = 100;

/// Where a number's inbound webhooks go: an http(s) URL.
pub fn parse_webhook_url(raw: &str) -> Result<String, String> {
    crate::agent::Tool::parse_url(raw)
}
