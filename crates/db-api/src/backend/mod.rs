//! Storage behind the API: one small trait, two implementations.
//!
//! The HTTP layer decides what a request means (validation, rejections, faults); a
//! [`Backend`] only stores. The one rule a backend must get right on its own is atomicity:
//! [`Backend::apply_batch`] applies every write of a batch, records the write ids it received
//! *and* records the batch id with its answer in the same transaction, so a resent batch
//! either finds its stored answer or applies as if first seen, never half of each, and a write
//! that arrives again under another batch id finds its write id and is answered `duplicate`.
//! SQLite is the default because it needs no service; PostgreSQL is there to show the
//! contract holds on a real multi-client database.
//!
//! # Write ids
//!
//! Each backend keeps a table of received write ids (`write_id` primary key, `applied_at`
//! Unix milliseconds). A write id is recorded when its write is answered `applied` or
//! `stale`: a stale write was received and decided, and any later copy of it would be stale
//! as well, so answering that copy `duplicate` changes nothing for the cache, which settles
//! both alike. A rejected write is not recorded, so that a dead letter sent again later (after
//! the reason for its rejection was fixed) can still be applied. The write id is claimed
//! before the version guard is consulted, so the check does not depend on versions at all.
//!
//! Rows older than [`WriteIdPolicy::retention`] are pruned, at most once per
//! [`PRUNE_EVERY`] (or per retention, if shorter). The retention must exceed the longest a
//! write can stay buffered and be retried in the cache (`max_dirty_age + flush_max_attempts ×
//! flush_retry_max`, about two hours with the cache's defaults); the default is seven days.

pub mod postgres;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cache_sync_contract::wire::{etag_of_version, BatchResponse, WriteOp};
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
    /// The write's unique id (32 lowercase hex digits, checked).
    pub write_id: String,
    /// Put or delete.
    pub op: WriteOp,
    /// JSON text of the value for a put; `None` for a delete.
    pub value: Option<String>,
    /// Per-key version (fits in an `i64`).
    pub version: u64,
    /// Client write time, Unix milliseconds (fits in an `i64`).
    pub written_at: u64,
    /// The state the item must be in for the write to apply (an item write's `If-Match` /
    /// `If-None-Match`); judged in the write's transaction. When it does not hold,
    /// [`Backend::apply_batch`] applies and remembers nothing and answers
    /// [`BackendError::PreconditionFailed`]. Batch writes carry none.
    pub only_if: Option<ItemPrecondition>,
}

/// An item write's preconditions, the request's header values as sent (RFC 9110 13.1.1–2,
/// [`cache_sync_contract::precondition`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemPrecondition {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
}

impl ItemPrecondition {
    /// Whether the preconditions hold for an item whose live version is `current` (`None`:
    /// never written or deleted). The item's ETag is [`etag_of_version`] of it.
    #[must_use]
    pub fn holds(&self, current: Option<u64>) -> bool {
        let etag = current.map(etag_of_version);
        cache_sync_contract::precondition::holds(
            etag.as_deref().map(Some),
            self.if_match.as_deref(),
            self.if_none_match.as_deref(),
        )
    }
}

/// One entry of a batch after validation: either a write to store or a rejection decided
/// by the HTTP layer (invalid write, or a key configured to be rejected).
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedWrite {
    /// Store it, unless it is stale.
    Write(ValidWrite),
    /// Do not store it; answer `rejected` with this reason.
    Rejected(String),
    /// Its principal may not make it: answer `duplicate` if its write id was received
    /// before (the write-id promise comes first: the write was decided then), otherwise
    /// `rejected` with reason [`FORBIDDEN_REASON`](cache_sync_contract::wire::FORBIDDEN_REASON)
    /// without recording the write id (a later resend, once allowed, can still apply).
    Forbidden {
        /// Namespace.
        ns: String,
        /// Key within the namespace.
        key: String,
        /// The write's id (checked).
        write_id: String,
    },
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
    /// How write ids are checked and kept for this batch.
    pub write_ids: WriteIdPolicy,
}

