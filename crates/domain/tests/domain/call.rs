//! A call's state machine: placement, the carrier's reports, timers, the end and its billing.

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
        context: Default::default(),
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
    assert_eq!(call::decide(&ended, CallCommand::TimerFired(Timer::MaxDuration), at(9_999_999)), Default::default());
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
    commands.push((1_100, CallCommand::Carrier(CarrierEvent::Turn { speaker: Speaker::Agent, text: "Hello".into() })));
    commands.push((1_200, CallCommand::Carrier(CarrierEvent::Turn { speaker: Speaker::Callee, text: "Hi".into() })));
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

#[test]
fn a_call_records_when_it_was_billed_and_the_seconds_billed() {
    let mut commands = answered();
    commands
        .push((62_500, CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::AgentHangup, sip_code: None })));
    let ended = given(&commands);
    assert_eq!((ended.billed_at, ended.billed_seconds()), (None, None), "billing has not confirmed yet");
    assert_eq!(ended.dial_state(), Some(call::DialState::Answered));
    let settled =
        given(&[commands.clone(), vec![(63_000, CallCommand::RecordSettlement { charged_cents: 11 })]].concat());
    assert_eq!((settled.billed_at, settled.billed_seconds()), (Some(at(63_000)), Some(62)));

    // Unanswered: its reservation voided, nothing billed, and its dial failed.
    let busy = given(&[
        (10, CallCommand::DialAccepted),
        (20, CallCommand::Carrier(CarrierEvent::Ended { reason: EndReason::Busy, sip_code: Some(486) })),
        (30, CallCommand::RecordVoid),
    ]);
    assert_eq!((busy.billed_at, busy.billed_seconds()), (Some(at(30)), Some(0)));
    assert_eq!(busy.dial_state(), Some(call::DialState::Failed));
    assert_eq!(given(&[]).dial_state(), Some(call::DialState::Pending));
    assert_eq!(given(&[(10, CallCommand::DialAccepted)]).dial_state(), Some(call::DialState::Submitted));
}

#[test]
fn variables_are_a_bounded_object_and_the_prompt_placeholders_they_leave_are_unresolved() {
    let object = |v: serde_json::Value| v.as_object().unwrap().clone();
    let vars = call::Variables::parse(object(serde_json::json!({ "name": "Ada", "tier": 3 }))).unwrap();
    assert_eq!(vars.unresolved_in("Hi {{name}}, order {{ order_id }} ({{order_id}}), {{name}}."), vec!["order_id"]);
    assert_eq!(vars.unresolved_in("No placeholders, {{ unclosed"), Vec::<String>::new());
    assert_eq!(call::Variables::parse_json(&vars.to_json()), Ok(vars));
    assert_eq!(call::Variables::parse_json(""), Ok(call::Variables::default()));
    assert!(call::Variables::parse_json("[1]").is_err());

    let many: serde_json::Map<_, _> = (0..=call::MAX_VARIABLES).map(|i| (format!("v{i}"), 1.into())).collect();
    assert!(call::Variables::parse(many).is_err());
    assert!(call::Variables::parse(object(serde_json::json!({ "": 1 }))).is_err());
    let big = "x".repeat(call::MAX_VARIABLES_BYTES);
    assert!(call::Variables::parse(object(serde_json::json!({ "note": big }))).is_err());
}

#[test]
fn languages_are_tags_and_time_bounds_are_dates_or_datetimes() {
    for tag in ["en", "en-US", "pt-BR", "zh-Hant-TW", "yue"] {
        assert_eq!(call::parse_locale(tag).as_deref(), Ok(tag));
    }
    for junk in ["", "e", "english", "en_US", "en-", "en-toolongpart", "12"] {
        assert!(call::parse_locale(junk).is_err(), "{junk}");
    }
    let day = 1_776_643_200_000; // 2026-04-20T00:00:00Z
    assert_eq!(call::parse_time_bound("2026-04-20", false), Ok(Timestamp(day)));
    assert_eq!(call::parse_time_bound("2026-04-20", true), Ok(Timestamp(day + 86_400_000 - 1)), "the whole day");
    assert_eq!(call::parse_time_bound("2026-04-20T18:24:10.113Z", false), Ok(Timestamp(1_776_709_450_113)));
    assert_eq!(call::parse_time_bound("2026-04-20T20:24:10.113+02:00", true), Ok(Timestamp(1_776_709_450_113)));
    for junk in ["yesterday", "2026-02-30", "2026-04-20T18:24:10", "1776709450"] {
        assert!(call::parse_time_bound(junk, false).is_err(), "{junk}");
    }
}
