//! The crate boundaries ARCHITECTURE.md states, checked against the workspace's dependency
//! graph (`cargo metadata`), so that an invariant cannot break by one line in a Cargo.toml.
//!
//! What a crate ships with is checked: its normal dependencies and its build dependencies (a
//! build script is where protobuf would be compiled). Dev-dependencies are left to what tests need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// A dependency only the named crates may have.
struct Only {
    dependency: &'static str,
    crates: &'static [&'static str],
    invariant: &'static str,
}

const ONLY: &[Only] = &[
    Only { dependency: "sled", crates: &["eventlog"], invariant: "only `eventlog` knows sled" },
    Only { dependency: "prost", crates: &["wire"], invariant: "protobuf types meet domain types only in `wire`" },
    Only { dependency: "prost-build", crates: &["wire"], invariant: "protobuf types meet domain types only in `wire`" },
    Only { dependency: "protox", crates: &["wire"], invariant: "protobuf types meet domain types only in `wire`" },
    Only { dependency: "axum", crates: &["gateway"], invariant: "only `gateway` knows HTTP" },
    Only { dependency: "hyper", crates: &["gateway"], invariant: "only `gateway` knows HTTP" },
    Only { dependency: "hyper-util", crates: &["gateway"], invariant: "only `gateway` knows HTTP" },
];

/// Dependencies a crate may not have.
struct Never {
    krate: &'static str,
    dependencies: &'static [&'static str],
    invariant: &'static str,
}

const NEVER: &[Never] = &[
    Never {
        krate: "domain",
        dependencies: &["tokio", "sled", "async-nats", "axum", "hyper", "prost"],
        invariant: "`domain` does no I/O and cannot fail on I/O",
    },
    Never {
        krate: "wire",
        dependencies: &["tokio", "sled", "async-nats", "axum", "hyper"],
        invariant: "`wire` only converts: protobuf to and from domain types, no I/O",
    },
];

/// Each workspace crate's shipped dependencies (normal and build), by package name; read once
/// for all the tests.
fn shipped_dependencies() -> &'static BTreeMap<String, BTreeSet<String>> {
    static GRAPH: std::sync::OnceLock<BTreeMap<String, BTreeSet<String>>> = std::sync::OnceLock::new();
    GRAPH.get_or_init(read_shipped_dependencies)
}

fn read_shipped_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace)
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("cargo metadata lists packages");
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("a package has a name").to_owned();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("a package lists its dependencies")
                .iter()
                // `kind` is null for a normal dependency, "build" or "dev" otherwise.
                .filter(|dependency| dependency["kind"].as_str() != Some("dev"))
                .map(|dependency| dependency["name"].as_str().expect("a dependency has a name").to_owned())
                .collect();
            (name, dependencies)
        })
        .collect()
}

/// What breaks the rules, one line per crate and dependency.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for rule in ONLY {
        for (krate, dependencies) in graph {
            if dependencies.contains(rule.dependency) && !rule.crates.contains(&krate.as_str()) {
                found.push(format!(
                    "crate `{krate}` depends on `{}`, which only {:?} may ({})",
                    rule.dependency, rule.crates, rule.invariant
                ));
            }
        }
    }
    for rule in NEVER {
        let dependencies = &graph[rule.krate];
        for dependency in rule.dependencies.iter().filter(|d| dependencies.contains(**d)) {
            found.push(format!(
                "crate `{}` depends on `{dependency}`, which it may not ({})",
                rule.krate, rule.invariant
            ));
        }
    }
    found
}

#[test]
fn the_crates_depend_only_on_what_architecture_md_allows() {
    let graph = shipped_dependencies();
    let violations = violations(&graph);
    assert!(violations.is_empty(), "crate boundaries broken:\n  {}", violations.join("\n  "));
}

/// A rule that names a crate or a dependency nobody has (a rename, a typo) would pass forever.
#[test]
fn every_rule_names_what_the_workspace_has() {
    let graph = shipped_dependencies();
    for rule in ONLY {
        for krate in rule.crates {
            let dependencies = graph.get(*krate).unwrap_or_else(|| panic!("no crate `{krate}` in the workspace"));
            assert!(dependencies.contains(rule.dependency), "`{krate}` no longer depends on `{}`", rule.dependency);
        }
    }
    let everything: BTreeSet<&String> = graph.values().flatten().collect();
    for rule in NEVER {
        assert!(graph.contains_key(rule.krate), "no crate `{}` in the workspace", rule.krate);
        for dependency in rule.dependencies {
            assert!(
                everything.contains(&dependency.to_string()),
                "no workspace crate depends on `{dependency}`: is the name right?"
            );
        }
    }
}
