//! Outbound HTTP: `allowed_outbound_hosts`, with templates, enforced before connecting.

use crate::support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "outbound"
[variables]
upstream = { required = true }
[[trigger.http]]
route = "/probe/..."
component = "probe"
[component.probe]
source = "{probe}"
allowed_outbound_hosts = ["http://{{ upstream }}"]
"#;

#[tokio::test]
async fn allowed_host_is_reached_and_others_are_denied() {
    let (allowed, _a) = upstream().await;
    let (other, _b) = upstream().await;
    let dir = TempDir::new("outbound");
    let o = with_flags(
        options(&write_manifest(dir.path(), APP)),
        &[("upstream", &allowed.to_string())],
    );
    let app = start(o, false).await;
    let r = get(&app.url(&format!("/probe/outbound?url=http://{allowed}/x"))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "200 hello from upstream")
    );
    let r = get(&app.url(&format!("/probe/outbound?url=http://{other}/x"))).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
}

#[tokio::test]
async fn no_allowed_hosts_means_no_outbound() {
    let (addr, _u) = upstream().await;
    let dir = TempDir::new("outbound-none");
    let manifest = APP.replace(r#"allowed_outbound_hosts = ["http://{{ upstream }}"]"#, "");
    let o = with_flags(
        options(&write_manifest(dir.path(), &manifest)),
        &[("upstream", "x")],
    );
    let app = start(o, false).await;
    let r = get(&app.url(&format!("/probe/outbound?url=http://{addr}/"))).await;
    assert!(
        r.status == 502 && r.body.contains("HttpRequestDenied"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_provided_value_with_a_path_starts_and_refuses_at_first_use() {
    // Spin checks a templated entry at load only with the manifest defaults; a value
    // given at run time that makes it invalid is found at the first outbound request,
    // which is refused (the reason is logged), and the application keeps serving.
    let (addr, _u) = upstream().await;
    let dir = TempDir::new("outbound-path");
    let o = with_flags(
        options(&write_manifest(dir.path(), APP)),
        &[("upstream", &format!("{addr}/v1"))],
    );
    let app = start(o, false).await;
    let r = get(&app.url(&format!("/probe/outbound?url=http://{addr}/x"))).await;
    assert!(
        r.status == 502 && r.body.contains("HttpRequestDenied"),
        "{r:?}"
    );
    let r = get(&app.url("/probe/env/HOME")).await;
    assert_ne!(r.status, 500, "still serving: {r:?}");
}

#[tokio::test]
async fn entries_checked_at_load_are_startup_errors() {
    let dir = TempDir::new("outbound-bad");
    // A literal entry with a path, and a template whose default gives one.
    let literal = APP.replace("http://{{ upstream }}", "http://127.0.0.1:3001/v1");
    let defaulted = APP.replace(
        "upstream = { required = true }",
        "upstream = { default = \"127.0.0.1:3001/v1\" }",
    );
    for manifest in [literal, defaulted] {
        let o = with_flags(
            options(&write_manifest(dir.path(), &manifest)),
            &[("upstream", "127.0.0.1:3001")],
        );
        let err = cache_sync_host::App::load(&o).err().expect("load fails");
        let msg = err.to_string();
        assert!(
            msg.contains("allowed_outbound_hosts") && msg.contains("path") && !msg.contains('\n'),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn cidr_entries_allow_the_addresses_in_the_block() {
    let (addr, _u) = upstream().await;
    let (other, _o) = upstream().await;
    let dir = TempDir::new("outbound-cidr");
    let manifest = APP.replace(
        "http://{{ upstream }}",
        &format!("*://127.0.0.0/24:{}", addr.port()),
    );
    let o = with_flags(
        options(&write_manifest(dir.path(), &manifest)),
        &[("upstream", "x")],
    );
    let app = start(o, false).await;
    let r = get(&app.url(&format!("/probe/outbound?url=http://{addr}/x"))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "200 hello from upstream")
    );
    let r = get(&app.url(&format!("/probe/outbound?url=http://{other}/x"))).await;
    assert!(
        r.status == 502 && r.body.contains("HttpRequestDenied"),
        "another port is outside the entry: {r:?}"
    );
}
