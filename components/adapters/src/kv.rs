//! cache-core's [`KvStore`] over a Spin key-value store.
//!
//! The core is written against a small synchronous trait so it can be tested natively; this
//! is the one place that knows the Spin store and how its errors map onto the core's.
//!
//! With the `kv-atomics` feature (on by default) compare-and-swap and `increment` go through
//! `wasi:keyvalue/atomics@0.2.0-draft2` on the same store, which local Spin, SpinKube and the
//! embedded host offer. Fermyon Cloud and Akamai Functions do not, and a component importing
//! it does not load there, so their build (`spin.cloud.toml`) leaves the feature out and the
//! core's fallbacks (read-compare-write, read-add-write) are used.

use cache_core::config::CacheConfig;
use cache_core::store::{KvStore, StoreError};
use spin_sdk::key_value::{Error, Store};

/// A Spin key-value store seen as a [`KvStore`].
pub struct SpinKv {
    store: Store,
    #[cfg(feature = "kv-atomics")]
    label: String,
    /// The same store as a `wasi:keyvalue` bucket, opened on first atomic operation.
    #[cfg(feature = "kv-atomics")]
    bucket: Option<wasi_kv::store::Bucket>,
}

impl SpinKv {
    /// Opens the store with the given label (`"default"` on every host).
    pub fn open(label: &str) -> Result<SpinKv, StoreError> {
        let store = Store::open(label).map_err(map_error)?;
        Ok(SpinKv {
            store,
            #[cfg(feature = "kv-atomics")]
            label: label.to_owned(),
            #[cfg(feature = "kv-atomics")]
            bucket: None,
        })
    }

    /// Opens the store named by `cfg.kv_store` (`default` unless configured, the only label
    /// Fermyon Cloud and Akamai Functions offer). The label must also be listed in the
    /// component's `key_value_stores`.
    pub fn open_configured(cfg: &CacheConfig) -> Result<SpinKv, StoreError> {
        SpinKv::open(&cfg.kv_store)
    }
}

/// Maps a Spin store error onto the core's.
#[must_use]
pub fn map_error(e: Error) -> StoreError {
    match e {
        Error::StoreTableFull => StoreError::Full,
        Error::AccessDenied => StoreError::AccessDenied,
        Error::NoSuchStore => StoreError::Other("no such store".to_owned()),
        Error::Other(m) => StoreError::Other(m),
    }
}

#[cfg(feature = "kv-atomics")]
use spin_sdk::wit::wasi::keyvalue as wasi_kv;

#[cfg(feature = "kv-atomics")]
fn map_wasi_error(e: wasi_kv::store::Error) -> StoreError {
    match e {
        wasi_kv::store::Error::AccessDenied => StoreError::AccessDenied,
        wasi_kv::store::Error::NoSuchStore => StoreError::Other("no such store".to_owned()),
        wasi_kv::store::Error::Other(m) => StoreError::Other(m),
    }
}

impl KvStore for SpinKv {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key).map_err(map_error)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.set(key, value).map_err(map_error)
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).map_err(map_error)
    }

    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.store.get_keys().map_err(map_error)
    }

    /// `wasi:keyvalue/atomics`: a `cas` handle, its `current` value compared with
    /// `expected`, then `swap`. Spin's own caveats (see the trait) are the caller's to check.
    #[cfg(feature = "kv-atomics")]
    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        use wasi_kv::atomics::{self, CasError};
        let bucket = self.bucket()?;
        let cas = atomics::Cas::new(bucket, key).map_err(map_wasi_error)?;
        if cas.current().map_err(map_wasi_error)?.as_deref() != expected {
            return Ok(false);
        }
        match atomics::swap(cas, new) {
            Ok(()) => Ok(true),
            Err(CasError::CasFailed(_)) => Ok(false),
            Err(CasError::StoreError(e)) => Err(map_wasi_error(e)),
        }
    }

    /// `wasi:keyvalue/atomics` `increment`: one call, atomic on Spin's SQLite (a
    /// transaction) and Redis (`INCRBY`) stores. A count the host reports below zero (a
    /// value that was no counter) reads as 0, as the core's decoding does.
    #[cfg(feature = "kv-atomics")]
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        let count =
            wasi_kv::atomics::increment(self.bucket()?, key, delta).map_err(map_wasi_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[cfg(feature = "kv-atomics")]
impl SpinKv {
    /// The same store as a `wasi:keyvalue` bucket, opened on first use.
    fn bucket(&mut self) -> Result<&wasi_kv::store::Bucket, StoreError> {
        if self.bucket.is_none() {
            self.bucket = Some(wasi_kv::store::open(&self.label).map_err(map_wasi_error)?);
        }
        self.bucket
            .as_ref()
            .ok_or_else(|| StoreError::Other("bucket not open".to_owned()))
    }
}
