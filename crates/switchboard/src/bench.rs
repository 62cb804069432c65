//! `switchboard bench ...`: throughput and latency percentiles, each against a baseline
//! measured in the same run on the same machine.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{Bus, Headers, SharedBus};
use eventlog::{ExpectedVersion, NewEvent, Store, StreamAppend};
use wire::pb::{self, billing_command::Kind, billing_reply::Result as R};

#[derive(clap::Subcommand)]
pub enum Command {
    /// `POST /v1/call` over HTTP against the single-process server (and with `--cluster`, a
    /// cluster), next to a bare event-log append with group commit, a bare HTTP handler
    /// (`GET /v1/healthz`) on the same stack, and (cluster) a bare NATS request/reply.
    Calls {
        /// Calls to place.
        #[arg(long, default_value_t = 2_000)]
        calls: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Orgs the calls spread over (each in its own partition while orgs <= 64).
        #[arg(long, default_value_t = 8)]
        orgs: usize,
        /// Also run a cluster (nats-server, a gateway, two orchestrator workers, a billing
        /// worker, as processes) and measure it beside the single process.
        #[arg(long)]
        cluster: bool,
    },
    /// Appends with group commit against one flush per append.
    Eventlog {
        /// Appends per mode.
        #[arg(long, default_value_t = 4000)]
        appends: usize,
        /// Concurrent appenders (each on a stream of its own).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Reservations through the bus to the billing service (single-process mode), against a
    /// bare request/reply on the same bus.
    Billing {
        /// Reservations in all.
        #[arg(long, default_value_t = 20_000)]
        reservations: usize,
        /// Concurrent requesters.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Orgs the reservations spread over (each in its own partition while orgs <= 64).
        #[arg(long, default_value_t = 16)]
        orgs: u64,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Eventlog { appends, concurrency } => eventlog_bench(appends, concurrency.max(1)).await,
        Command::Calls { calls, concurrency, orgs, cluster } => {
            calls_bench(calls, concurrency.max(1), orgs.clamp(1, 1000), cluster).await
        }
        Command::Billing { reservations, concurrency, orgs } => {
            billing_bench(reservations, concurrency.max(1), orgs.max(1)).await
        }
    }
}

async fn eventlog_bench(appends: usize, concurrency: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), &eventlog::Options::default())?;
    let log = store.log("bench", 0, Vec::new())?;
    let run = uuid::Uuid::new_v4();
    println!("event log: {appends} appends of one 100-byte event, {concurrency} concurrent appenders");
    header("appends/s");
    for group_commit in [false, true] {
        let (store, log) = (store.clone(), log.clone());
        let (elapsed, latencies) = drive(appends, concurrency, move |i| {
            let (store, log) = (store.clone(), log.clone());
            async move {
                let append = StreamAppend {
                    stream: format!("bench/{run}/{group_commit}/{}", i % concurrency),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent::encode("bench", &vec![7u8; 100])?],
                };
                if group_commit {
                    log.append_durable(vec![append]).await?;
                } else {
                    let _visible = log.append(vec![append])?;
                    tokio::task::spawn_blocking(move || store.flush_now()).await??;
                }
                Ok(())
            }
        })
        .await?;
        row(if group_commit { "group commit" } else { "flush per append" }, elapsed, latencies);
    }
    Ok(())
}

