//! Write ids: a write is applied once whatever batch it comes in, for the retention window.

use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use db_api::Settings;
use serde_json::json;

use crate::support::*;

/// Runs the write-id rules against `app`, whose store must start empty. Ends with a reset
/// (faults included).
pub async fn scenario(app: &Router) {
    let ada = put("users", "u1", json!("Ada"), 5);
    let a = batch(
        app,
        "w-1",
        json!([ada.clone(), put("users", "u2", json!(1), 3)]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied", "applied"]);

    // The same write sealed into another batch is a duplicate: nothing is applied again.
    let a = batch(
        app,
        "w-2",
        json!([ada.clone(), put("users", "u3", json!(1), 1)]),
    )
    .await;
    assert_eq!(statuses(&a), ["duplicate", "applied"]);
    assert_eq!(a.json()["results"][0].get("reason"), None);
    let s = stats(app).await;
    assert_eq!(
        (
            s.counters.writes_applied,
            s.counters.writes_duplicate,
            s.counters.writes_stale,
            s.counters.writes_redelivered,
            s.counters.writes_applied_twice,
        ),
        (3, 1, 0, 1, 0)
    );
    assert_eq!(s.stored_write_ids, 3);

    // The check is by write id alone, before the version guard: the same id with a newer
    // version (which the guard would let through) is not applied either.
    let ada_id = ada["write_id"].as_str().unwrap().to_owned();
    let newer = with_write_id(put("users", "u1", json!("Bob"), 9), Some(&ada_id));
    let a = batch(app, "w-3", json!([newer])).await;
    assert_eq!(statuses(&a), ["duplicate"]);
    let a = get(app, "/v1/items/users/u1").await;
    assert_eq!((a.json(), a.header("etag")), (json!("Ada"), Some("\"v5\"")));

    // A replayed batch id still returns its first answer, not `duplicate`.
    let a = batch(
        app,
        "w-1",
        json!([ada.clone(), put("users", "u2", json!(1), 3)]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied", "applied"]);
    assert_eq!(a.header("idempotent-replayed"), Some("true"));

    // One write id twice in one batch: the second is the duplicate.
    let twice = put("users", "u4", json!(4), 4);
    let a = batch(app, "w-4", json!([twice.clone(), twice])).await;
    assert_eq!(statuses(&a), ["applied", "duplicate"]);

    // A stale write was received: its id is recorded too, and a second copy is a duplicate.
    let late = put("users", "u1", json!("late"), 2);
    let a = batch(app, "w-5", json!([late.clone()])).await;
    assert_eq!(statuses(&a), ["stale"]);
    let a = batch(app, "w-6", json!([late])).await;
    assert_eq!(statuses(&a), ["duplicate"]);

    // A rejected write is not recorded: sent again once the reason is gone, it applies.
    set_faults(app, json!({"reject_keys": ["users/r"]})).await;
    let refused = put("users", "r", json!(1), 1);
    let a = batch(app, "w-7", json!([refused.clone()])).await;
    assert_eq!(statuses(&a), ["rejected"]);
    set_faults(app, json!({})).await;
    let a = batch(app, "w-8", json!([refused])).await;
    assert_eq!(statuses(&a), ["applied"]);

    // An invalid write id rejects the write, with a reason; nothing is recorded for it.
    let before = stats(app).await.stored_write_ids;
    let one = put("users", "bad-id", json!(1), 1);
    let a = batch(
        app,
        "w-9",
        json!([
            with_write_id(one.clone(), None),
            with_write_id(one.clone(), Some("0123456789ABCDEF0123456789abcdef")),
            with_write_id(one.clone(), Some("0123456789abcdef0123456789abcde")),
            with_write_id(one.clone(), Some("0123456789abcdef0123456789abcdeg")),
            with_write_id(one.clone(), Some("")),
            {"ns": "users", "key": "bad-id", "write_id": 7, "op": "put", "value": 1, "version": 1, "written_at": 1},
        ]),
    )
    .await;
    assert_eq!(statuses(&a), ["rejected"; 6]);
    for r in &a.json()["results"].as_array().unwrap()[..5] {
        let reason = r["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("write_id"), "{r}");
    }
    assert!(a.json()["results"][5]["reason"].is_string());
    assert_eq!(stats(app).await.stored_write_ids, before);
    assert_eq!(
        get(app, "/v1/items/users/bad-id").await.status,
        StatusCode::NOT_FOUND
    );

    let s = stats(app).await;
    assert_eq!(
        (
            s.counters.writes_duplicate,
            s.counters.writes_redelivered,
            s.counters.writes_applied_twice
        ),
        (4, 3, 0)
    );

    // With both guards skipped, a write delivered twice is applied twice, and counted.
    let a = set_faults(app, json!({"skip_write_guards": true})).await;
    assert_eq!(a.json()["skip_write_guards"], true);
    let carl = put("users", "u5", json!("Carl"), 7);
    let a = batch(app, "w-10", json!([carl.clone()])).await;
    assert_eq!(statuses(&a), ["applied"]);
    let a = batch(app, "w-11", json!([carl])).await;
    assert_eq!(statuses(&a), ["applied"]);
    let s = stats(app).await;
    assert_eq!(
        (
            s.counters.writes_redelivered,
            s.counters.writes_applied_twice
        ),
        (4, 1)
    );

    // Reset forgets the write ids and the counts.
    let a = post_json(app, "/_reset?faults=true", json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    let s = stats(app).await;
    assert_eq!(
        (
            s.stored_write_ids,
            s.counters.writes_applied_twice,
            s.applied_write_ids_tracked
        ),
        (0, 0, 0)
    );
    let a = batch(app, "w-12", json!([ada])).await;
    assert_eq!(statuses(&a), ["applied"]);
    post_json(app, "/_reset", json!({})).await;
}

/// Write ids older than the retention of `app` (a few tens of milliseconds) are pruned.
/// The store must start empty; ends with a reset.
pub async fn pruning(app: &Router) {
    let first = put("users", "p1", json!(1), 1);
    let a = batch(app, "p-1", json!([first.clone()])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(stats(app).await.stored_write_ids, 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The next batch prunes the old id before recording its own.
    let a = batch(app, "p-2", json!([put("users", "p2", json!(2), 2)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(stats(app).await.stored_write_ids, 1);
    // Forgotten: the old write is no longer a duplicate (only the version guard is left).
    let a = batch(app, "p-3", json!([first])).await;
    assert_eq!(statuses(&a), ["stale"]);
    post_json(app, "/_reset", json!({})).await;
}

/// Settings with a write-id retention short enough to see pruning.
pub fn short_retention() -> Settings {
    Settings {
        write_id_retention: Duration::from_millis(40),
        ..Settings::default()
    }
}

#[tokio::test]
async fn sqlite_applies_a_write_id_once_whatever_batch_it_comes_in() {
    scenario(&default_app()).await;
}

#[tokio::test]
async fn sqlite_prunes_write_ids_older_than_the_retention() {
    pruning(&sqlite_app(short_retention()).0).await;
}

#[tokio::test]
async fn the_default_retention_keeps_write_ids() {
    let app = default_app();
    let w = put("users", "k", json!(1), 1);
    assert_eq!(
        statuses(&batch(&app, "a", json!([w.clone()])).await),
        ["applied"]
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let a = batch(&app, "b", json!([put("users", "j", json!(1), 1)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(statuses(&batch(&app, "c", json!([w])).await), ["duplicate"]);
    assert_eq!(stats(&app).await.stored_write_ids, 2);
}
