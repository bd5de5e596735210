//! Writing straight into a host's store, for figures that need more data than requests can
//! put there in time: the host's SQLite file (Spin's `spin_key_value` table, which the host
//! opens in WAL mode for exactly this kind of cross-process access) or its Redis database.
//! Values are encoded by the core's own codecs by the callers, exactly as the components
//! store them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

/// A KV key and its value.
pub type KvPair = (String, Vec<u8>);

/// Where a host keeps its `default` store.
#[derive(Debug, Clone)]
pub enum Direct {
    /// `sqlite_key_value.db` in the host's state directory.
    Sqlite(PathBuf),
    /// A Redis database URL (`redis://127.0.0.1:PORT/DB`).
    Redis(String),
}

impl Direct {
    /// The SQLite file of the host whose state directory is `state_dir`.
    pub fn sqlite(state_dir: &Path) -> Direct {
        Direct::Sqlite(state_dir.join("sqlite_key_value.db"))
    }

    /// Stores `pairs` under the `default` label: one transaction on SQLite, pipelines of
    /// `SET`s on Redis.
    pub fn put_all(&self, pairs: impl Iterator<Item = KvPair>) -> Result<()> {
        match self {
            Direct::Sqlite(path) => {
                let mut db = rusqlite::Connection::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                db.busy_timeout(Duration::from_secs(10))?;
                let tx = db.transaction()?;
                {
                    let mut insert = tx.prepare(
                        "INSERT OR REPLACE INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
                    )?;
                    for (k, v) in pairs {
                        insert.execute(rusqlite::params![k, v])?;
                    }
                }
                tx.commit()?;
            }
            Direct::Redis(url) => {
                let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
                let mut pipe = redis::pipe();
                let mut queued = 0;
                for (k, v) in pairs {
                    pipe.set(k, v).ignore();
                    queued += 1;
                    if queued == 1_000 {
                        pipe.query::<()>(&mut conn)?;
                        pipe.clear();
                        queued = 0;
                    }
                }
                if queued > 0 {
                    pipe.query::<()>(&mut conn)?;
                }
            }
        }
        Ok(())
    }

    /// How many keys the store holds.
    pub fn count(&self) -> Result<u64> {
        Ok(match self {
            Direct::Sqlite(path) => {
                let db = rusqlite::Connection::open(path)?;
                let n: i64 =
                    db.query_row("SELECT COUNT(*) FROM spin_key_value", [], |r| r.get(0))?;
                u64::try_from(n).unwrap_or(0)
            }
            Direct::Redis(url) => {
                let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
                redis::cmd("DBSIZE").query(&mut conn)?
            }
        })
    }
}

impl Direct {
    /// Redis's `used_memory` (bytes) for the server behind this database.
    pub fn used_memory(&self) -> Result<u64> {
        let Direct::Redis(url) = self else {
            anyhow::bail!("used_memory is a Redis measure");
        };
        let mut conn = redis::Client::open(url.as_str())?.get_connection()?;
        let info: String = redis::cmd("INFO").arg("memory").query(&mut conn)?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .context("INFO memory has no used_memory")
    }
}
