//! Settling a sealed batch once its fate is known.
//!
//! For every item the DB API answered: `applied`, `stale` and `duplicate` (the DB API had
//! already applied this write id, in another batch) delete exactly the buffer records the item
//! covers (all the batch's at once, [`KvStore::delete_many`]) and mark the cache entry clean
//! (up to 128 entries per rewrite window, [`crate::delivery::rewrite_window`]) if it still shows this very write, or drop
//! it if it shows something older (the DB API now holds this write or a newer one);
//! `conflict` and `rejected` dead-letter the write, delete its records and drop the cache entry
//! if it still shows the refused write (so the next read fetches the DB's truth). A write
//! refused as `forbidden` (its principal may no longer write the key) takes only the records
//! of that principal with it: older writes of other principals that it superseded stay
//! buffered and are delivered by the next run, since nothing newer than them will be. Last, the
//! sealed batch itself is deleted. Each step is idempotent, so a crash part-way is repaired by
//! resending the batch (same id, same answer) and settling again.

use crate::buffer::Coalesced;
use crate::config::CacheConfig;
use crate::contract::{BatchResponse, ItemStatus, FORBIDDEN_REASON};
use crate::delivery::batch::SealedBatch;
use crate::delivery::dlq::{self, DeadLetter, DeadReason, DlqError};
use crate::delivery::rewrite_window;
use crate::entry::Entry;
use crate::envelope;
use crate::key::CacheKey;
use crate::record::BufferedWrite;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::{Clock, UnixMillis};

/// What settling did, summed over items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Items the DB API applied.
    pub applied: usize,
    /// Items the DB API already had in this or a newer version.
    pub stale: usize,
    /// Items whose write id the DB API had already applied, in this or another batch (the
    /// same write sealed twice by overlapping flush runs); settled like applied ones.
    pub duplicate: usize,
    /// Items moved to the dead-letter queue.
    pub dead_lettered: usize,
    /// Buffer records deleted.
    pub records_deleted: usize,
}

/// Whether an answer could be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Every item settled and the sealed batch deleted.
    Done,
    /// The answer has the wrong number of results; nothing was touched.
    Mismatch {
        /// Writes sent.
        sent: usize,
        /// Results received.
        answered: usize,
    },
}

/// Settles `batch` with the DB API's `answer`.
pub fn settle_answer(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    batch: &SealedBatch,
    answer: &BatchResponse,
    now: UnixMillis,
    cfg: &CacheConfig,
    tally: &mut Tally,
) -> Result<Settled, StoreError> {
    if let Some((sent, answered)) = mismatch(batch, answer) {
        return Ok(Settled::Mismatch { sent, answered });
    }
    settle_answers(store, clock, &[(batch, answer)], now, cfg, tally)?;
    Ok(Settled::Done)
}

/// Whether `answer` cannot settle `batch`, as (writes sent, results received): it has the
/// wrong number of results.
#[must_use]
pub fn mismatch(batch: &SealedBatch, answer: &BatchResponse) -> Option<(usize, usize)> {
    (answer.results.len() != batch.items.len()).then_some((batch.items.len(), answer.results.len()))
}

/// Settles several batches with their answers (each with as many results as the batch has
/// items, [`mismatch`]) together: their entries are marked clean in shared rewrite windows,
/// and their records and the batches themselves are deleted in one call, the batches last.
pub fn settle_answers(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    answered: &[(&SealedBatch, &BatchResponse)],
    now: UnixMillis,
    cfg: &CacheConfig,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let mut delivered_records = Vec::new();
    let mut delivered = Vec::new();
    for (batch, answer) in answered {
        for (item, result) in batch.items.iter().zip(&answer.results) {
            match result.status {
                ItemStatus::Applied | ItemStatus::Stale | ItemStatus::Duplicate => {
                    match result.status {
                        ItemStatus::Applied => tally.applied += 1,
                        ItemStatus::Stale => tally.stale += 1,
                        _ => tally.duplicate += 1,
                    }
                    delivered_records.extend(item.covers.iter().map(|s| KvKey::Write(*s).render()));
                    delivered.push(&item.winner);
                }
                ItemStatus::Conflict | ItemStatus::Rejected => {
                    let reason = if result.status == ItemStatus::Conflict {
                        DeadReason::Conflict
                    } else {
                        DeadReason::Rejected
                    };
                    bury_item(
                        store,
                        batch,
                        item,
                        reason,
                        result.reason.clone(),
                        now,
                        tally,
                    )?;
                }
            }
        }
    }
    for chunk in delivered.chunks(ENTRY_CHUNK) {
        mark_clean(store, clock, chunk, cfg)?;
    }
    // The delivered items' records, then the batches, in one call where the host has batch
    // operations (one by one, the batches go last: a crash before them resends the batches,
    // which the DB API answers as duplicates).
    tally.records_deleted += delivered_records.len();
    delivered_records.extend(answered.iter().map(|(b, _)| b.kv_key()));
    store.delete_many(&delivered_records)?;
    Ok(())
}

