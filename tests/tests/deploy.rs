//! deploy/ cannot run here (no Docker engine, no Kubernetes), so its files are checked: the
//! compose file with `docker-compose config`, the manifests and the compose file for the fields
//! that make the cluster correct.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_yaml::Value;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}")))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The value after `flag` in a command line.
fn flag(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned())
}

fn partitions(spec: &str, count: u32) -> Vec<u32> {
    if spec == "all" {
        return (0..count).collect();
    }
    spec.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap(),
            None => part.parse::<u32>().unwrap()..=part.parse::<u32>().unwrap(),
        })
        .collect()
}

/// The secrets compose requires from its environment; it has no default for them.
const COMPOSE_SECRETS: [&str; 2] = ["SWITCHBOARD_ADMIN_TOKEN", "SWITCHBOARD_NATS_PASSWORD"];

/// The port the gateways serve the admin API and metrics on, which nothing may proxy or publish.
const ADMIN_PORT: &str = "9090";

/// `docker-compose config -q` on the compose file, with the secrets given or not.
fn compose_config(with_secrets: bool) -> std::process::Output {
    let mut command = Command::new("docker-compose");
    command.args(["-f"]).arg(deploy().join("docker-compose.yml")).args(["config", "-q"]);
    for name in COMPOSE_SECRETS {
        if with_secrets {
            command.env(name, "0123456789abcdef0123456789abcdef");
        } else {
            command.env_remove(name);
        }
    }
    command
        .output()
        .expect("docker-compose is not installed (Debian's package docker-compose validates without an engine)")
}

/// A compose value that takes `name` from the environment and refuses to go on without it.
fn required_from_env(value: &Value, name: &str) -> bool {
    value.as_str().is_some_and(|v| v.starts_with(&format!("${{{name}:?")))
}

#[test]
fn the_compose_file_is_valid_and_every_partition_has_one_owner_of_each_kind() {
    let out = compose_config(true);
    assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));

    let mut compose = documents("docker-compose.yml").remove(0);
    compose.apply_merge().expect("the compose file's merge keys resolve");
    let services = compose["services"].as_mapping().unwrap();
    let mut owners: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut gateways = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if service["image"].as_str() != Some("switchboard:latest") {
            continue;
        }
        let command = strings(&service["command"]);
        let role = command.first().unwrap_or_else(|| panic!("{name} names no role"));
        let env = &service["environment"];
        assert_eq!(env["SWITCHBOARD_NATS_URL"].as_str(), Some("nats://nats:4222"), "{name}");
        assert_eq!(env["SWITCHBOARD_NATS_USER"].as_str(), Some("switchboard"), "{name} authenticates to NATS");
        assert!(required_from_env(&env["SWITCHBOARD_NATS_PASSWORD"], "SWITCHBOARD_NATS_PASSWORD"), "{name}");
        assert!(
            required_from_env(&env["SWITCHBOARD_ADMIN_TOKEN"], "SWITCHBOARD_ADMIN_TOKEN"),
            "{name}: no default token"
        );
        let count: u32 =
            flag(&command, "--partition-count").expect("every role names the partition count").parse().unwrap();
        assert_eq!(count, 64, "{name}");
        match role.as_str() {
            "gateway" => {
                let admin = flag(&command, "--admin-listen").unwrap_or_else(|| panic!("{name} has no admin listener"));
                assert_eq!(admin, format!("0.0.0.0:{ADMIN_PORT}"), "{name}");
                assert!(service["ports"].is_null(), "{name} publishes no port: nginx is the way in");
                gateways.push(name.to_owned());
            }
            "orchestrator" | "billing" => {
                assert!(
                    service["volumes"].as_sequence().is_some_and(|v| !v.is_empty()),
                    "{name} keeps its data on a volume"
                );
                let spec = flag(&command, "--partitions").unwrap();
                owners
                    .entry(if role == "billing" { "billing" } else { "orchestrator" })
                    .or_default()
                    .extend(partitions(&spec, count));
            }
            other => panic!("unknown role {other}"),
        }
    }
    for (kind, mut owned) in owners {
        owned.sort_unstable();
        assert_eq!(owned, (0..64).collect::<Vec<_>>(), "every partition has exactly one {kind} owner");
    }
    assert!(gateways.len() >= 2);
    let nginx = std::fs::read_to_string(deploy().join("nginx.conf")).unwrap();
    for gateway in &gateways {
        assert!(nginx.contains(&format!("server {gateway}:8080")), "nginx balances over {gateway}");
    }
    assert!(nginx.contains("proxy_next_upstream error timeout;"), "nginx never resends a POST a gateway took");
    assert!(
        settings(&nginx).iter().all(|line| !line.contains(ADMIN_PORT)),
        "nginx never proxies the gateways' admin listener"
    );
    for refused in ["location /admin/ {", "location = /metrics {"] {
        assert!(nginx.contains(refused), "nginx refuses {refused} itself");
    }

    let nats = &services["nats"];
    let command = strings(&nats["command"]);
    assert_eq!(flag(&command, "-c").as_deref(), Some("/etc/nats/nats.conf"), "NATS runs with its configuration");
    assert!(strings(&nats["volumes"]).iter().any(|v| v.starts_with("./nats.conf:/etc/nats/nats.conf")));
    assert!(required_from_env(&nats["environment"]["SWITCHBOARD_NATS_PASSWORD"], "SWITCHBOARD_NATS_PASSWORD"));
}

