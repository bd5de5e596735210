//! The flush lease and the sealing registry: which run may seal, and which sealed batches
//! may be sent.
//!
//! One record, `m:lease`, names the run holding the lease (owner and expiry) and lists the
//! *registered* sealed batches. A run stores a new batch under `b:{id}` and then registers its
//! id; only registered batches are ever sent, and a stored batch that is not registered was
//! never sent (a run that crashed or lost its lease in between), so it is deleted.
//!
//! Every change to the record is a compare-and-swap against the exact bytes the run itself
//! last stored, followed by reading the record back. That makes the registry the fence that
//! timing cannot break: once another run has taken the lease over (its owner is in the
//! record now), the old run's next registration fails, whatever the clocks say, so it sends
//! nothing it sealed after losing the lease. The new run read the registry when it took the
//! lease, so it knows every batch registered before, excludes their writes from its own
//! batches and resends them under their own ids. A write is therefore in at most one sendable
//! batch. The read-back is needed because Spin's Redis backend reports a swap that another
//! writer aborted as done, and because from an absent key Spin's SQLite backend writes
//! unconditionally; either way the read-back shows the other run's record.
//!
//! Where the store has no compare-and-swap (Fermyon Cloud, Akamai Functions), the same
//! protocol runs on [`KvStore::compare_and_swap`]'s read-compare-write fallback: two runs can
//! then both register overlapping batches in a narrow window, and the DB API's per-write
//! idempotency (`write_id`, answered `duplicate`) keeps each write applied once.
//!
//! Acquiring uses the same swap, so two runs starting together rarely both proceed; if they
//! do (the SQLite case above), the loser finds out at its first registration. A run cannot
//! renew its lease (the core has no clock), so `lease_ttl` should exceed the longest run;
//! when it does not, the next run takes over and the registry keeps that safe too. A crashed
//! run's lease simply expires.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::batch_id::BatchId;
use crate::kv_key::KvKey;
use crate::store::{KvStore, StoreError};
use crate::time::UnixMillis;

/// Format 2 adds the registry; format 1 records (owner and expiry only) are still read.
const LEASE_FORMAT: u8 = 2;

/// A lease held by some run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it.
    pub owner: String,
    /// Until when (exclusive).
    pub expires_at: UnixMillis,
}

/// The result of trying to take the lease.
#[derive(Debug)]
pub enum LeaseOutcome {
    /// The caller holds the lease.
    Acquired(HeldLease),
    /// Another owner holds an unexpired lease, or took it first.
    Busy(Lease),
}

/// The lease record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct LeaseRecord {
    owner: Option<String>,
    expires_at: UnixMillis,
    /// `None` when unknown: no record, an unreadable one, or format 1.
    sealed: Option<BTreeSet<BatchId>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredLease {
    v: u8,
    #[serde(default)]
    owner: Option<String>,
    expires_at: u64,
    #[serde(default)]
    sealed: Option<Vec<String>>,
}

impl LeaseRecord {
    fn decode(bytes: &[u8]) -> Option<LeaseRecord> {
        let stored: StoredLease = serde_json::from_slice(bytes).ok()?;
        let sealed = match (stored.v, stored.sealed) {
            (1, _) => None,
            (LEASE_FORMAT, sealed) => match sealed {
                Some(ids) => Some(
                    ids.iter()
                        .map(|id| BatchId::parse(id))
                        .collect::<Option<BTreeSet<_>>>()?,
                ),
                None => None,
            },
            _ => return None,
        };
        Some(LeaseRecord {
            owner: stored.owner,
            expires_at: UnixMillis(stored.expires_at),
            sealed,
        })
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let stored = StoredLease {
            v: LEASE_FORMAT,
            owner: self.owner.clone(),
            expires_at: self.expires_at.0,
            sealed: self
                .sealed
                .as_ref()
                .map(|ids| ids.iter().map(ToString::to_string).collect()),
        };
        serde_json::to_vec(&stored).map_err(|e| StoreError::Other(e.to_string()))
    }

    fn holder(&self) -> Option<Lease> {
        self.owner.as_ref().map(|owner| Lease {
            owner: owner.clone(),
            expires_at: self.expires_at,
        })
    }
}

/// The lease as this run holds it: the exact record it last stored, which every later change
/// compares against.
#[derive(Debug)]
pub struct HeldLease {
    record: LeaseRecord,
    bytes: Vec<u8>,
}

impl HeldLease {
    /// The registered sealed batches; `None` when the record did not say (then every stored
    /// batch counts as registered, see [`HeldLease::set_registry`]).
    #[must_use]
    pub fn registry(&self) -> Option<&BTreeSet<BatchId>> {
        self.record.sealed.as_ref()
    }

    /// Replaces the registry. `Ok(false)`: the lease was lost, nothing changed.
    pub fn set_registry(
        &mut self,
        store: &mut impl KvStore,
        sealed: BTreeSet<BatchId>,
    ) -> Result<bool, StoreError> {
        let next = LeaseRecord {
            sealed: Some(sealed),
            ..self.record.clone()
        };
        self.swap(store, next)
    }

    /// Registers stored batches so that they may be sent, in one swap. `Ok(false)`: the
    /// lease was lost; none of them may be sent.
    pub fn register(
        &mut self,
        store: &mut impl KvStore,
        ids: &[BatchId],
    ) -> Result<bool, StoreError> {
        let mut sealed = self.record.sealed.clone().unwrap_or_default();
        sealed.extend(ids.iter().cloned());
        self.set_registry(store, sealed)
    }

