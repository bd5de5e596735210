//! Replies as data, and the one table from request errors to statuses.
//!
//! A [`Reply`] is everything the HTTP layer sends: status, headers, body. [`RequestError`]
//! covers every way a request to the gateway's routes ends in an error (item routes,
//! `/healthz`, `/metrics`, `/admin/*`);
//! [`RequestError::reply`] is the only place such an error becomes a status, a code and a
//! JSON body `{"error": "<code>", "message": "…"}`.

use std::time::Duration;

use cache_sync_contract::precondition::list_matches_weak;
use serde_json::json;

use crate::config::ConfigError;
use crate::entry::{Audience, Entry};
use crate::key::KeyError;
use crate::limit::Usage;
use crate::serve::policy;
use crate::stamp::Stamp;
use crate::store::StoreError;
use crate::time::UnixMillis;

/// How the answer relates to the cache, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from a fresh entry (or one a concurrent request just filled).
    Hit,
    /// Fetched from the origin.
    Miss,
    /// Served from a stale entry (revalidating, or because the origin failed).
    Stale,
    /// Served from a negative entry.
    Negative,
}

impl CacheStatus {
    /// The `X-Cache` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Negative => "NEGATIVE",
        }
    }
}

/// An HTTP answer as data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// For reads served from the cache or the origin: how (also in `X-Cache`).
    pub cache: Option<CacheStatus>,
    /// Headers, lowercase names.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// For error replies: the code and message (counted and logged by the caller).
    pub error: Option<(&'static str, String)>,
}

impl Reply {
    /// The value of header `name`, if set.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A JSON reply.
    #[must_use]
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.into(),
            ..Reply::default()
        }
    }
}

/// Everything that ends a request with an error status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
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
    /// The DB API refused the caller: its 401/403 passed through with its
    /// `WWW-Authenticate`, never cached.
    OriginRefused {
        /// 401 or 403.
        status: u16,
        /// The DB API's challenge, if it sent one.
        www_authenticate: Option<String>,
    },
    /// 401: the caller's credentials do not verify (JWT mode), or the rules need a signed-in
    /// caller and there is none.
    Unauthenticated(String),
    /// 403: the rules refuse this caller this access (JWT mode).
    Forbidden(String),
    /// 503 with `Retry-After`: the caller's access could not be checked (the DB API did not
    /// answer the check); nothing was served or buffered.
    AccessUnchecked(String),
    /// 500: the configuration is invalid.
    Config(ConfigError),
    /// 500 (or 503 when full): the key-value store failed.
    Store(StoreError),
    /// 500: an entry or record could not be encoded.
    Internal(String),
    /// 403: the admin routes are closed (`admin_token` unset).
    AdminDisabled,
    /// 401 with `WWW-Authenticate: Bearer`: no or a wrong admin token.
    Unauthorized,
    /// 401: a change announcement whose signature is missing, wrong or too old.
    BadSignature(String),
    /// 400: an admin route's stamp does not parse.
    BadStamp(String),
    /// 404: no dead letter with that stamp.
    NoDeadLetter(String),
    /// 409: a dead letter holds only unreadable text.
    NothingToResend(String),
    /// 500: a stored record does not decode.
    RecordUnreadable(String),
    /// 500: the DB API client cannot be built from the configuration.
    DbConfig(String),
    /// 503: the store failed during an admin operation.
    StoreUnavailable(StoreError),
    /// 429 with `Retry-After` and the RateLimit headers: the caller spent its budget for
    /// this window ([`crate::limit`]).
    RateLimited(Usage),
    /// 422: an `Idempotency-Key` already used for a different request
    /// ([`crate::serve::idempotency`]).
    IdempotencyKeyReused,
    /// 409 with `Retry-After`: a request with this `Idempotency-Key` is still running.
    IdempotencyInProgress,
    /// 400: a credentialed caller sent an `Idempotency-Key`, and without `auth_key` nothing
    /// can be kept per caller.
    IdempotencyUnavailable,
    /// 409: a rollout change that raises the rollout while the gate refuses
    /// ([`crate::rollout::gate`]); nothing changed.
    RolloutGated(String),
    /// 409: the rollout record changed while this change was being made; nothing changed.
    RolloutConflict,
    /// 409: a rollout change while `rollout_overrides` is off; nothing changed.
    RolloutFixed,
    /// 409 with `Retry-After`: a write that would go to the DB API directly while buffered
    /// writes of the key are not yet delivered (it would be overtaken by them).
    WritesPending,
    /// 409: a passed-through write that reads first (a `PATCH`, or one with a precondition)
    /// found the DB API's item changed between its read and its write, every time it tried
    /// ([`crate::serve::pass`]); nothing was written.
    ChangedConcurrently,
    /// 400: a long-poll's `wait` is not a whole number of seconds within the bound
    /// ([`crate::serve::watch`]).
    BadWait(String),
}