#[test]
fn the_compose_file_has_no_default_secret() {
    let out = compose_config(false);
    assert!(!out.status.success(), "docker-compose took the file without its secrets");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(COMPOSE_SECRETS.iter().any(|name| stderr.contains(name)), "{stderr}");
    let file = std::fs::read_to_string(deploy().join("docker-compose.yml")).unwrap();
    assert!(!file.contains("change-me"), "the compose file names a default token");
}

/// A configuration's lines (nats.conf's, nginx.conf's), without its comments.
fn settings(conf: &str) -> Vec<&str> {
    conf.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

#[tokio::test]
async fn deploy_nats_conf_makes_nats_server_refuse_a_client_without_the_password() {
    let conf = deploy().join("nats.conf");
    let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
    // Without the password in its environment the server does not start at all.
    let out = Command::new(&binary).arg("-c").arg(&conf).env_remove("SWITCHBOARD_NATS_PASSWORD").output().unwrap();
    assert!(!out.status.success(), "nats-server started with no password set");

    let port = bus::testing::free_port();
    let password = "a-password-for-this-test";
    let mut server = Command::new(&binary)
        .arg("-c")
        .arg(&conf)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .env("SWITCHBOARD_NATS_PASSWORD", password)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting nats-server (Debian's package nats-server)");
    bus::testing::wait_until_ready(&mut server, "nats-server with deploy/nats.conf", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("nats://127.0.0.1:{port}");
    let anonymous = bus::NatsBus::connect(&bus::NatsOptions::plain(url.clone())).await;
    let user = |password: &str| bus::NatsOptions {
        url: url.clone(),
        auth: bus::NatsAuth::UserPassword { user: "switchboard".into(), password: password.into() },
        ..Default::default()
    };
    let wrong = bus::NatsBus::connect(&user("not-it")).await;
    let right = bus::NatsBus::connect(&user(password)).await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(anonymous.is_err(), "NATS took a client without credentials");
    assert!(wrong.is_err(), "NATS took a wrong password");
    assert!(right.is_ok(), "the cluster's password: {:?}", right.err());
}

#[test]
fn the_kubernetes_manifests_give_each_pod_its_partitions_and_its_volume() {
    let mut kinds = BTreeMap::new();
    for file in ["k8s/nats.yaml", "k8s/gateway.yaml", "k8s/orchestrator.yaml", "k8s/billing.yaml"] {
        for doc in documents(file) {
            let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{file}: a document without a kind")).to_owned();
            let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
            assert!(doc["apiVersion"].is_string(), "{file}: {name} has no apiVersion");
            kinds.insert((kind, name), doc);
        }
    }
    assert!(kinds.contains_key(&("Service".into(), "nats".into())));
    assert!(kinds.contains_key(&("Service".into(), "gateway".into())));

    // NATS runs deploy/nats.conf (the same settings), so it requires the password.
    let nats_conf = kinds[&("ConfigMap".to_owned(), "nats-config".to_owned())]["data"]["nats.conf"].as_str().unwrap();
    let file = std::fs::read_to_string(deploy().join("nats.conf")).unwrap();
    assert_eq!(settings(nats_conf), settings(&file), "k8s/nats.yaml's nats.conf is deploy/nats.conf");
    let nats = &kinds[&("Deployment".to_owned(), "nats".to_owned())]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(flag(&strings(&nats["args"]), "-c").as_deref(), Some("/etc/nats/nats.conf"));
    assert!(from_secret(nats, "SWITCHBOARD_NATS_PASSWORD", "nats-password"));

    let gateway = &kinds[&("Deployment".to_owned(), "gateway".to_owned())];
    assert!(gateway["spec"]["replicas"].as_u64().unwrap() >= 2);
    let container = &gateway["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&container["args"])[0], "gateway");
    assert_eq!(flag(&strings(&container["args"]), "--admin-listen"), Some(format!("0.0.0.0:{ADMIN_PORT}")));
    assert!(from_secret(container, "SWITCHBOARD_ADMIN_TOKEN", "admin-token"));
    assert!(nats_client(container), "the gateway authenticates to NATS");
    // The LoadBalancer reaches the public listener alone; the admin one has an internal Service.
    let public = &kinds[&("Service".to_owned(), "gateway".to_owned())]["spec"];
    assert_eq!(public["type"].as_str(), Some("LoadBalancer"));
    let targets: Vec<String> = public["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| serde_yaml::to_string(&p["targetPort"]).unwrap().trim().to_owned())
        .collect();
    assert_eq!(targets, ["8080"], "the LoadBalancer exposes the public listener alone");
    let admin = &kinds[&("Service".to_owned(), "gateway-admin".to_owned())]["spec"];
    assert_eq!(admin["type"].as_str(), Some("ClusterIP"), "the admin API stays inside the cluster");
    assert_eq!(gateway["spec"]["selector"]["matchLabels"], gateway["spec"]["template"]["metadata"]["labels"]);

    for name in ["orchestrator", "billing"] {
        let set = &kinds[&("StatefulSet".to_owned(), name.to_owned())];
        let replicas = set["spec"]["replicas"].as_u64().unwrap();
        let container = &set["spec"]["template"]["spec"]["containers"][0];
        let args = strings(&container["args"]);
        assert_eq!(args[0], name);
        assert_eq!(
            flag(&args, "--partitions"),
            Some(format!("ordinal:{replicas}")),
            "{name}: partitions follow the replica count"
        );
        assert_eq!(flag(&args, "--partition-count").as_deref(), Some("64"));
        let data_dir = flag(&args, "--data-dir").unwrap();
        let claim = set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as_str().unwrap();
        let mount = &container["volumeMounts"][0];
        assert_eq!(
            (mount["name"].as_str(), mount["mountPath"].as_str()),
            (Some(claim), Some(data_dir.as_str())),
            "{name}: a volume per pod"
        );
        let env = container["env"].as_sequence().unwrap();
        assert!(env.iter().any(|e| e["name"] == "SWITCHBOARD_NATS_URL" && e["value"] == "nats://nats:4222"), "{name}");
        assert!(nats_client(container), "{name} authenticates to NATS");
        assert_eq!(set["spec"]["serviceName"].as_str(), Some(name));
        assert!(
            kinds.contains_key(&("Service".to_owned(), name.to_owned())),
            "{name}: the headless Service a StatefulSet needs"
        );
    }
}

/// Whether a container takes the environment variable `name` from the `switchboard` Secret's `key`.
fn from_secret(container: &Value, name: &str, key: &str) -> bool {
    container["env"].as_sequence().into_iter().flatten().any(|e| {
        let secret = &e["valueFrom"]["secretKeyRef"];
        e["name"] == name && e["value"].is_null() && secret["name"] == "switchboard" && secret["key"] == key
    })
}

/// Whether a container is given the cluster's NATS user and password.
fn nats_client(container: &Value) -> bool {
    let env = container["env"].as_sequence().cloned().unwrap_or_default();
    env.iter().any(|e| e["name"] == "SWITCHBOARD_NATS_USER" && e["value"] == "switchboard")
        && from_secret(container, "SWITCHBOARD_NATS_PASSWORD", "nats-password")
}
