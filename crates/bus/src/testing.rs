//! A `nats-server` child process on a free loopback port, for tests that need a real server.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{NatsAuth, NatsOptions, NatsTls};

/// Runs until dropped. Starting panics, loudly, if the server cannot start: a test that needs
/// NATS must never pass without it.
pub struct NatsServer {
    child: Child,
    port: u16,
    config: ServerConfig,
}

/// What a test server asks of its clients.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// The credentials every client must present (none: anyone may connect).
    pub auth: NatsAuth,
    /// TLS on the client port.
    pub tls: Option<ServerTls>,
}

impl ServerConfig {
    /// A user and a password made up for this server, as a cluster's would be.
    pub fn with_password() -> Self {
        use std::hash::BuildHasher;
        let secret = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        Self {
            auth: NatsAuth::UserPassword { user: "switchboard".into(), password: format!("test-{secret:016x}") },
            tls: None,
        }
    }
}

/// The server's certificate and key, and the authority that signed them (which clients trust).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Requires clients to present a certificate the authority signed.
    pub verify_clients: bool,
}

impl NatsServer {
    /// A server that asks for no credentials.
    pub fn start() -> Self {
        Self::start_with(ServerConfig::default())
    }

    pub fn start_with(config: ServerConfig) -> Self {
        Self::start_on(free_port(), config)
    }

    /// Starts on a given port, for a restart on the port clients already know.
    pub fn start_on(port: u16, config: ServerConfig) -> Self {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let mut command = Command::new(&binary);
        command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        match &config.auth {
            NatsAuth::None => {}
            NatsAuth::Token(token) => {
                command.args(["--auth", token]);
            }
            NatsAuth::UserPassword { user, password } => {
                command.args(["--user", user, "--pass", password]);
            }
        }
        if let Some(tls) = &config.tls {
            command.arg("--tls").arg("--tlscert").arg(&tls.cert).arg("--tlskey").arg(&tls.key);
            if tls.verify_clients {
                command.arg("--tlsverify").arg("--tlscacert").arg(&tls.ca);
            }
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {binary} (install Debian's package nats-server, or set NATS_SERVER_BIN): {e}")
        });
        let mut server = Self { child, port, config };
        wait_until_ready(&mut server.child, &format!("nats-server on port {port}"), || greets_as_nats(port));
        server
    }

    /// Starts the server again, as it was, on the port clients already know (after a kill).
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port, self.config.clone());
    }

    /// What a client needs to connect: the URL, the credentials, the authority to trust.
    pub fn client_options(&self) -> NatsOptions {
        NatsOptions {
            url: self.url(),
            auth: self.config.auth.clone(),
            tls: NatsTls {
                required: self.config.tls.is_some(),
                ca_file: self.config.tls.as_ref().map(|t| t.ca.clone()),
                client_cert: None,
            },
        }
    }

    /// The environment that gives a switchboard process this server and its credentials.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        let options = self.client_options();
        let mut env = vec![("SWITCHBOARD_NATS_URL", options.url)];
        match options.auth {
            NatsAuth::None => {}
            NatsAuth::Token(token) => env.push(("SWITCHBOARD_NATS_TOKEN", token)),
            NatsAuth::UserPassword { user, password } => {
                env.push(("SWITCHBOARD_NATS_USER", user));
                env.push(("SWITCHBOARD_NATS_PASSWORD", password));
            }
        }
        if let Some(ca) = options.tls.ca_file {
            env.push(("SWITCHBOARD_NATS_TLS_CA", ca.display().to_string()));
        }
        env
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768-60999), so an
/// outgoing connection (a client of another test) can never take a port between the moment it
/// is handed out and the moment its server binds it; a port asked of the kernel (`:0`) could be.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Whether what listens on `port` is a NATS server: it greets every connection with `INFO`
/// (before any TLS), so a port some other process holds is not taken for the server's.
fn greets_as_nats(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut greeting = [0u8; 5];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO "
}

/// Waits (10 s at most) until `ready` holds for a server just started, and fails loudly if it
/// exits first or never gets there: a test that needs the server must never run without it.
pub fn wait_until_ready(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "{what} was not ready within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port, free for TCP and UDP alike a moment ago, that no other call of this process
/// was given. Ports go round from an offset taken from the process id, so two test binaries run
/// side by side start far apart.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `count` consecutive loopback ports handed out as [`free_port`] hands out one,
/// for a server that binds several next to each other (SIPp's media ports).
pub fn free_ports(count: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let offset = std::process::id().wrapping_mul(7919) % span;
    let free = |port: u16| {
        TcpListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
    };
    for _ in 0..span {
        let n = NEXT.fetch_add(u32::from(count), Ordering::Relaxed);
        let first = (offset + n) % span;
        if first + u32::from(count) > span {
            continue; // the block would wrap round the range's end
        }
        let first = TEST_PORTS.start + u16::try_from(first).expect("the span fits u16");
        if (first..first + count).all(free) {
            return first;
        }
    }
    panic!("no {count} free loopback ports in {TEST_PORTS:?}")
}

/// Starts a process and waits (30 s at most) for the stdout line that starts with `ready`;
/// returns the child and the rest of that line. Keeps reading stdout afterwards, so the child
/// never blocks on a full pipe. For tests and benchmarks that run switchboard's own processes.
pub fn spawn_ready(mut command: Command, ready: &str) -> std::io::Result<(Child, String)> {
    use std::io::{BufRead, BufReader};
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(&ready) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(rest) => Ok((child, rest)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // Its stdout closed before the line came: it exited (its stderr says why).
            let status = child.wait()?;
            Err(std::io::Error::other(format!("the process exited before it was ready: {status}")))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other("the process did not become ready within 30 s"))
        }
    }
}

/// Makes, in `dir`, a certificate authority (`ca.pem`) and two certificates it signed, made with
/// the `openssl` command: the server's for 127.0.0.1 (returned, for [`NatsServer::start_with`])
/// and a client's (`client.pem`, `client.key`) for a server that verifies its clients.
pub fn make_certificates(dir: &std::path::Path) -> ServerTls {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command (Debian's package openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[&["req", "-x509", "-subj", "/CN=test ca", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"], &new_key[..]]
            .concat(),
    );
    // Extensions make version 3 certificates, the only ones webpki takes.
    for (name, extension) in [("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")] {
        let (key, csr, pem, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        std::fs::write(dir.join(&ext), format!("{extension}\n")).unwrap();
        openssl(&[&["req", "-subj", &format!("/CN={name}"), "-keyout", &key, "-out", &csr], &new_key[..]].concat());
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
    }
    ServerTls {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
        verify_clients: false,
    }
}
