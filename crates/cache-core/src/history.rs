//! The dashboard's history: a short ring of per-minute snapshots, so its plots show the last
//! hour as soon as the page loads.
//!
//! Why this shape: the dashboard must not make the store work per view (no listing, no scan
//! of counters over time), and a Spin instance keeps nothing between requests. So every
//! tick (the cron flush, or `POST /admin/flush`) records one snapshot ([`record`]): the
//! `/metrics` counters by name and the gauges the tick just measured (one `get_many` and a
//! handful of `get`s, [`crate::counters::load`] and [`crate::delivery::state::gauges`]),
//! plus what its flush run did. Snapshots of one minute are merged; at most [`SLOTS`] are
//! kept, all in one key (`m:history`), so the history costs one key on Fermyon Cloud's
//! 1024 and one `get` plus one `set` per tick. Only ticks write it; two ticks racing can
//! lose one's flush counts for that minute, nothing else.
//!
//! [`series`] turns the ring into what the plots draw: per-minute rates from the cumulative
//! counters (the first snapshot counts from zero), and the gauges as they were. Nothing in
//! it names a key or shows a value: counts, rates and ages only.

use serde::{Deserialize, Serialize};

use crate::counters;
use crate::delivery::flush::{FlushOutcome, FlushReport};
use crate::delivery::state::gauges;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::UnixMillis;

/// Snapshots kept: one hour of minutes.
pub const SLOTS: usize = 60;

const FORMAT: u8 = 1;
const MINUTE_MS: u64 = 60_000;

/// One minute's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The minute (Unix milliseconds / 60 000).
    pub minute: u64,
    /// Cumulative counters at the last tick of the minute: hits (fresh and negative),
    /// stale serves, misses, origin fetches, their milliseconds, buffered writes, errors.
    pub hits: u64,
    /// Stale entries served (cumulative).
    pub stale: u64,
    /// Misses (cumulative).
    pub misses: u64,
    /// Origin fetches (cumulative).
    pub origin_fetches: u64,
    /// Origin fetch time, ms (cumulative).
    pub origin_fetch_ms: u64,
    /// Writes accepted (cumulative).
    pub writes: u64,
    /// Error replies (cumulative).
    pub errors: u64,
    /// Writes waiting for the flush, at the last tick.
    pub buffered_writes: u64,
    /// Age of the oldest of them, ms.
    pub oldest_dirty_ms: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Flush runs this minute that delivered (or had nothing to do).
    pub flush_ok: u64,
    /// Flush runs this minute that failed or backed off.
    pub flush_failed: u64,
    /// Items the DB API applied this minute.
    pub delivered: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    v: u8,
    snapshots: Vec<Snapshot>,
}

/// The ring as stored; missing or unreadable is empty.
pub fn load(store: &mut impl KvStore) -> Result<Vec<Snapshot>, StoreError> {
    Ok(store
        .get(&KvKey::History.render())?
        .and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
        .filter(|s| s.v == FORMAT)
        .map(|s| s.snapshots)
        .unwrap_or_default())
}

/// Adds this tick to the ring at `now` (module docs).
pub fn record(
    store: &mut impl KvStore,
    now: UnixMillis,
    flush: &FlushReport,
) -> Result<(), StoreError> {
    let mut ring = load(store)?;
    let counts = counters::load(store)?;
    let stats = gauges(store, now)?;
    let get = |n: &str| counts.get(n).copied().unwrap_or(0);
    let errors = counts
        .iter()
        .filter(|(k, _)| k.starts_with("error."))
        .map(|(_, v)| *v)
        .fold(0u64, u64::saturating_add);
    let minute = now.0 / MINUTE_MS;
    let mut snap = match ring.last() {
        Some(last) if last.minute == minute => ring.pop().unwrap_or_default(),
        _ => Snapshot {
            minute,
            ..Snapshot::default()
        },
    };
    snap.hits = get(counters::HITS).saturating_add(get(counters::NEGATIVE_HITS));
    snap.stale = get(counters::STALE);
    snap.misses = get(counters::MISSES);
    snap.origin_fetches = get(counters::ORIGIN_FETCHES);
    snap.origin_fetch_ms = get(counters::ORIGIN_FETCH_MS);
    snap.writes = get(counters::WRITES_BUFFERED);
    snap.errors = errors;
    snap.buffered_writes = stats.buffered_writes as u64;
    snap.oldest_dirty_ms = stats.oldest_buffered_age_ms.unwrap_or(0);
    snap.dead_letters = stats.dead_letters as u64;
    match flush.outcome {
        FlushOutcome::Delivered | FlushOutcome::Idle => {
            snap.flush_ok = snap.flush_ok.saturating_add(1)
        }
        FlushOutcome::Retrying { .. } | FlushOutcome::StoreFailed(_) => {
            snap.flush_failed = snap.flush_failed.saturating_add(1);
        }
        FlushOutcome::BackingOff { .. }
        | FlushOutcome::LeaseBusy { .. }
        | FlushOutcome::LeaseLost => {}
    }
    snap.delivered = snap.delivered.saturating_add(flush.items.applied as u64);
    ring.push(snap);
    let excess = ring.len().saturating_sub(SLOTS);
    ring.drain(..excess);
    let bytes = serde_json::to_vec(&Stored {
        v: FORMAT,
        snapshots: ring,
    })
    .map_err(|e| StoreError::Other(e.to_string()))?;
    store.set(&KvKey::History.render(), &bytes)
}

