//! The flush state record (`m:flush`) and the statistics derived for `/admin/stats`.
//!
//! The state carries what must survive between flush runs: the backoff window after failures
//! and the outcome of the last run. It also carries the buffer's size as the last run
//! measured it and the admission epoch, which the gateway's backpressure starts from
//! ([`crate::buffer::measure`]): listing the buffer on every write would make a write's cost
//! grow with the store. Only the lease holder writes it. An unreadable state record counts
//! as the default state (epoch 0, nothing measured), as does a missing one.

use serde::{Deserialize, Serialize};

use crate::buffer::measure;
use crate::delivery::sweep::Swept;
use crate::stamp::Stamp;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::{KvKey, RecordKind};
use crate::time::UnixMillis;

const STATE_FORMAT: u8 = 1;

/// What persists between flush runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushState {
    /// Consecutive failed runs; drives the backoff.
    pub failures: u32,
    /// No batch is sent before this instant.
    pub next_attempt_at: Option<UnixMillis>,
    /// When the last run ended.
    pub last_run_at: Option<UnixMillis>,
    /// Label of the last run's outcome.
    pub last_outcome: Option<String>,
    /// The last error, if the last run failed.
    pub last_error: Option<String>,
    /// When a run last delivered everything it tried.
    pub last_success_at: Option<UnixMillis>,
    /// Buffer records measured by the last run, plus those admitted in the epochs it closed.
    pub buffered_writes: u64,
    /// Their bytes, likewise.
    pub buffered_bytes: u64,
    /// Stamp time of the oldest of them, when known.
    pub oldest_buffered: Option<UnixMillis>,
    /// The admission epoch: writes count themselves under `m:admit:{epoch}:…`.
    pub epoch: u64,
    /// When the current epoch began.
    pub epoch_started_at: Option<UnixMillis>,
    /// Dead letters, as the last run left them (its listing plus what it dead-lettered).
    pub dead_letters: u64,
    /// Sealed batches the last run left unanswered.
    pub sealed_batches: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredState {
    v: u8,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    next_attempt_at: Option<u64>,
    #[serde(default)]
    last_run_at: Option<u64>,
    #[serde(default)]
    last_outcome: Option<String>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    last_success_at: Option<u64>,
    #[serde(default)]
    buffered_bytes: u64,
    #[serde(default)]
    buffered_writes: u64,
    #[serde(default)]
    oldest_buffered: Option<u64>,
    #[serde(default)]
    epoch: u64,
    #[serde(default)]
    epoch_started_at: Option<u64>,
    #[serde(default)]
    dead_letters: u64,
    #[serde(default)]
    sealed_batches: u64,
}

impl FlushState {
    /// Reads the state; missing or unreadable means the default.
    pub fn load(store: &mut impl KvStore) -> Result<FlushState, StoreError> {
        Ok(store
            .get(&KvKey::FlushState.render())?
            .and_then(|b| serde_json::from_slice::<StoredState>(&b).ok())
            .filter(|s| s.v == STATE_FORMAT)
            .map(|s| FlushState {
                failures: s.failures,
                next_attempt_at: s.next_attempt_at.map(UnixMillis),
                last_run_at: s.last_run_at.map(UnixMillis),
                last_outcome: s.last_outcome,
                last_error: s.last_error,
                last_success_at: s.last_success_at.map(UnixMillis),
                buffered_writes: s.buffered_writes,
                buffered_bytes: s.buffered_bytes,
                oldest_buffered: s.oldest_buffered.map(UnixMillis),
                epoch: s.epoch,
                epoch_started_at: s.epoch_started_at.map(UnixMillis),
                dead_letters: s.dead_letters,
                sealed_batches: s.sealed_batches,
            })
            .unwrap_or_default())
    }

    /// Stores the state.
    pub fn save(&self, store: &mut impl KvStore) -> Result<(), StoreError> {
        let stored = StoredState {
            v: STATE_FORMAT,
            failures: self.failures,
            next_attempt_at: self.next_attempt_at.map(|t| t.0),
            last_run_at: self.last_run_at.map(|t| t.0),
            last_outcome: self.last_outcome.clone(),
            last_error: self.last_error.clone(),
            last_success_at: self.last_success_at.map(|t| t.0),
            buffered_bytes: self.buffered_bytes,
            buffered_writes: self.buffered_writes,
            oldest_buffered: self.oldest_buffered.map(|t| t.0),
            epoch: self.epoch,
            epoch_started_at: self.epoch_started_at.map(|t| t.0),
            dead_letters: self.dead_letters,
            sealed_batches: self.sealed_batches,
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| StoreError::Other(e.to_string()))?;
        store.set(&KvKey::FlushState.render(), &bytes)
    }
}

