//! Counting this request's events, and `GET /metrics` (Prometheus text format).
//!
//! The counters, how they are kept in the store and the exposition are
//! `cache_core::counters`. Here a request counts in memory while it runs, and after its
//! response is sent (see [`crate::deferred`]) [`persist`] adds its counts to the store. Fresh
//! hits, the most frequent event, are sampled (`metrics_hit_sample`, see [`inc_sampled`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use cache_core::counters;
use cache_core::serve::{Event, RequestError};
use spin_adapters::{env, kv::Stores};
use spin_sdk::http::{Params, Request, Response};

use crate::{respond, settings};

thread_local! {
    static PENDING: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Adds `n` to counter `name` for this request.
pub fn add(name: &str, n: u64) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.entry(name.to_owned()).or_insert(0);
        *v = v.saturating_add(n);
    });
}

/// Counts one event.
pub fn inc(name: &str) {
    add(name, 1);
}

/// Counts one event of a frequent kind by sampling: with probability `1/every` it adds
/// `every`, otherwise nothing. The expected count is exact, and most events then write
/// nothing to the store after their response (on the hit path, that write would be the
/// only one).
pub fn inc_sampled(name: &str, every: u64) {
    if every <= 1 {
        inc(name);
    } else if env::random_u64().is_multiple_of(every) {
        add(name, every);
    }
}

/// Counts the events of a request (hits sampled one in `hit_sample`).
pub fn record(events: &[Event], hit_sample: u64) {
    for &event in events {
        match event {
            Event::Hit => inc_sampled(counters::HITS, hit_sample),
            other => inc(counters::of_event(other)),
        }
    }
}

/// Counts an error response by its code.
pub fn count_error(code: &str) {
    inc(&counters::of_error(code));
}

/// Adds this request's counts to the store (after the response was sent).
pub fn persist() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    // Without a valid configuration there is no store to count in (the request itself was
    // answered 500 naming the variable).
    let Ok(cfg) = settings::get() else {
        return;
    };
    if let Ok(mut kv) = Stores::open(&cfg) {
        counters::add_to_store(&mut kv, pending);
    }
}

/// `GET /metrics`.
pub fn handle(_: Request, _: Params) -> anyhow::Result<Response> {
    let render = || -> Result<String, RequestError> {
        let cfg = settings::get()?;
        let mut kv = Stores::open(&cfg)?;
        Ok(counters::metrics(&mut kv, env::now(), &cfg)?)
    };
    Ok(match render() {
        Ok(text) => Response::builder()
            .status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(text)
            .build(),
        Err(e) => respond::error(&e),
    })
}
