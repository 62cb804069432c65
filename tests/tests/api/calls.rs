//! Outbound calls end to end, against the simulated carrier with short timings.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::{ADMIN_TOKEN, Caller, Org, Server, wait_for};

use crate::is_timestamp;

/// Rings 100 ms, talks 600 ms, gives up ringing after 400 ms.
const FAST: &[&str] =
    &["--sim-ring-ms", "100", "--sim-talk-ms", "600", "--ring-timeout-ms", "400", "--max-call-seconds", "30"];
const SETTLE: Duration = Duration::from_secs(15);

const FROM: &str = "+14155550100";
const TO: &str = "+14155550123";

/// An org ready to call from `FROM`, with `cents` of funds.
async fn caller(server: &Server, cents: i64) -> Caller {
    server.org_ready_to_call("Acme", cents, FROM).await
}

async fn credit(server: &Server, org: &Org, cents: i64, reference: &str) {
    let path = format!("/admin/v1/orgs/{}/credits", org.id);
    server.post(&path, ADMIN_TOKEN, json!({ "amount_cents": cents, "reference": reference })).await.expect(201);
}

async fn place(server: &Server, key: &str, to: &str) -> u64 {
    let r = server.post("/v1/call", key, json!({ "from_number": FROM, "to_number": to })).await.expect(201);
    assert_eq!(r["status"], "initiated");
    r["call_id"].as_u64().unwrap()
}

/// Waits until the call has ended and billing has confirmed its cost.
async fn finished(server: &Server, key: &str, id: u64) -> Value {
    wait_for(server, &format!("/v1/calls/{id}"), key, SETTLE, |c| {
        c["status"] != "in_progress" && !c["billing_total_cents"].is_null()
    })
    .await
}

async fn balance(server: &Server, key: &str) -> Value {
    server.get("/v1/billing", key).await.expect(200)
}

#[tokio::test]
async fn a_call_rings_talks_ends_and_is_charged_per_second() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 500).await;
    let id = place(&server, &c.org.key, TO).await;

    // A read right after the 201 sees the call.
    let early = server.get(&format!("/v1/calls/{id}"), &c.org.key).await.expect(200);
    assert_eq!((early["status"].as_str(), early["direction"].as_str()), (Some("in_progress"), Some("outbound")));
    assert_eq!((early["from_number"].as_str(), early["to_number"].as_str()), (Some(FROM), Some(TO)));
    assert_eq!(early["agent_id"], c.agent_id);
    assert!(is_timestamp(&early["created_at"]) && is_timestamp(&early["start_time"]));

    let call = finished(&server, &c.org.key, id).await;
    assert_eq!(
        (call["status"].as_str(), call["end_reason"].as_str()),
        (Some("completed"), Some("agent_hangup")),
        "{call}"
    );
    assert!(is_timestamp(&call["sip_answered_at"]) && is_timestamp(&call["end_time"]));
    let seconds = call["duration_seconds"].as_i64().unwrap();
    assert!((1..=2).contains(&seconds), "{call}");
    // 10 cents a minute, per second, rounded up per call.
    let cost = (seconds * 10 + 59) / 60;
    assert_eq!(call["billing_total_cents"].as_i64(), Some(cost));

    let b = balance(&server, &c.org.key).await;
    assert_eq!((b["balance_cents"].as_i64(), b["reserved_cents"].as_i64()), (Some(500 - cost), Some(0)));
    let txs = server.get("/v1/billing/transactions?limit=200", &c.org.key).await.expect(200);
    let charge = &txs["results"][0];
    assert_eq!(
        (charge["kind"].as_str(), charge["amount_cents"].as_i64(), charge["call_id"].as_u64()),
        (Some("call_usage"), Some(-cost), Some(id))
    );

    let transcript = server.get(&format!("/v1/calls/{id}/transcript"), &c.org.key).await.expect(200);
    let turns = transcript["transcripts"].as_array().unwrap();
    assert_eq!(turns.len(), 5);
    assert_eq!(turns[0]["role"], "agent");
    assert_eq!(turns[1]["role"], "user");
    assert_eq!(turns[2]["content"], "Of course. You handle refunds.");

    let events = server.get(&format!("/v1/calls/{id}/history"), &c.org.key).await.expect(200);
    let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&types[..5], ["call_requested", "funds_reserved", "dial_accepted", "ringing", "answered"]);
    assert_eq!(&types[types.len() - 2..], ["call_ended", "charge_settled"]);
    let versions: Vec<u64> = events.as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    assert_eq!(events[0]["data"]["setup"]["agent"]["name"], "Support");
}

