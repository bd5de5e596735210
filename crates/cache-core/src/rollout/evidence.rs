//! Shadow mode's evidence: the comparisons ([`super::compare`]) counted, the latest
//! mismatches kept, and the report of `GET /admin/shadow`.
//!
//! Each comparison adds to three kinds of records, after the caller's response is sent:
//!
//! - totals, for `/metrics`: `m:tally:shadow_would_{hit,negative,stale,miss}` (every read
//!   judged), `m:tally:shadow_mismatch_{reason}` and `m:tally:shadow_uncompared`; the matches
//!   are the rest ([`matches`]), so the common verdict costs no count of its own;
//! - the gate's window ([`super::gate`]): `m:shadow:{window}:match` and
//!   `m:shadow:{window}:mismatch`, `window` being the time divided by `rollout_gate_window`.
//!   The gate judges the current window and the one before, so a cause fixed an hour ago
//!   stops holding a raise back once its windows have passed, and a new one shows at once.
//!   The first comparison of a window deletes the window two before it; the sweep deletes any
//!   older one left by a quiet period, by name ([`is_dead_window`]);
//! - the latest [`SAMPLES`] mismatches, `m:shadow:samples`.
//!
//! Counting is an `increment` each, exact where the store has atomics; elsewhere (Fermyon
//! Cloud, Akamai) concurrent comparisons can undercount, never overcount. The samples are a
//! read-modify-write: two mismatches at once can keep one sample, never a wrong one. Every
//! step is best effort: a store failure loses a count, never fails a request.
//!
//! The would-be hit ratio is `(hit + negative) / all` of the would-be counts, what cutover's
//! `cache_hits_total` and `cache_negative_hits_total` would have been; the estimated origin
//! offload is the share of reads that would not have asked the DB API while the caller
//! waited, `(hit + negative + stale) / all` (a stale read's revalidation still asks, after
//! the response).

use std::time::Duration;

use serde_json::{json, Value};

use super::compare::{Reason, Sample, Verdict, WouldStatus};
use crate::admin::ok;
use crate::config::CacheConfig;
use crate::serve::{Reply, RequestError};
use crate::store::{decode_counter, KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::UnixMillis;

/// Mismatch samples kept.
pub const SAMPLES: usize = 20;

/// The total of reads not compared (the DB API failed).
pub const UNCOMPARED: &str = "shadow_uncompared";

/// The total of mismatches for `reason`.
#[must_use]
pub fn mismatch_counter(reason: Reason) -> String {
    format!("shadow_mismatch_{}", reason.as_str())
}

/// The total of reads the cache would have answered as `status`.
#[must_use]
pub fn would_counter(status: WouldStatus) -> String {
    format!("shadow_would_{}", status.as_str())
}

/// Every total's name, for `/metrics`.
#[must_use]
pub fn counter_names() -> Vec<String> {
    [UNCOMPARED.to_owned()]
        .into_iter()
        .chain(Reason::ALL.map(mismatch_counter))
        .chain(WouldStatus::ALL.map(would_counter))
        .collect()
}

/// The gate's window that `now` falls in.
#[must_use]
pub fn window(now: UnixMillis, length: Duration) -> u64 {
    let ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX).max(1);
    now.0 / ms
}

/// Whether the counts of `window` are past any use at `now`: older than the window before
/// the current one.
#[must_use]
pub fn is_dead_window(window_of_key: u64, now: UnixMillis, length: Duration) -> bool {
    window_of_key.saturating_add(1) < window(now, length)
}

fn window_key(window: u64, mismatch: bool) -> String {
    KvKey::ShadowWindow { window, mismatch }.render()
}

/// Counts one comparison of a read the cache would have answered as `would`, at `now`.
pub fn record(
    store: &mut impl KvStore,
    cfg: &CacheConfig,
    now: UnixMillis,
    would: WouldStatus,
    verdict: &Verdict,
) {
    let tally = |name: String| KvKey::Tally(name).render();
    let _ = store.increment(&tally(would_counter(would)), 1);
    let mismatch = match verdict {
        Verdict::Match => false,
        Verdict::Mismatch(sample) => {
            let _ = store.increment(&tally(mismatch_counter(sample.reason)), 1);
            true
        }
        Verdict::Uncompared => {
            let _ = store.increment(&tally(UNCOMPARED.to_owned()), 1);
            return;
        }
    };
    let current = window(now, cfg.rollout_gate_window);
    if store.increment(&window_key(current, mismatch), 1) == Ok(1) {
        if let Some(gone) = current.checked_sub(2) {
            let _ = store.delete(&window_key(gone, false));
            let _ = store.delete(&window_key(gone, true));
        }
    }
    if let Verdict::Mismatch(sample) = verdict {
        let _ = keep_sample(store, sample);
    }
}

