//! The key-value store as the core sees it, and an in-memory one for tests.
//!
//! The components implement [`KvStore`] over a Spin `Store`; the flush, the sweep and the
//! dead-letter operations are written against this trait only. Spin's store offers no prefix
//! listing, so neither does the trait. Compare-and-swap exists only where the host offers
//! `wasi:keyvalue/atomics` (local Spin, SpinKube, the embedded host; not Fermyon Cloud or
//! Akamai Functions), so [`KvStore::compare_and_swap`] has a non-atomic fallback and its
//! callers treat a reported success as a claim to verify (see [`crate::delivery::lease`]).
//! The same interface's `increment` backs [`KvStore::increment`], which the rate limits
//! count with ([`crate::limit`]); its fallback can lose increments under concurrency.
//!
//! A counter is stored as Spin's SQLite backend stores what `increment` wrote: the value as
//! an 8-byte little-endian integer. Spin's Redis backend keeps `INCRBY`'s decimal text
//! instead; [`decode_counter`] reads both. The fallback writes the 8-byte form on purpose:
//! Spin's SQLite `increment` panics on a value of any other length (the request fails and
//! the store's lock is poisoned for every later call), so a counter written without atomics
//! must stay one that an atomic `increment` on the same store can read.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::stored::kv_key::Area;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The store holds as many keys as it may.
    #[error("store is full")]
    Full,
    /// The store refused access.
    #[error("store access denied")]
    AccessDenied,
    /// Anything else (I/O, host errors).
    #[error("store error: {0}")]
    Other(String),
}