async fn billing_bench(reservations: usize, concurrency: usize, orgs: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), &eventlog::Options::default())?;
    let partitioning = domain::Partitioning::new(domain::Partitioning::DEFAULT_COUNT);
    let bus: SharedBus = Arc::new(bus::InProcessBus::new());
    let service = billing::Billing::build(billing::Options {
        partitioning,
        partitions: (0..partitioning.count()).collect(),
        store: store.clone(),
        bus: bus.clone(),
        expiry_check_interval: Duration::from_secs(60),
        clock: actor::system_clock(),
        payments: billing::Payments {
            provider: Arc::new(billing::payments::SimulatedProvider::new()),
            charge_timeout: Duration::from_secs(5),
        },
    })
    .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));

    let timeout = Duration::from_secs(30);
    let request = {
        let bus = bus.clone();
        move |org: u64, kind: Kind| {
            let bus = bus.clone();
            async move {
                let subject = bus::subjects::billing_commands(partitioning.of_org(domain::ids::OrgId(org)));
                let message = pb::BillingCommand { org_id: org, kind: Some(kind) };
                let bytes = bus.request(&subject, &Headers::new(), wire::encode(&message), timeout).await?;
                match wire::decode::<pb::BillingReply>(&bytes)?.result {
                    Some(R::Failure(f)) => anyhow::bail!("{}: {}", f.code, f.detail),
                    _ => Ok(()),
                }
            }
        }
    };
    for org in 1..=orgs {
        let top_up = pb::TopUp { reference: "bench".into(), cents: 100_000_000, description: String::new() };
        request(org, Kind::TopUp(top_up)).await?;
    }

    // The baseline: a responder that answers at once, on the same bus and runtime.
    let mut echo = bus.subscribe("bench.echo").await?;
    tokio::spawn(async move {
        while let Some(m) = echo.next().await {
            let payload = m.payload.clone();
            let _ = m.respond(payload).await;
        }
    });

    println!(
        "billing: {reservations} reservations over {orgs} orgs, {concurrency} concurrent requesters, in-process bus"
    );
    header("requests/s");
    let bare = bus.clone();
    let (elapsed, latencies) = drive(reservations, concurrency, move |_| {
        let bus = bare.clone();
        async move {
            bus.request("bench.echo", &Headers::new(), bytes::Bytes::from_static(&[0; 64]), timeout).await?;
            Ok(())
        }
    })
    .await?;
    row("bare bus request/reply", elapsed, latencies);

    let (elapsed, latencies) = drive(reservations, concurrency, move |i| {
        let reserve = pb::Reserve {
            reference: format!("call-{i}"),
            limit: Some(pb::reserve::Limit::MaxCents(500)),
            kind: pb::ChargeKind::Call as i32,
            call_id: Some(i as u64),
            charge_multiplier: 1,
            expires_in_seconds: 3600,
        };
        request(1 + i as u64 % orgs, Kind::Reserve(reserve))
    })
    .await?;
    row("reserve (durable)", elapsed, latencies);

    let _ = stop.send(());
    running.await??;
    Ok(())
}

