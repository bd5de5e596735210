//! The DB API misbehaves: down, slow past the timeout, 500s, 429 with `Retry-After`, garbage.
//! In every case the buffered writes survive, the next attempt waits for the stored backoff,
//! and after recovery every write arrives exactly once.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::flush_support::*;

const WRITES: u64 = 4;

async fn buffered(f: &Fixture) -> u64 {
    let t = now_ms();
    for i in 0..WRITES {
        f.buffer("fault", &format!("k{i}"), json!({"i": i}), t + i)
            .await;
    }
    WRITES
}

/// Flushes through the admin route until it delivers (bounded).
async fn flush_until_delivered(f: &Fixture) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = f.admin_flush().await;
        if report["outcome"] == "delivered" {
            return report;
        }
        assert!(Instant::now() < deadline, "never delivered: {report}");
        pause(100).await;
    }
}

/// One failure, then recovery: the writes stayed, the stats show the retry, and after the
/// fault is cleared everything lands once.
async fn check_recovers(tag: &str, faults: Value, extra: &[(&str, &str)]) {
    let f = Fixture::new(tag, extra).await;
    let n = buffered(&f).await;
    f.db.faults(faults.clone());
    let report = f.admin_flush().await;
    assert_eq!(report["outcome"], "retrying", "{faults}: {report}");
    assert_eq!(
        f.keys("w:").await.len() as u64,
        n,
        "{faults}: the writes survive"
    );
    let stats = f.stats().await;
    assert_eq!(stats["last_flush"]["outcome"], "retrying", "{stats}");
    assert!(stats["next_retry_at"].is_u64(), "{stats}");
    assert_eq!(stats["sealed_batches"], 1, "{stats}");
    f.db.faults(json!({}));
    flush_until_delivered(&f).await;
    let s = f.db.stats();
    assert_eq!(
        s.writes_applied, n,
        "{faults}: every write exactly once ({s:?})"
    );
    for i in 0..n {
        assert_eq!(
            f.db.item("fault", &format!("k{i}")).await,
            Some(json!({"i": i}))
        );
    }
    assert!(f.keys("w:").await.is_empty() && f.keys("b:").await.is_empty());
    let stats = f.stats().await;
    assert!(stats["next_retry_at"].is_null(), "{stats}");
}

#[tokio::test]
async fn db_api_down_closing_connections() {
    check_recovers("fault-down-close", json!({"down": "close"}), &[]).await;
}

#[tokio::test]
async fn db_api_down_answering_503() {
    check_recovers(
        "fault-down-503",
        json!({"down": "unavailable", "retry_after_secs": 0}),
        &[],
    )
    .await;
}

#[tokio::test]
async fn db_api_unreachable_port() {
    // Nothing listens: connection refused. Then the app is pointed at a live DB API.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let dir = crate::support::TempDir::new("fault-refused");
    let db = Db::start().await;
    let mut vars = flags(&dead);
    let app = start_app(dir.path(), None, &vars).await;
    let t = now_ms();
    buffer(&app, "fault", "k", Some(json!(1)), t).await;
    let r = admin(&app, "POST", "/admin/flush").await;
    let report: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(report["outcome"], "retrying", "{report}");
    app.stop().await;
    // The same store, restarted against the live DB API, delivers.
    set(&mut vars, "db_api_url", &db.url());
    let app = start_app(dir.path(), None, &vars).await;
    pause(250).await;
    let r = admin(&app, "POST", "/admin/flush").await;
    assert!(r.body.contains("\"delivered\""), "{}", r.body);
    assert_eq!(db.stats().writes_applied, 1);
}

#[tokio::test]
async fn db_api_answering_500s() {
    check_recovers(
        "fault-500",
        json!({"error": {"next": 3}, "error_status": 503}),
        &[],
    )
    .await;
}

#[tokio::test]
async fn db_api_garbage_bodies() {
    check_recovers(
        "fault-garbage-html",
        json!({"garbage": {"next": 5}, "garbage_kind": "html"}),
        &[],
    )
    .await;
    check_recovers(
        "fault-garbage-cut",
        json!({"garbage": {"next": 5}, "garbage_kind": "truncated"}),
        &[],
    )
    .await;
}

#[tokio::test]
async fn db_api_slower_than_the_flush_timeout() {
    // Held before the handler for 5 s (then 504), but the flush gives up after 500 ms.
    let f = Fixture::new("fault-timeout-cut", &[("flush_timeout", "500ms")]).await;
    buffered(&f).await;
    f.db.faults(json!({"timeout": {"next": 1}, "hold_ms": 5000}));
    let started = Instant::now();
    let report = f.admin_flush().await;
    let took = started.elapsed();
    assert_eq!(report["outcome"], "retrying", "{report}");
    assert!(
        took < Duration::from_secs(3),
        "the flush timeout must cut the wait short ({took:?})"
    );
    drop(f);
    check_recovers(
        "fault-timeout",
        json!({"timeout": {"next": 1}, "hold_ms": 3000}),
        &[("flush_timeout", "500ms")],
    )
    .await;
    // Plain latency past the timeout.
    check_recovers(
        "fault-latency",
        json!({"batch_latency_ms": 1500}),
        &[("flush_timeout", "300ms")],
    )
    .await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let f = Fixture::new("fault-429", &[]).await;
    let n = buffered(&f).await;
    f.db.faults(json!({"throttle": {"next": 1}, "retry_after_secs": 1}));
    let before = now_ms();
    let report = f.admin_flush().await;
    assert_eq!(report["outcome"], "retrying", "{report}");
    let next = report["next_attempt_at"].as_u64().unwrap_or(0);
    assert!(
        next >= before + 1000,
        "Retry-After: 1 must delay at least 1 s ({next} vs {before})"
    );
    // A tick inside the window sends nothing.
    f.tick().await;
    let report = f.admin_flush().await;
    assert_eq!(report["outcome"], "backing_off", "{report}");
    assert_eq!(
        f.db.stats().fault_throttled,
        1,
        "nothing was sent inside the window"
    );
    assert_eq!(f.stats().await["next_retry_at"].as_u64(), Some(next));
    // After the window, it goes through.
    let wait = next.saturating_sub(now_ms()) + 100;
    pause(wait).await;
    f.tick().await;
    let s = f.db.stats();
    assert_eq!((s.writes_applied, s.fault_throttled), (n, 1));
    assert!(f.keys("w:").await.is_empty());
}

#[tokio::test]
async fn the_db_api_token_is_sent_and_a_wrong_one_keeps_the_writes() {
    let db = Db::start_with(db_api::Settings {
        token: Some("s3cret".into()),
        ..db_api::Settings::default()
    })
    .await;
    let dir = crate::support::TempDir::new("fault-token");
    let mut vars = flags(&db.url());
    set(&mut vars, "db_api_token", "wrong");
    let app = start_app(dir.path(), None, &vars).await;
    buffer(&app, "tok", "k", Some(json!(1)), now_ms()).await;
    let r = admin(&app, "POST", "/admin/flush").await;
    assert!(
        r.body.contains("\"retrying\""),
        "401 is retried, not dead-lettered: {}",
        r.body
    );
    assert_eq!(keys(&app, "w:").await.len(), 1);
    assert_eq!(db.stats().unauthorized, 1);
    app.stop().await;
    set(&mut vars, "db_api_token", "s3cret");
    let app = start_app(dir.path(), None, &vars).await;
    pause(250).await;
    let r = admin(&app, "POST", "/admin/flush").await;
    assert!(r.body.contains("\"delivered\""), "{}", r.body);
    assert_eq!(db.stats().writes_applied, 1);
}
