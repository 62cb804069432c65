//! Planning an outbound call from the org's configuration.

use domain::agent::AgentSpec;
use domain::ids::{AgentId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{self, AgentChoice, NumberBacking, OrgEvent, OrgState, OutboundRejection, OutboundRequest};
use domain::voip::Provider;
use domain::{E164, Timestamp};

const T: Timestamp = Timestamp(1);

fn org(extra: &[OrgEvent]) -> OrgState {
    let mut events = vec![
        OrgEvent::OrgCreated { org_id: OrgId(5), name: "Acme".into(), at: T },
        OrgEvent::AgentCreated { id: AgentId(69), spec: AgentSpec::named("A".into()), at: T },
        OrgEvent::VoipConnectionCreated {
            id: VoipConnectionId(133),
            name: String::new(),
            provider: Provider::Sim,
            at: T,
        },
        OrgEvent::PhoneNumberCreated {
            id: PhoneNumberId(197),
            number: E164::parse("+14155550100").unwrap(),
            backing: NumberBacking::Voip(VoipConnectionId(133)),
            inbound_agent_id: None,
            outbound_agent_id: Some(AgentId(69)),
            at: T,
        },
        OrgEvent::PhoneNumberCreated {
            id: PhoneNumberId(261),
            number: E164::parse("+15005550000").unwrap(),
            backing: NumberBacking::Demo,
            inbound_agent_id: None,
            outbound_agent_id: None,
            at: T,
        },
        OrgEvent::PhoneNumberVerified { id: PhoneNumberId(197), evidence_id: "e".into(), error: None, at: T },
    ];
    events.extend_from_slice(extra);
    OrgState::from_events(&events)
}

fn verified() -> OrgEvent {
    OrgEvent::VoipConnectionVerified { id: VoipConnectionId(133), error: None, at: T }
}

fn request(from: &str, agent: AgentChoice) -> OutboundRequest {
    OutboundRequest {
        from: E164::parse(from).unwrap(),
        to: E164::parse("+14155550123").unwrap(),
        agent,
        max_hold_seconds: None,
        context: Default::default(),
    }
}

#[test]
fn each_rule_of_the_contract_rejects_with_its_reason() {
    let ok = org(&[verified()]);
    let reject = |state: &OrgState, r: OutboundRequest| org::plan_outbound(state, r).unwrap_err();
    assert_eq!(reject(&ok, request("+14155550199", AgentChoice::FromNumber)), OutboundRejection::NumberNotRegistered);
    assert_eq!(reject(&ok, request("+15005550000", AgentChoice::FromNumber)), OutboundRejection::DemoNumber);
    assert_eq!(
        reject(&org(&[]), request("+14155550100", AgentChoice::FromNumber)),
        OutboundRejection::UnverifiedConnection(VoipConnectionId(133))
    );
    let trial = org(&[verified(), OrgEvent::TrialSet { trial: true, at: T }]);
    assert_eq!(reject(&trial, request("+14155550100", AgentChoice::FromNumber)), OutboundRejection::Trial);
    assert_eq!(reject(&ok, request("+14155550100", AgentChoice::Saved(AgentId(5)))), OutboundRejection::AgentNotFound);
    let no_default = org(&[
        verified(),
        OrgEvent::PhoneNumberAgentsChanged {
            id: PhoneNumberId(197),
            inbound_agent_id: None,
            outbound_agent_id: None,
            at: T,
        },
    ]);
    assert_eq!(reject(&no_default, request("+14155550100", AgentChoice::FromNumber)), OutboundRejection::NoAgent);
}

#[test]
fn a_number_calls_out_only_once_its_last_verification_passed() {
    let reject = |state: &OrgState| org::plan_outbound(state, request("+14155550100", AgentChoice::FromNumber));
    let failed = OrgEvent::PhoneNumberVerified {
        id: PhoneNumberId(197),
        evidence_id: "f".into(),
        error: Some("no answer".into()),
        at: T,
    };
    assert_eq!(
        reject(&org(&[verified(), failed.clone()])),
        Err(OutboundRejection::UnverifiedNumber(PhoneNumberId(197)))
    );
    let again = OrgEvent::PhoneNumberVerified { id: PhoneNumberId(197), evidence_id: "g".into(), error: None, at: T };
    assert!(reject(&org(&[verified(), failed, again])).is_ok());
    // A number imported and never verified is unverified.
    let fresh = OrgState::from_events(&[
        OrgEvent::OrgCreated { org_id: OrgId(5), name: "Acme".into(), at: T },
        OrgEvent::VoipConnectionCreated {
            id: VoipConnectionId(133),
            name: String::new(),
            provider: Provider::Sim,
            at: T,
        },
        verified(),
        OrgEvent::PhoneNumberCreated {
            id: PhoneNumberId(197),
            number: E164::parse("+14155550100").unwrap(),
            backing: NumberBacking::Voip(VoipConnectionId(133)),
            inbound_agent_id: None,
            outbound_agent_id: None,
            at: T,
        },
    ]);
    let plan = org::plan_outbound(
        &fresh,
        request("+14155550100", AgentChoice::Inline(Box::new(AgentSpec::named("I".into())))),
    );
    assert_eq!(plan.unwrap_err(), OutboundRejection::UnverifiedNumber(PhoneNumberId(197)));
}

#[test]
fn the_number_default_agent_and_its_hold_time_apply_unless_overridden() {
    let ok = org(&[verified()]);
    let plan = org::plan_outbound(&ok, request("+14155550100", AgentChoice::FromNumber)).unwrap();
    assert_eq!((plan.agent_id, plan.max_hold_seconds), (Some(AgentId(69)), 60));
    let mut r = request("+14155550100", AgentChoice::Inline(Box::new(AgentSpec::named("Inline".into()))));
    r.max_hold_seconds = Some(7);
    let plan = org::plan_outbound(&ok, r).unwrap();
    assert_eq!((plan.agent_id, plan.agent.name.as_str(), plan.max_hold_seconds), (None, "Inline", 7));
}

#[test]
fn a_planned_call_is_set_up_outbound_billed_under_its_own_reference_with_the_partitions_timings() {
    let ok = org(&[verified()]);
    let plan = org::plan_outbound(&ok, request("+14155550100", AgentChoice::FromNumber)).unwrap();
    let settings = domain::test_call::RunSettings {
        ring_timeout_ms: 20_000,
        max_duration_seconds: 600,
        placement_timeout_ms: 45_000,
        expected_seconds: 60,
    };
    let setup = plan.setup(domain::ids::CallId(325), OrgId(5), &settings);
    assert_eq!(setup.direction, domain::call::Direction::Outbound);
    assert_eq!(setup.reservation_reference.as_deref(), Some("call/325"));
    assert_eq!((setup.from.as_str(), setup.agent_id), ("+14155550100", Some(AgentId(69))));
    assert_eq!(setup.voip_connection_id, Some(VoipConnectionId(133)));
    assert_eq!((setup.ring_timeout_ms, setup.max_duration_seconds, setup.placement_timeout_ms), (20_000, 600, 45_000));
    assert_eq!(setup.test_run_id, None, "an outbound call is no test call");
    // What it reserves follows from the setup: its whole maximum, at the multiplier given.
    let reserve = domain::call::reservation(&setup, 1).unwrap();
    assert_eq!(
        reserve,
        domain::ledger::LedgerCommand::Reserve {
            reference: "call/325".into(),
            limit: domain::ledger::ReserveLimit::Seconds(600),
            kind: domain::ledger::ChargeKind::Call,
            call_id: Some(325),
            charge_multiplier: 1,
            expires_in_seconds: 600 + domain::call::RESERVATION_GRACE_SECONDS,
        }
    );
}
