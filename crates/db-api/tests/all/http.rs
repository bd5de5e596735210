//! Error statuses, authentication and the test-only routes.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use db_api::Settings;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn malformed_requests_get_json_errors_with_the_right_status() {
    let app = default_app();
    let raw = |ct: Option<&str>, key: Option<&str>, body: &str| {
        let mut r = Request::post("/v1/batch");
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        if let Some(key) = key {
            r = r.header("idempotency-key", key);
        }
        r.body(Body::from(body.to_owned())).unwrap()
    };
    let ok_body = json!({"batch_id": "b", "writes": []}).to_string();
    let cases = [
        (
            raw(Some("application/json"), Some("b"), "{not json"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            raw(Some("application/json"), Some("b"), "[]"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            raw(Some("application/json"), Some("b"), r#"{"batch_id":"b"}"#),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            raw(
                Some("application/json"),
                Some("b"),
                r#"{"batch_id":1,"writes":[]}"#,
            ),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            raw(Some("application/json"), Some("other"), &ok_body),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw(Some("application/json"), None, &ok_body),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw(Some("text/plain"), Some("b"), &ok_body),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(None, Some("b"), &ok_body),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Request::get("/v1/batch").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::patch("/v1/items/a/b").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Request::get("/v2/nothing").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::get("/v1/items/only-ns")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::get("/v1/items/BAD/k").body(Body::empty()).unwrap(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Request::get("/v1/items/ns/%FF")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Request::get("/v1/items/ns/a%0Ab")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let a = send(&app, request).await;
        assert_eq!(a.status, status, "{what}: {:?}", a.body);
        assert_eq!(a.code(), code, "{what}");
        assert!(a.json()["message"].is_string(), "{what}");
    }
    // A charset parameter is fine, and an empty batch is a valid batch.
    let a = send(
        &app,
        raw(Some("application/json; charset=utf-8"), Some("b"), &ok_body),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({"results": []}));
    // Nothing above reached the store except the empty batch.
    assert_eq!(stats(&app).await.counters.batch_requests, 1);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let (app, _) = sqlite_app(Settings {
        max_body_bytes: 1024,
        ..Settings::default()
    });
    let writes: Vec<_> = (0..50)
        .map(|i| put("ns", &format!("k{i}"), json!("x"), 1))
        .collect();
    let a = batch(&app, "big", json!(writes)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), "payload_too_large");
    assert_eq!(stats(&app).await.rows, 0);
}

#[tokio::test]
async fn a_configured_token_guards_v1_only() {
    let (app, _) = sqlite_app(Settings {
        token: Some("s3cret".into()),
        ..Settings::default()
    });
    let with = |auth: Option<&str>| {
        let mut r = Request::get("/v1/items/ns/k");
        if let Some(auth) = auth {
            r = r.header("authorization", auth);
        }
        r.body(Body::empty()).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic s3cret"),
        Some("Bearer s3cre"),
    ] {
        let a = send(&app, with(auth)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(a.code(), "unauthorized");
    }
    let a = send(&app, with(Some("Bearer s3cret"))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = batch(&app, "b", json!([])).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let mut r = batch_request("b", json!([put("ns", "k", json!(1), 1)]));
    r.headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(statuses(&send(&app, r).await), ["applied"]);
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    let s = stats(&app).await;
    assert_eq!((s.counters.unauthorized, s.rows), (5, 1));
}

#[tokio::test]
async fn test_routes_can_be_switched_off() {
    let (app, _) = sqlite_app(Settings {
        admin_routes: false,
        ..Settings::default()
    });
    for path in ["/_stats", "/_faults", "/_auth", "/_jwks"] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in ["/_reset", "/_auth/revoke", "/_auth/restore", "/_jwt"] {
        assert_eq!(
            post_json(&app, path, json!({})).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn seed_and_reset_validate_their_input() {
    let app = default_app();
    for body in [
        json!({"count": 3}),
        json!({"ns": "a", "count": 3, "items": []}),
        json!({"ns": "a", "count": 100_000_000}),
        json!({"ns": "a", "count": 3, "unknown": 1}),
    ] {
        let a = post_json(&app, "/_seed", body.clone()).await;
        assert!(a.status.is_client_error(), "{body}: {}", a.status);
    }
    let a = send(
        &app,
        Request::post("/_reset?faults=maybe")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    set_faults(&app, json!({"latency_ms": 1})).await;
    let a = send(
        &app,
        Request::post("/_reset?faults=true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(get(&app, "/_faults").await.json()["latency_ms"], 0);
}

#[tokio::test]
async fn a_resend_may_reserialize_values_and_restamp_written_at() {
    let app = default_app();
    let id = derived_write_id("k");
    let first = json!([{"ns": "ns", "key": "k", "write_id": id, "op": "put", "value": {"a": 1, "b": 2}, "version": 3, "written_at": 10}]);
    assert_eq!(statuses(&batch(&app, "b", first).await), ["applied"]);
    let resend = json!([{"written_at": 99, "version": 3, "value": {"b": 2, "a": 1}, "op": "put", "write_id": id, "key": "k", "ns": "ns"}]);
    let a = batch(&app, "b", resend).await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(a.header("idempotent-replayed"), Some("true"));
    let other_version = json!([put("ns", "k", json!({"a": 1, "b": 2}), 4)]);
    assert_eq!(
        batch(&app, "b", other_version).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
