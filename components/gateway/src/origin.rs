//! Reading one item from the main DB API.
//!
//! # Authorization
//!
//! The client's `Authorization` header is forwarded unchanged on every origin call, so the
//! DB API decides what the caller may read. When the client sent none and `db_api_token` is
//! set, `Bearer {db_api_token}` is sent instead: the token is the gateway's own identity for
//! anonymous reads, and it never overrides a caller's credentials. A 401/403 is passed back
//! to the client and never cached. Entries are shared between callers for now; the entry key
//! has a scope slot (`CacheKey::scope`, `c:{ns}#{scope}:{key}`) for caching per principal.

use cache_core::config::CacheConfig;
use cache_core::contract::ITEMS_PATH;
use cache_core::key::CacheKey;
use cache_core::read::Origin;
use spin_adapters::db::HttpDb;
use spin_adapters::env;

use crate::metrics;
use crate::respond::Error;

/// The `Authorization` to send for a client that sent `client_auth`.
pub fn authorization(cfg: &CacheConfig, client_auth: Option<&str>) -> Option<String> {
    client_auth
        .map(str::to_owned)
        .or_else(|| cfg.db_api_token.as_ref().map(|t| format!("Bearer {t}")))
}

/// `GET {db_api_url}/v1/items/{ns}/{key}`, conditional on `etag` when given.
pub async fn fetch(
    cfg: &CacheConfig,
    key: &CacheKey,
    auth: Option<&str>,
    etag: Option<&str>,
) -> Result<Origin, Error> {
    let path = format!("{ITEMS_PATH}/{}/{}", key.ns(), key.key().to_path_segment());
    let db = HttpDb::new(&cfg.db_api_url, None, cfg.origin_timeout)
        .map_err(|e| Error::Origin(e.to_string()))?;
    let authorization = authorization(cfg, auth);
    let mut headers = vec![("accept", "application/json")];
    if let Some(a) = authorization.as_deref() {
        headers.push(("authorization", a));
    }
    if let Some(e) = etag {
        headers.push(("if-none-match", e));
    }
    let started = env::now();
    let result = db.get(&path, &headers);
    metrics::inc(metrics::ORIGIN_FETCHES);
    metrics::add(
        metrics::ORIGIN_FETCH_MS,
        env::now().0.saturating_sub(started.0),
    );
    let answer = result.map_err(|e| {
        if e.timed_out {
            Error::OriginTimeout(format!(
                "the DB API did not answer within origin_timeout ({})",
                e.reason
            ))
        } else {
            Error::Origin(format!("the DB API could not be reached: {}", e.reason))
        }
    })?;
    let status = answer.status;
    match status {
        200 => {
            let value = answer.body;
            if serde_json::from_slice::<serde_json::Value>(&value).is_err() {
                return Err(Error::Origin(
                    "the DB API answered with invalid JSON".into(),
                ));
            }
            let etag = answer.etag;
            let version = etag.as_deref().and_then(version_of);
            Ok(Origin::Found {
                value,
                etag,
                version,
            })
        }
        304 => Ok(Origin::NotModified),
        404 => Ok(Origin::NotFound),
        401 | 403 => Err(Error::OriginRefused(status)),
        408 | 504 => Err(Error::OriginTimeout(format!(
            "the DB API timed out ({status})"
        ))),
        s => Err(Error::Origin(format!("the DB API answered {s}"))),
    }
}

/// The version in the reference DB API's `"v{version}"` ETags.
fn version_of(etag: &str) -> Option<u64> {
    etag.trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('v')?
        .parse()
        .ok()
}
