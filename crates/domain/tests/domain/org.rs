//! An org's configuration: agents, keys, connections, numbers and quotas.

use domain::agent::{AgentPatch, AgentSpec, Voice};
use domain::ids::{AgentId, ApiKeyId, IdSequence, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{self, NewNumber, NumberBacking, OrgCommand, OrgError, OrgEvent, OrgState, Quota, Resource};
use domain::voip::Provider;
use domain::{Ctx, E164, Partitioning};

use crate::common::{EARLIER, NOW, agent, connection, created, given, number};

fn when(state: &OrgState, command: OrgCommand) -> Result<Vec<OrgEvent>, OrgError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 5, 0);
    org::decide(state, command, &mut Ctx { now: NOW, ids: &mut ids })
}

#[test]
fn nothing_happens_in_an_org_that_does_not_exist() {
    let err = when(&given(&[]), OrgCommand::CreateAgent { spec: AgentSpec::named("a".into()) }).unwrap_err();
    assert_eq!(err, OrgError::NotFound(Resource::Org));
}

#[test]
fn an_org_is_created_once() {
    let then = when(&given(&[]), OrgCommand::Create { org_id: OrgId(5), name: "Acme".into() }).unwrap();
    assert_eq!(then, vec![OrgEvent::OrgCreated { org_id: OrgId(5), name: "Acme".into(), at: NOW }]);
    let again = when(&given(&then), OrgCommand::Create { org_id: OrgId(5), name: "Acme".into() });
    assert_eq!(again, Err(OrgError::AlreadyExists));
}

#[test]
fn new_resources_get_ids_of_the_partition() {
    let then = when(&given(&[created()]), OrgCommand::CreateAgent { spec: AgentSpec::named("a".into()) }).unwrap();
    let [OrgEvent::AgentCreated { id, .. }] = then.as_slice() else { panic!("{then:?}") };
    assert_eq!(id.0 % 64, 5);
}

#[test]
fn a_patch_changes_only_the_fields_it_names() {
    let state = given(&[created(), agent(69)]);
    let patch = AgentPatch { voice: Some(Voice::parse("sage").unwrap()), ..Default::default() };
    let then = when(&state, OrgCommand::UpdateAgent { id: AgentId(69), patch, if_updated_at: None }).unwrap();
    let mut expected = AgentSpec::named("agent 69".into());
    expected.voice = Voice::parse("sage").unwrap();
    assert_eq!(then, vec![OrgEvent::AgentUpdated { id: AgentId(69), spec: expected, at: NOW }]);
}

#[test]
fn deleting_an_agent_unassigns_it_from_numbers() {
    let state = given(&[
        created(),
        agent(69),
        agent(133),
        connection(197),
        number(261, "+14155550100", NumberBacking::Voip(VoipConnectionId(197)), Some(69), Some(133)),
    ]);
    let then = when(&state, OrgCommand::DeleteAgent { id: AgentId(69) }).unwrap();
    assert_eq!(
        then,
        vec![
            OrgEvent::PhoneNumberAgentsChanged {
                id: PhoneNumberId(261),
                inbound_agent_id: None,
                outbound_agent_id: Some(AgentId(133)),
                at: NOW
            },
            OrgEvent::AgentDeleted { id: AgentId(69), at: NOW },
        ]
    );
    let after = org::evolve(state, &then[0]);
    let after = org::evolve(after, &then[1]);
    assert!(!after.agents.contains_key(&AgentId(69)));
    assert_eq!(after.numbers[&PhoneNumberId(261)].inbound_agent_id, None);
}

#[test]
fn unknown_agents_and_connections_are_field_errors() {
    let state = given(&[created()]);
    let err = when(
        &state,
        OrgCommand::CreatePhoneNumber {
            id: PhoneNumberId(69),
            number: E164::parse("+14155550100").unwrap(),
            request: NewNumber {
                number: Some(E164::parse("+14155550100").unwrap()),
                backing: NumberBacking::Voip(VoipConnectionId(7)),
                inbound_agent_id: Some(AgentId(8)),
                outbound_agent_id: None,
            },
        },
    )
    .unwrap_err();
    let OrgError::Invalid(fields) = err else { panic!("{err:?}") };
    assert_eq!(fields.0["voip_connection_id"], vec!["Invalid pk \"7\" - object does not exist."]);
    assert_eq!(fields.0["inbound_agent_id"], vec!["Invalid pk \"8\" - object does not exist."]);
}

