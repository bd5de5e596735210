//! The default backend: an embedded SQLite file (or `:memory:`).
//!
//! SQLite calls block, so every call runs on Tokio's blocking pool, never on an async
//! worker. One connection writes (SQLite has a single writer anyway, and one connection
//! behind a mutex makes `BEGIN IMMEDIATE` never wait on a lock); for a file, a few more
//! connections read in parallel thanks to WAL mode. An in-memory database is private to its
//! connection, so there the writer also serves reads.
//!
//! Received write ids live in the `write_ids` table; when pruning is due, old rows are deleted
//! inside the batch transaction (there is only one writer, so that costs no contention).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cache_sync_contract::wire::{BatchResponse, ItemResult, ItemStatus, WriteOp};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    forbidden_result, now_ms, to_i64, to_u64, Backend, BackendStats, BatchOutcome, BoxFuture,
    PlannedBatch, PlannedWrite, PruneClock, SeedItem, StoredItem,
};
use crate::error::BackendError;

/// Reader connections opened for a file database.
const READERS: usize = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    ns          TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT,
    version     INTEGER NOT NULL,
    written_at  INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    batch_id    TEXT    PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    response    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS write_ids (
    write_id    TEXT    PRIMARY KEY,
    applied_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS write_ids_by_age ON write_ids (applied_at);
";

/// Claims a write id; no changed row means it was received before.
const CLAIM_WRITE_ID: &str =
    "INSERT INTO write_ids (write_id, applied_at) VALUES (?1, ?2) ON CONFLICT (write_id) DO NOTHING";

/// Gives back a write id claimed by a write that is then refused.
const UNCLAIM_WRITE_ID: &str = "DELETE FROM write_ids WHERE write_id = ?1";

/// Inserts a row, or overwrites it only when the incoming version is newer: last writer
/// wins by version, tombstones included. One changed row means "applied".
const UPSERT: &str = "
INSERT INTO items (ns, key, value, version, written_at, deleted, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (ns, key) DO UPDATE SET
    value = excluded.value,
    version = excluded.version,
    written_at = excluded.written_at,
    deleted = excluded.deleted,
    updated_at = excluded.updated_at
WHERE excluded.version > items.version";

/// [`UPSERT`] without the version guard, for the `skip_write_guards` fault.
const OVERWRITE: &str = "
INSERT INTO items (ns, key, value, version, written_at, deleted, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (ns, key) DO UPDATE SET
    value = excluded.value,
    version = excluded.version,
    written_at = excluded.written_at,
    deleted = excluded.deleted,
    updated_at = excluded.updated_at";

/// SQLite storage.
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    location: String,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    prune: PruneClock,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves at most a rolled-back transaction behind.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn reader(&self) -> MutexGuard<'_, Connection> {
        if self.readers.is_empty() {
            return lock(&self.writer);
        }
        for r in &self.readers {
            if let Ok(guard) = r.try_lock() {
                return guard;
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }
}

impl SqliteBackend {
    /// Opens (and creates) the database at `path`, or a private in-memory one for `:memory:`.
    /// Blocking: call from a blocking context.
    pub fn open(path: &str) -> Result<Self, BackendError> {
        if path == ":memory:" {
            let conn = Connection::open_in_memory()?;
            conn.execute_batch(SCHEMA)?;
            return Ok(Self::from_parts(":memory:".into(), conn, Vec::new()));
        }
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    BackendError::Io(format!("cannot create directory {}: {e}", parent.display()))
                })?;
            }
        }
        let writer = Connection::open(path)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.execute_batch(SCHEMA)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open(path)?;
            r.busy_timeout(std::time::Duration::from_secs(5))?;
            readers.push(Mutex::new(r));
        }
        Ok(Self::from_parts(path.into(), writer, readers))
    }

    fn from_parts(location: String, writer: Connection, readers: Vec<Mutex<Connection>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                location,
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                prune: PruneClock::default(),
            }),
        }
    }

    /// Runs `f` on the blocking pool with the shared state.
    fn blocking<T, F>(&self, f: F) -> BoxFuture<'_, Result<T, BackendError>>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, BackendError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| BackendError::Task(e.to_string()))?
        })
    }
}

