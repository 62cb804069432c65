//! The orchestrator's projections, folded from events appended to a real event log.

use domain::agent::AgentSpec;
use domain::ids::{AgentId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{NumberBacking, OrgEvent};
use domain::voip::Provider;
use domain::{E164, Timestamp};
use eventlog::{ExpectedVersion, Log, StreamAppend};
use orchestrator::org_projection;

const AT: Timestamp = Timestamp(1_776_709_450_113);
const ORG: OrgId = OrgId(5);

fn open() -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let store = eventlog::Store::open(dir.path(), &eventlog::Options::default()).unwrap();
    let log = store.log(orchestrator::NAMESPACE, 5, orchestrator::projections()).unwrap();
    (dir, log)
}

fn record(log: &Log, events: &[OrgEvent]) {
    let append = StreamAppend {
        stream: orchestrator::streams::org(ORG),
        expected: ExpectedVersion::Any,
        events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
    };
    drop(log.append(vec![append]).unwrap());
}

fn large_agent(id: u64) -> OrgEvent {
    let mut spec = AgentSpec::named(format!("agent {id}"));
    spec.prompt = "\u{20ac}".repeat(20_000);
    OrgEvent::AgentCreated { id: AgentId(id), spec, at: AT }
}

/// The largest value the org configuration projection holds.
fn largest_value(log: &Log) -> usize {
    log.live_projections()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.windows(10).any(|w| w == b"org_config"))
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
}

#[test]
fn each_agent_is_a_value_of_its_own() {
    let (_dir, log) = open();
    record(&log, &[OrgEvent::OrgCreated { org_id: ORG, name: "Acme".into(), at: AT }]);
    record(&log, &[large_agent(69)]);
    let one = largest_value(&log);
    for id in 1..60 {
        record(&log, &[large_agent(69 + id * 64)]);
    }
    // Were the configuration one value, 60 agents of 60 KB would make it 3.6 MB, rewritten
    // whole on every event.
    // (A few bytes more for a longer name.)
    let largest = largest_value(&log);
    assert!(largest <= one + 16, "no value grows with the number of agents: {largest} > {one}");
    assert_eq!(org_projection::list_agents(&log, ORG).unwrap().len(), 60);
    let agent = org_projection::read_agent(&log, ORG, AgentId(69 + 64)).unwrap().unwrap();
    assert_eq!(agent.spec.name, "agent 133");
    assert_eq!(
        org_projection::read_agent(&log, OrgId(6), AgentId(69)).unwrap(),
        None,
        "another org's agent is not found"
    );
}

#[test]
fn each_resource_follows_its_events() {
    let (_dir, log) = open();
    let number = E164::parse("+14155550100").unwrap();
    record(
        &log,
        &[
            OrgEvent::OrgCreated { org_id: ORG, name: "Acme".into(), at: AT },
            OrgEvent::AgentCreated { id: AgentId(69), spec: AgentSpec::named("a".into()), at: AT },
            OrgEvent::VoipConnectionCreated {
                id: VoipConnectionId(133),
                name: String::new(),
                provider: Provider::Sim,
                at: AT,
            },
            OrgEvent::VoipConnectionVerified { id: VoipConnectionId(133), error: None, at: AT },
            OrgEvent::PhoneNumberCreated {
                id: PhoneNumberId(197),
                number: number.clone(),
                backing: NumberBacking::Voip(VoipConnectionId(133)),
                inbound_agent_id: Some(AgentId(69)),
                outbound_agent_id: None,
                at: AT,
            },
            OrgEvent::ApiKeyCreated {
                id: domain::ids::ApiKeyId(261),
                name: "k".into(),
                secret_hash: vec![1; 32],
                at: AT,
            },
            OrgEvent::TrialSet { trial: true, at: AT },
        ],
    );
    assert!(org_projection::read_connection(&log, ORG, VoipConnectionId(133)).unwrap().unwrap().verified);
    assert_eq!(org_projection::read_number_by_e164(&log, ORG, &number).unwrap().unwrap().id, PhoneNumberId(197));
    assert!(org_projection::read_profile(&log, ORG).unwrap().unwrap().trial);
    assert_eq!(org_projection::list_keys(&log, ORG).unwrap().len(), 1);
    assert_eq!(org_projection::read_key(&log, domain::ids::ApiKeyId(261)).unwrap().unwrap().org, ORG);

    record(
        &log,
        &[
            OrgEvent::PhoneNumberAgentsChanged {
                id: PhoneNumberId(197),
                inbound_agent_id: None,
                outbound_agent_id: None,
                at: AT,
            },
            OrgEvent::AgentDeleted { id: AgentId(69), at: AT },
            OrgEvent::PhoneNumberDeleted { id: PhoneNumberId(197), at: AT },
            OrgEvent::ApiKeyRevoked { id: domain::ids::ApiKeyId(261), at: AT },
        ],
    );
    assert_eq!(org_projection::read_agent(&log, ORG, AgentId(69)).unwrap(), None);
    assert_eq!(org_projection::list_numbers(&log, ORG).unwrap(), vec![]);
    assert_eq!(org_projection::read_number_by_e164(&log, ORG, &number).unwrap(), None, "the index follows the delete");
    assert!(org_projection::list_keys(&log, ORG).unwrap()[0].revoked_at.is_some());
    assert_eq!(log.replay_projections().unwrap(), log.live_projections().unwrap(), "a replay rebuilds them exactly");
}

