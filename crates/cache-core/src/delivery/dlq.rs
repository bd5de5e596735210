//! The dead-letter queue: writes the DB API will not take, kept for an operator.
//!
//! A write is dead-lettered when the DB API answers `conflict` or `rejected` for it, when its
//! batch fails permanently or exhausts `flush_max_attempts`, when it is too large to seal, or
//! when its buffer record is unreadable (then only the raw text is kept). Each dead letter is
//! stored under `d:{stamp}` of its write, so dead-lettering the same write twice (after a
//! crash) overwrites rather than duplicates.
//!
//! **Retry keeps the original stamp.** [`retry`] moves the write back into the buffer as
//! `w:{stamp}` unchanged. Last-writer-wins therefore still holds: if a newer write of the
//! same key was delivered since, the retried one is answered `stale` and dropped; it can
//! never overwrite newer data. To force an old value, the client writes it again (new stamp).
//! A retried write counts toward the buffer's age bound until the next flush delivers it.
//!
//! **An index, so that reading the queue does not list the store.** `m:dlq` holds the stamps
//! of the dead letters, oldest first ([`MAX_INDEXED`] at most). Each flush run lists the
//! buffer anyway and rewrites it from what it found when it differs ([`reindex`]); burying a
//! letter adds its stamp, and retrying or discarding one removes it. Those small updates are
//! read-modify-writes that can race (an operator's discard beside a flush run burying), so
//! the index may briefly name a letter that is gone (reading skips it) or miss one buried
//! meanwhile (the next run's listing puts it back). [`list_indexed`] reads the index and
//! then the letters it names, in few calls; [`list`] lists the store, for an exact answer.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::delivery::batch_id::BatchId;
use crate::delivery::bulk_read::read_each;
use crate::record::{BufferedWrite, RecordError, StoredWrite};
use crate::stamp::{Stamp, STAMP_HEX_LEN};
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::{Area, KvKey, RecordKind};
use crate::time::UnixMillis;

const DEAD_LETTER_FORMAT: u8 = 1;
const INDEX_FORMAT: u8 = 1;
/// The most dead letters the index names (the oldest); past it, reading the queue says it is
/// truncated and an exact listing shows the rest.
pub const MAX_INDEXED: usize = 20_000;

/// Why a write was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// The DB API answered `conflict`.
    Conflict,
    /// The DB API answered `rejected`.
    Rejected,
    /// The whole batch failed with a permanent error.
    Permanent,
    /// The batch failed `flush_max_attempts` times.
    Exhausted,
    /// The write does not fit a sealed batch.
    TooLarge,
    /// The buffer record could not be read.
    Corrupt,
}

/// One dead-lettered write.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Stamp of the write (and the key of this record).
    pub stamp: Stamp,
    /// The write, unless its record was unreadable.
    pub write: Option<BufferedWrite>,
    /// The unreadable record's text (lossy UTF-8), for [`DeadReason::Corrupt`].
    pub raw: Option<String>,
    /// Why.
    pub reason: DeadReason,
    /// The DB API's reason or the error text.
    pub detail: Option<String>,
    /// Failed send attempts of its batch.
    pub attempts: u32,
    /// The batch it was last sent in.
    pub batch_id: Option<BatchId>,
    /// When it was dead-lettered.
    pub dead_at: UnixMillis,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredDeadLetter {
    v: u8,
    stamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    write: Option<StoredWrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
    reason: DeadReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_id: Option<String>,
    dead_at: u64,
}

