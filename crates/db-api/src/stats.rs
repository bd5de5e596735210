//! Request counters for `GET /_stats`.
//!
//! Tests and benchmarks assert on what the origin *saw* (how many reads reached it, how
//! many batches were replays), which is the only way to prove from outside that a cache
//! absorbed reads or that a resend applied nothing. Counters live in memory: they describe
//! this process since start or the last `POST /_reset`, unlike the row counts, which come
//! from the database.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident / $snap:ident { $($(#[$fmeta:meta])* $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: AtomicU64,)*
        }

        /// A point-in-time copy of the counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
        pub struct $snap {
            $($(#[$fmeta])* pub $field: u64,)*
        }

        impl $name {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $($field: self.$field.load(Ordering::Relaxed),)* }
            }

            /// Sets every counter to zero.
            pub fn reset(&self) {
                $(self.$field.store(0, Ordering::Relaxed);)*
            }
        }
    };
}

counters! {
    /// What the API has served.
    pub struct Counters / CountersSnapshot {
        /// `GET /v1/items/...` answered from the store (hits + misses).
        item_reads,
        /// Reads answered `200` (or `304`).
        item_hits,
        /// Reads answered `404` (absent or deleted).
        item_misses,
        /// `POST /v1/batch` requests that reached the store (replays included).
        batch_requests,
        /// Batches whose id was already stored: answered from the idempotency table.
        duplicate_batches,
        /// Writes applied (first sends only).
        writes_applied,
        /// Writes answered `stale` (first sends only).
        writes_stale,
        /// Writes answered `duplicate`: their write id was received before (first sends only).
        writes_duplicate,
        /// Writes answered `conflict` (first sends only).
        writes_conflict,
        /// Writes answered `rejected` (first sends only), `forbidden` ones included.
        writes_rejected,
        /// Writes answered `rejected` with reason `forbidden`: their `on_behalf_of` principal
        /// may not make them (any more). First sends only; also counted in `writes_rejected`.
        writes_forbidden,
        /// Writes (namespace, key, version, value) already delivered in an earlier batch with
        /// another id. Measures the cache's flush lease: it must stay 0 where the store has
        /// compare-and-swap; without it, rare redeliveries are answered `duplicate`.
        writes_redelivered,
        /// Write ids answered `applied` a second time: a write the store applied twice. Must
        /// stay 0; only the `skip_write_guards` fault lets it grow.
        writes_applied_twice,
        /// Requests answered `401`: a missing or wrong token, or (auth on) no credential where
        /// a user is needed.
        unauthorized,
        /// Requests answered `403` (auth on): the caller may not make that access.
        forbidden,
        /// `PUT` and `DELETE /v1/items/...` requests applied.
        item_writes,
        /// Changed items announced to the cache.
        announcements_sent,
        /// Announcements that failed (the cache unreachable, slow or refusing).
        announcements_failed,
        /// `POST /v1/authorize` requests, whatever the answer.
        authorize_calls,
        /// `POST /v1/authorize` requests answered `401` or `403`.
        authorize_denied,
        /// Injected: answered as down.
        fault_down,
        /// Injected: held until the timeout.
        fault_timeouts,
        /// Injected: answered `429`.
        fault_throttled,
        /// Injected: answered `5xx`.
        fault_errors,
        /// Injected: garbage body before any state change.
        fault_garbage,
        /// Injected: batch applied, then garbage body.
        fault_garbage_after_commit,
    }
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The body of `GET /_stats`: the counters plus the store's row counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsBody {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Request counters.
    #[serde(flatten)]
    pub counters: CountersSnapshot,
    /// Live items in the store.
    pub rows: u64,
    /// Tombstones of deleted items.
    pub tombstones: u64,
    /// Batch ids in the idempotency table.
    pub stored_batches: u64,
    /// Write ids in the write-id table (pruned after the retention).
    pub stored_write_ids: u64,
    /// Writes the delivery journal remembers (it stops at its capacity).
    pub deliveries_tracked: u64,
    /// Applied write ids the delivery journal remembers (it stops at its capacity).
    pub applied_write_ids_tracked: u64,
}
