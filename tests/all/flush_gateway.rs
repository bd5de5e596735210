//! The whole write-behind path: writes accepted by the gateway are delivered by the flush,
//! and the cache entries they dirtied are marked clean (`X-Sync` disappears) afterwards.

use serde_json::{json, Value};

use crate::flush_support::*;
use crate::support::*;

async fn put(f: &Fixture, path: &str, body: Value) {
    let r = send(
        "PUT",
        &f.app.url(path),
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert!(
        (200..300).contains(&r.status),
        "PUT {path}: {} {}",
        r.status,
        r.body
    );
}

#[tokio::test]
async fn gateway_writes_are_delivered_and_their_entries_marked_clean() {
    let f = Fixture::new("flush-gateway", &[]).await;
    put(&f, "/v1/users/alice", json!({"name": "Alice"})).await;
    put(&f, "/v1/users/bob", json!({"name": "Bob"})).await;
    let r = get(&f.app.url("/v1/users/alice")).await;
    assert_eq!(
        r.headers.get("x-sync").and_then(|v| v.to_str().ok()),
        Some("pending"),
        "{r:?}"
    );
    assert_eq!(f.stats().await["buffered_writes"], 2);

    f.tick().await;
    assert_eq!(
        f.db.item("users", "alice").await,
        Some(json!({"name": "Alice"}))
    );
    assert_eq!(
        f.db.item("users", "bob").await,
        Some(json!({"name": "Bob"}))
    );
    let r = get(&f.app.url("/v1/users/alice")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers.get("x-sync").is_none(),
        "delivered entries are clean: {r:?}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).ok(),
        Some(json!({"name": "Alice"}))
    );
    assert_eq!(f.stats().await["buffered_writes"], 0);
}

#[tokio::test]
async fn a_hundred_gateway_writes_to_one_key_send_one_item() {
    let f = Fixture::new("flush-gateway-coalesce", &[]).await;
    for i in 0..100 {
        put(&f, "/v1/counters/hits", json!({"value": i})).await;
    }
    let report = f.admin_flush().await;
    assert_eq!(report["items"]["applied"], 1, "{report}");
    let s = f.db.stats();
    assert_eq!((s.batch_requests, s.writes_applied), (1, 1));
    assert_eq!(
        f.db.item("counters", "hits").await,
        Some(json!({"value": 99}))
    );
}
