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

#[test]
fn the_compose_file_is_valid_and_every_partition_has_one_owner_of_each_kind() {
    let out = Command::new("docker-compose")
        .args(["-f"])
        .arg(deploy().join("docker-compose.yml"))
        .args(["config", "-q"])
        .output()
        .expect("docker-compose is not installed (Debian's package docker-compose validates without an engine)");
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
        assert_eq!(service["environment"]["SWITCHBOARD_NATS_URL"].as_str(), Some("nats://nats:4222"), "{name}");
        let count: u32 =
            flag(&command, "--partition-count").expect("every role names the partition count").parse().unwrap();
        assert_eq!(count, 64, "{name}");
        match role.as_str() {
            "gateway" => gateways.push(name.to_owned()),
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

    let gateway = &kinds[&("Deployment".to_owned(), "gateway".to_owned())];
    assert!(gateway["spec"]["replicas"].as_u64().unwrap() >= 2);
    let container = &gateway["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&container["args"])[0], "gateway");
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
        assert_eq!(set["spec"]["serviceName"].as_str(), Some(name));
        assert!(
            kinds.contains_key(&("Service".to_owned(), name.to_owned())),
            "{name}: the headless Service a StatefulSet needs"
        );
    }
}
