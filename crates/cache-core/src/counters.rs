//! The `/metrics` counters: their names, how they are kept in the store, and the Prometheus
//! text that shows them with the flush gauges.
//!
//! A Spin instance lives for one request, so in-memory counters would always read zero.
//! Each request counts in memory while it runs; after its response is sent it adds its counts
//! to `m:tally:{name}` records ([`add_to_store`]) with one `increment` per counter: exact
//! where the host has `wasi:keyvalue/atomics` (local Spin, SpinKube, the embedded host); on
//! Fermyon Cloud and Akamai Functions a read-modify-write, where concurrent requests can
//! overwrite each other's additions (they undercount, never overcount). Counts kept before
//! as decimal text under `m:count:{name}` are read and added, never written: an atomic
//! `increment` on them would fail (Spin's SQLite backend panics on a value that is not its
//! 8-byte counter). Fresh hits, the most frequent event, are sampled by the gateway
//! (`metrics_hit_sample`). Nothing here lists the store, which `/metrics` scrapers would
//! otherwise do every few seconds: counters are read by name (every name is known,
//! [`ERROR_CODES`] included), and the gauges come from what the last tick measured
//! ([`crate::delivery::state::gauges`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::CacheConfig;
use crate::delivery::state::{gauges, FlushStats};
use crate::rollout;
use crate::rollout::compare::{Reason, WouldStatus};
use crate::rollout::evidence;
use crate::rollout::state::{Mode, RolloutState};
use crate::serve::reply::ERROR_CODES;
use crate::serve::Event;
use crate::store::{decode_counter, KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::UnixMillis;

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
/// Requests let through uncounted because the store did not keep their rate counter.
pub const RATE_UNCOUNTED: &str = "rate_uncounted";
/// Reads passed through to the DB API ([`crate::rollout`]).
pub const PASSTHROUGH_READS: &str = "passthrough_reads";
/// Writes passed through to the DB API ([`crate::rollout`]).
pub const PASSTHROUGH_WRITES: &str = "passthrough_writes";
const ERROR_PREFIX: &str = "error.";

/// The counter a request event adds to.
#[must_use]
pub fn of_event(event: Event) -> &'static str {
    match event {
        Event::Hit => HITS,
        Event::NegativeHit => NEGATIVE_HITS,
        Event::Stale => STALE,
        Event::Miss => MISSES,
        Event::WriteBuffered => WRITES_BUFFERED,
        Event::RateUncounted => RATE_UNCOUNTED,
        Event::PassedThroughRead => PASSTHROUGH_READS,
        Event::PassedThroughWrite => PASSTHROUGH_WRITES,
    }
}

/// The counter of error replies with `code`.
#[must_use]
pub fn of_error(code: &str) -> String {
    format!("{ERROR_PREFIX}{code}")
}

