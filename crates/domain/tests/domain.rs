//! Business rules as given / when / then: given these events, when this command, then these
//! events or this error. No I/O.

use domain::agent::{AgentPatch, AgentSpec, Voice};
use domain::directory::{self, Claim, DirectoryCommand, DirectoryError, DirectoryEvent, DirectoryState};
use domain::ids::{AgentId, ApiKeyId, IdSequence, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{self, NewNumber, NumberBacking, OrgCommand, OrgError, OrgEvent, OrgState, Quota, Resource};
use domain::voip::Provider;
use domain::{Ctx, E164, Partitioning, Timestamp};

const NOW: Timestamp = Timestamp(1_776_709_450_113);
const EARLIER: Timestamp = Timestamp(1_776_709_000_000);

fn given(events: &[OrgEvent]) -> OrgState {
    OrgState::from_events(events)
}

fn when(state: &OrgState, command: OrgCommand) -> Result<Vec<OrgEvent>, OrgError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 5, 0);
    org::decide(state, command, &mut Ctx { now: NOW, ids: &mut ids })
}

fn created() -> OrgEvent {
    OrgEvent::OrgCreated { org_id: OrgId(5), name: "Acme".into(), at: EARLIER }
}

fn agent(id: u64) -> OrgEvent {
    OrgEvent::AgentCreated { id: AgentId(id), spec: AgentSpec::named(format!("agent {id}")), at: EARLIER }
}

fn connection(id: u64) -> OrgEvent {
    OrgEvent::VoipConnectionCreated {
        id: VoipConnectionId(id),
        name: String::new(),
        provider: Provider::Sim,
        at: EARLIER,
    }
}

fn number(id: u64, n: &str, backing: NumberBacking, inbound: Option<u64>, outbound: Option<u64>) -> OrgEvent {
    OrgEvent::PhoneNumberCreated {
        id: PhoneNumberId(id),
        number: E164::parse(n).unwrap(),
        backing,
        inbound_agent_id: inbound.map(AgentId),
        outbound_agent_id: outbound.map(AgentId),
        at: EARLIER,
    }
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
    let then = when(&state, OrgCommand::UpdateAgent { id: AgentId(69), patch }).unwrap();
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
        when(&state, OrgCommand::CreateVoipConnection { name: String::new(), provider: Provider::Sim }),
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

fn directory_given(events: &[DirectoryEvent]) -> DirectoryState {
    let mut state = DirectoryState::default();
    for e in events {
        state.apply(e);
    }
    state
}

fn directory_when(state: &DirectoryState, command: DirectoryCommand) -> Result<Vec<DirectoryEvent>, DirectoryError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 0, 0);
    directory::decide(state, command, &Ctx { now: NOW, ids: &mut ids })
}

#[test]
fn the_directory_numbers_orgs_one_after_another() {
    let first = directory_when(&directory_given(&[]), DirectoryCommand::RegisterOrg { name: "a".into() }).unwrap();
    let second = directory_when(&directory_given(&first), DirectoryCommand::RegisterOrg { name: "b".into() }).unwrap();
    assert!(matches!(second[0], DirectoryEvent::OrgRegistered { org_id: OrgId(2), .. }));
}

#[test]
fn a_number_belongs_to_one_org_and_claims_are_idempotent() {
    let n = E164::parse("+14155550100").unwrap();
    let claimed = vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 7, at: EARLIER }];
    let state = directory_given(&claimed);
    let claim = |org, token| DirectoryCommand::ClaimNumber { org_id: OrgId(org), number: n.clone(), token };
    let release = |org, token| DirectoryCommand::ReleaseNumber { org_id: OrgId(org), number: Some(n.clone()), token };
    assert_eq!(directory_when(&state, claim(1, 7)), Ok(vec![]));
    assert_eq!(directory_when(&state, claim(2, 9)), Err(DirectoryError::NumberTaken(n.clone())));
    // Only the holder can release it, and only the claim it names.
    assert_eq!(directory_when(&state, release(2, 7)), Ok(vec![]));
    assert_eq!(directory_when(&state, release(1, 8)), Ok(vec![]));
    let released = directory_when(&state, release(1, 7)).unwrap();
    let after = directory_given(&[claimed, released].concat());
    assert!(directory_when(&after, claim(2, 9)).is_ok());
}

/// The race the tokens close: a claim the org gave up on (its record failed) is released late,
/// after the org claimed the number again for a phone number it records. The late release
/// names the old claim and changes nothing, so the recorded number keeps its claim.
#[test]
fn a_late_release_cannot_undo_a_later_claim_of_the_same_number() {
    let n = E164::parse("+14155550100").unwrap();
    let first = vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 7, at: EARLIER }];
    let again = directory_when(
        &directory_given(&first),
        DirectoryCommand::ClaimNumber { org_id: OrgId(1), number: n.clone(), token: 8 },
    )
    .unwrap();
    assert_eq!(again, vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 8, at: NOW }]);
    let state = directory_given(&[first, again].concat());
    let late = DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: Some(n.clone()), token: 7 };
    assert_eq!(directory_when(&state, late), Ok(vec![]));
    assert_eq!(
        directory_when(&state, DirectoryCommand::ClaimNumber { org_id: OrgId(2), number: n.clone(), token: 1 }),
        Err(DirectoryError::NumberTaken(n))
    );
}