/// Why a dead-letter operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DlqError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl DeadLetter {
    /// `d:{stamp}`.
    #[must_use]
    pub fn kv_key(&self) -> String {
        KvKey::DeadLetter(self.stamp).render()
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let stored = StoredDeadLetter {
            v: DEAD_LETTER_FORMAT,
            stamp: self.stamp.to_string(),
            write: self.write.as_ref().map(StoredWrite::from),
            raw: self.raw.clone(),
            reason: self.reason,
            detail: self.detail.clone(),
            attempts: self.attempts,
            batch_id: self.batch_id.as_ref().map(ToString::to_string),
            dead_at: self.dead_at.0,
        };
        serde_json::to_vec(&stored).map_err(|e| RecordError::Json(e.to_string()))
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<DeadLetter, RecordError> {
        let s: StoredDeadLetter =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        if s.v != DEAD_LETTER_FORMAT {
            return Err(RecordError::UnknownVersion(s.v));
        }
        Ok(DeadLetter {
            stamp: Stamp::parse(&s.stamp)?,
            write: s.write.map(StoredWrite::into_write).transpose()?,
            raw: s.raw,
            reason: s.reason,
            detail: s.detail,
            attempts: s.attempts,
            batch_id: s.batch_id.as_deref().and_then(BatchId::parse),
            dead_at: UnixMillis(s.dead_at),
        })
    }
}

/// Stores a dead letter.
pub fn bury(store: &mut impl KvStore, letter: &DeadLetter) -> Result<(), DlqError> {
    store.set(&letter.kv_key(), &letter.encode()?)?;
    update_index(store, |stamps| {
        if let Err(at) = stamps.binary_search(&letter.stamp) {
            stamps.insert(at, letter.stamp);
        }
    })?;
    Ok(())
}

/// Every dead letter, oldest write first, plus the keys of unreadable dead-letter records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeadLetters {
    /// The readable dead letters.
    pub letters: Vec<DeadLetter>,
    /// Keys of `d:` records that could not be read.
    pub unreadable: Vec<String>,
}

/// Lists the dead-letter queue.
pub fn list(store: &mut impl KvStore) -> Result<DeadLetters, StoreError> {
    let mut keys: Vec<String> = store
        .get_keys_in(Area::Buffer)?
        .into_iter()
        .filter(|k| RecordKind::of(k) == Some(RecordKind::DeadLetter))
        .collect();
    keys.sort();
    read_letters(store, &keys)
}

/// The dead letters stored under `keys` (in that order), read many to a call; absent keys
/// are skipped and unreadable ones named.
fn read_letters(store: &mut impl KvStore, keys: &[String]) -> Result<DeadLetters, StoreError> {
    let mut out = DeadLetters::default();
    read_each(store, keys, |i, bytes| {
        match bytes.map(|b| DeadLetter::decode(&b)) {
            None => {}
            Some(Ok(letter)) => out.letters.push(letter),
            Some(Err(_)) => out.unreadable.push(keys[i].clone()),
        }
        Ok(())
    })?;
    Ok(out)
}

/// The result of [`retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// The write is buffered again under its original stamp.
    Requeued,
    /// No dead letter with that stamp.
    NotFound,
    /// Only raw text survived; there is nothing to resend.
    NothingToResend,
}

/// Moves the dead letter of `stamp` back into the write buffer, with its original stamp.
pub fn retry(store: &mut impl KvStore, stamp: Stamp) -> Result<Retried, DlqError> {
    let key = KvKey::DeadLetter(stamp).render();
    let Some(bytes) = store.get(&key)? else {
        return Ok(Retried::NotFound);
    };
    let Some(write) = DeadLetter::decode(&bytes)?.write else {
        return Ok(Retried::NothingToResend);
    };
    store.set(&write.kv_key(), &write.encode()?)?;
    store.delete(&key)?;
    unindex(store, stamp)?;
    Ok(Retried::Requeued)
}

/// The result of [`discard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    /// The dead letter is gone.
    Removed,
    /// No dead letter with that stamp.
    NotFound,
}

/// Drops the dead letter of `stamp` for good.
pub fn discard(store: &mut impl KvStore, stamp: Stamp) -> Result<Discarded, StoreError> {
    let key = KvKey::DeadLetter(stamp).render();
    if store.get(&key)?.is_none() {
        return Ok(Discarded::NotFound);
    }
    store.delete(&key)?;
    unindex(store, stamp)?;
    Ok(Discarded::Removed)
}

