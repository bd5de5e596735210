//! The fill claim: collapsing concurrent misses of one cold key into one origin fetch where
//! the store increments atomically, a few elsewhere.
//!
//! When many requests miss the same key at once, each would ask the DB API. Where the host
//! has `wasi:keyvalue/atomics` (local Spin, SpinKube, the embedded host; SQLite or Redis),
//! every miss increments a ticket counter of the key for the current window of
//! [`LEASE_TTL`] (`m:fill:{window}:{hash}`), and the one that counts 1 fetches, stores the
//! entry and deletes the ticket; the others wait for the entry, polling the store, and fetch
//! themselves only if the ticket disappears without an entry (the holder failed) or
//! [`LEASE_TTL`] passes. [`claim_ticket`] says why that is one fetch, including the claim
//! that comes after the holder is done and the burst across a window boundary. Compare-and-
//! swap could not do this on Spin: a claim starts from an absent key, and Spin's SQLite swap
//! from an absent key is an unconditional write, while its Redis swap reports an aborted
//! `EXEC` as done; `increment` has neither flaw. A ticket a crashed holder leaves is deleted
//! by the sweep once its window and the next are past.
//!
//! Without atomics (Fermyon Cloud, Akamai Functions), `increment` is a read and a write that
//! two misses can interleave, so the claim is a short lease instead (`m:fill:{hash}`, see
//! [`crate::stored::kv_key`]): the first miss writes it naming itself and reads it back; if
//! the read-back names it, it fetches and stores the entry, then deletes the lease. A miss
//! that finds another owner's unexpired lease waits for the entry and only asks the origin
//! itself when the lease's expiry passes without an entry. That is "few", not "one": misses
//! whose write-then-read-back interleave can all believe they won.
//!
//! The same claim keeps at most (about) one stale-while-revalidate refresh per key in
//! flight. [`claim`], [`release`] and [`wait_for_entry`] run the protocols against any
//! [`KvStore`]; the pure steps below them ([`decide`], [`holds`]) say what each lease read
//! means. Measured on the embedded host (`tests/all/gateway_stampede.rs`, 64 concurrent cold
//! reads, origin latency 300 ms and 0 ms): one origin fetch, by ticket; by lease (the store
//! without atomics) a few, and the test fails above 8. The bound assumes the fill finishes
//! within [`LEASE_TTL`]: if the origin is slower than that, every waiter falls back to its
//! own fetch, so a cold key's worst case stays one fetch per concurrent request, never more.

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

/// A fill this request holds: a lease record, or a ticket counter (`owner` `None`).
#[derive(Debug)]
pub struct Held {
    key: String,
    owner: Option<u64>,
}

/// What a waiter waits for.
#[derive(Debug)]
pub struct Waiting {
    /// When to stop waiting and fetch.
    pub until: UnixMillis,
    /// The holder's lease record or ticket: its disappearance without an entry ends the wait
    /// early (the holder's fetch failed).
    watch: String,
    /// Whether `watch` is a lease record, whose expiry ends the wait too.
    lease: bool,
    /// The key's invalidation the entry must be newer than ([`plan_read`]).
    invalidated_at: Option<UnixMillis>,
}

/// What claiming the fill gave.
#[derive(Debug)]
pub enum Claim {
    /// This request fetches, once `after` (the claim of the previous window, maybe still
    /// fetching) is waited out without the entry appearing; [`release`] it afterwards.
    Fill {
        /// The claim.
        held: Held,
        /// Whom to wait for first.
        after: Option<Waiting>,
    },
    /// Another request is filling.
    Wait(Waiting),
    /// Another request filled the entry between this one's read and its claim.
    Filled(Entry),
}

/// Tries to claim the fill of `key` for `owner` (a random id); an entry found meanwhile must
/// be newer than the key's invalidation `invalidated_at`, if any. Where the store increments
/// atomically, by ticket ([`claim_ticket`]); elsewhere by lease: reads the lease, and if no
/// other owner's live lease is there, writes ours and reads it back.
pub fn claim(
    store: &mut impl KvStore,
    key: &CacheKey,
    owner: u64,
    now: UnixMillis,
    invalidated_at: Option<UnixMillis>,
) -> Result<Claim, StoreError> {
    if store.has_atomic_increment() {
        return claim_ticket(store, key, now, invalidated_at);
    }
    let lease_key = lease_key(key);
    let waiting = |until, watch: &str| {
        Claim::Wait(Waiting {
            until,
            watch: watch.to_owned(),
            lease: true,
            invalidated_at,
        })
    };
    if let FillDecision::Wait(held) = decide(store.get(&lease_key)?.as_deref(), owner, now) {
        return Ok(waiting(held.expires_at, &lease_key));
    }
    let lease = new_lease(owner, now, LEASE_TTL);
    store.set(&lease_key, &encode(&lease))?;
    let read_back = store.get(&lease_key)?;
    if holds(read_back.as_deref(), owner) {
        Ok(Claim::Fill {
            held: Held {
                key: lease_key,
                owner: Some(owner),
            },
            after: None,
        })
    } else {
        let until = read_back
            .as_deref()
            .and_then(decode)
            .map_or(lease.expires_at, |l| l.expires_at);
        Ok(waiting(until, &lease_key))
    }
}

