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
