//! Cron trigger: both plugin generations fire on schedule and can be fired directly.

use std::time::Duration;

use crate::support::*;

fn app(flush: &str) -> String {
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "cron"
[variables]
db_api_url = {{ default = "http://127.0.0.1:9" }}
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.cron]]
component = "flush"
cron_expression = "* * * * * *"
[component.probe]
source = "{{probe}}"
key_value_stores = ["default"]
[component.flush]
source = "{flush}"
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:9"]
[component.flush.variables]
db_api_url = "{{{{ db_api_url }}}}"
"#
    )
}

async fn runs(app: &cache_sync_host::RunningApp) -> u64 {
    get(&app.url("/probe/kv/default/flush:runs"))
        .await
        .body
        .parse()
        .unwrap_or(0)
}

async fn check_fires_on_schedule(flush: &str) {
    let dir = TempDir::new("cron");
    let running = start(options(&write_manifest(dir.path(), &app(flush))), true).await;
    // Every second: two firings within a few seconds.
    let fired = eventually(Duration::from_secs(8), async || runs(&running).await >= 2).await;
    assert!(fired, "the cron job should fire every second");
    let outcome = get(&running.url("/probe/kv/default/flush:last-outcome"))
        .await
        .body;
    assert!(outcome.starts_with("db_api unreachable"), "{outcome}");
}

#[tokio::test]
async fn current_generation_cron_component_fires_on_schedule() {
    check_fires_on_schedule("{flush}").await;
}

#[tokio::test]
async fn previous_generation_cron_component_fires_on_schedule() {
    check_fires_on_schedule("{flush_v2}").await;
}

#[tokio::test]
async fn a_cron_handler_can_be_fired_directly() {
    let dir = TempDir::new("cron-direct");
    let running = start(options(&write_manifest(dir.path(), &app("{flush}"))), false).await;
    cache_sync_host::cron_trigger::fire(&running.app, "flush", 1_700_000_000)
        .await
        .expect("fires");
    assert_eq!(runs(&running).await, 1);
    assert_eq!(
        get(&running.url("/probe/kv/default/flush:last-run"))
            .await
            .body,
        "1700000000"
    );
    let err = cache_sync_host::cron_trigger::fire(&running.app, "probe", 1)
        .await
        .expect_err("not cron");
    assert!(err.to_string().contains("not a cron component"));
}

#[tokio::test]
async fn a_five_field_expression_is_rejected_at_startup() {
    let dir = TempDir::new("cron-bad");
    let manifest = app("{flush}").replace("* * * * * *", "*/5 * * * *");
    let err = cache_sync_host::App::load(&options(&write_manifest(dir.path(), &manifest)))
        .err()
        .expect("fails");
    assert!(err.to_string().contains("cron expression"), "{err}");
}
