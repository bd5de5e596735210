//! How big the buffer is, known on the write path without listing it.
//!
//! Backpressure needs the buffer's record count, bytes and oldest write on every write.
//! Listing the store to count `w:` keys made a write's cost grow with the store: every cached
//! entry was listed too, and on a shared Redis a full-keyspace listing per write blocks the
//! server for every replica. Instead the size is measured where the buffer is listed anyway,
//! by the flush run, and writes count themselves in between:
//!
//! - The flush state ([`FlushState`]) holds a *base* (records, bytes, oldest write) and an
//!   *epoch*. Each write adds itself to the epoch's two counters, `m:admit:{epoch}:n` (one)
//!   and `m:admit:{epoch}:b` (its record's bytes), with `increment`, and is admitted against
//!   base + counters ([`count_write`]): one read and two increments, whatever the store holds.
//! - A flush run, under the lease and before it lists the buffer, closes the epoch
//!   ([`begin_epoch`]): it folds the closed epoch's counters into the base, starts the next
//!   epoch and deletes the closed counters. After delivering it replaces the base with what
//!   it measured: the records it listed minus those it settled ([`rebase`]). Writes counted
//!   in the new epoch stay counted on top.
//!
//! # How far the count can be off
//!
//! - **Over** (refusing early, never unsafe): a write counts itself before it stores its
//!   record, and a refused or failed write stays counted until the next run re-measures; a
//!   record stored between a run's epoch switch and its listing is counted twice until the
//!   run after. The oldest write's age is taken as the epoch's start once another write was
//!   counted in it, which can only make it look older.
//! - **Under** (admitting beyond a bound): a write that read the state before a run switched
//!   epochs, and stored its record after the run listed the buffer, is in neither the
//!   measure nor the new epoch's counters until the next run: at most the writes in flight
//!   at that instant. Without `wasi:keyvalue/atomics` (Fermyon Cloud, Akamai Functions)
//!   `increment` is a read-modify-write and loses increments that overlap; with `c` writers
//!   racing continuously the counters can lag up to `(c - 1) / c` of the writes since the
//!   last run, so the buffer can overshoot `max_buffered_writes` by up to a factor `c` in the
//!   worst case. Every run re-measures, so the error never outlives one flush interval.
//!
//! A store that was never measured (no flush run yet) counts from zero, and its first write
//! records the time (`m:admit:{epoch}:t`) so the age bound holds before any run; the first
//! run measures what was there.

use std::cmp::min;

use crate::buffer::BufferStats;
use crate::delivery::state::FlushState;
use crate::stamp::Stamp;
use crate::store::{decode_counter, KvStore, StoreError};
use crate::stored::kv_key::{Admitted, KvKey};
use crate::time::UnixMillis;

fn counter(epoch: u64, measure: Admitted) -> String {
    KvKey::Admitted { epoch, measure }.render()
}

/// Counts a write whose buffer record is `bytes` long into the current epoch and returns the
/// buffer as it stands without it, for [`crate::buffer::admit`].
pub fn count_write(
    store: &mut impl KvStore,
    state: &FlushState,
    bytes: u64,
    now: UnixMillis,
) -> Result<BufferStats, StoreError> {
    let n = store.increment(&counter(state.epoch, Admitted::Writes), 1)?;
    let b = store.increment(&counter(state.epoch, Admitted::Bytes), bytes)?;
    let before = n.saturating_sub(1);
    let started = match state.epoch_started_at {
        Some(at) => Some(at),
        None => first_counted(store, state.epoch, n, now)?,
    };
    let oldest = oldest(state.oldest_buffered, started, before > 0);
    Ok(BufferStats {
        writes: usize::try_from(state.buffered_writes.saturating_add(before)).unwrap_or(usize::MAX),
        bytes: state.buffered_bytes.saturating_add(b.saturating_sub(bytes)),
        oldest,
    })
}