#[test]
fn a_claim_recorded_before_tokens_is_released_by_its_org() {
    let n = E164::parse("+14155550100").unwrap();
    let legacy = vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 0, at: EARLIER }];
    let released = directory_when(
        &directory_given(&legacy),
        DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: Some(n), token: 5 },
    );
    assert!(matches!(released.as_deref(), Ok([DirectoryEvent::NumberReleased { .. }])), "{released:?}");
}

#[test]
fn demo_numbers_come_from_the_pool_and_cannot_be_claimed_by_hand() {
    let demo = |org, token| DirectoryCommand::ClaimDemoNumber { org_id: OrgId(org), token };
    let first = directory_when(&directory_given(&[]), demo(1, 3)).unwrap();
    let second = directory_when(&directory_given(&first), demo(2, 4)).unwrap();
    let numbers: Vec<_> = [&first[0], &second[0]]
        .iter()
        .map(|e| match e {
            DirectoryEvent::NumberClaimed { number, .. } => number.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(numbers, vec!["+15005550000", "+15005550001"]);
    // A retry of a claim takes nothing more.
    let state = directory_given(&[first, second].concat());
    assert_eq!(directory_when(&state, demo(1, 3)), Ok(vec![]));
    assert_eq!(
        state.claimed_as(Claim { org_id: OrgId(1), token: 3 }).map(E164::to_string),
        Some("+15005550000".into())
    );
    // A claim whose answer was lost is released by its token alone: the pool gets it back.
    let release = DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: None, token: 3 };
    let released = directory_when(&state, release).unwrap();
    assert!(
        matches!(released.as_slice(), [DirectoryEvent::NumberReleased { number, token: 3, .. }] if number.as_str() == "+15005550000"),
        "{released:?}"
    );
    let unknown = DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: None, token: 99 };
    assert_eq!(directory_when(&state, unknown), Ok(vec![]));
    let err = directory_when(
        &directory_given(&[]),
        DirectoryCommand::ClaimNumber { org_id: OrgId(1), number: E164::parse("+15005550042").unwrap(), token: 1 },
    );
    assert!(matches!(err, Err(DirectoryError::ReservedForDemo(_))));
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
                    (1, Some(id)) => OrgCommand::UpdateAgent { id: *id, patch: AgentPatch { name: Some(format!("b{pick}")), ..Default::default() } },
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

mod ledger {
    use std::collections::BTreeMap;

    use domain::ledger::{
        self, Account, ChargeKind, Closed, LedgerCommand, LedgerError, LedgerEvent, LedgerState, Recorded,
        ReserveLimit, TransactionKind, cost_cents,
    };
    use domain::{Ctx, IdSequence, Partitioning, Timestamp};

    use super::NOW;

    /// An org's ledger as its owner keeps it: the state in memory, and the records by reference.
    #[derive(Debug, Default, PartialEq)]
    struct Books {
        state: LedgerState,
        records: BTreeMap<String, Recorded>,
    }

    impl Books {
        fn record_for(&self, command: &LedgerCommand) -> Recorded {
            command.reference().and_then(|r| self.records.get(r)).cloned().unwrap_or_default()
        }

        fn apply(&mut self, event: &LedgerEvent) {
            self.state.apply(event);
            if let Some(reference) = event.recorded_under() {
                self.records.entry(reference.to_owned()).or_default().apply(event);
            }
        }

        fn decide(&self, command: LedgerCommand, ctx: &mut Ctx<'_>) -> Result<Vec<LedgerEvent>, LedgerError> {
            ledger::decide(&self.state, &self.record_for(&command), command, ctx)
        }
    }

    impl std::ops::Deref for Books {
        type Target = LedgerState;

        fn deref(&self) -> &LedgerState {
            &self.state
        }
    }

    fn given(commands: &[LedgerCommand]) -> (Books, IdSequence) {
        let mut ids = IdSequence::resume(Partitioning::new(64), 3, 0);
        let mut books = Books::default();
        for c in commands {
            for e in books.decide(c.clone(), &mut Ctx { now: NOW, ids: &mut ids }).unwrap() {
                books.apply(&e);
            }
        }
        (books, ids)
    }

    fn when_at(books: &Books, now: Timestamp, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
        let mut ids = IdSequence::resume(Partitioning::new(64), 3, 1000);
        books.decide(command, &mut Ctx { now, ids: &mut ids })
    }

    fn when(books: &Books, command: LedgerCommand) -> Result<Vec<LedgerEvent>, LedgerError> {
        when_at(books, NOW, command)
    }

    fn top_up(reference: &str, cents: i64) -> LedgerCommand {
        LedgerCommand::TopUp { reference: reference.into(), cents, description: String::new() }
    }

    fn reserve(reference: &str, max_cents: i64) -> LedgerCommand {
        LedgerCommand::Reserve {
            reference: reference.into(),
            limit: ReserveLimit::Cents(max_cents),
            kind: ChargeKind::Call,
            call_id: Some(7),
            charge_multiplier: 1,
            expires_in_seconds: 60,
        }
    }

    fn settle(reference: &str, cents: i64) -> LedgerCommand {
        LedgerCommand::Settle { reference: reference.into(), cents }
    }

    #[test]
    fn cost_is_prorated_per_second_and_rounded_up_per_call() {
        assert_eq!(cost_cents(0, 10, 1), 0);
        assert_eq!(cost_cents(1, 10, 1), 1);
        assert_eq!(cost_cents(60, 10, 1), 10);
        assert_eq!(cost_cents(61, 10, 1), 11);
        assert_eq!(cost_cents(90, 10, 2), 30);
    }

    #[test]
    fn nothing_is_reserved_from_a_balance_at_or_below_zero() {
        let (empty, _) = given(&[]);
        assert_eq!(when(&empty, reserve("c1", 50)), Err(LedgerError::InsufficientBalance));
        let (spent, _) = given(&[top_up("t", 30), reserve("c1", 30)]);
        assert_eq!(when(&spent, reserve("c2", 5)), Err(LedgerError::InsufficientBalance));
    }

    #[test]
    fn a_reservation_is_granted_what_is_available_up_to_its_maximum() {
        let (state, _) = given(&[top_up("t", 100), reserve("c1", 70)]);
        let then = when(&state, reserve("c2", 70)).unwrap();
        let [LedgerEvent::FundsReserved { reservation, entries, .. }] = then.as_slice() else { panic!("{then:?}") };
        assert_eq!(reservation.granted_cents, 30);
        assert_eq!(entries.iter().map(|e| e.amount_cents).sum::<i64>(), 0);
        // Asked again with the same reference, nothing more is reserved.
        assert_eq!(when(&state, reserve("c1", 70)), Ok(vec![]));
    }

    #[test]
    fn a_limit_in_seconds_is_priced_at_the_orgs_rate_and_multiplier() {
        let (state, _) = given(&[top_up("t", 1_000), LedgerCommand::SetRate { cents_per_minute: 12 }]);
        let reserve = |multiplier| LedgerCommand::Reserve {
            reference: "c".into(),
            limit: ReserveLimit::Seconds(90),
            kind: ChargeKind::TestCall,
            call_id: None,
            charge_multiplier: multiplier,
            expires_in_seconds: 60,
        };
        for (multiplier, expected) in [(1, 18), (2, 36)] {
            let then = when(&state, reserve(multiplier)).unwrap();
            let [LedgerEvent::FundsReserved { reservation, .. }] = then.as_slice() else { panic!("{then:?}") };
            assert_eq!((reservation.granted_cents, reservation.rate_cents_per_minute), (expected, 12));
        }
    }

    #[test]
    fn settling_charges_at_most_the_grant_and_releases_the_rest() {
        let (state, _) = given(&[top_up("t", 100), reserve("c1", 40)]);
        let then = when(&state, settle("c1", 25)).unwrap();
        let [LedgerEvent::ReservationSettled { charged_cents: 25, released_cents: 15, transaction: Some(tx), .. }] =
            then.as_slice()
        else {
            panic!("{then:?}")
        };
        assert_eq!(
            (tx.kind, tx.amount_cents, tx.balance_after_cents, tx.call_id),
            (TransactionKind::CallCharge, -25, 75, Some(7))
        );

        let over = when(&state, settle("c1", 1_000)).unwrap();
        assert!(matches!(
            over.as_slice(),
            [LedgerEvent::ReservationSettled { charged_cents: 40, released_cents: 0, .. }]
        ));

        let (settled, _) = given(&[top_up("t", 100), reserve("c1", 40), settle("c1", 25)]);
        assert_eq!(settled.balances.balance_cents(), 75);
        assert_eq!(settled.balances.available_cents(), 75);
        assert_eq!(settled.balances.reserved_cents(), 0);
        assert_eq!(when(&settled, settle("c1", 25)), Ok(vec![]), "a redelivered settle posts nothing");
        assert_eq!(when(&settled, reserve("c1", 10)), Err(LedgerError::ReservationClosed("c1".into())));
    }

    #[test]
    fn a_call_that_never_connected_is_voided_not_charged() {
        let (state, _) = given(&[top_up("t", 100), reserve("c1", 40), LedgerCommand::Void { reference: "c1".into() }]);
        assert_eq!((state.balances.balance_cents(), state.balances.available_cents()), (100, 100));
        assert!(matches!(state.records["c1"].closed, Some(Closed::Released { released_cents: 40, expired: false })));
        assert_eq!(when(&state, LedgerCommand::Void { reference: "c1".into() }), Ok(vec![]));
        assert_eq!(when(&state, settle("c1", 5)), Err(LedgerError::ReservationClosed("c1".into())));
    }

    #[test]
    fn reservations_expire_by_themselves() {
        let (state, _) = given(&[top_up("t", 100), reserve("c1", 40)]);
        assert_eq!(when(&state, LedgerCommand::Expire), Ok(vec![]));
        let later = Timestamp(NOW.0 + 60_000);
        let then = when_at(&state, later, LedgerCommand::Expire).unwrap();
        assert!(matches!(
            then.as_slice(),
            [LedgerEvent::ReservationReleased { released_cents: 40, expired: true, .. }]
        ));
        assert_eq!(ledger::next_expiry(&state), Some(later));
    }

    #[test]
    fn a_repeated_top_up_posts_once_and_a_reused_reference_is_refused() {
        let (state, _) = given(&[top_up("stripe_1", 500)]);
        assert_eq!(when(&state, top_up("stripe_1", 500)), Ok(vec![]));
        assert_eq!(when(&state, top_up("stripe_1", 600)), Err(LedgerError::ReferenceReused("stripe_1".into())));
        assert!(matches!(when(&state, top_up("x", 0)), Err(LedgerError::Invalid { field: "amount_cents", .. })));
        assert!(matches!(when(&state, top_up("", 5)), Err(LedgerError::Invalid { field: "reference", .. })));
    }

    #[test]
    fn test_calls_record_their_multiplier() {
        let (state, _) = given(&[
            top_up("t", 100),
            LedgerCommand::Reserve {
                reference: "r".into(),
                limit: ReserveLimit::Cents(50),
                kind: ChargeKind::TestCall,
                call_id: None,
                charge_multiplier: 2,
                expires_in_seconds: 60,
            },
        ]);
        let then = when(&state, settle("r", 20)).unwrap();
        let tx = then[0].transaction().unwrap();
        assert_eq!((tx.kind, tx.amount_cents), (TransactionKind::TestCallCharge, -20));
        assert!(tx.description.contains("x2"), "{}", tx.description);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            TopUp(u8, i64),
            Reserve(u8, i64),
            Settle(u8, i64),
            Void(u8),
            Advance(i64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..6, 1i64..200).prop_map(|(r, c)| Op::TopUp(r, c)),
                (0u8..12, 1i64..150).prop_map(|(r, c)| Op::Reserve(r, c)),
                (0u8..12, 0i64..200).prop_map(|(r, c)| Op::Settle(r, c)),
                (0u8..12).prop_map(Op::Void),
                (1i64..90).prop_map(Op::Advance),
            ]
        }

        proptest! {
            #[test]
            fn the_books_balance_whatever_happens(ops in proptest::collection::vec(op(), 1..80)) {
                let mut ids = IdSequence::resume(Partitioning::new(64), 3, 0);
                let mut state = Books::default();
                let mut log: Vec<LedgerEvent> = Vec::new();
                let mut now = NOW;
                for op in ops {
                    let command = match op {
                        Op::TopUp(r, c) => top_up(&format!("t{r}"), c),
                        Op::Reserve(r, c) => reserve(&format!("c{r}"), c),
                        Op::Settle(r, c) => settle(&format!("c{r}"), c),
                        Op::Void(r) => LedgerCommand::Void { reference: format!("c{r}") },
                        Op::Advance(s) => { now = Timestamp(now.0 + s * 1000); LedgerCommand::Expire }
                    };
                    let Ok(events) = state.decide(command, &mut Ctx { now, ids: &mut ids }) else { continue };
                    for e in &events {
                        prop_assert_eq!(e.entries().iter().map(|x| x.amount_cents).sum::<i64>(), 0, "entries of {:?}", e);
                        if let LedgerEvent::ReservationSettled { reference, charged_cents, .. } = e {
                            prop_assert!(*charged_cents <= state.open[reference].granted_cents);
                        }
                        state.apply(e);
                        prop_assert!(state.balances.available_cents() >= 0);
                        prop_assert!(state.balances.reserved_cents() >= 0);
                        prop_assert_eq!(state.balances.reserved_cents(), state.open.values().map(|r| r.granted_cents).sum::<i64>());
                    }
                    log.extend(events);
                }
                let total: i64 = state.balances.0.values().sum();
                prop_assert_eq!(total, 0);
                prop_assert_eq!(state.balances.of(Account::Funding), -state.records.values().filter_map(|r| r.top_up.as_ref()).map(|t| t.amount_cents).sum::<i64>());
                let mut replayed = Books::default();
                for e in &log {
                    replayed.apply(e);
                }
                prop_assert_eq!(replayed, state);
            }
        }
    }
}

