//! Secrets at rest and the hygiene of what the data directory keeps: its permissions, SIP
//! passwords sealed under a key that is not in the log (and shredded with their connection),
//! idempotent replays that withhold the secrets they first returned, and idempotency keys that
//! leave the disk once their window is over.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use switchboard_tests::{ADMIN_TOKEN, Server, binary, cluster_mode};

use super::hardening::post_keyed;

/// Every file and directory under `dir`, with its mode bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = vec![(dir.to_owned(), std::fs::metadata(dir).unwrap().permissions().mode() & 0o777)];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(modes(&path));
        } else {
            found.push((path.clone(), entry.metadata().unwrap().permissions().mode() & 0o777));
        }
    }
    found
}

fn assert_private(dir: &Path) {
    let found = modes(dir);
    assert!(found.iter().any(|(p, _)| p.ends_with("db")), "sled's files are under {}: {found:?}", dir.display());
    for (path, mode) in found {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{} is {mode:o}", path.display());
    }
}

/// A child process, killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_private_to_their_owner() {
    if cluster_mode() {
        // The workers create their own data directories under the cluster's.
        let server = Server::start();
        let org = server.create_org("Acme").await;
        server
            .post("/v1/agents", &org.key, serde_json::json!({ "name": "Support", "prompt": "", "voice": "alloy" }))
            .await
            .expect(201);
        for dir in server.data_dirs() {
            assert_private(&dir);
        }
        return;
    }
    // `dev` on a data directory it creates itself, with the admin token and the secrets key it
    // makes on first start.
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("fresh").join("data");
    let mut command = Command::new(binary());
    command
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .env("RUST_LOG", "warn");
    let (child, url) = bus::testing::spawn_ready(command, "switchboard listening on ").unwrap();
    let _child = Killed(child);
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{url}/admin/v1/orgs"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({ "name": "Acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_ne!(token.trim(), ADMIN_TOKEN);
    assert!(data_dir.join("secrets.key").exists(), "dev makes a secrets key on first start");
    assert_private(&data_dir);
}