/// Dead-letters every item of `batch` (permanent failure, exhausted retries, too large) and
/// deletes the batch.
pub fn bury_batch(
    store: &mut impl KvStore,
    batch: &SealedBatch,
    reason: DeadReason,
    detail: &str,
    now: UnixMillis,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    for item in &batch.items {
        bury_item(
            store,
            batch,
            item,
            reason,
            Some(detail.to_owned()),
            now,
            tally,
        )?;
    }
    store.delete(&batch.kv_key())
}

fn bury_item(
    store: &mut impl KvStore,
    batch: &SealedBatch,
    item: &Coalesced,
    reason: DeadReason,
    detail: Option<String>,
    now: UnixMillis,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let letter = DeadLetter {
        stamp: item.winner.stamp,
        write: Some(item.winner.clone()),
        raw: None,
        reason,
        detail,
        attempts: batch.attempts,
        batch_id: Some(batch.id.clone()),
        dead_at: now,
    };
    match dlq::bury(store, &letter) {
        Ok(()) => {}
        Err(DlqError::Store(e)) => return Err(e),
        Err(DlqError::Record(e)) => return Err(StoreError::Other(e.to_string())),
    }
    tally.dead_lettered += 1;
    if reason == DeadReason::Rejected && letter.detail.as_deref() == Some(FORBIDDEN_REASON) {
        delete_covered_of(store, item, tally)?;
    } else {
        delete_covered(store, item, tally)?;
    }
    drop_entry_showing(store, &item.winner)
}

/// Deletes the records `item` covers that were made for its winner's principal (or whose
/// principal cannot be read); the others stay buffered.
fn delete_covered_of(
    store: &mut impl KvStore,
    item: &Coalesced,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    for stamp in &item.covers {
        let key = KvKey::Write(*stamp).render();
        let other_principal = *stamp != item.winner.stamp
            && store
                .get(&key)?
                .and_then(|b| BufferedWrite::decode(&b).ok())
                .is_some_and(|w| w.subject != item.winner.subject);
        if !other_principal {
            store.delete(&key)?;
            tally.records_deleted += 1;
        }
    }
    Ok(())
}

fn delete_covered(
    store: &mut impl KvStore,
    item: &Coalesced,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let keys: Vec<String> = item
        .covers
        .iter()
        .map(|s| KvKey::Write(*s).render())
        .collect();
    store.delete_many(&keys)?;
    tally.records_deleted += keys.len();
    Ok(())
}

fn entry_key(write: &BufferedWrite) -> Option<String> {
    CacheKey::new(write.ns.clone(), write.key.clone(), None)
        .ok()
        .map(|k| k.kv_key())
}

/// Entries marked clean per rewrite window: one `get_many`, and one `set_many` that also
/// closes the window. A batch of the default size (`flush_batch_max_items`, 100) is one
/// window: each window costs two stored values (opening, then closing with the entries),
/// which on a store that syncs every commit to disk is most of a batch's settling time.
const ENTRY_CHUNK: usize = 128;
/// Rewrite windows tried per chunk before the run gives up (a host too slow to read and
/// write back a chunk of entries in a second); the batch then stays sealed and is settled again.
const WINDOW_ATTEMPTS: usize = 3;

/// What settling does to one delivered write's entry.
enum Rewrite {
    /// Store this clean copy.
    Clean(Vec<u8>),
    /// Drop the entry: it shows something older than what the DB API now holds.
    Drop,
    /// Leave it: it shows a newer write, or is gone or unreadable.
    Keep,
}

