//! The delivery journal: spots a write that reaches the API twice in different batches, and
//! a write that is applied twice.
//!
//! Resending a batch under its own id is fine (the idempotency table answers it). A second
//! delivery of the same write under a *new* batch id is harmless too: the store answers its
//! write id `duplicate` (and the version guard would answer it `stale`). The journal keeps two
//! counts, for `/_stats`:
//!
//! - `writes_redelivered`: every (namespace, key, version, value) delivered in a first-sent
//!   batch is remembered, and the ones seen again are counted. This measures the cache's flush
//!   lease, not the contract: it must stay 0 where the cache's store has compare-and-swap,
//!   and the reliability tests assert it.
//! - `writes_applied_twice`: every write id the store answered `applied` is remembered, and
//!   one answered `applied` again is counted. This is the contract's own promise (each write
//!   applied exactly once); it stays 0 unless the `skip_write_guards` fault turns the store's
//!   guards off.
//!
//! Memory is bounded: past [`CAPACITY`] entries each set stops recording (and says so in
//! `/_stats`), so a long-running reference API does not grow without end.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use cache_sync_contract::wire::{ItemResult, ItemStatus};

use crate::backend::{PlannedWrite, ValidWrite};

/// Writes remembered at most, per set.
pub const CAPACITY: usize = 2_000_000;

/// The identity of one delivered write.
type Identity = (String, String, u64, u64);

fn identity(w: &ValidWrite) -> Identity {
    let mut h = DefaultHasher::new();
    w.op.eq(&cache_sync_contract::wire::WriteOp::Delete)
        .hash(&mut h);
    w.value.hash(&mut h);
    (w.ns.clone(), w.key.clone(), w.version, h.finish())
}

/// Every write delivered in a first-sent batch, and every write id applied, since start or
/// the last reset.
#[derive(Debug, Default)]
pub struct DeliveryJournal {
    seen: Mutex<HashSet<Identity>>,
    applied: Mutex<HashSet<u128>>,
}

impl DeliveryJournal {
    /// Records the writes of a first-sent batch; returns how many were delivered before.
    pub fn record<'a>(&self, writes: impl IntoIterator<Item = &'a PlannedWrite>) -> u64 {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut again = 0;
        for w in writes {
            let PlannedWrite::Write(w) = w else { continue };
            let id = identity(w);
            if seen.contains(&id) {
                again += 1;
            } else if seen.len() < CAPACITY {
                seen.insert(id);
            }
        }
        again
    }

    /// Records the write ids a first-sent batch applied (`results` in the order of
    /// `writes`); returns how many had been applied before.
    pub fn record_applied(&self, writes: &[PlannedWrite], results: &[ItemResult]) -> u64 {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let mut again = 0;
        for (w, r) in writes.iter().zip(results) {
            let PlannedWrite::Write(w) = w else { continue };
            if r.status != ItemStatus::Applied {
                continue;
            }
            // Validated as 32 hex digits; an id that did not parse could not be compared.
            let Ok(id) = u128::from_str_radix(&w.write_id, 16) else {
                continue;
            };
            if applied.contains(&id) {
                again += 1;
            } else if applied.len() < CAPACITY {
                applied.insert(id);
            }
        }
        again
    }

    /// Writes remembered.
    pub fn len(&self) -> u64 {
        self.seen.lock().map(|s| s.len() as u64).unwrap_or(0)
    }

    /// Applied write ids remembered.
    pub fn applied_len(&self) -> u64 {
        self.applied.lock().map(|s| s.len() as u64).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.applied_len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_sync_contract::wire::WriteOp;

    fn put(key: &str, version: u64, value: &str) -> PlannedWrite {
        PlannedWrite::Write(ValidWrite {
            ns: "n".into(),
            key: key.into(),
            write_id: format!("{version:032x}"),
            op: WriteOp::Put,
            value: Some(value.into()),
            version,
            written_at: 1,
            only_if: None,
        })
    }

    #[test]
    fn counts_a_write_seen_in_an_earlier_batch() {
        let j = DeliveryJournal::default();
        assert_eq!(j.record(&[put("a", 1, "1"), put("b", 1, "1")]), 0);
        assert_eq!(j.record(&[put("a", 2, "2")]), 0, "a newer version is new");
        assert_eq!(
            j.record(&[put("a", 1, "9")]),
            0,
            "same version, other value"
        );
        assert_eq!(j.record(&[put("a", 1, "1"), put("c", 1, "1")]), 1);
        assert_eq!(j.record(&[PlannedWrite::Rejected("no".into())]), 0);
        assert_eq!(j.len(), 5);
        j.clear();
        assert!(j.is_empty());
    }

    #[test]
    fn counts_a_write_id_applied_again() {
        let status = |s| ItemResult {
            status: s,
            reason: None,
        };
        let j = DeliveryJournal::default();
        let (one, two) = (put("a", 1, "1"), put("a", 2, "2"));
        let applied = status(ItemStatus::Applied);
        assert_eq!(
            j.record_applied(
                &[one.clone(), two.clone()],
                &[applied.clone(), applied.clone()]
            ),
            0
        );
        for other in [ItemStatus::Duplicate, ItemStatus::Stale] {
            assert_eq!(
                j.record_applied(std::slice::from_ref(&one), &[status(other)]),
                0
            );
        }
        assert_eq!(
            j.record_applied(
                &[PlannedWrite::Rejected("no".into()), two],
                &[status(ItemStatus::Rejected), applied]
            ),
            1
        );
        assert_eq!(j.applied_len(), 2);
        j.clear();
        assert!(j.is_empty());
    }
}