/// Every file under the data directories that holds `needle`.
fn files_holding(server: &Server, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in server.data_dirs() {
        for (path, _) in modes(&dir) {
            if path.is_file() && std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}

/// Runs `switchboard audit <what>` on every data directory of a stopped server.
fn audit_output(server: &Server, what: &str) -> String {
    let mut out = String::new();
    for dir in server.data_dirs() {
        let mut command = Command::new(binary());
        command.args(["audit", what, "--data-dir"]).arg(&dir);
        if cluster_mode() {
            command.env("SWITCHBOARD_SECRETS_KEY_FILE", dir.parent().unwrap().join("secrets.key"));
        }
        let run = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "audit {what} of {}: {stdout}{}",
            dir.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        out.push_str(&stdout);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_password_is_sealed_at_rest_still_dials_and_is_shredded_with_its_connection() {
    const PASSWORD: &str = "pw-Zq8vL2-shred-me-7731";
    let mut server = Server::start_with(&["--ring-timeout-ms", "800", "--sip-answer-timeout-ms", "1000"]);
    // SIPp answers only an INVITE whose digest proves this password.
    let trunk = switchboard_tests::Sipp::start("auth_distinct_password.xml");
    let mut connection = trunk.connection();
    connection["credentials"]["password"] = PASSWORD.into();
    let org = server.create_org("Acme").await;
    let c = server.ready_to_call_over(org, 500, "+14155550100", connection.clone()).await;
    let body = serde_json::json!({ "from_number": c.number, "to_number": "+14155550123" });
    let id = server.post("/v1/call", &c.org.key, body).await.expect(201)["call_id"].as_u64().unwrap();
    let path = format!("/v1/calls/{id}");
    let timeout = std::time::Duration::from_secs(15);
    switchboard_tests::wait_for(&server, &path, &c.org.key, timeout, |call| !call["sip_answered_at"].is_null()).await;
    server.post(&format!("{path}/hangup"), &c.org.key, serde_json::json!({})).await.expect(200);
    let call =
        switchboard_tests::wait_for(&server, &path, &c.org.key, timeout, |call| !call["billing_total_cents"].is_null())
            .await;
    assert_eq!(call["end_reason"], "agent_hangup", "{call}");

    // A second connection whose secret outlives the first's.
    let kept = server.connect(&c.org.key, connection).await;
    assert_eq!(kept["credentials"], serde_json::json!({ "username": "alice" }), "{kept}");
    assert!(!kept.to_string().contains(PASSWORD), "{kept}");
    // The org's data is on disk (a flush happened for every answer); the password is nowhere.
    assert_eq!(files_holding(&server, PASSWORD), Vec::<PathBuf>::new());

    server.delete(&format!("/v1/phone-numbers/{}?confirm=true", c.number_id), &c.org.key).await.expect(200);
    server.delete(&format!("/v1/voip-connections/{}", c.connection_id), &c.org.key).await.expect(204);
    server.stop();
    switchboard_tests::audit(&server);
    let secrets = audit_output(&server, "secrets");
    let state_of = |id: &serde_json::Value| {
        let line = secrets.lines().find(|l| l.starts_with(&format!("voip_connection {id} "))).unwrap_or_else(|| {
            panic!("connection {id} is not listed: {secrets}");
        });
        line.rsplit(' ').next().unwrap().to_owned()
    };
    assert_eq!(state_of(&c.connection_id.into()), "shredded", "{secrets}");
    assert_eq!(state_of(&kept["id"]), "open", "{secrets}");
    assert_eq!(files_holding(&server, PASSWORD), Vec::<PathBuf>::new());

    // A number on the kept connection still verifies after a restart: its secret opens.
    server.restart();
    let number = server.import_number(&c.org.key, kept["id"].as_u64().unwrap(), "+14155550101").await;
    server.verify_number(&c.org.key, number).await;
}

#[tokio::test]
async fn a_keyed_api_key_create_never_writes_the_key_and_its_replay_withholds_it() {
    let mut server = Server::start();
    let org = server.create_org("Acme").await;
    let body = serde_json::json!({ "name": "ci" });
    let (status, headers, first) = post_keyed(&server, &org.key, "new-key-1", "/v1/keys", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert!(!headers.contains_key("idempotent-secret-withheld"));
    let raw = first["key"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("sk_live_"), "{first}");
    assert_eq!(server.get("/v1/agents", &raw).await.status, 200, "the key shown once works");
    // The raw key's secret part is on no disk, even after everything was flushed.
    server.stop();
    let secret_part = &raw[raw.len() - 32..];
    assert_eq!(files_holding(&server, secret_part), Vec::<PathBuf>::new());
    server.restart();

    let (status, headers, replay) = post_keyed(&server, &org.key, "new-key-1", "/v1/keys", body.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["idempotent-secret-withheld"], "key");
    let mut expected = first.clone();
    expected["key"] = serde_json::Value::Null;
    assert_eq!(replay, expected, "the same key, its secret withheld");
    assert_eq!(server.get("/v1/keys", &org.key).await.expect(200).as_array().unwrap().len(), 2, "created once");
}

#[tokio::test]
async fn idempotency_keys_leave_the_disk_after_their_retention_and_the_log_still_verifies() {
    let mut server = Server::start_with(&["--idempotency-retention-ms", "1500"]);
    let org = server.create_org("Acme").await;
    let (status, _, first) = post_keyed(
        &server,
        &org.key,
        "short-lived",
        "/v1/agents",
        serde_json::json!({ "name": "One", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, _, conflict) = post_keyed(
        &server,
        &org.key,
        "short-lived",
        "/v1/agents",
        serde_json::json!({ "name": "Two", "prompt": "", "voice": "alloy" }),
    )
    .await;
    assert_eq!((status, conflict["code"].as_str()), (409, Some("idempotency_conflict")));

    // Once its retention is over, the key is new again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _, _) = post_keyed(
            &server,
            &org.key,
            "short-lived",
            "/v1/agents",
            serde_json::json!({ "name": "Two", "prompt": "", "voice": "alloy" }),
        )
        .await;
        if status == 201 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // And the sweep removes its stream from disk, while the log still verifies.
    loop {
        server.stop();
        switchboard_tests::audit(&server);
        let report = audit_output(&server, "verify");
        let kept: usize = report
            .lines()
            .filter_map(|l| l.strip_suffix(" idempotency key streams kept"))
            .map(|n| n.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
            .sum();
        if kept == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "idempotency key streams were never removed: {report}");
        server.restart();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[test]
fn an_orchestrator_refuses_to_start_without_a_valid_secrets_key() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = |key_file: Option<&Path>| {
        let mut command = Command::new(binary());
        command.args(["orchestrator", "--partitions", "all", "--data-dir"]).arg(dir.path().join("data"));
        command.env_remove("SWITCHBOARD_SECRETS_KEY_FILE").env("SWITCHBOARD_NATS_URL", "nats://127.0.0.1:1");
        if let Some(file) = key_file {
            command.arg("--secrets-key-file").arg(file);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(orchestrator(None).contains("--secrets-key-file"));
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    assert!(orchestrator(Some(&bad)).contains("64 hexadecimal digits"));
}
