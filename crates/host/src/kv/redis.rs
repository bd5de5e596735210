//! Redis key-value backend (`type = "redis"` in the runtime config).
//!
//! Keys and values are stored as they are (plain `SET`/`GET`, no prefix) and
//! `get_keys` is `KEYS *`, which is what Spin does; so a Redis database should hold one
//! store. The connection is made on first use, so the app starts while Redis is still
//! coming up, and a lost connection is re-established by the connection manager.

use std::sync::Arc;

use redis::AsyncCommands;
use tokio::sync::OnceCell;

use super::KvError;

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
}

fn redis_err(e: redis::RedisError) -> KvError {
    KvError(format!("redis: {e}"))
}
