//! Every response the gateway builds, and the one place errors become statuses.
//!
//! Handlers return [`Error`] for anything that is not a success; [`error`] turns it into the
//! JSON body `{"error": "<code>", "message": "…"}` with the right status and headers, and
//! counts it by code for `/metrics`. Keeping the mapping here keeps statuses consistent
//! across the read and write paths.

use std::time::Duration;

use cache_core::config::ConfigError;
use cache_core::entry::Entry;
use cache_core::key::KeyError;
use cache_core::policy;
use cache_core::store::StoreError;
use cache_core::time::UnixMillis;
use spin_sdk::http::Response;

use crate::metrics;

/// Everything that ends a request with an error status.
#[derive(Debug)]
pub enum Error {
    /// 400: a bad namespace or key.
    BadKey(KeyError),
    /// 400: the body is not JSON.
    BadJson(String),
    /// 400: anything else malformed.
    BadRequest(String),
    /// 404: no such item (the origin said so, or it was deleted).
    NotFound,
    /// 404: no such route.
    NoRoute,
    /// 405, with the allowed methods.
    MethodNotAllowed(&'static str),
    /// 411: a write without `Content-Length`.
    LengthRequired,
    /// 413: the value is too large.
    TooLarge(String),
    /// 412: `If-Match` did not match, or `If-None-Match` did.
    PreconditionFailed,
    /// 415: a write whose body is not declared JSON (or, for `PATCH`, a merge patch); the
    /// media types accepted.
    UnsupportedMediaType(&'static str),
    /// 503 with `Retry-After`: the write buffer is full.
    Backpressure {
        /// Which bound.
        reason: &'static str,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// 502: the DB API failed or answered something unusable.
    Origin(String),
    /// 504: the DB API timed out.
    OriginTimeout(String),
    /// The DB API refused the caller (401/403 are passed through, never cached).
    OriginRefused(u16),
    /// 500: the configuration is invalid.
    Config(ConfigError),
    /// 500 (or 503 when full): the key-value store failed.
    Store(StoreError),
    /// 500: an entry or record could not be encoded.
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::BadKey(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// What a handler returns.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn parts(&self) -> (u16, &'static str, String) {
        match self {
            Error::BadKey(e) => (400, "bad_key", e.to_string()),
            Error::BadJson(m) => (400, "bad_json", format!("body is not valid JSON: {m}")),
            Error::BadRequest(m) => (400, "bad_request", m.clone()),
            Error::NotFound => (404, "not_found", "no such item".to_owned()),
            Error::NoRoute => (404, "not_found", "no such route".to_owned()),
            Error::MethodNotAllowed(allow) => (
                405,
                "method_not_allowed",
                format!("allowed methods: {allow}"),
            ),
            Error::LengthRequired => (
                411,
                "length_required",
                "a write needs a Content-Length".to_owned(),
            ),
            Error::TooLarge(m) => (413, "too_large", m.clone()),
            Error::PreconditionFailed => (
                412,
                "precondition_failed",
                "If-Match does not match the current ETag, or If-None-Match does".to_owned(),
            ),
            Error::UnsupportedMediaType(accepted) => (
                415,
                "unsupported_media_type",
                format!("this write must be sent as {accepted}"),
            ),
            Error::Backpressure { reason, .. } => (
                503,
                "backpressure",
                format!("the write buffer is full ({reason}); retry later"),
            ),
            Error::Origin(m) => (502, "origin_error", m.clone()),
            Error::OriginTimeout(m) => (504, "origin_timeout", m.clone()),
            Error::OriginRefused(s) => (
                *s,
                "origin_refused",
                format!("the DB API refused the request with {s}"),
            ),
            Error::Config(e) => (500, "config_invalid", e.to_string()),
            Error::Store(StoreError::Full) => {
                (503, "store_full", "the key-value store is full".to_owned())
            }
            Error::Store(e) => (500, "store_error", e.to_string()),
            Error::Internal(m) => (500, "internal", m.clone()),
        }
    }
}

/// The error response for `e`; also counts it and logs server-side failures.
pub fn error(e: &Error) -> Response {
    let (status, code, message) = e.parts();
    metrics::count_error(code);
    if status >= 500 {
        eprintln!("gateway: {status} {code}: {message}");
    }
    let body = serde_json::json!({ "error": code, "message": message });
    let mut b = Response::builder();
    b.status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store");
    match e {
        Error::MethodNotAllowed(allow) => {
            b.header("allow", *allow);
        }
        Error::Backpressure { retry_after, .. } => {
            b.header("retry-after", retry_after.as_secs().max(1).to_string());
        }
        Error::Store(StoreError::Full) => {
            b.header("retry-after", "1");
        }
        _ => {}
    }
    b.body(body.to_string()).build()
}

/// A JSON response.
pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .build()
}

/// How the answer relates to the cache, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from a fresh entry.
    Hit,
    /// Fetched from the origin.
    Miss,
    /// Served from a stale entry (revalidating, or because the origin failed).
    Stale,
    /// Served from a negative entry.
    Negative,
}

impl CacheStatus {
    fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Negative => "NEGATIVE",
        }
    }
}

/// Serves an entry: the value (200), 304 when `if_none_match` matches, or 404 for a
/// negative entry or tombstone; with `X-Cache`, `ETag`, `Age`, `Cache-Control` and, while
/// the entry holds unflushed writes, `X-Sync: pending` and `X-Dirty-Age`.
pub fn entry(
    entry: &Entry,
    status: CacheStatus,
    if_none_match: Option<&str>,
    now: UnixMillis,
) -> Response {
    let mut b = Response::builder();
    b.header("x-cache", status.as_str())
        .header("age", policy::age_secs(entry, now).to_string())
        .header("cache-control", policy::cache_control(entry, now).render());
    if let Some(d) = entry.dirty {
        b.header("x-sync", "pending").header(
            "x-dirty-age",
            now.saturating_since(d.since).as_secs().to_string(),
        );
    }
    let Some(body) = entry.body() else {
        let body = serde_json::json!({ "error": "not_found", "message": "no such item" });
        return b
            .status(404)
            .header("content-type", "application/json")
            .body(body.to_string())
            .build();
    };
    if let Some(etag) = &entry.etag {
        b.header("etag", etag.as_str());
        if if_none_match.is_some_and(|inm| etag_list_matches(inm, etag)) {
            return b.status(304).body(Vec::new()).build();
        }
    }
    b.status(200)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .build()
}

/// Whether a comma-separated `If-None-Match` list names `etag` (or is `*`).
/// Weak comparison: `W/` prefixes are ignored.
pub fn etag_list_matches(list: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = strip(etag);
    list.split(',').any(|t| t.trim() == "*" || strip(t) == want)
}

/// Whether a comma-separated `If-Match` list names `etag` (or is `*`).
/// Strong comparison: a weak tag on either side never matches.
pub fn etag_list_matches_strong(list: &str, etag: &str) -> bool {
    let want = etag.trim();
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || (t == want && !want.starts_with("W/")))
}
