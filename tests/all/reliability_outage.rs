//! Scenario 1: the DB API is down for a long stretch. The buffer fills, the gateway answers
//! `503` with `Retry-After` (backpressure) instead of accepting what it could not keep, and
//! when the DB API is back every acknowledged write is delivered exactly once.

use std::sync::Arc;
use std::time::Duration;

use crate::flush_support::*;
use crate::ledger::{Ledger, Outcome};
use crate::reliability_support::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_refuses_with_backpressure_and_loses_nothing() {
    let db = Db::start().await;
    let dir = TempDir::new("rel-outage");
    let mut vars = flags(&db.url());
    // Small buffer so the outage fills it; attempts are not exhausted during the outage
    // (with the defaults, 20 attempts span about an hour of backoff).
    set(&mut vars, "max_buffered_writes", "60");
    set(&mut vars, "flush_max_attempts", "100000");
    // Writes are authorized by the DB API; an allowance is kept for grant_ttl, so callers
    // that wrote before the outage go on writing during it (the others get 503 too).
    set(&mut vars, "auth_key", "reliability-auth-key-0123");
    set(&mut vars, "grant_ttl", "1h");
    let app = start_app(dir.path(), Some("* * * * * *"), &vars).await;
    let base = app.url("");
    let w = Workload::hot("outage", soak(Duration::from_secs(5)));
    let ledger = Arc::new(Ledger::default());
    // Before the outage: each key deleted once (a write the ledger records) and read once,
    // so the write and read allowances are kept.
    for k in 0..w.keys {
        let key = format!("k{k}");
        let outcome = ledger.delete(&base, w.ns, &key).await;
        assert!(matches!(outcome, Outcome::Acked(_)), "{key}: {outcome:?}");
        let _ = get(&format!("{base}/v1/{}/{key}", w.ns)).await;
    }
    drain(&base, Duration::from_secs(30)).await;
    let applied_before = db.stats().writes_applied;
    db.down();
    run(&w, std::slice::from_ref(&base), &ledger).await;
    let during = ledger.tally();
    assert!(during.refused_503 > 0, "the buffer filled: {during:?}");
    assert_eq!(during.refused, during.refused_503, "only 503s: {during:?}");
    assert_eq!(
        db.stats().writes_applied,
        applied_before,
        "nothing got through the outage"
    );

    db.heal();
    drain(&base, Duration::from_secs(60)).await;
    let verdict = ledger.verify(&db, &[]).await;
    report(
        "DB API down, buffer full (503), then back",
        &format!("{} s of load", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean("outage");
    assert!(
        dead_letters(&base).await.is_empty(),
        "nothing dead-lettered"
    );
}