#[tokio::test]
async fn every_error_row_of_the_contract() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 0).await;
    let k = &c.org.key;
    let call = |body: Value| server.post("/v1/call", k, body);

    let r = call(json!({ "from_number": FROM })).await.expect(400);
    assert_eq!(r["detail"], "from_number and to_number are required");
    let r = call(json!({ "from_number": FROM, "to_number": TO, "agent_id": c.agent_id, "config": { "name": "x" } }))
        .await
        .expect(400);
    assert_eq!(r["detail"], "Provide either agent_id or config, not both");
    let r = call(json!({ "from_number": FROM, "to_number": "555-0123" })).await.expect(400);
    assert!(r["to_number"].is_array(), "{r}");
    let r = call(json!({ "from_number": FROM, "to_number": TO, "priority": "high" })).await.expect(400);
    assert_eq!(r["priority"], json!(["Unknown field."]));
    let r = call(json!({ "from_number": FROM, "to_number": TO, "config": { "voice": "foo" } })).await.expect(400);
    assert_eq!(r["config.voice"], json!(["\"foo\" is not a supported voice id."]));
    let r = call(json!({ "from_number": FROM, "to_number": TO, "max_hold_seconds": -5 })).await.expect(400);
    assert!(r["max_hold_seconds"].is_array());

    // No funds.
    let r = call(json!({ "from_number": FROM, "to_number": TO })).await.expect(402);
    assert!(r["detail"].as_str().unwrap().contains("Insufficient balance"), "{r}");
    credit(&server, &c.org, 300, "funds").await;

    let r = call(json!({ "from_number": "+14155550199", "to_number": TO })).await.expect(404);
    assert_eq!(r["detail"], "from_number is not registered to this organization.");
    let r = call(json!({ "from_number": FROM, "to_number": TO, "agent_id": 999_999 })).await.expect(404);
    assert_eq!(r["detail"], "Agent not found.");
    let other = server.create_org("Other").await;
    let theirs = server
        .post("/v1/agents", &other.key, json!({ "name": "Theirs", "prompt": "", "voice": "alloy" }))
        .await
        .expect(201);
    call(json!({ "from_number": FROM, "to_number": TO, "agent_id": theirs["id"] })).await.expect(404);

    // No agent given and none on the number.
    server
        .patch(&format!("/v1/phone-numbers/{}", number_id(&server, k).await), k, json!({ "outbound_agent_id": null }))
        .await
        .expect(200);
    let r = call(json!({ "from_number": FROM, "to_number": TO })).await.expect(400);
    assert_eq!(r["code"], "no_agent");
    // An inline configuration needs no saved agent.
    call(json!({ "from_number": FROM, "to_number": TO, "config": { "prompt": "Inline." } })).await.expect(201);

    // Demo numbers, unverified numbers and trial orgs are blocked, each saying why.
    let demo = server.post("/v1/phone-numbers", k, json!({})).await.expect(201);
    let r = call(json!({ "from_number": demo["number"], "to_number": TO, "agent_id": c.agent_id })).await.expect(403);
    assert!(r["detail"].as_str().unwrap().contains("demo"), "{r}");
    server.import_number(k, c.connection_id, "+14155550111").await;
    let r = call(json!({ "from_number": "+14155550111", "to_number": TO, "agent_id": c.agent_id })).await.expect(403);
    assert!(r["detail"].as_str().unwrap().contains("not verified"), "{r}");
    server.patch(&format!("/admin/v1/orgs/{}", c.org.id), ADMIN_TOKEN, json!({ "trial": true })).await.expect(200);
    let r = call(json!({ "from_number": FROM, "to_number": TO, "agent_id": c.agent_id })).await.expect(403);
    assert!(r["detail"].as_str().unwrap().contains("trial"), "{r}");
    server.patch(&format!("/admin/v1/orgs/{}", c.org.id), ADMIN_TOKEN, json!({ "trial": false })).await.expect(200);

    // The carrier refuses: 502, safe to retry; the call is on record as failed and nothing is charged.
    let before = balance(&server, k).await;
    let r = call(json!({ "from_number": FROM, "to_number": "+15550000503", "agent_id": c.agent_id })).await.expect(502);
    assert_eq!(r["code"], "carrier_error");
    let failed = wait_for(&server, "/v1/calls?status=failed", k, SETTLE, |p| p["total"] == 1).await;
    assert_eq!(failed["results"][0]["end_reason"], "carrier_error");
    let after = wait_for(&server, "/v1/billing", k, SETTLE, |b| {
        b["reserved_cents"].as_i64().unwrap() <= before["reserved_cents"].as_i64().unwrap()
    })
    .await;
    assert_eq!(after["balance_cents"], before["balance_cents"]);
}

