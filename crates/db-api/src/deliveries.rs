//! The delivery journal: spots a write that reaches the API twice in different batches.
//!
//! Resending a batch under its own id is fine (the idempotency table answers it), and the
//! version guard makes a second delivery of the same write under a *new* batch id harmless
//! here: it is answered `stale`. A real database API without a version guard would apply
//! it twice, though, so the cache's promise is stronger: every acknowledged write is
//! delivered in exactly one batch. The reliability tests prove that from outside by asking
//! this journal, which remembers every (namespace, key, version, value) delivered in a
//! first-sent batch and counts the ones seen again.
//!
//! Memory is bounded: past [`CAPACITY`] writes the journal stops recording (and says so in
//! `/_stats`), so a long-running reference API does not grow without end.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crate::backend::{PlannedWrite, ValidWrite};

/// Writes remembered at most.
pub const CAPACITY: usize = 2_000_000;

/// The identity of one delivered write.
type Identity = (String, String, u64, u64);

fn identity(w: &ValidWrite) -> Identity {
    let mut h = DefaultHasher::new();
    w.op.eq(&cache_core::contract::WriteOp::Delete).hash(&mut h);
    w.value.hash(&mut h);
    (w.ns.clone(), w.key.clone(), w.version, h.finish())
}

/// Every write delivered in a first-sent batch since start or the last reset.
#[derive(Debug, Default)]
pub struct DeliveryJournal {
    seen: Mutex<HashSet<Identity>>,
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

    /// Writes remembered.
    pub fn len(&self) -> u64 {
        self.seen.lock().map(|s| s.len() as u64).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::contract::WriteOp;

    fn put(key: &str, version: u64, value: &str) -> PlannedWrite {
        PlannedWrite::Write(ValidWrite {
            ns: "n".into(),
            key: key.into(),
            op: WriteOp::Put,
            value: Some(value.into()),
            version,
            written_at: 1,
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
}
