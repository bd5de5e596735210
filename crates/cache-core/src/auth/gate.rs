//! The access checks a request passes before anything is served or buffered.
//!
//! - [`identify`]: who the caller is. In `jwt` mode a bearer JWT must verify; otherwise the
//!   `Authorization` header is taken as it came, to be judged by the origin.
//! - [`check_rules`]: in `jwt` mode, the per-namespace rules decide every read and write
//!   up front, with no origin call. In the other modes there are no rules of the cache's own.
//! - [`authorize_write`]: may the caller write the item? In `origin` and `grant` mode the
//!   DB API's authorization endpoint decides, asked with the caller's own `Authorization`;
//!   an allowance is kept for `grant_ttl` ([`crate::auth::grant`]). The principal it names is
//!   what the buffer record keeps and the flush sends as `on_behalf_of`.
//! - [`check_read_grant`]: may the caller be served a shared entry that needs a grant
//!   ([`Audience::Granted`](crate::entry::Audience::Granted))? A conditional `GET` of the
//!   item with the caller's credentials asks the DB API (`304`, `200` or `404`: yes; `401`,
//!   `403`: no, passed through); a yes is kept for `grant_ttl`.
//!
//! When the DB API cannot be asked (timeout, 5xx, 429), the answer is `503`
//! `access_unchecked` with `Retry-After`: nothing is served or buffered on a guess.

use crate::auth::caller::Caller;
use crate::auth::grant;
use crate::auth::rules::RuleDecision;
use crate::config::{AuthMode, CacheConfig};
use crate::contract::{Access, AuthorizeResponse, MAX_PRINCIPAL_BYTES};
use crate::key::CacheKey;
use crate::serve::origin::{item_read, AuthorizeCall, ItemAnswer, Origin, Unanswered};
use crate::serve::reply::RequestError;
use crate::store::KvStore;
use crate::time::UnixMillis;

/// The principal of an anonymous caller that the rules (JWT mode) let write.
pub const ANONYMOUS: &str = "anonymous";

/// Who sent a request with this `Authorization` header, at `now`.
pub fn identify(
    cfg: &CacheConfig,
    authorization: Option<&str>,
    now: UnixMillis,
) -> Result<Caller, RequestError> {
    let caller = Caller::from_header(authorization);
    match cfg.auth_mode {
        AuthMode::Origin | AuthMode::Grant => Ok(caller),
        AuthMode::Jwt => jwt_subject(cfg, &caller, now).map(|sub| match sub {
            Some(sub) => caller.verified_as(sub),
            None => caller,
        }),
    }
}

/// In `jwt` mode, whether the rules let the caller make `access` to `key`.
pub fn check_rules(
    cfg: &CacheConfig,
    caller: &Caller,
    key: &CacheKey,
    access: Access,
) -> Result<(), RequestError> {
    match cfg.auth_mode {
        AuthMode::Origin | AuthMode::Grant => Ok(()),
        AuthMode::Jwt => jwt_rules(cfg, caller, key, access),
    }
}

/// Whether the caller may write `key`; the principal the write is made for.
pub fn authorize_write<S: KvStore, O: Origin>(
    store: &mut S,
    origin: &mut O,
    cfg: &CacheConfig,
    caller: &Caller,
    key: &CacheKey,
    now: UnixMillis,
) -> Result<String, RequestError> {
    if cfg.auth_mode == AuthMode::Jwt {
        check_rules(cfg, caller, key, Access::Write)?;
        return Ok(caller.subject().unwrap_or(ANONYMOUS).to_owned());
    }
    let digest = caller.grant_digest(cfg, key, Access::Write);
    if let Some(d) = &digest {
        if let Some(principal) =
            grant::find(store, d, now, cfg.grant_ttl)?.and_then(|g| g.principal)
        {
            return Ok(principal);
        }
    }
    let call = AuthorizeCall::new(key, Access::Write, caller.authorization());
    let principal = principal_of(origin.authorize(&call))?;
    if let Some(d) = &digest {
        grant::keep(store, d, Some(&principal), now, cfg.grant_ttl);
    }
    Ok(principal)
}

/// Whether the caller may be served `key`'s shared entry whose ETag is `etag`.
pub fn check_read_grant<S: KvStore, O: Origin>(
    store: &mut S,
    origin: &mut O,
    cfg: &CacheConfig,
    caller: &Caller,
    key: &CacheKey,
    etag: Option<&str>,
    now: UnixMillis,
) -> Result<(), RequestError> {
    if cfg.auth_mode == AuthMode::Jwt {
        return check_rules(cfg, caller, key, Access::Read);
    }
    if read_grant_kept(store, cfg, caller, key, now)? {
        return Ok(());
    }
    let read = item_read(key, caller.authorization(), etag);
    read_allowed(origin.get_item(&read))?;
    keep_read_grant(store, cfg, caller, key, now);
    Ok(())
}