mod calls {
    use domain::E164;
    use domain::agent::AgentSpec;
    use domain::call::{CallEvent, CallSetup, Direction, EndReason, Funds, Status};
    use domain::ids::{AgentId, CallId, OrgId};
    use eventlog::{ExpectedVersion, Log, StreamAppend};
    use orchestrator::calls_projection::{self, CallFilter};

    use super::{AT, ORG, open};

    fn setup(id: u64, direction: Direction, agent: Option<u64>) -> CallSetup {
        CallSetup {
            id: CallId(id),
            org: ORG,
            direction,
            from: E164::parse("+14155550100").unwrap(),
            to: E164::parse("+14155550123").unwrap(),
            agent_id: agent.map(AgentId),
            voip_connection_id: None,
            agent: AgentSpec::named("a".into()),
            max_hold_seconds: 60,
            reservation_reference: Some(format!("call/{id}")),
            test_run_id: None,
            ring_timeout_ms: 30_000,
            max_duration_seconds: 3_600,
            scenario_prompt: None,
            placement_timeout_ms: domain::call::DEFAULT_PLACEMENT_TIMEOUT_MS,
            context: Default::default(),
        }
    }

    fn record(log: &Log, id: u64, events: &[CallEvent]) {
        let append = StreamAppend {
            stream: orchestrator::streams::call(CallId(id)),
            expected: ExpectedVersion::Any,
            events: events.iter().map(|e| actor::encode(e.event_type(), e)).collect(),
        };
        drop(log.append(vec![append]).unwrap());
    }

    fn placed(log: &Log, id: u64, direction: Direction, agent: Option<u64>) {
        let funds = Funds { granted_cents: 100, rate_cents_per_minute: 10, charge_multiplier: 1 };
        record(
            log,
            id,
            &[
                CallEvent::Requested { setup: Box::new(setup(id, direction, agent)), at: AT },
                CallEvent::FundsReserved { funds, at: AT },
            ],
        );
    }

    fn ended(log: &Log, id: u64, status: Status) {
        let reason = if status == Status::Completed { EndReason::AgentHangup } else { EndReason::Busy };
        record(log, id, &[CallEvent::Ended { status, reason, sip_code: None, duration_seconds: 1, at: AT }]);
    }

    fn listed(log: &Log, filter: CallFilter) -> (u64, Vec<u64>) {
        let page = calls_projection::page(log, ORG, &filter, 0, 100).unwrap();
        (calls_projection::count(log, ORG, &filter).unwrap(), page.into_iter().map(|c| c.0).collect())
    }

    #[test]
    fn every_list_counts_and_pages_its_calls_newest_first() {
        let (_dir, log) = open();
        let all = CallFilter::default();
        let of = |status, direction, agent: Option<u64>| CallFilter { status, direction, agent_id: agent.map(AgentId) };
        placed(&log, 69, Direction::Outbound, Some(7));
        placed(&log, 133, Direction::Outbound, None);
        placed(&log, 197, Direction::Inbound, Some(7));
        // Requested but never granted funds: not a call the API shows.
        record(&log, 261, &[CallEvent::Requested { setup: Box::new(setup(261, Direction::Outbound, None)), at: AT }]);
        assert_eq!(listed(&log, all), (3, vec![197, 133, 69]));
        assert_eq!(listed(&log, of(Some(Status::InProgress), None, None)), (3, vec![197, 133, 69]));
        assert_eq!(listed(&log, of(None, Some(Direction::Outbound), None)), (2, vec![133, 69]));
        assert_eq!(listed(&log, of(None, None, Some(7))), (2, vec![197, 69]));
        assert_eq!(listed(&log, of(None, Some(Direction::Inbound), Some(7))), (1, vec![197]));

        // A call's status changes over its life: its entries move with it.
        ended(&log, 69, Status::Completed);
        ended(&log, 133, Status::Failed);
        assert_eq!(listed(&log, all), (3, vec![197, 133, 69]));
        assert_eq!(listed(&log, of(Some(Status::InProgress), None, None)), (1, vec![197]));
        assert_eq!(listed(&log, of(Some(Status::Completed), None, Some(7))), (1, vec![69]));
        assert_eq!(listed(&log, of(Some(Status::Failed), Some(Direction::Outbound), None)), (1, vec![133]));
        assert_eq!(listed(&log, of(Some(Status::Failed), None, Some(7))), (0, vec![]));
        assert_eq!(listed(&log, of(None, None, Some(8))), (0, vec![]));
        assert_eq!(calls_projection::count(&log, OrgId(6), &all).unwrap(), 0, "another org's lists are its own");

        let page: Vec<u64> = calls_projection::page(&log, ORG, &all, 1, 1).unwrap().into_iter().map(|c| c.0).collect();
        assert_eq!(page, vec![133], "offset and limit");
        assert_eq!(
            log.replay_projections().unwrap(),
            log.live_projections().unwrap(),
            "a replay rebuilds them exactly"
        );
    }
}
