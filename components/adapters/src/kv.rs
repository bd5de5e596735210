//! cache-core's [`KvStore`] over a Spin key-value store.
//!
//! The core is written against a small synchronous trait so it can be tested natively; this
//! is the one place that knows the Spin store and how its errors map onto the core's.
//!
//! With the `kv-atomics` feature (on by default) compare-and-swap and `increment` go through
//! `wasi:keyvalue/atomics@0.2.0-draft2` on the same store, and with `kv-batch` (on by
//! default) `get_many`, `set_many` and `delete_many` through `wasi:keyvalue/batch`, one call
//! each; local Spin, SpinKube and the embedded host offer both. Fermyon Cloud and Akamai
//! Functions do not, and a component importing them does not load there, so their build
//! (`spin.cloud.toml`) leaves the features out and the core's fallbacks (read-compare-write,
//! read-add-write, one call per key) are used.

use cache_core::config::CacheConfig;
use cache_core::store::{KvStore, SplitStore, StoreError};
use cache_core::stored::kv_key::Area;
use spin_sdk::key_value::{Error, Store};

/// A Spin key-value store seen as a [`KvStore`].
pub struct SpinKv {
    store: Store,
    #[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
    label: String,
    /// The same store as a `wasi:keyvalue` bucket, opened on first atomic or batch
    /// operation.
    #[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
    bucket: Option<wasi_kv::store::Bucket>,
    /// Set once the host refused a `get-many`: later reads go one key at a time.
    #[cfg(feature = "kv-batch")]
    get_many_refused: bool,
}

impl SpinKv {
    /// Opens the store with the given label (`"default"` on every host).
    pub fn open(label: &str) -> Result<SpinKv, StoreError> {
        let store = Store::open(label).map_err(map_error)?;
        Ok(SpinKv {
            store,
            #[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
            label: label.to_owned(),
            #[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
            bucket: None,
            #[cfg(feature = "kv-batch")]
            get_many_refused: false,
        })
    }
}

/// The application's stores as `cfg` names them: `kv_store` alone, or `kv_store` for the
/// cache and `buffer_store` for buffered work ([`SplitStore`]). Each label must also be
/// listed in the component's `key_value_stores`.
pub enum Stores {
    /// Everything in one store (`default` unless configured: the only label Fermyon Cloud
    /// and Akamai Functions offer).
    One(SpinKv),
    /// The cache and the buffer apart.
    Split(SplitStore<SpinKv, SpinKv>),
}

impl Stores {
    /// Opens the configured store or stores.
    pub fn open(cfg: &CacheConfig) -> Result<Stores, StoreError> {
        let cache = SpinKv::open(&cfg.kv_store)?;
        Ok(match &cfg.buffer_store {
            None => Stores::One(cache),
            Some(label) => Stores::Split(SplitStore {
                cache,
                buffer: SpinKv::open(label)?,
            }),
        })
    }

    fn inner(&mut self) -> &mut dyn KvStore {
        match self {
            Stores::One(s) => s,
            Stores::Split(s) => s,
        }
    }
}

impl KvStore for Stores {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner().get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner().set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.inner().delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.inner().get_keys()
    }
    fn get_keys_in(&mut self, area: Area) -> Result<Vec<String>, StoreError> {
        self.inner().get_keys_in(area)
    }
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner().get_many(keys)
    }
    fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.inner().set_many(pairs)
    }
    fn has_atomic_increment(&self) -> bool {
        match self {
            Stores::One(s) => s.has_atomic_increment(),
            Stores::Split(s) => s.has_atomic_increment(),
        }
    }
    fn delete_many(&mut self, keys: &[String]) -> Result<(), StoreError> {
        self.inner().delete_many(keys)
    }
    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.inner().compare_and_swap(key, expected, new)
    }
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.inner().increment(key, delta)
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

#[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
use spin_sdk::wit::wasi::keyvalue as wasi_kv;

#[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
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

    /// `wasi:keyvalue/batch` `get-many`: one call for three keys or more. The answer is
    /// matched to `keys` by name, so a host that leaves missing keys out and one that answers
    /// them `none` read alike.
    ///
    /// Spin's Redis backend sends `get-many` as `KEYS k1 k2 …`, which Redis refuses for two
    /// keys or more, and for a single key it misreads the answer (the instance traps). So one
    /// key is always a plain `get`, and a refused `get-many` is read again one key at a time,
    /// as are all later ones of this instance: on SQLite the call works, on Redis it costs
    /// one refused round trip per instance. Since an instance serves one request, two keys
    /// (a request's entry and the rollout record, the most frequent read) are two plain
    /// `get`s: on Redis, a store usually across the network, the refused call would cost
    /// every request one more round trip; on SQLite it is one local query more.
    #[cfg(feature = "kv-batch")]
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.len() < 3 || self.get_many_refused {
            return keys.iter().map(|k| self.get(k)).collect();
        }
        match wasi_kv::batch::get_many(self.bucket()?, keys) {
            Ok(pairs) => {
                let found: std::collections::HashMap<String, Option<Vec<u8>>> =
                    pairs.into_iter().collect();
                Ok(keys
                    .iter()
                    .map(|k| found.get(k).cloned().flatten())
                    .collect())
            }
            Err(_) => {
                self.get_many_refused = true;
                keys.iter().map(|k| self.get(k)).collect()
            }
        }
    }

    /// `wasi:keyvalue/batch` `set-many`: one call (not atomic, as the trait allows).
    #[cfg(feature = "kv-batch")]
    fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        wasi_kv::batch::set_many(self.bucket()?, pairs).map_err(map_wasi_error)
    }

    /// `wasi:keyvalue/batch` `delete-many`: one call (not atomic, as the trait allows).
    #[cfg(feature = "kv-batch")]
    fn delete_many(&mut self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        wasi_kv::batch::delete_many(self.bucket()?, keys).map_err(map_wasi_error)
    }

    /// `wasi:keyvalue/atomics` `increment`: one call, atomic on Spin's SQLite (a
    /// transaction) and Redis (`INCRBY`) stores. A count the host reports below zero (a
    /// value that was no counter) reads as 0, as the core's decoding does.
    fn has_atomic_increment(&self) -> bool {
        cfg!(feature = "kv-atomics")
    }

    #[cfg(feature = "kv-atomics")]
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        let count =
            wasi_kv::atomics::increment(self.bucket()?, key, delta).map_err(map_wasi_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[cfg(any(feature = "kv-atomics", feature = "kv-batch"))]
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
