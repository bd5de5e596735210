//! The fill lease: collapsing concurrent misses of one cold key into (few) origin fetches.
//!
//! When many requests miss the same key at once, each would ask the DB API. Spin KV has no
//! compare-and-swap, so a miss cannot atomically claim the key. Instead the first miss writes
//! a short lease (`m:fill:{hash}`, see [`crate::kv_key`]) naming itself and reads it back; if
//! the read-back names it, it fetches and stores the entry, then deletes the lease. A miss
//! that finds another owner's unexpired lease waits for the entry to appear (polling the
//! store) and only asks the origin itself when the lease's expiry passes without an entry.
//!
//! Without CAS this is "few", not "one": misses whose write-then-read-back interleave can all
//! believe they won (the last writer's read-back wins for those that read after it). The
//! same lease is used to keep at most (about) one stale-while-revalidate refresh per key in
//! flight. A lease left by a crashed instance simply expires.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hash::fnv1a64;
use crate::key::CacheKey;
use crate::kv_key::KvKey;
use crate::time::UnixMillis;

const FILL_FORMAT: u8 = 1;

/// A fill lease as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillLease {
    /// Random id of the request holding it.
    pub owner: u64,
    /// Until when (exclusive) it holds.
    pub expires_at: UnixMillis,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredFill {
    v: u8,
    owner: u64,
    expires_at: u64,
}

/// What a miss should do about the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillDecision {
    /// No live lease of another owner: write ours (then read it back).
    Take,
    /// Another request is filling the entry: wait for it until the lease expires.
    Wait(FillLease),
}

/// The KV key of the fill lease of `key`.
#[must_use]
pub fn lease_key(key: &CacheKey) -> String {
    KvKey::Fill(fnv1a64(key.kv_key().as_bytes())).render()
}

/// The lease `owner` writes at `now` to hold the fill for `ttl`.
#[must_use]
pub fn new_lease(owner: u64, now: UnixMillis, ttl: Duration) -> FillLease {
    FillLease {
        owner,
        expires_at: now.saturating_add(ttl),
    }
}

/// The stored form of `lease`.
#[must_use]
pub fn encode(lease: &FillLease) -> Vec<u8> {
    let stored = StoredFill {
        v: FILL_FORMAT,
        owner: lease.owner,
        expires_at: lease.expires_at.0,
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// Reads a stored lease; unreadable bytes count as no lease.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<FillLease> {
    serde_json::from_slice::<StoredFill>(bytes)
        .ok()
        .filter(|s| s.v == FILL_FORMAT)
        .map(|s| FillLease {
            owner: s.owner,
            expires_at: UnixMillis(s.expires_at),
        })
}

/// Decides, from the stored lease bytes (if any), whether `owner` may fill at `now`.
#[must_use]
pub fn decide(stored: Option<&[u8]>, owner: u64, now: UnixMillis) -> FillDecision {
    match stored.and_then(decode) {
        Some(held) if held.owner != owner && now < held.expires_at => FillDecision::Wait(held),
        _ => FillDecision::Take,
    }
}

/// Whether the read-back after writing our lease shows that `owner` holds it.
#[must_use]
pub fn holds(read_back: Option<&[u8]>, owner: u64) -> bool {
    read_back.and_then(decode).is_none_or(|l| l.owner == owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(key: &str) -> CacheKey {
        CacheKey::from_path("users", key).unwrap()
    }

    #[test]
    fn lease_keys_are_short_distinct_and_parse_back() {
        let long = "k".repeat(200);
        let a = lease_key(&ck(&long));
        let b = lease_key(&ck("1"));
        assert_ne!(a, b);
        assert_eq!(a.len(), "m:fill:".len() + 16);
        assert!(matches!(KvKey::parse(&a), Some(KvKey::Fill(_))));
    }

    #[test]
    fn a_live_lease_of_another_owner_means_wait_otherwise_take() {
        let now = UnixMillis(1_000);
        let other = encode(&new_lease(7, now, Duration::from_millis(500)));
        assert!(matches!(decide(Some(&other), 9, now), FillDecision::Wait(l) if l.owner == 7));
        assert_eq!(decide(Some(&other), 7, now), FillDecision::Take);
        assert_eq!(
            decide(Some(&other), 9, UnixMillis(1_500)),
            FillDecision::Take
        );
        assert_eq!(decide(None, 9, now), FillDecision::Take);
        assert_eq!(decide(Some(b"garbage"), 9, now), FillDecision::Take);
    }

    #[test]
    fn read_back_decides_who_holds_it() {
        let mine = encode(&new_lease(1, UnixMillis(0), Duration::from_secs(1)));
        assert!(holds(Some(&mine), 1));
        assert!(!holds(Some(&mine), 2));
        assert!(holds(None, 2));
    }
}
