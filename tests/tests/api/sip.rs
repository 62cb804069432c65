//! Calls over SIP trunks, against SIPp playing the trunk (`tests/sipp/`): digest
//! authentication, ringing, answer, either side hanging up, busy, a CANCEL while it rings, and
//! a trunk that went away.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::{Caller, Server, Sipp, wait_for};

/// The engine gives up ringing after 800 ms, so a CANCEL comes quickly; a trunk that does not
/// answer an INVITE at all is given up on after a second.
const ARGS: &[&str] = &["--ring-timeout-ms", "800", "--sip-answer-timeout-ms", "1000"];
const SETTLE: Duration = Duration::from_secs(15);
const TO: &str = "+14155550123";

/// An org with `cents` of funds that calls from `from` over a connection to `trunk`.
async fn caller(server: &Server, trunk: &Sipp, cents: i64, from: &str) -> Caller {
    let org = server.create_org("Acme").await;
    server.ready_to_call_over(org, cents, from, trunk.connection()).await
}

async fn place(server: &Server, c: &Caller) -> u64 {
    let body = json!({ "from_number": c.number, "to_number": TO });
    server.post("/v1/call", &c.org.key, body).await.expect(201)["call_id"].as_u64().unwrap()
}

/// Waits until the call has ended and billing has confirmed its cost.
async fn finished(server: &Server, key: &str, id: u64) -> Value {
    wait_for(server, &format!("/v1/calls/{id}"), key, SETTLE, |c| {
        c["status"] != "in_progress" && !c["cost_cents"].is_null()
    })
    .await
}

/// Places a call, waits for the answer, hangs up, and returns the call once it is billed.
async fn answered_then_hung_up(server: &Server, c: &Caller) -> Value {
    let id = place(server, c).await;
    let path = format!("/v1/calls/{id}");
    wait_for(server, &path, &c.org.key, SETTLE, |call| !call["answered_at"].is_null()).await;
    server.post(&format!("{path}/hangup"), &c.org.key, json!({})).await.expect(200);
    let call = finished(server, &c.org.key, id).await;
    assert_eq!(outcome(&call), ("completed", "agent_hangup"));
    call
}

