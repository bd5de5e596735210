//! The fill lease: collapsing concurrent misses of one cold key into (few) origin fetches.
//!
//! When many requests miss the same key at once, each would ask the DB API. Spin KV has no
//! compare-and-swap, so a miss cannot atomically claim the key. Instead the first miss writes
//! a short lease (`m:fill:{hash}`, see [`crate::stored::kv_key`]) naming itself and reads it back; if
//! the read-back names it, it fetches and stores the entry, then deletes the lease. A miss
//! that finds another owner's unexpired lease waits for the entry to appear (polling the
//! store) and only asks the origin itself when the lease's expiry passes without an entry.
//!
//! Without CAS this is "few", not "one": misses whose write-then-read-back interleave can all
//! believe they won (the last writer's read-back wins for those that read after it). The
//! same lease is used to keep at most (about) one stale-while-revalidate refresh per key in
//! flight. A lease left by a crashed instance simply expires.
//!
//! [`claim`], [`release`] and [`wait_for_entry`] run that protocol against any
//! [`KvStore`]; the pure steps below them ([`decide`], [`holds`]) say what each read means.
//! Measured on the embedded host (`tests/all/gateway_stampede.rs`, 64 concurrent cold reads,
//! origin latency 300 ms and 0 ms): 1 origin fetch in every run; the test fails above 8. On a
//! store with slower or eventually consistent reads (Fermyon Cloud) the write/read-back
//! window is wider and more requests can win it. The bound also assumes the fill finishes
//! within [`LEASE_TTL`]: if the origin is slower than that, every waiter falls back to its
//! own fetch, so a cold key's worst case stays one fetch per concurrent request, never more.
//! A waiter stops waiting early when the lease disappears without an entry (the holder's
//! fetch failed).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::hash::fnv1a64;
use crate::key::CacheKey;
use crate::serve::read::{plan_read, ReadPlan};
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::{Clock, UnixMillis};

/// How long a fill lease holds; waiters give up on the holder after this.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// How often a waiter looks for the entry.
pub const POLL: Duration = Duration::from_millis(20);

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

/// A fill lease this request holds.
#[derive(Debug)]
pub struct Held {
    key: String,
    owner: u64,
}

/// What claiming the fill gave.
#[derive(Debug)]
pub enum Claim {
    /// This request fetches; [`release`] the lease afterwards.
    Fill(Held),
    /// Another request is filling until this instant.
    Wait(UnixMillis),
}

/// Tries to take the fill lease of `key` for `owner` (a random id): reads the lease, and if
/// no other owner's live lease is there, writes ours and reads it back.
pub fn claim(
    store: &mut impl KvStore,
    key: &CacheKey,
    owner: u64,
    now: UnixMillis,
) -> Result<Claim, StoreError> {
    let lease_key = lease_key(key);
    if let FillDecision::Wait(held) = decide(store.get(&lease_key)?.as_deref(), owner, now) {
        return Ok(Claim::Wait(held.expires_at));
    }
    let lease = new_lease(owner, now, LEASE_TTL);
    store.set(&lease_key, &encode(&lease))?;
    let read_back = store.get(&lease_key)?;
    if holds(read_back.as_deref(), owner) {
        Ok(Claim::Fill(Held {
            key: lease_key,
            owner,
        }))
    } else {
        let until = read_back
            .as_deref()
            .and_then(decode)
            .map_or(lease.expires_at, |l| l.expires_at);
        Ok(Claim::Wait(until))
    }
}

/// Gives the lease up if it is still ours; a failure leaves it to expire.
pub fn release(store: &mut impl KvStore, held: Held) {
    let still_ours = store
        .get(&held.key)
        .ok()
        .flatten()
        .and_then(|b| decode(&b))
        .is_some_and(|l| l.owner == held.owner);
    if still_ours {
        let _ = store.delete(&held.key);
    }
}

/// Polls for a servable entry of `key` every [`POLL`] until `until`; `None` if none
/// appeared, or as soon as the lease is gone without an entry (the holder failed and
/// released it).
pub fn wait_for_entry(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    key: &CacheKey,
    until: UnixMillis,
) -> Option<Entry> {
    let entry_key = key.kv_key();
    let lease_key = lease_key(key);
    loop {
        let now = clock.now();
        if let Ok(stored) = store.get(&entry_key) {
            match plan_read(stored.as_deref(), now, None) {
                ReadPlan::Serve(e) | ReadPlan::ServeAndRevalidate(e) => return Some(e),
                ReadPlan::Fetch { .. } => {}
            }
        }
        let lease_live = store
            .get(&lease_key)
            .ok()
            .flatten()
            .and_then(|b| decode(&b))
            .is_some_and(|l| now < l.expires_at);
        if now >= until || !lease_live {
            return None;
        }
        clock.sleep(POLL.min(now.until(until)));
    }
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