/// Clears the dirty mark of each write's entry if it still shows exactly that write, in
/// one rewrite window ([`rewrite_window`]): the entries are read together and written back
/// together, and a write that lands in between waits the window out and stores its entry
/// again.
///
/// An entry older than the delivered write is dropped instead, so that the next read fetches
/// the DB API's copy: a clean entry of a lower version (fetched before the write, or after
/// the write's dirty entry was lost or became unreadable) or a dirty entry of an older write.
/// Left in place, such an entry would be served, fresh, until it expires.
fn mark_clean(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    writes: &[&BufferedWrite],
    cfg: &CacheConfig,
) -> Result<(), StoreError> {
    let keyed: Vec<(String, &BufferedWrite)> = writes
        .iter()
        .filter_map(|w| entry_key(w).map(|k| (k, *w)))
        .collect();
    if keyed.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = keyed.iter().map(|(k, _)| k.clone()).collect();
    for _ in 0..WINDOW_ATTEMPTS {
        let window = rewrite_window::open(store, clock)?;
        let mut cleaned = Vec::new();
        let mut dropped = Vec::new();
        for ((key, write), bytes) in keyed.iter().zip(store.get_many(&keys)?) {
            match rewrite(bytes.as_deref(), write, cfg) {
                Rewrite::Clean(clean) => cleaned.push((key.clone(), clean)),
                Rewrite::Drop => dropped.push(key.clone()),
                Rewrite::Keep => {}
            }
        }
        if !window.may_write(clock) {
            window.close(store)?;
            continue;
        }
        if !dropped.is_empty() {
            store.delete_many(&dropped)?;
        }
        return window.close_with(store, cleaned);
    }
    Err(StoreError::Other(
        "settling: no rewrite window left time to write entries back".to_owned(),
    ))
}

/// What settling `write` does to its entry, stored as `bytes`. An entry holding an
/// invalidation is never dropped outright: what replaces it keeps the instant
/// ([`Entry::invalidated_at`]).
fn rewrite(bytes: Option<&[u8]>, write: &BufferedWrite, cfg: &CacheConfig) -> Rewrite {
    let Some(Ok(mut entry)) = bytes.map(envelope::decode) else {
        return Rewrite::Keep;
    };
    let drop = |entry: &Entry| match entry.invalidated_at {
        Some(at) => Rewrite::Clean(envelope::invalidation(at)),
        None => Rewrite::Drop,
    };
    match entry.dirty {
        Some(d) if d.stamp == write.stamp => {}
        Some(d) if d.stamp < write.stamp => return drop(&entry),
        None if entry.version < write.stamp.version() => return drop(&entry),
        _ => return Rewrite::Keep,
    }
    entry.dirty = None;
    match envelope::encode(&entry, &cfg.codec_policy()) {
        Ok(clean) => Rewrite::Clean(clean),
        Err(_) => drop(&entry),
    }
}