async fn number_id(server: &Server, key: &str) -> u64 {
    let numbers = server.get("/v1/phone-numbers", key).await.expect(200);
    numbers.as_array().unwrap().iter().find(|n| n["number"] == FROM).unwrap()["id"].as_u64().unwrap()
}

#[tokio::test]
async fn the_simulated_carrier_ends_calls_as_documented_and_only_connected_calls_pay() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 500).await;
    let k = &c.org.key;
    let cases = [
        ("+15550000486", "failed", "busy"),
        ("+15550000480", "failed", "no_answer"),
        ("+15550000404", "failed", "invalid_number"),
        ("+15550000001", "completed", "callee_hangup"),
    ];
    let mut ids = Vec::new();
    for (to, _, _) in cases {
        ids.push(place(&server, k, to).await);
    }
    for ((to, status, reason), id) in cases.iter().zip(ids) {
        let call = finished(&server, k, id).await;
        assert_eq!(
            (call["status"].as_str(), call["end_reason"].as_str()),
            (Some(*status), Some(*reason)),
            "{to}: {call}"
        );
        if *status == "failed" {
            assert_eq!(
                (call["billing_total_cents"].as_i64(), call["duration_seconds"].as_i64()),
                (Some(0), Some(0)),
                "{to}"
            );
        }
    }
    let b = balance(&server, k).await;
    assert_eq!(b["reserved_cents"], 0);
    let charges = server.get("/v1/billing/transactions?limit=200", k).await.expect(200)["total"].as_u64().unwrap();
    assert_eq!(charges, 2, "the top-up and the one connected call");

    // Left on hold: the engine takes the callee off hold at max_hold_seconds.
    let r = server
        .post("/v1/call", k, json!({ "from_number": FROM, "to_number": "+15550000002", "max_hold_seconds": 0 }))
        .await
        .expect(201);
    let id = r["call_id"].as_u64().unwrap();
    finished(&server, k, id).await;
    let events = server.get(&format!("/v1/calls/{id}/history"), k).await.expect(200);
    let forced = events.as_array().unwrap().iter().find(|e| e["type"] == "hold_ended").expect("the hold was ended");
    assert_eq!(forced["data"]["forced"], true);
}

