//! Scenario 5: two host instances share one Redis-backed key-value store (Spin runtime
//! config, a real Redis on loopback), as on SpinKube or Akamai with several replicas.
//! Writers use both, both run the cron flush and the admin flush: the lease and the batch
//! ids keep delivery exactly-once.
//!
//! Needs `CACHE_SYNC_TEST_REDIS_URL` (CI starts a Redis on loopback); without it the test
//! says so and checks nothing. It uses Redis database 7 of that server and empties it first.

use std::sync::Arc;
use std::time::Duration;

use cache_sync_host::RunningApp;
use serde_json::json;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

/// `url` with database 7 selected.
fn database_7(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let path_starts = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[path_starts..].find('/') {
        Some(i) => format!("{}/7", &url[..path_starts + i]),
        None => format!("{url}/7"),
    }
}

async fn instance(dir: &TempDir, redis: &str, vars: &[(String, String)]) -> RunningApp {
    let manifest = write_manifest(dir.path(), &manifest(Some("* * * * * *")));
    let rc = dir.path().join("runtime-config.toml");
    std::fs::write(
        &rc,
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis}\"\n"),
    )
    .expect("write runtime config");
    let mut o = options(&manifest);
    o.runtime_config = Some(rc);
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start(with_flags(o, &refs), true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_redis_store_deliver_each_write_once() {
    let Ok(url) = std::env::var("CACHE_SYNC_TEST_REDIS_URL") else {
        eprintln!("skipped: CACHE_SYNC_TEST_REDIS_URL is not set");
        return;
    };
    let redis = database_7(&url);
    let db = Db::start().await;
    db.faults(json!({"batch_latency_ms": 30, "garbage_after_commit": {"rate": 0.1}, "seed": 5}));
    let mut vars = flags(&db.url());
    set(&mut vars, "flush_batch_max_items", "3");
    set(&mut vars, "lease_ttl", "5s");
    let (dir_a, dir_b) = (TempDir::new("rel-shared-a"), TempDir::new("rel-shared-b"));
    let a = instance(&dir_a, &redis, &vars).await;
    let b = instance(&dir_b, &redis, &vars).await;
    // A clean store: remove what an earlier run left.
    for key in keys(&a, "").await {
        let r = send(
            "DELETE",
            &a.url(&format!("/probe/kv/default/{key}")),
            &[],
            "",
        )
        .await;
        assert!(r.status < 300, "{r:?}");
    }
    let bases = [a.url(""), b.url("")];
    let ledger = Arc::new(Ledger::default());
    let w = Workload::hot("shared", soak(Duration::from_secs(6)));
    run(&w, &bases, &ledger).await;
    db.faults(json!({}));
    drain(&bases[1], Duration::from_secs(60)).await;
    let verdict = ledger.verify(&db, &[]).await;
    report(
        "2 hosts on one Redis store, writers and flushes on both",
        &format!("{} s of load", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean("shared store");
    let s = db.stats();
    assert!(s.fault_garbage_after_commit > 0, "answers were lost: {s:?}");
    assert!(dead_letters(&bases[0]).await.is_empty());
}

#[test]
fn database_7_replaces_or_adds_the_path() {
    assert_eq!(
        database_7("redis://127.0.0.1:6399"),
        "redis://127.0.0.1:6399/7"
    );
    assert_eq!(
        database_7("redis://127.0.0.1:6399/"),
        "redis://127.0.0.1:6399/7"
    );
    assert_eq!(
        database_7("redis://127.0.0.1:6399/0"),
        "redis://127.0.0.1:6399/7"
    );
}
