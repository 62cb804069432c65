//! Test-call runs and batches end to end.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::{ADMIN_TOKEN, Caller, Server, wait_for};

const FAST: &[&str] =
    &["--sim-ring-ms", "100", "--sim-talk-ms", "600", "--ring-timeout-ms", "400", "--max-call-seconds", "30"];
const SETTLE: Duration = Duration::from_secs(20);

/// An org with funds, an agent, and a sim number whose inbound and outbound agent it is.
async fn tester(server: &Server, cents: i64) -> Caller {
    server.org_ready_to_call("Acme", cents, "+14155550100").await
}

fn run_body(t: &Caller, extra: Value) -> Value {
    let mut body =
        json!({ "target_type": "agent", "target_id": t.agent_id, "direction": "outbound", "consent_to_charge": true });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn run_over(server: &Server, key: &str, id: u64) -> Value {
    wait_for(server, &format!("/v1/test-calls/{id}"), key, SETTLE, |r| {
        r["status"] == "completed" || r["status"] == "failed"
    })
    .await
}

fn ms(timestamp: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(timestamp.as_str().unwrap()).unwrap().timestamp_millis()
}

#[tokio::test]
async fn a_run_drives_a_real_call_billed_at_the_multiplier() {
    let server = Server::start_with(FAST);
    let t = tester(&server, 1_000).await;
    let k = &t.org.key;
    let run = server
        .post(
            "/v1/test-calls",
            k,
            run_body(&t, json!({ "scenario_prompt": "Roleplay as a customer asking about refunds." })),
        )
        .await
        .expect(201);
    assert_eq!(run["status"], "queued");
    assert_eq!(
        (run["target_type"].as_str(), run["target_id"].as_u64(), run["direction"].as_str()),
        (Some("agent"), Some(t.agent_id), Some("outbound"))
    );
    assert_eq!(
        (run["mode"].as_str(), run["charge_multiplier"].as_u64(), run["target_number"].as_str()),
        (Some("bot"), Some(2), Some("+15005559999"))
    );
    // One second of expected talk at 10 c/min, twice: rounded up to a cent.
    assert_eq!(run["estimated_cost_cents"], 1);
    assert!(run["call_id"].is_u64() && run["sip_call_id"].is_null() && run["batch_id"].is_null());
    assert_eq!((run["error_message"].as_str(), &run["completed_at"]), (Some(""), &Value::Null));
    for field in ["id", "scenario_prompt", "started_at", "created_at", "updated_at", "duration_seconds"] {
        assert!(run.get(field).is_some(), "{field} missing from {run}");
    }
    // The contract's SimulationRun: names as they were, and the platform's features neutral.
    assert_eq!((run["agent_name"].as_str(), run["target_name"].as_str()), (Some("Support"), Some("Support")));
    assert_eq!((&run["grade"], &run["recording_url"], &run["metadata"]), (&Value::Null, &Value::Null, &json!({})));
    assert_eq!(run["transcript"], json!([]), "nothing said yet");
    let keys = server.get("/v1/keys", k).await.expect(200);
    assert_eq!(run["requested_by_id"], keys[0]["id"], "the key that asked stands in for who requested it");

    let id = run["id"].as_u64().unwrap();
    let done = run_over(&server, k, id).await;
    assert_eq!((done["status"].as_str(), done["error_message"].as_str()), (Some("completed"), Some("")), "{done}");
    assert!(ms(&done["completed_at"]) >= ms(&done["started_at"]));
    assert!(done["duration_seconds"].is_u64(), "{done}");
    let said = done["transcript"].as_array().unwrap();
    assert!(said.iter().any(|t| t["role"] == "callee" && t["content"].is_string()), "the call's transcript: {done}");

    let call_id = done["call_id"].as_u64().unwrap();
    let call =
        wait_for(&server, &format!("/v1/calls/{call_id}"), k, SETTLE, |c| !c["billing_total_cents"].is_null()).await;
    assert_eq!(
        (call["status"].as_str(), call["direction"].as_str(), call["agent_id"].as_u64()),
        (Some("completed"), Some("inbound"), Some(t.agent_id))
    );
    let seconds = call["duration_seconds"].as_i64().unwrap();
    assert_eq!(
        call["billing_total_cents"].as_i64(),
        Some((seconds * 10 * 2 + 59) / 60),
        "billed at twice the rate: {call}"
    );
    let txs = server.get("/v1/billing/transactions?limit=200", k).await.expect(200);
    assert_eq!(
        (txs["results"][0]["kind"].as_str(), txs["results"][0]["call_id"].as_u64()),
        (Some("call_usage"), Some(call_id))
    );
    assert_eq!(txs["results"][0]["metadata"]["test_call"], true);

    let transcript = server.get(&format!("/v1/calls/{call_id}/transcript"), k).await.expect(200);
    let callee: Vec<&str> = transcript["transcripts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "user")
        .map(|t| t["content"].as_str().unwrap())
        .collect();
    assert_eq!(callee[0], "Hi. Roleplay as a customer asking about refunds.", "the scenario drives the test bot");
}

#[tokio::test]
async fn every_error_row_of_runs() {
    let server = Server::start_with(&["--sim-ring-ms", "100", "--sim-talk-ms", "5000"]);
    let t = tester(&server, 0).await;
    let k = &t.org.key;

    let mut body = run_body(&t, json!({}));
    body.as_object_mut().unwrap().remove("consent_to_charge");
    let r = server.post("/v1/test-calls", k, body).await.expect(400);
    assert_eq!(r["consent_to_charge"], json!(["This field is required."]));
    let r = server.post("/v1/test-calls", k, run_body(&t, json!({ "consent_to_charge": false }))).await.expect(400);
    assert!(r["consent_to_charge"].is_array());
    let r = server.post("/v1/test-calls", k, run_body(&t, json!({ "target_type": "robot", "direction": "sideways", "mode": "fax", "target_number": "12", "color": 1 }))).await.expect(400);
    for field in ["target_type", "direction", "mode", "target_number", "color"] {
        assert!(r[field].is_array(), "{field}: {r}");
    }
    server.post("/v1/test-calls", k, run_body(&t, json!({ "target_id": "twelve" }))).await.expect(400);
    // The official client's choices are checked against the contract's values.
    let r = server
        .post(
            "/v1/test-calls",
            k,
            run_body(&t, json!({ "scenario_mode": "guess", "simulator_product": "x", "language": "x".repeat(36) })),
        )
        .await
        .expect(400);
    for field in ["scenario_mode", "simulator_product", "language"] {
        assert!(r[field].is_array(), "{field}: {r}");
    }

    // No funds yet.
    let r = server.post("/v1/test-calls", k, run_body(&t, json!({}))).await.expect(402);
    assert!(r["detail"].as_str().unwrap().contains("Insufficient balance"));
    assert_eq!(server.get("/v1/test-calls", k).await.expect(200), json!([]), "a refused run is not a run");
    let path = format!("/admin/v1/orgs/{}/credits", t.org.id);
    server.post(&path, ADMIN_TOKEN, json!({ "amount_cents": 1_000, "reference": "funds" })).await.expect(201);

    server.post("/v1/test-calls", k, run_body(&t, json!({ "target_id": 999_999 }))).await.expect(404);
    server
        .post("/v1/test-calls", k, run_body(&t, json!({ "target_type": "phone_number", "target_id": 999_999 })))
        .await
        .expect(404);
    let other = server.create_org("Other").await;
    let theirs = server
        .post("/v1/agents", &other.key, json!({ "name": "Theirs", "prompt": "", "voice": "alloy" }))
        .await
        .expect(201);
    server.post("/v1/test-calls", k, run_body(&t, json!({ "target_id": theirs["id"] }))).await.expect(404);

    // The concurrency limit: 429 with Retry-After, distinct from the request rate limit.
    server
        .patch(&format!("/admin/v1/orgs/{}", t.org.id), ADMIN_TOKEN, json!({ "max_concurrent_test_calls": 1 }))
        .await
        .expect(200);
    // Every field the official client sends is accepted, `target_number: ""` among them.
    let client_fields = json!({
        "target_number": "", "scenario_mode": "manual", "simulator_product": "testing", "scenario_prompt": "",
        "language": "en", "primary_language": "en-US",
    });
    let run = server.post("/v1/test-calls", k, run_body(&t, client_fields)).await.expect(201);
    assert_eq!(run["target_number"], "+15005559999", "no number named: the bot's own");
    let r = server.post("/v1/test-calls", k, run_body(&t, json!({}))).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["code"], "too_many_test_calls");
    assert!(r.headers.contains_key("retry-after"));
    server
        .patch(&format!("/admin/v1/orgs/{}", t.org.id), ADMIN_TOKEN, json!({ "max_concurrent_test_calls": 0 }))
        .await
        .expect(400);
}

#[tokio::test]
async fn runs_list_with_filters_and_fail_with_a_message() {
    let server = Server::start_with(FAST);
    let t = tester(&server, 1_000).await;
    let k = &t.org.key;
    let ok = server.post("/v1/test-calls", k, run_body(&t, json!({}))).await.expect(201);
    // The agent calls the bot, and the bot's line is busy.
    let busy = server
        .post("/v1/test-calls", k, run_body(&t, json!({ "target_type": "phone_number", "target_id": t.number_id, "direction": "inbound", "target_number": "+15550000486" })))
        .await
        .expect(201);
    let failed = run_over(&server, k, busy["id"].as_u64().unwrap()).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_message"], "The call failed: busy.");
    let call = server.get(&format!("/v1/calls/{}", failed["call_id"]), k).await.expect(200);
    assert_eq!(
        (call["direction"].as_str(), call["to_number"].as_str(), call["from_number"].as_str()),
        (Some("outbound"), Some("+15550000486"), Some("+14155550100"))
    );
    run_over(&server, k, ok["id"].as_u64().unwrap()).await;

    let all = server.get("/v1/test-calls", k).await.expect(200);
    let ids: Vec<&Value> = all.as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, vec![&busy["id"], &ok["id"]], "newest first");
    let by_type = server.get("/v1/test-calls?target_type=phone_number", k).await.expect(200);
    assert_eq!(by_type.as_array().unwrap().len(), 1);
    let by_status = server.get("/v1/test-calls?status=failed", k).await.expect(200);
    assert_eq!(by_status[0]["id"], busy["id"]);
    assert_eq!(
        server.get(&format!("/v1/test-calls?agent_id={}", t.agent_id), k).await.expect(200).as_array().unwrap().len(),
        2
    );
    assert_eq!(server.get("/v1/test-calls?limit=1&offset=1", k).await.expect(200)[0]["id"], ok["id"]);
    for query in ["limit=0", "limit=201", "status=done", "target_type=x", "agent_id=x"] {
        server.get(&format!("/v1/test-calls?{query}"), k).await.expect(400);
    }
    server.get("/v1/test-calls?limit=200", k).await.expect(200);
    let other = server.create_org("Other").await;
    assert_eq!(server.get("/v1/test-calls", &other.key).await.expect(200), json!([]));
    server.get(&format!("/v1/test-calls/{}", ok["id"]), &other.key).await.expect(404);
}

