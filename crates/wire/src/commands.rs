//! Commands from the wire to the domain.

use domain::agent::{AgentPatch, AgentSpec};
use domain::ids::{AgentId, ApiKeyId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::OrgCommand;
use domain::{E164, FieldErrors};

use crate::pb::command::Kind;
use crate::pb::{Failure, FailureKind};
use crate::{assignment_from_pb, backing_from_pb};

/// The org command a wire command names. Directory commands and verification are not org
/// commands; the caller routes them before asking.
pub fn org_command(org: OrgId, kind: Kind) -> Result<OrgCommand, Failure> {
    Ok(match kind {
        Kind::CreateOrg(c) => OrgCommand::Create { org_id: org, name: c.name },
        Kind::SetTrial(t) => OrgCommand::SetTrial { trial: t.trial },
        Kind::SetTestCallLimit(l) => OrgCommand::SetTestCallLimit { limit: l.limit },
        Kind::SetRateLimit(l) => OrgCommand::SetRateLimit { per_second: l.limit },
        Kind::CreateApiKey(k) => OrgCommand::CreateApiKey { name: k.name, secret_hash: k.secret_hash },
        Kind::RevokeApiKey(r) => OrgCommand::RevokeApiKey { id: ApiKeyId(r.id) },
        Kind::CreateAgent(spec) => {
            OrgCommand::CreateAgent { spec: AgentSpec::try_from(spec).map_err(Failure::invalid)? }
        }
        Kind::UpdateAgent(u) => OrgCommand::UpdateAgent {
            id: AgentId(u.id),
            patch: AgentPatch::try_from(u.patch.unwrap_or_default()).map_err(Failure::invalid)?,
        },
        Kind::DeleteAgent(r) => OrgCommand::DeleteAgent { id: AgentId(r.id) },
        Kind::DeleteVoipConnection(r) => OrgCommand::DeleteVoipConnection { id: VoipConnectionId(r.id) },
        Kind::CreatePhoneNumber(n) => OrgCommand::CreatePhoneNumber {
            number: parse_number(&n.number)?,
            backing: backing_from_pb(n.voip_connection_id),
            inbound_agent_id: n.inbound_agent_id.map(AgentId),
            outbound_agent_id: n.outbound_agent_id.map(AgentId),
        },
        Kind::UpdatePhoneNumber(u) => OrgCommand::UpdatePhoneNumber {
            id: PhoneNumberId(u.id),
            inbound_agent_id: assignment_from_pb(u.inbound),
            outbound_agent_id: assignment_from_pb(u.outbound),
        },
        Kind::DeletePhoneNumber(r) => OrgCommand::DeletePhoneNumber { id: PhoneNumberId(r.id) },
        Kind::RegisterOrg(_)
        | Kind::ClaimNumber(_)
        | Kind::ClaimDemoNumber(_)
        | Kind::ReleaseNumber(_)
        | Kind::VerifyVoipConnection(_)
        // Its password is sealed by the actor first (see `parse_connection_spec`).
        | Kind::CreateVoipConnection(_)
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

pub fn parse_number(raw: &str) -> Result<E164, Failure> {
    E164::parse(raw).map_err(|e| Failure::invalid(FieldErrors::single("number", e)))
}
