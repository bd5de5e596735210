//! Eviction: the sweep (run by the flush component) keeps the entries the gateway wrote
//! within `max_entries`, evicting clean entries and never a dirty one; the gateway then
//! treats evicted keys as misses. The sweep runs here over the store's SQLite file.

use cache_core::config::CacheConfig;
use cache_core::delivery::sweep::sweep;
use cache_core::store::{KvStore, StoreError};
use cache_core::time::{TestClock, UnixMillis};

use crate::gateway_support::*;

/// The app's `default` store, read and written through its SQLite file.
struct FileKv(rusqlite::Connection);

fn other(e: rusqlite::Error) -> StoreError {
    StoreError::Other(e.to_string())
}

impl KvStore for FileKv {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0.query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?1",
            [key],
            |r| r.get::<_, Vec<u8>>(0),
        ) {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(other(e)),
        }
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT OR REPLACE INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
                rusqlite::params![key, value],
            )
            .map(|_| ())
            .map_err(other)
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.0
            .execute(
                "DELETE FROM spin_key_value WHERE store = 'default' AND key = ?1",
                [key],
            )
            .map(|_| ())
            .map_err(other)
    }

    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .0
            .prepare("SELECT key FROM spin_key_value WHERE store = 'default'")
            .map_err(other)?;
        let keys = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(other)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(other)?;
        Ok(keys)
    }
}

fn now() -> UnixMillis {
    UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

#[tokio::test]
async fn the_sweep_evicts_clean_entries_first_and_keeps_dirty_ones() {
    let db = Db::start().await;
    for i in 0..5 {
        db.seed("evict", &format!("k{i}"), serde_json::json!(i), 1)
            .await;
    }
    let gw = Gw::start("gw-evict", &db, &[]).await;
    assert_eq!(gw.put("/v1/evict/dirty", "\"mine\"").await.status, 202);
    for i in 0..5 {
        assert_eq!(gw.get(&format!("/v1/evict/k{i}")).await.status, 200);
    }
    let mut cfg = CacheConfig::with_db_api_url(&db.url()).expect("config");
    cfg.max_entries = 3;
    let mut kv = FileKv(gw.kv_file());
    let report = sweep(&mut kv, &mut TestClock::at(now()), &cfg).expect("sweep");
    assert_eq!(
        (report.evicted, report.dirty, report.remaining),
        (3, 1, 3),
        "{report:?}"
    );
    // Least recently fetched first: k0..k2 are gone, k3, k4 and the dirty entry stay.
    for (i, cache) in [(0, "MISS"), (3, "HIT"), (4, "HIT")] {
        let r = gw.get(&format!("/v1/evict/k{i}")).await;
        assert_eq!(
            (r.status, header(&r, "x-cache")),
            (200, cache),
            "k{i}: {r:?}"
        );
    }
    let r = gw.get("/v1/evict/dirty").await;
    assert_eq!((r.status, header(&r, "x-sync")), (200, "pending"), "{r:?}");
    assert_eq!(json(&r), "mine");
}
