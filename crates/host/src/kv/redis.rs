//! Redis key-value backend (`type = "redis"` in the runtime config).
//!
//! Keys and values are stored as they are (plain `SET`/`GET`, no prefix) and
//! `get_keys` is `KEYS *`, which is what Spin does; so a Redis database should hold one
//! store. The connection is made on first use, so the app starts while Redis is still
//! coming up, and a lost connection is re-established by the connection manager.
//!
//! Compare-and-swap is Spin's: each `cas` gets a connection of its own, `current` is
//! `WATCH` + `GET`, `swap` is `MULTI`/`SET`/`EXEC` then `UNWATCH`. Spin reads the `EXEC`
//! reply as `()`, which accepts the nil reply of an aborted transaction too, so a swap that
//! another writer aborted is reported as done (and nothing was written); this host does the
//! same, so a guest that trusts the report fails here as it would on Spin.

use std::sync::Arc;

use redis::AsyncCommands;
use tokio::sync::OnceCell;

use super::{KvError, KvFailure, ManyValues};

/// A store on a Redis server.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: Arc<OnceCell<redis::aio::ConnectionManager>>,
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://host:port/db`); nothing is connected yet.
    ///
    /// # Errors
    /// When the URL is not a valid Redis URL.
    pub fn new(url: &str) -> Result<RedisStore, KvError> {
        let client = redis::Client::open(url)
            .map_err(|e| KvError(format!("invalid redis url '{url}': {e}")))?;
        Ok(RedisStore {
            client,
            conn: Arc::new(OnceCell::new()),
        })
    }

    async fn conn(&self) -> Result<redis::aio::ConnectionManager, KvError> {
        self.conn
            .get_or_try_init(|| async {
                redis::aio::ConnectionManager::new(self.client.clone())
                    .await
                    .map_err(redis_err)
            })
            .await
            .cloned()
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.conn().await?.get(key).await.map_err(redis_err)
    }

    pub(super) async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.conn().await?.set(key, value).await.map_err(redis_err)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), KvError> {
        let _removed: i64 = self.conn().await?.del(key).await.map_err(redis_err)?;
        Ok(())
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.conn().await?.exists(key).await.map_err(redis_err)
    }

    pub(super) async fn get_keys(&self) -> Result<Vec<String>, KvError> {
        self.conn().await?.keys("*").await.map_err(redis_err)
    }

    /// `get-many` as Spin's Redis backend sends it: not `MGET` but `KEYS key…`, its reply read
    /// as flat (key, value) pairs. So two keys or more are Redis's "wrong number of
    /// arguments" (an error to the guest); one key is a glob pattern whose matches come back
    /// paired up, nothing when none match; an odd number of matches (one key that exists,
    /// most often) is where Spin's reply parsing panics (`unreachable!` in redis-rs), a trap
    /// here ([`KvFailure::Trap`]).
    pub(super) async fn get_many(&self, keys: Vec<String>) -> Result<ManyValues, KvFailure> {
        let reply: redis::Value = self.conn().await?.keys(keys).await.map_err(redis_err)?;
        if let redis::Value::Array(items) = &reply {
            if items.len() % 2 == 1 {
                return Err(KvFailure::Trap(format!(
                    "get-many on Redis: KEYS answered {} names, which Spin's reading of the reply \
                     (as key/value pairs) cannot take",
                    items.len()
                )));
            }
        }
        Ok(redis::from_owned_redis_value(reply).map_err(redis_err)?)
    }

    /// `set-many` as Spin's Redis backend does it: one `MSET` (atomic: all the pairs or none,
    /// a repeated key's last value wins).
    pub(super) async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.conn().await?.mset(&pairs).await.map_err(redis_err)
    }

    /// `delete-many` as Spin's Redis backend does it: one `DEL key…` (atomic).
    pub(super) async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        let _removed: i64 = self.conn().await?.del(keys).await.map_err(redis_err)?;
        Ok(())
    }

    pub(super) async fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.conn().await?.incr(key, delta).await.map_err(redis_err)
    }

    /// A connection for one compare-and-swap (a `WATCH` belongs to its connection).
    pub(super) async fn cas_connection(&self) -> Result<redis::aio::ConnectionManager, KvError> {
        redis::aio::ConnectionManager::new(self.client.clone())
            .await
            .map_err(redis_err)
    }
}

/// `current` of a compare-and-swap: `WATCH key`, then `GET key`.
pub(super) async fn cas_current(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
) -> Result<Option<Vec<u8>>, KvError> {
    redis::cmd("WATCH")
        .arg(key)
        .exec_async(conn)
        .await
        .map_err(redis_err)?;
    conn.get(key).await.map_err(redis_err)
}

/// `swap` of a compare-and-swap: `MULTI`, `SET`, `EXEC`, then `UNWATCH`. The `EXEC` reply is
/// read as `()`, as Spin does: an aborted transaction (nil reply) counts as done.
pub(super) async fn cas_swap(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    value: &[u8],
) -> Result<bool, KvError> {
    let done: Result<(), redis::RedisError> = redis::pipe()
        .atomic()
        .set(key, value)
        .query_async(conn)
        .await;
    redis::cmd("UNWATCH")
        .exec_async(conn)
        .await
        .map_err(redis_err)?;
    Ok(done.is_ok())
}

fn redis_err(e: redis::RedisError) -> KvError {
    KvError(format!("redis: {e}"))
}