impl From<StoreError> for RequestError {
    fn from(e: StoreError) -> Self {
        RequestError::Store(e)
    }
}

impl From<KeyError> for RequestError {
    fn from(e: KeyError) -> Self {
        RequestError::BadKey(e)
    }
}

impl From<ConfigError> for RequestError {
    fn from(e: ConfigError) -> Self {
        RequestError::Config(e)
    }
}

/// Every code an error reply can carry ([`RequestError::parts`]), so that `/metrics` reads
/// the error counters by name instead of listing the store for them.
pub const ERROR_CODES: [&str; 37] = [
    "access_unchecked",
    "admin_disabled",
    "backpressure",
    "bad_json",
    "bad_key",
    "bad_request",
    "bad_signature",
    "bad_stamp",
    "bad_wait",
    "changed_concurrently",
    "config_invalid",
    "forbidden",
    "idempotency_in_progress",
    "idempotency_key_reused",
    "idempotency_unavailable",
    "internal",
    "length_required",
    "method_not_allowed",
    "not_found",
    "nothing_to_resend",
    "origin_error",
    "origin_refused",
    "origin_timeout",
    "precondition_failed",
    "rate_limited",
    "record_unreadable",
    "rollout_conflict",
    "rollout_fixed",
    "rollout_gated",
    "store_error",
    "store_full",
    "store_unavailable",
    "too_large",
    "unauthenticated",
    "unauthorized",
    "unsupported_media_type",
    "writes_pending",
];

