//! Each fault mode, seen from a client.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::support::*;

#[tokio::test]
async fn injected_errors_fire_before_any_state_change() {
    let app = default_app();
    set_faults(&app, json!({"error": {"next": 1}})).await;
    let a = batch(&app, "b1", json!([put("ns", "k", json!(1), 1)])).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.code(), "injected_error");
    let s = stats(&app).await;
    assert_eq!(
        (s.rows, s.stored_batches, s.counters.fault_errors),
        (0, 0, 1)
    );
    // The retry with the same id applies (first time for the store).
    let a = batch(&app, "b1", json!([put("ns", "k", json!(1), 1)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(a.header("idempotent-replayed"), None);

    // Another 5xx status, for reads only.
    set_faults(
        &app,
        json!({"error": {"next": 1, "routes": "reads"}, "error_status": 502}),
    )
    .await;
    let a = batch(&app, "b2", json!([put("ns", "k", json!(2), 2)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(
        get(&app, "/v1/items/ns/k").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(get(&app, "/v1/items/ns/k").await.status, StatusCode::OK);
}

#[tokio::test]
async fn error_rates_are_reproducible_from_the_seed() {
    let app = default_app();
    let pattern = |app: axum::Router| async move {
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(get(&app, "/v1/items/ns/k").await.status == StatusCode::INTERNAL_SERVER_ERROR);
        }
        out
    };
    set_faults(&app, json!({"seed": 42, "error": {"rate": 0.5}})).await;
    let first = pattern(app.clone()).await;
    set_faults(&app, json!({"seed": 42, "error": {"rate": 0.5}})).await;
    let second = pattern(app.clone()).await;
    assert_eq!(first, second);
    let failed = first.iter().filter(|&&f| f).count();
    assert!((8..=32).contains(&failed), "{failed} of 40");
    set_faults(&app, json!({"seed": 43, "error": {"rate": 0.5}})).await;
    assert_ne!(first, pattern(app.clone()).await);
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let app = default_app();
    set_faults(
        &app,
        json!({"throttle": {"next": 2}, "retry_after_secs": 7}),
    )
    .await;
    for _ in 0..2 {
        let a = batch(&app, "b", json!([put("ns", "k", json!(1), 1)])).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.header("retry-after"), Some("7"));
        assert_eq!(a.code(), "throttled");
    }
    assert_eq!(get(&app, "/_faults").await.json()["throttle"]["next"], 0);
    let a = batch(&app, "b", json!([put("ns", "k", json!(1), 1)])).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(stats(&app).await.counters.fault_throttled, 2);
}

#[tokio::test]
async fn timeouts_hold_the_request_and_store_nothing() {
    let app = default_app();
    set_faults(&app, json!({"timeout": {"next": 1}, "hold_ms": 150})).await;
    let started = Instant::now();
    let a = batch(&app, "b", json!([put("ns", "k", json!(1), 1)])).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(a.code(), "timeout");
    let s = stats(&app).await;
    assert_eq!(
        (s.rows, s.stored_batches, s.counters.fault_timeouts),
        (0, 0, 1)
    );

    // A client that gives up first never gets an answer.
    set_faults(&app, json!({"timeout": {"next": 1}, "hold_ms": 60_000})).await;
    let call = app
        .clone()
        .oneshot(Request::get("/v1/items/ns/k").body(Body::empty()).unwrap());
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
}

#[tokio::test]
async fn garbage_before_commit_stores_nothing() {
    let app = default_app();
    for kind in ["truncated", "html", "empty"] {
        set_faults(&app, json!({"garbage": {"next": 1}, "garbage_kind": kind})).await;
        let a = batch(&app, "b", json!([put("ns", "k", json!(1), 1)])).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&a.body).is_err(),
            "{kind}"
        );
    }
    let s = stats(&app).await;
    assert_eq!(
        (s.rows, s.stored_batches, s.counters.fault_garbage),
        (0, 0, 3)
    );
}

#[tokio::test]
async fn garbage_after_commit_applies_and_the_resend_is_answered_from_the_store() {
    let app = default_app();
    set_faults(&app, json!({"garbage_after_commit": {"next": 1}})).await;
    let writes = json!([put("ns", "k", json!("v"), 1), put("ns", "j", json!("w"), 1)]);
    let a = batch(&app, "b", writes.clone()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(serde_json::from_slice::<serde_json::Value>(&a.body).is_err());
    let s = stats(&app).await;
    assert_eq!(
        (
            s.rows,
            s.stored_batches,
            s.counters.fault_garbage_after_commit
        ),
        (2, 1, 1)
    );

    // The client learned nothing and resends: same answer as the first, nothing applied.
    let a = batch(&app, "b", writes).await;
    assert_eq!(statuses(&a), ["applied", "applied"]);
    assert_eq!(a.header("idempotent-replayed"), Some("true"));
    let s = stats(&app).await;
    assert_eq!(
        (
            s.counters.writes_applied,
            s.counters.duplicate_batches,
            s.rows
        ),
        (2, 1, 2)
    );

    // Reads are never garbled after the fact.
    set_faults(&app, json!({"garbage_after_commit": {"rate": 1.0}})).await;
    assert_eq!(get(&app, "/v1/items/ns/k").await.json(), json!("v"));
}

#[tokio::test]
async fn down_answers_503_or_closes_and_test_routes_still_work() {
    let app = default_app();
    set_faults(&app, json!({"down": "unavailable"})).await;
    for a in [
        get(&app, "/v1/items/ns/k").await,
        get(&app, "/healthz").await,
    ] {
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.code(), "down");
        assert!(a.header("retry-after").is_some());
    }
    let a = batch(&app, "b", json!([put("ns", "k", json!(1), 1)])).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stats(&app).await.rows, 0);

    set_faults(&app, json!({"down": "close"})).await;
    let response = app
        .clone()
        .oneshot(Request::get("/v1/items/ns/k").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(
        response.into_body().collect().await.is_err(),
        "body must fail"
    );

    set_faults(&app, json!({})).await;
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn latency_applies_per_route() {
    let app = default_app();
    set_faults(
        &app,
        json!({"read_latency_ms": 120, "batch_latency_ms": 0, "latency_ms": 500}),
    )
    .await;
    let started = Instant::now();
    get(&app, "/v1/items/ns/k").await;
    assert!(started.elapsed() >= Duration::from_millis(120));
    let started = Instant::now();
    batch(&app, "b", json!([])).await;
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn rejected_keys_are_rejected_per_item() {
    let app = default_app();
    set_faults(&app, json!({"reject_keys": ["ns/bad", "other/x/y"]})).await;
    let a = batch(
        &app,
        "b",
        json!([
            put("ns", "good", json!(1), 1),
            put("ns", "bad", json!(1), 1),
            delete("other", "x/y", 1)
        ]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied", "rejected", "rejected"]);
    assert!(a.json()["results"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("rejected"));
    let s = stats(&app).await;
    assert_eq!((s.rows, s.counters.writes_rejected), (1, 2));
}

#[tokio::test]
async fn invalid_fault_configs_are_refused() {
    let app = default_app();
    for bad in [
        json!({"error": {"rate": 2.0}}),
        json!({"error_status": 404}),
        json!({"reject_keys": ["no-slash"]}),
        json!({"down": "sideways"}),
        json!({"nope": 1}),
    ] {
        let a = post_json(&app, "/_faults", bad.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // An empty body clears the faults.
    set_faults(&app, json!({"latency_ms": 5})).await;
    let a = send(&app, Request::post("/_faults").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["latency_ms"], 0);
}
