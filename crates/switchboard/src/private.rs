//! The data directory is the operator's alone: it holds the event log, the admin token and the
//! secrets key. The process's umask is narrowed at start, so that every file and directory it
//! creates (sled's own files included, which sled creates with the default mode and may create
//! again at any time, such as snapshots) is readable by its owner only, and the directories this
//! binary makes are created, or narrowed if they exist, to 0700.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Makes every file this process creates from now on private to its owner (0600 for files,
/// 0700 for directories, whatever mode the creator asks for).
pub fn restrict_new_files() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}

/// Creates a data directory (and its parents) with mode 0700, or narrows an existing one to it.
pub fn create_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("restricting {} to its owner", path.display()))
}

/// Writes a new file that only its owner may read: the admin token, the secrets key.
pub fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", path.display()))
}

/// Reads the secrets key (see `orchestrator::vault`) from its file.
pub fn read_secrets_key(path: &Path) -> anyhow::Result<orchestrator::vault::MasterKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the secrets key {}", path.display()))?;
    orchestrator::vault::MasterKey::parse(&text).with_context(|| format!("the secrets key {}", path.display()))
}

/// Reads the secrets key from `path`, first making a new one there (0600) if there is none, as
/// `dev` does on its first start.
pub fn secrets_key_or_create(path: &Path) -> anyhow::Result<orchestrator::vault::MasterKey> {
    if !path.exists() {
        write_new(path, format!("{}\n", orchestrator::vault::MasterKey::generate_hex()).as_bytes())?;
        println!("secrets key written to {} (keep it: without it no stored secret opens)", path.display());
    }
    read_secrets_key(path)
}