/// Whether `caller` may read `key`'s entry without asking the DB API: in `jwt` mode the
/// rules decide (checked before any read), otherwise a read grant kept within `grant_ttl`.
pub fn read_grant_kept<S: KvStore>(
    store: &mut S,
    cfg: &CacheConfig,
    caller: &Caller,
    key: &CacheKey,
    now: UnixMillis,
) -> Result<bool, RequestError> {
    if cfg.auth_mode == AuthMode::Jwt {
        return Ok(true);
    }
    match caller.grant_digest(cfg, key, Access::Read) {
        Some(d) => Ok(grant::find(store, &d, now, cfg.grant_ttl)?.is_some()),
        None => Ok(false),
    }
}

/// Keeps a read grant for a caller the origin just answered a read with `200`, `304` or `404`.
pub fn keep_read_grant<S: KvStore>(
    store: &mut S,
    cfg: &CacheConfig,
    caller: &Caller,
    key: &CacheKey,
    now: UnixMillis,
) {
    if let Some(d) = caller.grant_digest(cfg, key, Access::Read) {
        grant::keep(store, &d, None, now, cfg.grant_ttl);
    }
}

/// The principal in the DB API's answer to an authorization call.
fn principal_of(result: Result<ItemAnswer, Unanswered>) -> Result<String, RequestError> {
    let answer = answered(result)?;
    match answer.status {
        200 => serde_json::from_slice::<AuthorizeResponse>(&answer.body)
            .ok()
            .map(|a| a.principal)
            .filter(|p| !p.is_empty() && p.len() <= MAX_PRINCIPAL_BYTES)
            .ok_or_else(|| {
                RequestError::Origin("the DB API's authorization answer is unreadable".into())
            }),
        status @ (401 | 403) => Err(refused(status, answer)),
        status @ (408 | 429 | 500..=599) => Err(RequestError::AccessUnchecked(format!(
            "the DB API answered the authorization call with {status}"
        ))),
        status => Err(RequestError::Origin(format!(
            "the DB API answered the authorization call with {status}"
        ))),
    }
}

/// Whether a conditional read's answer lets the caller read the item.
fn read_allowed(result: Result<ItemAnswer, Unanswered>) -> Result<(), RequestError> {
    let answer = answered(result)?;
    match answer.status {
        200 | 304 | 404 => Ok(()),
        status @ (401 | 403) => Err(refused(status, answer)),
        status => Err(RequestError::AccessUnchecked(format!(
            "the DB API answered the access check with {status}"
        ))),
    }
}

/// The answer to an access check; no answer means the access could not be checked.
fn answered(result: Result<ItemAnswer, Unanswered>) -> Result<ItemAnswer, RequestError> {
    result.map_err(|e| match e {
        Unanswered::TimedOut(m) | Unanswered::Failed(m) => RequestError::AccessUnchecked(m),
    })
}

fn refused(status: u16, answer: ItemAnswer) -> RequestError {
    RequestError::OriginRefused {
        status,
        www_authenticate: answer.www_authenticate,
    }
}

/// In `jwt` mode, the verified subject of the caller's bearer token; `None` for an anonymous
/// caller. A credential that is not a verifying bearer JWT is a `401`, never anonymous.
fn jwt_subject(
    cfg: &CacheConfig,
    caller: &Caller,
    now: UnixMillis,
) -> Result<Option<String>, RequestError> {
    let Some(authorization) = caller.authorization() else {
        return Ok(None);
    };
    let token = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| RequestError::Unauthenticated("expected a bearer token".into()))?;
    let verifier = cfg
        .jwt_verifier
        .as_ref()
        .ok_or_else(|| RequestError::Unauthenticated("no key set to verify tokens".into()))?;
    verifier
        .verify(token, now)
        .map(Some)
        .map_err(|e| RequestError::Unauthenticated(format!("the token does not verify: {e}")))
}

/// In `jwt` mode, what the rules say about `access` to `key` for the caller's subject.
fn jwt_rules(
    cfg: &CacheConfig,
    caller: &Caller,
    key: &CacheKey,
    access: Access,
) -> Result<(), RequestError> {
    let decision = cfg
        .auth_rules
        .as_ref()
        .map_or(RuleDecision::Forbidden, |rules| {
            rules.decide(caller.subject(), key.ns(), key.key(), access)
        });
    match decision {
        RuleDecision::Allow => Ok(()),
        RuleDecision::Unauthenticated => Err(RequestError::Unauthenticated(format!(
            "{} of {} needs a signed-in caller",
            access.as_str(),
            key.ns()
        ))),
        RuleDecision::Forbidden => Err(RequestError::Forbidden(format!(
            "the rules do not let this caller {} this item",
            access.as_str()
        ))),
    }
}
