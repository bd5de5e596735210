//! Flush delivery end to end: buffered writes reach the reference DB API by the cron tick and
//! by `POST /admin/flush`, coalesced, split into batches, and never applied twice.

use std::time::Duration;

use serde_json::json;

use crate::flush_support::*;
use crate::support::*;

#[tokio::test]
async fn a_cron_tick_delivers_buffered_writes_and_empties_the_buffer() {
    let f = Fixture::new("flush-cron", &[]).await;
    let t = now_ms();
    f.buffer("users", "a", json!({"n": 1}), t).await;
    f.buffer("users", "b", json!({"n": 2}), t + 1).await;
    buffer(&f.app, "users", "c", None, t + 2).await;
    let stats = f.stats().await;
    assert_eq!(stats["buffered_writes"], 3, "{stats}");
    assert!(stats["oldest_buffered_age_ms"].is_u64(), "{stats}");
    assert!(
        stats["last_flush"]["outcome"].is_null(),
        "no run yet: {stats}"
    );
    f.tick().await;
    assert_eq!(f.db.item("users", "a").await, Some(json!({"n": 1})));
    assert_eq!(f.db.item("users", "b").await, Some(json!({"n": 2})));
    assert_eq!(f.db.item("users", "c").await, None);
    let s = f.db.stats();
    assert_eq!((s.batch_requests, s.writes_applied), (1, 3));
    assert!(
        f.keys("w:").await.is_empty(),
        "delivered records are removed"
    );
    assert!(f.keys("b:").await.is_empty(), "settled batches are removed");
    let stats = f.stats().await;
    assert_eq!(stats["buffered_writes"], 0, "{stats}");
    assert_eq!(stats["last_flush"]["outcome"], "delivered", "{stats}");
    // Nothing left: the next tick sends nothing.
    f.tick().await;
    assert_eq!(f.db.stats().batch_requests, 1);
    assert_eq!(f.stats().await["last_flush"]["outcome"], "idle");
}

#[tokio::test]
async fn the_admin_route_runs_the_same_flush_and_reports_it() {
    let f = Fixture::new("flush-admin", &[]).await;
    let t = now_ms();
    for i in 0..5 {
        f.buffer("orders", &format!("o{i}"), json!({"i": i}), t + i)
            .await;
    }
    let report = f.admin_flush().await;
    assert_eq!(report["outcome"], "delivered", "{report}");
    assert_eq!(report["batches_sent"], 1, "{report}");
    assert_eq!(report["items"]["applied"], 5, "{report}");
    assert!(report["sweep"].is_object(), "{report}");
    assert_eq!(f.db.stats().writes_applied, 5);
    assert_eq!(f.db.item("orders", "o4").await, Some(json!({"i": 4})));
}

#[tokio::test]
async fn a_hundred_writes_to_one_key_send_one_item() {
    let f = Fixture::new("flush-coalesce", &[]).await;
    let t = now_ms();
    for i in 0..100 {
        f.buffer("counters", "hits", json!({"value": i}), t + i)
            .await;
    }
    assert_eq!(f.stats().await["buffered_writes"], 100);
    let report = f.admin_flush().await;
    assert_eq!(report["items"]["applied"], 1, "{report}");
    assert_eq!(report["items"]["records_deleted"], 100, "{report}");
    let s = f.db.stats();
    assert_eq!((s.batch_requests, s.writes_applied), (1, 1));
    assert_eq!(
        f.db.item("counters", "hits").await,
        Some(json!({"value": 99})),
        "the newest wins"
    );
    assert!(f.keys("w:").await.is_empty());
}

#[tokio::test]
async fn batches_are_split_by_item_count_and_by_bytes() {
    // By count: 25 keys, at most 10 per batch → 3 batches.
    let f = Fixture::new("flush-split-count", &[("flush_batch_max_items", "10")]).await;
    let t = now_ms();
    for i in 0..25 {
        f.buffer("split", &format!("k{i:02}"), json!(i), t + i)
            .await;
    }
    let report = f.admin_flush().await;
    assert_eq!(report["batches_sent"], 3, "{report}");
    let s = f.db.stats();
    assert_eq!((s.batch_requests, s.writes_applied), (3, 25));

    // By bytes: 6 values of ~600 bytes with a 2 KiB bound → several batches, all delivered.
    let f = Fixture::new("flush-split-bytes", &[("flush_batch_max_bytes", "2KiB")]).await;
    let blob = "x".repeat(600);
    for i in 0..6 {
        f.buffer("split", &format!("b{i}"), json!({"blob": blob}), t + i)
            .await;
    }
    let report = f.admin_flush().await;
    let batches = report["batches_sent"].as_u64().unwrap_or(0);
    assert!((3..=6).contains(&batches), "{report}");
    assert_eq!(f.db.stats().writes_applied, 6);
}

