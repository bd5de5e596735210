//! The admin operations: operating the flush from outside, as replies.
//!
//! Fermyon Cloud, Akamai and SpinKube run no cron trigger, so the flush must also be reachable
//! over HTTP; and an operator needs to see the buffer and the dead-letter queue. The gateway
//! routes these under `/admin/*`; every one requires `Authorization: Bearer {admin_token}`
//! ([`authorize`]), and every request, whatever its token, is first charged to its client
//! address against the admin budget (`rate_limit_admin`, [`guarded`]): the token cannot be
//! guessed faster than that, and once the budget is spent even the right token waits for
//! the window to end.
//!
//! | Route | Does |
//! |---|---|
//! | `POST /admin/flush` | [`flush`]: [`crate::delivery::tick::tick`], the flush run then the sweep — what the cron tick does; answers the report |
//! | `GET /admin/stats` | [`stats`]: entries, buffered writes and bytes, oldest buffered age, sealed batches, DLQ depth, last flush outcome and time, next retry time; as the last tick measured them (a few reads), or with `?exact=true` counted by listing the store |
//! | `GET /admin/history` | [`history`]: the dashboard's series, one point per minute of the last hour ([`crate::history`]); counts, rates and ages, no keys or values |
//! | `GET /admin/dlq` | [`dead_letters`]: the dead letters, oldest write first |
//! | `POST /admin/dlq/{stamp}/retry` | [`retry`]: puts the write back into the buffer with its original stamp (`409` if only raw text survived) |
//! | `DELETE /admin/dlq/{stamp}` | [`discard`]: drops the dead letter for good |
//!
//! A completed flush answers `200` whatever its outcome (`delivered`, `idle`, `retrying`,
//! `backing_off`, `lease_busy`, `lease_lost`: the body says which); a store failure answers `503`. Errors
//! come from [`RequestError::reply`], the same table as the item routes'. The report types
//! carry no serialization (they are not a stored format); the JSON views here are the one
//! place that decides how an operator sees them. Instants are Unix milliseconds, absent
//! instants are `null`.

use serde_json::{json, Value};

use crate::config::CacheConfig;
use crate::db::DbApi;
use crate::delivery::dlq::{self, DeadLetter, DeadLetters, Discarded, DlqError, Retried};
use crate::delivery::flush::{FlushOutcome, FlushReport};
use crate::delivery::state::{self, FlushStats};
use crate::delivery::sweep::SweepReport;
use crate::delivery::tick::{self, TickError};
use crate::limit::{self, Class};
use crate::serve::{Reply, RequestError};
use crate::stamp::Stamp;
use crate::store::{KvStore, StoreError};
use crate::time::{Clock, UnixMillis};

/// Checks a request's `Authorization` against the configured `admin_token`.
///
/// The admin routes can flush, replay and delete data, so they are closed unless the token
/// is set: an unset token disables them (`403`) rather than leaving them open. The token is
/// compared in constant time so its prefix cannot be probed.
pub fn authorize(
    authorization: Option<&str>,
    configured: Option<&str>,
) -> Result<(), RequestError> {
    let Some(expected) = configured.filter(|t| !t.is_empty()) else {
        return Err(RequestError::AdminDisabled);
    };
    let given = authorization
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(RequestError::Unauthorized)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(RequestError::Unauthorized)
    }
}

