//! The end-to-end harness: runs the real `switchboard` binary and talks HTTP to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Long and random-looking enough for a cluster's gateways, which refuse a guessable one.
pub const ADMIN_TOKEN: &str = "sb_admin_test_4f7c2e9a1b6d3058e1a9";

/// Lets the engine reach loopback and private addresses. The harness passes it to every
/// process by default, since SIPp plays the trunks on 127.0.0.1; [`Server::start_public_only`]
/// starts without it, as production runs.
pub const ALLOW_PRIVATE_NETWORKS: &str = "--allow-private-networks";

/// The secrets key the cluster's orchestrators share (`dev` makes its own).
const CLUSTER_SECRETS_KEY: &str = "5b0d6c1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e";

/// The `switchboard` binary: `SWITCHBOARD_BIN`, or the one cargo built beside this test.
/// `cargo test --workspace` rebuilds it; `cargo test -p switchboard-tests` alone does not, so a
/// binary older than the sources it is built from fails the test at once rather than testing
/// old code.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("SWITCHBOARD_BIN") {
        return path.into();
    }
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            // Test executables live in target/<profile>/deps; binaries one level up.
            let exe = std::env::current_exe().expect("the test executable's path");
            let path = exe.parent().and_then(Path::parent).expect("target/<profile>").join("switchboard");
            let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
                panic!("{} is missing: run the tests with `cargo test --workspace`, which builds it", path.display())
            });
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
            if let Some(newer) = newest_source(&workspace.join("crates")).filter(|(at, _)| *at > built) {
                panic!(
                    "{} is older than {}: run `cargo build -p switchboard`, or the tests with `cargo test --workspace`, which rebuilds it",
                    path.display(),
                    newer.1.display()
                );
            }
            path
        })
        .clone()
}

/// The crates of the workspace the binary is not built from: changing them leaves it current.
const NOT_IN_THE_BINARY: &[&str] = &["simulation"];

/// The most recently changed file under the `src` folders of the crates (what the binary is
/// built from), and when it changed.
fn newest_source(crates: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    fn walk(dir: &Path, newest: &mut Option<(std::time::SystemTime, PathBuf)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(at) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(t, _)| at > *t)
            {
                *newest = Some((at, path));
            }
        }
    }
    let mut newest = None;
    for krate in std::fs::read_dir(crates).into_iter().flatten().flatten() {
        if NOT_IN_THE_BINARY.iter().any(|name| krate.file_name() == *name) {
            continue;
        }
        walk(&krate.path().join("src"), &mut newest);
    }
    newest
}

