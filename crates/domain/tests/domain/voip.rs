//! Connections are created on evidence: a passed test of the org, of the same configuration,
//! recent and not used before. Numbers are verified on their trunk before they call out.

use domain::ids::{IdSequence, PhoneNumberId, VoipConnectionId};
use domain::org::{self, NumberBacking, NumberVerificationStatus, OrgCommand, OrgError, OrgEvent, OrgState};
use domain::voip::{EVIDENCE_VALID_MS, Evidence, EvidenceClaim, Provider, Vendor};
use domain::{Ctx, Partitioning, Timestamp};

use crate::common::{EARLIER, NOW, connection, created, given, number};

fn when(state: &OrgState, command: OrgCommand) -> Result<Vec<OrgEvent>, OrgError> {
    when_at(state, command, NOW)
}

fn when_at(state: &OrgState, command: OrgCommand, now: Timestamp) -> Result<Vec<OrgEvent>, OrgError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 5, 0);
    org::decide(state, command, &mut Ctx { now, ids: &mut ids })
}

const ID: &str = "00000000-0000-8000-8000-000000000045";

fn tested(fingerprint: &[u8], error: Option<&str>, at: Timestamp) -> OrgEvent {
    OrgEvent::VoipConnectionTested {
        evidence: Evidence {
            id: ID.into(),
            vendor: Vendor::Manual,
            trunk: None,
            fingerprint: fingerprint.to_vec(),
            connection_id: None,
            error: error.map(Into::into),
            at,
            used: false,
        },
    }
}

fn create(vendor: Vendor, fingerprint: &[u8]) -> OrgCommand {
    OrgCommand::CreateVoipConnection {
        name: "Lab".into(),
        vendor,
        provider: Provider::Sim,
        evidence: EvidenceClaim { id: ID.into(), fingerprint: fingerprint.to_vec() },
    }
}

/// The message a refused create answers under `verification_evidence_id`.
fn refusal(result: Result<Vec<OrgEvent>, OrgError>) -> String {
    match result {
        Err(OrgError::Invalid(errors)) => errors.0["verification_evidence_id"][0].clone(),
        other => panic!("not refused on its evidence: {other:?}"),
    }
}

#[test]
fn a_passed_recent_test_of_the_same_configuration_creates_a_connected_connection() {
    let state = given(&[created(), tested(b"fp", None, EARLIER)]);
    let then = when(&state, create(Vendor::Manual, b"fp")).unwrap();
    let [OrgEvent::VoipConnectionCreated { id, .. }, OrgEvent::VoipConnectionProven { id: proven, evidence_id, .. }] =
        then.as_slice()
    else {
        panic!("{then:?}")
    };
    assert_eq!((id, evidence_id.as_str()), (proven, ID));
    let after = then.iter().fold(state, org::evolve);
    let c = &after.connections[id];
    assert!(c.verified, "{c:?}");
    assert_eq!((c.verified_at, c.evidence_id.as_deref(), c.vendor), (Some(EARLIER), Some(ID), Vendor::Manual));
    // Evidence backs one change only.
    assert!(refusal(when(&after, create(Vendor::Manual, b"fp"))).contains("used already"));
}

#[test]
fn evidence_that_failed_is_stale_of_another_configuration_or_unknown_backs_nothing() {
    let failed = given(&[created(), tested(b"fp", Some("no answer"), EARLIER)]);
    assert!(refusal(when(&failed, create(Vendor::Manual, b"fp"))).contains("failed"));

    let passed = given(&[created(), tested(b"fp", None, EARLIER)]);
    assert!(refusal(when(&passed, create(Vendor::Manual, b"other password"))).contains("another provider"));
    assert!(refusal(when(&passed, create(Vendor::Twilio, b"fp"))).contains("another provider"));
    let late = Timestamp(EARLIER.0 + EVIDENCE_VALID_MS + 1);
    assert!(refusal(when_at(&passed, create(Vendor::Manual, b"fp"), late)).contains("more than an hour"));
    let in_time = Timestamp(EARLIER.0 + EVIDENCE_VALID_MS);
    assert!(when_at(&passed, create(Vendor::Manual, b"fp"), in_time).is_ok());

    // Another org's evidence is in another org's stream: here it is unknown.
    assert!(refusal(when(&given(&[created()]), create(Vendor::Manual, b"fp"))).contains("No connection test"));
}

#[test]
fn a_test_of_a_connection_names_one_of_the_org() {
    let test = |connection_id| OrgCommand::RecordConnectionTest {
        evidence: Evidence {
            id: ID.into(),
            vendor: Vendor::Manual,
            trunk: None,
            fingerprint: vec![1],
            connection_id,
            error: None,
            at: NOW,
            used: false,
        },
    };
    let state = given(&[created(), connection(69)]);
    assert!(when(&state, test(Some(VoipConnectionId(69)))).is_ok());
    assert_eq!(when(&state, test(Some(VoipConnectionId(70)))), Err(OrgError::NotFound(org::Resource::VoipConnection)));
}

