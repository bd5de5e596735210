//! Helpers: build an app over in-memory SQLite and send it requests.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use db_api::backend::sqlite::SqliteBackend;
use db_api::stats::StatsBody;
use db_api::{AppState, Settings};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An answer, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// An app over a fresh in-memory database.
pub fn sqlite_app(settings: Settings) -> (Router, AppState) {
    let backend = SqliteBackend::open(":memory:").expect("open in-memory sqlite");
    let state = AppState::new(Arc::new(backend), settings).expect("valid settings");
    (db_api::app(state.clone()), state)
}

pub fn default_app() -> Router {
    sqlite_app(Settings::default()).0
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("infallible service");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body collects")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &Router, path: &str) -> Answer {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

pub async fn post_json(app: &Router, path: &str, body: Value) -> Answer {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, request).await
}

pub fn batch_request(id: &str, writes: Value) -> Request<Body> {
    Request::post("/v1/batch")
        .header("content-type", "application/json")
        .header("idempotency-key", id)
        .body(Body::from(
            json!({"batch_id": id, "writes": writes}).to_string(),
        ))
        .unwrap()
}

pub async fn batch(app: &Router, id: &str, writes: Value) -> Answer {
    send(app, batch_request(id, writes)).await
}

/// The statuses of a `200` batch answer.
pub fn statuses(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.json()["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A put; its write id is derived from what it writes (see [`derived_write_id`]).
pub fn put(ns: &str, key: &str, value: Value, version: u64) -> Value {
    let id = derived_write_id(&format!("put {ns} {key} {version} {value}"));
    json!({"ns": ns, "key": key, "write_id": id, "op": "put", "value": value, "version": version, "written_at": 1_700_000_000_000u64.saturating_add(version)})
}

/// A delete; its write id is derived from what it deletes (see [`derived_write_id`]).
pub fn delete(ns: &str, key: &str, version: u64) -> Value {
    let id = derived_write_id(&format!("delete {ns} {key} {version}"));
    json!({"ns": ns, "key": key, "write_id": id, "op": "delete", "version": version, "written_at": 1_700_000_000_000u64.saturating_add(version)})
}

/// 32 lowercase hex digits derived from `what`: the same write built twice gets the same id
/// (as a resent write does), and different writes get different ids.
pub fn derived_write_id(what: &str) -> String {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, what).hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", half(0), half(1))
}

/// `write` with its write id replaced by `id` (or removed, for `None`).
pub fn with_write_id(mut write: Value, id: Option<&str>) -> Value {
    let fields = write.as_object_mut().expect("a write object");
    match id {
        Some(id) => fields.insert("write_id".into(), json!(id)),
        None => fields.remove("write_id"),
    };
    write
}

pub async fn stats(app: &Router) -> StatsBody {
    let answer = get(app, "/_stats").await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_slice(&answer.body).expect("stats body")
}

pub async fn set_faults(app: &Router, faults: Value) -> Answer {
    let answer = post_json(app, "/_faults", faults).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer
}
