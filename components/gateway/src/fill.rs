//! Collapsing concurrent misses of one key (the stampede guard).
//!
//! The protocol is `cache_core::fill`: a miss writes a short fill lease and reads it back;
//! the holder fetches, stores the entry and deletes the lease; the others poll the store
//! every [`POLL`] for the entry until the lease expires ([`LEASE_TTL`] at most), then fetch
//! themselves. Without compare-and-swap, requests whose write and read-back interleave may
//! all hold the lease, so the bound is "few", not one. Measured on the embedded host
//! (`tests/all/gateway_stampede.rs`, 64 concurrent cold reads, origin latency 300 ms and
//! 0 ms): 1 origin fetch in every run; the test fails above 8. On a store with slower or
//! eventually consistent reads (Fermyon Cloud) the write/read-back window is wider and more
//! requests can win it. The bound also assumes the fill finishes within [`LEASE_TTL`]: if
//! the origin is slower than that, every waiter falls back to its own fetch, so a cold
//! key's worst case stays one fetch per concurrent request, never more. A waiter stops
//! waiting early when the lease disappears without an entry (the holder's fetch failed).
//! Requests answered from another request's fill say `X-Cache: HIT`. Polling uses a
//! blocking sleep: the instance serves only this request, so nothing else needs to run.

use std::time::Duration;

use cache_core::entry::Entry;
use cache_core::fill::{self, FillDecision};
use cache_core::key::CacheKey;
use cache_core::read::{plan_read, ReadPlan};
use cache_core::store::KvStore;
use cache_core::time::UnixMillis;
use spin_adapters::{env, kv::SpinKv};

use crate::respond::Error;

/// How long a fill lease holds; waiters give up on the holder after this.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// How often a waiter looks for the entry.
pub const POLL: Duration = Duration::from_millis(20);

/// A fill lease this request holds.
pub struct Held {
    key: String,
    owner: u64,
}

/// What claiming the fill gave.
pub enum Claim {
    /// This request fetches; release the lease afterwards.
    Fill(Held),
    /// Another request is filling until `until`.
    Wait(UnixMillis),
}

/// Tries to take the fill lease of `key`.
pub fn claim(kv: &mut SpinKv, key: &CacheKey) -> Result<Claim, Error> {
    let lease_key = fill::lease_key(key);
    let owner = env::random_u64();
    let now = env::now();
    match fill::decide(kv.get(&lease_key)?.as_deref(), owner, now) {
        FillDecision::Wait(held) => return Ok(Claim::Wait(held.expires_at)),
        FillDecision::Take => {}
    }
    let lease = fill::new_lease(owner, now, LEASE_TTL);
    kv.set(&lease_key, &fill::encode(&lease))?;
    let read_back = kv.get(&lease_key)?;
    if fill::holds(read_back.as_deref(), owner) {
        Ok(Claim::Fill(Held {
            key: lease_key,
            owner,
        }))
    } else {
        let until = read_back
            .as_deref()
            .and_then(fill::decode)
            .map_or(lease.expires_at, |l| l.expires_at);
        Ok(Claim::Wait(until))
    }
}

/// Gives the lease up (if it is still ours).
pub fn release(kv: &mut SpinKv, held: Held) {
    let still_ours = kv
        .get(&held.key)
        .ok()
        .flatten()
        .and_then(|b| fill::decode(&b))
        .is_some_and(|l| l.owner == held.owner);
    if still_ours {
        let _ = kv.delete(&held.key);
    }
}

/// Polls for a servable entry of `key` until `until`; `None` if none appeared, or as soon
/// as the lease is gone without an entry (the holder failed and released it).
pub fn wait_for_entry(kv: &mut SpinKv, key: &CacheKey, until: UnixMillis) -> Option<Entry> {
    let entry_key = key.kv_key();
    let lease_key = fill::lease_key(key);
    loop {
        let now = env::now();
        if let Ok(stored) = kv.get(&entry_key) {
            match plan_read(stored.as_deref(), now) {
                ReadPlan::Serve(e) | ReadPlan::ServeAndRevalidate(e) => return Some(e),
                ReadPlan::Fetch { .. } => {}
            }
        }
        let lease_live = kv
            .get(&lease_key)
            .ok()
            .flatten()
            .and_then(|b| fill::decode(&b))
            .is_some_and(|l| now < l.expires_at);
        if now >= until || !lease_live {
            return None;
        }
        std::thread::sleep(POLL.min(now.until(until)));
    }
}