fn parse(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Adds `pending` to the stored counters, best effort: a counter whose store call fails is
/// skipped.
pub fn add_to_store(store: &mut impl KvStore, pending: BTreeMap<String, u64>) {
    for (name, n) in pending {
        let _ = store.increment(&KvKey::Tally(name).render(), n);
    }
}

/// Every counter's name: the request counters and one per error code.
fn names() -> Vec<String> {
    [
        HITS,
        MISSES,
        STALE,
        NEGATIVE_HITS,
        ORIGIN_FETCHES,
        ORIGIN_FETCH_MS,
        WRITES_BUFFERED,
        RATE_UNCOUNTED,
        PASSTHROUGH_READS,
        PASSTHROUGH_WRITES,
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(ERROR_CODES.iter().map(|code| of_error(code)))
    .chain(evidence::counter_names())
    .collect()
}

/// Every counter by name (unreadable values count as 0): its `m:tally:` count plus what a
/// `m:count:` record of the same name held when counters were kept as decimal text. Read by
/// name, in one `get_many`, never by listing the store.
pub fn load(store: &mut impl KvStore) -> Result<BTreeMap<String, u64>, StoreError> {
    let names = names();
    let keys: Vec<String> = names
        .iter()
        .flat_map(|n| {
            [
                KvKey::Tally(n.clone()).render(),
                KvKey::Counter(n.clone()).render(),
            ]
        })
        .collect();
    let values = store.get_many(&keys)?;
    Ok(names
        .into_iter()
        .zip(values.chunks(2))
        .map(|(name, pair)| {
            let tally = pair[0].as_deref().map_or(0, decode_counter);
            let legacy = parse(pair[1].clone());
            (name, tally.saturating_add(legacy))
        })
        .collect())
}

/// The `/metrics` text, read without listing the store: the counters by name, the gauges
/// of [`crate::delivery::state::gauges`], and the rollout in force ([`render_rollout`]).
pub fn metrics(
    store: &mut impl KvStore,
    now: UnixMillis,
    cfg: &CacheConfig,
) -> Result<String, StoreError> {
    let counters = load(store)?;
    let stats = gauges(store, now)?;
    let rollout = rollout::state::load(store, cfg)?;
    let mut text = render(&counters, &stats);
    text.push_str(&render_rollout(&rollout.state));
    text.push_str(&render_shadow(&counters));
    Ok(text)
}

/// The rollout in force as gauges: the canary share, and the mode as one series per mode
/// (1 for the one in force). Requests by path are the counters: passed through
/// (`cache_passthrough_*_total`), or served by the cache (hits, misses, stale, negative
/// hits, buffered writes).
#[must_use]
pub fn render_rollout(state: &RolloutState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cache_rollout_canary_share_percent The canary's share of callers (in canary mode).\n\
         # TYPE cache_rollout_canary_share_percent gauge\n\
         cache_rollout_canary_share_percent {}",
        state.canary_share
    );
    let _ = writeln!(
        out,
        "# HELP cache_rollout_mode The rollout mode in force (1) and the others (0).\n\
         # TYPE cache_rollout_mode gauge"
    );
    for mode in Mode::ALL {
        let _ = writeln!(
            out,
            "cache_rollout_mode{{mode=\"{}\"}} {}",
            mode.as_str(),
            u8::from(mode == state.mode)
        );
    }
    out
}

/// Shadow mode's counts ([`evidence`]): comparisons by verdict and reason, reads by what the
/// cache would have answered, and the two ratios they give (absent before any shadow read).
#[must_use]
pub fn render_shadow(counters: &BTreeMap<String, u64>) -> String {
    let get = |n: &str| counters.get(n).copied().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cache_shadow_comparisons_total Shadow reads judged, by verdict and mismatch reason.\n\
         # TYPE cache_shadow_comparisons_total counter\n\
         cache_shadow_comparisons_total{{verdict=\"match\"}} {}\n\
         cache_shadow_comparisons_total{{verdict=\"uncompared\"}} {}",
        evidence::matches(counters),
        get(evidence::UNCOMPARED)
    );
    for reason in Reason::ALL {
        let _ = writeln!(
            out,
            "cache_shadow_comparisons_total{{verdict=\"mismatch\",reason=\"{}\"}} {}",
            reason.as_str(),
            get(&evidence::mismatch_counter(reason))
        );
    }
    let _ = writeln!(
        out,
        "# HELP cache_shadow_would_serve_total Shadow reads by what the cache would have answered.\n\
         # TYPE cache_shadow_would_serve_total counter"
    );
    for status in WouldStatus::ALL {
        let _ = writeln!(
            out,
            "cache_shadow_would_serve_total{{status=\"{}\"}} {}",
            status.as_str(),
            get(&evidence::would_counter(status))
        );
    }
    if let Some((hit, offload)) = evidence::ratios(counters) {
        let _ = writeln!(
            out,
            "# HELP cache_shadow_would_be_hit_ratio Shadow reads the cache would have answered fresh.\n\
             # TYPE cache_shadow_would_be_hit_ratio gauge\n\
             cache_shadow_would_be_hit_ratio {}.{:03}\n\
             # HELP cache_shadow_estimated_origin_offload_ratio Shadow reads that would not have waited for the DB API.\n\
             # TYPE cache_shadow_estimated_origin_offload_ratio gauge\n\
             cache_shadow_estimated_origin_offload_ratio {}.{:03}",
            hit / 1000,
            hit % 1000,
            offload / 1000,
            offload % 1000
        );
    }
    out
}

/// The Prometheus text exposition (format 0.0.4) of `counters` and `stats`.
#[must_use]
pub fn render(counters: &BTreeMap<String, u64>, stats: &FlushStats) -> String {
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
    counter(
        "cache_rate_limit_uncounted_total",
        "Requests let through uncounted because the store did not keep their rate counter.",
        get(RATE_UNCOUNTED),
    );
    counter(
        "cache_passthrough_reads_total",
        "Reads passed through to the DB API by the rollout.",
        get(PASSTHROUGH_READS),
    );
    counter(
        "cache_passthrough_writes_total",
        "Writes passed through to the DB API by the rollout.",
        get(PASSTHROUGH_WRITES),
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
        "Cache entries, as the last sweep counted them.",
        stats.entries as u64,
    );
    gauge(
        "cache_buffered_writes",
        "Writes waiting for the flush: the last flush run's measure plus the writes counted since.",
        stats.buffered_writes as u64,
    );
    gauge(
        "cache_dead_letters",
        "Writes the DB API refused, as the last flush run left them.",
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
        "Batches sealed and waiting for the DB API's answer, as the last flush run left them.",
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn counts_add_up_in_the_store_and_render_with_the_gauges() {
        let mut store = MemoryStore::new();
        store.set("m:count:hits", b"garbage").unwrap();
        let pending = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        add_to_store(
            &mut store,
            pending(&[(HITS, 16), (&of_error("bad_key"), 1)]),
        );
        add_to_store(&mut store, pending(&[(HITS, 16), (ORIGIN_FETCH_MS, 1_234)]));
        let counters = load(&mut store).unwrap();
        assert_eq!(counters.get(HITS), Some(&32));
        // Counts kept as decimal text before are added, and never written again.
        store.set("m:count:hits", b"100").unwrap();
        add_to_store(&mut store, pending(&[(HITS, 1)]));
        assert_eq!(load(&mut store).unwrap().get(HITS), Some(&133));
        assert_eq!(store.peek("m:count:hits"), Some(&b"100"[..]));
        assert_eq!(store.peek("m:tally:hits"), Some(&33i64.to_le_bytes()[..]));
        store.delete("m:count:hits").unwrap();
        let stats = FlushStats {
            entries: 3,
            ..FlushStats::default()
        };
        let text = render(&counters, &stats);
        for line in [
            "cache_hits_total 32",
            "cache_misses_total 0",
            "cache_origin_fetch_seconds_sum 1.234",
            "cache_errors_total{kind=\"bad_key\"} 1",
            "cache_entries 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
