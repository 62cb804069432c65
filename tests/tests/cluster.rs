//! What only a cluster can show: processes dying under load while the rest carries on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::{ADMIN_TOKEN, Org, Server, Sipp, wait_for};

const ARGS: &[&str] =
    &["--sim-ring-ms", "100", "--sim-talk-ms", "1500", "--ring-timeout-ms", "1000", "--max-call-seconds", "30"];
const SETTLE: Duration = Duration::from_secs(30);

/// Creates orgs until one lands on a partition the given orchestrator worker owns (the test
/// cluster has 8 partitions: worker 0 owns 0-3, worker 1 owns 4-7), and readies it to call.
async fn org_on_worker(server: &Server, worker: u64) -> Org {
    loop {
        let org = server.create_org("Acme").await;
        if (org.id % 8) / 4 != worker {
            continue;
        }
        let number = format!("+1415555{:04}", org.id);
        let caller = server.ready_to_call(org, 100_000, &number).await;
        // Load tests send more than the default 100 requests a second.
        let limit = json!({ "rate_limit_per_second": 100_000 });
        server.patch(&format!("/admin/v1/orgs/{}", caller.org.id), ADMIN_TOKEN, limit).await.expect(200);
        return caller.org;
    }
}

fn call_body(org: &Org) -> Value {
    json!({ "from_number": format!("+1415555{:04}", org.id), "to_number": "+14155550123" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_under_load_loses_no_acknowledged_call() {
    let mut server = Server::start_cluster(ARGS);
    let org = org_on_worker(&server, 0).await;
    let url = server.url.clone();
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 40;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (url, key, body) = (url.clone(), org.key.clone(), call_body(&org));
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut outcomes = Vec::new();
            for _ in 0..PER_CLIENT {
                let started = Instant::now();
                let sent = http.post(format!("{url}/v1/call")).bearer_auth(&key).json(&body).send().await;
                let outcome = match sent {
                    Ok(r) if r.status() == 201 => Ok(r.json::<Value>().await.unwrap()["call_id"].as_u64().unwrap()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                };
                outcomes.push((started, outcome));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    server.cluster().unwrap().kill_gateway(0);

    let mut acknowledged = Vec::new();
    let mut failed = Vec::new();
    for client in clients {
        for (started, outcome) in client.await.unwrap() {
            match outcome {
                Ok(id) => acknowledged.push(id),
                Err(e) => failed.push((started, e)),
            }
        }
    }
    // Only requests a gateway had already taken when it died may fail; after that nginx sends
    // everything to the survivor.
    assert!(failed.len() <= CLIENTS, "{} requests failed: {failed:?}", failed.len());
    for (started, e) in &failed {
        assert!(*started < killed_at + Duration::from_millis(500), "a request failed well after the kill: {e}");
    }
    assert!(acknowledged.len() >= CLIENTS * PER_CLIENT - CLIENTS);
    for id in &acknowledged {
        server.get(&format!("/v1/calls/{id}"), &org.key).await.expect(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_killed_and_restarted_resumes_its_calls_and_charges_once() {
    let mut server = Server::start_cluster(ARGS);
    let survivor = org_on_worker(&server, 0).await;
    let victim = org_on_worker(&server, 1).await;
    let mut calls = Vec::new();
    for _ in 0..3 {
        let r = server.post("/v1/call", &victim.key, call_body(&victim)).await.expect(201);
        calls.push(r["call_id"].as_u64().unwrap());
    }
    wait_for(&server, &format!("/v1/calls/{}", calls[0]), &victim.key, SETTLE, |c| !c["sip_answered_at"].is_null())
        .await;
    server.cluster().unwrap().kill_orchestrator(1);

    // The dead worker's orgs get a clean 503 with Retry-After; the other worker's orgs carry on.
    let r = server.get(&format!("/v1/calls/{}", calls[0]), &victim.key).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.body["detail"].as_str().unwrap().contains("retry"), "{}", r.body);
    let r = server.post("/v1/agents", &victim.key, json!({ "name": "x", "prompt": "", "voice": "alloy" })).await;
    assert_eq!(r.status, 503);
    server.post("/v1/call", &survivor.key, call_body(&survivor)).await.expect(201);

    server.cluster().unwrap().start_orchestrator(1);
    for id in &calls {
        let call = wait_for(&server, &format!("/v1/calls/{id}"), &victim.key, SETTLE, |c| {
            c["status"] != "in_progress" && !c["billing_total_cents"].is_null()
        })
        .await;
        assert_eq!(call["status"], "completed", "{call}");
    }
    let b = wait_for(&server, "/v1/billing", &victim.key, SETTLE, |b| b["reserved_cents"] == 0).await;
    let txs = server.get("/v1/billing/transactions?limit=200", &victim.key).await.expect(200);
    let mut charged: Vec<u64> =
        txs["results"].as_array().unwrap().iter().filter_map(|t| t["call_id"].as_u64()).collect();
    charged.sort_unstable();
    assert_eq!(charged, calls, "each call charged exactly once");
    let total: i64 = txs["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "call_usage")
        .map(|t| t["amount_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(b["balance_cents"].as_i64().unwrap(), 100_000 + total);
    // Nothing written before the kill was lost.
    server.get("/v1/agents", &victim.key).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_cleanly_while_nats_is_down_and_succeed_once_it_is_back() {
    let mut server = Server::start_cluster(ARGS);
    let org = org_on_worker(&server, 0).await;
    server.get("/v1/agents", &org.key).await.expect(200);
    server.cluster().unwrap().kill_nats();
    let r = server.get("/v1/agents", &org.key).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));

    server.cluster().unwrap().restart_nats();
    // Every process reconnects by itself and resubscribes.
    wait_for(&server, "/v1/agents", &org.key, SETTLE, |_| true).await;
    server.post("/v1/agents", &org.key, json!({ "name": "After", "prompt": "", "voice": "alloy" })).await.expect(201);
    let r = server.post("/v1/call", &org.key, call_body(&org)).await.expect(201);
    wait_for(&server, &format!("/v1/calls/{}", r["call_id"]), &org.key, SETTLE, |c| c["status"] == "completed").await;
}

#[tokio::test]
async fn a_worker_given_partitions_another_owns_refuses_to_start() {
    let mut server = Server::start_cluster(ARGS);
    let nats = server.cluster().unwrap().nats_env();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(switchboard_tests::binary())
        .args(["orchestrator", "--partition-count", "8", "--partitions", "2-5", "--data-dir"])
        .arg(dir.path())
        .envs(nats)
        .env("SWITCHBOARD_SECRETS_KEY_FILE", server.data_dir.join("secrets.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already served by another worker"), "{stderr}");
}

/// `POST {url}/v1/call` with the key "call-once".
async fn post_keyed_call(url: &str, key: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
    let request = reqwest::Client::new().post(format!("{url}/v1/call")).bearer_auth(key);
    request.header("Idempotency-Key", "call-once").json(body).send().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_call_retried_after_its_gateway_died_mid_request_is_placed_once() {
    // A key whose first run has gone quiet for half a second is taken for abandoned.
    let mut server = Server::start_cluster(&["--idempotency-abandoned-after-ms", "500"]);
    // The trunk says nothing for two seconds: the first request is still in its gateway, its
    // call recorded, when that gateway dies.
    let trunk = Sipp::start_over("slow_to_answer.xml", "tcp");
    let org = server.create_org("Acme").await;
    let c = server.ready_to_call_over(org, 500, "+14155550100", trunk.connection()).await;
    let body = json!({ "from_number": c.number, "to_number": "+14155550123" });
    let first = {
        let (url, key, body) = (server.cluster().unwrap().gateway_url(0), c.org.key.clone(), body.clone());
        tokio::spawn(async move { post_keyed_call(&url, &key, &body).await })
    };
    let listed = wait_for(&server, "/v1/calls", &c.org.key, SETTLE, |p| p["total"] == 1).await;
    let call_id = listed["results"][0]["call_id"].as_u64().unwrap();
    server.cluster().unwrap().kill_gateway(0);
    assert!(first.await.unwrap().is_err(), "the first request died with its gateway");

    // The client retries through nginx with the same key until it gets an answer: 409 while the
    // first run may still be alive, then the request runs again and finds its call.
    let deadline = Instant::now() + SETTLE;
    let answer = loop {
        let r = post_keyed_call(&server.url, &c.org.key, &body).await.unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        if status != 409 {
            break (status, answer);
        }
        assert_eq!(answer["code"], "idempotency_in_progress");
        assert!(Instant::now() < deadline, "the key stayed in progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The call the first request placed is the answer. (Its `idempotent_replay` says false: the
    // request was run again, not replayed from a record; see the README.)
    assert_eq!((answer.0, &answer.1["call_id"], &answer.1["status"]), (201, &json!(call_id), &json!("initiated")));
    let calls = server.get("/v1/calls", &c.org.key).await.expect(200);
    assert_eq!(calls["total"], 1, "exactly one call: {calls}");
    // And from now on the key replays that answer.
    let replay = post_keyed_call(&server.url, &c.org.key, &body).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["call_id"], call_id);
    let calls = server.get("/v1/calls", &c.org.key).await.expect(200);
    assert_eq!(calls["total"], 1, "still one call: {calls}");
}

#[tokio::test]
async fn the_cluster_nats_refuses_a_client_without_its_credentials() {
    let mut server = Server::start_cluster(ARGS);
    let url = server.cluster().unwrap().nats_url();
    let err = bus::NatsBus::connect(&bus::NatsOptions::plain(url)).await.err().expect("refused");
    assert!(err.to_string().contains("refused our credentials"), "{err}");
}

#[tokio::test]
async fn a_worker_given_wrong_nats_credentials_fails_to_start_with_a_clear_error() {
    let mut server = Server::start_cluster(ARGS);
    let env = server.cluster().unwrap().nats_env();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(switchboard_tests::binary())
        .args(["billing", "--partition-count", "8", "--partitions", "all", "--data-dir"])
        .arg(dir.path())
        .envs(env)
        .env("SWITCHBOARD_NATS_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused our credentials"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "the error shows the password: {stderr}");
}

#[tokio::test]
async fn a_gateway_refuses_to_start_with_a_guessable_admin_token() {
    for (token, reason) in [
        ("", "empty"),
        ("change-me", "well-known placeholder"),
        ("a-short-token", "at least 32"),
        ("changeme-changeme-changeme-changeme", "only 8 different characters"),
    ] {
        let out = std::process::Command::new(switchboard_tests::binary())
            .args(["gateway", "--listen", "127.0.0.1:0"])
            .env("SWITCHBOARD_ADMIN_TOKEN", token)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a gateway started with the admin token {token:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{token:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_worker_connects_to_nats_over_tls_trusting_the_authority_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let tls = bus::testing::make_certificates(dir.path());
    let config = bus::testing::ServerConfig { tls: Some(tls), ..bus::testing::ServerConfig::with_password() };
    let nats = bus::testing::NatsServer::start_with(config);
    let billing = |env: Vec<(&'static str, String)>| {
        let mut command = std::process::Command::new(switchboard_tests::binary());
        command
            .args(["billing", "--partition-count", "8", "--partitions", "all", "--data-dir"])
            .arg(dir.path().join("billing"))
            .env_remove("SWITCHBOARD_NATS_TLS_CA")
            .envs(env)
            .env("RUST_LOG", "warn");
        command
    };
    // The environment names the certificate authority (SWITCHBOARD_NATS_TLS_CA).
    let (mut worker, _) = bus::testing::spawn_ready(billing(nats.client_env()), "switchboard billing ready")
        .expect("billing connects over TLS");
    let _ = worker.kill();
    let _ = worker.wait();

    // Without it the system's authorities do not know the server: a clear error, at once.
    let without_ca = nats.client_env().into_iter().filter(|(name, _)| *name != "SWITCHBOARD_NATS_TLS_CA").collect();
    let mut command = billing(without_ca);
    command.arg("--nats-tls");
    let out = command.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}