/// The buffer as it stands: the last measure plus what the current epoch counted, read
/// without counting anything (for `/metrics`). Two reads, whatever the store holds.
pub fn current(store: &mut impl KvStore, state: &FlushState) -> Result<BufferStats, StoreError> {
    let read = |store: &mut _, m| -> Result<u64, StoreError> {
        Ok(KvStore::get(store, &counter(state.epoch, m))?
            .as_deref()
            .map_or(0, decode_counter))
    };
    let n = read(store, Admitted::Writes)?;
    let b = read(store, Admitted::Bytes)?;
    let oldest = oldest(state.oldest_buffered, state.epoch_started_at, n > 0);
    Ok(BufferStats {
        writes: usize::try_from(state.buffered_writes.saturating_add(n)).unwrap_or(usize::MAX),
        bytes: state.buffered_bytes.saturating_add(b),
        oldest,
    })
}

/// The oldest buffered write as known: the measured oldest, or the epoch's start once a write
/// was counted in the epoch (`counted`), whichever is earlier.
fn oldest(
    measured: Option<UnixMillis>,
    epoch_start: Option<UnixMillis>,
    counted: bool,
) -> Option<UnixMillis> {
    match (measured, epoch_start) {
        (Some(o), Some(e)) if counted => Some(min(o, e)),
        (o, e) if counted => o.or(e),
        (o, _) => o,
    }
}

/// The start of an epoch no flush run began (a store never flushed): the first write counted
/// in it (`n == 1`) records `now`, later ones read it. Costs nothing once a run has begun an
/// epoch.
fn first_counted(
    store: &mut impl KvStore,
    epoch: u64,
    n: u64,
    now: UnixMillis,
) -> Result<Option<UnixMillis>, StoreError> {
    let key = counter(epoch, Admitted::Since);
    if n == 1 {
        store.set(&key, &now.0.to_le_bytes())?;
        return Ok(Some(now));
    }
    Ok(store
        .get(&key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(|b| UnixMillis(u64::from_le_bytes(b))))
}

/// Closes the current epoch at `now`: folds its counters into the base, starts the next one,
/// stores the state and deletes the closed counters. Only the lease holder calls it.
pub fn begin_epoch(
    store: &mut impl KvStore,
    state: &mut FlushState,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let closed = state.epoch;
    let n_raw = store.get(&counter(closed, Admitted::Writes))?;
    let b_raw = store.get(&counter(closed, Admitted::Bytes))?;
    let n = n_raw.as_deref().map_or(0, decode_counter);
    let b = b_raw.as_deref().map_or(0, decode_counter);
    let mut since_raw = None;
    if state.epoch_started_at.is_none() {
        since_raw = store.get(&counter(closed, Admitted::Since))?;
        state.epoch_started_at = since_raw
            .as_deref()
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| UnixMillis(u64::from_le_bytes(b)));
    }
    state.oldest_buffered = oldest(state.oldest_buffered, state.epoch_started_at, n > 0);
    state.buffered_writes = state.buffered_writes.saturating_add(n);
    state.buffered_bytes = state.buffered_bytes.saturating_add(b);
    state.epoch = closed.wrapping_add(1);
    state.epoch_started_at = Some(now);
    state.save(store)?;
    for (raw, m) in [
        (n_raw, Admitted::Writes),
        (b_raw, Admitted::Bytes),
        (since_raw, Admitted::Since),
    ] {
        if raw.is_some() {
            store.delete(&counter(closed, m))?;
        }
    }
    Ok(())
}

/// Whether `key` is an admission counter of an epoch before `current`: a write that read the
/// state just before an epoch closed can count itself after the counters were deleted.
#[must_use]
pub fn is_closed_counter(key: &str, current: u64) -> bool {
    matches!(KvKey::parse(key), Some(KvKey::Admitted { epoch, .. }) if epoch < current)
}

