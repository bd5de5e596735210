//! Scenario 4: 8 writers on 10 hot keys plus readers, with the cron flush and the admin
//! flush route running at the same time; then the same with more flushers while busy threads
//! take the CPU from the host. Readers are never served a wrong value; the DB API ends with
//! every key's acknowledged winner, each write delivered in one batch and applied once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

/// `lease_ttl` below a run's length makes runs take each other's lease over mid-run.
async fn contention(scenario: &str, admin_flushers: usize, lease_ttl: &str, pressure: bool) {
    let db = Db::start().await;
    // Slow batches widen the window between sealing and settling, where writes race.
    db.faults(json!({"batch_latency_ms": 30}));
    let dir = TempDir::new("rel-contention");
    let mut vars = flags(&db.url());
    set(&mut vars, "flush_batch_max_items", "3");
    set(&mut vars, "lease_ttl", lease_ttl);
    let app = start_app(dir.path(), Some("* * * * * *"), &vars).await;
    let base = app.url("");
    let ledger = Arc::new(Ledger::default());
    let mut w = Workload::hot("hot", soak(Duration::from_secs(6)));
    w.admin_flushers = admin_flushers;
    let busy = pressure.then(|| CpuPressure::start(w.duration + Duration::from_secs(5)));
    let reads = run(&w, std::slice::from_ref(&base), &ledger).await;
    drop(busy);
    assert!(
        reads.ok.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "readers were served"
    );
    db.heal();
    drain(&base, Duration::from_secs(60)).await;
    let verdict = ledger.verify(&db, &[]).await;
    report(
        scenario,
        &format!("{} s of load", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean(scenario);
    assert!(db.stats().batch_requests > 3, "several flushes ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_under_concurrent_writers_and_flushes_keep_the_last_writer() {
    contention(
        "8 writers × 10 hot keys + readers, cron + admin flushes",
        1,
        "60s",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_flushers_on_a_loaded_machine_deliver_each_write_once() {
    contention(
        "the same with 4 flushers, under CPU pressure, lease shorter than a run",
        3,
        "150ms",
        true,
    )
    .await;
}