/// One admin request: charges `who` (the client address, [`limit::client_key`]) against the
/// admin budget, checks the bearer token ([`authorize`]), then runs `route` on the store.
/// Charging comes first, so a request over budget is `429` whatever its token; the reply,
/// error or not, carries the admin budget's RateLimit headers.
pub fn guarded<S: KvStore>(
    store: &mut S,
    now: UnixMillis,
    cfg: &CacheConfig,
    who: &str,
    authorization: Option<&str>,
    route: impl FnOnce(&mut S) -> Result<Reply, RequestError>,
) -> Reply {
    let budget = cfg.rate_limits.budget(Class::Admin);
    let rate = match limit::charge(store, now, budget, Class::Admin, who) {
        Ok(rate) => rate,
        Err(over) => return over.reply(),
    };
    let mut reply = authorize(authorization, cfg.admin_token.as_deref())
        .and_then(|()| route(store))
        .unwrap_or_else(|e| e.reply());
    reply.headers.extend(rate.headers());
    reply
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

/// A `200` admin answer.
pub(crate) fn ok(body: &Value) -> Reply {
    let mut reply = Reply::json(200, body.to_string());
    reply.headers.push(("cache-control", "no-store".to_owned()));
    reply
}

fn unavailable(e: StoreError) -> RequestError {
    RequestError::StoreUnavailable(e)
}

/// `POST /admin/flush`: one tick, lease owner `owner`.
pub fn flush<S: KvStore, D: DbApi, C: Clock>(
    store: &mut S,
    db: &mut D,
    clock: &mut C,
    rand: u64,
    owner: &str,
    cfg: &CacheConfig,
) -> Result<Reply, RequestError> {
    match tick::tick(store, db, clock, rand, owner, cfg) {
        Ok(report) => {
            let mut view = flush_view(&report.flush, report.sweep.as_ref().ok());
            if let Err(e) = &report.sweep {
                view["sweep_error"] = json!(e.to_string());
            }
            Ok(ok(&view))
        }
        Err(TickError::Flush(e)) => Err(unavailable(StoreError::Other(e))),
    }
}

/// `GET /admin/stats` with the request's `query`: the figures the last tick measured
/// ([`state::gauges`], a few reads whatever the store holds), or with `exact=true` counted
/// by listing the store ([`state::stats`], which grows with the store: on a shared Redis, a
/// keyspace scan).
pub fn stats(
    store: &mut impl KvStore,
    now: UnixMillis,
    query: &str,
) -> Result<Reply, RequestError> {
    let exact = exact_param(query, "/admin/stats")?;
    let stats = if exact {
        state::stats(store, now)
    } else {
        state::gauges(store, now)
    }
    .map_err(unavailable)?;
    let mut view = stats_view(&stats);
    view["exact"] = json!(exact);
    Ok(ok(&view))
}

/// The `exact` parameter of `route` (`/admin/stats`, `/admin/dlq`): absent or `false`
/// (what was measured or indexed), or `true` (list the store).
fn exact_param(query: &str, route: &str) -> Result<bool, RequestError> {
    let mut exact = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (name, value) {
            ("exact", "true") => exact = true,
            ("exact", "false") => exact = false,
            ("exact", other) => {
                return Err(RequestError::BadRequest(format!(
                    "exact must be true or false, not {other:?}"
                )))
            }
            (other, _) => {
                return Err(RequestError::BadRequest(format!(
                    "unknown parameter {other:?}: {route} takes only exact"
                )))
            }
        }
    }
    Ok(exact)
}

/// `GET /admin/history`: the dashboard's series ([`crate::history::series`]).
pub fn history(store: &mut impl KvStore) -> Result<Reply, RequestError> {
    let ring = crate::history::load(store).map_err(unavailable)?;
    let series = serde_json::to_value(crate::history::series(&ring))
        .map_err(|e| RequestError::Internal(format!("cannot encode the history: {e}")))?;
    Ok(ok(&series))
}

/// `GET /admin/dlq` with the request's `query`: the letters the index names
/// ([`dlq::list_indexed`], no listing), or with `exact=true`, or before any flush run wrote
/// an index, those a listing of the buffer finds ([`dlq::list`]).
pub fn dead_letters(store: &mut impl KvStore, query: &str) -> Result<Reply, RequestError> {
    let exact = exact_param(query, "/admin/dlq")?;
    let indexed = if exact {
        None
    } else {
        dlq::list_indexed(store).map_err(unavailable)?
    };
    let (letters, truncated, listed) = match indexed {
        Some((letters, truncated)) => (letters, truncated, false),
        None => (dlq::list(store).map_err(unavailable)?, false, true),
    };
    let mut view = dead_letters_view(&letters);
    view["exact"] = json!(listed);
    view["truncated"] = json!(truncated);
    Ok(ok(&view))
}

