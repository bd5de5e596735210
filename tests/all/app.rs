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
    let app = start(repo_options(&state), false).await;
    let r = send(
        "PUT",
        &app.url("/v1/users/alice"),
        &[("content-type", "application/json")],
        r#"{"name":"Alice"}"#,
    )
    .await;
    assert!(r.status == 202, "{r:?}");
    app.stop().await;
    let app = start(repo_options(&state), false).await;
    let r = get(&app.url("/v1/users/alice")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["name"], "Alice");
}
