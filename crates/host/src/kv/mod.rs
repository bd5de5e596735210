//! Key-value stores behind Spin's `fermyon:spin/key-value` interface.
//!
//! Like Spin, a store is named by a label; the runtime config places each label on a
//! backend (a SQLite file, Spin's default, or a Redis server), and `default` lives in
//! `<state dir>/sqlite_key_value.db` unless configured otherwise. The backends keep
//! Spin's on-disk and on-wire layouts, so a state directory or Redis database can be
//! shared with a real `spin up`.
//!
//! # Layout
//! - `sqlite.rs`: Spin's `spin_key_value(store, key, value)` table.
//! - `redis.rs`: plain `GET`/`SET`/`DEL`/`EXISTS`/`KEYS *`, one connection manager per URL.
//!
//! Both also serve `wasi:keyvalue/atomics` (`increment`, and compare-and-swap through
//! [`KvCas`]) the way Spin's backends do, caveats included: on SQLite a swap from an absent
//! key is an unconditional write, and on Redis an aborted swap is reported as done.
//!
//! `increment` is Spin's on both: an absent key counts as 0; SQLite keeps the count as an
//! 8-byte little-endian integer, read, added (wrapping, as Spin's release build does) and
//! written in one transaction; Redis runs `INCRBY`, which keeps decimal text and refuses a
//! value that is not an integer (an `error::other` to the guest). Spin's SQLite backend
//! panics on a value of another length, holding the store's lock: that call fails the
//! instance, and the poisoned lock makes every later call on that label panic too until
//! Spin restarts. Here the same call traps ([`KvFailure::Trap`]) and the label stays broken
//! the same way, so a guest that increments what is not a counter fails here as on Spin.

mod redis;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use self::redis::RedisStore;
pub use self::sqlite::{SqliteFile, SqliteStore};

/// A backend failure, reported to the guest as `error::other(message)`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// Why a store call did not answer.
#[derive(Debug, thiserror::Error)]
pub enum KvFailure {
    /// A failure the guest hears about (`error::other`).
    #[error(transparent)]
    Error(#[from] KvError),
    /// Where Spin's backend panics: the call traps and the guest's instance ends.
    #[error("{0}")]
    Trap(String),
}

/// One labelled store on its backend.
#[derive(Clone)]
pub enum StoreBackend {
    /// A SQLite file (Spin's `type = "spin"`).
    Sqlite(SqliteStore),
    /// A Redis server (`type = "redis"`).
    Redis(RedisStore),
}

impl StoreBackend {
    /// Reads a value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.get(key),
            StoreBackend::Redis(s) => Ok(s.get(key).await?),
        }
    }

    /// Writes a value, replacing any previous one.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.set(key, value),
            StoreBackend::Redis(s) => Ok(s.set(key, value).await?),
        }
    }

    /// Deletes a key; deleting an absent key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.delete(key),
            StoreBackend::Redis(s) => Ok(s.delete(key).await?),
        }
    }

    /// Whether a key exists.
    pub async fn exists(&self, key: &str) -> Result<bool, KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.exists(key),
            StoreBackend::Redis(s) => Ok(s.exists(key).await?),
        }
    }

    /// Every key in the store (Spin offers no prefix filter).
    pub async fn get_keys(&self) -> Result<Vec<String>, KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.get_keys(),
            StoreBackend::Redis(s) => Ok(s.get_keys().await?),
        }
    }

    /// Adds `delta` to the integer under `key` (absent: 0) and returns the sum (the module
    /// docs give each backend's layout and failures).
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.increment(key, delta),
            StoreBackend::Redis(s) => Ok(s.increment(key, delta).await?),
        }
    }

    /// Starts a compare-and-swap on `key`.
    pub async fn new_cas(&self, key: &str) -> Result<KvCas, KvFailure> {
        let conn = match self {
            StoreBackend::Sqlite(_) => None,
            StoreBackend::Redis(s) => Some(s.cas_connection().await?),
        };
        Ok(KvCas {
            store: self.clone(),
            key: key.to_owned(),
            observed: None,
            redis: conn,
        })
    }
}

/// One compare-and-swap in progress: the value `current` saw is what `swap` compares with.
pub struct KvCas {
    store: StoreBackend,
    key: String,
    observed: Option<Vec<u8>>,
    redis: Option<::redis::aio::ConnectionManager>,
}

impl KvCas {
    /// The store it works on.
    pub fn store(&self) -> &StoreBackend {
        &self.store
    }

    /// The key it works on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Reads the current value and remembers it for [`KvCas::swap`].
    pub async fn current(&mut self) -> Result<Option<Vec<u8>>, KvFailure> {
        let value = match (&self.store, self.redis.as_mut()) {
            (StoreBackend::Redis(_), Some(conn)) => redis::cas_current(conn, &self.key).await?,
            (store, _) => store.get(&self.key).await?,
        };
        self.observed.clone_from(&value);
        Ok(value)
    }

    /// Writes `value` if the key still holds what [`KvCas::current`] saw (with the
    /// backends' caveats above); `false` when the swap failed.
    pub async fn swap(&mut self, value: &[u8]) -> Result<bool, KvFailure> {
        match (&self.store, self.redis.as_mut()) {
            (StoreBackend::Sqlite(s), _) => s.swap(&self.key, self.observed.as_deref(), value),
            (StoreBackend::Redis(_), Some(conn)) => {
                Ok(redis::cas_swap(conn, &self.key, value).await?)
            }
            (StoreBackend::Redis(s), None) => Ok(s.set(&self.key, value).await.map(|()| true)?),
        }
    }
}

/// The stores defined for an application, by label.
#[derive(Clone, Default)]
pub struct KvStores {
    stores: BTreeMap<String, StoreBackend>,
}

impl KvStores {
    /// Adds or replaces the store for `label`.
    pub fn insert(&mut self, label: String, store: StoreBackend) {
        self.stores.insert(label, store);
    }

    /// The store for `label`, if defined.
    pub fn get(&self, label: &str) -> Option<&StoreBackend> {
        self.stores.get(label)
    }

    /// Whether `label` is defined.
    pub fn contains(&self, label: &str) -> bool {
        self.stores.contains_key(label)
    }
}

/// Shared handle type used by the store map in [`crate::state`].
pub type SharedKvStores = Arc<KvStores>;
