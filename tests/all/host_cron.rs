//! Cron trigger: both plugin generations fire on schedule and can be fired directly.

use std::time::Duration;

use cache_sync_testkit::Manifest;

use crate::support::*;

fn app(flush: &str) -> String {
    Manifest::new("cron")
        .default("db_api_url", "http://127.0.0.1:9")
        .probe("{probe}")
        .flush(flush, "* * * * * *", "http://127.0.0.1:9")
        .render()
}

/// The flush state record the flush component saves on every run (`m:flush`), if any.
async fn flush_state(app: &cache_sync_host::RunningApp) -> Option<serde_json::Value> {
    let r = get(&app.url("/probe/kv/default/m:flush")).await;
    (r.status == 200)
        .then(|| serde_json::from_str(&r.body).ok())
        .flatten()
}

async fn check_fires_on_schedule(flush: &str) {
    let dir = TempDir::new("cron");
    let running = start(options(&write_manifest(dir.path(), &app(flush))), true).await;
    // Every second: two distinct run times within a few seconds.
    let mut seen = std::collections::BTreeSet::new();
    let fired = eventually(Duration::from_secs(8), async || {
        if let Some(at) = flush_state(&running)
            .await
            .and_then(|s| s["last_run_at"].as_u64())
        {
            seen.insert(at);
        }
        seen.len() >= 2
    })
    .await;
    assert!(fired, "the cron job should fire every second");
    let state = flush_state(&running).await.unwrap_or_default();
    assert_eq!(state["last_outcome"], "idle", "nothing buffered: {state}");
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
    let state = flush_state(&running)
        .await
        .expect("the run saved its state");
    assert_eq!(state["last_outcome"], "idle", "{state}");
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