fn stamp(raw: &str) -> Result<Stamp, RequestError> {
    Stamp::parse(raw).map_err(|e| RequestError::BadStamp(format!("{raw:?}: {e}")))
}

/// `POST /admin/dlq/{stamp}/retry`.
pub fn retry(store: &mut impl KvStore, raw_stamp: &str) -> Result<Reply, RequestError> {
    let stamp = stamp(raw_stamp)?;
    let retried = dlq::retry(store, stamp).map_err(|e| match e {
        DlqError::Store(e) => unavailable(e),
        DlqError::Record(e) => RequestError::RecordUnreadable(e.to_string()),
    })?;
    match retried {
        Retried::Requeued => Ok(ok(
            &json!({ "stamp": stamp.to_string(), "status": "requeued" }),
        )),
        Retried::NotFound => Err(RequestError::NoDeadLetter(format!(
            "no dead letter {stamp}"
        ))),
        Retried::NothingToResend => Err(RequestError::NothingToResend(format!(
            "dead letter {stamp} holds only an unreadable record; discard it instead"
        ))),
    }
}

/// `DELETE /admin/dlq/{stamp}`.
pub fn discard(store: &mut impl KvStore, raw_stamp: &str) -> Result<Reply, RequestError> {
    let stamp = stamp(raw_stamp)?;
    match dlq::discard(store, stamp).map_err(unavailable)? {
        Discarded::Removed => Ok(ok(
            &json!({ "stamp": stamp.to_string(), "status": "discarded" }),
        )),
        Discarded::NotFound => Err(RequestError::NoDeadLetter(format!(
            "no dead letter {stamp}"
        ))),
    }
}

/// The flush report, with the sweep that followed it.
#[must_use]
pub fn flush_view(r: &FlushReport, sweep: Option<&SweepReport>) -> Value {
    let mut outcome = json!({ "outcome": r.outcome.label() });
    match &r.outcome {
        FlushOutcome::LeaseBusy { owner, until } => {
            outcome["lease_owner"] = json!(owner);
            outcome["lease_until"] = json!(until.0);
        }
        FlushOutcome::BackingOff { until } => outcome["next_attempt_at"] = json!(until.0),
        FlushOutcome::Retrying {
            next_attempt_at,
            error,
        } => {
            outcome["next_attempt_at"] = json!(next_attempt_at.0);
            outcome["flush_error"] = json!(error);
        }
        FlushOutcome::StoreFailed(e) => outcome["flush_error"] = json!(e),
        FlushOutcome::Idle | FlushOutcome::Delivered | FlushOutcome::LeaseLost => {}
    }
    let fields = json!({
        "batches_sent": r.batches_sent,
        "batches_resent": r.batches_resent,
        "batches_settled": r.batches_settled,
        "records_read": r.records_read,
        "records_corrupt": r.records_corrupt,
        "batches_corrupt": r.batches_corrupt,
        "batches_unregistered": r.batches_unregistered,
        "items": {
            "applied": r.items.applied,
            "stale": r.items.stale,
            "duplicate": r.items.duplicate,
            "dead_lettered": r.items.dead_lettered,
            "records_deleted": r.items.records_deleted,
        },
        "more": r.more,
        "sweep": sweep.map(|s| json!({
            "read": s.read,
            "pass_complete": s.pass_complete,
            "expired": s.expired,
            "evicted": s.evicted,
            "unreadable": s.unreadable,
            "dirty": s.dirty,
            "remaining": s.remaining,
            "rate_counters": s.rate_counters,
            "planned": s.planned,
            "took_ms": s.took_ms,
        })),
    });
    if let (Some(a), Value::Object(b)) = (outcome.as_object_mut(), fields) {
        a.extend(b);
    }
    outcome
}

fn stats_view(s: &FlushStats) -> Value {
    let st = &s.state;
    json!({
        "entries": s.entries,
        "buffered_writes": s.buffered_writes,
        "buffered_bytes": s.buffered_bytes,
        "oldest_buffered_age_ms": s.oldest_buffered_age_ms,
        "sealed_batches": s.sealed_batches,
        "dead_letters": s.dead_letters,
        "last_flush": {
            "outcome": st.last_outcome,
            "at": st.last_run_at.map(|t| t.0),
            "error": st.last_error,
            "last_success_at": st.last_success_at.map(|t| t.0),
        },
        "consecutive_failures": st.failures,
        "next_retry_at": st.next_attempt_at.map(|t| t.0),
    })
}

