//! Commands from the wire to the domain.

use domain::agent::{AgentPatch, AgentSpec};
use domain::ids::{AgentId, ApiKeyId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{NewNumber, NumberBacking, OrgCommand};
use domain::{E164, FieldErrors};

use crate::assignment_from_pb;
use crate::pb::command::Kind;
use crate::pb::{self, Failure, FailureKind};

/// The org command a wire command names. Directory commands and verification are not org
/// commands; the caller routes them before asking.
pub fn org_command(org: OrgId, kind: Kind) -> Result<OrgCommand, Failure> {
    Ok(match kind {
        Kind::CreateOrg(c) => OrgCommand::Create { org_id: org, name: parse_name(&c.name)? },
        Kind::SetTrial(t) => OrgCommand::SetTrial { trial: t.trial },
        Kind::SetTestCallLimit(l) => OrgCommand::SetTestCallLimit { limit: l.limit },
        Kind::SetRateLimit(l) => OrgCommand::SetRateLimit { per_second: l.limit },
        Kind::SetQuotas(q) => {
            use domain::org::Quota;
            let given = [
                (Quota::Agents, q.max_agents),
                (Quota::ApiKeys, q.max_api_keys),
                (Quota::VoipConnections, q.max_voip_connections),
                (Quota::PhoneNumbers, q.max_phone_numbers),
                (Quota::OpenBatches, q.max_open_batches),
                (Quota::WebhookEndpoints, q.max_webhook_endpoints),
            ];
            OrgCommand::SetQuotas {
                limits: given.into_iter().filter_map(|(quota, limit)| Some((quota, limit?))).collect(),
            }
        }
        Kind::CreateApiKey(k) => OrgCommand::CreateApiKey { name: parse_name(&k.name)?, secret_hash: k.secret_hash },
        Kind::RevokeApiKey(r) => OrgCommand::RevokeApiKey { id: ApiKeyId(r.id) },
        Kind::CreateAgent(spec) => {
            OrgCommand::CreateAgent { spec: AgentSpec::try_from(spec).map_err(Failure::invalid)? }
        }
        Kind::UpdateAgent(u) => OrgCommand::UpdateAgent {
            id: AgentId(u.id),
            patch: AgentPatch::try_from(u.patch.unwrap_or_default()).map_err(Failure::invalid)?,
            if_updated_at: u.if_updated_at_ms.map(domain::Timestamp::from_millis),
        },
        Kind::DeleteAgent(r) => OrgCommand::DeleteAgent { id: AgentId(r.id) },
        Kind::UpdatePhoneNumber(u) => OrgCommand::UpdatePhoneNumber {
            id: PhoneNumberId(u.id),
            inbound_agent_id: assignment_from_pb(u.inbound),
            outbound_agent_id: assignment_from_pb(u.outbound),
            label: u
                .label
                .map(|l| domain::org::parse_number_label(&l))
                .transpose()
                .map_err(|e| Failure::invalid(FieldErrors::single("label", e)))?,
            webhook_url: u
                .webhook_url
                .map(|w| w.value.map(|url| domain::org::parse_webhook_url(&url)).transpose())
                .transpose()
                .map_err(|e| Failure::invalid(FieldErrors::single("webhook_url", e)))?,
        },
        Kind::RegisterOrg(_)
        | Kind::CreatePhoneNumber(_)
        | Kind::CreateDemoNumber(_)
        | Kind::DeletePhoneNumber(_)
        | Kind::ClaimNumber(_)
        | Kind::ClaimDemoNumber(_)
        | Kind::ReleaseNumber(_)
        | Kind::VerifyPhoneNumber(_)
        // Their passwords are sealed or fingerprinted by the actor first (see `parse_connection_spec`).
        | Kind::TestVoipConnection(_)
        | Kind::CreateVoipConnection(_)
        | Kind::UpdateVoipConnection(_)
        | Kind::DeleteVoipConnection(_)
        | Kind::PlaceCall(_)
        | Kind::HangupCall(_)
        | Kind::CreateTestRun(_)
        | Kind::CreateTestBatch(_)
        | Kind::CancelTestBatch(_)
        | Kind::BeginIdempotent(_)
        | Kind::CompleteIdempotent(_) => {
            return Err(Failure::new(FailureKind::Internal, "misrouted", "not an org command"));
        }
    })
}

/// An org's or an API key's name, re-parsed: nothing unchecked enters the engine from the bus.
pub fn parse_name(raw: &str) -> Result<String, Failure> {
    domain::org::parse_name(raw).map_err(|e| Failure::invalid(FieldErrors::single("name", e)))
}

pub fn parse_number(raw: &str) -> Result<E164, Failure> {
    E164::parse(raw).map_err(|e| Failure::invalid(FieldErrors::single("number", e)))
}

/// The org's own number a create asks for, on one of its VoIP connections.
pub fn own_number(n: pb::CreatePhoneNumber) -> Result<NewNumber, Failure> {
    Ok(NewNumber {
        number: Some(parse_number(&n.number)?),
        backing: NumberBacking::Voip(VoipConnectionId(n.voip_connection_id)),
        inbound_agent_id: n.inbound_agent_id.map(AgentId),
        outbound_agent_id: n.outbound_agent_id.map(AgentId),
    })
}

/// A number from the demo pool, inbound only.
pub fn demo_number(n: pb::CreateDemoNumber) -> NewNumber {
    NewNumber {
        number: None,
        backing: NumberBacking::Demo,
        inbound_agent_id: n.inbound_agent_id.map(AgentId),
        outbound_agent_id: None,
    }
}
