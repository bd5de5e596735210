//! The flush lease: at most one flush run at a time, best effort.
//!
//! The lease is one record, `m:lease`, naming an owner and an expiry. Spin KV has no
//! compare-and-swap, so acquiring is write-then-read-back: a run that finds no unexpired lease
//! of another owner writes its own and reads it back; if another owner's lease is there now,
//! it lost. This narrows the race but cannot close it (two runs can both read their own write
//! if their writes and reads interleave exactly). Overlapping runs are nevertheless safe:
//! they send the same sealed batches under the same ids, which the DB API applies once, and
//! deleting already deleted records is harmless. The lease only saves duplicate work.
//!
//! A run cannot renew its lease (the core has no clock of its own), so `lease_ttl` must exceed
//! the longest run; an expired lease is simply taken over. A crashed run's lease expires.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kv_key::KvKey;
use crate::store::{KvStore, StoreError};
use crate::time::UnixMillis;

const LEASE_FORMAT: u8 = 1;

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it.
    pub owner: String,
    /// Until when (exclusive).
    pub expires_at: UnixMillis,
}

/// The result of trying to take the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease.
    Acquired(Lease),
    /// Another owner holds an unexpired lease.
    Busy(Lease),
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredLease {
    v: u8,
    owner: String,
    acquired_at: u64,
    expires_at: u64,
}

/// The current lease record, if any readable one exists.
pub fn current(store: &mut impl KvStore) -> Result<Option<Lease>, StoreError> {
    let Some(bytes) = store.get(&KvKey::Lease.render())? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<StoredLease>(&bytes)
        .ok()
        .filter(|l| l.v == LEASE_FORMAT)
        .map(|l| Lease {
            owner: l.owner,
            expires_at: UnixMillis(l.expires_at),
        }))
}

/// Tries to take the lease for `owner` at `now` for `ttl`.
pub fn acquire(
    store: &mut impl KvStore,
    owner: &str,
    now: UnixMillis,
    ttl: Duration,
) -> Result<LeaseOutcome, StoreError> {
    if let Some(held) = current(store)? {
        if held.owner != owner && now < held.expires_at {
            return Ok(LeaseOutcome::Busy(held));
        }
    }
    let lease = Lease {
        owner: owner.to_owned(),
        expires_at: now.saturating_add(ttl),
    };
    let stored = StoredLease {
        v: LEASE_FORMAT,
        owner: lease.owner.clone(),
        acquired_at: now.0,
        expires_at: lease.expires_at.0,
    };
    let bytes = serde_json::to_vec(&stored).map_err(|e| StoreError::Other(e.to_string()))?;
    store.set(&KvKey::Lease.render(), &bytes)?;
    match current(store)? {
        Some(read_back) if read_back.owner != owner => Ok(LeaseOutcome::Busy(read_back)),
        _ => Ok(LeaseOutcome::Acquired(lease)),
    }
}

/// Gives the lease up if `owner` still holds it.
pub fn release(store: &mut impl KvStore, owner: &str) -> Result<(), StoreError> {
    match current(store)? {
        Some(held) if held.owner != owner => Ok(()),
        _ => store.delete(&KvKey::Lease.render()),
    }
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

    #[test]
    fn release_only_drops_the_own_lease_and_garbage_counts_as_free() {
        let mut store = MemoryStore::new();
        acquire(&mut store, "b", UnixMillis(0), TTL).unwrap();
        release(&mut store, "a").unwrap();
        assert_eq!(
            current(&mut store).unwrap().map(|l| l.owner),
            Some("b".into())
        );
        release(&mut store, "b").unwrap();
        assert_eq!(current(&mut store).unwrap(), None);
        store.set("m:lease", b"junk").unwrap();
        check(None, "a", 0, true);
        assert!(matches!(
            acquire(&mut store, "a", UnixMillis(0), TTL).unwrap(),
            LeaseOutcome::Acquired(_)
        ));
    }
}