/// A synchronous key-value store.
pub trait KvStore {
    /// The value under `key`, if any.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`, replacing any previous value.
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key`; removing an absent key succeeds.
    fn delete(&mut self, key: &str) -> Result<(), StoreError>;
    /// Every key in the store.
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError>;

    /// The values under `keys`, in their order. One call where the host has
    /// `wasi:keyvalue/batch` (Spin: one query on SQLite, `MGET` on Redis); this default reads
    /// them one by one.
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Stores every pair. One call where the host has `wasi:keyvalue/batch`; callers must
    /// not rely on it being atomic (this default stores them one by one).
    fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        pairs.iter().try_for_each(|(k, v)| self.set(k, v))
    }

    /// Removes `keys`. One call where the host has `wasi:keyvalue/batch`; callers must not
    /// rely on it being atomic (this default deletes them one by one, and a failure can leave
    /// any prefix of them deleted).
    fn delete_many(&mut self, keys: &[String]) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| self.delete(k))
    }

    /// The keys of one [`Area`]. This default lists the whole store and keeps the area's
    /// keys; a [`SplitStore`] lists only the store that holds the area.
    fn get_keys_in(&mut self, area: Area) -> Result<Vec<String>, StoreError> {
        let mut keys = self.get_keys()?;
        keys.retain(|k| Area::of(k) == area);
        Ok(keys)
    }

    /// Replaces the value under `key` with `new` if it is still `expected` (`None`: absent);
    /// `Ok(false)` when it was not.
    ///
    /// Atomic where the store has compare-and-swap, with two caveats of Spin's own backends
    /// that callers must allow for: from an absent key the swap is an unconditional write on
    /// Spin's SQLite store, and Spin's Redis store reports a swap that another writer aborted
    /// as done. `Ok(true)` is therefore a claim, which the caller confirms by reading the key
    /// back. This default, for stores without atomics, reads, compares and writes in separate
    /// steps: another writer can come in between.
    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        if self.get(key)?.as_deref() != expected {
            return Ok(false);
        }
        self.set(key, new)?;
        Ok(true)
    }

    /// Whether [`KvStore::increment`] is atomic, as on a host with `wasi:keyvalue/atomics`
    /// (Spin's SQLite store runs it in a transaction, its Redis store as `INCRBY`): then
    /// concurrent callers each get a count of their own, which the fill claim uses to make a
    /// stampede cost one origin fetch ([`crate::serve::fill`]). No, by default.
    fn has_atomic_increment(&self) -> bool {
        false
    }

    /// Adds `delta` to the counter under `key` (absent: 0) and returns the new count.
    ///
    /// Atomic where the store has `wasi:keyvalue/atomics`. This default, for stores without
    /// atomics, reads, adds and writes in separate steps: two callers that read the same
    /// count both write count + delta, and one increment is lost. Under concurrency the
    /// count can therefore lag the number of calls (it never runs ahead of it); see
    /// [`crate::limit`] for what that costs a rate limit. A value that is not a counter
    /// ([`decode_counter`]) counts as 0.
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        let count = self
            .get(key)?
            .as_deref()
            .map_or(0, decode_counter)
            .saturating_add(delta);
        self.set(key, &encode_counter(count))?;
        Ok(count)
    }
}

/// A counter's stored bytes: Spin's SQLite layout, the count as an 8-byte little-endian
/// integer.
#[must_use]
pub fn encode_counter(count: u64) -> [u8; 8] {
    i64::try_from(count).unwrap_or(i64::MAX).to_le_bytes()
}

/// [`KvStore::compare_and_swap`] of `key` from `expected` to `new`, confirmed by reading the
/// key back: `true` only if the swap claimed success and the key now holds `new`. On a host
/// without atomics the swap is a read-compare-write, and the read-back catches most of the
/// writers that came in between.
pub fn swap_confirmed(
    store: &mut impl KvStore,
    key: &str,
    expected: Option<&[u8]>,
    new: &[u8],
) -> Result<bool, StoreError> {
    Ok(store.compare_and_swap(key, expected, new)? && store.get(key)?.as_deref() == Some(new))
}

/// A counter's value: 8 bytes are Spin's SQLite layout (little-endian), anything else is
/// read as the decimal text Spin's Redis backend keeps. A negative or unreadable value is 0:
/// a counter that does not decode restarts, it never fails a request.
#[must_use]
pub fn decode_counter(bytes: &[u8]) -> u64 {
    let n = match <[u8; 8]>::try_from(bytes) {
        Ok(le) => i64::from_le_bytes(le),
        Err(_) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0),
    };
    u64::try_from(n).unwrap_or(0)
}

/// An in-memory [`KvStore`] that can simulate a crash: after a given number of successful
/// mutations, every further operation fails until [`MemoryStore::recover`] is called.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    data: BTreeMap<String, Vec<u8>>,
    mutations_left: Option<usize>,
    crashed: bool,
    max_keys: Option<usize>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Lets `n` more `set`/`delete` calls succeed, then fails everything.
    pub fn crash_after_mutations(&mut self, n: usize) {
        self.mutations_left = Some(n);
    }

    /// Ends a simulated crash; the data written before it is kept.
    pub fn recover(&mut self) {
        self.mutations_left = None;
        self.crashed = false;
    }

    /// Refuses new keys beyond `n` with [`StoreError::Full`].
    pub fn limit_keys(&mut self, n: usize) {
        self.max_keys = Some(n);
    }

    /// Whether a simulated crash happened.
    #[must_use]
    pub fn has_crashed(&self) -> bool {
        self.crashed
    }

    /// Keys starting with `prefix`, sorted.
    #[must_use]
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.data
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The value under `key`, without any failure injection.
    #[must_use]
    pub fn peek(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.crashed {
            Err(StoreError::Other("simulated crash".into()))
        } else {
            Ok(())
        }
    }

    fn mutate(&mut self) -> Result<(), StoreError> {
        self.check()?;
        match self.mutations_left {
            Some(0) => {
                self.crashed = true;
                self.check()
            }
            Some(n) => {
                self.mutations_left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl KvStore for MemoryStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.data.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let is_new = !self.data.contains_key(key);
        if is_new && self.max_keys.is_some_and(|max| self.data.len() >= max) {
            return Err(StoreError::Full);
        }
        self.mutate()?;
        self.data.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.mutate()?;
        self.data.remove(key);
        Ok(())
    }

    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.check()?;
        Ok(self.data.keys().cloned().collect())
    }

    /// Atomic: the store is borrowed mutably for the whole call.
    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.check()?;
        if self.data.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        self.set(key, new)?;
        Ok(true)
    }

    fn has_atomic_increment(&self) -> bool {
        true
    }
    /// Atomic, like compare-and-swap.
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.check()?;
        let count = self
            .data
            .get(key)
            .map_or(0, |v| decode_counter(v))
            .saturating_add(delta);
        self.set(key, &encode_counter(count))?;
        Ok(count)
    }
}

/// A [`MemoryStore`] several parties hold at once in one thread (a request, and a test hook
/// acting as a concurrent request or a rewriter). For tests.
#[derive(Debug, Clone, Default)]
pub struct SharedStore(pub std::rc::Rc<std::cell::RefCell<MemoryStore>>);

impl KvStore for SharedStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.borrow_mut().get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.borrow_mut().set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.borrow_mut().delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.0.borrow_mut().get_keys()
    }
}

/// `S` whose every answered `get_many` is followed by `hook(store, keys)`, before the
/// answer is returned: a party acting between a bulk read and what its reader does next (a
/// write landing then, a pause, a witness of the keys read). The other operations are the
/// four required ones and the trait's defaults. For tests.
pub struct AfterGetMany<S, F>(pub S, pub F);

impl<S, F> KvStore for AfterGetMany<S, F>
where
    S: KvStore,
    F: FnMut(&mut S, &[String]) -> Result<(), StoreError>,
{
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
        (self.1)(&mut self.0, keys)?;
        Ok(read)
    }
}

/// `S` with only the four required operations: `increment` and `compare_and_swap` are the
/// trait's read-modify-write defaults, as on a host without `wasi:keyvalue/atomics` (Fermyon
/// Cloud, Akamai Functions). For tests of what happens there.
#[derive(Debug, Default)]
pub struct WithoutAtomics<S>(pub S);

impl<S: KvStore> KvStore for WithoutAtomics<S> {
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
    fn get_keys_in(&mut self, area: Area) -> Result<Vec<String>, StoreError> {
        self.0.get_keys_in(area)
    }
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.0.get_many(keys)
    }
    fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.0.set_many(pairs)
    }
    fn delete_many(&mut self, keys: &[String]) -> Result<(), StoreError> {
        self.0.delete_many(keys)
    }
}

/// Two stores seen as one: the buffer's keys ([`Area::Buffer`]) in `buffer`, all others in
/// `cache`. Every operation goes to the store of its key's area, so the core's routines work
/// unchanged; listing an area lists that store alone. With the buffer in a store of its own
/// the flush, the dead-letter queue and the metrics read a listing of buffered work, however
/// many entries the cache holds.
#[derive(Debug, Default)]
pub struct SplitStore<C, B> {
    /// Cache entries and what serving them needs.
    pub cache: C,
    /// Buffered work and its bookkeeping.
    pub buffer: B,
}

impl<C: KvStore, B: KvStore> SplitStore<C, B> {
    fn part(&mut self, key: &str) -> &mut dyn KvStore {
        match Area::of(key) {
            Area::Cache => &mut self.cache,
            Area::Buffer => &mut self.buffer,
        }
    }
}

impl<C: KvStore, B: KvStore> KvStore for SplitStore<C, B> {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.part(key).get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.part(key).set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.part(key).delete(key)
    }
    /// Both stores' keys, each filtered to its area (a key of the other area found in a
    /// store is not one this split would read).
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        let mut keys = self.cache.get_keys_in(Area::Cache)?;
        keys.extend(self.buffer.get_keys_in(Area::Buffer)?);
        Ok(keys)
    }
    fn get_keys_in(&mut self, area: Area) -> Result<Vec<String>, StoreError> {
        match area {
            Area::Cache => self.cache.get_keys_in(area),
            Area::Buffer => self.buffer.get_keys_in(area),
        }
    }
    /// One call per store the keys live in.
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let (cache, buffer): (Vec<_>, Vec<_>) = keys
            .iter()
            .cloned()
            .enumerate()
            .partition(|(_, k)| Area::of(k) == Area::Cache);
        let mut out = vec![None; keys.len()];
        for (part, store) in [
            (cache, &mut self.cache as &mut dyn KvStore),
            (buffer, &mut self.buffer),
        ] {
            if part.is_empty() {
                continue;
            }
            let (at, ks): (Vec<usize>, Vec<String>) = part.into_iter().unzip();
            for (i, v) in at.into_iter().zip(store.get_many(&ks)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }
    fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let (cache, buffer): (Vec<_>, Vec<_>) = pairs
            .iter()
            .cloned()
            .partition(|(k, _)| Area::of(k) == Area::Cache);
        if !cache.is_empty() {
            self.cache.set_many(&cache)?;
        }
        if !buffer.is_empty() {
            self.buffer.set_many(&buffer)?;
        }
        Ok(())
    }
    fn delete_many(&mut self, keys: &[String]) -> Result<(), StoreError> {
        let (cache, buffer): (Vec<String>, Vec<String>) = keys
            .iter()
            .cloned()
            .partition(|k| Area::of(k) == Area::Cache);
        if !cache.is_empty() {
            self.cache.delete_many(&cache)?;
        }
        if !buffer.is_empty() {
            self.buffer.delete_many(&buffer)?;
        }
        Ok(())
    }
    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.part(key).compare_and_swap(key, expected, new)
    }
    /// The cache's store's: the fill claim's counters live there.
    fn has_atomic_increment(&self) -> bool {
        self.cache.has_atomic_increment()
    }
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.part(key).increment(key, delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_store_keeps_each_area_in_its_own_store() {
        let mut s = SplitStore {
            cache: MemoryStore::new(),
            buffer: MemoryStore::new(),
        };
        for key in [
            "c:users:1",
            "m:fill:00000000000000ff",
            "w:x",
            "m:flush",
            "m:lease",
        ] {
            s.set(key, b"1").unwrap();
        }
        s.increment("m:admit:0:n", 1).unwrap();
        assert!(s.compare_and_swap("m:lease", Some(b"1"), b"2").unwrap());
        assert_eq!(
            s.cache.keys_with_prefix(""),
            ["c:users:1", "m:fill:00000000000000ff"]
        );
        assert_eq!(
            s.buffer.keys_with_prefix(""),
            ["m:admit:0:n", "m:flush", "m:lease", "w:x"]
        );
        assert_eq!(s.get_keys_in(Area::Buffer).unwrap().len(), 4);
        assert_eq!(s.get_keys().unwrap().len(), 6);
        assert_eq!(s.get("m:lease").unwrap(), Some(b"2".to_vec()));
        let many = ["w:x", "c:users:1", "nothing", "m:flush"].map(str::to_owned);
        assert_eq!(
            s.get_many(&many).unwrap(),
            [
                Some(b"1".to_vec()),
                Some(b"1".to_vec()),
                None,
                Some(b"1".to_vec())
            ]
        );
        s.delete_many(&["c:users:1".to_owned(), "m:flush".to_owned()])
            .unwrap();
        assert_eq!(s.get_keys().unwrap().len(), 4);
        s.set("c:users:1", b"1").unwrap();
        s.set("m:flush", b"1").unwrap();
        s.delete("w:x").unwrap();
        assert_eq!(s.get_keys_in(Area::Buffer).unwrap().len(), 3);
        // One store for both: each area's listing keeps its own keys.
        let mut one = MemoryStore::new();
        one.set("c:users:1", b"1").unwrap();
        one.set("w:x", b"1").unwrap();
        assert_eq!(one.get_keys_in(Area::Buffer).unwrap(), ["w:x"]);
        assert_eq!(one.get_keys_in(Area::Cache).unwrap(), ["c:users:1"]);
    }

    #[test]
    fn simulated_crash_stops_every_operation_until_recovery() {
        let mut s = MemoryStore::new();
        s.crash_after_mutations(1);
        s.set("a", b"1").unwrap();
        assert!(s.set("b", b"2").is_err());
        assert!(s.get("a").is_err());
        assert!(s.has_crashed());
        s.recover();
        assert_eq!(s.get("a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get_keys().unwrap(), ["a"]);
    }

    #[test]
    fn a_full_store_refuses_new_keys_but_overwrites_old_ones() {
        let mut s = MemoryStore::new();
        s.limit_keys(1);
        s.set("a", b"1").unwrap();
        assert_eq!(s.set("b", b"1"), Err(StoreError::Full));
        s.set("a", b"2").unwrap();
        s.delete("missing").unwrap();
    }

    #[test]
    fn counters_start_at_zero_and_keep_spins_sqlite_layout() {
        let mut atomic = MemoryStore::new();
        let mut plain = WithoutAtomics(MemoryStore::new());
        for store in [&mut atomic as &mut dyn KvStore, &mut plain] {
            assert_eq!(store.increment("n", 1), Ok(1));
            assert_eq!(store.increment("n", 2), Ok(3));
            assert_eq!(store.get("n").unwrap(), Some(3i64.to_le_bytes().to_vec()));
            // Redis's decimal text, and a value that is no counter at all.
            store.set("n", b"41").unwrap();
            assert_eq!(store.increment("n", 1), Ok(42));
            store.set("n", b"junk").unwrap();
            assert_eq!(store.increment("n", 1), Ok(1));
        }
        assert_eq!(decode_counter(&(-5i64).to_le_bytes()), 0);
        assert_eq!(decode_counter(&encode_counter(u64::MAX)), i64::MAX as u64);
    }
}
