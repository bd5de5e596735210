//! Scenario 1: the DB API is down for a long stretch. The buffer fills, the gateway answers
//! `503` with `Retry-After` (backpressure) instead of accepting what it could not keep, and
//! when the DB API is back every acknowledged write is delivered exactly once.

use std::sync::Arc;
use std::time::Duration;

use crate::flush_support::*;
use crate::ledger::Ledger;
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
    let app = start_app(dir.path(), Some("* * * * * *"), &vars).await;
    let base = app.url("");
    db.down();
    let ledger = Arc::new(Ledger::default());
    let w = Workload::hot("outage", soak(Duration::from_secs(5)));
    run(&w, std::slice::from_ref(&base), &ledger).await;
    let during = ledger.tally();
    assert!(during.refused_503 > 0, "the buffer filled: {during:?}");
    assert_eq!(during.refused, during.refused_503, "only 503s: {during:?}");
    assert_eq!(
        db.stats().writes_applied,
        0,
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
