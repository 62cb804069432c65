//! ThunderPhone's official Python client (`thunderphone` 0.2.0, pinned in `.ci/run`) against
//! switchboard, unchanged: each test starts a server and an org and runs one area of
//! `tests/client/` (see `tests/client/client.py`), which fails on any response the client cannot
//! parse. The runs' output is printed (`cargo test --test api official_client -- --nocapture`).

use std::path::Path;
use std::process::Command;

use switchboard_tests::{ADMIN_TOKEN, Server};

/// Runs `tests/client/client.py <area>` against `server` for a fresh org, and fails with its
/// output unless every step passed.
async fn drive(server: &Server, area: &str) {
    let org = server.create_org(&format!("Official client: {area}")).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("client/client.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(area)
        .env("SWITCHBOARD_URL", &server.url)
        .env("SWITCHBOARD_KEY", &org.key)
        .env("SWITCHBOARD_ORG_ID", org.id.to_string())
        .env("SWITCHBOARD_ADMIN_URL", server.admin_url())
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("python3 runs (the official client is installed by .ci/run)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the official client failed on {area}:\n{stdout}\n{stderr}");
}

#[tokio::test]
async fn healthz_and_whoami() {
    drive(&Server::start(), "basics").await;
}

#[tokio::test]
async fn voip_connections_and_phone_numbers() {
    drive(&Server::start(), "voip").await;
}

#[tokio::test]
async fn agents() {
    drive(&Server::start(), "agents").await;
}

/// Calls on the simulated carrier with short timings: ring 100 ms, talk 600 ms.
#[tokio::test]
async fn calls() {
    let fast = ["--sim-ring-ms", "100", "--sim-talk-ms", "600", "--ring-timeout-ms", "400", "--max-call-seconds", "30"];
    drive(&Server::start_with(&fast), "calls").await;
}

/// Quick simulated calls, so runs and batches settle in seconds.
const QUICK_CALLS: &[&str] =
    &["--sim-ring-ms", "100", "--sim-talk-ms", "600", "--ring-timeout-ms", "400", "--max-call-seconds", "30"];

#[tokio::test]
async fn test_calls_and_batches() {
    drive(&Server::start_with(QUICK_CALLS), "test_calls").await;
}

#[tokio::test]
async fn billing() {
    drive(&Server::start(), "billing").await;
}