#[tokio::test]
async fn a_sip_run_loops_through_the_orgs_number_and_the_inbound_leg_is_its_own_call() {
    let server = Server::start_with(FAST);
    let t = tester(&server, 1_000).await;
    let k = &t.org.key;
    let run = server
        .post(
            "/v1/test-calls",
            k,
            run_body(&t, json!({ "target_type": "phone_number", "target_id": t.number_id, "mode": "sip" })),
        )
        .await
        .expect(201);
    assert!(run["sip_call_id"].is_u64(), "{run}");
    let done = run_over(&server, k, run["id"].as_u64().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let leg = wait_for(&server, &format!("/v1/calls/{}", done["sip_call_id"]), k, SETTLE, |c| {
        c["status"] != "in_progress" && !c["billing_total_cents"].is_null()
    })
    .await;
    assert_eq!(
        (leg["direction"].as_str(), leg["to_number"].as_str(), leg["agent_id"].as_u64()),
        (Some("inbound"), Some("+14155550100"), Some(t.agent_id))
    );
    assert_eq!(leg["billing_total_cents"], 0, "the loopback's inbound leg is not billed");
    wait_for(&server, &format!("/v1/calls/{}", done["call_id"]), k, SETTLE, |c| !c["billing_total_cents"].is_null())
        .await;
    let txs = server.get("/v1/billing/transactions?limit=200", k).await.expect(200);
    let charged: Vec<&Value> =
        txs["results"].as_array().unwrap().iter().filter_map(|t| t.get("call_id")).filter(|c| !c.is_null()).collect();
    assert_eq!(charged, vec![&done["call_id"]]);
    // An agent that no number routes to cannot be tested over SIP.
    let lonely =
        server.post("/v1/agents", k, json!({ "name": "Lonely", "prompt": "", "voice": "alloy" })).await.expect(201);
    let r = server
        .post("/v1/test-calls", k, run_body(&t, json!({ "target_id": lonely["id"], "mode": "sip" })))
        .await
        .expect(400);
    assert!(r["mode"].is_array(), "{r}");
}

#[tokio::test]
async fn a_batch_lists_its_runs_at_once_rotating_prompts_and_completes() {
    let server = Server::start_with(FAST);
    let t = tester(&server, 2_000).await;
    let k = &t.org.key;
    let prompts = ["Ask about refunds.", "Ask for hours.", "Complain."];
    let body = run_body(&t, json!({ "run_count": 5, "stagger_seconds": 0, "scenario_prompts": prompts }));
    let batch = server.post("/v1/test-call-batches", k, body).await.expect(201);
    assert_eq!(
        (batch["status"].as_str(), batch["total_runs"].as_u64(), batch["run_count"].as_u64()),
        (Some("in_progress"), Some(5), Some(5))
    );
    assert_eq!(
        (batch["completed_runs"].as_u64(), batch["failed_runs"].as_u64(), batch["name"].as_str()),
        (Some(0), Some(0), Some(""))
    );
    assert_eq!(batch["run_ids"].as_array().unwrap().len(), 5, "the 201 lists every run");
    for field in
        ["requested_by_id", "started_at", "completed_at", "created_at", "updated_at", "error_message", "target_number"]
    {
        assert!(batch.get(field).is_some(), "{field} missing from {batch}");
    }
    assert!(ms(&batch["started_at"]) - ms(&batch["created_at"]) < 1_000, "the first run launched with the batch");
    assert_eq!((batch["estimated_cost_cents"].as_i64(), batch["estimated_minutes"].as_i64()), (Some(5), Some(5)));
    assert_eq!(batch["matrix_dimensions"], json!({}));
    // Keys are not users: the key that asked for the batch stands in for who requested it.
    let keys = server.get("/v1/keys", k).await.expect(200);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(batch["requested_by_id"], keys[0]["id"]);
    let id = batch["id"].as_u64().unwrap();
    let done =
        wait_for(&server, &format!("/v1/test-call-batches/{id}"), k, SETTLE, |b| b["status"] != "in_progress").await;
    assert_eq!(
        (done["status"].as_str(), done["completed_runs"].as_u64(), done["failed_runs"].as_u64()),
        (Some("completed"), Some(5), Some(0)),
        "{done}"
    );
    assert!(done["completed_at"].is_string());

    for (i, run_id) in done["run_ids"].as_array().unwrap().iter().enumerate() {
        let run = server.get(&format!("/v1/test-calls/{run_id}"), k).await.expect(200);
        assert_eq!(run["scenario_prompt"], prompts[i % prompts.len()], "run {i}");
        assert_eq!(run["batch_id"], id);
    }
    let events = server.get(&format!("/v1/test-call-batches/{id}/events"), k).await.expect(200);
    let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["batch_created", "run_launched", "run_launched", "run_launched", "run_launched", "run_launched"]
    );
    let listed = server.get("/v1/test-call-batches", k).await.expect(200);
    assert_eq!(listed[0]["id"], id);

    // One prompt for all runs.
    let one = server
        .post("/v1/test-call-batches", k, run_body(&t, json!({ "run_count": 2, "scenario_prompt": "Same for all." })))
        .await
        .expect(201);
    assert_eq!(one["scenario_prompts"], json!(["Same for all."]));
    // The official client sends `run_count: 3` unless told otherwise; so does a body without one.
    let default =
        server.post("/v1/test-call-batches", k, run_body(&t, json!({ "target_number": "" }))).await.expect(201);
    assert_eq!((default["run_count"].as_u64(), default["run_ids"].as_array().unwrap().len()), (Some(3), 3));
}