fn outcome(call: &Value) -> (&str, &str) {
    (call["status"].as_str().unwrap(), call["end_reason"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_a_sip_trunk_authenticates_is_answered_and_hung_up_with_a_bye() {
    let server = Server::start_with(ARGS);
    let trunk = Sipp::start("auth_then_answer.xml");
    let c = caller(&server, &trunk, 500, "+14155550100").await;
    // SIPp answers only an INVITE whose digest proves alice's password.
    let call = answered_then_hung_up(&server, &c).await;
    assert!(call["cost_cents"].as_i64().unwrap() >= 1, "{call}");
    let path = format!("/v1/calls/{}", call["id"]);
    let trace = trunk
        .wait_for_messages(&[
            "INVITE sip:+14155550123@127.0.0.1",
            "SIP/2.0 401",
            "ACK sip:",
            "INVITE sip:",
            "SIP/2.0 200",
            "ACK sip:",
            "BYE sip:",
            "SIP/2.0 200",
        ])
        .await;
    assert!(trace.contains("Authorization: Digest username=\"alice\""), "{trace}");
    assert!(trace.contains("From: <sip:+14155550100@127.0.0.1>"), "the caller id is the from number: {trace}");
    let events = server.get(&format!("{path}/events"), &c.org.key).await.expect(200);
    let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&types[..4], ["call_requested", "funds_reserved", "dial_accepted", "answered"], "{types:?}");
    assert_eq!(&types[types.len() - 2..], ["call_ended", "charge_settled"], "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callee_can_be_busy_or_hang_up_and_a_call_that_rings_too_long_is_canceled() {
    let server = Server::start_with(ARGS);

    let busy = Sipp::start("busy.xml");
    let c = caller(&server, &busy, 500, "+14155550101").await;
    let call = finished(&server, &c.org.key, place(&server, &c).await).await;
    assert_eq!(outcome(&call), ("failed", "busy"));
    assert_eq!(call["cost_cents"], 0, "a call that never connected is not charged");
    busy.wait_for_messages(&["SIP/2.0 486", "ACK sip:"]).await;

    let hangs_up = Sipp::start("callee_hangs_up.xml");
    let c = caller(&server, &hangs_up, 500, "+14155550102").await;
    let call = finished(&server, &c.org.key, place(&server, &c).await).await;
    assert_eq!(outcome(&call), ("completed", "callee_hangup"));
    assert!(call["duration_seconds"].as_u64().unwrap() >= 1 && call["cost_cents"].as_i64().unwrap() >= 1, "{call}");
    hangs_up.wait_for_messages(&["BYE ", "SIP/2.0 200"]).await;

    let rings = Sipp::start("rings_until_canceled.xml");
    let c = caller(&server, &rings, 500, "+14155550103").await;
    let call = finished(&server, &c.org.key, place(&server, &c).await).await;
    assert_eq!(outcome(&call), ("failed", "no_answer"));
    assert_eq!(call["cost_cents"], 0);
    rings.wait_for_messages(&["SIP/2.0 180", "CANCEL sip:", "SIP/2.0 200", "SIP/2.0 487", "ACK sip:"]).await;
    let balance = server.get("/v1/billing", &c.org.key).await.expect(200);
    assert_eq!((balance["balance_cents"].as_i64(), balance["reserved_cents"].as_i64()), (Some(500), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_trunk_that_went_away_or_went_silent_answers_502_and_charges_nothing() {
    let server = Server::start_with(ARGS);
    let mut trunk = Sipp::start("uas");
    let c = caller(&server, &trunk, 500, "+14155550100").await;
    trunk.stop();
    let r = server.post("/v1/call", &c.org.key, json!({ "from_number": c.number, "to_number": TO })).await;
    assert_eq!((r.status, r.body["code"].as_str()), (502, Some("carrier_error")), "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("unreachable"), "{}", r.body);

    // Something holds the trunk's port again, and never answers.
    let _silent = std::net::UdpSocket::bind(("127.0.0.1", trunk.port)).unwrap();
    let r = server.post("/v1/call", &c.org.key, json!({ "from_number": c.number, "to_number": TO })).await;
    assert_eq!((r.status, r.body["code"].as_str()), (502, Some("carrier_error")), "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("No answer from the SIP trunk within 1 s"), "{}", r.body);
    wait_for(&server, "/v1/billing", &c.org.key, SETTLE, |b| b["balance_cents"] == 500 && b["reserved_cents"] == 0)
        .await;
    let calls = server.get("/v1/calls", &c.org.key).await.expect(200);
    assert!(
        calls["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "failed" && c["end_reason"] == "carrier_error"),
        "{calls}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_an_answered_sip_call_is_ended_at_the_far_end_with_the_recorded_dialog() {
    let mut server = Server::start_with(ARGS);
    // Answers, then waits for a BYE.
    let trunk = Sipp::start("uas");
    let c = caller(&server, &trunk, 500, "+14155550100").await;
    let id = place(&server, &c).await;
    let path = format!("/v1/calls/{id}");
    wait_for(&server, &path, &c.org.key, SETTLE, |call| !call["answered_at"].is_null()).await;
    // The dialog is on record with the answer.
    let events = server.get(&format!("{path}/events"), &c.org.key).await.expect(200);
    let answered = events.as_array().unwrap().iter().find(|e| e["type"] == "answered").unwrap().clone();
    let sip_call_id = answered["data"]["sip_dialog"]["call_id"].as_str().unwrap().to_owned();
    assert!(answered["data"]["sip_dialog"]["remote_tag"].is_string(), "{answered}");
    // A write acknowledged after the answer was recorded is durable, and sled makes durable
    // everything written before it: so is the answer.
    server.post("/v1/agents", &c.org.key, json!({ "name": "Sync" })).await.expect(201);

    server.kill();
    server.restart();
    let call = finished(&server, &c.org.key, id).await;
    assert_eq!(outcome(&call), ("completed", "carrier_error"));
    let trace = trunk.wait_for_messages(&["BYE sip:", "SIP/2.0 200"]).await;
    let bye = &trace[trace.rfind("\nBYE sip:").unwrap()..];
    assert!(bye.contains(&format!("Call-ID: {sip_call_id}")), "the BYE ends the recorded dialog: {bye}");
    switchboard_tests::audit(&{
        server.stop();
        server
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_a_tcp_trunk_authenticates_and_the_callee_hangs_up() {
    let server = Server::start_with(ARGS);
    let trunk = Sipp::start_over("auth_then_answer.xml", "tcp");
    let c = caller(&server, &trunk, 500, "+14155550100").await;
    answered_then_hung_up(&server, &c).await;
    let trace =
        trunk.wait_for_messages(&["SIP/2.0 401", "INVITE sip:", "SIP/2.0 200", "BYE sip:", "SIP/2.0 200"]).await;
    assert!(trace.contains("Via: SIP/2.0/TCP 127.0.0.1:"), "{trace}");

    let hangs_up = Sipp::start_over("callee_hangs_up.xml", "tcp");
    let c = caller(&server, &hangs_up, 500, "+14155550101").await;
    let call = finished(&server, &c.org.key, place(&server, &c).await).await;
    assert_eq!(outcome(&call), ("completed", "callee_hangup"));
}

/// Hangs up the call being placed as soon as the API shows it, while its `POST /v1/call` still
/// waits for the trunk; returns that POST's answer and the hang-up's.
async fn hang_up_while_placing(server: &Server, c: &Caller) -> (switchboard_tests::Response, Value) {
    let placing = server.post("/v1/call", &c.org.key, json!({ "from_number": c.number, "to_number": TO }));
    let hanging_up = async {
        let calls = wait_for(server, "/v1/calls", &c.org.key, SETTLE, |l| l["results"][0].is_object()).await;
        let call = &calls["results"][0];
        assert!(call["dialed_at"].is_null(), "the trunk has not taken the call yet: {call}");
        server.post(&format!("/v1/calls/{}/hangup", call["id"]), &c.org.key, json!({})).await.expect(200)
    };
    tokio::join!(placing, hanging_up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_hung_up_before_the_trunk_took_it_is_torn_down_there_whatever_the_trunk_answers() {
    // The trunk's first answer comes after two seconds; the engine waits up to eight for it.
    let server = Server::start_with(&["--sip-answer-timeout-ms", "8000"]);

    // A trunk that answers at once with 200 after its silence: the engine ACKs, then BYEs.
    let answers = Sipp::start("answers_late.xml");
    let c = caller(&server, &answers, 500, "+14155550104").await;
    let (placed, hung_up) = hang_up_while_placing(&server, &c).await;
    assert_eq!((hung_up["status"].as_str(), hung_up["end_reason"].as_str()), (Some("failed"), Some("canceled")));
    // The placement answers the call as its org left it (README: "A call hung up while it is placed").
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["call_id"].as_u64(), hung_up["id"].as_u64(), "{}", placed.body);
    answers.wait_for_messages(&["INVITE sip:", "SIP/2.0 200", "ACK sip:", "BYE sip:", "SIP/2.0 200"]).await;
    let call = finished(&server, &c.org.key, hung_up["id"].as_u64().unwrap()).await;
    assert_eq!((outcome(&call), call["cost_cents"].as_i64()), (("failed", "canceled"), Some(0)), "{call}");

    // A trunk that rings after its silence: the engine CANCELs.
    let rings = Sipp::start("rings_late.xml");
    let c = caller(&server, &rings, 500, "+14155550105").await;
    let (placed, hung_up) = hang_up_while_placing(&server, &c).await;
    assert_eq!((placed.status, placed.body["call_id"].as_u64()), (201, hung_up["id"].as_u64()), "{}", placed.body);
    rings
        .wait_for_messages(&["INVITE sip:", "SIP/2.0 180", "CANCEL sip:", "SIP/2.0 200", "SIP/2.0 487", "ACK sip:"])
        .await;
    let call = finished(&server, &c.org.key, hung_up["id"].as_u64().unwrap()).await;
    assert_eq!(outcome(&call), ("failed", "canceled"));
    let balance = server.get("/v1/billing", &c.org.key).await.expect(200);
    assert_eq!((balance["balance_cents"].as_i64(), balance["reserved_cents"].as_i64()), (Some(500), Some(0)));
}
