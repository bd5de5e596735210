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
//! - `redis.rs`: plain `GET`/`SET`/`DEL`/`EXISTS`/`KEYS *` (batch: `MSET`, `DEL`, and
//!   Spin's `KEYS` for `get-many`), one connection manager per URL.
//!
//! Both also serve `wasi:keyvalue/atomics` (`increment`, and compare-and-swap through
//! [`KvCas`]) the way Spin's backends do, caveats included: on SQLite a swap from an absent
//! key is an unconditional write, and on Redis an aborted swap is reported as done.
//!
//! `wasi:keyvalue/batch` is Spin's too, oddities included. On SQLite, `get-many` is one
//! `SELECT … WHERE key IN rarray(keys)`: absent keys are left out (never `None`), each key
//! comes once, in key order rather than the order asked; `set-many` is a transaction of
//! upserts and `delete-many` one `DELETE`, both atomic. On Redis, `set-many` is `MSET` and
//! `delete-many` `DEL` (both atomic), but `get-many` sends `KEYS key…` (not `MGET`), so it
//! fails with two keys or more, and with one key it is a glob pattern whose matching names
//! come back read as (key, value) pairs; an odd number of matches is where Spin's reply
//! parsing panics, a trap here. Empty lists are answered before the backend (an empty list,
//! or nothing done), as Spin ≥ 3.1 does.
//!
//! Answers are bounded as Spin ≥ 4.0 bounds them (`spin_world::MAX_HOST_BUFFERED_BYTES`,
//! 128 MiB, [`MAX_RESULT_BYTES`]): a value, a key listing or a `get-many` answer larger
//! than that, counted as Spin counts it (the bytes plus each `String`'s or `Vec`'s own
//! size), is refused with Spin's `query result exceeds limit of … bytes`. So a cache whose
//! store lists more keys than that (2.1 million keys of 40 bytes) cannot be swept here,
//! as on Spin.
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

/// What `get-many` answers: (key, value) pairs, as Spin's backends produce them.
pub type ManyValues = Vec<(String, Option<Vec<u8>>)>;

/// The largest answer a store call may give, as Spin ≥ 4.0 bounds it
/// (`spin_world::MAX_HOST_BUFFERED_BYTES`).
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// `answer` if its size as Spin counts it (`bytes`) is within `limit`, else Spin's refusal.
fn within<T>(answer: T, bytes: usize, limit: usize) -> Result<T, KvFailure> {
    if bytes > limit {
        Err(KvError(format!("query result exceeds limit of {limit} bytes")).into())
    } else {
        Ok(answer)
    }
}

/// A value's size as Spin counts it.
fn value_bytes(value: Option<&Vec<u8>>) -> usize {
    std::mem::size_of::<Option<Vec<u8>>>() + value.map_or(0, Vec::len)
}

/// A key listing's size as Spin counts it.
fn listing_bytes(keys: &[String]) -> usize {
    std::mem::size_of::<Vec<String>>()
        + keys
            .iter()
            .map(|k| std::mem::size_of::<String>() + k.len())
            .sum::<usize>()
}