#[tokio::test]
async fn batch_runs_are_staggered_and_a_cancel_stops_the_rest() {
    let server = Server::start_with(FAST);
    let t = tester(&server, 2_000).await;
    let k = &t.org.key;
    let batch = server
        .post("/v1/test-call-batches", k, run_body(&t, json!({ "run_count": 3, "stagger_seconds": 1 })))
        .await
        .expect(201);
    let id = batch["id"].as_u64().unwrap();
    // The 201 lists every run; the first is launched at once, the rest wait, queued.
    let run_ids = batch["run_ids"].as_array().unwrap();
    assert_eq!(run_ids.len(), 3);
    let first = server.get(&format!("/v1/test-calls/{}", run_ids[0]), k).await.expect(200);
    assert!(first["call_id"].is_u64(), "{first}");
    let last = server.get(&format!("/v1/test-calls/{}", run_ids[2]), k).await.expect(200);
    assert_eq!((last["status"].as_str(), &last["call_id"]), (Some("queued"), &Value::Null), "{last}");
    let done =
        wait_for(&server, &format!("/v1/test-call-batches/{id}"), k, SETTLE, |b| b["status"] == "completed").await;
    let started: Vec<i64> = runs_started(&server, k, &done).await;
    for pair in started.windows(2) {
        assert!(pair[1] - pair[0] >= 900, "runs launched {} ms apart", pair[1] - pair[0]);
    }

    let long = server
        .post("/v1/test-call-batches", k, run_body(&t, json!({ "run_count": 5, "stagger_seconds": 60 })))
        .await
        .expect(201);
    let long_id = long["id"].as_u64().unwrap();
    let canceled = server.post(&format!("/v1/test-call-batches/{long_id}/cancel"), k, json!({})).await.expect(200);
    assert_eq!((canceled["run_ids"].as_array().unwrap().len(), canceled["total_runs"].as_u64()), (5, Some(5)));
    assert_eq!(canceled["failed_runs"], 4, "the runs not launched end failed: {canceled}");
    let again = server.post(&format!("/v1/test-call-batches/{long_id}/cancel"), k, json!({})).await.expect(200);
    assert_eq!(again["run_ids"], canceled["run_ids"]);
    let never = server.get(&format!("/v1/test-calls/{}", canceled["run_ids"][4]), k).await.expect(200);
    assert_eq!(
        (never["status"].as_str(), never["error_message"].as_str(), &never["call_id"]),
        (Some("failed"), Some("The batch was canceled before this run was launched."), &Value::Null)
    );
    // The run already launched finishes, and so does the batch.
    let finished =
        wait_for(&server, &format!("/v1/test-call-batches/{long_id}"), k, SETTLE, |b| b["status"] != "in_progress")
            .await;
    assert_eq!(
        (finished["status"].as_str(), finished["completed_runs"].as_u64(), finished["failed_runs"].as_u64()),
        (Some("completed"), Some(1), Some(4))
    );
    let events = server.get(&format!("/v1/test-call-batches/{long_id}/events"), k).await.expect(200);
    assert_eq!(events.as_array().unwrap().iter().filter(|e| e["type"] == "batch_canceled").count(), 1);

    let other = server.create_org("Other").await;
    server.post(&format!("/v1/test-call-batches/{long_id}/cancel"), &other.key, json!({})).await.expect(404);
    server.get(&format!("/v1/test-call-batches/{long_id}"), &other.key).await.expect(404);
    server.get(&format!("/v1/test-call-batches/{long_id}/events"), &other.key).await.expect(404);
}

