//! Scenario 8: the rollout switched under load. Writers and readers on 200 keys while an
//! operator moves the rollout every half second through every mode (cutover, passthrough,
//! shadow, canary with and without buffered writes) and back, with flushes running. Writes
//! are buffered (`202`) in one mode and passed through to the DB API (`200`) in the next,
//! while buffered ones are still waiting; a passed-through write of a key with buffered
//! writes pending is refused (`409 writes_pending`). The DB API must end with every key's
//! last acknowledged write, whichever path acknowledged it, each buffered write delivered in
//! one batch and applied once; readers are never served a wrong value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

/// The rollout changes, in order, repeated: every mode, and the canary both ways.
const MODES: [&str; 6] = [
    r#"{"mode":"passthrough"}"#,
    r#"{"mode":"canary","canary_share":100,"canary_writes_buffered":true}"#,
    r#"{"mode":"shadow"}"#,
    r#"{"mode":"cutover"}"#,
    r#"{"mode":"canary","canary_share":100,"canary_writes_buffered":false}"#,
    r#"{"mode":"cutover"}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_rollout_under_load_loses_no_acknowledged_write() {
    let db = Db::start().await;
    let dir = TempDir::new("rel-mode-switch");
    let mut vars = flags(&db.url());
    set(&mut vars, "flush_batch_max_items", "3");
    let app = start_app(dir.path(), Some("* * * * * *"), &vars).await;
    let base = app.url("");
    let ledger = Arc::new(Ledger::default());
    // Many keys, each written a few times: keys' last writes fall in every mode, not only
    // in the last one.
    let w = Workload {
        keys: 200,
        ..Workload::hot("switch", soak(Duration::from_secs(6)))
    };

    let stop = Arc::new(AtomicBool::new(false));
    let switcher = {
        let (base, stop) = (base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut changes = 0u32;
            for body in MODES.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Forced: the gate is not what this scenario is about.
                let body = body.replace('}', r#","force":true}"#);
                let r = send(
                    "POST",
                    &format!("{base}/admin/rollout"),
                    &[
                        ("authorization", &format!("Bearer {ADMIN}")),
                        ("content-type", "application/json"),
                    ],
                    &body,
                )
                .await;
                assert!(r.status == 200 || r.status == 409, "{body}: {r:?}");
                changes += u32::from(r.status == 200);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            changes
        })
    };
    let busy = CpuPressure::start(w.duration + Duration::from_secs(5));
    let reads = run(&w, std::slice::from_ref(&base), &ledger).await;
    drop(busy);
    stop.store(true, Ordering::Relaxed);
    let changes = switcher.await.expect("switcher");
    assert!(
        changes >= 6,
        "the rollout went through every mode: {changes}"
    );
    assert!(reads.ok.load(Ordering::Relaxed) > 0, "readers were served");

    // The buffer drains whatever mode the last switch left.
    drain(&base, Duration::from_secs(60)).await;
    let verdict = ledger.verify(&db, &[]).await;
    report(
        "rollout switched every 0.5 s through every mode, under CPU pressure",
        &format!("{} s of load, {changes} switches", w.duration.as_secs()),
        &verdict,
    );
    verdict.assert_clean("mode switch");
    let t = verdict.tally;
    assert!(
        t.acked > 0 && t.applied > 0,
        "writes were both buffered and passed through: {t:?}"
    );
    assert!(
        db.stats().batch_requests > 0,
        "buffered writes were flushed"
    );
}