/// A `get-many` answer's size as Spin counts it.
fn many_bytes(values: &ManyValues) -> usize {
    std::mem::size_of::<Vec<String>>()
        + values
            .iter()
            .map(|(k, v)| {
                std::mem::size_of::<(String, Option<Vec<u8>>)>()
                    + k.len()
                    + v.as_ref().map_or(0, Vec::len)
            })
            .sum::<usize>()
}

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
        let value = match self {
            StoreBackend::Sqlite(s) => s.get(key)?,
            StoreBackend::Redis(s) => s.get(key).await?,
        };
        let bytes = value_bytes(value.as_ref());
        within(value, bytes, MAX_RESULT_BYTES)
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
        let keys = match self {
            StoreBackend::Sqlite(s) => s.get_keys()?,
            StoreBackend::Redis(s) => s.get_keys().await?,
        };
        let bytes = listing_bytes(&keys);
        within(keys, bytes, MAX_RESULT_BYTES)
    }

    /// `wasi:keyvalue/batch` `get-many`, answered as Spin's backend answers it (the module
    /// docs): on SQLite only the keys present, in key order; on Redis a `KEYS` command.
    pub async fn get_many(&self, keys: Vec<String>) -> Result<ManyValues, KvFailure> {
        let values = match self {
            StoreBackend::Sqlite(s) => s.get_many(keys)?,
            StoreBackend::Redis(s) => s.get_many(keys).await?,
        };
        let bytes = many_bytes(&values);
        within(values, bytes, MAX_RESULT_BYTES)
    }

    /// `wasi:keyvalue/batch` `set-many`: atomic on both backends (a SQLite transaction, one
    /// Redis `MSET`).
    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.set_many(pairs),
            StoreBackend::Redis(s) => Ok(s.set_many(pairs).await?),
        }
    }

    /// `wasi:keyvalue/batch` `delete-many`: one statement on both backends (SQLite
    /// `DELETE … IN`, Redis `DEL`); absent keys are no error.
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvFailure> {
        match self {
            StoreBackend::Sqlite(s) => s.delete_many(keys),
            StoreBackend::Redis(s) => Ok(s.delete_many(keys).await?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_bounded_as_spin_counts_them() {
        let listing = keys(&["a", "bc"]);
        // 24 for the Vec, then 24 per String plus its bytes.
        assert_eq!(listing_bytes(&listing), 24 + 25 + 26);
        assert!(within(listing.clone(), listing_bytes(&listing), 75).is_ok());
        let refused = within(listing, 75, 74).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "query result exceeds limit of 74 bytes"
        );
        assert_eq!(value_bytes(None), 24);
        assert_eq!(value_bytes(Some(&vec![0; 10])), 34);
        assert_eq!(many_bytes(&found(&[("k", "vv")])), 24 + 48 + 1 + 2);
        // A listing of 2.1 million 40-byte keys is past the bound; two million are not.
        let per_key = std::mem::size_of::<String>() + 40;
        assert!(24 + 2_100_000 * per_key > MAX_RESULT_BYTES);
        assert!(24 + 2_000_000 * per_key < MAX_RESULT_BYTES);
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn found(list: &[(&str, &str)]) -> Vec<(String, Option<Vec<u8>>)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), Some(v.as_bytes().to_vec())))
            .collect()
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| (*k).to_owned()).collect()
    }

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kv-batch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("kv.db")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_batch_is_spins_absent_keys_left_out_in_key_order() {
        let path = temp_db("sqlite");
        let file = SqliteFile::open(&path).expect("open");
        let store = StoreBackend::Sqlite(file.store("default"));
        let other = StoreBackend::Sqlite(file.store("other"));
        other.set("b", b"other").await.expect("set");
        store
            .set_many(pairs(&[("c", "3"), ("a", "1"), ("b", "2"), ("a", "1bis")]))
            .await
            .expect("set-many");
        assert_eq!(store.get("a").await.expect("get"), Some(b"1bis".to_vec()));
        // Only the keys present, each once, by key: not the order asked, no `None`.
        let answer = store
            .get_many(keys(&["c", "missing", "a", "b", "a"]))
            .await
            .expect("get-many");
        assert_eq!(answer, found(&[("a", "1bis"), ("b", "2"), ("c", "3")]));
        assert_eq!(
            store.get_many(keys(&["missing"])).await.expect("get-many"),
            vec![]
        );
        // Many keys written and asked in two unrelated orders: answered sorted by key.
        let many: Vec<String> = (0..40).map(|i| format!("k{:02}", (i * 17) % 40)).collect();
        store
            .set_many(
                many.iter()
                    .map(|k| (k.clone(), k.as_bytes().to_vec()))
                    .collect(),
            )
            .await
            .expect("set-many");
        let asked: Vec<String> = (0..40).map(|i| format!("k{:02}", (i * 23) % 40)).collect();
        let answer: Vec<String> = store
            .get_many(asked)
            .await
            .expect("get-many")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut sorted = many.clone();
        sorted.sort();
        assert_eq!(answer, sorted);
        store.delete_many(many).await.expect("delete-many");
        store
            .delete_many(keys(&["a", "c", "missing"]))
            .await
            .expect("delete-many");
        assert_eq!(store.get_keys().await.expect("keys"), keys(&["b"]));
        assert_eq!(other.get("b").await.expect("get"), Some(b"other".to_vec()));
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_set_many_is_one_transaction() {
        let path = temp_db("sqlite-tx");
        let file = SqliteFile::open(&path).expect("open");
        let store = StoreBackend::Sqlite(file.store("default"));
        // A failure part-way through the batch: the rows before it are rolled back.
        rusqlite::Connection::open(&path)
            .expect("second connection")
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON spin_key_value WHEN NEW.key = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .expect("trigger");
        let err = store
            .set_many(pairs(&[("first", "1"), ("bad", "2"), ("last", "3")]))
            .await
            .expect_err("the trigger refuses");
        assert!(
            matches!(&err, KvFailure::Error(KvError(m)) if m.contains("refused")),
            "{err:?}"
        );
        assert_eq!(store.get_keys().await.expect("keys"), Vec::<String>::new());
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_batch_traps_on_a_poisoned_label() {
        let file = SqliteFile::open(std::path::Path::new(":memory:")).expect("open");
        let store = StoreBackend::Sqlite(file.store("default"));
        store.set("n", b"five").await.expect("set");
        assert!(matches!(
            store.increment("n", 1).await,
            Err(KvFailure::Trap(_))
        ));
        assert!(matches!(
            store.get_many(keys(&["n"])).await,
            Err(KvFailure::Trap(_))
        ));
        assert!(matches!(
            store.set_many(pairs(&[("k", "v")])).await,
            Err(KvFailure::Trap(_))
        ));
        assert!(matches!(
            store.delete_many(keys(&["k"])).await,
            Err(KvFailure::Trap(_))
        ));
    }

    /// Against a real Redis when `CACHE_SYNC_TEST_REDIS_URL` is set; skipped otherwise.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_batch_is_spins_mset_del_and_keys_for_get_many() {
        let Ok(url) = std::env::var("CACHE_SYNC_TEST_REDIS_URL") else {
            eprintln!("skipped: CACHE_SYNC_TEST_REDIS_URL is not set");
            return;
        };
        let store = StoreBackend::Redis(RedisStore::new(&url).expect("url"));
        let p = format!("batch-{}-", std::process::id());
        let k = |s: &str| format!("{p}{s}");
        store
            .set_many(vec![
                (k("a"), b"1".to_vec()),
                (k("b"), b"2".to_vec()),
                (k("a"), b"1bis".to_vec()),
            ])
            .await
            .expect("set-many (MSET)");
        assert_eq!(
            store.get(&k("a")).await.expect("get"),
            Some(b"1bis".to_vec())
        );
        assert_eq!(store.get(&k("b")).await.expect("get"), Some(b"2".to_vec()));
        // Spin's get-many is `KEYS key…`: two keys are one argument too many …
        let err = store
            .get_many(vec![k("a"), k("b")])
            .await
            .expect_err("KEYS takes one pattern");
        assert!(
            matches!(&err, KvFailure::Error(KvError(m)) if m.contains("wrong number of arguments")),
            "{err:?}"
        );
        // … one absent key matches nothing …
        assert_eq!(
            store.get_many(vec![k("missing")]).await.expect("get-many"),
            vec![]
        );
        // … one present key is one name, which Spin cannot read as pairs (it panics) …
        assert!(
            matches!(store.get_many(vec![k("a")]).await, Err(KvFailure::Trap(_))),
            "one match"
        );
        // … and a pattern matching two names answers them as one (key, value) pair.
        let answer = store.get_many(vec![k("*")]).await.expect("get-many");
        assert_eq!(answer.len(), 1, "{answer:?}");
        let (first, second) = &answer[0];
        let mut names = vec![
            first.clone(),
            String::from_utf8(second.clone().expect("some")).expect("utf-8"),
        ];
        names.sort();
        assert_eq!(names, vec![k("a"), k("b")]);
        store
            .delete_many(vec![k("a"), k("b"), k("missing")])
            .await
            .expect("delete-many (DEL)");
        assert!(!store.exists(&k("a")).await.expect("exists"));
        assert!(!store.exists(&k("b")).await.expect("exists"));
    }
}
