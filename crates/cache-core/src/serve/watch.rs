//! Long-poll: a `GET` with `If-None-Match` and `?wait=N` answers when the entry's ETag
//! changes, or `304` when `N` seconds pass.
//!
//! Why: Spin has no WebSocket and an instance lives for one request, so live updates between
//! browser tabs are long-polls. The wait is bounded below the platform's request limit
//! (Fermyon Cloud ends a request at 30 s): at most [`MAX_WAIT`], with one store read every
//! [`POLL_EVERY`] (two for a caller with its own entry), so one long-poll costs a bounded
//! number of store calls whatever happens.
//!
//! Access is decided as for any read: the wait starts with an ordinary [`get`](super::get)
//! (identity, rules, grants, the rate budget); only a `304` from it starts the wait. While
//! waiting, the store is read raw and only compared, never served: when the ETag it shows
//! differs, another ordinary `get` makes the answer, with the same access decision. At the
//! deadline one more `get` answers (so an entry that expired meanwhile is revalidated as any
//! read would). A long-poll is charged to the read budget at its start and at its answer.
//!
//! Waiting is the clock's [`Clock::sleep`]: in the gateway a blocking sleep, which under
//! Spin is `wasi:clocks` `subscribe-duration` plus `poll`, the instance serving only this
//! request.

use std::time::Duration;

use crate::auth::gate;
use crate::config::CacheConfig;
use crate::envelope;
use crate::serve::{get, GetRequest, Origin, Outcome, RequestError};
use crate::store::KvStore;
use crate::time::Clock;

/// The longest wait a long-poll may ask for, below Fermyon Cloud's 30 s request limit with
/// room for the answer.
pub const MAX_WAIT: Duration = Duration::from_secs(25);

/// How often the store is read while waiting: a change shows within this.
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// The most store polls one long-poll makes.
pub const MAX_POLLS: u32 = 50;

/// Parses a `wait` query value: whole seconds from 0 to [`MAX_WAIT`].
pub fn parse_wait(value: &str) -> Result<Duration, RequestError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&s| s <= MAX_WAIT.as_secs())
        .map(Duration::from_secs)
        .ok_or_else(|| {
            RequestError::BadWait(format!(
                "wait must be whole seconds from 0 to {}, not {value:?}",
                MAX_WAIT.as_secs()
            ))
        })
}

/// Serves `req` as a long-poll of up to `wait` (the module docs).
pub fn get_waiting<S: KvStore, O: Origin, C: Clock>(
    store: &mut S,
    origin: &mut O,
    clock: &mut C,
    rand: u64,
    cfg: &CacheConfig,
    req: &GetRequest,
    wait: Duration,
) -> Outcome {
    let mut first = get(store, origin, clock, rand, cfg, req);
    let wait = wait.min(MAX_WAIT);
    // A passed-through read is the DB API's answer; the store has nothing to wait on.
    let passed = first.reply.header("x-cache") == Some(super::pass::X_CACHE_PASS);
    if first.reply.status != 304 || wait.is_zero() || passed {
        return first;
    }
    let Some(served) = first.reply.header("etag").map(str::to_owned) else {
        return first;
    };
    let start = clock.now();
    let deadline = start.saturating_add(wait);
    let own = gate::identify(cfg, req.authorization.as_deref(), start)
        .ok()
        .and_then(|caller| caller.own_entry(cfg, &req.key.unscoped()));
    let slots: Vec<String> = std::iter::once(req.key.unscoped().kv_key())
        .chain(own.map(|k| k.kv_key()))
        .collect();
    let mut polls = 0;
    loop {
        let now = clock.now();
        if now >= deadline || polls >= MAX_POLLS {
            break;
        }
        clock.sleep(POLL_EVERY.min(now.until(deadline)));
        polls += 1;
        if shows_other_etag(store, &slots, &served) {
            let answer = get(
                store,
                origin,
                clock,
                rand.wrapping_add(u64::from(polls)),
                cfg,
                req,
            );
            if answer.reply.status != 304 {
                return merge(first, answer);
            }
            first = merge(first, answer);
        }
    }
    let last = get(
        store,
        origin,
        clock,
        rand.wrapping_add(u64::from(MAX_POLLS) + 1),
        cfg,
        req,
    );
    merge(first, last)
}

/// Whether the first entry stored under `slots` shows an ETag other than `served` (or none:
/// it was deleted or does not decode, and an ordinary read must say what now).
fn shows_other_etag(store: &mut impl KvStore, slots: &[String], served: &str) -> bool {
    for slot in slots {
        match store.get(slot) {
            Ok(Some(bytes)) => {
                return envelope::decode(&bytes)
                    .ok()
                    .and_then(|e| e.etag)
                    .is_none_or(|etag| etag != served);
            }
            Ok(None) => {}
            // An unreadable store: let an ordinary read report it.
            Err(_) => return true,
        }
    }
    true
}

/// The later answer, with the events and deferred work of both.
fn merge(first: Outcome, later: Outcome) -> Outcome {
    let mut events = first.events;
    events.extend(later.events);
    let mut deferred = first.deferred;
    for d in later.deferred {
        if !deferred.contains(&d) {
            deferred.push(d);
        }
    }
    Outcome {
        reply: later.reply,
        events,
        deferred,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_whole_seconds_within_the_bound() {
        assert_eq!(parse_wait("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_wait("25").unwrap(), MAX_WAIT);
        for bad in ["26", "-1", "1.5", "", "abc", "99999999999999999999"] {
            assert!(
                matches!(parse_wait(bad), Err(RequestError::BadWait(_))),
                "{bad:?}"
            );
        }
        assert!(MAX_WAIT < Duration::from_secs(30));
        assert!(u128::from(MAX_POLLS) * POLL_EVERY.as_millis() >= MAX_WAIT.as_millis());
    }
}
