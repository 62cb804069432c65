//! Secrets at rest and the hygiene of what the data directory keeps: its permissions, SIP
//! passwords sealed under a key that is not in the log (and shredded with their connection),
//! idempotent replays that withhold the secrets they first returned, and idempotency keys that
//! leave the disk once their window is over.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use switchboard_tests::{ADMIN_TOKEN, Server, binary, cluster_mode};

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
        server.post("/v1/agents", &org.key, serde_json::json!({ "name": "Support" })).await.expect(201);
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
    assert_private(&data_dir);
}