mod calls {
    use domain::agent::AgentSpec;
    use domain::call::{
        self, Action, Billing, CallCommand, CallEvent, CallSetup, CallState, CarrierEvent, Direction, EndReason, Funds,
        Phase, Speaker, Status, Timer,
    };
    use domain::ids::{CallId, OrgId};
    use domain::{E164, Timestamp};

    fn at(ms: i64) -> Timestamp {
        Timestamp(1_000_000 + ms)
    }

    fn setup() -> CallSetup {
        CallSetup {
            id: CallId(69),
            org: OrgId(5),
            direction: Direction::Outbound,
            from: E164::parse("+14155550100").unwrap(),
            to: E164::parse("+14155550123").unwrap(),
            agent_id: None,
            voip_connection_id: None,
            agent: AgentSpec::named("Support".into()),
            max_hold_seconds: 5,
            reservation_reference: Some("call/69".into()),
            test_run_id: None,
            ring_timeout_ms: 30_000,
            max_duration_seconds: 3600,
            scenario_prompt: None,
            placement_timeout_ms: 60_000,
        }
    }

    /// Given these commands at these times (after initiation at 0), the call's state.
    /// 60 cents at 10 c/min pays for six minutes.
    fn funds() -> Funds {
        Funds { granted_cents: 60, rate_cents_per_minute: 10, charge_multiplier: 1 }
    }

