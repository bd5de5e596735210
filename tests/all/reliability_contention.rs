//! Scenario 4: 8 writers on 10 hot keys plus readers, with the cron flush and the admin
//! flush route running at the same time. Readers are never served a wrong value; the DB API
//! ends with every key's acknowledged winner, each write delivered once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_under_concurrent_writers_and_flushes_keep_the_last_writer() {
    let db = Db::start().await;
    // Slow batches widen the window between sealing and settling, where writes race.
    db.faults(json!({"batch_latency_ms": 30}));
    let dir = TempDir::new("rel-contention");
    let mut vars = flags(&db.url());
    set(&mut vars, "flush_batch_max_items", "3");
    let app = start_app(dir.path(), Some("* * * * * *"), &vars).await;
    let base = app.url("");
    let ledger = Arc::new(Ledger::default());
    let w = Workload::hot("hot", soak(Duration::from_secs(6)));
    let reads = run(&w, std::slice::from_ref(&base), &ledger).await;
    assert!(
        reads.ok.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "readers were served"
    );
    db.heal();
    drain(&base, Duration::from_secs(60)).await;
    let verdict = ledger.verify(&db, &[]).await;
    report(
        "8 writers × 10 hot keys + readers, cron + admin flushes",
        &format!("{} s of load", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean("contention");
    assert!(db.stats().batch_requests > 3, "several flushes ran");
}