/// switchboard under test, reached over HTTP at `url`: a `switchboard dev` child process, or,
/// with `SWITCHBOARD_TEST_MODE=cluster`, a whole cluster (see [`Cluster`]). Both run on free
/// loopback ports with their own data directories, and both answer the same API.
pub struct Server {
    processes: Processes,
    pub url: String,
    /// The admin listener of a `dev` started with one.
    dev_admin_url: Option<String>,
    pub data_dir: PathBuf,
    /// Extra flags for the processes that run calls, kept across restarts.
    args: Vec<String>,
    _temp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

enum Processes {
    Dev(Option<Child>),
    Cluster(Box<Cluster>),
}

fn allowing_private_networks(args: &[&str]) -> Vec<String> {
    std::iter::once(ALLOW_PRIVATE_NETWORKS).chain(args.iter().copied()).map(str::to_owned).collect()
}

/// Whether the tests run against a cluster rather than the single process.
pub fn cluster_mode() -> bool {
    std::env::var("SWITCHBOARD_TEST_MODE").is_ok_and(|m| m == "cluster")
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra flags for the processes that run calls, such as the simulated
    /// carrier's timings.
    pub fn start_with(args: &[&str]) -> Self {
        if cluster_mode() { Self::start_cluster(args) } else { Self::start_dev(args) }
    }

    /// Starts without [`ALLOW_PRIVATE_NETWORKS`]: hosts on loopback, private or metadata
    /// addresses are refused, as in production.
    pub fn start_public_only(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if cluster_mode() { Self::cluster_with(args) } else { Self::dev_with(args) }
    }

    pub fn start_dev(args: &[&str]) -> Self {
        Self::dev_with(allowing_private_networks(args))
    }

    pub fn start_cluster(args: &[&str]) -> Self {
        Self::cluster_with(allowing_private_networks(args))
    }

    fn dev_with(args: Vec<String>) -> Self {
        let temp = tempfile::tempdir().expect("a temporary data directory");
        let (child, url) = spawn(temp.path(), &args);
        Self::with(Processes::Dev(Some(child)), url, temp, args)
    }

    fn cluster_with(args: Vec<String>) -> Self {
        let temp = tempfile::tempdir().expect("a temporary data directory");
        let cluster = Cluster::start(temp.path(), &args);
        let url = cluster.url();
        Self::with(Processes::Cluster(Box::new(cluster)), url, temp, args)
    }

    /// Starts with the admin API and `/metrics` on an admin listener of their own, away from
    /// `url` (as a cluster's gateways always run).
    pub fn start_with_admin_listener() -> Self {
        if cluster_mode() {
            return Self::start_cluster(&[]);
        }
        let admin = format!("127.0.0.1:{}", bus::testing::free_port());
        let mut server = Self::start_dev(&["--admin-listen", &admin]);
        server.dev_admin_url = Some(format!("http://{admin}"));
        server
    }

    fn with(processes: Processes, url: String, temp: tempfile::TempDir, args: Vec<String>) -> Self {
        Self {
            processes,
            url,
            dev_admin_url: None,
            data_dir: temp.path().to_owned(),
            args,
            _temp: Some(temp),
            http: reqwest::Client::new(),
        }
    }

    /// Where the admin API and `/metrics` are served: `url` itself, unless they have a listener
    /// of their own (a running gateway's, in a cluster).
    pub fn admin_url(&self) -> String {
        match &self.processes {
            Processes::Cluster(c) => c.admin_url(),
            Processes::Dev(_) => self.dev_admin_url.clone().unwrap_or_else(|| self.url.clone()),
        }
    }

    /// A gateway's own HTTP listener, not a load balancer in front of it.
    pub fn gateway_url(&self) -> String {
        match &self.processes {
            Processes::Cluster(c) => c.gateway_url(0),
            Processes::Dev(_) => self.url.clone(),
        }
    }

    /// The cluster behind the server, in cluster mode.
    pub fn cluster(&mut self) -> Option<&mut Cluster> {
        match &mut self.processes {
            Processes::Cluster(c) => Some(c),
            Processes::Dev(_) => None,
        }
    }

    /// The data directories of every process that keeps one.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        match &self.processes {
            Processes::Dev(_) => vec![self.data_dir.clone()],
            Processes::Cluster(c) => c.data_dirs(),
        }
    }

    /// Kills every switchboard process with SIGKILL: no shutdown, no flush, as a crash.
    pub fn kill(&mut self) {
        match &mut self.processes {
            Processes::Dev(child) => kill(child),
            Processes::Cluster(c) => c.kill_all(),
        }
    }

    /// Stops every switchboard process with SIGTERM and waits for them to exit.
    pub fn stop(&mut self) {
        match &mut self.processes {
            Processes::Dev(child) => terminate(child),
            Processes::Cluster(c) => c.stop_all(),
        }
    }

    /// Starts the switchboard processes again on the same data (after `kill` or `stop`).
    pub fn restart(&mut self) {
        match &mut self.processes {
            Processes::Dev(child) => {
                assert!(child.is_none(), "stop or kill the server first");
                let (started, url) = spawn(&self.data_dir, &self.args);
                *child = Some(started);
                self.url = url;
            }
            Processes::Cluster(c) => {
                c.start_all();
                c.wait_until_routed();
            }
        }
    }

    /// Stops the server and starts it again on the same data without
    /// [`ALLOW_PRIVATE_NETWORKS`]: what was created on loopback is now refused at use.
    pub fn restart_public_only(&mut self) {
        self.stop();
        self.args.retain(|a| a != ALLOW_PRIVATE_NETWORKS);
        if let Processes::Cluster(c) = &mut self.processes {
            c.args.retain(|a| a != ALLOW_PRIVATE_NETWORKS);
        }
        self.restart();
    }

    pub async fn call(&self, method: &str, path: &str, auth: Option<&str>, body: Option<Body>) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let base = if path.starts_with("/admin/") || path == "/metrics" { self.admin_url() } else { self.url.clone() };
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request = match body {
            Some(Body::Json(v)) => request.json(&v),
            Some(Body::Raw(bytes)) => request.header("Content-Type", "application/json").body(bytes),
            None => request,
        };
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        // switchboard always answers JSON; a load balancer's own error page is kept as text, for
        // the assertion on the status to show.
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Response { status, body, headers }
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.call("GET", path, Some(&bearer(key)), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Response {
        self.call("POST", path, Some(&bearer(key)), Some(Body::Json(body))).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Response {
        self.call("PATCH", path, Some(&bearer(key)), Some(Body::Json(body))).await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> Response {
        self.call("PUT", path, Some(&bearer(key)), Some(Body::Json(body))).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Response {
        self.call("DELETE", path, Some(&bearer(key)), None).await
    }

    /// Creates an org through the admin API and returns it with a fresh API key.
    pub async fn create_org(&self, name: &str) -> Org {
        let org = self.post("/admin/v1/orgs", ADMIN_TOKEN, json!({ "name": name })).await;
        assert_eq!(org.status, 201, "{}", org.body);
        let id = org.body["id"].as_u64().expect("an org id");
        let key = self.post(&format!("/admin/v1/orgs/{id}/keys"), ADMIN_TOKEN, json!({ "name": "test" })).await;
        assert_eq!(key.status, 201, "{}", key.body);
        Org { id, key: key.body["key"].as_str().expect("a raw key").to_owned() }
    }
}

/// An org ready to place calls.
#[derive(Clone, Debug)]
pub struct Caller {
    pub org: Org,
    pub agent_id: u64,
    pub connection_id: u64,
    pub number_id: u64,
    pub number: String,
}

impl Server {
    /// Creates an org ready to place calls: `cents` of funds, a verified sim connection, an agent,
    /// and `number` on that connection, whose inbound and outbound agent the agent is.
    pub async fn org_ready_to_call(&self, name: &str, cents: i64, number: &str) -> Caller {
        let org = self.create_org(name).await;
        self.ready_to_call(org, cents, number).await
    }

    /// Readies an existing org to place calls, as [`Server::org_ready_to_call`] does.
    pub async fn ready_to_call(&self, org: Org, cents: i64, number: &str) -> Caller {
        self.ready_to_call_over(org, cents, number, json!({ "provider": "sim" })).await
    }

    /// Readies an org to place calls over the VoIP connection `connection` describes (the body
    /// of its create), which must verify.
    pub async fn ready_to_call_over(&self, org: Org, cents: i64, number: &str, connection: Value) -> Caller {
        if cents > 0 {
            let path = format!("/admin/v1/orgs/{}/credits", org.id);
            self.post(&path, ADMIN_TOKEN, json!({ "amount_cents": cents, "reference": "funds" })).await.expect(201);
        }
        let agent = self
            .post(
                "/v1/agents",
                &org.key,
                json!({ "name": "Support", "prompt": "You handle refunds.", "voice": "coral" }),
            )
            .await
            .expect(201);
        let conn = self.post("/v1/voip-connections", &org.key, connection).await.expect(201);
        let verified =
            self.post(&format!("/v1/voip-connections/{}/verify", conn["id"]), &org.key, json!({})).await.expect(200);
        assert_eq!(verified["verified"], true, "{verified}");
        let body = json!({
            "number": number, "voip_connection_id": conn["id"],
            "inbound_agent_id": agent["id"], "outbound_agent_id": agent["id"]
        });
        let placed = self.post("/v1/phone-numbers", &org.key, body).await.expect(201);
        Caller {
            org,
            agent_id: agent["id"].as_u64().expect("an agent id"),
            connection_id: conn["id"].as_u64().expect("a connection id"),
            number_id: placed["id"].as_u64().expect("a number id"),
            number: number.to_owned(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn terminate(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "could not send SIGTERM");
        let exit = child.wait().expect("waiting for a switchboard process to stop");
        assert!(exit.success(), "a switchboard process exited with {exit} on SIGTERM");
    }
}

/// Partitions in a test cluster: few, so a handful of orgs reach both orchestrator workers.
pub const CLUSTER_PARTITIONS: u32 = 8;

/// A cluster on loopback: a real `nats-server`, two gateways behind nginx, two orchestrator
/// workers splitting the partitions, and a billing worker. Gateways keep their ports across
/// restarts, so nginx's configuration stays true. nginx opens a connection per request, so a dead
/// gateway refuses the connection and nginx passes the request on; a pooled connection to it
/// could take a POST that then cannot safely be retried.
pub struct Cluster {
    nats: bus::testing::NatsServer,
    nginx: Option<Child>,
    nginx_port: u16,
    gateway_ports: [u16; 2],
    /// Each gateway's admin listener, which nginx does not proxy.
    admin_ports: [u16; 2],
    gateways: [Option<Child>; 2],
    orchestrators: [Option<Child>; 2],
    billing: Option<Child>,
    dir: PathBuf,
    args: Vec<String>,
}

impl Cluster {
    fn start(dir: &Path, args: &[String]) -> Self {
        // Always with authentication, so every cluster test proves each process presents it.
        let nats = bus::testing::NatsServer::start_with(bus::testing::ServerConfig::with_password());
        let gateway_ports = [bus::testing::free_port(), bus::testing::free_port()];
        let mut cluster = Self {
            nats,
            nginx: None,
            nginx_port: bus::testing::free_port(),
            gateway_ports,
            admin_ports: [bus::testing::free_port(), bus::testing::free_port()],
            gateways: [None, None],
            orchestrators: [None, None],
            billing: None,
            dir: dir.to_owned(),
            args: args.to_vec(),
        };
        std::fs::write(dir.join("secrets.key"), CLUSTER_SECRETS_KEY).expect("writing the cluster's secrets key");
        cluster.start_all();
        cluster.start_nginx();
        cluster
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx_port)
    }

    /// One gateway, reached directly rather than through nginx.
    pub fn gateway_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.gateway_ports[i])
    }

    /// A running gateway's admin listener (the first gateway's when none runs).
    pub fn admin_url(&self) -> String {
        let running = self.gateways.iter().position(Option::is_some).unwrap_or(0);
        format!("http://127.0.0.1:{}", self.admin_ports[running])
    }

    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// The environment that gives a process the cluster's NATS server and its credentials.
    pub fn nats_env(&self) -> Vec<(&'static str, String)> {
        self.nats.client_env()
    }

    /// Kills the NATS server, as a crash would.
    pub fn kill_nats(&mut self) {
        self.nats.kill();
    }

    /// Starts the NATS server again on the port every process knows.
    pub fn restart_nats(&mut self) {
        self.nats.restart();
    }

    fn data_dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.join("orchestrator-0"), self.dir.join("orchestrator-1"), self.dir.join("billing")]
    }

    fn env(&self, command: &mut Command) {
        command
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(self.nats.client_env())
            .env("SWITCHBOARD_SECRETS_KEY_FILE", self.dir.join("secrets.key"))
            .env("RUST_LOG", "warn");
    }

    pub fn start_orchestrator(&mut self, i: usize) {
        let half = CLUSTER_PARTITIONS / 2;
        let partitions = if i == 0 { format!("0-{}", half - 1) } else { format!("{half}-{}", CLUSTER_PARTITIONS - 1) };
        let mut command = Command::new(binary());
        command
            .args(["orchestrator", "--partition-count", &CLUSTER_PARTITIONS.to_string(), "--partitions", &partitions])
            .arg("--data-dir")
            .arg(self.dir.join(format!("orchestrator-{i}")))
            .args(&self.args);
        self.env(&mut command);
        self.orchestrators[i] = Some(spawn_ready(command, "switchboard orchestrator ready").0);
    }

    pub fn start_gateway(&mut self, i: usize) {
        let mut command = Command::new(binary());
        // A short timeout, so that a worker or NATS going away answers 503 quickly.
        command.args([
            "gateway",
            "--partition-count",
            &CLUSTER_PARTITIONS.to_string(),
            "--request-timeout-ms",
            "3000",
            "--listen",
            &format!("127.0.0.1:{}", self.gateway_ports[i]),
            "--admin-listen",
            &format!("127.0.0.1:{}", self.admin_ports[i]),
        ]);
        // The gateway checks hosts on create under the same policy as the workers.
        if self.args.iter().any(|a| a == ALLOW_PRIVATE_NETWORKS) {
            command.arg(ALLOW_PRIVATE_NETWORKS);
        }
        self.env(&mut command);
        self.gateways[i] = Some(spawn_ready(command, "switchboard gateway listening on ").0);
    }

    fn start_billing(&mut self) {
        let mut command = Command::new(binary());
        command
            .args(["billing", "--partition-count", &CLUSTER_PARTITIONS.to_string(), "--partitions", "all"])
            .arg("--data-dir")
            .arg(self.dir.join("billing"));
        self.env(&mut command);
        self.billing = Some(spawn_ready(command, "switchboard billing ready").0);
    }

    /// Starts every switchboard process that is not running.
    pub fn start_all(&mut self) {
        if self.billing.is_none() {
            self.start_billing();
        }
        for i in 0..2 {
            if self.orchestrators[i].is_none() {
                self.start_orchestrator(i);
            }
            if self.gateways[i].is_none() {
                self.start_gateway(i);
            }
        }
    }

    /// Waits until nginx routes requests to a gateway again (it keeps a failed gateway out for a
    /// moment after it failed).
    pub fn wait_until_routed(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if answers_healthz(self.nginx_port) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "nginx routed nothing for 15 s after a restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill_gateway(&mut self, i: usize) {
        kill(&mut self.gateways[i]);
    }

    pub fn kill_orchestrator(&mut self, i: usize) {
        kill(&mut self.orchestrators[i]);
    }

    fn kill_all(&mut self) {
        for child in self.gateways.iter_mut().chain(self.orchestrators.iter_mut()) {
            kill(child);
        }
        kill(&mut self.billing);
    }

    fn stop_all(&mut self) {
        // Gateways first, so nothing new arrives while the workers wind down.
        for child in self.gateways.iter_mut().chain(self.orchestrators.iter_mut()) {
            terminate(child);
        }
        terminate(&mut self.billing);
    }

    fn start_nginx(&mut self) {
        let dir = self.dir.join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).expect("nginx's directory");
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
        let upstreams: String = self
            .gateway_ports
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let conf = format!(
            "{user}worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {dir}/tmp/body;\n  proxy_temp_path {dir}/tmp/proxy;\n\
               fastcgi_temp_path {dir}/tmp/fastcgi;\n  uwsgi_temp_path {dir}/tmp/uwsgi;\n  scgi_temp_path {dir}/tmp/scgi;\n\
               upstream gateways {{\n{upstreams}  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 1m;\n\
                 location / {{\n      proxy_pass http://gateways;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_next_upstream error timeout;\n    }}\n  }}\n}}\n",
            user = if root { "user root;\n" } else { "" },
            dir = dir.display(),
            port = self.nginx_port,
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("writing nginx.conf");
        let binary = std::env::var("NGINX_BIN").unwrap_or_else(|_| "nginx".to_owned());
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (install Debian's package nginx-light, or set NGINX_BIN): {e}")
            });
        self.nginx = Some(child);
        let port = self.nginx_port;
        let nginx = self.nginx.as_mut().expect("started above");
        let what = format!("nginx (see {}/error.log)", dir.display());
        bus::testing::wait_until_ready(nginx, &what, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        stop_nginx(&mut self.nginx);
    }
}

