//! Scenario 5: two host instances share one Redis-backed key-value store (Spin runtime
//! config, a real Redis on loopback), as on SpinKube or Akamai with several replicas.
//! Writers use both, both run the cron flush and the admin flush; then three instances with
//! nine flushers while busy threads take the CPU. The sealing registry (compare-and-swap on
//! Redis) keeps every write in one batch, and the DB API applies each once.
//!
//! Needs `CACHE_SYNC_TEST_REDIS_URL` (CI starts a Redis on loopback); without it the test
//! says so and checks nothing. Each scenario uses a Redis database of its own on that server
//! (7 and 8), so they can run at once, and empties it first.

use std::sync::Arc;
use std::time::Duration;

use cache_sync_host::RunningApp;
use serde_json::json;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

/// `url` with database `n` selected.
fn database(url: &str, n: u8) -> String {
    let url = url.trim_end_matches('/');
    let path_starts = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[path_starts..].find('/') {
        Some(i) => format!("{}/{n}", &url[..path_starts + i]),
        None => format!("{url}/{n}"),
    }
}

/// A host on the Redis store at `redis`, with the cron flush every second when `cron`.
async fn instance(dir: &TempDir, redis: &str, vars: &[(String, String)], cron: bool) -> RunningApp {
    let manifest = write_manifest(dir.path(), &manifest(cron.then_some("* * * * * *")));
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

/// `hosts` instances on one Redis store, each with its cron flush and `admin_flushers` admin
/// flush callers, writers on all of them; optionally under CPU pressure. `None` when skipped.
async fn shared_store(
    scenario: &str,
    redis_db: u8,
    lease_ttl: &str,
    hosts: usize,
    admin_flushers: usize,
    pressure: bool,
) -> Option<db_api::stats::CountersSnapshot> {
    let Ok(url) = std::env::var("CACHE_SYNC_TEST_REDIS_URL") else {
        eprintln!("skipped: CACHE_SYNC_TEST_REDIS_URL is not set");
        return None;
    };
    let redis = database(&url, redis_db);
    let db = Db::start().await;
    db.faults(json!({"batch_latency_ms": 30, "garbage_after_commit": {"rate": 0.1}, "seed": 5}));
    let mut vars = flags(&db.url());
    set(&mut vars, "flush_batch_max_items", "3");
    set(&mut vars, "lease_ttl", lease_ttl);
    let dirs: Vec<TempDir> = (0..hosts)
        .map(|i| TempDir::new(&format!("rel-shared-{i}")))
        .collect();
    // A clean store: remove what an earlier run left, through a host without cron, before
    // any flush can read the leftovers (and write a leftover entry back after its removal).
    {
        let dir = TempDir::new("rel-shared-clean");
        let cleaner = instance(&dir, &redis, &vars, false).await;
        for key in keys(&cleaner, "").await {
            let r = send(
                "DELETE",
                &cleaner.url(&format!("/probe/kv/default/{key}")),
                &[],
                "",
            )
            .await;
            assert!(r.status < 300, "{r:?}");
        }
        assert!(keys(&cleaner, "").await.is_empty());
    }
    let mut apps = Vec::new();
    for dir in &dirs {
        apps.push(instance(dir, &redis, &vars, true).await);
    }
    let bases: Vec<String> = apps.iter().map(|a| a.url("")).collect();
    let ledger = Arc::new(Ledger::default());
    let mut w = Workload::hot("shared", soak(Duration::from_secs(6)));
    w.admin_flushers = admin_flushers;
    let busy = pressure.then(|| CpuPressure::start(w.duration + Duration::from_secs(5)));
    run(&w, &bases, &ledger).await;
    drop(busy);
    db.faults(json!({}));
    drain(&bases[1], Duration::from_secs(60)).await;
    let verdict = ledger.verify(&db, &[]).await;
    report(
        scenario,
        &format!("{} s of load", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean(scenario);
    assert!(dead_letters(&bases[0]).await.is_empty());
    Some(db.stats())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_redis_store_deliver_each_write_once() {
    let s = shared_store(
        "2 hosts on one Redis store, writers and flushes on both",
        7,
        "5s",
        2,
        1,
        false,
    )
    .await;
    // With a lease longer than a run, runs finish and the DB API's lost answers were met.
    // (Runs that keep losing a short lease on a loaded machine may send too few batches.)
    if let Some(s) = s {
        assert!(s.fault_garbage_after_commit > 0, "answers were lost: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_and_nine_flushers_on_a_loaded_machine_deliver_each_write_once() {
    shared_store(
        "3 hosts on one Redis store, 9 flushers, under CPU pressure, lease shorter than a run",
        8,
        "150ms",
        3,
        2,
        true,
    )
    .await;
}

#[test]
fn database_replaces_or_adds_the_path() {
    assert_eq!(
        database("redis://127.0.0.1:6399", 7),
        "redis://127.0.0.1:6399/7"
    );
    assert_eq!(
        database("redis://127.0.0.1:6399/", 8),
        "redis://127.0.0.1:6399/8"
    );
    assert_eq!(
        database("redis://127.0.0.1:6399/0", 7),
        "redis://127.0.0.1:6399/7"
    );
}