/// How a backend treats write ids (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteIdPolicy {
    /// Received write ids are kept at least this long, then pruned.
    pub retention: Duration,
    /// `true` (always, except under the `skip_write_guards` fault): a write id already received
    /// is answered `duplicate`, and a write applies only over a lower version. `false`: every
    /// write is applied as received, as by a DB API with neither guard.
    pub guarded: bool,
}

/// How long received write ids are kept by default: seven days.
pub const DEFAULT_WRITE_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Write ids are pruned at most this often (or once per retention, if that is shorter).
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// When write ids were last pruned; shared by the batches of one backend.
#[derive(Debug, Default)]
pub(crate) struct PruneClock {
    last: AtomicI64,
}

impl PruneClock {
    /// At most once per [`PRUNE_EVERY`] (or per `retention`, if shorter): the `applied_at`
    /// below which write ids are to be deleted now. `None`: not yet due.
    pub(crate) fn due(&self, now: i64, retention: Duration) -> Option<i64> {
        let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let every = retention.min(i64::try_from(PRUNE_EVERY.as_millis()).unwrap_or(i64::MAX));
        let last = self.last.load(Ordering::Relaxed);
        if now.saturating_sub(last) < every {
            return None;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| now.saturating_sub(retention))
    }
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
    /// Write ids remembered in the write-id table.
    pub stored_write_ids: u64,
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

    /// Applies a batch in one transaction together with the idempotency and write-id tables.
    ///
    /// A write with [`ValidWrite::only_if`] whose precondition does not hold for the item as
    /// stored (the row read, and locked where the database locks rows, in the same
    /// transaction) ends the whole batch with [`BackendError::PreconditionFailed`]: nothing
    /// is applied, and neither the batch id nor a write id is remembered, so a retry with the
    /// same `Idempotency-Key` is judged afresh. A stored batch id is answered first.
    ///
    /// A batch id seen before returns the stored answer with `replayed: true` and changes
    /// nothing (or [`BackendError::IdempotencyMismatch`] if its fingerprint differs). Otherwise
    /// each write whose write id was received before (in any batch, this one included) is
    /// answered `duplicate` and not applied; any other write records its write id and is
    /// applied when its version is greater than the stored one (tombstones count) and
    /// answered `stale` when not; rejections are answered as given and not recorded, and a
    /// [`PlannedWrite::Forbidden`] is `duplicate` or `rejected` as it says. See
    /// [`WriteIdPolicy`] for pruning and for the fault that turns both guards off.
    fn apply_batch(&self, batch: PlannedBatch)
        -> BoxFuture<'_, Result<BatchOutcome, BackendError>>;

    /// Row counts.
    fn stats(&self) -> BoxFuture<'_, Result<BackendStats, BackendError>>;

    /// Deletes every item, every stored batch and every write id.
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

/// The result of a [`PlannedWrite::Forbidden`] whose write id was (`received_before`) or was
/// not received before, under `policy`.
pub(crate) fn forbidden_result(
    received_before: bool,
    policy: WriteIdPolicy,
) -> cache_sync_contract::wire::ItemResult {
    use cache_sync_contract::wire::{ItemResult, ItemStatus, FORBIDDEN_REASON};
    if received_before && policy.guarded {
        ItemResult {
            status: ItemStatus::Duplicate,
            reason: None,
        }
    } else {
        ItemResult {
            status: ItemStatus::Rejected,
            reason: Some(FORBIDDEN_REASON.to_owned()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_is_due_once_per_interval() {
        let clock = PruneClock::default();
        let day = Duration::from_secs(86_400);
        let now = 10 * 86_400_000;
        assert_eq!(clock.due(now, day), Some(now - 86_400_000));
        assert_eq!(clock.due(now + 59_999, day), None);
        assert_eq!(
            clock.due(now + 60_000, day),
            Some(now + 60_000 - 86_400_000)
        );
        // A retention shorter than a minute prunes once per retention.
        let short = Duration::from_millis(50);
        assert_eq!(clock.due(now + 60_049, short), None);
        assert_eq!(clock.due(now + 60_050, short), Some(now + 60_000));
    }
}