#[test]
fn old_evidence_is_forgotten_as_new_tests_arrive() {
    let mut state = given(&[created(), tested(b"fp", None, EARLIER)]);
    let later = Timestamp(EARLIER.0 + EVIDENCE_VALID_MS + 1);
    let OrgEvent::VoipConnectionTested { mut evidence } = tested(b"fp2", None, later) else { unreachable!() };
    evidence.id = "00000000-0000-8000-8000-000000000046".into();
    state.apply(&OrgEvent::VoipConnectionTested { evidence });
    assert_eq!(state.evidence.keys().collect::<Vec<_>>(), ["00000000-0000-8000-8000-000000000046"]);
}

#[test]
fn a_new_configuration_needs_new_evidence_and_a_rename_none() {
    let state = given(&[created(), connection(69), tested(b"fp", None, EARLIER)]);
    let rename =
        OrgCommand::UpdateVoipConnection { id: VoipConnectionId(69), name: Some("Office".into()), trunk: None };
    let then = when(&state, rename).unwrap();
    assert!(matches!(then.as_slice(), [OrgEvent::VoipConnectionUpdated { provider: None, .. }]), "{then:?}");
    let claim = |fingerprint: &[u8]| EvidenceClaim { id: ID.into(), fingerprint: fingerprint.to_vec() };
    let wrong = OrgCommand::UpdateVoipConnection {
        id: VoipConnectionId(69),
        name: None,
        trunk: Some((Provider::Sim, claim(b"not tested"))),
    };
    assert!(refusal(when(&state, wrong)).contains("another provider"));
    let right = OrgCommand::UpdateVoipConnection {
        id: VoipConnectionId(69),
        name: None,
        trunk: Some((Provider::Sim, claim(b"fp"))),
    };
    let then = when(&state, right).unwrap();
    assert!(matches!(then.as_slice(), [OrgEvent::VoipConnectionUpdated { .. }, OrgEvent::VoipConnectionProven { .. }]));
}

#[test]
fn a_voip_number_records_its_verification_and_a_demo_number_has_none() {
    let state = given(&[
        created(),
        connection(69),
        number(133, "+14155550100", NumberBacking::Voip(VoipConnectionId(69)), None, None),
        number(197, "+15005550000", NumberBacking::Demo, None, None),
    ]);
    let verify =
        |id, outcome| OrgCommand::RecordNumberVerification { id: PhoneNumberId(id), evidence_id: ID.into(), outcome };
    assert_eq!(when(&state, verify(197, Ok(()))), Err(OrgError::DemoNumberNotVerifiable));
    let then = when(&state, verify(133, Err("no answer".into()))).unwrap();
    let failed = then.iter().fold(state.clone(), org::evolve);
    let check = &failed.numbers[&PhoneNumberId(133)].verification;
    assert_eq!(
        (check.status, check.error.as_deref(), check.at),
        (NumberVerificationStatus::Failed, Some("no answer"), Some(NOW))
    );
    let then = when(&failed, verify(133, Ok(()))).unwrap();
    let verified = then.iter().fold(failed, org::evolve);
    assert_eq!(verified.numbers[&PhoneNumberId(133)].verification.status, NumberVerificationStatus::Verified);
}

#[test]
fn an_update_keeps_what_it_does_not_name_and_checks_the_agents() {
    let state = given(&[
        created(),
        connection(69),
        number(133, "+14155550100", NumberBacking::Voip(VoipConnectionId(69)), None, None),
    ]);
    let update = |label: Option<&str>, webhook: Option<Option<&str>>, inbound| OrgCommand::UpdatePhoneNumber {
        id: PhoneNumberId(133),
        inbound_agent_id: inbound,
        outbound_agent_id: None,
        label: label.map(Into::into),
        webhook_url: webhook.map(|w| w.map(Into::into)),
    };
    let then = when(&state, update(Some("Main"), Some(Some("https://example.com/h")), None)).unwrap();
    let after = then.iter().fold(state, org::evolve);
    let then = when(&after, update(None, None, None)).unwrap();
    let after = then.iter().fold(after, org::evolve);
    let n = &after.numbers[&PhoneNumberId(133)];
    assert_eq!((n.label.as_str(), n.webhook_url.as_deref()), ("Main", Some("https://example.com/h")));
    let cleared = when(&after, update(None, Some(None), None)).unwrap();
    let n = cleared.iter().fold(after.clone(), org::evolve).numbers[&PhoneNumberId(133)].clone();
    assert_eq!((n.label.as_str(), n.webhook_url), ("Main", None));
    let missing = when(&after, update(None, None, Some(Some(domain::ids::AgentId(5)))));
    assert!(matches!(missing, Err(OrgError::Invalid(e)) if e.0.contains_key("inbound_agent_id")));
}
