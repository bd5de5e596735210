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
//! The caller's `Authorization` header is forwarded unchanged on every item read made for it,
//! so the DB API decides what the caller may read; an anonymous caller's reads carry none.
//! The cache's own `db_api_token` is never lent to a caller: it is for the batch endpoint
//! only. [`Origin::authorize`] asks the DB API's authorization endpoint whether a caller may
//! make a write (see [`crate::auth`]).

use crate::contract::Access;
use crate::contract::{item_path, version_from_etag, AuthorizeRequest, AUTHORIZE_PATH};
use crate::key::CacheKey;
use crate::serve::cache_control::Directives;
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

/// One authorization question, ready to send: `POST {db_api_url}{path}` with
/// [`AuthorizeCall::headers`] and [`AuthorizeCall::body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeCall {
    /// The path below the DB API's base URL ([`AUTHORIZE_PATH`]).
    pub path: &'static str,
    /// The caller's own `Authorization`, if it sent one.
    pub authorization: Option<String>,
    /// The JSON body: an [`AuthorizeRequest`].
    pub body: Vec<u8>,
}

impl AuthorizeCall {
    /// May the caller that sent `authorization` make `access` to `key`?
    #[must_use]
    pub fn new(key: &CacheKey, access: Access, authorization: Option<&str>) -> AuthorizeCall {
        let request = AuthorizeRequest {
            ns: key.ns().to_string(),
            key: key.key().to_string(),
            op: access,
        };
        AuthorizeCall {
            path: AUTHORIZE_PATH,
            authorization: authorization.map(str::to_owned),
            body: serde_json::to_vec(&request).unwrap_or_default(),
        }
    }

    /// The request headers, lowercase.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ];
        if let Some(a) = &self.authorization {
            headers.push(("authorization", a.as_str()));
        }
        headers
    }
}

/// One item write passed through to the DB API ([`super::pass`]), ready to send:
/// `{method} {db_api_url}{path}` with [`ItemWrite::headers`] and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    /// `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path below the DB API's base URL.
    pub path: String,
    /// The caller's own `Authorization`, if it sent one.
    pub authorization: Option<String>,
    /// The `Idempotency-Key` that keeps a resent write single at the DB API.
    pub idempotency_key: String,
    /// The JSON value of a `PUT`; empty for a `DELETE`.
    pub body: Vec<u8>,
    /// `If-Match`: the ETag of the DB API's value this write was judged against.
    pub if_match: Option<String>,
    /// `If-None-Match`: `*` when it was judged against no value.
    pub if_none_match: Option<String>,
}

impl ItemWrite {
    /// The request headers, lowercase.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![
            ("accept", "application/json"),
            ("idempotency-key", self.idempotency_key.as_str()),
        ];
        if !self.body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        if let Some(a) = &self.authorization {
            headers.push(("authorization", a.as_str()));
        }
        if let Some(tag) = &self.if_match {
            headers.push(("if-match", tag.as_str()));
        }
        if let Some(tag) = &self.if_none_match {
            headers.push(("if-none-match", tag.as_str()));
        }
        headers
    }
}

/// What the DB API answered, unjudged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemAnswer {
    /// The status code.
    pub status: u16,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<String>,
    /// The `Vary` header, if any.
    pub vary: Option<String>,
    /// The `WWW-Authenticate` header, if any.
    pub www_authenticate: Option<String>,
    /// Whether the DB API answered a repeated `Idempotency-Key` with the first write's
    /// answer (`Idempotent-Replayed: true`).
    pub idempotent_replayed: bool,
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

impl Unanswered {
    /// The request's error: `504` for a timeout, `502` otherwise.
    #[must_use]
    pub fn into_error(self) -> RequestError {
        match self {
            Unanswered::TimedOut(reason) => RequestError::OriginTimeout(format!(
                "the DB API did not answer within origin_timeout ({reason})"
            )),
            Unanswered::Failed(reason) => {
                RequestError::Origin(format!("the DB API could not be reached: {reason}"))
            }
        }
    }
}

/// The main DB API's item and authorization endpoints, as the request paths see them.
pub trait Origin {
    /// Sends `read` and returns the answer.
    fn get_item(&mut self, read: &ItemRead) -> Result<ItemAnswer, Unanswered>;
    /// Sends `call` and returns the answer.
    fn authorize(&mut self, call: &AuthorizeCall) -> Result<ItemAnswer, Unanswered>;
    /// Sends `write` (a passed-through item write) and returns the answer.
    fn write_item(&mut self, write: &ItemWrite) -> Result<ItemAnswer, Unanswered>;
}

/// The read of `key` for a caller that sent `client_auth`, conditional on `etag` when given.
#[must_use]
pub fn item_read(key: &CacheKey, client_auth: Option<&str>, etag: Option<&str>) -> ItemRead {
    ItemRead {
        path: item_path(key.ns(), key.key()),
        authorization: client_auth.map(str::to_owned),
        if_none_match: etag.map(str::to_owned),
    }
}

/// An item read's answer, classified, with the caching directives that came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// What the answer says about the item.
    pub answer: OriginAnswer,
    /// Its `Cache-Control` and `Vary`.
    pub directives: Directives,
}

/// Classifies what [`Origin::get_item`] returned (the table in the module docs).
pub fn classify(result: Result<ItemAnswer, Unanswered>) -> Result<Fetched, RequestError> {
    let answer = result.map_err(Unanswered::into_error)?;
    let directives = Directives::parse(answer.cache_control.as_deref(), answer.vary.as_deref());
    let fetched = |answer| Ok(Fetched { answer, directives });
    match answer.status {
        200 => {
            if serde_json::from_slice::<serde_json::Value>(&answer.body).is_err() {
                return Err(RequestError::Origin(
                    "the DB API answered with invalid JSON".into(),
                ));
            }
            let version = answer.etag.as_deref().and_then(version_from_etag);
            fetched(OriginAnswer::Found {
                value: answer.body,
                etag: answer.etag,
                version,
            })
        }
        304 => fetched(OriginAnswer::NotModified),
        404 => fetched(OriginAnswer::NotFound),
        status @ (401 | 403) => Err(RequestError::OriginRefused {
            status,
            www_authenticate: answer.www_authenticate,
        }),
        s @ (408 | 504) => Err(RequestError::OriginTimeout(format!(
            "the DB API timed out ({s})"
        ))),
        s => Err(RequestError::Origin(format!("the DB API answered {s}"))),
    }
}
