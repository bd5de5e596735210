//! Spin's default key-value backend: one SQLite table shared by all labels in a file.
//!
//! The schema is Spin's own (`spin_key_value(store, key, value)`, primary key
//! `(store, key)`), so `.spin/sqlite_key_value.db` written by this host reads back
//! under `spin up` and the other way round. WAL mode and a busy timeout let two host
//! processes share one file. Calls are short, made under a mutex with statements prepared
//! once per connection (`prepare_cached`) and inside `block_in_place`, both as Spin does
//! (see [`blocking`]).

use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{named_params, params, Connection, OptionalExtension};

use super::{KvError, KvFailure, ManyValues};

/// A label inside a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    label: String,
    /// Set where Spin's backend would have panicked holding the label's lock: Spin's
    /// connection is one per label, its lock is then poisoned, and every later call on the
    /// label panics (see the module docs of `kv`).
    poisoned: Arc<AtomicBool>,
}

/// An open SQLite file, shared by the labels placed on it.
#[derive(Clone)]
pub struct SqliteFile {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteFile {
    /// Opens (creating if needed) a database file, or an in-memory one for `:memory:`.
    ///
    /// # Errors
    /// When the file or its directory cannot be created or opened.
    pub fn open(path: &Path) -> Result<SqliteFile, KvError> {
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| KvError(format!("cannot create {}: {e}", dir.display())))?;
            }
            Connection::open(path)
        }
        .map_err(|e| KvError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        // WAL keeps readers and a writer from blocking each other across processes;
        // the pragma answers a row, so it is queried rather than executed.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(sql)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
            [],
        )
        .map_err(sql)?;
        // `rarray`, for the batch calls' `key IN rarray(…)` (Spin loads it the same way).
        rusqlite::vtab::array::load_module(&conn).map_err(sql)?;
        Ok(SqliteFile {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The store for `label` in this file.
    pub fn store(&self, label: &str) -> SqliteStore {
        SqliteStore {
            conn: self.conn.clone(),
            label: label.to_string(),
            poisoned: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Runs a blocking SQLite call the way Spin does, inside `block_in_place` on a multi-thread
/// runtime: the worker's other tasks move to another thread meanwhile. Without it, a task
/// woken by the guest (the connection writing a response the guest has just finished) sits
/// in this worker's not-stealable LIFO slot until the guest's next yield, so work a
/// component does after sending its response would delay that response. On a
/// current-thread runtime (some tests) the call just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn sql(e: rusqlite::Error) -> KvError {
    KvError(e.to_string())
}

impl SqliteStore {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, KvFailure> {
        self.check_poisoned()?;
        blocking(|| {
            let mut conn = self
                .conn
                .lock()
                .map_err(|_| KvError("key-value store lock poisoned".into()))?;
            Ok(f(&mut conn).map_err(sql)?)
        })
    }

    fn check_poisoned(&self) -> Result<(), KvFailure> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(KvFailure::Trap(format!(
                "key-value store '{}' is poisoned: an earlier increment found a value that is not an 8-byte integer",
                self.label
            )));
        }
        Ok(())
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![self.label, key], |row| row.get(0))
                .optional()
        })
    }

    pub(super) fn set(&self, key: &str, value: &[u8]) -> Result<(), KvFailure> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![self.label, key, value])
            .map(drop)
        })
    }

    pub(super) fn delete(&self, key: &str) -> Result<(), KvFailure> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute(params![self.label, key])
                .map(drop)
        })
    }

    pub(super) fn exists(&self, key: &str) -> Result<bool, KvFailure> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
            )?
            .query_row(params![self.label, key], |row| row.get(0))
        })
    }

    pub(super) fn get_keys(&self) -> Result<Vec<String>, KvFailure> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
            let rows = stmt.query_map(params![self.label], |row| row.get(0))?;
            rows.collect()
        })
    }

    /// `get-many` as Spin's SQLite backend answers it: one
    /// `SELECT key, value … WHERE key IN rarray(keys)`, so only the keys present come back
    /// (each once, with `Some(value)`; an absent key is left out, not `None`), in the order
    /// SQLite reads them (the primary key's: by key, bytewise), not the order asked.
    pub(super) fn get_many(&self, keys: Vec<String>) -> Result<ManyValues, KvFailure> {
        let keys: Rc<Vec<Value>> = Rc::new(keys.into_iter().map(Value::from).collect());
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, value FROM spin_key_value WHERE store = :store AND key IN rarray(:keys)",
            )?;
            let rows = stmt.query_map(
                named_params! {":store": self.label, ":keys": keys},
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            rows.collect()
        })
    }

    /// `set-many` as Spin's SQLite backend does it: one upsert per pair, in order, in one
    /// transaction, so the batch is written whole or not at all (a repeated key: the
    /// last value wins).
    pub(super) fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvFailure> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (key, value) in &pairs {
                tx.prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![self.label, key, value])?;
            }
            tx.commit()
        })
    }

    /// `delete-many` as Spin's SQLite backend does it: one
    /// `DELETE … WHERE key IN rarray(keys)` (atomic; absent keys are no error).
    pub(super) fn delete_many(&self, keys: Vec<String>) -> Result<(), KvFailure> {
        let keys: Rc<Vec<Value>> = Rc::new(keys.into_iter().map(Value::from).collect());
        self.with(|c| {
            c.prepare_cached(
                "DELETE FROM spin_key_value WHERE store = :store AND key IN rarray(:keys)",
            )?
            .execute(named_params! {":store": self.label, ":keys": keys})
            .map(drop)
        })
    }

    /// `increment` as Spin does it: in one transaction, the value read as a little-endian
    /// `i64` (absent: 0), plus `delta` (wrapping), written back. A value of another length
    /// is where Spin panics holding the lock: a trap, and the label poisoned.
    pub(super) fn increment(&self, key: &str, delta: i64) -> Result<i64, KvFailure> {
        self.check_poisoned()?;
        blocking(|| {
            let mut conn = self
                .conn
                .lock()
                .map_err(|_| KvError("key-value store lock poisoned".into()))?;
            let tx = conn.transaction().map_err(sql)?;
            let current: Option<Vec<u8>> = tx
                .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")
                .and_then(|mut s| s.query_row(params![self.label, key], |row| row.get(0)))
                .optional()
                .map_err(sql)?;
            let n = match current {
                None => 0,
                Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                    Ok(le) => i64::from_le_bytes(le),
                    Err(_) => {
                        self.poisoned.store(true, Ordering::SeqCst);
                        return Err(KvFailure::Trap(format!(
                            "increment of '{key}': the value is {} bytes, not an 8-byte integer",
                            bytes.len()
                        )));
                    }
                },
            };
            let next = n.wrapping_add(delta);
            tx.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![self.label, key, next.to_le_bytes()]))
            .map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(next)
        })
    }

    /// The swap of a compare-and-swap that read `observed`, as Spin's SQLite backend does
    /// it: with a value observed, one `UPDATE … WHERE value = observed` (atomic; `false`
    /// when no row matched); with none (the key was absent, or never read), an
    /// unconditional upsert that always succeeds.
    pub(super) fn swap(
        &self,
        key: &str,
        observed: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, KvFailure> {
        match observed {
            Some(old) => self.with(|c| {
                c.prepare_cached(
                    "UPDATE spin_key_value SET value = ?4 WHERE store = ?1 AND key = ?2 AND value = ?3",
                )?
                .execute(params![self.label, key, old, value])
                .map(|rows| rows == 1)
            }),
            None => self.set(key, value).map(|()| true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_one_file_are_separate_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("kv-sqlite-test-{}", std::process::id()));
        let path = dir.join("kv.db");
        let _ = std::fs::remove_file(&path);
        {
            let file = SqliteFile::open(&path).expect("open");
            let a = file.store("default");
            let b = file.store("other");
            a.set("k", b"1").expect("set");
            b.set("k", b"2").expect("set");
            a.set("k", b"3").expect("overwrite");
            assert_eq!(a.get("k").expect("get"), Some(b"3".to_vec()));
            assert_eq!(b.get_keys().expect("keys"), vec!["k".to_string()]);
            b.delete("k").expect("delete");
            b.delete("k").expect("deleting an absent key is fine");
            assert!(!b.exists("k").expect("exists"));
        }
        let file = SqliteFile::open(&path).expect("reopen");
        assert_eq!(
            file.store("default").get("k").expect("get"),
            Some(b"3".to_vec())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
