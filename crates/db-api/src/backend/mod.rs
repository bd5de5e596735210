//! Storage behind the API: one small trait, two implementations.
//!
//! The HTTP layer decides what a request means (validation, rejections, faults); a
//! [`Backend`] only stores. The one rule a backend must get right on its own is atomicity:
//! [`Backend::apply_batch`] applies every write of a batch *and* records the batch id with its
//! answer in the same transaction, so a resent batch either finds its stored answer or
//! applies as if first seen, never half of each. SQLite is the default because it needs no
//! service; PostgreSQL is there to show the contract holds on a real multi-client database.

pub mod postgres;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use cache_core::contract::{BatchResponse, WriteOp};
use serde::Serialize;

use crate::error::BackendError;

/// A boxed future, so that [`Backend`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One item as stored: a live value or the tombstone of a delete.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    /// The JSON text of the value; `None` for a tombstone.
    pub value: Option<String>,
    /// The version that wrote this state.
    pub version: u64,
    /// When the client accepted that write, Unix milliseconds.
    pub written_at: u64,
}

/// A write that passed validation, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidWrite {
    /// Namespace.
    pub ns: String,
    /// Key within the namespace.
    pub key: String,
    /// Put or delete.
    pub op: WriteOp,
    /// JSON text of the value for a put; `None` for a delete.
    pub value: Option<String>,
    /// Per-key version (fits in an `i64`).
    pub version: u64,
    /// Client write time, Unix milliseconds (fits in an `i64`).
    pub written_at: u64,
}

/// One entry of a batch after validation: either a write to store or a rejection decided
/// by the HTTP layer (invalid write, or a key configured to be rejected).
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedWrite {
    /// Store it, unless it is stale.
    Write(ValidWrite),
    /// Do not store it; answer `rejected` with this reason.
    Rejected(String),
}

/// A batch ready for [`Backend::apply_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedBatch {
    /// The batch id (= `Idempotency-Key`).
    pub batch_id: String,
    /// A digest of the request's writes, to spot a batch id reused with another body.
    pub fingerprint: String,
    /// The writes, in request order.
    pub writes: Vec<PlannedWrite>,
}

/// What [`Backend::apply_batch`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// The answer: the new one, or the stored one for a replay.
    pub response: BatchResponse,
    /// `true` when the batch id was already stored and nothing was applied.
    pub replayed: bool,
}

/// Row counts of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BackendStats {
    /// Live items.
    pub rows: u64,
    /// Tombstones of deleted items.
    pub tombstones: u64,
    /// Batch ids remembered in the idempotency table.
    pub stored_batches: u64,
}

/// One row to bulk-insert with [`Backend::seed`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeedItem {
    /// Namespace.
    pub ns: String,
    /// Key.
    pub key: String,
    /// JSON text of the value.
    pub value: String,
    /// Version to store.
    pub version: u64,
}

/// A store for items and the idempotency table.
pub trait Backend: Send + Sync + 'static {
    /// Short name for logs and `/_stats`: `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Where the data lives, for the start-up line (no credentials).
    fn describe(&self) -> String;

    /// The stored state of one key (a tombstone included), or `None` if never written.
    fn get_item<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredItem>, BackendError>>;

    /// Applies a batch in one transaction together with the idempotency table.
    ///
    /// A batch id seen before returns the stored answer with `replayed: true` and changes
    /// nothing (or [`BackendError::IdempotencyMismatch`] if its fingerprint differs). Otherwise
    /// each write is applied when its version is greater than the stored one (tombstones
    /// count) and answered `stale` when not; rejections are answered as given.
    fn apply_batch(&self, batch: PlannedBatch)
        -> BoxFuture<'_, Result<BatchOutcome, BackendError>>;

    /// Row counts.
    fn stats(&self) -> BoxFuture<'_, Result<BackendStats, BackendError>>;

    /// Deletes every item and every stored batch.
    fn reset(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Inserts or overwrites the given rows in one transaction; returns how many.
    fn seed(&self, items: Vec<SeedItem>) -> BoxFuture<'_, Result<u64, BackendError>>;
}

/// Converts a stored `i64` back to the `u64` it was written from.
pub(crate) fn to_u64(v: i64) -> Result<u64, BackendError> {
    u64::try_from(v).map_err(|_| BackendError::Corrupt(format!("negative stored number {v}")))
}

/// Converts a validated `u64` (checked to fit) to the `i64` the databases store.
pub(crate) fn to_i64(v: u64) -> Result<i64, BackendError> {
    i64::try_from(v).map_err(|_| BackendError::Corrupt(format!("number {v} does not fit in i64")))
}

/// Current time, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Opens the backend named by `db`: a `postgres://` / `postgresql://` URL, `:memory:`, or a
/// SQLite file path (its parent directory is created).
pub async fn open(db: &str) -> Result<std::sync::Arc<dyn Backend>, BackendError> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            postgres::PostgresBackend::connect(db).await?,
        ))
    } else {
        let path = db.to_owned();
        let backend = tokio::task::spawn_blocking(move || sqlite::SqliteBackend::open(&path))
            .await
            .map_err(|e| BackendError::Task(e.to_string()))??;
        Ok(std::sync::Arc::new(backend))
    }
}