#[tokio::test]
async fn the_grant_caps_talk_time_and_an_empty_balance_stops_new_calls() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 3).await;
    // 600 cents a minute: 3 cents pay for 300 ms, less than the 600 ms the call would talk.
    server
        .patch(&format!("/admin/v1/orgs/{}/billing", c.org.id), ADMIN_TOKEN, json!({ "rate_cents_per_minute": 600 }))
        .await
        .expect(200);
    let id = place(&server, &c.org.key, TO).await;
    let call = finished(&server, &c.org.key, id).await;
    assert_eq!(
        (call["status"].as_str(), call["end_reason"].as_str()),
        (Some("completed"), Some("insufficient_balance")),
        "{call}"
    );
    assert_eq!(call["billing_total_cents"], 3, "never more than was granted");
    let b = balance(&server, &c.org.key).await;
    assert_eq!((b["balance_cents"].as_i64(), b["reserved_cents"].as_i64()), (Some(0), Some(0)));
    server.post("/v1/call", &c.org.key, json!({ "from_number": FROM, "to_number": TO })).await.expect(402);
}

#[tokio::test]
async fn the_watchdog_fails_calls_that_outlive_their_maximum() {
    let server = Server::start_with(&["--sim-ring-ms", "50", "--sim-talk-ms", "5000", "--max-call-seconds", "1"]);
    let c = caller(&server, 500).await;
    let id = place(&server, &c.org.key, TO).await;
    let call = finished(&server, &c.org.key, id).await;
    assert_eq!(
        (call["status"].as_str(), call["end_reason"].as_str()),
        (Some("failed"), Some("max_duration")),
        "{call}"
    );
    // It talked, so it pays for what it talked.
    assert!(call["billing_total_cents"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn hanging_up_is_idempotent_and_scoped_to_the_org() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 500).await;
    let k = &c.org.key;
    let ringing = place(&server, k, "+15550000480").await;
    let hung = server.post(&format!("/v1/calls/{ringing}/hangup"), k, json!({})).await.expect(200);
    assert_eq!((hung["status"].as_str(), hung["end_reason"].as_str()), (Some("failed"), Some("canceled")));
    let again = server.post(&format!("/v1/calls/{ringing}/hangup"), k, json!({})).await.expect(200);
    assert_eq!((again["status"].as_str(), again["end_reason"].as_str()), (Some("failed"), Some("canceled")));
    assert_eq!(again["end_time"], hung["end_time"]);

    let other = server.create_org("Other").await;
    server.post(&format!("/v1/calls/{ringing}/hangup"), &other.key, json!({})).await.expect(404);
    server.get(&format!("/v1/calls/{ringing}"), &other.key).await.expect(404);
    server.get(&format!("/v1/calls/{ringing}/transcript"), &other.key).await.expect(404);
    server.get(&format!("/v1/calls/{ringing}/history"), &other.key).await.expect(404);
    server.post("/v1/calls/999999/hangup", k, json!({})).await.expect(404);

    // Hanging up a conversation ends it as the agent's hang-up, and it pays.
    let talking = place(&server, k, TO).await;
    wait_for(&server, &format!("/v1/calls/{talking}"), k, SETTLE, |c| !c["sip_answered_at"].is_null()).await;
    let hung = server.post(&format!("/v1/calls/{talking}/hangup"), k, json!({})).await.expect(200);
    assert_eq!((hung["status"].as_str(), hung["end_reason"].as_str()), (Some("completed"), Some("agent_hangup")));
    let done = finished(&server, k, talking).await;
    assert!(done["billing_total_cents"].as_i64().unwrap() >= 1);
    let canceled = finished(&server, k, ringing).await;
    assert_eq!(canceled["billing_total_cents"], 0);
    // Late carrier events after the hang-up were recorded, never reopening the call.
    let events = server.get(&format!("/v1/calls/{talking}/history"), k).await.expect(200);
    let ends = events.as_array().unwrap().iter().filter(|e| e["type"] == "call_ended").count();
    assert_eq!(ends, 1);
}

#[tokio::test]
async fn calls_list_newest_first_with_filters() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 500).await;
    let k = &c.org.key;
    let busy = place(&server, k, "+15550000486").await;
    let ok = place(&server, k, TO).await;
    let other_agent =
        server.post("/v1/agents", k, json!({ "name": "Sales", "prompt": "", "voice": "alloy" })).await.expect(201);
    let r = server
        .post("/v1/call", k, json!({ "from_number": FROM, "to_number": TO, "agent_id": other_agent["id"] }))
        .await
        .expect(201);
    let sales = r["call_id"].as_u64().unwrap();
    for id in [busy, ok, sales] {
        finished(&server, k, id).await;
    }

    let all = server.get("/v1/calls", k).await.expect(200);
    assert_eq!((all["total"].as_u64(), all["limit"].as_u64(), all["offset"].as_u64()), (Some(3), Some(50), Some(0)));
    let ids: Vec<u64> = all["results"].as_array().unwrap().iter().map(|c| c["call_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![sales, ok, busy]);

    let failed = server.get("/v1/calls?status=failed", k).await.expect(200);
    assert_eq!((failed["total"].as_u64(), failed["results"][0]["call_id"].as_u64()), (Some(1), Some(busy)));
    let by_agent = server.get(&format!("/v1/calls?agent_id={}", other_agent["id"]), k).await.expect(200);
    assert_eq!((by_agent["total"].as_u64(), by_agent["results"][0]["call_id"].as_u64()), (Some(1), Some(sales)));
    assert_eq!(server.get("/v1/calls?direction=inbound", k).await.expect(200)["total"], 0);
    assert_eq!(server.get("/v1/calls?direction=outbound", k).await.expect(200)["total"], 3);
    let page = server.get("/v1/calls?limit=1&offset=1", k).await.expect(200);
    assert_eq!((page["total"].as_u64(), page["results"][0]["call_id"].as_u64()), (Some(3), Some(ok)));

    for (query, field) in [
        ("status=done", "status"),
        ("direction=sideways", "direction"),
        ("agent_id=x", "agent_id"),
        ("limit=0", "limit"),
        ("offset=x", "offset"),
    ] {
        let r = server.get(&format!("/v1/calls?{query}"), k).await.expect(400);
        assert!(r[field].is_array(), "{query}: {r}");
    }
    let other = server.create_org("Other").await;
    assert_eq!(server.get("/v1/calls", &other.key).await.expect(200)["total"], 0);
    server.get("/v1/calls/abc", k).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_every_call_resumes_ends_and_is_billed_exactly_once() {
    let mut server = Server::start_with(&[
        "--sim-ring-ms",
        "300",
        "--sim-talk-ms",
        "1500",
        "--ring-timeout-ms",
        "1500",
        "--max-call-seconds",
        "60",
    ]);
    let c = caller(&server, 1_000).await;
    let k = c.org.key.clone();

    // Calls in every state when the process dies: talking, ringing, unanswered, ended but
    // perhaps not yet billed, and placements still in flight.
    let mut acknowledged = vec![
        place(&server, &k, TO).await,
        place(&server, &k, "+15550000480").await,
        place(&server, &k, "+15550000486").await,
    ];
    tokio::time::sleep(Duration::from_millis(150)).await;
    acknowledged.push(place(&server, &k, TO).await);
    tokio::time::sleep(Duration::from_millis(250)).await;
    acknowledged.push(place(&server, &k, "+15550000001").await);
    let url = server.url.clone();
    let key = k.clone();
    let in_flight = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut acked = Vec::new();
        for _ in 0..20 {
            let sent = http
                .post(format!("{url}/v1/call"))
                .bearer_auth(&key)
                .json(&json!({ "from_number": FROM, "to_number": TO }))
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 201 => acked.push(r.json::<Value>().await.unwrap()["call_id"].as_u64().unwrap()),
                _ => break,
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.kill();
    acknowledged.extend(in_flight.await.unwrap());

    server.restart();
    // Every call on record ends and is billed, whatever state it died in.
    let all = wait_for(&server, "/v1/calls?limit=200", &k, Duration::from_secs(30), |p| {
        p["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "in_progress" && !c["billing_total_cents"].is_null())
    })
    .await;
    let calls = all["results"].as_array().unwrap();
    for id in &acknowledged {
        assert!(calls.iter().any(|c| c["call_id"] == *id), "call {id} got a 201 but is gone");
    }
    let expected = [
        (0, "completed", "agent_hangup"),
        (1, "failed", "no_answer"),
        (2, "failed", "busy"),
        (3, "completed", "agent_hangup"),
        (4, "completed", "callee_hangup"),
    ];
    for (i, status, reason) in expected {
        let call = calls.iter().find(|c| c["call_id"] == acknowledged[i]).unwrap();
        assert_eq!((call["status"].as_str(), call["end_reason"].as_str()), (Some(status), Some(reason)), "{call}");
    }

    // No reservation is left open, nothing is charged twice, and the books add up.
    let b = wait_for(&server, "/v1/billing", &k, Duration::from_secs(10), |b| b["reserved_cents"] == 0).await;
    let charged: i64 = calls.iter().map(|c| c["billing_total_cents"].as_i64().unwrap()).sum();
    assert_eq!(b["balance_cents"].as_i64().unwrap(), 1_000 - charged);
    let txs = server.get("/v1/billing/transactions?limit=200", &k).await.expect(200);
    let mut charged_calls: Vec<u64> =
        txs["results"].as_array().unwrap().iter().filter_map(|t| t["call_id"].as_u64()).collect();
    let paying = calls.iter().filter(|c| c["billing_total_cents"].as_i64().unwrap() > 0).count();
    assert_eq!(charged_calls.len(), paying);
    charged_calls.sort_unstable();
    charged_calls.dedup();
    assert_eq!(charged_calls.len(), paying, "a call was charged twice");

    server.stop();
    switchboard_tests::audit(&server);
}

/// The `config` of `POST /v1/call` as the official client's `WebhookConfigRequest.to_dict()`
/// sends it (every "always sent" field at its default, and a few set): the call runs with it,
/// and its recorded setup carries the whole configuration for the agent runtime.
#[tokio::test]
async fn an_inline_config_as_the_official_client_sends_it_is_carried_by_the_call() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 5_000).await;
    let k = &c.org.key;
    // `WebhookConfigRequest(prompt=..., agent_name="Scheduler", voice="coral", additional_languages=["es"],
    // primary_language="en", max_call_duration_seconds=900, ring_duration_seconds=30,
    // silence_hangup_seconds=None, transfer_destinations=[...], tools=[ToolDefinitionRequest(type_="function",
    // function=FunctionSpecRequest(...), endpoint=ToolEndpointRequest(...))], call_id=7, language="en").to_dict()`
    let config: Value = serde_json::from_str(
        r#"{"prompt": "You confirm appointments.", "acknowledgement_prompt": "", "acknowledgement_prompt_mode": "auto", "additional_languages": ["es"], "agent_name": "Scheduler", "audio_context_mode": "full", "bolt_pipeline": "v1", "call_id": 7, "connect_tone_enabled": false, "consent_announcement_enabled": false, "consent_announcement_text": "", "has_additional_languages": false, "language": "en", "max_call_duration_seconds": 900, "native_voice_switching": false, "org_name": "", "play_sound_asset": "", "primary_language": "en", "product": "spark", "ring_duration_seconds": 30, "send_email_enabled": false, "send_email_recipient": "", "silence_checkins_enabled": true, "silence_hangup_seconds": null, "speak_uninterruptible_enabled": false, "storm_feedback_mode": "acknowledgement", "thinking_level": "base", "tools": [{"endpoint": {"url": "https://example.com/book", "method": "POST"}, "function": {"name": "book_slot", "description": "Books a slot", "parameters": {"required": ["slot"], "type": "object"}}, "type": "function"}], "transfer_destinations": [{"name": "Front desk", "number": "+14155550199"}], "typing_sounds_enabled": false, "voice": "coral", "voicemail_action": "prompt", "voicemail_message": "", "watchdog_enabled": false}"#,
    )
    .unwrap();
    let placed =
        server.post("/v1/call", k, json!({ "from_number": FROM, "to_number": TO, "config": config })).await.expect(201);
    let id = placed["call_id"].as_u64().unwrap();
    let events = server.get(&format!("/v1/calls/{id}/history"), k).await.expect(200);
    let agent = &events[0]["data"]["setup"]["agent"];
    assert_eq!(
        (&agent["name"], &agent["prompt"], &agent["voice"]),
        (&json!("Scheduler"), &config["prompt"], &json!("coral"))
    );
    assert_eq!(agent["tools"][0]["name"], "book_slot");
    assert_eq!(agent["tools"][0]["url"], "https://example.com/book");
    let settings = &agent["settings"];
    assert_eq!(settings["max_call_duration_seconds"], 900);
    assert_eq!(settings["ring_duration_seconds"], 30);
    assert_eq!(settings["additional_languages"], json!(["es"]));
    assert_eq!(settings["transfer_destinations"], json!([{ "name": "Front desk", "number": "+14155550199" }]));
    assert_eq!((&settings["voicemail_action"], &settings["bolt_pipeline"]), (&json!("prompt"), &json!("v1")));
    // Null where the client may send it means the default.
    assert_eq!(settings["silence_hangup_seconds"], 30);

    // The inline config's own choices (`minimal`, `none`) are taken; values outside them are
    // field errors under `config.`; a field of neither the contract nor switchboard is refused.
    let mut widened = config.clone();
    widened["thinking_level"] = json!("minimal");
    widened["storm_feedback_mode"] = json!("none");
    let placed = server
        .post("/v1/call", k, json!({ "from_number": FROM, "to_number": TO, "config": widened }))
        .await
        .expect(201);
    // The call reads back with what it runs with.
    let call = server.get(&format!("/v1/calls/{}", placed["call_id"]), k).await.expect(200);
    assert_eq!(
        (&call["thinking_level"], &call["product"], &call["voice"]),
        (&json!("minimal"), &json!("spark"), &json!("coral"))
    );
    let mut bad = config.clone();
    bad["thinking_level"] = json!("maximal");
    bad["ring_duration_seconds"] = json!(0);
    bad["timezone"] = json!("UTC");
    bad.as_object_mut().unwrap().remove("prompt");
    let r =
        server.post("/v1/call", k, json!({ "from_number": FROM, "to_number": TO, "config": bad })).await.expect(400);
    assert_eq!(r["config.thinking_level"], json!(["\"maximal\" is not a valid choice."]), "{r}");
    assert_eq!(r["config.ring_duration_seconds"], json!(["Ensure this value is greater than or equal to 1."]), "{r}");
    assert_eq!(r["config.timezone"], json!(["Unknown field."]), "{r}");
    assert_eq!(r["config.prompt"], json!(["This field is required."]), "{r}");
}

#[tokio::test]
async fn the_body_idempotency_key_is_the_header_key_and_a_replay_says_so() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 500).await;
    let k = &c.org.key;
    let body =
        json!({ "from_number": FROM, "to_number": TO, "idempotency_key": "order-42", "variables": { "name": "Ada" } });
    let first = server.post("/v1/call", k, body.clone()).await.expect(201);
    assert_eq!(first["idempotent_replay"], false);
    let again = server.post("/v1/call", k, body.clone()).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let again = again.expect(201);
    assert_eq!((again["call_id"].clone(), again["idempotent_replay"].clone()), (first["call_id"].clone(), json!(true)));
    // The same key in the header, with the same body, is the same key.
    let header = server
        .call(
            "POST",
            "/v1/call",
            Some(&switchboard_tests::bearer(k)),
            Some(switchboard_tests::Body::Json(body.clone())),
        )
        .await;
    assert_eq!(header.body["call_id"], first["call_id"]);
    // Another body under the key conflicts; the header and the body naming two keys is refused.
    let other = json!({ "from_number": FROM, "to_number": "+15550000486", "idempotency_key": "order-42" });
    assert_eq!(server.post("/v1/call", k, other).await.expect(409)["code"], "idempotency_conflict");
    let http = reqwest::Client::new();
    let both = http
        .post(format!("{}/v1/call", server.url))
        .bearer_auth(k)
        .header("Idempotency-Key", "order-43")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 409, "two keys that differ conflict");
    let r = server.post("/v1/call", k, json!({ "from_number": FROM, "to_number": TO, "idempotency_key": "" })).await;
    assert_eq!(r.expect(400)["idempotency_key"].as_array().map(Vec::len), Some(1));

    let call = server.get(&format!("/v1/calls/{}", first["call_id"]), k).await.expect(200);
    assert_eq!((call["variables"].clone(), call["locale"].clone()), (json!({ "name": "Ada" }), json!("en-US")));
    let total = server.get("/v1/calls", k).await.expect(200)["total"].clone();
    assert_eq!(total, 1, "one call for one key");

    for (body, field) in [
        (json!({ "variables": [1] }), "variables"),
        (json!({ "language": "english!" }), "language"),
        (json!({ "primary_language": "e" }), "primary_language"),
        (json!({ "phi_mode": "hipaa" }), "phi_mode"),
    ] {
        let mut request = json!({ "from_number": FROM, "to_number": TO });
        request.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let r = server.post("/v1/call", k, request).await.expect(400);
        assert!(r[field].is_array(), "{field}: {r}");
    }
    let r = server
        .post("/v1/call", k, json!({ "from_number": FROM, "to_number": TO, "agent_id": null, "max_hold_seconds": null, "primary_language": "pt-BR" }))
        .await
        .expect(201);
    let call = server.get(&format!("/v1/calls/{}", r["call_id"]), k).await.expect(200);
    assert_eq!(call["locale"], "pt-BR");
}