#[test]
fn demo_numbers_are_inbound_only() {
    let state = given(&[created(), agent(69), number(133, "+15005550000", NumberBacking::Demo, None, None)]);
    let err = when(
        &state,
        OrgCommand::UpdatePhoneNumber {
            id: PhoneNumberId(133),
            inbound_agent_id: None,
            outbound_agent_id: Some(Some(AgentId(69))),
            label: None,
            webhook_url: None,
        },
    )
    .unwrap_err();
    let OrgError::Invalid(fields) = err else { panic!("{err:?}") };
    assert_eq!(fields.0["outbound_agent_id"], vec!["Demo numbers are inbound-only."]);
}

#[test]
fn a_connection_that_backs_a_number_cannot_be_deleted() {
    let state = given(&[
        created(),
        connection(69),
        number(133, "+14155550100", NumberBacking::Voip(VoipConnectionId(69)), None, None),
    ]);
    let err = when(&state, OrgCommand::DeleteVoipConnection { id: VoipConnectionId(69) }).unwrap_err();
    assert!(matches!(err, OrgError::ConnectionInUse { .. }));
}

#[test]
fn verification_records_its_outcome() {
    let state = given(&[created(), connection(69)]);
    let ok = when(&state, OrgCommand::RecordVerification { id: VoipConnectionId(69), outcome: Ok(()) }).unwrap();
    let verified = org::evolve(state.clone(), &ok[0]);
    assert!(verified.connections[&VoipConnectionId(69)].verified);
    let failed =
        when(&verified, OrgCommand::RecordVerification { id: VoipConnectionId(69), outcome: Err("no answer".into()) })
            .unwrap();
    let after = org::evolve(verified, &failed[0]);
    let c = &after.connections[&VoipConnectionId(69)];
    assert!(!c.verified);
    assert_eq!(c.verification_error.as_deref(), Some("no answer"));
}

#[test]
fn a_revoked_key_cannot_be_revoked_again() {
    let state = given(&[
        created(),
        OrgEvent::ApiKeyCreated { id: ApiKeyId(69), name: "ci".into(), secret_hash: vec![1; 32], at: EARLIER },
    ]);
    let then = when(&state, OrgCommand::RevokeApiKey { id: ApiKeyId(69) }).unwrap();
    let after = org::evolve(state, &then[0]);
    assert!(after.active_key(ApiKeyId(69)).is_none());
    assert_eq!(when(&after, OrgCommand::RevokeApiKey { id: ApiKeyId(69) }), Err(OrgError::NotFound(Resource::ApiKey)));
}

fn quota_set(quota: Quota, limit: u32) -> OrgEvent {
    OrgEvent::QuotaSet { quota, limit, at: EARLIER }
}

#[test]
fn quotas_default_as_documented() {
    let profile = given(&[created()]).profile.unwrap();
    let limits: Vec<u32> = Quota::ALL.iter().map(|q| profile.quotas.limit(*q)).collect();
    assert_eq!(limits, vec![1_000, 50, 100, 1_000, 20, 20]);
}

#[test]
fn a_create_past_its_quota_is_refused() {
    let state = given(&[created(), quota_set(Quota::Agents, 2), agent(69), agent(133)]);
    assert_eq!(
        when(&state, OrgCommand::CreateAgent { spec: AgentSpec::named("third".into()) }),
        Err(OrgError::QuotaExceeded { quota: Quota::Agents, limit: 2 })
    );
    let state = given(&[created(), quota_set(Quota::VoipConnections, 1), connection(69)]);
    assert_eq!(
        when(
            &state,
            OrgCommand::CreateVoipConnection {
                name: String::new(),
                vendor: domain::voip::Vendor::Manual,
                provider: Provider::Sim,
                evidence: domain::voip::EvidenceClaim { id: "e".into(), fingerprint: vec![1] },
            }
        ),
        Err(OrgError::QuotaExceeded { quota: Quota::VoipConnections, limit: 1 })
    );
    let state = given(&[created(), quota_set(Quota::PhoneNumbers, 0)]);
    let request =
        NewNumber { number: None, backing: NumberBacking::Demo, inbound_agent_id: None, outbound_agent_id: None };
    // Refused before the directory is asked to claim anything, and again at the record.
    assert_eq!(
        org::check_new_number(&state, None, &request),
        Err(OrgError::QuotaExceeded { quota: Quota::PhoneNumbers, limit: 0 })
    );
    let create =
        OrgCommand::CreatePhoneNumber { id: PhoneNumberId(69), number: E164::parse("+15005550000").unwrap(), request };
    assert_eq!(when(&state, create), Err(OrgError::QuotaExceeded { quota: Quota::PhoneNumbers, limit: 0 }));
}

