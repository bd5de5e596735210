//! Variables end to end: templates, precedence, secrets, required values.

use crate::support::*;
use cache_sync_host::variables::Providers;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "vars"
[variables]
host = { default = "db.local" }
port = { default = "80" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/probe/..."
component = "probe"
[component.probe]
source = "{probe}"
environment = { FROM_MANIFEST = "m" }
[component.probe.variables]
api = "https://{{ host }}:{{ port }}/v1"
token = "{{ token }}"
"#;

#[tokio::test]
async fn component_variables_render_with_provider_precedence() {
    let dir = TempDir::new("vars");
    let mut o = options(&write_manifest(dir.path(), APP));
    let mut providers = Providers::from_env(
        [
            ("SPIN_VARIABLE_PORT".to_string(), "8443".to_string()),
            ("SPIN_VARIABLE_TOKEN".to_string(), "from-env".to_string()),
        ],
        // Spin reads `.env` with dotenvy: a comment after a quoted value is not part of it.
        Some("SPIN_VARIABLE_HOST=\"from-dotenv\" # comment\nSPIN_VARIABLE_TOKEN=from-dotenv\n"),
    )
    .expect("valid .env");
    providers.flags.insert("token".into(), "from-flag".into());
    o.providers = providers;
    o.extra_env = vec![("FROM_FLAG".into(), "f".into())];
    let app = start(o, false).await;
    assert_eq!(
        get(&app.url("/probe/var/api")).await.body,
        "https://from-dotenv:8443/v1"
    );
    assert_eq!(get(&app.url("/probe/var/token")).await.body, "from-flag");
    let r = get(&app.url("/probe/var/host")).await;
    assert_eq!(
        r.status, 404,
        "application variables are not visible unless mapped: {r:?}"
    );
    let r = get(&app.url("/probe/var/Not-Valid")).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(get(&app.url("/probe/env/FROM_MANIFEST")).await.body, "m");
    assert_eq!(get(&app.url("/probe/env/FROM_FLAG")).await.body, "f");
}

#[tokio::test]
async fn a_missing_required_variable_stops_startup() {
    let dir = TempDir::new("vars-required");
    let err = cache_sync_host::App::load(&options(&write_manifest(dir.path(), APP)))
        .err()
        .expect("load fails");
    let msg = err.to_string();
    assert!(msg.contains("'token'") && !msg.contains('\n'), "{msg}");
}

#[tokio::test]
async fn an_undeclared_variable_flag_is_accepted() {
    let dir = TempDir::new("vars-undeclared");
    let o = with_flags(
        options(&write_manifest(dir.path(), APP)),
        &[("token", "t"), ("not_declared", "x")],
    );
    let app = start(o, false).await;
    assert_eq!(get(&app.url("/probe/var/token")).await.body, "t");
}

/// The gateway reads its settings from `cache_settings` (one lookup), and each variable on its
/// own when that one does not come apart. Here the two disagree on purpose: the bundle says
/// `ttl` is an hour, the variable of its own says seven seconds; a cached answer's
/// `max-age` tells which the gateway used.
#[tokio::test]
async fn the_gateway_reads_the_bundled_settings_and_falls_back_to_each_variable() {
    use cache_sync_testkit::Manifest;
    let db = Db::start().await;
    db.seed("ns", "k", serde_json::json!(1), 1).await;
    for (bundle_ttl, expect_max_age) in [("1h", 3599..=3600), ("1h\u{1f}broken", 6..=7)] {
        let manifest = Manifest::new("bundle")
            .gateway("{gateway}", "http://127.0.0.1:*")
            .render()
            .replace("\nttl = \"{{ ttl }}\"", "\nttl = \"7s\"")
            .replace(
                "\u{5c}u001Fttl={{ ttl }}",
                &format!("\u{5c}u001Fttl={}", bundle_ttl.replace('\u{1f}', "\\u001F")),
            );
        let dir = TempDir::new("bundle");
        let o = with_flags(
            options(&write_manifest(dir.path(), &manifest)),
            &[("db_api_url", &db.url())],
        );
        let app = start(o, false).await;
        get(&app.url("/v1/ns/k")).await;
        let r = get(&app.url("/v1/ns/k")).await;
        let cc = r.headers["cache-control"].to_str().unwrap().to_owned();
        let max_age: u64 = cc
            .split(", ")
            .find_map(|d| d.strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no max-age in {cc:?}"));
        assert!(expect_max_age.contains(&max_age), "{bundle_ttl:?}: {cc}");
    }
}