#[tokio::test]
async fn the_batch_cap_per_run_leaves_the_rest_for_the_next_run() {
    let f = Fixture::new(
        "flush-cap",
        &[("flush_batch_max_items", "2"), ("flush_max_batches", "2")],
    )
    .await;
    let t = now_ms();
    for i in 0..6 {
        f.buffer("cap", &format!("k{i}"), json!(i), t + i).await;
    }
    let report = f.admin_flush().await;
    assert_eq!(
        (report["batches_sent"].as_u64(), report["more"].as_bool()),
        (Some(2), Some(true)),
        "{report}"
    );
    assert_eq!(f.keys("w:").await.len(), 2);
    f.tick().await;
    assert_eq!(f.db.stats().writes_applied, 6);
    assert!(f.keys("w:").await.is_empty());
}

#[tokio::test]
async fn a_batch_applied_but_unacknowledged_is_resent_with_its_id_and_not_applied_twice() {
    let f = Fixture::new("flush-resend", &[]).await;
    let t = now_ms();
    for i in 0..3 {
        f.buffer("pay", &format!("p{i}"), json!({"amount": i}), t + i)
            .await;
    }
    // The DB API commits the batch, then answers garbage: the flush cannot know it landed.
    f.db.faults(json!({"garbage_after_commit": {"next": 1}}));
    let report = f.admin_flush().await;
    assert_eq!(report["outcome"], "retrying", "{report}");
    assert_eq!(
        f.keys("b:").await.len(),
        1,
        "the sealed batch stays for the resend"
    );
    assert_eq!(
        f.keys("w:").await.len(),
        3,
        "the records stay until an answer is settled"
    );
    pause(300).await; // past the (100–200 ms) backoff
    let report = f.admin_flush().await;
    assert_eq!(
        (
            report["outcome"].as_str(),
            report["batches_resent"].as_u64()
        ),
        (Some("delivered"), Some(1)),
        "{report}"
    );
    let s = f.db.stats();
    assert_eq!(
        (s.batch_requests, s.duplicate_batches, s.writes_applied),
        (2, 1, 3)
    );
    assert!(f.keys("w:").await.is_empty() && f.keys("b:").await.is_empty());
}

#[tokio::test]
async fn a_write_buffered_during_a_slow_flush_stays_for_the_next_one() {
    let f = Fixture::new("flush-concurrent", &[]).await;
    let t = now_ms();
    f.buffer("doc", "d", json!({"rev": 1}), t).await;
    f.db.faults(json!({"batch_latency_ms": 500}));
    let app_url = f.app.url("/admin/flush");
    let flushing = tokio::spawn(async move {
        send(
            "POST",
            &app_url,
            &[("authorization", &format!("Bearer {ADMIN}"))],
            "",
        )
        .await
    });
    pause(200).await;
    f.buffer("doc", "d", json!({"rev": 2}), t + 1).await;
    let first = flushing.await.expect("flush task");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(f.db.item("doc", "d").await, Some(json!({"rev": 1})));
    assert_eq!(f.keys("w:").await, vec![format!("w:{}", stamp(t + 1))]);
    f.db.faults(json!({}));
    f.tick().await;
    assert_eq!(f.db.item("doc", "d").await, Some(json!({"rev": 2})));
    assert!(f.keys("w:").await.is_empty());
}

#[tokio::test]
async fn flush_is_fired_by_the_cron_schedule_itself() {
    let db = Db::start().await;
    let dir = TempDir::new("flush-schedule");
    let app = start_app(dir.path(), Some("* * * * * *"), &flags(&db.url())).await;
    buffer(&app, "sched", "k", Some(json!(1)), now_ms()).await;
    let delivered = eventually(Duration::from_secs(5), async || {
        db.stats().writes_applied == 1
    })
    .await;
    assert!(
        delivered,
        "the every-second schedule should deliver the write"
    );
}

#[tokio::test]
async fn overlapping_runs_do_not_send_the_same_batch_twice() {
    let f = Fixture::new("flush-lease", &[]).await;
    f.buffer("lease", "k", json!(1), now_ms()).await;
    f.db.faults(json!({"batch_latency_ms": 800}));
    let url = f.app.url("/admin/flush");
    let first = tokio::spawn(async move {
        send(
            "POST",
            &url,
            &[("authorization", &format!("Bearer {ADMIN}"))],
            "",
        )
        .await
    });
    pause(300).await;
    // A cron tick while the admin run holds the lease sends nothing.
    f.tick().await;
    let second = f.admin_flush().await;
    assert_eq!(second["outcome"], "lease_busy", "{second}");
    assert!(
        second["lease_owner"]
            .as_str()
            .is_some_and(|o| o.starts_with("admin-")),
        "{second}"
    );
    let first = first.await.expect("first run");
    assert!(first.body.contains("\"delivered\""), "{}", first.body);
    let s = f.db.stats();
    assert_eq!(
        (s.batch_requests, s.duplicate_batches, s.writes_applied),
        (1, 0, 1)
    );
    assert_eq!(f.stats().await["last_flush"]["outcome"], "delivered");
}
