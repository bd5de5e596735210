//! The API's own item writes (`PUT`/`DELETE /v1/items/{ns}/{key}`), as a writer other than
//! the cache makes them, and their signed announcements to the cache.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use cache_sync_contract::invalidation::{verify, Announcement, SIGNATURE_HEADER};
use db_api::announce::AnnounceSettings;
use db_api::auth::AuthSettings;
use db_api::Settings;
use serde_json::{json, Value};

use crate::support::*;

const SECRET: &str = "an-announcement-secret";

fn put_request(path: &str, body: &Value, idempotency: Option<&str>) -> Request<Body> {
    let mut r = Request::put(path).header("content-type", "application/json");
    if let Some(k) = idempotency {
        r = r.header("idempotency-key", k);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn an_item_write_is_versioned_by_time_and_a_repeat_applies_nothing() {
    let app = default_app();
    let before = cache_sync_contract::wire::version_at(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let a = send(&app, put_request("/v1/items/ns/k", &json!({"n": 1}), None)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let v1 = a.json()["version"].as_u64().unwrap();
    // Ordered with the cache's writes: at least the time's version, not just "1".
    assert!(v1 >= before, "{v1} < {before}");
    assert_eq!(a.header("etag"), Some(format!("\"v{v1}\"").as_str()));
    let read = get(&app, "/v1/items/ns/k").await;
    assert_eq!(read.json(), json!({"n": 1}));
    assert_eq!(read.header("etag"), a.header("etag"));

    let first = send(
        &app,
        put_request("/v1/items/ns/k", &json!({"n": 2}), Some("retry-me")),
    )
    .await;
    let v2 = first.json()["version"].as_u64().unwrap();
    assert!(v2 > v1);
    let again = send(
        &app,
        put_request("/v1/items/ns/k", &json!({"n": 2}), Some("retry-me")),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["version"].as_u64(), Some(v2));
    let other = send(
        &app,
        put_request("/v1/items/ns/k", &json!({"n": 3}), Some("retry-me")),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(stats(&app).await.counters.item_writes, 2);
    assert_eq!(get(&app, "/v1/items/ns/k").await.json(), json!({"n": 2}));

    // A batch write the cache stamped before these loses to them; one stamped later wins.
    let older = batch(&app, "b-old", json!([put("ns", "k", json!("old"), v1 - 1)])).await;
    assert_eq!(statuses(&older), ["stale"]);
    let later = batch(&app, "b-new", json!([put("ns", "k", json!("new"), v2 + 1)])).await;
    assert_eq!(statuses(&later), ["applied"]);

    let gone = send(
        &app,
        Request::delete("/v1/items/ns/k")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(gone.status, StatusCode::OK);
    assert!(gone.json()["version"].as_u64().unwrap() > v2 + 1);
    assert_eq!(
        get(&app, "/v1/items/ns/k").await.status,
        StatusCode::NOT_FOUND
    );
}

fn conditional(
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    match body {
        Some(b) => r
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

/// `If-Match`/`If-None-Match` on item writes, judged with the write in one transaction: a
/// write whose precondition fails changes and remembers nothing, and of writers racing on
/// one precondition exactly one applies. Run on SQLite here and on PostgreSQL by
/// `postgres.rs`.
pub async fn conditional_scenario(app: &Router) {
    let path = "/v1/items/ns/cond";
    let put_if = |headers: &'static [(&'static str, &'static str)], n: i64| {
        conditional("PUT", path, Some(&json!({ "n": n })), headers)
    };
    // If-None-Match: * creates only.
    let created = send(app, put_if(&[("if-none-match", "*")], 1)).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let tag1 = created.header("etag").unwrap().to_owned();
    let again = send(app, put_if(&[("if-none-match", "*")], 2)).await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(again.code(), "precondition_failed");
    assert_eq!(get(app, path).await.json(), json!({"n": 1}));

    // If-Match: the current ETag applies; an old one, a weak one or `*` on nothing do not.
    let with_tag = |tag: &str, key: Option<&str>, n: i64| {
        let mut r = conditional("PUT", path, Some(&json!({ "n": n })), &[("if-match", tag)]);
        if let Some(k) = key {
            r.headers_mut()
                .insert("idempotency-key", k.parse().unwrap());
        }
        r
    };
    let refused = send(app, with_tag(&format!("W/{tag1}"), Some("k-1"), 5)).await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    // Refused, the Idempotency-Key was not remembered: the same key is judged afresh.
    let second = send(app, with_tag(&tag1, Some("k-1"), 2)).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    assert_ne!(second.header("idempotent-replayed"), Some("true"));
    let tag2 = second.header("etag").unwrap().to_owned();
    // Applied, it was: a repeat is a replay even though the ETag it names is now old.
    let replay = send(app, with_tag(&tag1, Some("k-1"), 2)).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let stale = send(app, with_tag(&tag1, None, 3)).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(get(app, path).await.json(), json!({"n": 2}));

    // Writers racing on one ETag: exactly one applies, the others are told.
    let mut tasks = Vec::new();
    for n in 0..6 {
        let (app, tag) = (app.clone(), tag2.clone());
        tasks.push(tokio::spawn(async move {
            let r = conditional(
                "PUT",
                "/v1/items/ns/cond",
                Some(&json!({ "racer": n })),
                &[("if-match", tag.as_str())],
            );
            send(&app, r).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let applied = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(applied, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::PRECONDITION_FAILED));

    // A delete with If-Match; after it the item is absent to both headers.
    let tag3 = get(app, path).await.header("etag").unwrap().to_owned();
    let gone = send(
        app,
        conditional("DELETE", path, None, &[("if-match", &tag3)]),
    )
    .await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(
        send(app, put_if(&[("if-match", "*")], 9)).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    // Racing creators of an absent item: exactly one applies.
    let mut tasks = Vec::new();
    for n in 0..6 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let r = conditional(
                "PUT",
                "/v1/items/ns/fresh",
                Some(&json!({ "creator": n })),
                &[("if-none-match", "*")],
            );
            send(&app, r).await.status
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let not_text = Request::put(path)
        .header("content-type", "application/json")
        .header("if-match", &b"\"\xff\""[..])
        .body(Body::from("1"))
        .unwrap();
    assert_eq!(send(app, not_text).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn item_writes_honour_preconditions_atomically() {
    conditional_scenario(&default_app()).await;
}

#[tokio::test]
async fn bad_item_writes_change_nothing() {
    let app = default_app();
    for (request, status) in [
        (
            Request::put("/v1/items/ns/k")
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Request::put("/v1/items/ns/k")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            put_request("/v1/items/bad%20ns/k", &json!(1), None),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let answer = send(&app, request).await;
        assert_eq!(answer.status, status, "{:?}", answer.body);
        assert!(!answer.code().is_empty());
    }
    assert_eq!(stats(&app).await.rows, 0);
}

#[tokio::test]
async fn with_auth_on_an_item_write_follows_the_write_rule() {
    let (app, _) = sqlite_app(Settings {
        auth: AuthSettings::on(),
        ..Settings::default()
    });
    let as_user = |user: &str, body: Value| {
        Request::put("/v1/items/profiles/alice")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer demo-token-for-{user}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    assert_eq!(
        send(&app, as_user("bob", json!(1))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, as_user("alice", json!(2))).await.status,
        StatusCode::OK
    );
    let anonymous = put_request("/v1/items/profiles/alice", &json!(3), None);
    assert_eq!(send(&app, anonymous).await.status, StatusCode::UNAUTHORIZED);
}

/// A stand-in cache on loopback that records the announcements it receives.
async fn receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/hooks/invalidate",
        post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push((headers, body));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn item_writes_are_announced_signed_and_batches_are_not() {
    let (url, seen) = receiver().await;
    let (app, _) = sqlite_app(Settings {
        announce: Some(AnnounceSettings {
            cache_url: url,
            secret: SECRET.into(),
        }),
        ..Settings::default()
    });
    send(
        &app,
        put_request("/v1/items/users/42", &json!({"a": 1}), None),
    )
    .await;
    send(
        &app,
        Request::delete("/v1/items/users/43")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    batch(&app, "b1", json!([put("users", "44", json!(1), 1)])).await;

    let seen = seen.lock().unwrap().clone();
    let keys: Vec<String> = seen
        .iter()
        .map(|(headers, body)| {
            let sig = headers[SIGNATURE_HEADER].to_str().unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(verify(SECRET.as_bytes(), sig, body, now), Ok(()));
            let a: Announcement = serde_json::from_slice(body).unwrap();
            format!("{}/{}", a.changed[0].ns, a.changed[0].key)
        })
        .collect();
    assert_eq!(keys, ["users/42", "users/43"]);
    let s = stats(&app).await;
    assert_eq!(
        (
            s.counters.announcements_sent,
            s.counters.announcements_failed
        ),
        (2, 0)
    );
}

#[tokio::test]
async fn an_unreachable_cache_fails_the_announcement_not_the_write() {
    // A port nothing listens on: bind one, then drop the listener.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (app, _) = sqlite_app(Settings {
        announce: Some(AnnounceSettings {
            cache_url: url,
            secret: SECRET.into(),
        }),
        ..Settings::default()
    });
    let a = send(&app, put_request("/v1/items/users/42", &json!(1), None)).await;
    assert_eq!(a.status, StatusCode::OK);
    let s = stats(&app).await;
    assert_eq!(
        (
            s.counters.announcements_sent,
            s.counters.announcements_failed
        ),
        (0, 1)
    );
}