async fn calls_bench(calls: usize, concurrency: usize, orgs: usize, cluster: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sim = ["--sim-ring-ms", "20", "--sim-talk-ms", "100", "--ring-timeout-ms", "30000", "--max-call-seconds", "60"];
    // Short simulated calls, so that the engine runs calls steadily while placing new ones.
    let args = crate::dev::Args {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("single"),
        partitions: domain::Partitioning::DEFAULT_COUNT,
        secrets_key_file: None,
        calls: crate::dev::CallArgs {
            sim_ring_ms: 20,
            sim_talk_ms: 100,
            ring_timeout_ms: 30_000,
            max_call_seconds: 60,
            sip_answer_timeout_ms: 8_000,
            idempotency_abandoned_after_ms: domain::idempotency::ABANDONED_AFTER_MS,
            // The benchmark's calls run on the simulated carrier.
            egress: crate::dev::EgressArgs {
                allow_private_networks: false,
                no_sim_carrier: false,
                sip_public_host: None,
            },
            idempotency_retention_ms: domain::idempotency::RETENTION_MS,
        },
        http: crate::http::HttpArgs::default(),
        payments: crate::payments::PaymentArgs { payment_provider: "sim".into(), payment_timeout_ms: 5_000 },
    };
    // A gateway of a cluster refuses a guessable admin token.
    let admin = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin = admin.as_str();
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    println!("calls: {calls} x POST /v1/call over HTTP, {concurrency} concurrent clients, {orgs} orgs");
    header("requests/s");

    let store = Store::open(dir.path().join("baseline"), &eventlog::Options::default())?;
    let log = store.log("baseline", 0, Vec::new())?;
    let (elapsed, latencies) = drive(calls, concurrency, move |i| {
        let log = log.clone();
        async move {
            let append = StreamAppend {
                stream: format!("baseline/{}", i % concurrency),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::encode("baseline", &vec![7u8; 100])?],
            };
            log.append_durable(vec![append]).await?;
            Ok(())
        }
    })
    .await?;
    row("sled append, group commit", elapsed, latencies);

    let server = crate::dev::Server::start(&args, admin.into()).await?;
    let base = format!("http://{}", server.addr);
    measure_http(&http, &base, admin, calls, concurrency, orgs, "single process").await?;
    server.stop().await?;

    if cluster {
        // NATS with authentication, as a cluster runs it.
        let nats = bus::testing::NatsServer::start_with(bus::testing::ServerConfig::with_password());
        let bus = bus::NatsBus::connect(&nats.client_options()).await?;
        let mut echo = bus.subscribe("bench.echo").await?;
        tokio::spawn(async move {
            while let Some(m) = echo.next().await {
                let payload = m.payload.clone();
                let _ = m.respond(payload).await;
            }
        });
        let (elapsed, latencies) = drive(calls, concurrency, move |_| {
            let bus = bus.clone();
            async move {
                Bus::request(
                    &bus,
                    "bench.echo",
                    &Headers::new(),
                    bytes::Bytes::from_static(&[0; 64]),
                    Duration::from_secs(30),
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        row("NATS request/reply, bare", elapsed, latencies);

        let mut processes = Vec::new();
        let exe = std::env::current_exe()?;
        let secrets_key = dir.path().join("secrets.key");
        crate::private::secrets_key_or_create(&secrets_key)?;
        let spawn = |role_args: Vec<String>, ready: &str| -> anyhow::Result<(std::process::Child, String)> {
            let mut command = std::process::Command::new(&exe);
            command
                .args(&role_args)
                .envs(nats.client_env())
                .env("SWITCHBOARD_ADMIN_TOKEN", admin)
                .env("SWITCHBOARD_SECRETS_KEY_FILE", &secrets_key)
                .env("RUST_LOG", "warn");
            Ok(bus::testing::spawn_ready(command, ready)?)
        };
        let data = |name: &str| dir.path().join(name).display().to_string();
        processes.push(
            spawn(
                vec!["billing".into(), "--partitions".into(), "all".into(), "--data-dir".into(), data("billing")],
                "switchboard billing ready",
            )?
            .0,
        );
        for (i, range) in ["0-31", "32-63"].iter().enumerate() {
            let mut role: Vec<String> = vec![
                "orchestrator".into(),
                "--partitions".into(),
                (*range).into(),
                "--data-dir".into(),
                data(&format!("orchestrator-{i}")),
            ];
            role.extend(sim.iter().map(|a| a.to_string()));
            processes.push(spawn(role, "switchboard orchestrator ready")?.0);
        }
        let (gateway, url) = spawn(
            vec!["gateway".into(), "--listen".into(), "127.0.0.1:0".into()],
            "switchboard gateway listening on ",
        )?;
        processes.push(gateway);
        let outcome = measure_http(&http, &url, admin, calls, concurrency, orgs, "cluster").await;
        for mut p in processes {
            let _ = p.kill();
            let _ = p.wait();
        }
        outcome?;
    }
    Ok(())
}

/// Sets up `orgs` orgs ready to call, then measures `GET /v1/healthz` and `POST /v1/call`.
async fn measure_http(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    calls: usize,
    concurrency: usize,
    orgs: usize,
    label: &str,
) -> anyhow::Result<()> {
    use serde_json::{Value, json};

    let send = |method: reqwest::Method, path: String, token: String, body: Value| {
        let (http, base) = (http.clone(), base.to_owned());
        async move {
            let r = http.request(method.clone(), format!("{base}{path}")).bearer_auth(token).json(&body).send().await?;
            let status = r.status();
            let body: Value = r.json().await?;
            anyhow::ensure!(status.is_success(), "{method} {path}: {status} {body}");
            anyhow::Ok(body)
        }
    };
    let post = |path: String, token: String, body: Value| send(reqwest::Method::POST, path, token, body);
    let mut callers = Vec::with_capacity(orgs);
    for i in 0..orgs {
        let org = post("/admin/v1/orgs".into(), admin.into(), json!({ "name": format!("bench {i}") })).await?;
        let id = org["id"].as_u64().unwrap_or_default();
        let key = post(format!("/admin/v1/orgs/{id}/keys"), admin.into(), json!({ "name": "bench" })).await?;
        let key = key["key"].as_str().unwrap_or_default().to_owned();
        let credit = json!({ "amount_cents": 100_000_000, "reference": "bench" });
        post(format!("/admin/v1/orgs/{id}/credits"), admin.into(), credit).await?;
        // A connection on the simulated carrier: tested, created on the evidence, a number
        // imported onto it, given its agent and verified.
        let sim = json!({ "provider": "manual", "sip_config": { "host": "sim" } });
        let tested = post("/v1/voip-connections/test".into(), key.clone(), sim.clone()).await?;
        let mut create = sim;
        create["verification_evidence_id"] = tested["verification_evidence"]["id"].clone();
        let conn = post("/v1/voip-connections".into(), key.clone(), create).await?;
        let agent =
            post("/v1/agents".into(), key.clone(), json!({ "name": "Bench", "prompt": "", "voice": "alloy" })).await?;
        let number = format!("+1415555{:04}", 1000 + i);
        let import = format!("/v1/voip-connections/{}/import-numbers", conn["id"]);
        let imported = post(import, key.clone(), json!({ "numbers": [number] })).await?;
        let number_id = imported["results"][0]["id"].clone();
        let agents = json!({ "outbound_agent_id": agent["id"] });
        send(reqwest::Method::PATCH, format!("/v1/phone-numbers/{number_id}"), key.clone(), agents).await?;
        post(format!("/v1/phone-numbers/{number_id}/verify-voip"), key.clone(), json!({})).await?;
        callers.push((key, number));
    }
    let callers = Arc::new(callers);

    let (client, healthz) = (http.clone(), format!("{base}/v1/healthz"));
    let (elapsed, latencies) = drive(calls, concurrency, move |_| {
        let (client, healthz) = (client.clone(), healthz.clone());
        async move {
            let r = client.get(&healthz).send().await?;
            anyhow::ensure!(r.status().is_success(), "healthz answered {}", r.status());
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;
    row(&format!("GET /v1/healthz, {label}"), elapsed, latencies);

    let (client, call_url) = (http.clone(), format!("{base}/v1/call"));
    let (elapsed, latencies) = drive(calls, concurrency, move |i| {
        let (client, call_url, callers) = (client.clone(), call_url.clone(), callers.clone());
        async move {
            let (key, from) = &callers[i % callers.len()];
            let body = json!({ "from_number": from, "to_number": "+14155550123" });
            let r = client.post(&call_url).bearer_auth(key).json(&body).send().await?;
            let status = r.status();
            let text = r.text().await?;
            anyhow::ensure!(status.as_u16() == 201, "POST /v1/call answered {status}: {text}");
            Ok(())
        }
    })
    .await?;
    row(&format!("POST /v1/call, {label}"), elapsed, latencies);
    Ok(())
}

fn header(rate: &str) {
    println!("{:<34} {:>12} {:>10} {:>10} {:>10}", "", rate, "p50", "p99", "max");
}

/// Prints throughput and latency percentiles of one measured run.
fn row(label: &str, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort_unstable();
    println!(
        "{label:<34} {:>12.0} {:>10} {:>10} {:>10}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        fmt(percentile(&latencies, 0.50)),
        fmt(percentile(&latencies, 0.99)),
        fmt(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
}

/// Runs `total` calls of `op` from `concurrency` tasks; returns the wall time and each latency.
async fn drive<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (worker..total).step_by(concurrency) {
                let begun = Instant::now();
                op(i).await?;
                latencies.push(begun.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((started.elapsed(), latencies))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn fmt(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.0}µs", d.as_secs_f64() * 1e6)
    }
}
