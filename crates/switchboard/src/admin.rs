//! `switchboard admin ...`: the admin API from the command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Creates an org and its first API key; prints `{"org_id", "api_key"}`.
    CreateOrg {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Adds funds to an org's prepaid balance; prints the transaction.
    Credit {
        #[arg(long)]
        org: u64,
        #[arg(long)]
        cents: i64,
        /// Makes the credit idempotent: a repeat with the same reference adds nothing.
        /// Defaults to a fresh one.
        #[arg(long)]
        reference: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(clap::Args)]
pub struct Target {
    /// The gateway's base URL.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The admin token; when absent, read from `<data-dir>/admin-token`.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// The data directory of a local `switchboard dev`, for its admin token.
    #[arg(long, default_value = "./switchboard-data")]
    data_dir: PathBuf,
}

impl Target {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.admin_token {
            return Ok(t.clone());
        }
        let path = self.data_dir.join("admin-token");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("no --admin-token given and cannot read {}", path.display()))?
            .trim()
            .to_owned())
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(self.token()?)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {url} answered {status}: {body}");
        }
        Ok(body)
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::CreateOrg { name, target } => {
            let org = target.post("/admin/v1/orgs", json!({ "name": name })).await?;
            let org_id = org["id"].as_u64().context("the org has no id")?;
            let key = target.post(&format!("/admin/v1/orgs/{org_id}/keys"), json!({ "name": "default" })).await?;
            println!("{}", json!({ "org_id": org_id, "api_key": key["key"] }));
        }
        Command::Credit { org, cents, reference, target } => {
            let reference = reference.unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()));
            let body = json!({ "amount_cents": cents, "reference": reference });
            let transaction = target.post(&format!("/admin/v1/orgs/{org}/credits"), body).await?;
            println!("{transaction}");
        }
    }
    Ok(())
}
