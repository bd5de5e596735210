//! The sweep: removing expired cache entries and keeping the cache within `max_entries`.
//!
//! Spin KV never expires anything by itself, and Fermyon Cloud caps a store's key count, so
//! the flush component also sweeps. Expired clean entries are deleted; then, if more than
//! `max_entries` remain, clean entries are evicted least recently fetched or written first.
//! An entry holding undelivered writes (dirty) is never deleted: it is the only readable copy
//! of the newest value until the flush delivers it. Nor is one holding a recent invalidation
//! ([`crate::serve::invalidate`]): it is what keeps callers' own entries of its key from being
//! served. Entries are read many to a
//! [`KvStore::get_many`] (as many as fit a memory budget, `bulk_read`); those chosen for deletion are read again and deleted together in
//! a rewrite window ([`crate::delivery::rewrite_window`]), so a write that stored its dirty
//! entry since the first read keeps it. Unreadable entries are deleted (a read
//! would treat them as a miss anyway; any write they showed is still in the buffer).
//!
//! Kept access decisions (`m:grant:{window}:…`) and remembered idempotency keys
//! (`m:idem:{window}:…`) of windows no lookup reads any more are deleted by name, unread
//! ([`crate::auth::grant`], [`crate::serve::idempotency`]), and so are fill tickets a failed
//! fill left behind ([`crate::serve::fill`]).
//! The sweep also deletes the rate counters (`r:` keys, [`crate::limit`]) of windows that
//! have ended: nothing reads them again, and every caller of every window would otherwise
//! leave a key behind. The window's end is in the key, so this needs no budget and no read,
//! and it uses the listing the entries need anyway.
//!
//! Having counted every entry, the sweep stores the count (`m:sweep`, [`Swept`]) for
//! `/metrics`, which then reads one key instead of listing the cache.

use sha2::{Digest, Sha256};

use crate::auth::grant;
use crate::config::CacheConfig;
use crate::delivery::bulk_read::read_each;
use crate::delivery::rewrite_window;
use crate::envelope;
use crate::serve::fill;
use crate::serve::idempotency;
use crate::serve::invalidate;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::{Area, KvKey, RecordKind};
use crate::time::{Clock, UnixMillis};

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Expired clean entries deleted.
    pub expired: usize,
    /// Clean entries evicted to respect `max_entries`.
    pub evicted: usize,
    /// Unreadable entries deleted.
    pub unreadable: usize,
    /// Dirty entries kept regardless.
    pub dirty: usize,
    /// Clean entries kept, expired or not, because they hold a recent invalidation
    /// ([`invalidate::hold`]); never evicted either.
    pub held: usize,
    /// Entries left.
    pub remaining: usize,
    /// Access decisions deleted because their window is past.
    pub grants_expired: usize,
    /// Rate counters of ended windows deleted.
    pub rate_counters: usize,
    /// Idempotency keys deleted because their window is past.
    pub idempotency_expired: usize,
    /// Fill tickets left by crashed fills, deleted because their window is past.
    pub fill_tickets_expired: usize,
}

/// What the last sweep counted, kept in `m:sweep` beside the entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Swept {
    /// Entries it left.
    pub entries: u64,
}

impl Swept {
    /// The last sweep's count; none (never swept, or unreadable) reads as the default.
    pub fn load(store: &mut impl KvStore) -> Result<Swept, StoreError> {
        Ok(store
            .get(&KvKey::SweepCount.render())?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    fn save(self, store: &mut impl KvStore) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&self).map_err(|e| StoreError::Other(e.to_string()))?;
        store.set(&KvKey::SweepCount.render(), &bytes)
    }
}

/// Entries deleted per rewrite window: a write landing meanwhile waits for the window.
const DELETE_CHUNK: usize = 32;

/// What the sweep keeps of an entry it read, to tell whether it changed since: a SHA-256 of
/// its bytes, not the bytes (a million entries' bytes would not fit an instance's memory).
type Seen = [u8; 32];

fn seen(bytes: &[u8]) -> Seen {
    Sha256::digest(bytes).into()
}

/// Deletes each key that still holds what the sweep read, in rewrite windows
/// ([`rewrite_window`]): read again together, deleted together, and a write that lands in
/// between waits the window out and stores its entry again. Returns how many were deleted
/// per reason index; a window with too little time left deletes nothing (the next sweep
/// will).
fn delete_unchanged(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    doomed: &[(String, Seen, usize)],
    counts: &mut [usize; 3],
) -> Result<(), StoreError> {
    for chunk in doomed.chunks(DELETE_CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|(k, _, _)| k.clone()).collect();
        let window = rewrite_window::open(store, clock)?;
        let now = store.get_many(&keys)?;
        let unchanged: Vec<(String, usize)> = chunk
            .iter()
            .zip(now)
            .filter(|((_, was, _), now)| now.as_deref().map(seen) == Some(*was))
            .map(|((k, _, why), _)| (k.clone(), *why))
            .collect();
        if window.may_write(clock) {
            let keys: Vec<String> = unchanged.iter().map(|(k, _)| k.clone()).collect();
            store.delete_many(&keys)?;
            for (_, why) in unchanged {
                counts[why] += 1;
            }
        }
        window.close(store)?;
    }
    Ok(())
}

