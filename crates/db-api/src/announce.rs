//! Announcing changed items to the cache (`cache_sync_contract::invalidation`).
//!
//! A DB API with other writers than the cache tells the cache which items changed, so that
//! the cache's next read of each fetches it again instead of serving what it kept. This
//! reference API announces every item its own item routes change (`PUT` and `DELETE
//! /v1/items/{ns}/{key}`), not the writes that come from the cache's own batches: the cache
//! already holds those.
//!
//! The call is made before the item route answers, bounded by [`TIMEOUT`], so that a writer
//! that got its answer knows the cache was told (or that telling it failed: the TTL then
//! bounds how long the cache serves the old value). A failure never fails the write; it is
//! counted (`announcements_failed` in `/_stats`) and logged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_sync_contract::invalidation::{
    signature, Announcement, ChangedItem, INVALIDATE_PATH, SIGNATURE_HEADER,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Longest an announcement may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSettings {
    /// The cache's base URL (`http://host:port`); announcements go to its
    /// [`INVALIDATE_PATH`].
    pub cache_url: String,
    /// The secret both sides share (the cache's `invalidate_secret`).
    pub secret: String,
}

/// Sends announcements.
#[derive(Clone)]
pub struct Announcer {
    settings: AnnounceSettings,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("cache_url", &self.settings.cache_url)
            .finish_non_exhaustive()
    }
}

impl Announcer {
    /// An announcer for `settings`; the URL must be `http://` (the reference API speaks
    /// plain HTTP to a cache on the same network).
    pub fn new(settings: AnnounceSettings) -> Result<Announcer, String> {
        let url = settings.cache_url.trim_end_matches('/');
        if !url.starts_with("http://") || url.parse::<hyper::Uri>().is_err() {
            return Err(format!(
                "announce URL must be http://host:port, got {:?}",
                settings.cache_url
            ));
        }
        if settings.secret.len() < 16 {
            return Err("announce secret must be at least 16 characters".into());
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Announcer {
            settings: AnnounceSettings {
                cache_url: url.to_owned(),
                secret: settings.secret,
            },
            client,
        })
    }

    /// Tells the cache that `ns/key` changed; the error says why it was not told.
    pub async fn changed(&self, ns: &str, key: &str) -> Result<(), String> {
        let body = serde_json::to_vec(&Announcement {
            changed: vec![ChangedItem {
                ns: ns.to_owned(),
                key: key.to_owned(),
            }],
        })
        .map_err(|e| e.to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sig = signature(self.settings.secret.as_bytes(), now, &body);
        let request = hyper::Request::post(format!("{}{INVALIDATE_PATH}", self.settings.cache_url))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sig)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("cannot reach the cache: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!(
                    "the cache answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ))
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("the cache did not answer within {TIMEOUT:?}"))?
    }
}