/// The stamps the index names, and whether it left older-than-the-cap letters out; `None`
/// when there is no readable index.
fn read_index(store: &mut impl KvStore) -> Result<Option<(Vec<Stamp>, bool)>, StoreError> {
    let Some(bytes) = store.get(&KvKey::DeadLetterIndex.render())? else {
        return Ok(None);
    };
    let (&[INDEX_FORMAT, truncated], rest) = bytes.split_at(bytes.len().min(2)) else {
        return Ok(None);
    };
    let stamps = rest
        .chunks(STAMP_HEX_LEN)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|t| Stamp::parse(t).ok())
        })
        .collect::<Option<Vec<Stamp>>>();
    Ok(stamps.map(|s| (s, truncated == 1)))
}

fn write_index(store: &mut impl KvStore, mut stamps: Vec<Stamp>) -> Result<(), StoreError> {
    stamps.sort_unstable();
    stamps.dedup();
    let truncated = stamps.len() > MAX_INDEXED;
    stamps.truncate(MAX_INDEXED);
    let mut bytes = Vec::with_capacity(2 + stamps.len() * STAMP_HEX_LEN);
    bytes.extend_from_slice(&[INDEX_FORMAT, u8::from(truncated)]);
    for s in &stamps {
        bytes.extend_from_slice(s.to_string().as_bytes());
    }
    store.set(&KvKey::DeadLetterIndex.render(), &bytes)
}

/// Changes the index, if there is one (without one, [`list_indexed`] lists the store and the
/// next flush run writes it).
fn update_index(
    store: &mut impl KvStore,
    change: impl FnOnce(&mut Vec<Stamp>),
) -> Result<(), StoreError> {
    let Some((mut stamps, truncated)) = read_index(store)? else {
        return Ok(());
    };
    if truncated {
        // Which letters past the cap exist is unknown here; the next run's listing knows.
        return Ok(());
    }
    change(&mut stamps);
    write_index(store, stamps)
}

fn unindex(store: &mut impl KvStore, stamp: Stamp) -> Result<(), StoreError> {
    update_index(store, |stamps| stamps.retain(|s| *s != stamp))
}

/// Rewrites the index from a listing's dead letters (`keys`, any keys of the buffer's area),
/// unless it already says the same: one `get`, and a `set` when it changed.
pub fn reindex(store: &mut impl KvStore, keys: &[String]) -> Result<(), StoreError> {
    let mut listed: Vec<Stamp> = keys
        .iter()
        .filter_map(|k| match KvKey::parse(k) {
            Some(KvKey::DeadLetter(stamp)) => Some(stamp),
            _ => None,
        })
        .collect();
    listed.sort_unstable();
    let truncated = listed.len() > MAX_INDEXED;
    let mut kept = listed.clone();
    kept.truncate(MAX_INDEXED);
    if read_index(store)? == Some((kept, truncated)) {
        return Ok(());
    }
    write_index(store, listed)
}