    fn requested() -> CallState {
        CallState::start(&CallEvent::Requested { setup: Box::new(setup()), at: at(0) }).unwrap()
    }

    /// Given a placed call and then these commands at these times, the call's state.
    fn given(commands: &[(i64, CallCommand)]) -> CallState {
        let mut state = requested();
        state.apply(&CallEvent::FundsReserved { funds: funds(), at: at(0) });
        for (ms, c) in commands {
            for e in call::decide(&state, c.clone(), at(*ms)).events {
                state.apply(&e);
            }
        }
        state
    }

    fn answered() -> Vec<(i64, CallCommand)> {
        vec![
            (10, CallCommand::DialAccepted),
            (20, CallCommand::Carrier(CarrierEvent::Ringing)),
            (1_000, CallCommand::Carrier(CarrierEvent::Answered { sip_dialog: None })),
        ]
    }

    #[test]
    fn a_call_goes_through_its_phases_and_is_charged_per_second() {
        let state = given(&answered());
        assert_eq!((state.phase, state.status()), (Phase::Answered, Status::InProgress));
        let decision = call::decide(
            &state,
            CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::AgentHangup, sip_code: Some(200) }),
            at(62_500),
        );
        assert_eq!(
            decision.events,
            vec![CallEvent::Ended {
                status: Status::Completed,
                reason: EndReason::AgentHangup,
                sip_code: Some(200),
                duration_seconds: 62,
                at: at(62_500)
            }]
        );
        // 61.5 s of talk round up to 62 s: 62 s at 10 c/min is 10.33 c, so 11 c.
        assert_eq!(decision.actions, vec![Action::Settle { reference: "call/69".into(), cents: 11 }]);
    }

    #[test]
    fn the_end_is_final_and_late_carrier_events_are_recorded_and_torn_down() {
        let mut commands = answered();
        commands.push((
            5_000,
            CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::CalleeHangup, sip_code: Some(200) }),
        ));
        let ended = given(&commands);
        let late = call::decide(&ended, CallCommand::Carrier(CarrierEvent::Answered { sip_dialog: None }), at(6_000));
        assert_eq!(late.events, vec![CallEvent::CarrierEventIgnored { event: "answered".into(), at: at(6_000) }]);
        // Changed deliberately (issue 10, item 9): a late answer used to be recorded only, which
        // left the far end connected; the carrier is now told to end it.
        assert_eq!(late.actions, vec![Action::HangUp]);
        let again = call::decide(
            &ended,
            CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) }),
            at(6_000),
        );
        assert!(matches!(again.events.as_slice(), [CallEvent::CarrierEventIgnored { .. }]));
        assert!(again.actions.is_empty(), "the carrier ended it already");
        assert_eq!(call::decide(&ended, CallCommand::Hangup, at(7_000)), Default::default());
        assert_eq!(
            call::decide(&ended, CallCommand::TimerFired(Timer::MaxDuration), at(9_999_999)),
            Default::default()
        );
        assert_eq!(ended.ending.as_ref().unwrap().reason, EndReason::CalleeHangup);
    }

    #[test]
    fn a_call_that_never_connected_is_voided() {
        let state = given(&[(10, CallCommand::DialAccepted)]);
        let busy = call::decide(
            &state,
            CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) }),
            at(500),
        );
        assert!(matches!(
            busy.events.as_slice(),
            [CallEvent::Ended { status: Status::Failed, reason: EndReason::Busy, duration_seconds: 0, .. }]
        ));
        assert_eq!(busy.actions, vec![Action::Void { reference: "call/69".into() }]);
    }

    /// A call waiting for its funds or for the carrier's acceptance of its dial has a deadline,
    /// so that whatever never answered (billing, the carrier, an append that failed) cannot
    /// leave it, and the funds it may hold, waiting for ever.
    #[test]
    fn a_call_that_is_never_placed_is_given_up_on_at_its_placement_deadline() {
        let requested = requested();
        assert!(call::timers(&requested).contains(&(Timer::Placement, at(60_000))), "{:?}", call::timers(&requested));
        assert_eq!(call::decide(&requested, CallCommand::TimerFired(Timer::Placement), at(59_999)), Default::default());
        let given_up = call::decide(&requested, CallCommand::TimerFired(Timer::Placement), at(60_000));
        assert_eq!(given_up.events, vec![CallEvent::Rejected { code: "placement_timeout".into(), at: at(60_000) }]);
        assert_eq!(given_up.actions, vec![Action::Void { reference: "call/69".into() }]);

        // Granted at 0, the dial never accepted: the window starts again at the grant.
        let initiated = given(&[]);
        assert!(call::timers(&initiated).contains(&(Timer::Placement, at(60_000))));
        let failed = call::decide(&initiated, CallCommand::TimerFired(Timer::Placement), at(60_000));
        assert!(matches!(
            failed.events.as_slice(),
            [CallEvent::Ended { reason: EndReason::CarrierError, status: Status::Failed, .. }]
        ));
        assert!(failed.actions.contains(&Action::Void { reference: "call/69".into() }), "{:?}", failed.actions);

        // Once the carrier took the dial, the ring timeout governs instead.
        let dialing = given(&[(10, CallCommand::DialAccepted)]);
        assert!(!call::timers(&dialing).iter().any(|(t, _)| *t == Timer::Placement));
    }

    /// A call given up on before its funds arrived is never dialed; should a carrier report on
    /// it all the same, it is torn down there, as an ended call is.
    #[test]
    fn a_rejected_call_takes_no_late_grant_and_is_torn_down_at_a_carrier_that_reports_on_it() {
        let mut rejected = requested();
        for e in call::decide(&rejected, CallCommand::TimerFired(Timer::Placement), at(60_000)).events {
            rejected.apply(&e);
        }
        assert_eq!(rejected.phase, Phase::Rejected);
        assert_eq!(call::decide(&rejected, CallCommand::FundsReserved(funds()), at(61_000)), Default::default());
        let late = call::decide(&rejected, CallCommand::DialAccepted, at(62_000));
        assert_eq!(late.actions, vec![Action::HangUp]);
        let answered =
            call::decide(&rejected, CallCommand::Carrier(CarrierEvent::Answered { sip_dialog: None }), at(63_000));
        assert_eq!(answered.actions, vec![Action::HangUp]);
    }

    #[test]
    fn timers_follow_from_the_state_and_fire_only_when_due() {
        let dialing = given(&[(10, CallCommand::DialAccepted)]);
        let timers = call::timers(&dialing);
        assert!(timers.contains(&(Timer::RingTimeout, at(30_010))), "{timers:?}");
        assert!(timers.contains(&(Timer::MaxDuration, at(3_600_000))));
        assert_eq!(call::decide(&dialing, CallCommand::TimerFired(Timer::RingTimeout), at(29_000)), Default::default());
        let timed_out = call::decide(&dialing, CallCommand::TimerFired(Timer::RingTimeout), at(30_010));
        assert!(matches!(
            timed_out.events.as_slice(),
            [CallEvent::Ended { reason: EndReason::NoAnswer, status: Status::Failed, .. }]
        ));
        assert_eq!(timed_out.actions, vec![Action::HangUp, Action::Void { reference: "call/69".into() }]);

        let talking = given(&answered());
        assert!(call::timers(&talking).contains(&(Timer::TalkLimit, at(1_000 + 360_000))));
        assert!(!call::timers(&talking).iter().any(|(t, _)| *t == Timer::RingTimeout));
    }

    #[test]
    fn the_grant_caps_talk_time() {
        let talking = given(&answered());
        let out = call::decide(&talking, CallCommand::TimerFired(Timer::TalkLimit), at(361_000));
        assert!(matches!(
            out.events.as_slice(),
            [CallEvent::Ended {
                reason: EndReason::InsufficientBalance,
                status: Status::Completed,
                duration_seconds: 360,
                ..
            }]
        ));
        assert_eq!(out.actions, vec![Action::HangUp, Action::Settle { reference: "call/69".into(), cents: 60 }]);
    }

    #[test]
    fn the_watchdog_fails_a_call_that_outlives_its_maximum() {
        let talking = given(&answered());
        let out = call::decide(&talking, CallCommand::TimerFired(Timer::MaxDuration), at(3_600_000));
        assert!(matches!(
            out.events.as_slice(),
            [CallEvent::Ended { reason: EndReason::MaxDuration, status: Status::Failed, .. }]
        ));
    }

    #[test]
    fn hold_is_bounded_by_max_hold_seconds() {
        let mut commands = answered();
        commands.push((2_000, CallCommand::Carrier(CarrierEvent::HoldStarted)));
        let held = given(&commands);
        assert!(call::timers(&held).contains(&(Timer::MaxHold, at(7_000))));
        let out = call::decide(&held, CallCommand::TimerFired(Timer::MaxHold), at(7_000));
        assert_eq!(out.events, vec![CallEvent::HoldEnded { forced: true, at: at(7_000) }]);
    }

    #[test]
    fn hanging_up_cancels_before_the_answer_and_ends_the_conversation_after() {
        let ringing = given(&[(10, CallCommand::DialAccepted), (20, CallCommand::Carrier(CarrierEvent::Ringing))]);
        let out = call::decide(&ringing, CallCommand::Hangup, at(100));
        assert!(matches!(
            out.events.as_slice(),
            [CallEvent::Ended { reason: EndReason::Canceled, status: Status::Failed, .. }]
        ));
        let talking = given(&answered());
        let out = call::decide(&talking, CallCommand::Hangup, at(3_000));
        assert!(matches!(
            out.events.as_slice(),
            [CallEvent::Ended { reason: EndReason::AgentHangup, status: Status::Completed, .. }]
        ));
        assert_eq!(out.actions[0], Action::HangUp);
    }

    #[test]
    fn a_call_hung_up_before_the_carrier_accepted_the_dial_is_torn_down_whatever_the_carrier_answers() {
        // Given a placed call whose dial the carrier has not yet accepted,
        let initiated = given(&[]);
        // when the org hangs up, then it is canceled, the carrier is told, and nothing is charged.
        let out = call::decide(&initiated, CallCommand::Hangup, at(50));
        assert!(matches!(
            out.events.as_slice(),
            [CallEvent::Ended { reason: EndReason::Canceled, status: Status::Failed, .. }]
        ));
        assert_eq!(out.actions, vec![Action::HangUp, Action::Void { reference: "call/69".into() }]);
        let canceled = given(&[(50, CallCommand::Hangup)]);
        // When the carrier then accepts the dial, rings or answers, it is told again to end it.
        for late in [
            CallCommand::DialAccepted,
            CallCommand::Carrier(CarrierEvent::Ringing),
            CallCommand::Carrier(CarrierEvent::Answered { sip_dialog: None }),
        ] {
            let out = call::decide(&canceled, late.clone(), at(2_000));
            assert_eq!(out.actions, vec![Action::HangUp], "{late:?}");
            assert!(matches!(out.events.as_slice(), [CallEvent::CarrierEventIgnored { .. }]), "{late:?}");
            // The same holds once the call has left the owner's memory.
            assert_eq!(call::teardown_of_forgotten(&late), Some(Action::HangUp), "{late:?}");
        }
        let ended = CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) });
        assert_eq!(call::teardown_of_forgotten(&ended), None);
        assert_eq!(canceled.ending.as_ref().unwrap().reason, EndReason::Canceled, "the end stays final");
    }

    #[test]
    fn an_interrupted_dial_fails_instead_of_dialing_twice_and_billing_is_recorded_once() {
        let initiated = given(&[]);
        let out = call::decide(&initiated, CallCommand::Interrupted, at(50));
        assert!(matches!(out.events.as_slice(), [CallEvent::Ended { reason: EndReason::CarrierError, .. }]));
        assert_eq!(out.actions, vec![Action::Void { reference: "call/69".into() }], "no hang-up: nothing was dialed");

        let mut commands = answered();
        commands.push((5_000, CallCommand::Hangup));
        let ended = given(&commands);
        assert!(ended.is_active());
        assert_eq!(call::pending_settlement(&ended), Some(Action::Settle { reference: "call/69".into(), cents: 1 }));
        let settled =
            given(&[commands.clone(), vec![(5_100, CallCommand::RecordSettlement { charged_cents: 1 })]].concat());
        assert_eq!(
            (settled.billing.clone(), settled.cost_cents(), settled.is_active()),
            (Billing::Settled { charged_cents: 1 }, Some(1), false)
        );
        assert_eq!(call::pending_settlement(&settled), None);
        assert_eq!(
            call::decide(&settled, CallCommand::RecordSettlement { charged_cents: 1 }, at(5_200)),
            Default::default()
        );
    }

    #[test]
    fn a_request_becomes_a_call_only_once_its_funds_are_reserved() {
        let request = requested();
        assert!(!request.is_placed() && request.is_active());
        let granted = call::decide(&request, CallCommand::FundsReserved(funds()), at(5));
        assert_eq!(granted.events, vec![CallEvent::FundsReserved { funds: funds(), at: at(5) }]);
        let refused =
            call::decide(&request, CallCommand::ReservationRefused { code: "insufficient_balance".into() }, at(5));
        assert_eq!(refused.events, vec![CallEvent::Rejected { code: "insufficient_balance".into(), at: at(5) }]);
        assert_eq!(
            refused.actions,
            vec![Action::Void { reference: "call/69".into() }],
            "whatever billing holds is released"
        );
        let mut rejected = request.clone();
        rejected.apply(&refused.events[0]);
        assert!(!rejected.is_placed() && rejected.is_ended());
        assert_eq!(call::pending_settlement(&rejected), Some(Action::Void { reference: "call/69".into() }));
        // A carrier that took a dial for it anyway is told to end it (it never rings here).
        let late = call::decide(&rejected, CallCommand::DialAccepted, at(9));
        assert_eq!(late.actions, vec![Action::HangUp]);
    }

    #[test]
    fn a_carrier_report_before_the_dial_is_recorded_as_accepted_proves_the_acceptance() {
        // Given a placed call whose dial the owner has not yet recorded as accepted,
        let initiated = given(&[]);
        // when the carrier already reports the answer,
        let out = call::decide(&initiated, CallCommand::Carrier(CarrierEvent::Answered { sip_dialog: None }), at(3));
        // then the acceptance is recorded first, and the answer counts.
        assert_eq!(
            out.events,
            vec![CallEvent::DialAccepted { at: at(3) }, CallEvent::Answered { sip_dialog: None, at: at(3) }]
        );
        let mut answered = initiated.clone();
        out.events.iter().for_each(|e| answered.apply(e));
        assert_eq!(answered.answered_at, Some(at(3)));
        // The acceptance arriving late changes nothing.
        assert_eq!(call::decide(&answered, CallCommand::DialAccepted, at(4)), Default::default());

        let busy = CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) };
        let out = call::decide(&initiated, CallCommand::Carrier(busy), at(2));
        assert!(matches!(
            out.events.as_slice(),
            [CallEvent::DialAccepted { .. }, CallEvent::Ended { reason: EndReason::Busy, .. }]
        ));
        assert_eq!(out.actions, vec![Action::Void { reference: "call/69".into() }], "never connected: not charged");
    }

    #[test]
    fn a_request_interrupted_before_billing_answered_releases_its_reservation() {
        let out = call::decide(&requested(), CallCommand::Interrupted, at(50));
        assert_eq!(out.events, vec![CallEvent::Rejected { code: "interrupted".into(), at: at(50) }]);
        assert_eq!(out.actions, vec![Action::Void { reference: "call/69".into() }]);
    }

    #[test]
    fn transcript_turns_are_numbered_in_order() {
        let mut commands = answered();
        commands
            .push((1_100, CallCommand::Carrier(CarrierEvent::Turn { speaker: Speaker::Agent, text: "Hello".into() })));
        commands
            .push((1_200, CallCommand::Carrier(CarrierEvent::Turn { speaker: Speaker::Callee, text: "Hi".into() })));
        let state = given(&commands);
        assert_eq!(state.turns, 2);
        let before_answer = given(&[(10, CallCommand::DialAccepted)]);
        let out = call::decide(
            &before_answer,
            CallCommand::Carrier(CarrierEvent::Turn { speaker: Speaker::Agent, text: "x".into() }),
            at(20),
        );
        assert!(matches!(out.events.as_slice(), [CallEvent::CarrierEventIgnored { .. }]));
    }
}