/// Stops nginx with SIGTERM, which its master passes on to its workers: a SIGKILLed master
/// leaves its workers running, orphaned, one per cluster test.
fn stop_nginx(child: &mut Option<Child>) {
    let Some(mut nginx) = child.take() else { return };
    let _ = Command::new("kill").args(["-TERM", &nginx.id().to_string()]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = nginx.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nginx.kill();
    let _ = nginx.wait();
}

pub enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Response {
    /// Asserts the status, showing the body when it is not the one expected.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self.body
    }
}

#[derive(Clone, Debug)]
pub struct Org {
    pub id: u64,
    pub key: String,
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn spawn(data_dir: &Path, extra_args: &[String]) -> (Child, String) {
    let mut command = Command::new(binary());
    command
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra_args)
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn");
    spawn_ready(command, "switchboard listening on ")
}

/// Starts a switchboard process and waits for the line that says it is ready.
fn spawn_ready(mut command: Command, ready: &str) -> (Child, String) {
    command.stderr(Stdio::inherit());
    bus::testing::spawn_ready(command, ready).expect("starting a switchboard process")
}

/// Polls `path` until `done` holds for its body, or fails after `timeout`.
pub async fn wait_for(
    server: &Server,
    path: &str,
    key: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let r = server.get(path, key).await;
        if r.status == 200 && done(&r.body) {
            return r.body;
        }
        assert!(std::time::Instant::now() < deadline, "{path} never got there; last: {} {}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A UDP port on loopback that nothing listens on, a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a UDP port")
}

