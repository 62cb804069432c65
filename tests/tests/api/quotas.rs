//! Per-org quotas: documented defaults, set by the admin, and a 403 past them.

use serde_json::{Value, json};
use switchboard_tests::{ADMIN_TOKEN, Server};

fn refused_by_quota(body: &Value, field: &str) {
    assert_eq!(body["code"], "quota_exceeded", "{body}");
    assert!(body["detail"].as_str().unwrap().contains(field), "the detail names the quota: {body}");
}

#[tokio::test]
async fn creates_past_a_quota_answer_403_until_the_admin_raises_it() {
    let server = Server::start_with(&["--sim-ring-ms", "100", "--sim-talk-ms", "600"]);
    let t = server.org_ready_to_call("Acme", 2_000, "+14155550100").await;
    let (k, org) = (&t.org.key, format!("/admin/v1/orgs/{}", t.org.id));

    let defaults = server.get(&org, ADMIN_TOKEN).await.expect(200);
    let quotas = |o: &Value| {
        ["max_agents", "max_api_keys", "max_voip_connections", "max_phone_numbers", "max_open_batches"]
            .iter()
            .chain(&["max_webhook_endpoints"])
            .map(|f| o[f].as_u64())
            .collect::<Vec<_>>()
    };
    assert_eq!(quotas(&defaults), [1_000, 50, 100, 1_000, 20, 20].map(Some), "{defaults}");

    for bad in [json!(-1), json!(100_001), json!("5")] {
        let r = server.patch(&org, ADMIN_TOKEN, json!({ "max_agents": bad })).await.expect(400);
        assert!(r["max_agents"].is_array(), "{r}");
    }
    // The org holds one agent, key, connection and number: make each its quota.
    let set = json!({ "max_agents": 1, "max_api_keys": 1, "max_voip_connections": 1, "max_phone_numbers": 1,
                      "max_open_batches": 1, "max_webhook_endpoints": 7 });
    let patched = server.patch(&org, ADMIN_TOKEN, set).await.expect(200);
    assert_eq!(quotas(&patched), [1, 1, 1, 1, 1, 7].map(Some), "{patched}");
    assert_eq!(quotas(&server.get(&org, ADMIN_TOKEN).await.expect(200)), quotas(&patched));

    let r = server.post("/v1/agents", k, json!({ "name": "second", "prompt": "", "voice": "alloy" })).await.expect(403);
    refused_by_quota(&r, "max_agents");
    refused_by_quota(&server.post("/v1/keys", k, json!({ "name": "second" })).await.expect(403), "max_api_keys");
    let r = server.post(&format!("{org}/keys"), ADMIN_TOKEN, json!({ "name": "second" })).await.expect(403);
    refused_by_quota(&r, "max_api_keys");
    let mut create = switchboard_tests::sim_connection();
    let tested = server.test_connection(k, create.clone()).await;
    create["verification_evidence_id"] = tested["verification_evidence"]["id"].clone();
    let r = server.post("/v1/voip-connections", k, create).await.expect(403);
    refused_by_quota(&r, "max_voip_connections");
    let r = server.post("/v1/phone-numbers", k, json!({})).await.expect(403);
    refused_by_quota(&r, "max_phone_numbers");
    let import = format!("/v1/voip-connections/{}/import-numbers", t.connection_id);
    let body = json!({ "numbers": ["+14155550101"] });
    refused_by_quota(&server.post(&import, k, body).await.expect(403), "max_phone_numbers");
    // The refused number was not left claimed: another org may have it.
    let other = server.org_ready_to_call("Other", 0, "+14155550101").await;
    assert_eq!(other.number, "+14155550101");

    let batch = json!({ "target_type": "agent", "target_id": t.agent_id, "direction": "outbound",
                        "consent_to_charge": true, "run_count": 3, "stagger_seconds": 60 });
    let open = server.post("/v1/test-call-batches", k, batch.clone()).await.expect(201);
    let r = server.post("/v1/test-call-batches", k, batch.clone()).await.expect(403);
    refused_by_quota(&r, "max_open_batches");
    // A canceled batch spawns nothing more: it is no longer open.
    server.post(&format!("/v1/test-call-batches/{}/cancel", open["id"]), k, json!({})).await.expect(200);
    server.post("/v1/test-call-batches", k, batch).await.expect(201);

    server.patch(&org, ADMIN_TOKEN, json!({ "max_agents": 2 })).await.expect(200);
    server.post("/v1/agents", k, json!({ "name": "second", "prompt": "", "voice": "alloy" })).await.expect(201);
    refused_by_quota(
        &server.post("/v1/agents", k, json!({ "name": "third", "prompt": "", "voice": "alloy" })).await.expect(403),
        "max_agents",
    );
    // Deleting one makes room again.
    let agents = server.get("/v1/agents", k).await.expect(200);
    let second = agents.as_array().unwrap().iter().find(|a| a["name"] == "second").unwrap()["id"].clone();
    assert_eq!(server.delete(&format!("/v1/agents/{second}"), k).await.status, 204);
    server.post("/v1/agents", k, json!({ "name": "third", "prompt": "", "voice": "alloy" })).await.expect(201);
}

/// The org's running test calls are counted as calls start and end (not by looking at every
/// call of the partition): a batch at the limit launches each run as a slot frees, and the count
/// is back to nothing once they all ended.
#[tokio::test]
async fn a_batch_at_the_run_limit_launches_each_run_as_a_slot_frees() {
    let server = Server::start_with(&["--sim-ring-ms", "100", "--sim-talk-ms", "600"]);
    let t = server.org_ready_to_call("Acme", 2_000, "+14155550100").await;
    let k = &t.org.key;
    let org = format!("/admin/v1/orgs/{}", t.org.id);
    server.patch(&org, ADMIN_TOKEN, json!({ "max_concurrent_test_calls": 1 })).await.expect(200);
    let run = json!({ "target_type": "agent", "target_id": t.agent_id, "direction": "outbound",
                      "consent_to_charge": true });
    let mut batch = run.clone();
    batch["run_count"] = json!(3);
    batch["stagger_seconds"] = json!(0);
    let created = server.post("/v1/test-call-batches", k, batch).await.expect(201);
    assert_eq!(created["run_ids"].as_array().unwrap().len(), 3, "the batch lists its runs at once, queued");
    let path = format!("/v1/test-call-batches/{}", created["id"]);
    // One slot: never more than one of its runs in progress at a time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = loop {
        let runs = server.get("/v1/test-calls?limit=200", k).await.expect(200);
        let running = runs.as_array().unwrap().iter().filter(|r| r["status"] == "in_progress").count();
        assert!(running <= 1, "one slot, {running} runs in progress: {runs}");
        let batch = server.get(&path, k).await.expect(200);
        if batch["status"] != "in_progress" {
            break batch;
        }
        assert!(std::time::Instant::now() < deadline, "the batch never ended: {batch}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!((done["status"].as_str(), done["completed_runs"].as_u64()), (Some("completed"), Some(3)), "{done}");
    // Every run ended, so the slot is free again.
    server.post("/v1/test-calls", k, run).await.expect(201);
}