#[tokio::test]
async fn calls_export_as_json_and_streamed_csv_with_the_lists_filters() {
    let server = Server::start_with(FAST);
    let c = caller(&server, 500).await;
    let k = &c.org.key;
    let busy = place(&server, k, "+15550000486").await;
    let ok = place(&server, k, TO).await;
    for id in [busy, ok] {
        finished(&server, k, id).await;
    }
    let export = server.get("/v1/calls/export", k).await.expect(200);
    assert_eq!((export["total"].clone(), export["truncated"].clone()), (json!(2), json!(false)));
    let ids: Vec<u64> = export["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![ok, busy]);
    let failed = server.get("/v1/calls/export?to_number=%2B15550000486", k).await.expect(200);
    assert_eq!(failed["calls"][0]["call_id"], busy);
    assert_eq!(failed["total"], 1);

    let http = reqwest::Client::new();
    let csv = http
        .get(format!("{}/v1/calls/export", server.url))
        .bearer_auth(k)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with(&format!("{ok},outbound,completed,{FROM},{TO},")), "{text}");
    assert!(lines[2].contains(",busy,"), "{text}");

    for query in
        ["start_date=yesterday", "end_date=2026-02-30", "exclude_test_calls=maybe", "phone_number=555", "format=xml"]
    {
        let r = server.get(&format!("/v1/calls/export?{query}"), k).await.expect(400);
        let field = query.split('=').next().unwrap();
        assert!(r[field].is_array(), "{query}: {r}");
    }
    let later = server.get("/v1/calls?start_date=2999-01-01T00:00:00Z", k).await.expect(200);
    assert_eq!(later["total"], 0);
    let within = server.get("/v1/calls?end_date=2999-01-01&exclude_test_calls=true", k).await.expect(200);
    assert_eq!(within["total"], 2);
    let moved = server.get(&format!("/v1/calls/{ok}/events"), k).await.expect(410);
    assert_eq!(moved["new_path"], format!("/v1/calls/{ok}/history"));
}