/// Sweeps the cache entries of `store` at `now`.
pub fn sweep(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    cfg: &CacheConfig,
) -> Result<SweepReport, StoreError> {
    let now = clock.now();
    let mut report = SweepReport::default();
    let keys = store.get_keys_in(Area::Cache)?;
    for key in &keys {
        match KvKey::parse(key) {
            Some(KvKey::Grant { window, .. }) if grant::is_dead(window, now, cfg.grant_ttl) => {
                store.delete(key)?;
                report.grants_expired += 1;
            }
            Some(KvKey::Idempotency { window, .. }) if idempotency::is_dead(window, now) => {
                store.delete(key)?;
                report.idempotency_expired += 1;
            }
            Some(KvKey::FillTicket { window, .. }) if fill::is_dead_ticket(window, now) => {
                store.delete(key)?;
                report.fill_tickets_expired += 1;
            }
            _ => {}
        }
    }
    let now_secs = now.0 / 1000;
    for key in keys
        .iter()
        .filter(|k| RecordKind::of(k) == Some(RecordKind::Rate))
    {
        // A key that does not parse is not ours to judge; a current window's is in use.
        if let Some(KvKey::Rate { window_end, .. }) = KvKey::parse(key) {
            if window_end <= now_secs {
                store.delete(key)?;
                report.rate_counters += 1;
            }
        }
    }
    let entry_keys: Vec<String> = keys
        .into_iter()
        .filter(|k| RecordKind::of(k) == Some(RecordKind::Entry))
        .collect();
    const UNREADABLE: usize = 0;
    const EXPIRED: usize = 1;
    const EVICTED: usize = 2;
    // Per entry only its index, its digest and (to evict) when it was last touched: the
    // store may hold a million.
    let mut evictable: Vec<(UnixMillis, usize, Seen)> = Vec::new();
    let mut doomed: Vec<(String, Seen, usize)> = Vec::new();
    read_each(store, &entry_keys, |i, bytes| {
        let Some(bytes) = bytes else {
            return Ok(());
        };
        let key = &entry_keys[i];
        match envelope::decode(&bytes) {
            Err(_) => doomed.push((key.clone(), seen(&bytes), UNREADABLE)),
            Ok(entry) if entry.is_dirty() => report.dirty += 1,
            Ok(entry) if invalidate::is_held(&entry, now, cfg) => report.held += 1,
            Ok(entry) if entry.is_expired(now) => doomed.push((key.clone(), seen(&bytes), EXPIRED)),
            Ok(entry) => evictable.push((entry.touched_at(), i, seen(&bytes))),
        }
        Ok(())
    })?;
    let excess = (report.dirty + evictable.len()).saturating_sub(cfg.max_entries);
    if excess > 0 {
        evictable.sort_unstable_by_key(|(touched, i, _)| (*touched, entry_keys[*i].as_str()));
        doomed.extend(
            evictable
                .iter()
                .take(excess)
                .map(|(_, i, was)| (entry_keys[*i].clone(), *was, EVICTED)),
        );
    }
    let mut counts = [0; 3];
    delete_unchanged(store, clock, &doomed, &mut counts)?;
    report.unreadable = counts[UNREADABLE];
    report.expired = counts[EXPIRED];
    report.evicted = counts[EVICTED];
    report.remaining = report.dirty + report.held + evictable.len() - report.evicted;
    Swept {
        entries: report.remaining as u64,
    }
    .save(store)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Audience, Dirty, Entry, EntryKind};
    use crate::envelope::{encode, CodecPolicy};
    use crate::stamp::Stamp;
    use crate::store::MemoryStore;
    use crate::time::TestClock;

    /// An entry fetched at `fetched` seconds, expiring at `expires` seconds, maybe dirty.
    fn entry(fetched: u64, expires: u64, dirty: bool) -> Vec<u8> {
        let e = Entry {
            kind: EntryKind::Value,
            value: b"1".to_vec(),
            etag: None,
            version: 0,
            fetched_at: Some(UnixMillis(fetched * 1000)),
            written_at: None,
            fresh_until: UnixMillis(expires * 1000),
            stale_until: UnixMillis(expires * 1000),
            stale_if_error_until: UnixMillis(expires * 1000),
            audience: Audience::Granted,
            dirty: dirty.then(|| Dirty {
                stamp: Stamp::new(UnixMillis(1), 0, 1),
                since: UnixMillis(1),
            }),
            invalidated_at: None,
        };
        encode(
            &e,
            &CodecPolicy {
                compress_min_bytes: 0,
            },
        )
        .unwrap()
    }

    /// (fetched secs, expiry secs, dirty); `None` stores garbage.
    type Spec = Option<(u64, u64, bool)>;
    type Case<'a> = (&'a [(&'a str, Spec)], usize, u64, &'a [&'a str]);

    fn check(entries: &[(&str, Spec)], max: usize, now: u64, left: &[&str]) {
        let mut store = MemoryStore::new();
        for (key, e) in entries {
            let bytes = e.map_or(b"junk".to_vec(), |(f, x, d)| entry(f, x, d));
            store.set(&format!("c:ns:{key}"), &bytes).unwrap();
        }
        store.set("w:x", b"keep").unwrap();
        let mut cfg = CacheConfig::with_db_api_url("http://db").unwrap();
        cfg.max_entries = max;
        let report = sweep(&mut store, &mut TestClock::at(UnixMillis(now * 1000)), &cfg).unwrap();
        let got: Vec<String> = store
            .keys_with_prefix("c:ns:")
            .iter()
            .map(|k| k[5..].to_owned())
            .collect();
        assert_eq!(got, left, "{entries:?} max {max} at {now}");
        assert_eq!(report.remaining, left.len());
        assert!(store.peek("w:x").is_some());
    }

    /// A store where a write stores a dirty entry over every entry just after the sweep
    /// read it in bulk.
    struct WrittenAfterRead(MemoryStore);

    impl KvStore for WrittenAfterRead {
        fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key)
        }
        fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.0.set(key, value)
        }
        fn delete(&mut self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key)
        }
        fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
            self.0.get_keys()
        }
        fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            let read = self.0.get_many(keys)?;
            for key in keys {
                self.0.set(key, &entry(50, 60, true))?;
            }
            Ok(read)
        }
    }

    #[test]
    fn an_entry_written_after_the_sweep_read_it_is_neither_expired_nor_evicted() {
        let mut store = WrittenAfterRead(MemoryStore::new());
        store.set("c:ns:old", &entry(1, 2, false)).unwrap();
        store.set("c:ns:live", &entry(1, 100, false)).unwrap();
        let mut cfg = CacheConfig::with_db_api_url("http://db").unwrap();
        cfg.max_entries = 0;
        let report = sweep(&mut store, &mut TestClock::at(UnixMillis(10_000)), &cfg).unwrap();
        assert_eq!((report.expired, report.evicted), (0, 0));
        assert_eq!(store.0.keys_with_prefix("c:ns:").len(), 2);
    }

    #[test]
    fn the_rate_counters_of_ended_windows_go_and_current_ones_stay() {
        let mut store = MemoryStore::new();
        for key in [
            "r:read:100:ip:192.0.2.1",
            "r:admin:160:ip:192.0.2.1",
            "r:write:161:#0123456789abcdef0123456789abcdef",
            "r:read:0160:ip:192.0.2.1",
            "m:count:hits",
        ] {
            store.set(key, b"1").unwrap();
        }
        let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
        let report = sweep(&mut store, &mut TestClock::at(UnixMillis(160_000)), &cfg).unwrap();
        assert_eq!(report.rate_counters, 2);
        assert_eq!(
            store.get_keys().unwrap(),
            [
                "m:count:hits",
                "m:sweep",
                "r:read:0160:ip:192.0.2.1",
                "r:write:161:#0123456789abcdef0123456789abcdef"
            ]
        );
    }

    #[test]
    fn expired_and_excess_clean_entries_go_and_dirty_ones_stay() {
        let cases: &[Case] = &[
            (
                &[("a", Some((0, 10, false))), ("b", Some((0, 100, false)))],
                10,
                50,
                &["b"],
            ),
            (&[("a", Some((0, 10, true)))], 10, 50, &["a"]),
            (&[("a", None), ("b", Some((0, 100, false)))], 10, 50, &["b"]),
            (
                &[
                    ("a", Some((3, 100, false))),
                    ("b", Some((1, 100, false))),
                    ("c", Some((2, 100, false))),
                ],
                2,
                50,
                &["a", "c"],
            ),
            (
                &[
                    ("a", Some((1, 100, true))),
                    ("b", Some((2, 100, true))),
                    ("c", Some((3, 100, false))),
                ],
                1,
                50,
                &["a", "b"],
            ),
        ];
        for (entries, max, now, left) in cases {
            check(entries, *max, *now, left);
        }
    }

    #[test]
    fn grants_of_windows_no_lookup_reads_are_deleted_unread() {
        let mut store = MemoryStore::new();
        let digest = "ab".repeat(16);
        let key = |window| {
            KvKey::Grant {
                window,
                digest: digest.clone(),
            }
            .render()
        };
        for w in [0, 1, 2, 3] {
            store.set(&key(w), b"any").unwrap();
        }
        let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
        // grant_ttl is 60 s: at 150 s the current window is 2, and 1 is still read.
        let report = sweep(&mut store, &mut TestClock::at(UnixMillis(150_000)), &cfg).unwrap();
        assert_eq!(report.grants_expired, 2);
        assert_eq!(store.keys_with_prefix("m:grant:"), [key(1), key(2)]);
    }
}
