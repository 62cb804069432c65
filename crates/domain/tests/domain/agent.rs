//! An agent's runtime settings: parsed by their types, patched field by field, kept through the
//! log (old events fold with the defaults), and guarded by `if_updated_at`.

use domain::agent::settings::{
    self, Applies, Bounded, FeedbackMode, Kind, Language, Languages, SETTINGS, SilenceMaxCheckins, ThinkingLevel,
    TransferDestination, TransferDestinations, TransferNumber, VoicemailAction,
};
use domain::agent::{AgentPatch, AgentSettings, AgentSettingsPatch, AgentSpec, parse_if_updated_at};
use domain::ids::{AgentId, IdSequence};
use domain::org::{self, OrgCommand, OrgError, OrgEvent, OrgState};
use domain::{Ctx, Partitioning, Timestamp};
use serde::Serialize;

use crate::common::{EARLIER, NOW, agent, created, given};

fn when(state: &OrgState, command: OrgCommand) -> Result<Vec<OrgEvent>, OrgError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 5, 0);
    org::decide(state, command, &mut Ctx { now: NOW, ids: &mut ids })
}

fn destination(name: &str, number: &str) -> TransferDestination {
    TransferDestination { name: name.into(), number: TransferNumber::parse(number).unwrap() }
}

#[test]
fn a_patch_of_settings_changes_only_the_settings_it_names() {
    let state = given(&[created(), agent(69)]);
    let settings = AgentSettingsPatch {
        voicemail_action: Some(VoicemailAction::Message),
        max_call_duration_seconds: Some(Some(Bounded::new(600))),
        ..Default::default()
    };
    let patch = AgentPatch { settings, ..Default::default() };
    let then = when(&state, OrgCommand::UpdateAgent { id: AgentId(69), patch, if_updated_at: None }).unwrap();
    let mut expected = AgentSpec::named("agent 69".into());
    expected.settings.voicemail_action = VoicemailAction::Message;
    expected.settings.max_call_duration_seconds = Some(Bounded::new(600));
    assert_eq!(then, vec![OrgEvent::AgentUpdated { id: AgentId(69), spec: expected.clone(), at: NOW }]);

    // A present null clears a nullable setting; an absent one leaves it.
    let state = given(&[created(), agent(69), then[0].clone()]);
    let clear = AgentSettingsPatch { max_call_duration_seconds: Some(None), ..Default::default() };
    let patch = AgentPatch { settings: clear, ..Default::default() };
    let then = when(&state, OrgCommand::UpdateAgent { id: AgentId(69), patch, if_updated_at: None }).unwrap();
    expected.settings.max_call_duration_seconds = None;
    assert_eq!(then, vec![OrgEvent::AgentUpdated { id: AgentId(69), spec: expected, at: NOW }]);
}

#[test]
fn an_update_made_on_a_stale_read_is_refused() {
    let state = given(&[created(), agent(69)]);
    let patch = || AgentPatch { name: Some("Sales".into()), ..Default::default() };
    // The agent was last updated at EARLIER (its creation).
    let stale = Timestamp::from_millis(EARLIER.as_millis() - 1);
    let refused = when(&state, OrgCommand::UpdateAgent { id: AgentId(69), patch: patch(), if_updated_at: Some(stale) });
    assert_eq!(refused, Err(OrgError::AgentChanged { updated_at: EARLIER }));
    let then = when(&state, OrgCommand::UpdateAgent { id: AgentId(69), patch: patch(), if_updated_at: Some(EARLIER) })
        .unwrap();
    assert!(matches!(then.as_slice(), [OrgEvent::AgentUpdated { .. }]), "{then:?}");
}

#[test]
fn if_updated_at_reads_the_times_the_api_writes_and_the_client_sends_back() {
    let at = Timestamp::from_millis(1_776_709_450_113);
    assert_eq!(parse_if_updated_at(&at.to_rfc3339()), Ok(at));
    // Python's `datetime.isoformat()` of the parsed time.
    assert_eq!(parse_if_updated_at("2026-04-20T18:24:10.113000+00:00"), Ok(at));
    assert!(parse_if_updated_at("yesterday").is_err());
}

/// An agent as it was recorded before it had settings.
#[derive(Serialize)]
struct SpecBeforeSettings {
    name: String,
    prompt: String,
    voice: String,
    greeting: String,
    max_hold_seconds: u32,
    tools: Vec<()>,
}