/// The KV key of `key`'s fill ticket for the window of `now`.
#[must_use]
pub fn ticket_key(key: &CacheKey, now: UnixMillis) -> String {
    KvKey::FillTicket {
        window: window(now),
        hash: fnv1a64(key.kv_key().as_bytes()),
    }
    .render()
}

/// The window of [`LEASE_TTL`] that `now` falls in.
fn window(now: UnixMillis) -> u64 {
    now.0 / lease_millis()
}

fn lease_millis() -> u64 {
    u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX)
}

/// The ticket protocol: every claim of a window increments the window's counter, and the
/// one that counts 1 fills. It first waits for the previous window's holder if that one's
/// ticket is still there (a burst across the windows' boundary), and reads the entry once
/// more: a fill that ended between this request's read and its claim has left it (its holder
/// stores the entry before deleting its ticket, so a claim that counts 1 after the deletion
/// finds the entry). So concurrent misses cost one origin fetch, as long as the fill takes
/// less than [`LEASE_TTL`].
fn claim_ticket(
    store: &mut impl KvStore,
    key: &CacheKey,
    now: UnixMillis,
    invalidated_at: Option<UnixMillis>,
) -> Result<Claim, StoreError> {
    let hash = fnv1a64(key.kv_key().as_bytes());
    let w = window(now);
    let ticket = KvKey::FillTicket { window: w, hash }.render();
    if store.increment(&ticket, 1)? != 1 {
        return Ok(Claim::Wait(Waiting {
            until: now.saturating_add(LEASE_TTL),
            watch: ticket,
            lease: false,
            invalidated_at,
        }));
    }
    // The previous window's ticket first, then the entry: a holder deletes its ticket only
    // after storing the entry, so a ticket found gone means the entry read after it sees it.
    let previous = w
        .checked_sub(1)
        .map(|p| KvKey::FillTicket { window: p, hash }.render());
    let after = match previous {
        Some(p) if store.get(&p)?.is_some() => Some(Waiting {
            // That claim was made before this window began.
            until: UnixMillis(w.saturating_mul(lease_millis())).saturating_add(LEASE_TTL),
            watch: p,
            lease: false,
            invalidated_at,
        }),
        _ => None,
    };
    if after.is_none() {
        let stored = store.get(&key.kv_key())?;
        if let ReadPlan::Serve(entry) = plan_read(stored.as_deref(), now, invalidated_at) {
            store.delete(&ticket)?;
            return Ok(Claim::Filled(entry));
        }
    }
    Ok(Claim::Fill {
        held: Held {
            key: ticket,
            owner: None,
        },
        after,
    })
}

/// Whether the fill ticket of `window` is past use at `now`: neither its window nor the next
/// (whose first claim looks at it) is current; the sweep deletes it by name.
#[must_use]
pub fn is_dead_ticket(window_of_ticket: u64, now: UnixMillis) -> bool {
    window_of_ticket.saturating_add(2) <= window(now)
}

/// Gives the claim up: a ticket always (its holder is done), a lease if it is still ours; a
/// failure leaves it to expire.
pub fn release(store: &mut impl KvStore, held: Held) {
    let still_ours = match held.owner {
        None => true,
        Some(owner) => store
            .get(&held.key)
            .ok()
            .flatten()
            .and_then(|b| decode(&b))
            .is_some_and(|l| l.owner == owner),
    };
    if still_ours {
        let _ = store.delete(&held.key);
    }
}