fn keep_sample(store: &mut impl KvStore, sample: &Sample) -> Result<(), StoreError> {
    let key = KvKey::ShadowSamples.render();
    let mut samples = load_samples(store)?;
    samples.push(sample.clone());
    let excess = samples.len().saturating_sub(SAMPLES);
    samples.drain(..excess);
    store.set(&key, &serde_json::to_vec(&samples).unwrap_or_default())
}

fn load_samples(store: &mut impl KvStore) -> Result<Vec<Sample>, StoreError> {
    Ok(store
        .get(&KvKey::ShadowSamples.render())?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// Comparisons counted in the gate's recent window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recent {
    /// Matches.
    pub matches: u64,
    /// Mismatches, every reason.
    pub mismatches: u64,
}

/// The counts of the current window and the one before (one `get_many`).
pub fn recent(
    store: &mut impl KvStore,
    now: UnixMillis,
    length: Duration,
) -> Result<Recent, StoreError> {
    let current = window(now, length);
    let windows = [Some(current), current.checked_sub(1)];
    let keys: Vec<String> = windows
        .iter()
        .flatten()
        .flat_map(|&w| [window_key(w, false), window_key(w, true)])
        .collect();
    let values = store.get_many(&keys)?;
    let count = |v: &Option<Vec<u8>>| v.as_deref().map_or(0, decode_counter);
    Ok(values
        .chunks(2)
        .fold(Recent::default(), |acc, pair| Recent {
            matches: acc.matches.saturating_add(count(&pair[0])),
            mismatches: acc.mismatches.saturating_add(count(&pair[1])),
        }))
}

/// Totals by name, from `counters` ([`crate::counters::load`]).
fn total(counters: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    counters.get(name).copied().unwrap_or(0)
}

/// The comparisons that matched, from `counters`: every read judged, less the mismatches
/// and the reads not compared.
#[must_use]
pub fn matches(counters: &std::collections::BTreeMap<String, u64>) -> u64 {
    let judged: u64 = WouldStatus::ALL
        .into_iter()
        .map(|s| total(counters, &would_counter(s)))
        .sum();
    let other: u64 = Reason::ALL
        .into_iter()
        .map(|r| total(counters, &mismatch_counter(r)))
        .sum::<u64>()
        .saturating_add(total(counters, UNCOMPARED));
    judged.saturating_sub(other)
}

/// The would-be hit ratio and the estimated origin offload, per mille of the would-be
/// counts (`None` before any).
#[must_use]
pub fn ratios(counters: &std::collections::BTreeMap<String, u64>) -> Option<(u64, u64)> {
    let would = |s| total(counters, &would_counter(s));
    let all: u64 = WouldStatus::ALL.into_iter().map(would).sum();
    if all == 0 {
        return None;
    }
    let hits = would(WouldStatus::Hit) + would(WouldStatus::Negative);
    let offloaded = hits + would(WouldStatus::Stale);
    Some((hits * 1000 / all, offloaded * 1000 / all))
}

/// `GET /admin/shadow`: the recent window, the totals, the ratios and the latest samples.
pub fn report(
    store: &mut impl KvStore,
    cfg: &CacheConfig,
    now: UnixMillis,
) -> Result<Reply, RequestError> {
    let recent =
        recent(store, now, cfg.rollout_gate_window).map_err(RequestError::StoreUnavailable)?;
    let counters = crate::counters::load(store).map_err(RequestError::StoreUnavailable)?;
    let samples = load_samples(store).map_err(RequestError::StoreUnavailable)?;
    let compared = recent.matches.saturating_add(recent.mismatches);
    let per_mille = |n: u64, of: u64| (of > 0).then(|| n.saturating_mul(1000) / of);
    let ratios = ratios(&counters);
    Ok(ok(&json!({
        "window": {
            "seconds": cfg.rollout_gate_window.as_secs(),
            "matches": recent.matches,
            "mismatches": recent.mismatches,
            "mismatch_per_mille": per_mille(recent.mismatches, compared),
        },
        "totals": {
            "matches": matches(&counters),
            "mismatches": Reason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), json!(total(&counters, &mismatch_counter(*r)))))
                .collect::<serde_json::Map<String, Value>>(),
            "uncompared": total(&counters, UNCOMPARED),
            "would_serve": WouldStatus::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), json!(total(&counters, &would_counter(*s)))))
                .collect::<serde_json::Map<String, Value>>(),
        },
        "would_be_hit_per_mille": ratios.map(|r| r.0),
        "estimated_origin_offload_per_mille": ratios.map(|r| r.1),
        "samples": samples,
    })))
}
