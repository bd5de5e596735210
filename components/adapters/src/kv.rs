//! cache-core's [`KvStore`] over a Spin key-value store.
//!
//! The core is written against a small synchronous trait so it can be tested natively; this
//! is the one place that knows the Spin store and how its errors map onto the core's.

use cache_core::store::{KvStore, StoreError};
use spin_sdk::key_value::{Error, Store};

/// A Spin key-value store seen as a [`KvStore`].
pub struct SpinKv(pub Store);

impl SpinKv {
    /// Opens the store with the given label (`"default"` on every host).
    pub fn open(label: &str) -> Result<SpinKv, StoreError> {
        Store::open(label).map(SpinKv).map_err(map_error)
    }

    /// Opens the store named by the `kv_store` variable, `default` when it is unset or
    /// undeclared (the only label Fermyon Cloud and Akamai Functions offer). The label must
    /// also be listed in the component's `key_value_stores`.
    pub fn open_configured() -> Result<SpinKv, StoreError> {
        let label = spin_sdk::variables::get("kv_store")
            .ok()
            .filter(|l| !l.trim().is_empty());
        SpinKv::open(label.as_deref().unwrap_or("default"))
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

impl KvStore for SpinKv {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(map_error)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(map_error)
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(map_error)
    }

    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.0.get_keys().map_err(map_error)
    }
}