/// The dead-letter queue as the index names it, and whether the index left letters out;
/// `None` when there is no index yet (no flush run since dead letters were indexed).
pub fn list_indexed(store: &mut impl KvStore) -> Result<Option<(DeadLetters, bool)>, StoreError> {
    let Some((stamps, truncated)) = read_index(store)? else {
        return Ok(None);
    };
    let keys: Vec<String> = stamps
        .iter()
        .map(|s| KvKey::DeadLetter(*s).render())
        .collect();
    Ok(Some((read_letters(store, &keys)?, truncated)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ItemKey, Namespace};
    use crate::store::MemoryStore;
    use serde_json::json;

    fn letter(millis: u64, write: bool) -> DeadLetter {
        let stamp = Stamp::new(UnixMillis(millis), 0, 1);
        DeadLetter {
            stamp,
            write: write.then(|| BufferedWrite {
                ns: Namespace::parse("ns").unwrap(),
                key: ItemKey::parse("k").unwrap(),
                value: Some(json!({"x": 1})),
                stamp,
                written_at: UnixMillis(millis),
                subject: None,
            }),
            raw: (!write).then(|| "garbage".to_owned()),
            reason: if write {
                DeadReason::Rejected
            } else {
                DeadReason::Corrupt
            },
            detail: Some("bad".into()),
            attempts: 1,
            batch_id: Some(BatchId::derive([&stamp])),
            dead_at: UnixMillis(millis + 1),
        }
    }

    #[test]
    fn dead_letters_are_listed_oldest_first_and_round_trip() {
        let mut store = MemoryStore::new();
        for l in [letter(20, true), letter(10, false)] {
            bury(&mut store, &l).unwrap();
        }
        store
            .set(&format!("d:{}", Stamp::new(UnixMillis(5), 0, 0)), b"junk")
            .unwrap();
        let listed = list(&mut store).unwrap();
        assert_eq!(listed.letters, vec![letter(10, false), letter(20, true)]);
        assert_eq!(listed.unreadable.len(), 1);
    }

    #[test]
    fn retry_requeues_with_the_original_stamp_and_discard_removes() {
        let mut store = MemoryStore::new();
        let l = letter(20, true);
        bury(&mut store, &l).unwrap();
        bury(&mut store, &letter(10, false)).unwrap();
        assert_eq!(retry(&mut store, l.stamp).unwrap(), Retried::Requeued);
        let requeued = store.peek(&format!("w:{}", l.stamp)).unwrap();
        assert_eq!(
            BufferedWrite::decode(requeued).unwrap(),
            l.write.clone().unwrap()
        );
        assert_eq!(store.keys_with_prefix("d:").len(), 1);
        assert_eq!(retry(&mut store, l.stamp).unwrap(), Retried::NotFound);
        let corrupt = letter(10, false).stamp;
        assert_eq!(
            retry(&mut store, corrupt).unwrap(),
            Retried::NothingToResend
        );
        assert_eq!(discard(&mut store, corrupt).unwrap(), Discarded::Removed);
        assert_eq!(discard(&mut store, corrupt).unwrap(), Discarded::NotFound);
        assert!(store.keys_with_prefix("d:").is_empty());
    }

    fn indexed(store: &mut MemoryStore) -> (Vec<Stamp>, bool) {
        let (letters, truncated) = list_indexed(store).unwrap().unwrap();
        (letters.letters.iter().map(|l| l.stamp).collect(), truncated)
    }

    #[test]
    fn the_index_follows_burials_retries_and_discards_and_heals_on_reindex() {
        let mut store = MemoryStore::new();
        // No index yet: nothing to read it from, and burying does not start one.
        bury(&mut store, &letter(30, true)).unwrap();
        assert_eq!(list_indexed(&mut store).unwrap(), None);
        let keys = store.keys_with_prefix("");
        reindex(&mut store, &keys).unwrap();
        let (a, b) = (letter(20, true), letter(10, true));
        bury(&mut store, &a).unwrap();
        bury(&mut store, &b).unwrap();
        assert_eq!(
            indexed(&mut store),
            (vec![b.stamp, a.stamp, letter(30, true).stamp], false)
        );
        retry(&mut store, a.stamp).unwrap();
        discard(&mut store, b.stamp).unwrap();
        assert_eq!(indexed(&mut store), (vec![letter(30, true).stamp], false));

        // A letter gone behind the index's back is skipped; one it missed comes back with the
        // next listing; an unchanged listing writes nothing.
        store.delete(&letter(30, true).kv_key()).unwrap();
        store.set(&b.kv_key(), &b.encode().unwrap()).unwrap();
        assert_eq!(indexed(&mut store), (vec![], false));
        let keys = store.keys_with_prefix("");
        reindex(&mut store, &keys).unwrap();
        assert_eq!(indexed(&mut store), (vec![b.stamp], false));
        store.crash_after_mutations(0);
        reindex(&mut store, &keys).unwrap();
    }

    #[test]
    fn past_the_cap_the_index_keeps_the_oldest_and_says_so() {
        let mut store = MemoryStore::new();
        let keys: Vec<String> = (0..MAX_INDEXED as u64 + 2)
            .map(|i| KvKey::DeadLetter(Stamp::new(UnixMillis(1_000 + i), 0, 1)).render())
            .collect();
        reindex(&mut store, &keys).unwrap();
        let (stamps, truncated) = read_index(&mut store).unwrap().unwrap();
        assert_eq!((stamps.len(), truncated), (MAX_INDEXED, true));
        assert_eq!(stamps[0], Stamp::new(UnixMillis(1_000), 0, 1));
        // Unchanged: nothing written again.
        store.crash_after_mutations(0);
        reindex(&mut store, &keys).unwrap();
    }
}