mod outbound {
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
        }
    }

    #[test]
    fn each_rule_of_the_contract_rejects_with_its_reason() {
        let ok = org(&[verified()]);
        let reject = |state: &OrgState, r: OutboundRequest| org::plan_outbound(state, r).unwrap_err();
        assert_eq!(
            reject(&ok, request("+14155550199", AgentChoice::FromNumber)),
            OutboundRejection::NumberNotRegistered
        );
        assert_eq!(reject(&ok, request("+15005550000", AgentChoice::FromNumber)), OutboundRejection::DemoNumber);
        assert_eq!(
            reject(&org(&[]), request("+14155550100", AgentChoice::FromNumber)),
            OutboundRejection::UnverifiedConnection(VoipConnectionId(133))
        );
        let trial = org(&[verified(), OrgEvent::TrialSet { trial: true, at: T }]);
        assert_eq!(reject(&trial, request("+14155550100", AgentChoice::FromNumber)), OutboundRejection::Trial);
        assert_eq!(
            reject(&ok, request("+14155550100", AgentChoice::Saved(AgentId(5)))),
            OutboundRejection::AgentNotFound
        );
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
    fn the_number_default_agent_and_its_hold_time_apply_unless_overridden() {
        let ok = org(&[verified()]);
        let plan = org::plan_outbound(&ok, request("+14155550100", AgentChoice::FromNumber)).unwrap();
        assert_eq!((plan.agent_id, plan.max_hold_seconds), (Some(AgentId(69)), 60));
        let mut r = request("+14155550100", AgentChoice::Inline(AgentSpec::named("Inline".into())));
        r.max_hold_seconds = Some(7);
        let plan = org::plan_outbound(&ok, r).unwrap();
        assert_eq!((plan.agent_id, plan.agent.name.as_str(), plan.max_hold_seconds), (None, "Inline", 7));
    }
}

