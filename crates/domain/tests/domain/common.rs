//! What the tests of several aggregates share: the clock, and an org built from its events.

use domain::agent::AgentSpec;
use domain::ids::{AgentId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{NumberBacking, OrgEvent, OrgState};
use domain::voip::Provider;
use domain::{E164, Timestamp};

pub const NOW: Timestamp = Timestamp(1_776_709_450_113);
pub const EARLIER: Timestamp = Timestamp(1_776_709_000_000);

pub fn given(events: &[OrgEvent]) -> OrgState {
    OrgState::from_events(events)
}

pub fn created() -> OrgEvent {
    OrgEvent::OrgCreated { org_id: OrgId(5), name: "Acme".into(), at: EARLIER }
}

pub fn agent(id: u64) -> OrgEvent {
    OrgEvent::AgentCreated { id: AgentId(id), spec: AgentSpec::named(format!("agent {id}")), at: EARLIER }
}

pub fn connection(id: u64) -> OrgEvent {
    OrgEvent::VoipConnectionCreated {
        id: VoipConnectionId(id),
        name: String::new(),
        provider: Provider::Sim,
        at: EARLIER,
    }
}

pub fn number(id: u64, n: &str, backing: NumberBacking, inbound: Option<u64>, outbound: Option<u64>) -> OrgEvent {
    OrgEvent::PhoneNumberCreated {
        id: PhoneNumberId(id),
        number: E164::parse(n).unwrap(),
        backing,
        inbound_agent_id: inbound.map(AgentId),
        outbound_agent_id: outbound.map(AgentId),
        at: EARLIER,
    }
}
