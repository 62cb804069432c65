//! The orchestrator's commands, read from the bus into domain types: its partition actor
//! matches on [`OrchestratorCommand`] and never sees a protobuf request.

use domain::directory::DirectoryCommand;
use domain::idempotency::StoredResponse;
use domain::ids::{CallId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{NewNumber, OrgCommand, OutboundRequest};
use domain::test_call::{BatchSpec, RunRequest};
use domain::voip::{Provider, Vendor};
use domain::{E164, idempotency};

use crate::pb::{self, Failure, FailureKind, command::Kind};

/// A command for an orchestrator partition, every value re-parsed.
#[derive(Debug)]
pub enum OrchestratorCommand {
    /// Directory commands, for the partition that holds the directory.
    RegisterOrg {
        name: String,
    },
    ClaimNumber {
        number: E164,
        token: u64,
    },
    ClaimDemoNumber {
        token: u64,
    },
    /// `number: None`: whichever number the claim took (a demo claim whose answer was lost).
    ReleaseNumber {
        number: Option<E164>,
        token: u64,
    },
    CreatePhoneNumber(NewNumber),
    DeletePhoneNumber(PhoneNumberId),
    /// Probes a configuration and records the outcome as evidence. The password in the clear
    /// is only fingerprinted and handed to the carrier; nothing records it.
    TestVoipConnection {
        vendor: Vendor,
        provider: Provider,
        connection_id: Option<VoipConnectionId>,
    },
    /// The password in the clear, on its way to be sealed before anything records it.
    CreateVoipConnection {
        name: String,
        vendor: Vendor,
        provider: Provider,
        evidence_id: String,
    },
    /// `trunk`: a new configuration and the evidence it was tested on.
    UpdateVoipConnection {
        id: VoipConnectionId,
        name: Option<String>,
        trunk: Option<(Provider, String)>,
    },
    VerifyPhoneNumber(PhoneNumberId),
    DeleteVoipConnection(VoipConnectionId),
    /// `idempotency_key`: the key the request was sent under, if any (see `domain::idempotency`).
    PlaceCall {
        call: OutboundRequest,
        idempotency_key: Option<String>,
    },
    HangupCall(CallId),
    CreateTestRun(RunRequest),
    CreateTestBatch(BatchSpec),
    CancelTestBatch(u64),
    BeginIdempotent {
        key: String,
        fingerprint: Vec<u8>,
    },
    CompleteIdempotent {
        key: String,
        fingerprint: Vec<u8>,
        response: StoredResponse,
    },
    /// A command the org's configuration decides alone.
    Org(OrgCommand),
}

/// Reads an orchestrator command from the bus.
pub fn orchestrator_command(payload: &[u8]) -> Result<(OrgId, OrchestratorCommand), Failure> {
    let (org, kind) = match crate::decode::<pb::Command>(payload) {
        Ok(pb::Command { org_id, kind: Some(kind) }) => (OrgId(org_id), kind),
        Ok(_) | Err(_) => return Err(Failure::new(FailureKind::Invalid, "bad_message", "undecodable command")),
    };
    use OrchestratorCommand as C;
    let command = match kind {
        Kind::RegisterOrg(r) => C::RegisterOrg { name: crate::parse_name(&r.name)? },
        Kind::ClaimNumber(c) => C::ClaimNumber { number: crate::parse_number(&c.number)?, token: c.token },
        Kind::ClaimDemoNumber(c) => C::ClaimDemoNumber { token: c.token },
        Kind::ReleaseNumber(c) => {
            let number = (!c.number.is_empty()).then(|| crate::parse_number(&c.number)).transpose()?;
            C::ReleaseNumber { number, token: c.token }
        }
        Kind::CreatePhoneNumber(n) => C::CreatePhoneNumber(crate::own_number(n)?),
        Kind::CreateDemoNumber(n) => C::CreatePhoneNumber(crate::demo_number(n)),
        Kind::DeletePhoneNumber(r) => C::DeletePhoneNumber(PhoneNumberId(r.id)),
        Kind::TestVoipConnection(t) => {
            let spec = crate::parse_connection_spec(t.spec.unwrap_or_default()).map_err(Failure::invalid)?;
            C::TestVoipConnection {
                vendor: spec.vendor,
                provider: spec.provider,
                connection_id: t.connection_id.map(VoipConnectionId),
            }
        }
        Kind::CreateVoipConnection(spec) => {
            let spec = crate::parse_connection_spec(spec).map_err(Failure::invalid)?;
            if spec.evidence_id.is_empty() {
                let errors = domain::FieldErrors::single("verification_evidence_id", domain::fields::REQUIRED);
                return Err(Failure::invalid(errors));
            }
            C::CreateVoipConnection {
                name: spec.name,
                vendor: spec.vendor,
                provider: spec.provider,
                evidence_id: spec.evidence_id,
            }
        }
        Kind::UpdateVoipConnection(u) => {
            let name = u
                .name
                .map(|n| domain::voip::parse_connection_name(&n))
                .transpose()
                .map_err(|e| Failure::invalid(domain::FieldErrors::single("name", e)))?;
            let trunk = match u.spec {
                None => None,
                Some(spec) => {
                    let spec = crate::parse_connection_spec(spec).map_err(Failure::invalid)?;
                    if spec.evidence_id.is_empty() {
                        let message = "Changing sip_config or credentials needs a new verification_evidence_id.";
                        return Err(Failure::invalid(domain::FieldErrors::single("verification_evidence_id", message)));
                    }
                    Some((spec.provider, spec.evidence_id))
                }
            };
            C::UpdateVoipConnection { id: VoipConnectionId(u.id), name, trunk }
        }
        Kind::VerifyPhoneNumber(r) => C::VerifyPhoneNumber(PhoneNumberId(r.id)),
        Kind::DeleteVoipConnection(r) => C::DeleteVoipConnection(VoipConnectionId(r.id)),
        Kind::PlaceCall(p) => {
            let idempotency_key = p.idempotency_key.as_deref().map(parse_key).transpose()?;
            C::PlaceCall { call: crate::outbound_request(p)?, idempotency_key }
        }
        Kind::HangupCall(r) => C::HangupCall(CallId(r.id)),
        Kind::CreateTestRun(r) => C::CreateTestRun(crate::run_request(r)?),
        Kind::CreateTestBatch(b) => C::CreateTestBatch(crate::batch_spec(b)?),
        Kind::CancelTestBatch(r) => C::CancelTestBatch(r.id),
        Kind::BeginIdempotent(r) => C::BeginIdempotent { key: parse_key(&r.key)?, fingerprint: r.fingerprint },
        Kind::CompleteIdempotent(r) => C::CompleteIdempotent {
            key: parse_key(&r.key)?,
            fingerprint: r.fingerprint,
            response: StoredResponse {
                status: r.status.min(u16::MAX.into()) as u16,
                body: r.body,
                withheld: r.withheld,
            },
        },
        kind => C::Org(crate::org_command(org, kind)?),
    };
    Ok((org, command))
}

fn parse_key(raw: &str) -> Result<String, Failure> {
    idempotency::parse_key(raw).map_err(|detail| Failure::new(FailureKind::Invalid, "bad_message", detail))
}

/// What a begun key answers: go on, the response recorded, a conflict, or wait.
pub fn idempotency_decision(key: &str, fingerprint: &[u8], begin: idempotency::Begin) -> pb::Reply {
    use pb::idempotency_decision::Decision;
    let decision = match begin {
        idempotency::Begin::Proceed => Decision::Proceed(pb::Empty {}),
        idempotency::Begin::Replay(r) => Decision::Replay(pb::IdempotentResponse {
            key: key.to_owned(),
            fingerprint: fingerprint.to_vec(),
            status: r.status.into(),
            body: r.body,
            withheld: r.withheld,
        }),
        idempotency::Begin::Conflict => Decision::Conflict(pb::Empty {}),
        idempotency::Begin::InProgress => Decision::InProgress(pb::Empty {}),
    };
    pb::Reply::with(pb::reply::Result::Idempotency(pb::IdempotencyDecision { decision: Some(decision) }))
}

/// A command for the directory, as an org's partition sends it to the partition that holds it.
pub fn directory_request(command: &DirectoryCommand) -> crate::Bytes {
    let (org, kind) = match command.clone() {
        DirectoryCommand::RegisterOrg { name } => (OrgId(0), Kind::RegisterOrg(pb::RegisterOrg { name })),
        DirectoryCommand::ClaimNumber { org_id, number, token } => {
            (org_id, Kind::ClaimNumber(pb::ClaimNumber { number: number.to_string(), token }))
        }
        DirectoryCommand::ClaimDemoNumber { org_id, token } => {
            (org_id, Kind::ClaimDemoNumber(pb::ClaimDemoNumber { token }))
        }
        DirectoryCommand::ReleaseNumber { org_id, number, token } => {
            let number = number.map(|n| n.to_string()).unwrap_or_default();
            (org_id, Kind::ReleaseNumber(pb::ClaimNumber { number, token }))
        }
    };
    crate::encode(&pb::Command { org_id: org.0, kind: Some(kind) })
}