fn dead_letters_view(d: &DeadLetters) -> Value {
    json!({
        "dead_letters": d.letters.iter().map(letter_view).collect::<Vec<_>>(),
        "unreadable": d.unreadable,
    })
}

fn letter_view(l: &DeadLetter) -> Value {
    let mut v = json!({
        "stamp": l.stamp.to_string(),
        "reason": l.reason,
        "detail": l.detail,
        "attempts": l.attempts,
        "batch_id": l.batch_id.as_ref().map(|b| b.as_str().to_owned()),
        "dead_at": l.dead_at.0,
    });
    if let Some(w) = &l.write {
        v["ns"] = json!(w.ns.to_string());
        v["key"] = json!(w.key.to_string());
        v["op"] = json!(if w.value.is_some() { "put" } else { "delete" });
        v["value"] = w.value.clone().unwrap_or(Value::Null);
        v["written_at"] = json!(w.written_at.0);
    }
    if let Some(raw) = &l.raw {
        v["raw"] = json!(raw);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_bearer_token_opens_the_admin_routes() {
        let t = Some("s3cret");
        assert_eq!(authorize(Some("Bearer s3cret"), t), Ok(()));
        assert_eq!(authorize(Some("  bearer  s3cret "), t), Ok(()));
        assert_eq!(authorize(None, None), Err(RequestError::AdminDisabled));
        assert_eq!(
            authorize(Some("Bearer "), Some("")),
            Err(RequestError::AdminDisabled)
        );
        for wrong in [
            None,
            Some("Bearer s3cre"),
            Some("Basic s3cret"),
            Some("s3cret"),
        ] {
            assert_eq!(
                authorize(wrong, t),
                Err(RequestError::Unauthorized),
                "{wrong:?}"
            );
        }
        let r = RequestError::Unauthorized.reply();
        assert_eq!(
            (r.status, r.header("www-authenticate")),
            (401, Some("Bearer"))
        );
    }

    #[test]
    fn once_the_admin_budget_is_spent_even_the_right_token_waits_for_the_window() {
        use crate::limit::Budget;
        use crate::store::MemoryStore;
        let mut cfg = CacheConfig::with_db_api_url("http://db.test").unwrap();
        cfg.admin_token = Some("s3cret".into());
        cfg.rate_limits.admin = Some(Budget {
            quota: 3,
            window_secs: 60,
        });
        let mut store = MemoryStore::new();
        let now = UnixMillis(1_699_999_990_000); // 50 s before its window ends
        let ask = |store: &mut MemoryStore, now, who, token: &str| {
            let auth = format!("Bearer {token}");
            guarded(store, now, &cfg, who, Some(&auth), |_| Ok(ok(&json!({}))))
        };
        for i in 0..3 {
            let r = ask(&mut store, now, "ip:192.0.2.1", "guess");
            assert_eq!(r.status, 401, "guess {i}");
            assert_eq!(
                r.header("ratelimit"),
                Some(format!("\"admin\";r={};t=50", 2 - i).as_str())
            );
        }
        for token in ["guess", "s3cret"] {
            let r = ask(&mut store, now, "ip:192.0.2.1", token);
            assert_eq!(
                (r.status, r.header("retry-after")),
                (429, Some("50")),
                "{token}"
            );
            assert_eq!(r.header("ratelimit-policy"), Some("\"admin\";q=3;w=60"));
        }
        // Another address has its own budget, and the next window a fresh one.
        assert_eq!(ask(&mut store, now, "ip:192.0.2.2", "s3cret").status, 200);
        let later = UnixMillis(now.0 + 50_000);
        let r = ask(&mut store, later, "ip:192.0.2.1", "s3cret");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit"), Some("\"admin\";r=2;t=60"));
    }
}
