//! Repository hygiene checked as tests: manifests agree, docs name every crate.

use crate::support::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `spin.cloud.toml` is `spin.toml` without the cron trigger and the flush component, with the
/// gateway built without `wasi:keyvalue` atomics.
#[test]
fn cloud_manifest_is_the_main_manifest_without_cron() {
    let mut main: toml::Table = read("spin.toml").parse().expect("spin.toml parses");
    let cloud: toml::Table = read("spin.cloud.toml")
        .parse()
        .expect("spin.cloud.toml parses");
    let trigger = main
        .get_mut("trigger")
        .and_then(|t| t.as_table_mut())
        .expect("triggers");
    assert!(
        trigger.remove("cron").is_some(),
        "spin.toml has a cron trigger"
    );
    let components = main
        .get_mut("component")
        .and_then(|c| c.as_table_mut())
        .expect("components");
    assert!(
        components.remove("flush").is_some(),
        "spin.toml has the flush component"
    );
    let build = components
        .get_mut("gateway")
        .and_then(|g| g.get_mut("build"))
        .and_then(|b| b.as_table_mut())
        .expect("the gateway's build");
    let command = build
        .get("command")
        .and_then(|c| c.as_str())
        .expect("a build command")
        .to_owned();
    build.insert(
        "command".into(),
        format!("{command} --no-default-features").into(),
    );
    assert_eq!(main, cloud, "spin.cloud.toml drifted from spin.toml");
    assert!(!read("spin.cloud.toml").contains("trigger.cron"));
}

/// The gateway's `cache_settings` in `spin.toml` is the core's template: every variable,
/// in one lookup.
#[test]
fn the_gateway_gets_every_setting_in_one_variable() {
    let main: toml::Table = read("spin.toml").parse().expect("spin.toml parses");
    let bundled = main["component"]["gateway"]["variables"][cache_core::config::bundle::VARIABLE]
        .as_str()
        .expect("the gateway has cache_settings");
    assert_eq!(bundled, cache_core::config::bundle::template());
}

/// Every workspace crate opens with a `//!` doc and is named in ARCHITECTURE.md.
#[test]
fn every_crate_is_documented_and_mapped() {
    let architecture = read("ARCHITECTURE.md");
    let crates = [
        ("crates/cache-core", "src/lib.rs"),
        ("crates/contract", "src/lib.rs"),
        ("crates/testkit", "src/lib.rs"),
        ("crates/host", "src/lib.rs"),
        ("crates/db-api", "src/lib.rs"),
        ("crates/bench", "src/main.rs"),
        ("components/gateway", "src/lib.rs"),
        ("components/flush", "src/lib.rs"),
        ("components/adapters", "src/lib.rs"),
        ("tests", "lib.rs"),
        ("tests/components/probe", "src/lib.rs"),
        ("xtask", "src/main.rs"),
    ];
    for (dir, root) in crates {
        let source = read(&format!("{dir}/{root}"));
        assert!(
            source.trim_start().starts_with("//!"),
            "{dir}/{root} must open with a //! doc"
        );
        let last = dir.rsplit('/').next().unwrap_or(dir);
        assert!(
            architecture.contains(last),
            "ARCHITECTURE.md should name {dir}"
        );
    }
}