    /// Gives the lease up, leaving `sealed` registered for the next run, or the registry as
    /// it stands when `None` (a run that never read it must not clear it: its batches may have
    /// been sent). `Ok(false)`: another run holds it now (and its record stays as it is).
    pub fn release(
        mut self,
        store: &mut impl KvStore,
        sealed: Option<BTreeSet<BatchId>>,
    ) -> Result<bool, StoreError> {
        let next = LeaseRecord {
            owner: None,
            expires_at: UnixMillis(0),
            sealed: sealed.or_else(|| self.record.sealed.clone()),
        };
        self.swap(store, next)
    }

    fn swap(&mut self, store: &mut impl KvStore, next: LeaseRecord) -> Result<bool, StoreError> {
        let bytes = next.encode()?;
        if !swap_confirmed(store, Some(&self.bytes), &bytes)? {
            return Ok(false);
        }
        self.record = next;
        self.bytes = bytes;
        Ok(true)
    }
}

/// Compare-and-swap of the lease record, confirmed by reading it back.
fn swap_confirmed(
    store: &mut impl KvStore,
    expected: Option<&[u8]>,
    new: &[u8],
) -> Result<bool, StoreError> {
    crate::store::swap_confirmed(store, &KvKey::Lease.render(), expected, new)
}

/// The run holding the lease now, if any readable record names one.
pub fn current(store: &mut impl KvStore) -> Result<Option<Lease>, StoreError> {
    let bytes = store.get(&KvKey::Lease.render())?;
    Ok(bytes
        .as_deref()
        .and_then(LeaseRecord::decode)
        .and_then(|r| r.holder()))
}

/// Tries to take the lease for `owner` at `now` for `ttl`.
pub fn acquire(
    store: &mut impl KvStore,
    owner: &str,
    now: UnixMillis,
    ttl: Duration,
) -> Result<LeaseOutcome, StoreError> {
    let found = store.get(&KvKey::Lease.render())?;
    let record = found.as_deref().and_then(LeaseRecord::decode);
    if let Some(held) = record.as_ref().and_then(LeaseRecord::holder) {
        if held.owner != owner && now < held.expires_at {
            return Ok(LeaseOutcome::Busy(held));
        }
    }
    let next = LeaseRecord {
        owner: Some(owner.to_owned()),
        expires_at: now.saturating_add(ttl),
        sealed: record.and_then(|r| r.sealed),
    };
    let bytes = next.encode()?;
    if swap_confirmed(store, found.as_deref(), &bytes)? {
        return Ok(LeaseOutcome::Acquired(HeldLease {
            record: next,
            bytes,
        }));
    }
    let winner = current(store)?.unwrap_or(Lease {
        owner: "another run".to_owned(),
        expires_at: now,
    });
    Ok(LeaseOutcome::Busy(winner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const TTL: Duration = Duration::from_secs(60);

    fn check(held_by: Option<(&str, u64)>, me: &str, now: u64, acquired: bool) {
        let mut store = MemoryStore::new();
        if let Some((owner, at)) = held_by {
            acquire(&mut store, owner, UnixMillis(at), TTL).unwrap();
        }
        let got = acquire(&mut store, me, UnixMillis(now), TTL).unwrap();
        assert_eq!(
            matches!(got, LeaseOutcome::Acquired(_)),
            acquired,
            "{held_by:?} {me} {now}"
        );
    }

    #[test]
    fn lease_is_exclusive_until_it_expires() {
        let cases = [
            (None, "a", 0, true),
            (Some(("b", 0)), "a", 59_999, false),
            (Some(("b", 0)), "a", 60_000, true),
            (Some(("a", 0)), "a", 10, true),
        ];
        for (held_by, me, now, acquired) in cases {
            check(held_by, me, now, acquired);
        }
    }

    fn take(store: &mut MemoryStore, owner: &str, at: u64) -> HeldLease {
        match acquire(store, owner, UnixMillis(at), TTL).unwrap() {
            LeaseOutcome::Acquired(held) => held,
            LeaseOutcome::Busy(l) => panic!("{owner} found the lease busy: {l:?}"),
        }
    }

    fn id(n: u8) -> BatchId {
        BatchId::parse(&format!("{n:032x}")).unwrap()
    }

    #[test]
    fn a_run_whose_lease_was_taken_over_can_neither_register_nor_release() {
        let mut store = MemoryStore::new();
        let mut a = take(&mut store, "a", 0);
        assert_eq!(a.registry(), None, "a new record knows no registry");
        assert!(a.register(&mut store, &[id(1)]).unwrap());
        let mut b = take(&mut store, "b", 60_000);
        assert_eq!(b.registry(), Some(&BTreeSet::from([id(1)])));
        assert!(!a.register(&mut store, &[id(2)]).unwrap());
        assert!(!a.release(&mut store, Some(BTreeSet::new())).unwrap());
        assert_eq!(current(&mut store).unwrap().unwrap().owner, "b");
        assert!(b.register(&mut store, &[id(3)]).unwrap());
        assert!(b
            .release(&mut store, Some(BTreeSet::from([id(3)])))
            .unwrap());
        assert_eq!(current(&mut store).unwrap(), None);
        let c = take(&mut store, "c", 60_001);
        assert_eq!(c.registry(), Some(&BTreeSet::from([id(3)])));
    }

    #[test]
    fn garbage_and_format_1_records_count_as_free_with_an_unknown_registry() {
        let mut store = MemoryStore::new();
        store.set("m:lease", b"junk").unwrap();
        assert_eq!(take(&mut store, "a", 0).registry(), None);
        let v1 = br#"{"v":1,"owner":"old","acquired_at":0,"expires_at":60000}"#;
        store.set("m:lease", v1).unwrap();
        assert!(matches!(
            acquire(&mut store, "a", UnixMillis(59_999), TTL).unwrap(),
            LeaseOutcome::Busy(l) if l.owner == "old"
        ));
        assert_eq!(take(&mut store, "a", 60_000).registry(), None);
    }
}
