//! Helpers for the flush tests: an app with the gateway,
//! the flush component and the probe sharing one store, and ways to buffer writes.
//!
//! Writes are buffered by storing buffer records (`w:{stamp}`) through the probe's raw KV
//! route, in the record format of `cache_core::record`. That keeps these tests about the
//! flush alone: each record's stamp is chosen by the test, so versions and coalescing are
//! deterministic.

use std::path::Path;
use std::time::Duration;

use cache_sync_host::RunningApp;
use cache_sync_testkit::Manifest;
use serde_json::{json, Value};

pub use crate::support::Db;
use crate::support::*;

/// The admin token every flush test app is configured with.
pub const ADMIN: &str = "test-admin-token";

/// A manifest with the probe (`/probe/...`), the gateway (everything else) and the flush
/// component sharing the `default` store. Flush knobs come from `--variable` flags; `cron`
/// is the flush schedule (`None`: the scheduler is off, tests fire the handler directly).
pub fn manifest(cron: Option<&str>) -> String {
    manifest_with(cron, true)
}

/// [`manifest`], optionally without the gateway (faster to start: for the tests that only
/// need the cron-triggered flush).
pub fn manifest_with(cron: Option<&str>, with_gateway: bool) -> String {
    // The flush component is bound to a cron trigger either way; without a schedule the
    // tests start the app with its cron scheduler off and fire the handler themselves.
    let mut m = Manifest::new("flush-test").probe("{probe}");
    if with_gateway {
        m = m.gateway("{gateway}", "{{ db_api_url }}");
    }
    m.flush("{flush}", cron.unwrap_or("0 0 0 1 1 *"), "{{ db_api_url }}")
        .render()
}

/// Variables for an app against `db`: fast retries, short timeout, the test admin token.
pub fn flags(db_url: &str) -> Vec<(String, String)> {
    [
        ("db_api_url", db_url),
        ("admin_token", ADMIN),
        ("flush_retry_base", "100ms"),
        ("flush_retry_max", "200ms"),
        ("flush_timeout", "1s"),
        ("lease_ttl", "30s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Replaces or adds a variable.
pub fn set(flags: &mut Vec<(String, String)>, name: &str, value: &str) {
    flags.retain(|(k, _)| k != name);
    flags.push((name.to_owned(), value.to_owned()));
}

/// Starts the app of [`manifest`] in `dir` with `vars`.
pub async fn start_app(dir: &Path, cron: Option<&str>, vars: &[(String, String)]) -> RunningApp {
    let manifest = write_manifest(dir, &manifest(cron));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start(with_flags(options(&manifest), &refs), cron.is_some()).await
}

/// A test fixture: a DB API and an app pointing at it.
pub struct Fixture {
    pub db: Db,
    pub app: RunningApp,
    _dir: TempDir,
}

impl Fixture {
    /// Default knobs plus `extra` variables.
    pub async fn new(tag: &str, extra: &[(&str, &str)]) -> Fixture {
        let db = Db::start().await;
        let dir = TempDir::new(tag);
        let mut vars = flags(&db.url());
        for (k, v) in extra {
            set(&mut vars, k, v);
        }
        let app = start_app(dir.path(), None, &vars).await;
        Fixture { db, app, _dir: dir }
    }

    /// Fires the cron handler once.
    pub async fn tick(&self) {
        cache_sync_host::cron_trigger::fire(&self.app.app, "flush", 0)
            .await
            .expect("cron tick succeeds");
    }

    /// `POST /admin/flush`; the report.
    pub async fn admin_flush(&self) -> Value {
        let r = admin(&self.app, "POST", "/admin/flush").await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).expect("report is JSON")
    }

    /// `/admin/stats`, exact: the tests store records directly, uncounted by admission.
    pub async fn stats(&self) -> Value {
        let r = admin(&self.app, "GET", "/admin/stats?exact=true").await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).expect("stats are JSON")
    }

    pub async fn buffer(&self, ns: &str, key: &str, value: Value, millis: u64) -> String {
        buffer(&self.app, ns, key, Some(value), millis).await
    }

    /// Keys of the app's store starting with `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        keys(&self.app, prefix).await
    }
}

/// An authenticated admin request.
pub async fn admin(app: &RunningApp, method: &str, path: &str) -> Reply {
    send(
        method,
        &app.url(path),
        &[("authorization", &format!("Bearer {ADMIN}"))],
        "",
    )
    .await
}

/// The stamp of a write at `millis` (sequence 0, instance 1), as the record key names it.
pub fn stamp(millis: u64) -> String {
    format!("{millis:012x}{:04x}{:016x}", 0, 1)
}

/// Buffers a put (or a delete, `None`) of `ns/key` stamped at `millis`; returns the stamp.
pub async fn buffer(
    app: &RunningApp,
    ns: &str,
    key: &str,
    value: Option<Value>,
    millis: u64,
) -> String {
    let stamp = stamp(millis);
    let mut record = json!({
        "v": 1, "ns": ns, "key": key, "op": if value.is_some() { "put" } else { "delete" },
        "stamp": stamp, "written_at": millis,
    });
    if let Some(v) = value {
        record["value"] = v;
    }
    let r = send(
        "PUT",
        &app.url(&format!("/probe/kv/default/w:{stamp}")),
        &[],
        &record.to_string(),
    )
    .await;
    assert!(r.status < 300, "buffering failed: {} {}", r.status, r.body);
    stamp
}

/// Keys of `app`'s store starting with `prefix`.
pub async fn keys(app: &RunningApp, prefix: &str) -> Vec<String> {
    let r = get(&app.url("/probe/keys/default")).await;
    let all: Vec<String> = serde_json::from_str(&r.body).expect("key list");
    all.into_iter().filter(|k| k.starts_with(prefix)).collect()
}

/// A base instant for stamps: now, in ms, so records look recent.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sleeps briefly (backoff windows in these tests are ≤ 1.2 s).
pub async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