#[test]
fn an_agent_recorded_before_settings_existed_folds_with_the_defaults() {
    let old = SpecBeforeSettings {
        name: "Old".into(),
        prompt: "Hi.".into(),
        voice: "alloy".into(),
        greeting: String::new(),
        max_hold_seconds: 60,
        tools: Vec::new(),
    };
    let bytes = rmp_serde::to_vec_named(&old).unwrap();
    let spec: AgentSpec = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(spec.settings, AgentSettings::default());
    assert_eq!(spec.name, "Old");
}

#[test]
fn settings_survive_the_log_and_a_bad_stored_value_is_refused_on_the_way_in() {
    let mut settings = AgentSettings::default();
    settings.transfer_destinations =
        TransferDestinations::try_from(vec![destination("Billing", "+14155550100"), destination("Owner", "{{owner}}")])
            .unwrap();
    settings.additional_languages = Languages::try_from(vec![Language::parse("es").unwrap()]).unwrap();
    settings.thinking_level = ThinkingLevel::Extra;
    settings.steps = settings::FreeForm::parse(r#"[{"name":"greet"}]"#).unwrap();
    let bytes = rmp_serde::to_vec_named(&settings).unwrap();
    assert_eq!(rmp_serde::from_slice::<AgentSettings>(&bytes).unwrap(), settings);

    #[derive(Serialize)]
    struct Tampered {
        silence_max_checkins: i64,
    }
    let bytes = rmp_serde::to_vec_named(&Tampered { silence_max_checkins: 1_000 }).unwrap();
    let err = rmp_serde::from_slice::<AgentSettings>(&bytes).unwrap_err();
    assert!(err.to_string().contains("less than or equal to 20"), "{err}");
}

#[test]
fn a_patch_carries_a_present_null_through_the_wire_encoding() {
    let patch = AgentSettingsPatch { background_track: Some(None), ..Default::default() };
    let bytes = rmp_serde::to_vec_named(&patch).unwrap();
    assert_eq!(rmp_serde::from_slice::<AgentSettingsPatch>(&bytes).unwrap(), patch);
    let empty = rmp_serde::to_vec_named(&AgentSettingsPatch::default()).unwrap();
    assert_eq!(rmp_serde::from_slice::<AgentSettingsPatch>(&empty).unwrap(), AgentSettingsPatch::default());
}

#[test]
fn values_are_parsed_by_their_types() {
    assert!(SilenceMaxCheckins::parse(20).is_ok());
    assert_eq!(SilenceMaxCheckins::parse(21), Err("Ensure this value is less than or equal to 20.".into()));
    assert_eq!(SilenceMaxCheckins::parse(-1), Err("Ensure this value is greater than or equal to 0.".into()));
    assert_eq!(VoicemailAction::parse("shout"), Err("\"shout\" is not a valid choice.".into()));
    for ok in ["en", "es", "pt-BR", "zh-Hant-TW"] {
        assert!(Language::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "e", "english", "en_US", "en-"] {
        assert!(Language::parse(bad).is_err(), "{bad}");
    }
    let twice = vec![Language::parse("es").unwrap(), Language::parse("es").unwrap()];
    assert!(Languages::try_from(twice).is_err());
    // Ten digits are a US number; a variable is one {{name}}.
    assert_eq!(TransferNumber::parse("4155550100").unwrap().as_string(), "+14155550100");
    assert_eq!(TransferNumber::parse("{{ manager }}").unwrap().as_string(), "{{manager}}");
    assert!(TransferNumber::parse("{{a}} {{b}}").is_err());
    assert!(TransferNumber::parse("call me").is_err());
    let same_name = vec![destination("Billing", "+14155550100"), destination("billing", "+14155550101")];
    assert!(TransferDestinations::try_from(same_name).is_err());
}

#[test]
fn the_settings_table_names_each_setting_once_and_agents_take_only_the_contracts_choices() {
    let mut names: Vec<&str> = SETTINGS.iter().map(|(n, ..)| *n).collect();
    names.sort_unstable();
    assert!(names.windows(2).all(|w| w[0] != w[1]));
    // Where an agent takes fewer choices than the type has (an inline config takes them all),
    // each of an agent's is one of the type's.
    let agent_choices = |field: &str| match settings::shape_of(field) {
        Some((shape, Applies::Both)) => match shape.kind {
            Kind::Choice(values) => values,
            _ => panic!("{field} is a choice"),
        },
        other => panic!("{field}: {other:?}"),
    };
    assert_eq!(agent_choices("thinking_level"), &["base", "extra"]);
    assert!(agent_choices("thinking_level").iter().all(|v| ThinkingLevel::VALUES.contains(v)));
    assert_eq!(agent_choices("acknowledgement_feedback_mode"), &["acknowledgement", "tick"]);
    assert!(agent_choices("acknowledgement_feedback_mode").iter().all(|v| FeedbackMode::VALUES.contains(v)));
}
