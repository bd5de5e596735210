//! The PostgreSQL backend, run only when `DB_API_TEST_POSTGRES_URL` names a database.
//!
//! The test truncates its tables (`db_api_items`, `db_api_batches`, `db_api_write_ids`):
//! point it at a scratch database.

use std::io::Write;
use std::sync::Arc;

use serde_json::json;

use crate::support::*;

const ENV: &str = "DB_API_TEST_POSTGRES_URL";

#[tokio::test]
async fn postgres_passes_the_contract() {
    let Ok(url) = std::env::var(ENV) else {
        // Straight to stderr, past the test harness's capture, so the skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: postgres_passes_the_contract: {ENV} is not set (e.g. postgres://postgres@127.0.0.1/db_api_test)"
        );
        return;
    };
    let backend = db_api::backend::open(&url)
        .await
        .expect("connect to postgres");
    assert_eq!(backend.kind(), "postgres");
    assert!(!backend.describe().contains(":secret@"));
    let state = db_api::AppState::new(Arc::clone(&backend), Default::default()).unwrap();
    let app = db_api::app(state);
    post_json(&app, "/_reset", json!({})).await;
    crate::contract::scenario(&app).await;
    crate::write_ids::scenario(&app).await;
    let short =
        db_api::AppState::new(Arc::clone(&backend), crate::write_ids::short_retention()).unwrap();
    crate::write_ids::pruning(&db_api::app(short)).await;
    crate::item_writes::conditional_scenario(&app).await;

    // One write sent at once in batches with different ids is applied exactly once.
    let write = put("ns", "once", json!(1), 1);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (app, write) = (app.clone(), write.clone());
        tasks.push(tokio::spawn(async move {
            batch(&app, &format!("once-{i}"), json!([write])).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(statuses(&t.await.unwrap()));
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    let s = stats(&app).await;
    assert_eq!(
        (
            s.counters.writes_applied,
            s.counters.writes_duplicate,
            s.counters.writes_applied_twice
        ),
        (1, 7, 0)
    );
    post_json(&app, "/_reset", json!({})).await;

    // Concurrent sends of one batch id apply it exactly once.
    let writes = json!([put("ns", "a", json!(1), 1), put("ns", "b", json!(2), 1)]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, writes) = (app.clone(), writes.clone());
        tasks.push(tokio::spawn(
            async move { batch(&app, "same", writes).await },
        ));
    }
    let mut replays = 0;
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(statuses(&a), ["applied", "applied"]);
        replays += usize::from(a.header("idempotent-replayed").is_some());
    }
    assert_eq!(replays, 7);
    let s = stats(&app).await;
    assert_eq!((s.counters.writes_applied, s.rows), (2, 2));

    // Concurrent batches over the same keys in opposite orders do not deadlock.
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let app = app.clone();
        let writes = if i % 2 == 0 {
            json!([
                put("ns", "a", json!(i), 10 + i),
                put("ns", "b", json!(i), 10 + i)
            ])
        } else {
            json!([
                put("ns", "b", json!(i), 10 + i),
                put("ns", "a", json!(i), 10 + i)
            ])
        };
        tasks.push(tokio::spawn(async move {
            batch(&app, &format!("x{i}"), writes).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, axum::http::StatusCode::OK);
    }
    assert_eq!(
        get(&app, "/v1/items/ns/a").await.header("etag"),
        Some("\"v17\"")
    );

    // A 100k-row seed goes through in chunks.
    let a = post_json(
        &app,
        "/_seed",
        json!({"ns": "bench", "count": 100_000, "value_bytes": 64}),
    )
    .await;
    assert_eq!(a.json()["inserted"], 100_000);
    post_json(&app, "/_reset", json!({})).await;
}
