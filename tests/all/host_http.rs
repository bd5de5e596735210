//! HTTP trigger: routing precedence, Spin's request headers, well-known routes,
//! static responses, traps, component logs.

use crate::support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "routing"
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/items/:id/probe/..."
component = "probe-two"
[[trigger.http]]
route = "/static"
static_response = { status_code = 418, body = "teapot", headers = { x-kind = "static" } }
[component.probe]
source = "{probe}"
[component.probe-two]
source = "{probe}"
"#;

#[tokio::test]
async fn spin_headers_describe_the_matched_route() {
    let dir = TempDir::new("headers");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/probe/headers?q=1")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let h: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let expect = [
        (
            "spin-full-url",
            format!("http://{}/probe/headers?q=1", app.addr),
        ),
        ("spin-path-info", "/headers".to_string()),
        ("spin-matched-route", "/probe/...".to_string()),
        ("spin-raw-component-route", "/probe/...".to_string()),
        ("spin-component-route", "/probe".to_string()),
        ("spin-base-path", "/".to_string()),
    ];
    for (name, want) in expect {
        assert_eq!(h[name].as_str(), Some(want.as_str()), "{name} in {h}");
    }
    let client = h["spin-client-addr"].as_str().expect("client addr");
    assert!(client.starts_with("127.0.0.1:"), "{client}");
}

#[tokio::test]
async fn route_parameters_become_path_match_headers() {
    let dir = TempDir::new("params");
    let manifest = APP.replace("/items/:id/probe/...", "/probe/:probe_section/...");
    let app = start(options(&write_manifest(dir.path(), &manifest)), false).await;
    // Both `/probe/...` and `/probe/:probe_section/...` match `/probe/headers`; Spin's
    // matcher prefers the parameter route, which is more specific at the second segment.
    let r = get(&app.url("/probe/headers")).await;
    let h: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(
        h["spin-matched-route"].as_str(),
        Some("/probe/:probe_section/..."),
        "{h}"
    );
    assert_eq!(
        h["spin-path-match-probe-section"].as_str(),
        Some("headers"),
        "{h}"
    );
    assert_eq!(
        h["spin-component-route"].as_str(),
        Some("/probe/:probe_section"),
        "{h}"
    );
    assert_eq!(h["spin-path-info"].as_str(), Some(""), "{h}");
}

#[tokio::test]
async fn unmatched_well_known_and_static_routes() {
    let dir = TempDir::new("static");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/nothing/here")).await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
    let r = get(&app.url("/.well-known/spin/health")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    let r = get(&app.url("/.well-known/spin/info")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"routing\""), "{}", r.body);
    let r = get(&app.url("/.well-known/spin/other")).await;
    assert_eq!(r.status, 404);
    let r = get(&app.url("/static")).await;
    assert_eq!((r.status, r.body.as_str()), (418, "teapot"));
    assert_eq!(
        r.headers.get("x-kind").and_then(|v| v.to_str().ok()),
        Some("static")
    );
}

#[tokio::test]
async fn a_trap_is_an_empty_500_and_the_host_keeps_serving() {
    let dir = TempDir::new("trap");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/probe/trap")).await;
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    let r = get(&app.url("/probe/headers")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn component_output_goes_to_log_files() {
    let dir = TempDir::new("logs");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/probe/print?msg=marker-7")).await;
    assert_eq!(r.status, 200);
    let logs = dir.path().join(".spin/logs");
    let ok = eventually(std::time::Duration::from_secs(5), async || {
        let out = std::fs::read_to_string(logs.join("probe_stdout.txt")).unwrap_or_default();
        let err = std::fs::read_to_string(logs.join("probe_stderr.txt")).unwrap_or_default();
        out.contains("stdout: marker-7") && err.contains("stderr: marker-7")
    })
    .await;
    assert!(ok, "component output should reach {}", logs.display());
}

#[tokio::test]
async fn concurrent_requests_get_separate_instances() {
    let dir = TempDir::new("concurrency");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let url = app.url("/probe/headers");
        tasks.push(tokio::spawn(async move { get(&url).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
}
