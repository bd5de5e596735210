//! Reading one item from the main DB API: the [`Origin`] trait and the rules around it.
//!
//! The component implements [`Origin::get_item`] with one outbound `GET`, bounded by
//! `origin_timeout`, and reports what came back without judging it; [`classify`] turns that
//! into an [`OriginAnswer`] or a [`RequestError`] (the batch side's twin is
//! [`crate::db::parse_batch_answer`]):
//!
//! | DB API | result |
//! |---|---|
//! | `200` with JSON | `Found` (version from the `"v{version}"` ETag) |
//! | `200` with anything else | `502 origin_error` |
//! | `304` | `NotModified` |
//! | `404` | `NotFound` (stored as a negative entry) |
//! | `401`, `403` | passed through as `origin_refused`, never cached |
//! | `408`, `504`, no answer in time | `504 origin_timeout` |
//! | any other status, no answer at all | `502 origin_error` |
//!
//! # Authorization
//!
//! The client's `Authorization` header is forwarded unchanged on every origin call, so the
//! DB API decides what the caller may read. When the client sent none and `db_api_token` is
//! set, `Bearer {db_api_token}` is sent instead: the token is the gateway's own identity for
//! anonymous reads, and it never overrides a caller's credentials. Entries are shared between
//! callers for now; the entry key has a scope slot (`CacheKey::scope`, `c:{ns}#{scope}:{key}`)
//! for caching per principal.

use crate::config::CacheConfig;
use crate::contract::{item_path, version_from_etag};
use crate::key::CacheKey;
use crate::serve::read::OriginAnswer;

use super::reply::RequestError;

/// One item read, ready to send: `GET {db_api_url}{path}` with [`ItemRead::headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRead {
    /// The path below the DB API's base URL.
    pub path: String,
    /// The `Authorization` to send, if any.
    pub authorization: Option<String>,
    /// The ETag of a revalidation (`If-None-Match`).
    pub if_none_match: Option<String>,
}

impl ItemRead {
    /// The request headers, lowercase.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![("accept", "application/json")];
        if let Some(a) = &self.authorization {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(e) = &self.if_none_match {
            headers.push(("if-none-match", e.as_str()));
        }
        headers
    }
}

/// What the DB API answered, unjudged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAnswer {
    /// The status code.
    pub status: u16,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswered {
    /// No answer within `origin_timeout` (connect, first byte or between bytes).
    TimedOut(String),
    /// Anything else: refused, reset, unreadable.
    Failed(String),
}

/// The main DB API's item endpoint, as the request paths see it.
pub trait Origin {
    /// Sends `read` and returns the answer.
    fn get_item(&mut self, read: &ItemRead) -> Result<ItemAnswer, Unanswered>;
}

/// The `Authorization` to send for a client that sent `client_auth`.
#[must_use]
pub fn authorization(cfg: &CacheConfig, client_auth: Option<&str>) -> Option<String> {
    client_auth
        .map(str::to_owned)
        .or_else(|| cfg.db_api_token.as_ref().map(|t| format!("Bearer {t}")))
}

/// The read of `key` for a client that sent `client_auth`, conditional on `etag` when given.
#[must_use]
pub fn item_read(
    cfg: &CacheConfig,
    key: &CacheKey,
    client_auth: Option<&str>,
    etag: Option<&str>,
) -> ItemRead {
    ItemRead {
        path: item_path(key.ns(), key.key()),
        authorization: authorization(cfg, client_auth),
        if_none_match: etag.map(str::to_owned),
    }
}

/// Classifies what [`Origin::get_item`] returned (the table in the module docs).
pub fn classify(result: Result<ItemAnswer, Unanswered>) -> Result<OriginAnswer, RequestError> {
    let answer = result.map_err(|e| match e {
        Unanswered::TimedOut(reason) => RequestError::OriginTimeout(format!(
            "the DB API did not answer within origin_timeout ({reason})"
        )),
        Unanswered::Failed(reason) => {
            RequestError::Origin(format!("the DB API could not be reached: {reason}"))
        }
    })?;
    match answer.status {
        200 => {
            if serde_json::from_slice::<serde_json::Value>(&answer.body).is_err() {
                return Err(RequestError::Origin(
                    "the DB API answered with invalid JSON".into(),
                ));
            }
            let version = answer.etag.as_deref().and_then(version_from_etag);
            Ok(OriginAnswer::Found {
                value: answer.body,
                etag: answer.etag,
                version,
            })
        }
        304 => Ok(OriginAnswer::NotModified),
        404 => Ok(OriginAnswer::NotFound),
        s @ (401 | 403) => Err(RequestError::OriginRefused(s)),
        s @ (408 | 504) => Err(RequestError::OriginTimeout(format!(
            "the DB API timed out ({s})"
        ))),
        s => Err(RequestError::Origin(format!("the DB API answered {s}"))),
    }
}