async fn runs_started(server: &Server, key: &str, batch: &Value) -> Vec<i64> {
    let mut started = Vec::new();
    for run_id in batch["run_ids"].as_array().unwrap() {
        let run = server.get(&format!("/v1/test-calls/{run_id}"), key).await.expect(200);
        started.push(ms(&run["started_at"]));
    }
    started
}

#[tokio::test]
async fn batch_requests_are_validated_and_a_batch_whose_runs_all_fail_fails() {
    let server = Server::start_with(FAST);
    let t = tester(&server, 1_000).await;
    let k = &t.org.key;
    for (extra, field) in [
        (json!({ "run_count": 0 }), "run_count"),
        (json!({ "run_count": 21 }), "run_count"),
        (json!({ "run_count": 2, "stagger_seconds": 61 }), "stagger_seconds"),
        (json!({ "run_count": 2, "scenario_prompts": "not a list" }), "scenario_prompts"),
        (json!({ "run_count": 2, "scenario_prompts": [1] }), "scenario_prompts.0"),
        (json!({ "run_count": 2, "consent_to_charge": false }), "consent_to_charge"),
        (json!({ "run_count": 2, "language": 7 }), "language"),
        (json!({ "run_count": 2, "scenario_mode": "auto" }), "scenario_mode"),
    ] {
        let r = server.post("/v1/test-call-batches", k, run_body(&t, extra.clone())).await.expect(400);
        assert!(r[field].is_array(), "{extra}: {r}");
    }
    let r = server
        .post(
            "/v1/test-call-batches",
            k,
            run_body(&t, json!({ "run_count": 2, "scenario_prompts": ["a"], "scenario_prompt": "b" })),
        )
        .await
        .expect(400);
    assert_eq!(r["detail"], "Provide either scenario_prompts or scenario_prompt, not both");
    server
        .post("/v1/test-call-batches", k, run_body(&t, json!({ "run_count": 2, "target_id": 999_999 })))
        .await
        .expect(404);

    let body = run_body(
        &t,
        json!({ "run_count": 2, "target_type": "phone_number", "target_id": t.number_id, "direction": "inbound", "target_number": "+15550000486" }),
    );
    let batch = server.post("/v1/test-call-batches", k, body).await.expect(201);
    let done = wait_for(&server, &format!("/v1/test-call-batches/{}", batch["id"]), k, SETTLE, |b| {
        b["status"] != "in_progress"
    })
    .await;
    assert_eq!((done["status"].as_str(), done["failed_runs"].as_u64()), (Some("failed"), Some(2)), "{done}");
    assert!(!done["error_message"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staggered_batch_survives_sigkill_and_accounts_for_every_run_once() {
    let mut server = Server::start_with(FAST);
    let t = tester(&server, 2_000).await;
    let k = t.org.key.clone();
    let batch = server
        .post("/v1/test-call-batches", &k, run_body(&t, json!({ "run_count": 4, "stagger_seconds": 1 })))
        .await
        .expect(201);
    let id = batch["id"].as_u64().unwrap();
    assert_eq!(batch["run_ids"].as_array().unwrap().len(), 4, "{batch}");
    wait_for(&server, &format!("/v1/test-call-batches/{id}/events"), &k, SETTLE, |events| {
        events.as_array().unwrap().iter().filter(|e| e["type"] == "run_launched").count() >= 2
    })
    .await;
    server.kill();
    server.restart();

    let done =
        wait_for(&server, &format!("/v1/test-call-batches/{id}"), &k, SETTLE, |b| b["status"] != "in_progress").await;
    let run_ids: Vec<u64> = done["run_ids"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect();
    assert_eq!(run_ids, batch["run_ids"].as_array().unwrap().iter().map(|r| r.as_u64().unwrap()).collect::<Vec<_>>());
    let mut unique = run_ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 4);
    assert_eq!(done["completed_runs"].as_u64().unwrap() + done["failed_runs"].as_u64().unwrap(), 4);
    let events = server.get(&format!("/v1/test-call-batches/{id}/events"), &k).await.expect(200);
    let indexes: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "run_launched")
        .map(|e| e["data"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![0, 1, 2, 3]);
    let runs = server.get("/v1/test-calls?limit=200", &k).await.expect(200);
    assert_eq!(runs.as_array().unwrap().iter().filter(|r| r["batch_id"] == id).count(), 4);
    // Every run's call was billed once, and nothing is left reserved.
    wait_for(&server, "/v1/billing", &k, SETTLE, |b| b["reserved_cents"] == 0).await;
}
