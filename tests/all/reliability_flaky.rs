//! Scenario 2: a flaky DB API — 30 % of batches fail with `500`, some are throttled with
//! `429` and `Retry-After`, some answer slower than the flush timeout, some answer garbage
//! (before or after committing), and one key is always rejected. The rejected key ends in
//! the dead-letter queue; every other acknowledged write is delivered exactly once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_db_api_gets_every_write_once_and_the_poison_key_is_dead_lettered() {
    let db = Db::start().await;
    let dir = TempDir::new("rel-flaky");
    let mut vars = flags(&db.url());
    set(&mut vars, "flush_max_attempts", "100000");
    set(&mut vars, "flush_batch_max_items", "2");
    let app = start_app(dir.path(), Some("* * * * * *"), &vars).await;
    let base = app.url("");
    db.faults(json!({
        "seed": 11,
        "error": {"rate": 0.3, "routes": "batches"},
        "throttle": {"rate": 0.1, "routes": "batches"},
        "retry_after_secs": 1,
        "timeout": {"rate": 0.1, "routes": "batches"},
        "hold_ms": 1500,
        "garbage": {"rate": 0.2, "routes": "batches"},
        "garbage_kind": "truncated",
        "garbage_after_commit": {"rate": 0.2},
        "reject_keys": ["flaky/k0"],
    }));
    let ledger = Arc::new(Ledger::default());
    // More keys than the hot-key scenarios: more batches, so every fault kind fires.
    let w = Workload {
        keys: 40,
        ..Workload::hot("flaky", soak(Duration::from_secs(6)))
    };
    run(&w, std::slice::from_ref(&base), &ledger).await;
    // Keep the faults on while the buffer drains, so retries meet them too.
    drain(&base, Duration::from_secs(90)).await;
    let s = db.stats();
    assert!(
        s.fault_errors > 0 && s.fault_throttled > 0 && s.fault_timeouts > 0,
        "the faults fired: {s:?}"
    );
    assert!(
        s.fault_garbage > 0 && s.fault_garbage_after_commit > 0,
        "{s:?}"
    );
    db.heal();
    let verdict = ledger.verify(&db, &["flaky/k0"]).await;
    report(
        "DB API: 30 % 500s, 429 + Retry-After, timeouts, garbage, one key rejected",
        &format!("{} s of load", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean("flaky");
    let dead = dead_letters(&base).await;
    assert!(!dead.is_empty(), "the rejected key was dead-lettered");
    assert!(
        dead.iter().all(|d| d["ns"] == "flaky" && d["key"] == "k0"),
        "only the rejected key is dead-lettered: {dead:?}"
    );
    assert_eq!(db.item("flaky", "k0").await, None, "nothing of k0 stored");
}
