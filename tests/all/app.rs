//! The project's own `spin.toml`, as shipped, on the embedded host.

use crate::support::*;

fn repo_options(state: &TempDir) -> cache_sync_host::AppOptions {
    let mut o = options(&repo_root().join("spin.toml"));
    o.state_dir = Some(state.path().to_path_buf());
    o
}

#[tokio::test]
async fn healthz_answers_on_the_shipped_manifest() {
    let state = TempDir::new("app-health");
    let app = start(repo_options(&state), false).await;
    let r = get(&app.url("/healthz")).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_value_written_through_the_gateway_survives_a_restart() {
    let state = TempDir::new("app-restart");
    // Writes are authorized by the DB API before they are buffered.
    let db = Db::start().await;
    let url = db.url();
    let app = start(
        with_flags(repo_options(&state), &[("db_api_url", &url)]),
        false,
    )
    .await;
    let r = send(
        "PUT",
        &app.url("/v1/users/alice"),
        &[("content-type", "application/json")],
        r#"{"name":"Alice"}"#,
    )
    .await;
    assert!(r.status == 202, "{r:?}");
    app.stop().await;
    let app = start(
        with_flags(repo_options(&state), &[("db_api_url", &url)]),
        false,
    )
    .await;
    let r = get(&app.url("/v1/users/alice")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["name"], "Alice");
}

/// `kv_store` moves the whole cache to another label (it must be granted and defined).
#[tokio::test]
async fn the_kv_store_variable_selects_the_store_label() {
    let dir = TempDir::new("app-kv-label");
    let db = Db::start().await;
    let manifest = write_manifest(
        dir.path(),
        &r#"
spin_manifest_version = 2
[application]
name = "label"
[variables]
kv_store = { default = "cache" }
db_api_url = { default = "{db}" }
[[trigger.http]]
route = "/..."
component = "gateway"
[component.gateway]
source = "{gateway}"
key_value_stores = ["cache"]
allowed_outbound_hosts = ["{db}"]
[component.gateway.variables]
kv_store = "{{ kv_store }}"
db_api_url = "{{ db_api_url }}"
"#
        .replace("{db}", &db.url()),
    );
    let rc = dir.path().join("rc.toml");
    std::fs::write(
        &rc,
        "[key_value_store.cache]\ntype = \"spin\"\npath = \"cache.db\"\n",
    )
    .expect("write rc");
    let mut o = options(&manifest);
    o.runtime_config = Some(rc);
    let app = start(o, false).await;
    let r = send(
        "PUT",
        &app.url("/v1/users/bob"),
        &[("content-type", "application/json")],
        r#"{"n":1}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = get(&app.url("/v1/users/bob")).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"n":1}"#));
    assert!(
        dir.path().join("cache.db").exists(),
        "the cache lives in the 'cache' store"
    );
    assert!(!dir.path().join(".spin/sqlite_key_value.db").exists());
}
