//! Calls between the wire and the domain.

use domain::agent::AgentSpec;
use domain::call::{CallContext, CallState, Variables};
use domain::ids::{AgentId, VoipConnectionId};
use domain::org::{AgentChoice, OutboundRejection, OutboundRequest};
use domain::{E164, FieldErrors};

use crate::pb::{self, Failure, FailureKind, place_call};

/// Parses a place-call command into the domain's request.
pub fn outbound_request(p: pb::PlaceCall) -> Result<OutboundRequest, Failure> {
    let mut e = FieldErrors::new();
    let from = E164::parse(&p.from_number).map_err(|m| e.add("from_number", m)).ok();
    let to = E164::parse(&p.to_number).map_err(|m| e.add("to_number", m)).ok();
    let agent = match p.agent {
        Some(place_call::Agent::AgentId(id)) => Some(AgentChoice::Saved(AgentId(id))),
        Some(place_call::Agent::Config(spec)) => AgentSpec::try_from(spec)
            .map_err(|errors| prefixed(&mut e, "config", errors))
            .ok()
            .map(|spec| AgentChoice::Inline(Box::new(spec))),
        None => Some(AgentChoice::FromNumber),
    };
    let variables = Variables::parse_json(&p.variables_json).map_err(|m| e.add("variables", m)).ok();
    let locale = p.locale.as_deref().map(domain::call::parse_locale).transpose().map_err(|m| e.add("language", m)).ok();
    match (from, to, agent, variables, locale) {
        (Some(from), Some(to), Some(agent), Some(variables), Some(locale)) if e.is_empty() => Ok(OutboundRequest {
            from,
            to,
            agent,
            max_hold_seconds: p.max_hold_seconds,
            context: CallContext { variables, locale },
        }),
        _ => Err(Failure::invalid(e)),
    }
}

fn prefixed(into: &mut FieldErrors, prefix: &str, errors: FieldErrors) {
    for (field, messages) in errors.0 {
        for m in messages {
            into.add(format!("{prefix}.{field}"), m);
        }
    }
}

impl From<OutboundRejection> for Failure {
    fn from(r: OutboundRejection) -> Self {
        match r {
            OutboundRejection::NumberNotRegistered => Failure::new(
                FailureKind::NotFound,
                "number_not_registered",
                "from_number is not registered to this organization.",
            ),
            OutboundRejection::Trial => Failure::new(
                FailureKind::Forbidden,
                "trial_restriction",
                "Outbound blocked: trial organizations cannot place outbound calls.",
            ),
            OutboundRejection::DemoNumber => Failure::new(
                FailureKind::Forbidden,
                "demo_number",
                "Outbound blocked: from_number is a demo number, and demo numbers are inbound-only.",
            ),
            OutboundRejection::UnverifiedConnection(VoipConnectionId(id)) => Failure::new(
                FailureKind::Forbidden,
                "unverified_voip",
                format!(
                    "Outbound blocked: VoIP connection {id} behind from_number is not verified; \
                     test it again with POST /v1/voip-connections/test and update it with the evidence."
                ),
            ),
            OutboundRejection::UnverifiedNumber(domain::ids::PhoneNumberId(id)) => Failure::new(
                FailureKind::Forbidden,
                "unverified_voip",
                format!(
                    "Outbound blocked: from_number is a VoIP number that is not verified; \
                     verify it with POST /v1/phone-numbers/{id}/verify-voip."
                ),
            ),
            OutboundRejection::AgentNotFound => {
                Failure::new(FailureKind::NotFound, "agent_not_found", "Agent not found.")
            }
            OutboundRejection::NoAgent => Failure::new(
                FailureKind::Invalid,
                "no_agent",
                "No agent for this call: pass agent_id or config, or set an outbound_agent on from_number.",
            ),
        }
    }
}

impl From<&CallState> for pb::Call {
    fn from(c: &CallState) -> Self {
        Self {
            id: c.setup.id.0,
            direction: c.setup.direction.as_str().to_owned(),
            from_number: c.setup.from.to_string(),
            to_number: c.setup.to.to_string(),
            agent_id: c.setup.agent_id.map(|a| a.0),
            status: c.status().as_str().to_owned(),
            end_reason: c.ending.as_ref().map(|e| e.reason.as_str().to_owned()),
            started_at_ms: c.dialed_at.map(|t| t.as_millis()),
            answered_at_ms: c.answered_at.map(|t| t.as_millis()),
            ended_at_ms: c.ended_at.map(|t| t.as_millis()),
            duration_seconds: c.ending.as_ref().map_or(0, |e| e.duration_seconds),
            cost_cents: c.cost_cents(),
            created_at_ms: c.created_at.as_millis(),
            updated_at_ms: c.updated_at.as_millis(),
            variables_json: c.setup.context.variables.to_json(),
            locale: c.setup.context.locale().to_owned(),
            is_test_call: c.is_test_call(),
            agent: Some((&c.setup.agent).into()),
            billed_at_ms: c.billed_at.map(|t| t.as_millis()),
            billed_seconds: c.billed_seconds(),
            unresolved_variables: c.setup.context.variables.unresolved_in(&c.setup.agent.prompt),
            dial_state: c.dial_state().map(|d| d.as_str().to_owned()),
        }
    }
}

pub fn call_not_found() -> Failure {
    Failure::new(FailureKind::NotFound, "call_not_found", "Call not found.")
}
