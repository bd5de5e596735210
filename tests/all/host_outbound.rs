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
async fn a_bad_outbound_entry_is_a_startup_error() {
    let dir = TempDir::new("outbound-bad");
    let o = with_flags(
        options(&write_manifest(dir.path(), APP)),
        &[("upstream", "host/with/path")],
    );
    let err = cache_sync_host::App::load(&o).err().expect("load fails");
    assert!(err.to_string().contains("allowed_outbound_hosts"), "{err}");
}
