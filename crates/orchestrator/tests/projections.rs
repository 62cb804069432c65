//! The orchestrator's projections, folded from events appended to a real event log.

use domain::agent::AgentSpec;
use domain::ids::{AgentId, OrgId, PhoneNumberId, VoipConnectionId};
use domain::org::{NumberBacking, OrgEvent};
use domain::voip::Provider;
use domain::{E164, Timestamp};
use eventlog::{ExpectedVersion, Log, StreamAppend};
use orchestrator::projection;

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
    assert_eq!(projection::list_agents(&log, ORG).unwrap().len(), 60);
    let agent = projection::read_agent(&log, ORG, AgentId(69 + 64)).unwrap().unwrap();
    assert_eq!(agent.spec.name, "agent 133");
    assert_eq!(projection::read_agent(&log, OrgId(6), AgentId(69)).unwrap(), None, "another org's agent is not found");
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
    assert!(projection::read_connection(&log, ORG, VoipConnectionId(133)).unwrap().unwrap().verified);
    assert_eq!(projection::read_number_by_e164(&log, ORG, &number).unwrap().unwrap().id, PhoneNumberId(197));
    assert!(projection::read_profile(&log, ORG).unwrap().unwrap().trial);
    assert_eq!(projection::list_keys(&log, ORG).unwrap().len(), 1);
    assert_eq!(projection::read_key(&log, domain::ids::ApiKeyId(261)).unwrap().unwrap().org, ORG);

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
    assert_eq!(projection::read_agent(&log, ORG, AgentId(69)).unwrap(), None);
    assert_eq!(projection::list_numbers(&log, ORG).unwrap(), vec![]);
    assert_eq!(projection::read_number_by_e164(&log, ORG, &number).unwrap(), None, "the index follows the delete");
    assert!(projection::list_keys(&log, ORG).unwrap()[0].revoked_at.is_some());
    assert_eq!(log.replay_projections().unwrap(), log.live_projections().unwrap(), "a replay rebuilds them exactly");
}