/// Runs `switchboard audit verify` on every data directory of a stopped server and fails unless
/// every stream's hash chain holds and every projection equals its replay.
pub fn audit(server: &Server) {
    for dir in server.data_dirs() {
        let out =
            Command::new(binary()).args(["audit", "verify", "--data-dir"]).arg(&dir).output().expect("running audit");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "audit of {}: {stdout}{}", dir.display(), String::from_utf8_lossy(&out.stderr));
        assert!(
            stdout.contains("hash chain holds") && stdout.contains("every projection equals its replay"),
            "{stdout}"
        );
    }
}

/// Whether `GET /v1/healthz` on a loopback port answers 200 (a plain HTTP/1.0 exchange, usable
/// from synchronous code inside the tests' runtime).
fn answers_healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /v1/healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

/// SIPp playing a SIP trunk's part: a scenario of `tests/sipp/`, or SIPp's built-in `uas`
/// (answers, then waits for the BYE). It listens on a free loopback UDP port and answers
/// OPTIONS by itself (`-aa`), so a connection to it verifies. Killed when dropped.
pub struct Sipp {
    child: Child,
    pub port: u16,
    /// `udp` or `tcp`.
    transport: &'static str,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sipp {
    /// Starts SIPp on UDP.
    pub fn start(scenario: &str) -> Self {
        Self::start_over(scenario, "udp")
    }

