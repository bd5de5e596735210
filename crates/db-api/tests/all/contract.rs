//! The contract, as one scenario that every backend must pass from an empty store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::json;

use crate::support::*;

/// Runs the whole contract against `app`, whose store must start empty. Ends with a reset.
pub async fn scenario(app: &Router) {
    // Absent item.
    let a = get(app, "/v1/items/users/u1").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");

    // Apply a batch; read it back with its ETag.
    let a = batch(
        app,
        "b-1",
        json!([
            put("users", "u1", json!({"name": "Ada"}), 3),
            put("users", "a/b c", json!([1, 2]), 1)
        ]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied", "applied"]);
    assert_eq!(a.header("idempotent-replayed"), None);
    let a = get(app, "/v1/items/users/u1").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({"name": "Ada"}));
    assert_eq!(a.header("etag"), Some("\"v3\""));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let a = send(
        app,
        Request::get("/v1/items/users/u1")
            .header("if-none-match", "\"v3\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    // The key segment is percent-decoded.
    let a = get(app, "/v1/items/users/a%2Fb%20c").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!([1, 2]));

    // Resending the batch id returns the first answer and applies nothing again, even after
    // a newer write changed the key.
    let a = batch(
        app,
        "b-2",
        json!([put("users", "u1", json!({"name": "Bob"}), 4)]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied"]);
    let a = batch(
        app,
        "b-1",
        json!([
            put("users", "u1", json!({"name": "Ada"}), 3),
            put("users", "a/b c", json!([1, 2]), 1)
        ]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied", "applied"]);
    assert_eq!(a.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        get(app, "/v1/items/users/u1").await.json(),
        json!({"name": "Bob"})
    );
    let s = stats(app).await;
    assert_eq!(
        (
            s.counters.batch_requests,
            s.counters.duplicate_batches,
            s.counters.writes_applied
        ),
        (3, 1, 3)
    );
    assert_eq!((s.rows, s.stored_batches), (2, 2));

    // The same id with another body is refused.
    let a = batch(app, "b-1", json!([put("users", "u1", json!(0), 99)])).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.code(), "idempotency_key_reused");
    assert_eq!(
        get(app, "/v1/items/users/u1").await.header("etag"),
        Some("\"v4\"")
    );

    // Last writer wins by version: equal or lower is stale.
    let a = batch(
        app,
        "b-3",
        json!([
            put("users", "u1", json!("old"), 2),
            put("users", "u1", json!("same"), 4)
        ]),
    )
    .await;
    assert_eq!(statuses(&a), ["stale", "stale"]);
    assert_eq!(
        get(app, "/v1/items/users/u1").await.json(),
        json!({"name": "Bob"})
    );

    // A delete leaves a tombstone with its version: an older put stays stale.
    let a = batch(app, "b-4", json!([delete("users", "u1", 6)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(
        get(app, "/v1/items/users/u1").await.status,
        StatusCode::NOT_FOUND
    );
    // (The second delete of version 6 is another write: a write sent again is `duplicate`,
    // see write_ids.rs.)
    let a = batch(
        app,
        "b-5",
        json!([
            put("users", "u1", json!("late"), 5),
            with_write_id(
                delete("users", "u1", 6),
                Some(&derived_write_id("another delete"))
            ),
            delete("users", "never", 1)
        ]),
    )
    .await;
    assert_eq!(statuses(&a), ["stale", "stale", "applied"]);
    assert_eq!(
        get(app, "/v1/items/users/u1").await.status,
        StatusCode::NOT_FOUND
    );
    let a = batch(app, "b-6", json!([put("users", "u1", json!("back"), 7)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(get(app, "/v1/items/users/u1").await.json(), json!("back"));

    // Invalid writes are rejected one by one; the rest of the batch applies.
    let a = batch(
        app,
        "b-7",
        json!([
            {"ns": "users", "key": "nv", "write_id": derived_write_id("nv"), "op": "put", "version": 1, "written_at": 1},
            {"ns": "users", "key": "op", "write_id": derived_write_id("op"), "op": "upsert", "value": 1, "version": 1, "written_at": 1},
            put("Bad NS", "k", json!(1), 1),
            put("users", "", json!(1), 1),
            put("users", "big", json!(1), u64::MAX),
            {"ns": "users"},
            "not an object",
            put("users", "ok", json!({"fine": true}), 1),
        ]),
    )
    .await;
    assert_eq!(
        statuses(&a),
        [
            "rejected", "rejected", "rejected", "rejected", "rejected", "rejected", "rejected",
            "applied"
        ]
    );
    for r in &a.json()["results"].as_array().unwrap()[..7] {
        assert!(!r["reason"].as_str().unwrap_or_default().is_empty(), "{r}");
    }
    let s = stats(app).await;
    assert_eq!(s.counters.writes_rejected, 7);
    assert_eq!(s.counters.writes_stale, 4);
    assert_eq!((s.rows, s.tombstones), (3, 1));

    // Seed in bulk, generated and listed.
    let a = post_json(
        app,
        "/_seed",
        json!({"ns": "bench", "count": 1000, "value_bytes": 128}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.json()["inserted"], 1000);
    let a = get(app, "/v1/items/bench/key-999").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["n"], 999);
    assert_eq!(a.header("etag"), Some("\"v1\""));
    let a = post_json(
        app,
        "/_seed",
        json!({"items": [{"ns": "cfg", "key": "k", "value": {"x": 1}, "version": 5}]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let a = batch(
        app,
        "b-8",
        json!([put("cfg", "k", json!(2), 5), put("cfg", "k", json!(3), 6)]),
    )
    .await;
    assert_eq!(statuses(&a), ["stale", "applied"]);
    assert_eq!(stats(app).await.rows, 1004);

    // Reset clears rows, stored batches and counters.
    let a = post_json(app, "/_reset", json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    let s = stats(app).await;
    assert_eq!((s.rows, s.tombstones, s.stored_batches), (0, 0, 0));
    assert_eq!(s.counters, Default::default());
    let a = batch(app, "b-1", json!([put("users", "u1", json!(0), 99)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(a.header("idempotent-replayed"), None);
    post_json(app, "/_reset", json!({})).await;
}

#[tokio::test]
async fn sqlite_in_memory_passes_the_contract() {
    scenario(&default_app()).await;
}

#[tokio::test]
async fn sqlite_file_passes_the_contract_and_keeps_data() {
    let dir = std::env::temp_dir().join(format!("db-api-test-{}", std::process::id()));
    let path = dir.join("nested").join("t.sqlite");
    let _ = std::fs::remove_dir_all(&dir);
    let backend = db_api::backend::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(backend.kind(), "sqlite");
    let state = db_api::AppState::new(backend, Default::default()).unwrap();
    let app = db_api::app(state);
    scenario(&app).await;
    let a = batch(&app, "keep", json!([put("users", "kept", json!(1), 1)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    drop(app);
    // Reopen: the row and the batch id survived.
    let backend = db_api::backend::open(path.to_str().unwrap()).await.unwrap();
    let app = db_api::app(db_api::AppState::new(backend, Default::default()).unwrap());
    assert_eq!(
        get(&app, "/v1/items/users/kept").await.status,
        StatusCode::OK
    );
    let a = batch(&app, "keep", json!([put("users", "kept", json!(1), 1)])).await;
    assert_eq!(a.header("idempotent-replayed"), Some("true"));
    // And so did its write id.
    let a = batch(&app, "again", json!([put("users", "kept", json!(1), 1)])).await;
    assert_eq!(statuses(&a), ["duplicate"]);
    let _ = std::fs::remove_dir_all(&dir);
}