/// Polls for a servable entry of `key` every [`POLL`] until `waiting.until`; `None` if none
/// appeared, or as soon as the holder's lease or ticket is gone without an entry (the holder
/// failed and released it).
pub fn wait_for_entry(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    key: &CacheKey,
    waiting: &Waiting,
) -> Option<Entry> {
    let entry_key = key.kv_key();
    loop {
        let now = clock.now();
        if let Ok(stored) = store.get(&entry_key) {
            match plan_read(stored.as_deref(), now, waiting.invalidated_at) {
                ReadPlan::Serve(e) | ReadPlan::ServeAndRevalidate(e) => return Some(e),
                ReadPlan::Fetch { .. } => {}
            }
        }
        let watched = store.get(&waiting.watch).ok().flatten();
        let alive = match (&watched, waiting.lease) {
            (None, _) => false,
            (Some(b), true) => decode(b).is_some_and(|l| now < l.expires_at),
            (Some(_), false) => true,
        };
        if now >= waiting.until || !alive {
            return None;
        }
        clock.sleep(POLL.min(now.until(waiting.until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

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

    fn fresh(store: &mut MemoryStore, key: &CacheKey, now: UnixMillis) {
        let entry = Entry {
            kind: crate::entry::EntryKind::Value,
            value: b"1".to_vec(),
            etag: None,
            version: 1,
            fetched_at: Some(now),
            written_at: None,
            fresh_until: now.saturating_add(Duration::from_secs(60)),
            stale_until: now.saturating_add(Duration::from_secs(60)),
            stale_if_error_until: now.saturating_add(Duration::from_secs(60)),
            dirty: None,
            audience: crate::entry::Audience::Anyone,
            invalidated_at: None,
        };
        let policy = crate::envelope::CodecPolicy {
            compress_min_bytes: 1024,
        };
        let bytes = crate::envelope::encode(&entry, &policy).unwrap();
        store.set(&key.kv_key(), &bytes).unwrap();
    }

    #[test]
    fn one_ticket_per_window_fills_the_others_wait_and_a_late_claim_finds_the_entry() {
        let mut store = MemoryStore::new();
        let key = ck("a");
        let now = UnixMillis(10_000);
        let Claim::Fill { held, after: None } = claim(&mut store, &key, 1, now, None).unwrap()
        else {
            panic!("the first claim fills");
        };
        for owner in 2..10 {
            assert!(matches!(
                claim(&mut store, &key, owner, now, None).unwrap(),
                Claim::Wait(w) if w.until == UnixMillis(12_000)
            ));
        }
        // The holder stores the entry, then gives the ticket back.
        fresh(&mut store, &key, now);
        release(&mut store, held);
        assert_eq!(store.peek(&ticket_key(&key, now)), None);
        // A miss that read before the entry was stored and claims now: no second fetch.
        assert!(matches!(
            claim(&mut store, &key, 11, now, None).unwrap(),
            Claim::Filled(_)
        ));
        // Unless the entry is older than an invalidation it must follow.
        assert!(matches!(
            claim(&mut store, &key, 12, now, Some(UnixMillis(now.0 + 1))).unwrap(),
            Claim::Fill { after: None, .. }
        ));
    }

    #[test]
    fn the_first_claim_of_a_window_waits_for_the_previous_windows_holder() {
        let mut store = MemoryStore::new();
        let key = ck("a");
        let Claim::Fill { .. } = claim(&mut store, &key, 1, UnixMillis(11_999), None).unwrap()
        else {
            panic!("the first claim fills");
        };
        let Claim::Fill { after: Some(w), .. } =
            claim(&mut store, &key, 2, UnixMillis(12_000), None).unwrap()
        else {
            panic!("the next window's first claim waits for the previous one first");
        };
        assert_eq!(w.until, UnixMillis(14_000));
        assert!(!is_dead_ticket(5, UnixMillis(13_999)));
        assert!(is_dead_ticket(5, UnixMillis(14_000)));
    }

    #[test]
    fn without_atomics_the_claim_is_a_lease() {
        let mut store = crate::store::WithoutAtomics(MemoryStore::new());
        let key = ck("a");
        let now = UnixMillis(10_000);
        assert!(matches!(
            claim(&mut store, &key, 1, now, None).unwrap(),
            Claim::Fill { after: None, .. }
        ));
        assert!(store.0.peek(&lease_key(&key)).is_some());
        assert!(matches!(
            claim(&mut store, &key, 2, now, None).unwrap(),
            Claim::Wait(w) if w.lease
        ));
    }

    #[test]
    fn read_back_decides_who_holds_it() {
        let mine = encode(&new_lease(1, UnixMillis(0), Duration::from_secs(1)));
        assert!(holds(Some(&mine), 1));
        assert!(!holds(Some(&mine), 2));
        assert!(holds(None, 2));
    }
}