impl RequestError {
    /// Status, code and message: the one table. A new code goes into [`ERROR_CODES`] too.
    #[must_use]
    pub fn parts(&self) -> (u16, &'static str, String) {
        match self {
            RequestError::BadKey(e) => (400, "bad_key", e.to_string()),
            RequestError::BadJson(m) => (400, "bad_json", format!("body is not valid JSON: {m}")),
            RequestError::BadRequest(m) => (400, "bad_request", m.clone()),
            RequestError::NotFound => (404, "not_found", "no such item".to_owned()),
            RequestError::NoRoute => (404, "not_found", "no such route".to_owned()),
            RequestError::MethodNotAllowed(allow) => (
                405,
                "method_not_allowed",
                format!("allowed methods: {allow}"),
            ),
            RequestError::LengthRequired => (
                411,
                "length_required",
                "a write needs a Content-Length".to_owned(),
            ),
            RequestError::TooLarge(m) => (413, "too_large", m.clone()),
            RequestError::PreconditionFailed => (
                412,
                "precondition_failed",
                "If-Match does not match the current ETag, or If-None-Match does".to_owned(),
            ),
            RequestError::UnsupportedMediaType(accepted) => (
                415,
                "unsupported_media_type",
                format!("this write must be sent as {accepted}"),
            ),
            RequestError::Backpressure { reason, .. } => (
                503,
                "backpressure",
                format!("the write buffer is full ({reason}); retry later"),
            ),
            RequestError::Origin(m) => (502, "origin_error", m.clone()),
            RequestError::OriginTimeout(m) => (504, "origin_timeout", m.clone()),
            RequestError::OriginRefused { status, .. } => (
                *status,
                "origin_refused",
                format!("the DB API refused the request with {status}"),
            ),
            RequestError::Unauthenticated(m) => (401, "unauthenticated", m.clone()),
            RequestError::Forbidden(m) => (403, "forbidden", m.clone()),
            RequestError::AccessUnchecked(m) => (
                503,
                "access_unchecked",
                format!("the caller's access could not be checked: {m}"),
            ),
            RequestError::Config(e) => (500, "config_invalid", e.to_string()),
            RequestError::Store(StoreError::Full) => {
                (503, "store_full", "the key-value store is full".to_owned())
            }
            RequestError::Store(e) => (500, "store_error", e.to_string()),
            RequestError::Internal(m) => (500, "internal", m.clone()),
            RequestError::AdminDisabled => (
                403,
                "admin_disabled",
                "admin routes are disabled: set the admin_token variable".to_owned(),
            ),
            RequestError::Unauthorized => (
                401,
                "unauthorized",
                "missing or wrong Authorization: Bearer token".to_owned(),
            ),
            RequestError::BadSignature(m) => (401, "bad_signature", m.clone()),
            RequestError::BadStamp(m) => (400, "bad_stamp", m.clone()),
            RequestError::NoDeadLetter(m) => (404, "not_found", m.clone()),
            RequestError::NothingToResend(m) => (409, "nothing_to_resend", m.clone()),
            RequestError::RecordUnreadable(m) => (500, "record_unreadable", m.clone()),
            RequestError::DbConfig(m) => (500, "config_invalid", m.clone()),
            RequestError::StoreUnavailable(e) => (503, "store_unavailable", e.to_string()),
            RequestError::RateLimited(u) => (
                429,
                "rate_limited",
                format!(
                    "too many {} requests: the budget is {}; retry in {} s",
                    u.class.as_str(),
                    u.budget,
                    u.reset_secs
                ),
            ),
            RequestError::IdempotencyKeyReused => (
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; send a new key".to_owned(),
            ),
            RequestError::IdempotencyInProgress => (
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed; retry later"
                    .to_owned(),
            ),
            RequestError::IdempotencyUnavailable => (
                400,
                "idempotency_unavailable",
                "Idempotency-Key from a caller with credentials needs the auth_key variable set"
                    .to_owned(),
            ),
            RequestError::BadWait(m) => (400, "bad_wait", m.clone()),
            RequestError::RolloutGated(m) => (409, "rollout_gated", m.clone()),
            RequestError::RolloutConflict => (
                409,
                "rollout_conflict",
                "the rollout was changed meanwhile; read it again and retry".to_owned(),
            ),
            RequestError::RolloutFixed => (
                409,
                "rollout_fixed",
                "rollout_overrides is false: the rollout is the rollout_* variables; change \
                 them (or set rollout_overrides to true) and redeploy"
                    .to_owned(),
            ),
            RequestError::ChangedConcurrently => (
                409,
                "changed_concurrently",
                "the item kept changing at the DB API between this write's read and its write; \
                 nothing was written: retry"
                    .to_owned(),
            ),
            RequestError::WritesPending => (
                409,
                "writes_pending",
                "buffered writes of this key are not yet delivered to the DB API; a write \
                 sent to it directly now would be overtaken by them: retry after the next flush"
                    .to_owned(),
            ),
        }
    }

    /// The error reply: JSON body, `Cache-Control: no-store`, and `Allow`, `Retry-After` or
    /// the RateLimit headers where the error calls for them.
    #[must_use]
    pub fn reply(&self) -> Reply {
        let (status, code, message) = self.parts();
        let body = json!({ "error": code, "message": message });
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ];
        match self {
            RequestError::MethodNotAllowed(allow) => headers.push(("allow", (*allow).to_owned())),
            RequestError::Backpressure { retry_after, .. } => {
                headers.push(("retry-after", retry_after.as_secs().max(1).to_string()));
            }
            RequestError::Store(StoreError::Full) => headers.push(("retry-after", "1".to_owned())),
            RequestError::Unauthorized => headers.push(("www-authenticate", "Bearer".to_owned())),
            RequestError::OriginRefused {
                www_authenticate: Some(challenge),
                ..
            } => headers.push(("www-authenticate", challenge.clone())),
            RequestError::Unauthenticated(_) => headers.push((
                "www-authenticate",
                "Bearer error=\"invalid_token\"".to_owned(),
            )),
            RequestError::Forbidden(_) => headers.push((
                "www-authenticate",
                "Bearer error=\"insufficient_scope\"".to_owned(),
            )),
            RequestError::AccessUnchecked(_) | RequestError::IdempotencyInProgress => {
                headers.push(("retry-after", "1".to_owned()));
            }
            RequestError::WritesPending => {
                headers.push(("retry-after", "60".to_owned()));
            }
            // Retry-After is the end of the window, the same instant as the RateLimit `t`
            // (draft section 6: not earlier than the end of the effective window).
            RequestError::RateLimited(usage) => {
                headers.push(("retry-after", usage.reset_secs.to_string()));
                headers.extend(usage.headers());
            }
            _ => {}
        }
        Reply {
            status,
            cache: None,
            headers,
            body: body.to_string().into_bytes(),
            error: Some((code, message)),
        }
    }
}