/// Deletes the write's entry if it still shows this (refused) write; one holding an
/// invalidation leaves it behind ([`Entry::invalidated_at`]).
fn drop_entry_showing(store: &mut impl KvStore, write: &BufferedWrite) -> Result<(), StoreError> {
    let Some(key) = entry_key(write) else {
        return Ok(());
    };
    let Some(bytes) = store.get(&key)? else {
        return Ok(());
    };
    match envelope::decode(&bytes) {
        Ok(entry) if entry.dirty.map(|d| d.stamp) == Some(write.stamp) => {
            match entry.invalidated_at {
                Some(at) => store.set(&key, &envelope::invalidation(at)),
                None => store.delete(&key),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::coalesce;
    use crate::contract::ItemResult;
    use crate::entry::{Audience, Dirty, Entry, EntryKind};
    use crate::key::{ItemKey, Namespace};
    use crate::stamp::Stamp;
    use crate::store::MemoryStore;
    use crate::time::TestClock;

    const KEY: &str = "c:ns:k";

    fn write(millis: u64) -> BufferedWrite {
        BufferedWrite {
            ns: Namespace::parse("ns").unwrap(),
            key: ItemKey::parse("k").unwrap(),
            value: Some(serde_json::json!(millis)),
            stamp: Stamp::new(UnixMillis(millis), 0, 1),
            written_at: UnixMillis(millis),
            subject: None,
        }
    }

    /// An entry of `version`, dirty with the write at `dirty_millis` when given.
    fn entry(version: u64, dirty_millis: Option<u64>) -> Entry {
        Entry {
            kind: EntryKind::Value,
            value: b"1".to_vec(),
            etag: None,
            version,
            fetched_at: None,
            written_at: None,
            fresh_until: UnixMillis(u64::MAX),
            stale_until: UnixMillis(u64::MAX),
            stale_if_error_until: UnixMillis(u64::MAX),
            audience: Audience::Granted,
            dirty: dirty_millis.map(|m| Dirty {
                stamp: Stamp::new(UnixMillis(m), 0, 1),
                since: UnixMillis(m),
            }),
            invalidated_at: None,
        }
    }

    /// Settles the applied write at 2000 ms over `before`; the entry left, if any.
    fn settle_over(before: &Entry) -> Option<Entry> {
        let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
        let mut store = MemoryStore::new();
        store
            .set(KEY, &envelope::encode(before, &cfg.codec_policy()).unwrap())
            .unwrap();
        let batch = SealedBatch::new(coalesce([write(2_000)]), UnixMillis(3_000));
        settle_all(&mut store, &batch, ItemStatus::Applied, &cfg);
        store.peek(KEY).map(|b| envelope::decode(b).unwrap())
    }

    /// Settles `batch` at 3000 ms with every item answered `status`; the tally.
    fn settle_all(
        store: &mut MemoryStore,
        batch: &SealedBatch,
        status: ItemStatus,
        cfg: &CacheConfig,
    ) -> Tally {
        let answer = BatchResponse {
            results: vec![
                ItemResult {
                    status,
                    reason: None,
                };
                batch.items.len()
            ],
        };
        let mut tally = Tally::default();
        let settled = settle_answer(
            store,
            &mut TestClock::at(UnixMillis(3_000)),
            batch,
            &answer,
            UnixMillis(3_000),
            cfg,
            &mut tally,
        );
        assert_eq!(settled, Ok(Settled::Done));
        tally
    }

    #[test]
    fn the_entry_is_cleaned_kept_or_dropped_by_what_it_shows() {
        let delivered = write(2_000).stamp.version();
        let cases: &[(&str, Entry, Option<Entry>)] = &[
            (
                "shows this write",
                entry(delivered, Some(2_000)),
                Some(entry(delivered, None)),
            ),
            ("older clean copy", entry(delivered - 1, None), None),
            ("older dirty write", entry(delivered - 1, Some(1_000)), None),
            (
                "newer dirty write",
                entry(delivered + 1, Some(4_000)),
                Some(entry(delivered + 1, Some(4_000))),
            ),
            (
                "newer clean copy",
                entry(delivered + 1, None),
                Some(entry(delivered + 1, None)),
            ),
            (
                "same version, clean",
                entry(delivered, None),
                Some(entry(delivered, None)),
            ),
        ];
        for (what, before, after) in cases {
            assert_eq!(&settle_over(before), after, "{what}");
        }
    }

    #[test]
    fn a_duplicate_settles_like_an_applied_write() {
        let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
        let mut store = MemoryStore::new();
        let (older, newer) = (write(1_000), write(2_000));
        for w in [&older, &newer] {
            store.set(&w.kv_key(), &w.encode().unwrap()).unwrap();
        }
        let dirty = entry(newer.stamp.version(), Some(2_000));
        store
            .set(KEY, &envelope::encode(&dirty, &cfg.codec_policy()).unwrap())
            .unwrap();
        let batch = SealedBatch::new(coalesce([older, newer.clone()]), UnixMillis(3_000));
        store
            .set(&batch.kv_key(), &batch.encode().unwrap())
            .unwrap();
        let tally = settle_all(&mut store, &batch, ItemStatus::Duplicate, &cfg);
        assert_eq!(
            tally,
            Tally {
                duplicate: 1,
                records_deleted: 2,
                ..Tally::default()
            }
        );
        assert_eq!(store.keys_with_prefix("w:"), Vec::<String>::new());
        assert_eq!(store.keys_with_prefix("b:"), Vec::<String>::new());
        assert_eq!(store.keys_with_prefix("d:"), Vec::<String>::new());
        let left = envelope::decode(store.peek(KEY).unwrap()).unwrap();
        assert_eq!(left, entry(newer.stamp.version(), None), "marked clean");
    }
}
