//! Helpers for the gateway tests: an app with the gateway
//! and the probe (for raw KV access), and small request helpers.

use std::time::Duration;

use cache_sync_host::RunningApp;
use cache_sync_testkit::Manifest;

pub use crate::support::Db;
use crate::support::*;

fn manifest() -> String {
    Manifest::new("gw")
        .probe("{probe}")
        .gateway("{gateway}", "http://127.0.0.1:*")
        .render()
}

/// An app with the gateway (and the probe) against `db`, with extra `vars`.
pub struct Gw {
    pub app: RunningApp,
    pub dir: TempDir,
}

impl Gw {
    pub async fn start(tag: &str, db: &Db, vars: &[(&str, &str)]) -> Gw {
        let dir = TempDir::new(tag);
        let manifest = write_manifest(dir.path(), &manifest());
        let db_url = db.url();
        let mut flags = vec![("db_api_url", db_url.as_str())];
        flags.extend_from_slice(vars);
        let app = start(with_flags(options(&manifest), &flags), false).await;
        Gw { app, dir }
    }

    /// [`Gw::start`] for an app that reads as the DB API's service and keeps entries per
    /// caller: `db_api_token` (the fixture's service token), `auth_key` and `admin_token`,
    /// plus `extra`.
    pub async fn start_with_auth(
        tag: &str,
        db: &Db,
        auth_key: &str,
        admin: &str,
        extra: &[(&str, &str)],
    ) -> Gw {
        let mut vars = vec![
            ("db_api_token", DB_SERVICE_TOKEN),
            ("auth_key", auth_key),
            ("admin_token", admin),
        ];
        vars.extend_from_slice(extra);
        Gw::start(tag, db, &vars).await
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    pub async fn get(&self, path: &str) -> Reply {
        get(&self.url(path)).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send("GET", &self.url(path), headers, "").await
    }

    pub async fn put(&self, path: &str, body: &str) -> Reply {
        send(
            "PUT",
            &self.url(path),
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        send(method, &self.url(path), headers, body).await
    }

    /// Raw bytes stored under a KV key (read from the store's SQLite file).
    pub async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        let conn = self.kv_file();
        conn.query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?1",
            [key],
            |row| row.get::<_, Vec<u8>>(0),
        )
        .ok()
    }

    /// How many buffered writes (`w:` records) the store holds.
    pub fn buffered_count(&self) -> i64 {
        self.kv_file()
            .query_row(
                "SELECT COUNT(*) FROM spin_key_value WHERE store = 'default' AND key LIKE 'w:%'",
                [],
                |row| row.get(0),
            )
            .expect("count")
    }

    /// The store's SQLite file, for raw reads and corruption.
    pub fn kv_file(&self) -> rusqlite::Connection {
        let path = self.dir.path().join(".spin/sqlite_key_value.db");
        let conn = rusqlite::Connection::open(&path).expect("open kv file");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// Stores raw bytes under a KV key (through the probe).
    pub async fn put_raw(&self, key: &str, bytes: &str) {
        let r = self
            .send("PUT", &format!("/probe/kv/default/{key}"), &[], bytes)
            .await;
        assert!(r.status < 300, "{r:?}");
    }
}

pub fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// Lets a short TTL pass (kept explicit: the cache's clock is the wall clock).
pub async fn wait(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