fn apply_batch(
    conn: &mut Connection,
    prune: &PruneClock,
    batch: &PlannedBatch,
) -> Result<BatchOutcome, BackendError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored: Option<(String, String)> = tx
        .query_row(
            "SELECT fingerprint, response FROM batches WHERE batch_id = ?1",
            [&batch.batch_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((fingerprint, response)) = stored {
        if fingerprint != batch.fingerprint {
            return Err(BackendError::IdempotencyMismatch(batch.batch_id.clone()));
        }
        let response: BatchResponse = serde_json::from_str(&response)
            .map_err(|e| BackendError::Corrupt(format!("stored answer: {e}")))?;
        return Ok(BatchOutcome {
            response,
            replayed: true,
        });
    }
    let now = now_ms();
    let policy = batch.write_ids;
    if let Some(cutoff) = prune.due(now, policy.retention) {
        tx.execute("DELETE FROM write_ids WHERE applied_at < ?1", [cutoff])?;
    }
    let mut results = Vec::with_capacity(batch.writes.len());
    {
        let mut claim = tx.prepare_cached(CLAIM_WRITE_ID)?;
        let mut unclaim = tx.prepare_cached(UNCLAIM_WRITE_ID)?;
        let mut upsert = tx.prepare_cached(if policy.guarded { UPSERT } else { OVERWRITE })?;
        for planned in &batch.writes {
            let result = match planned {
                PlannedWrite::Rejected(reason) => ItemResult {
                    status: ItemStatus::Rejected,
                    reason: Some(reason.clone()),
                },
                PlannedWrite::Forbidden { write_id, .. } => {
                    // Claimed and given back, so that the check is the same as a write's.
                    let first = claim.execute(params![write_id, now])? > 0;
                    if first {
                        unclaim.execute([write_id])?;
                    }
                    forbidden_result(!first, policy)
                }
                PlannedWrite::Write(w) => {
                    if let Some(only_if) = &w.only_if {
                        // The transaction is IMMEDIATE: no other writer until it ends.
                        let live: Option<i64> = tx
                            .query_row(
                                "SELECT version FROM items WHERE ns = ?1 AND key = ?2 AND NOT deleted",
                                params![w.ns, w.key],
                                |row| row.get(0),
                            )
                            .optional()?;
                        if !only_if.holds(live.map(to_u64).transpose()?) {
                            return Err(BackendError::PreconditionFailed(format!(
                                "{}/{}",
                                w.ns, w.key
                            )));
                        }
                    }
                    let first = claim.execute(params![w.write_id, now])? > 0;
                    if !first && policy.guarded {
                        ItemResult {
                            status: ItemStatus::Duplicate,
                            reason: None,
                        }
                    } else {
                        let deleted = w.op == WriteOp::Delete;
                        let value = if deleted { None } else { w.value.as_deref() };
                        let changed = upsert.execute(params![
                            w.ns,
                            w.key,
                            value,
                            to_i64(w.version)?,
                            to_i64(w.written_at)?,
                            deleted,
                            now
                        ])?;
                        let status = if changed > 0 {
                            ItemStatus::Applied
                        } else {
                            ItemStatus::Stale
                        };
                        ItemResult {
                            status,
                            reason: None,
                        }
                    }
                }
            };
            results.push(result);
        }
    }
    let response = BatchResponse { results };
    let text = serde_json::to_string(&response)
        .map_err(|e| BackendError::Corrupt(format!("answer: {e}")))?;
    tx.execute(
        "INSERT INTO batches (batch_id, fingerprint, response, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![batch.batch_id, batch.fingerprint, text, now],
    )?;
    tx.commit()?;
    Ok(BatchOutcome {
        response,
        replayed: false,
    })
}

impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn describe(&self) -> String {
        format!("sqlite: {}", self.inner.location)
    }

    fn get_item<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredItem>, BackendError>> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.blocking(move |inner| {
            let conn = inner.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT value, version, written_at, deleted FROM items WHERE ns = ?1 AND key = ?2",
            )?;
            let row = stmt
                .query_row(params![ns, key], |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, bool>(3)?,
                    ))
                })
                .optional()?;
            row.map(|(value, version, written_at, deleted)| {
                Ok(StoredItem {
                    value: if deleted { None } else { value },
                    version: to_u64(version)?,
                    written_at: to_u64(written_at)?,
                })
            })
            .transpose()
        })
    }

    fn apply_batch(
        &self,
        batch: PlannedBatch,
    ) -> BoxFuture<'_, Result<BatchOutcome, BackendError>> {
        self.blocking(move |inner| apply_batch(&mut lock(&inner.writer), &inner.prune, &batch))
    }

    fn stats(&self) -> BoxFuture<'_, Result<BackendStats, BackendError>> {
        self.blocking(|inner| {
            let conn = inner.reader();
            let (rows, tombstones): (i64, i64) = conn.query_row(
                "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted <> 0), 0) FROM items",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let stored_batches: i64 =
                conn.query_row("SELECT COUNT(*) FROM batches", [], |row| row.get(0))?;
            let stored_write_ids: i64 =
                conn.query_row("SELECT COUNT(*) FROM write_ids", [], |row| row.get(0))?;
            Ok(BackendStats {
                rows: to_u64(rows)?,
                tombstones: to_u64(tombstones)?,
                stored_batches: to_u64(stored_batches)?,
                stored_write_ids: to_u64(stored_write_ids)?,
            })
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        self.blocking(|inner| {
            let mut conn = lock(&inner.writer);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM items", [])?;
            tx.execute("DELETE FROM batches", [])?;
            tx.execute("DELETE FROM write_ids", [])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn seed(&self, items: Vec<SeedItem>) -> BoxFuture<'_, Result<u64, BackendError>> {
        self.blocking(move |inner| {
            let mut conn = lock(&inner.writer);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO items (ns, key, value, version, written_at, deleted, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5)",
                )?;
                for item in &items {
                    insert.execute(params![
                        item.ns,
                        item.key,
                        item.value,
                        to_i64(item.version)?,
                        now
                    ])?;
                }
            }
            tx.commit()?;
            Ok(items.len() as u64)
        })
    }
}