/// What `/admin/stats` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushStats {
    /// Cache entries.
    pub entries: usize,
    /// Buffered writes.
    pub buffered_writes: usize,
    /// Bytes buffered, as of the last flush run.
    pub buffered_bytes: u64,
    /// Age of the oldest buffered write, in milliseconds.
    pub oldest_buffered_age_ms: Option<u64>,
    /// Sealed batches waiting for an answer.
    pub sealed_batches: usize,
    /// Dead letters.
    pub dead_letters: usize,
    /// The persisted flush state (last outcome, backoff).
    pub state: FlushState,
}

/// The statistics without listing the store (for `/metrics`, scraped often): the buffer
/// as [`measure::current`] knows it, the entries the last sweep counted, and the dead letters
/// and sealed batches the last flush run left. A handful of reads, whatever the store holds;
/// exact as of the last tick, except buffered writes and bytes, which include the writes
/// counted since ([`crate::buffer::measure`] says how far that count can be off).
pub fn gauges(store: &mut impl KvStore, now: UnixMillis) -> Result<FlushStats, StoreError> {
    let state = FlushState::load(store)?;
    let buffer = measure::current(store, &state)?;
    let swept = Swept::load(store)?;
    Ok(FlushStats {
        entries: usize::try_from(swept.entries).unwrap_or(usize::MAX),
        buffered_writes: buffer.writes,
        buffered_bytes: buffer.bytes,
        oldest_buffered_age_ms: buffer.oldest.map(|o| now.0.saturating_sub(o.0)),
        sealed_batches: usize::try_from(state.sealed_batches).unwrap_or(usize::MAX),
        dead_letters: usize::try_from(state.dead_letters).unwrap_or(usize::MAX),
        state,
    })
}

/// Gathers the statistics exactly, with one key listing and one read (for `/admin/stats`).
/// The listing grows with the store.
pub fn stats(store: &mut impl KvStore, now: UnixMillis) -> Result<FlushStats, StoreError> {
    let state = FlushState::load(store)?;
    let mut out = FlushStats {
        buffered_bytes: state.buffered_bytes,
        state,
        ..FlushStats::default()
    };
    let mut oldest: Option<Stamp> = None;
    for key in store.get_keys()? {
        match RecordKind::of(&key) {
            Some(RecordKind::Entry) => out.entries += 1,
            Some(RecordKind::Write) => {
                out.buffered_writes += 1;
                if let Some(KvKey::Write(s)) = KvKey::parse(&key) {
                    oldest = Some(oldest.map_or(s, |o| o.min(s)));
                }
            }
            Some(RecordKind::Batch) => out.sealed_batches += 1,
            Some(RecordKind::DeadLetter) => out.dead_letters += 1,
            Some(RecordKind::Meta | RecordKind::Rate) | None => {}
        }
    }
    out.oldest_buffered_age_ms = oldest.map(|s| now.0.saturating_sub(s.millis().0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn state_round_trips_and_garbage_reads_as_default() {
        let mut store = MemoryStore::new();
        assert_eq!(FlushState::load(&mut store).unwrap(), FlushState::default());
        let state = FlushState {
            failures: 2,
            next_attempt_at: Some(UnixMillis(5)),
            buffered_writes: 3,
            oldest_buffered: Some(UnixMillis(2)),
            epoch: 7,
            epoch_started_at: Some(UnixMillis(4)),
            ..FlushState::default()
        };
        state.save(&mut store).unwrap();
        let back = FlushState::load(&mut store).unwrap();
        assert_eq!(back, state);
        assert!(store.peek("m:flush").unwrap().starts_with(b"{\"v\":1,"));
        store.set("m:flush", b"{").unwrap();
        assert_eq!(FlushState::load(&mut store).unwrap(), FlushState::default());
    }

    #[test]
    fn stats_count_every_record_kind() {
        let mut store = MemoryStore::new();
        let s = Stamp::new(UnixMillis(1_000), 0, 1);
        for key in [
            "c:ns:a".to_owned(),
            "c:ns:b".to_owned(),
            format!("w:{s}"),
            format!("d:{s}"),
            format!("b:{}", "0".repeat(32)),
            "m:lease".to_owned(),
            "other".to_owned(),
        ] {
            store.set(&key, b"x").unwrap();
        }
        let st = stats(&mut store, UnixMillis(4_000)).unwrap();
        assert_eq!(
            (
                st.entries,
                st.buffered_writes,
                st.sealed_batches,
                st.dead_letters,
                st.oldest_buffered_age_ms
            ),
            (2, 1, 1, 1, Some(3_000))
        );
    }
}
