//! The command line: `admin create-org` and `admin credit` against a running `switchboard dev`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn admin_commands_create_orgs_and_credit_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut printed_token = None;
    let url = loop {
        let line = lines.next().expect("dev printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("admin token (also in ") {
            printed_token = rest.split(": ").nth(1).map(str::to_owned);
        }
        if let Some(url) = line.strip_prefix("switchboard listening on ") {
            break url.to_owned();
        }
    };
    // Without the env var, dev made a token, printed it and wrote it to the data directory.
    let written = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    assert_eq!(printed_token.as_deref(), Some(written.trim()));

    let admin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("admin")
            .args(args)
            .args(["--url", &url, "--data-dir"])
            .arg(dir.path())
            .env_remove("SWITCHBOARD_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let printed = admin(&["create-org", "--name", "Acme"]);
    assert!(printed["api_key"].as_str().unwrap().starts_with("sk_live_"), "{printed}");
    assert_eq!(printed.as_object().unwrap().len(), 2);
    let org = printed["org_id"].as_u64().expect("an org id").to_string();

    // Credits: a repeated reference adds nothing; a fresh one adds.
    let first = admin(&["credit", "--org", &org, "--cents", "250", "--reference", "invoice-1"]);
    assert_eq!((first["kind"].as_str(), first["balance_after_cents"].as_i64()), (Some("adjustment"), Some(250)));
    let repeat = admin(&["credit", "--org", &org, "--cents", "250", "--reference", "invoice-1"]);
    assert_eq!(repeat, first);
    let fresh = admin(&["credit", "--org", &org, "--cents", "100"]);
    assert_eq!(fresh["balance_after_cents"].as_i64(), Some(350));
    let _ = dev.kill();
    let _ = dev.wait();
}