/// Replaces the base with a run's measure: `remaining` are the stamps of the buffer records
/// it listed and did not settle; `bytes`, when the run read them all, their size.
pub fn rebase(state: &mut FlushState, remaining: &[Stamp], bytes: Option<u64>) {
    state.buffered_writes = remaining.len() as u64;
    state.oldest_buffered = remaining.iter().map(|s| s.millis()).min();
    if let Some(b) = bytes {
        state.buffered_bytes = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, WithoutAtomics};

    fn t(ms: u64) -> UnixMillis {
        UnixMillis(ms)
    }

    #[test]
    fn writes_count_themselves_on_top_of_the_last_measure() {
        let mut store = MemoryStore::new();
        let state = FlushState {
            buffered_writes: 10,
            buffered_bytes: 1_000,
            oldest_buffered: Some(t(50)),
            epoch: 3,
            epoch_started_at: Some(t(40)),
            ..FlushState::default()
        };
        let first = count_write(&mut store, &state, 100, t(60)).unwrap();
        assert_eq!(
            (first.writes, first.bytes, first.oldest),
            (10, 1_000, Some(t(50)))
        );
        let second = count_write(&mut store, &state, 30, t(70)).unwrap();
        // The epoch's start stands for the first write's age once it is counted.
        assert_eq!(
            (second.writes, second.bytes, second.oldest),
            (11, 1_100, Some(t(40)))
        );
        assert_eq!(
            store.keys_with_prefix("m:admit:"),
            ["m:admit:3:b", "m:admit:3:n"]
        );
    }

    #[test]
    fn a_run_folds_the_closed_epoch_and_then_measures() {
        let mut store = MemoryStore::new();
        let mut state = FlushState {
            epoch: 1,
            epoch_started_at: Some(t(100)),
            ..FlushState::default()
        };
        for _ in 0..4 {
            count_write(&mut store, &state, 10, t(150)).unwrap();
        }
        begin_epoch(&mut store, &mut state, t(500)).unwrap();
        assert_eq!(
            (
                state.buffered_writes,
                state.buffered_bytes,
                state.oldest_buffered,
                state.epoch
            ),
            (4, 40, Some(t(100)), 2)
        );
        assert!(store.keys_with_prefix("m:admit:").is_empty());
        assert_eq!(FlushState::load(&mut store).unwrap(), state);
        // A write during the run counts in the new epoch, on top of the measure.
        count_write(&mut store, &state, 7, t(600)).unwrap();
        let s1 = Stamp::new(t(300), 0, 1);
        let s2 = Stamp::new(t(200), 0, 1);
        rebase(&mut state, &[s1, s2], Some(25));
        let next = count_write(&mut store, &state, 1, t(700)).unwrap();
        assert_eq!(
            (next.writes, next.bytes, next.oldest),
            (3, 32, Some(t(200)))
        );
        rebase(&mut state, &[], None);
        assert_eq!(
            (
                state.buffered_writes,
                state.buffered_bytes,
                state.oldest_buffered
            ),
            (0, 25, None)
        );
    }

    #[test]
    fn before_any_run_the_first_counted_write_dates_the_epoch() {
        let mut store = MemoryStore::new();
        let mut state = FlushState::default();
        assert_eq!(
            count_write(&mut store, &state, 1, t(100)).unwrap().oldest,
            None
        );
        assert_eq!(
            count_write(&mut store, &state, 1, t(900)).unwrap().oldest,
            Some(t(100))
        );
        begin_epoch(&mut store, &mut state, t(1_000)).unwrap();
        assert_eq!(
            (state.oldest_buffered, state.epoch_started_at),
            (Some(t(100)), Some(t(1_000)))
        );
        assert!(store.keys_with_prefix("m:admit:").is_empty());
        // Once a run began the epoch, nothing more is kept for it.
        count_write(&mut store, &state, 1, t(1_100)).unwrap();
        count_write(&mut store, &state, 1, t(1_200)).unwrap();
        assert_eq!(
            store.keys_with_prefix("m:admit:"),
            ["m:admit:1:b", "m:admit:1:n"]
        );
    }

    #[test]
    fn counters_of_closed_epochs_are_recognised() {
        assert!(is_closed_counter("m:admit:2:n", 3));
        assert!(!is_closed_counter("m:admit:3:b", 3));
        assert!(!is_closed_counter("m:count:hits", 3));
    }

    #[test]
    fn without_atomics_the_counters_still_count_one_writer() {
        let mut store = WithoutAtomics(MemoryStore::new());
        let state = FlushState::default();
        for i in 0..5 {
            assert_eq!(
                count_write(&mut store, &state, 1, t(i as u64))
                    .unwrap()
                    .writes,
                i
            );
        }
    }
}