    /// Starts SIPp on `transport`: `udp`, or `tcp`.
    pub fn start_over(scenario: &str, transport: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("a directory for sipp");
        let log = dir.path().join("messages.log");
        let port = bus::testing::free_port();
        let binary = std::env::var("SIPP_BIN").unwrap_or_else(|_| "sipp".to_owned());
        let mut command = Command::new(&binary);
        if scenario == "uas" {
            command.args(["-sn", "uas"]);
        } else {
            command.arg("-sf").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp").join(scenario));
        }
        command
            // SIPp binds media ports (audio at -mp, video two above) whether or not it uses them,
            // and a control port (-cp, else 8888 and up): all of them free ports of our own.
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-mp", &bus::testing::free_ports(4).to_string()])
            .args(["-cp", &bus::testing::free_port().to_string()])
            .args(["-t", if transport == "tcp" { "t1" } else { "u1" }])
            .args(["-aa", "-nostdin", "-trace_msg", "-message_file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start {binary} (install Debian's package sip-tester, or set SIPP_BIN): {e}")
        });
        // Ready once it holds its port.
        let holds_port = || match transport {
            "tcp" => std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
            _ => std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
        };
        bus::testing::wait_until_ready(&mut child, &format!("sipp ({scenario})"), holds_port);
        Self { child, port, transport, log, _dir: dir }
    }

    /// The body of a SIP VoIP connection to this trunk (user alice, password secret).
    pub fn connection(&self) -> Value {
        json!({
            "provider": "sip", "host": "127.0.0.1", "port": self.port, "transport": self.transport,
            "username": "alice", "password": "secret"
        })
    }

    /// Every message SIPp traced so far.
    pub fn trace(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until SIPp has traced messages starting with each of `lines`, in that order, and
    /// returns the whole trace.
    pub async fn wait_for_messages(&self, lines: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let trace = std::fs::read_to_string(&self.log).unwrap_or_default();
            let mut rest = trace.as_str();
            let found = lines.iter().all(|line| match rest.find(&format!("\n{line}")) {
                Some(at) => {
                    rest = &rest[at + 1..];
                    true
                }
                None => false,
            });
            if found {
                return trace;
            }
            assert!(std::time::Instant::now() < deadline, "sipp never traced {lines:?}; it traced:\n{trace}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the trunk, as a trunk that goes away would.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.stop();
    }
}