#[test]
fn revoked_keys_leave_the_key_quota() {
    let key =
        |id| OrgEvent::ApiKeyCreated { id: ApiKeyId(id), name: "ci".into(), secret_hash: vec![1; 32], at: EARLIER };
    let create = || OrgCommand::CreateApiKey { name: "ci".into(), secret_hash: vec![2; 32] };
    let state = given(&[created(), quota_set(Quota::ApiKeys, 1), key(69)]);
    assert_eq!(when(&state, create()), Err(OrgError::QuotaExceeded { quota: Quota::ApiKeys, limit: 1 }));
    let state = org::evolve(state, &OrgEvent::ApiKeyRevoked { id: ApiKeyId(69), at: EARLIER });
    assert!(when(&state, create()).is_ok());
}

#[test]
fn quotas_are_set_within_their_range() {
    let state = given(&[created()]);
    let then = when(&state, OrgCommand::SetQuotas { limits: vec![(Quota::Agents, 5), (Quota::WebhookEndpoints, 0)] });
    assert_eq!(
        then,
        Ok(vec![
            OrgEvent::QuotaSet { quota: Quota::Agents, limit: 5, at: NOW },
            OrgEvent::QuotaSet { quota: Quota::WebhookEndpoints, limit: 0, at: NOW }
        ])
    );
    let after = then.unwrap().iter().fold(state.clone(), org::evolve);
    let quotas = &after.profile.unwrap().quotas;
    assert_eq!((quotas.limit(Quota::Agents), quotas.limit(Quota::WebhookEndpoints)), (5, 0));
    assert_eq!(quotas.limit(Quota::ApiKeys), 50, "the others stay at their defaults");
    let Err(OrgError::Invalid(errors)) =
        when(&state, OrgCommand::SetQuotas { limits: vec![(Quota::OpenBatches, 100_001)] })
    else {
        panic!("a quota past the range is a field error")
    };
    assert_eq!(errors.0.keys().collect::<Vec<_>>(), vec!["max_open_batches"]);
}

#[test]
fn a_batch_past_the_open_batch_quota_is_refused() {
    let profile = given(&[created(), quota_set(Quota::OpenBatches, 2)]).profile.unwrap();
    assert!(domain::test_call::admit_batch(&profile, 1).is_ok());
    assert_eq!(
        domain::test_call::admit_batch(&profile, 2),
        Err(OrgError::QuotaExceeded { quota: Quota::OpenBatches, limit: 2 })
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Folding events one at a time (the actor) and from scratch (a replay) agree, whatever
        /// sequence of agent commands produced them.
        #[test]
        fn replay_rebuilds_the_state_the_commands_built(ops in proptest::collection::vec((0u8..3, 0usize..4), 1..40)) {
            let mut ids = IdSequence::resume(Partitioning::new(64), 5, 0);
            let mut state = given(&[created()]);
            let mut log = vec![created()];
            for (op, pick) in ops {
                let existing: Vec<AgentId> = state.agents.keys().copied().collect();
                let command = match (op, existing.get(pick % existing.len().max(1))) {
                    (0, _) | (_, None) => OrgCommand::CreateAgent { spec: AgentSpec::named(format!("a{pick}")) },
                    (1, Some(id)) => OrgCommand::UpdateAgent { id: *id, patch: AgentPatch { name: Some(format!("b{pick}")), ..Default::default() }, if_updated_at: None },
                    (_, Some(id)) => OrgCommand::DeleteAgent { id: *id },
                };
                let events = org::decide(&state, command, &mut Ctx { now: NOW, ids: &mut ids }).unwrap();
                for e in &events {
                    state.apply(e);
                }
                log.extend(events);
            }
            prop_assert_eq!(OrgState::from_events(&log), state);
        }

        #[test]
        fn ids_are_unique_and_name_their_partition(partition in 0u32..64, count in 1usize..3000) {
            let mut ids = IdSequence::resume(Partitioning::new(64), partition, 0);
            let all: Vec<u64> = (0..count).map(|_| ids.next_id()).collect();
            prop_assert!(all.iter().all(|id| id % 64 == u64::from(partition) && *id > 0));
            prop_assert!(all.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