mod names {
    use domain::fields::{INVISIBLE, refuse_invisible};
    use domain::voip::{SipTrunk, parse_connection_name};

    /// What a name must never hide: controls, bidi overrides and isolates, zero-width
    /// characters, the soft hyphen and the byte order mark.
    const HIDDEN: &[char] = &[
        '\0', '\n', '\r', '\t', '\u{7f}', '\u{9b}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
        '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}',
        '\u{ad}', '\u{61c}',
    ];

    #[test]
    fn every_name_parser_refuses_control_and_format_characters() {
        let parsers: &[(&str, fn(&str) -> Result<String, String>)] = &[
            ("org or key", domain::org::parse_name),
            ("agent", domain::agent::AgentSpec::parse_name),
            ("voip connection", parse_connection_name),
            ("test batch", domain::test_call::parse_batch_name),
        ];
        for (what, parse) in parsers {
            for c in HIDDEN {
                let raw = format!("Acme{c}Corp");
                assert_eq!(parse(&raw), Err(INVISIBLE.to_owned()), "{what} name with U+{:04X}", *c as u32);
            }
            // Letters of every script, accents, emoji and spaces are names.
            for fine in ["Acme Corp", "Café Zürich", "東京 営業部", "שלום", "Support 🤖"] {
                assert_eq!(parse(fine).as_deref(), Ok(fine), "{what}");
            }
        }
    }

    #[test]
    fn a_joiner_inside_an_emoji_sequence_is_refused_too() {
        // ZWJ sequences are the one legitimate use of U+200D in names; refusing them is the
        // price of a rule that a reviewer can hold in one line.
        assert!(refuse_invisible("family 👨\u{200d}👩").is_err());
    }

    #[test]
    fn sip_credentials_and_hosts_refuse_control_characters() {
        let injection = "bob\r\nX-Injected: 1\r\n\r\nSET pwned 1";
        assert_eq!(SipTrunk::parse_credential(injection), Err(domain::fields::CONTROL.to_owned()));
        assert!(SipTrunk::parse_credential("pass\0word").is_err());
        assert!(SipTrunk::parse_host("sip.example.com\r\nX: 1").is_err());
        assert_eq!(SipTrunk::parse_credential("p@ss wörd!").as_deref(), Ok("p@ss wörd!"));
    }
}