/// Serves an entry: the value (200), 304 when `if_none_match` matches, or 404 for a
/// negative entry or tombstone; with `X-Cache`, `ETag`, `Age`, `Cache-Control` and, while
/// the entry holds unflushed writes, `X-Sync: pending` and `X-Dirty-Age`.
#[must_use]
pub fn entry(
    entry: &Entry,
    status: CacheStatus,
    if_none_match: Option<&str>,
    now: UnixMillis,
) -> Reply {
    let mut headers = vec![
        ("x-cache", status.as_str().to_owned()),
        ("age", policy::age_secs(entry, now).to_string()),
        ("cache-control", downstream_cache_control(entry, now)),
    ];
    if let Some(d) = entry.dirty {
        headers.push(("x-sync", "pending".to_owned()));
        headers.push((
            "x-dirty-age",
            now.saturating_since(d.since).as_secs().to_string(),
        ));
    }
    let reply = |status_code, headers, body| Reply {
        status: status_code,
        cache: Some(status),
        headers,
        body,
        error: None,
    };
    let Some(body) = entry.body() else {
        let body = json!({ "error": "not_found", "message": "no such item" });
        headers.push(("content-type", "application/json".to_owned()));
        return reply(404, headers, body.to_string().into_bytes());
    };
    if let Some(etag) = &entry.etag {
        headers.push(("etag", etag.clone()));
        if if_none_match.is_some_and(|inm| list_matches_weak(inm, etag)) {
            return reply(304, headers, Vec::new());
        }
    }
    headers.push(("content-type", "application/json".to_owned()));
    reply(200, headers, body.to_vec())
}

/// The `Cache-Control` sent with an entry: what [`policy::cache_control`] says, marked
/// `private` unless any caller may be served the entry, so that no cache downstream shares
/// what this one keeps per caller or behind a grant.
fn downstream_cache_control(entry: &Entry, now: UnixMillis) -> String {
    let cc = policy::cache_control(entry, now).render();
    if entry.audience == Audience::Anyone {
        cc
    } else {
        format!("private, {cc}")
    }
}

/// Proof that a write's buffer record is stored: only `serve::store_record` makes one,
/// and [`accepted`] needs one, so no `202` can be built before the record is durable.
#[derive(Debug)]
pub struct Buffered {
    pub(super) stamp: Stamp,
}

/// `202 Accepted` for a buffered write: its ETag (`"w{stamp}"`) and `X-Sync: pending`.
#[must_use]
pub fn accepted(buffered: Buffered) -> Reply {
    accepted_etag(write_etag(buffered.stamp))
}

/// The ETag of the write stamped `stamp`: `"w{stamp}"`.
#[must_use]
pub fn write_etag(stamp: Stamp) -> String {
    format!("\"w{stamp}\"")
}

/// The `202` of a buffered write whose ETag is `etag` (a first answer, or its replay).
pub(crate) fn accepted_etag(etag: String) -> Reply {
    let body = json!({ "status": "accepted", "etag": etag });
    let mut reply = Reply::json(202, body.to_string());
    reply.headers.push(("etag", etag));
    reply.headers.push(("x-sync", "pending".to_owned()));
    reply
}

#[cfg(test)]
mod error_code_tests {
    use super::ERROR_CODES;

    /// Every `(status, "code"` pair written in `parts` is listed, and nothing else is.
    #[test]
    fn every_error_code_is_listed() {
        let source = include_str!("reply.rs");
        let start = source.find("pub fn parts(&self)").unwrap();
        let end = source.find("pub fn reply(&self)").unwrap();
        let body = &source[start..end];
        let mut found: Vec<&str> = Vec::new();
        for (i, _) in body.match_indices('"') {
            // A code follows a status (`400,` or `*status,`) and whitespace.
            let before = body[..i].trim_end();
            let is_status = before.strip_suffix(',').is_some_and(|b| {
                b.ends_with("*status")
                    || b.len() >= 3 && b[b.len() - 3..].bytes().all(|c| c.is_ascii_digit())
            });
            if !is_status {
                continue;
            }
            let rest = &body[i + 1..];
            let code = &rest[..rest.find('"').unwrap()];
            if !found.contains(&code) {
                found.push(code);
            }
        }
        found.sort_unstable();
        assert_eq!(found, ERROR_CODES);
    }
}
