//! The write buffer: coalescing buffered writes, and backpressure when it grows too large.
//!
//! # Consistency model
//!
//! **Read-your-writes.** A write is accepted only after its buffer record (`w:{stamp}`) is
//! stored, and the cache entry is then overwritten with the new value (or a tombstone) marked
//! dirty. Every later read that reaches the same store sees it: dirty entries are served
//! whatever their age and are never replaced by origin data (see [`crate::serve::read`]). A crash
//! between the two stores leaves the write durable but not yet visible; it becomes visible
//! once delivered and re-fetched.
//!
//! **Last writer wins by stamp.** Writes are totally ordered by their [`Stamp`] (time, then
//! per-instance sequence, then a random instance id). The gateway does not overwrite an entry
//! holding a newer stamp, [`coalesce`] keeps the newest write per key, and the DB API keeps the
//! highest version ([`Stamp::version`] is monotone in stamp order), so all three agree on the
//! winner. Writes racing within one millisecond from different instances are ordered
//! arbitrarily but consistently.
//!
//! **At-least-once delivery, applied exactly once.** A flush seals each batch under a
//! content-derived id before sending it, and deletes the buffer records it covers only after
//! the DB API answered. A crash anywhere in between leads to the same batch being resent with
//! the same id; the DB API answers a repeated id from its idempotency record without applying
//! anything again, and a re-applied older version would be refused as stale anyway. Each
//! write also carries its stamp as a write id, which the DB API answers `duplicate` when it
//! has applied it already, so a write sealed into two batches by overlapping flush runs is
//! applied once even by a DB API without a version guard (see [`crate::contract`]). What a
//! reader can observe: its own and others' accepted writes at once through the cache; the DB
//! API lags by up to one flush interval plus retries; a write rejected by the DB API (conflict
//! or invalid) disappears from the cache (its entry is dropped) and lands in the dead-letter
//! queue. The flush and the sweep rewrite entries in bulk (clean, drop, delete) inside a
//! rewrite window that a racing write waits out and then checks its entry again
//! ([`crate::delivery::rewrite_window`]). What remains without compare-and-swap is the gap
//! between one read and one write of one entry: a fill storing the origin's answer, a refused
//! write's entry being dropped, or two windows overlapping, at the instant another write
//! stores its dirty entry. That write stays durable and is delivered; it may not be visible
//! until then.

pub mod measure;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::CacheConfig;
use crate::key::{ItemKey, Namespace};
use crate::record::BufferedWrite;
use crate::stamp::Stamp;
use crate::time::UnixMillis;

/// The newest write of one key, and every buffered write it replaces.
#[derive(Debug, Clone, PartialEq)]
pub struct Coalesced {
    /// The last writer by stamp.
    pub winner: BufferedWrite,
    /// Stamps of all records of this key that delivering `winner` settles, oldest first,
    /// including the winner's own.
    pub covers: Vec<Stamp>,
}

/// Coalesces writes per key: one [`Coalesced`] per key, ordered by winner stamp (oldest first).
#[must_use]
pub fn coalesce(writes: impl IntoIterator<Item = BufferedWrite>) -> Vec<Coalesced> {
    let mut by_key: BTreeMap<(Namespace, ItemKey), Coalesced> = BTreeMap::new();
    for w in writes {
        let id = (w.ns.clone(), w.key.clone());
        match by_key.get_mut(&id) {
            None => {
                let covers = vec![w.stamp];
                by_key.insert(id, Coalesced { winner: w, covers });
            }
            Some(c) => {
                c.covers.push(w.stamp);
                if w.stamp > c.winner.stamp {
                    c.winner = w;
                }
            }
        }
    }
    let mut out: Vec<Coalesced> = by_key.into_values().collect();
    for c in &mut out {
        c.covers.sort_unstable();
        c.covers.dedup();
    }
    out.sort_by_key(|c| c.winner.stamp);
    out
}

/// What is known about the buffer's size ([`measure`] says how it is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferStats {
    /// Number of buffered write records.
    pub writes: usize,
    /// Their total stored size.
    pub bytes: u64,
    /// Stamp time of the oldest buffered write.
    pub oldest: Option<UnixMillis>,
}

impl BufferStats {
    /// How long the oldest write has waited, at `now`.
    #[must_use]
    pub fn oldest_age(&self, now: UnixMillis) -> Option<Duration> {
        self.oldest.map(|o| now.saturating_since(o))
    }
}

/// Which bound a write would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// `max_buffered_writes` reached.
    TooManyWrites,
    /// `max_buffered_bytes` would be exceeded.
    TooManyBytes,
    /// The oldest write is older than `max_dirty_age`: flushing is falling behind.
    TooOld,
}

/// Whether the buffer takes one more write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Buffer the write.
    Accept,
    /// Refuse it (HTTP 503 with `Retry-After`).
    Reject {
        /// Which bound.
        reason: Backpressure,
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
}

/// Decides whether a write of `incoming_bytes` may be buffered at `now`.
#[must_use]
pub fn admit(
    stats: &BufferStats,
    incoming_bytes: u64,
    now: UnixMillis,
    cfg: &CacheConfig,
) -> Admission {
    let retry_after = cfg.flush_retry_base.max(Duration::from_secs(1));
    let reject = |reason| Admission::Reject {
        reason,
        retry_after,
    };
    if stats.writes >= cfg.max_buffered_writes {
        return reject(Backpressure::TooManyWrites);
    }
    if stats.bytes.saturating_add(incoming_bytes) > cfg.max_buffered_bytes {
        return reject(Backpressure::TooManyBytes);
    }
    if stats
        .oldest_age(now)
        .is_some_and(|age| age > cfg.max_dirty_age)
    {
        return reject(Backpressure::TooOld);
    }
    Admission::Accept
}

#[cfg(test)]
mod tests;
