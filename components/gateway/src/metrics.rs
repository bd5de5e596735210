//! Counters and `GET /metrics` (Prometheus text format).
//!
//! A Spin instance lives for one request, so in-memory counters would always read zero.
//! Each request counts in memory while it runs; after its response is sent (see
//! [`crate::deferred`]) it adds its counts to `m:count:{name}` records in the store with a
//! read-modify-write per counter. Spin KV has no compare-and-swap or increment, so
//! concurrent requests can overwrite each other's additions: the counters are approximate
//! (they undercount under concurrency, never overcount) and are best read as rates. Fresh
//! hits, the most frequent event, are sampled (`metrics_hit_sample`, see [`inc_sampled`]). The
//! gauges (entries, buffered writes) are exact: they are derived from the store's keys.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use cache_core::kv_key::{KvKey, META_PREFIX};
use cache_core::state;
use cache_core::store::KvStore;
use spin_adapters::{env, kv::SpinKv};
use spin_sdk::http::{Params, Request, Response};

use cache_core::serve::RequestError;

use crate::respond;

/// Cache hits (fresh entries served).
pub const HITS: &str = "hits";
/// Misses (origin asked).
pub const MISSES: &str = "misses";
/// Stale entries served.
pub const STALE: &str = "stale";
/// Negative entries served.
pub const NEGATIVE_HITS: &str = "negative_hits";
/// Origin fetches (fills and revalidations).
pub const ORIGIN_FETCHES: &str = "origin_fetches";
/// Total origin fetch time in milliseconds.
pub const ORIGIN_FETCH_MS: &str = "origin_fetch_ms";
/// Writes accepted into the buffer.
pub const WRITES_BUFFERED: &str = "writes_buffered";
const ERROR_PREFIX: &str = "error.";

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

/// Counts an error response by its code.
pub fn count_error(code: &str) {
    inc(&format!("{ERROR_PREFIX}{code}"));
}

/// Adds this request's counts to the store (after the response was sent).
pub fn persist() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    let Ok(mut kv) = SpinKv::open_configured() else {
        return;
    };
    for (name, n) in pending {
        let key = KvKey::Counter(name).render();
        let old = kv
            .get(&key)
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let _ = kv.set(&key, old.saturating_add(n).to_string().as_bytes());
    }
}

/// `GET /metrics`.
pub fn handle(_: Request, _: Params) -> anyhow::Result<Response> {
    Ok(match render() {
        Ok(text) => Response::builder()
            .status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(text)
            .build(),
        Err(e) => respond::error(&e),
    })
}

fn render() -> Result<String, RequestError> {
    let mut kv = SpinKv::open_configured()?;
    let counter_prefix = KvKey::Counter(String::new()).render();
    let mut counters = BTreeMap::new();
    for key in kv.get_keys()? {
        if !key.starts_with(META_PREFIX) {
            continue;
        }
        let Some(name) = key.strip_prefix(&counter_prefix) else {
            continue;
        };
        let value = kv
            .get(&key)?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        counters.insert(name.to_owned(), value);
    }
    let stats = state::stats(&mut kv, env::now())?;
    let get = |n: &str| counters.get(n).copied().unwrap_or(0);
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter("cache_hits_total", "Fresh entries served.", get(HITS));
    counter(
        "cache_misses_total",
        "Reads that asked the DB API.",
        get(MISSES),
    );
    counter("cache_stale_total", "Stale entries served.", get(STALE));
    counter(
        "cache_negative_hits_total",
        "Negative entries served.",
        get(NEGATIVE_HITS),
    );
    counter(
        "cache_writes_buffered_total",
        "Writes accepted into the buffer.",
        get(WRITES_BUFFERED),
    );
    let fetches = get(ORIGIN_FETCHES);
    let ms = get(ORIGIN_FETCH_MS);
    let _ = writeln!(
        out,
        "# HELP cache_origin_fetch_seconds Time spent fetching from the DB API.\n\
         # TYPE cache_origin_fetch_seconds summary\n\
         cache_origin_fetch_seconds_sum {}.{:03}\ncache_origin_fetch_seconds_count {fetches}",
        ms / 1000,
        ms % 1000
    );
    let _ = writeln!(
        out,
        "# HELP cache_errors_total Error responses by code.\n# TYPE cache_errors_total counter"
    );
    for (name, v) in counters
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(ERROR_PREFIX)?, v)))
    {
        let _ = writeln!(out, "cache_errors_total{{kind=\"{name}\"}} {v}");
    }
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "cache_entries",
        "Cache entries in the store.",
        stats.entries as u64,
    );
    gauge(
        "cache_buffered_writes",
        "Writes waiting for the flush.",
        stats.buffered_writes as u64,
    );
    gauge(
        "cache_dead_letters",
        "Writes the DB API refused.",
        stats.dead_letters as u64,
    );
    // The flush figures of `/admin/stats`, for scraping.
    gauge(
        "cache_buffered_bytes",
        "Bytes of buffered writes, as of the last flush run.",
        stats.buffered_bytes,
    );
    gauge(
        "cache_oldest_buffered_age_seconds",
        "Age of the oldest write waiting for the flush (0 when none).",
        stats.oldest_buffered_age_ms.unwrap_or(0) / 1000,
    );
    gauge(
        "cache_sealed_batches",
        "Batches sealed and waiting for the DB API's answer.",
        stats.sealed_batches as u64,
    );
    gauge(
        "cache_flush_consecutive_failures",
        "Flush runs that failed in a row.",
        u64::from(stats.state.failures),
    );
    gauge(
        "cache_flush_last_run_timestamp_seconds",
        "When the last flush run ended (0: never).",
        stats.state.last_run_at.map_or(0, |t| t.0 / 1000),
    );
    gauge(
        "cache_flush_last_success_timestamp_seconds",
        "When a flush run last delivered everything it tried (0: never).",
        stats.state.last_success_at.map_or(0, |t| t.0 / 1000),
    );
    gauge(
        "cache_flush_next_retry_timestamp_seconds",
        "No batch is sent before this time (0: no backoff).",
        stats.state.next_attempt_at.map_or(0, |t| t.0 / 1000),
    );
    Ok(out)
}
