//! The one switchboard binary: `dev` runs everything in one process; `admin` talks to a
//! running gateway; `bench` measures.

mod admin;
mod audit;
mod bench;
mod cluster;
mod dev;
mod http;
mod payments;
mod private;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Call orchestration engine for AI voice agents")]
struct Cli {
    /// Log lines as text or as JSON objects (one per line). `RUST_LOG` sets the level.
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs gateway, orchestrator and billing in one process over the in-process bus.
    Dev(dev::Args),
    /// Cluster mode: a gateway (stateless; run any number behind a load balancer).
    Gateway(cluster::GatewayArgs),
    /// Cluster mode: an orchestrator worker owning a set of partitions.
    Orchestrator(cluster::OrchestratorArgs),
    /// Cluster mode: a billing worker owning a set of partitions.
    Billing(cluster::BillingArgs),
    /// Administers a running switchboard through its admin API.
    #[command(subcommand)]
    Admin(admin::Command),
    /// Checks a stopped data directory against its event log.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Command),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    private::restrict_new_files();
    // A benchmark logs only what goes wrong: a line per request would drown its report.
    let default_level = if matches!(cli.command, Command::Bench(_)) { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().with_current_span(true).with_span_list(true).init();
    } else {
        logs.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Gateway(args) => cluster::gateway(args).await,
            Command::Orchestrator(args) => cluster::orchestrator(args).await,
            Command::Billing(args) => cluster::billing(args).await,
            Command::Admin(command) => admin::run(command).await,
            Command::Audit(command) => audit::run(command),
            Command::Bench(command) => bench::run(command).await,
        }
    })
}

/// Installs the process's metrics recorder; its render goes to `GET /metrics`.
pub fn metrics() -> gateway::MetricsRender {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    let handle = HANDLE
        .get_or_init(|| {
            use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
            const SECONDS: &[f64] =
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];
            PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("eventlog_group_commit_size".into()), SIZES))
                .expect("metric buckets are valid")
                .install_recorder()
                .expect("installing the metrics recorder")
        })
        .clone();
    std::sync::Arc::new(move || handle.render())
}

/// Serves `GET /metrics` for a worker that has no HTTP API of its own.
pub async fn serve_metrics(listen: &str) -> anyhow::Result<()> {
    let render = metrics();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tokio::spawn(async move {
        // It stops with the process.
        if let Err(e) = gateway::serve_metrics(listener, render, std::future::pending()).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
