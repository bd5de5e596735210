//! The key-value store as the core sees it, and an in-memory one for tests.
//!
//! The components implement [`KvStore`] over a Spin `Store`; the flush, the sweep and the
//! dead-letter operations are written against this trait only. Spin's store offers no prefix
//! listing, so neither does the trait. Compare-and-swap exists only where the host offers
//! `wasi:keyvalue/atomics` (local Spin, SpinKube, the embedded host; not Fermyon Cloud or
//! Akamai Functions), so [`KvStore::compare_and_swap`] has a non-atomic fallback and its
//! callers treat a reported success as a claim to verify (see [`crate::delivery::lease`]).

use std::collections::BTreeMap;

use thiserror::Error;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