/// What the dashboard plots: one value per minute per series, aligned on `t`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Each point's minute, as Unix seconds.
    pub t: Vec<u64>,
    /// Share of reads served from the cache (fresh, negative or stale), percent.
    pub hit_rate: Vec<Option<f64>>,
    /// Origin fetches in the minute.
    pub origin_fetches: Vec<u64>,
    /// Mean origin fetch time in the minute, ms.
    pub origin_latency_ms: Vec<Option<f64>>,
    /// Writes accepted in the minute.
    pub writes: Vec<u64>,
    /// Writes waiting for the flush.
    pub buffered_writes: Vec<u64>,
    /// Age of the oldest of them, seconds.
    pub oldest_dirty_s: Vec<f64>,
    /// Flush runs that delivered.
    pub flush_ok: Vec<u64>,
    /// Flush runs that failed.
    pub flush_failed: Vec<u64>,
    /// Items applied by the DB API.
    pub delivered: Vec<u64>,
    /// Dead letters.
    pub dead_letters: Vec<u64>,
    /// Error replies in the minute.
    pub errors: Vec<u64>,
}

/// The ring as plot series (module docs). Counters that went down (a store reset) count
/// from zero again.
#[must_use]
pub fn series(ring: &[Snapshot]) -> Series {
    let mut out = Series::default();
    let zero = Snapshot::default();
    for (i, s) in ring.iter().enumerate() {
        let prev = if i == 0 { &zero } else { &ring[i - 1] };
        let d = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
        // Stored values are trusted no further than their format: nothing here may overflow.
        let hits = d(s.hits, prev.hits).saturating_add(d(s.stale, prev.stale));
        let misses = d(s.misses, prev.misses);
        let fetches = d(s.origin_fetches, prev.origin_fetches);
        let fetch_ms = d(s.origin_fetch_ms, prev.origin_fetch_ms);
        let reads = hits.saturating_add(misses);
        out.t.push(s.minute.saturating_mul(60));
        out.hit_rate
            .push((reads > 0).then(|| 100.0 * hits as f64 / reads as f64));
        out.origin_fetches.push(fetches);
        out.origin_latency_ms
            .push((fetches > 0).then(|| fetch_ms as f64 / fetches as f64));
        out.writes.push(d(s.writes, prev.writes));
        out.buffered_writes.push(s.buffered_writes);
        out.oldest_dirty_s.push(s.oldest_dirty_ms as f64 / 1000.0);
        out.flush_ok.push(s.flush_ok);
        out.flush_failed.push(s.flush_failed);
        out.delivered.push(s.delivered);
        out.dead_letters.push(s.dead_letters);
        out.errors.push(d(s.errors, prev.errors));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::settle::Tally;
    use crate::store::MemoryStore;

    fn report(outcome: FlushOutcome, applied: usize) -> FlushReport {
        FlushReport {
            outcome,
            items: Tally {
                applied,
                ..Tally::default()
            },
            ..FlushReport::default()
        }
    }

    #[test]
    fn ticks_of_one_minute_merge_and_the_ring_keeps_an_hour() {
        let mut store = MemoryStore::new();
        let t0 = 1_700_000_000_000 / MINUTE_MS * MINUTE_MS;
        store
            .increment(&KvKey::Tally(counters::HITS.into()).render(), 30)
            .unwrap();
        store
            .increment(&KvKey::Tally(counters::MISSES.into()).render(), 10)
            .unwrap();
        record(
            &mut store,
            UnixMillis(t0),
            &report(FlushOutcome::Delivered, 3),
        )
        .unwrap();
        let failed = FlushOutcome::Retrying {
            next_attempt_at: UnixMillis(0),
            error: "down".into(),
        };
        record(&mut store, UnixMillis(t0 + 30_000), &report(failed, 0)).unwrap();
        let ring = load(&mut store).unwrap();
        assert_eq!(ring.len(), 1);
        assert_eq!(
            (ring[0].flush_ok, ring[0].flush_failed, ring[0].delivered),
            (1, 1, 3)
        );

        store
            .increment(&KvKey::Tally(counters::HITS.into()).render(), 10)
            .unwrap();
        store
            .increment(&KvKey::Tally(counters::MISSES.into()).render(), 10)
            .unwrap();
        record(
            &mut store,
            UnixMillis(t0 + MINUTE_MS),
            &report(FlushOutcome::Idle, 0),
        )
        .unwrap();
        let s = series(&load(&mut store).unwrap());
        assert_eq!(s.t.len(), 2);
        assert_eq!(s.hit_rate, [Some(75.0), Some(50.0)]);
        assert_eq!(s.flush_failed, [1, 0]);

        for m in 2..100 {
            record(
                &mut store,
                UnixMillis(t0 + m * MINUTE_MS),
                &report(FlushOutcome::Idle, 0),
            )
            .unwrap();
        }
        let ring = load(&mut store).unwrap();
        assert_eq!(ring.len(), SLOTS);
        assert_eq!(ring.last().unwrap().minute, t0 / MINUTE_MS + 99);
    }

    #[test]
    fn hostile_stored_numbers_do_not_overflow() {
        let big = Snapshot {
            minute: u64::MAX,
            hits: u64::MAX,
            stale: u64::MAX,
            misses: u64::MAX,
            ..Snapshot::default()
        };
        let s = series(&[big.clone(), Snapshot::default(), big]);
        assert_eq!(s.t.len(), 3);
        assert!(s
            .hit_rate
            .iter()
            .flatten()
            .all(|r| (0.0..=100.0).contains(r)));
    }

    #[test]
    fn an_unreadable_ring_starts_again() {
        let mut store = MemoryStore::new();
        store.set(&KvKey::History.render(), b"{not json").unwrap();
        assert!(load(&mut store).unwrap().is_empty());
        record(
            &mut store,
            UnixMillis(60_000),
            &report(FlushOutcome::Idle, 0),
        )
        .unwrap();
        assert_eq!(load(&mut store).unwrap().len(), 1);
    }
}
