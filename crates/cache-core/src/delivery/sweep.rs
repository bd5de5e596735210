//! The sweep: removing expired cache entries and keeping the cache within `max_entries`.
//!
//! Spin KV never expires anything by itself, and Fermyon Cloud caps a store's key count, so
//! the flush component also sweeps. Expired clean entries are deleted; then, if more than
//! `max_entries` remain, clean entries are evicted least recently fetched or written first.
//! An entry holding undelivered writes (dirty) is never deleted: it is the only readable copy
//! of the newest value until the flush delivers it. Nor is one holding a recent invalidation
//! ([`crate::serve::invalidate`]): it is what keeps callers' own entries of its key from being
//! served. Entries are read many to a
//! [`KvStore::get_many`] (as many as fit a memory budget, `bulk_read`); those chosen for deletion are read again and deleted together in
//! a rewrite window ([`crate::delivery::rewrite_window`]), so a write that stored its dirty
//! entry since the first read keeps it. Unreadable entries are deleted (a read
//! would treat them as a miss anyway; any write they showed is still in the buffer).
//!
//! # A slice per tick
//!
//! Reading every entry is a `get` per entry on Spin's Redis store (which refuses get-many):
//! on a million entries it made every flush half a minute longer. So a sweep reads at most
//! `sweep_slice` entries ([`slice`]): a cache that fits one slice is read whole every tick,
//! with the exact eviction above (Fermyon Cloud's 1024 keys always fit: the slice is at
//! least that), and a larger one a slice a tick, in key order from where the previous sweep
//! stopped (the cursor, kept in `m:sweep` with the count), wrapping around after the last
//! key. A pass over `N` entries takes `⌈N / sweep_slice⌉` ticks; an entry expires in the
//! pass after its windows end, and until then a read treats it as the miss it is.
//!
//! Eviction in a slice is sampled, as Redis's approximate LRU is: the listing counts every
//! entry, so the excess over `max_entries` is known each tick; the slice owes its share of
//! it ([`slice::share`]: at least an eighth, all that is left on a pass's last slice),
//! paid first by the entries it deletes anyway (expired, unreadable), then by evicting its
//! own least recently touched clean entries. Since key order is unrelated to use, a slice
//! is a sample of the whole cache, and its oldest are among the cache's oldest. In a sliced
//! sweep the excess counts every entry listed, held markers and not yet expired ones
//! included (the listing cannot tell them apart), so it errs towards fewer keys. How far
//! over `max_entries` the cache can go:
//!
//! - a one-off excess (a burst of fills, `max_entries` lowered) shrinks by at least an
//!   eighth each tick: under 1% of it is left after 35 ticks, none after the pass's last
//!   slice. An excess of more than eight slices' worth (32,768 entries by default) is more
//!   than a slice can pay: each tick then evicts every clean entry of its slice, whatever
//!   its age, until the excess fits again;
//! - a steady inflow of new entries settles at under 16 ticks' worth above `max_entries`
//!   (1000 new entries a minute: about 16,000 over), whatever the cache's size: 8 ticks
//!   over which each excess is spread, and up to 8 more of inflow that the slices planned
//!   by one listing do not see (below);
//! - a slice pays only with clean entries it read unchanged: one that has too few (dirty,
//!   held, written since) leaves the rest of its share to the next slices, the last of a
//!   pass included, and what that one cannot pay to the next pass.
//!
//! Two sweeps at once (the cron tick and `POST /admin/flush`) may read the same slice; the
//! second deletes nothing the first did, and one of their cursors is kept: a slice done
//! twice, or one left for the next pass.
//!
//! # By name
//!
//! Kept access decisions (`m:grant:{window}:…`) and remembered idempotency keys
//! (`m:idem:{window}:…`) of windows no lookup reads any more are deleted by name, unread
//! ([`crate::auth::grant`], [`crate::serve::idempotency`]), and so are fill tickets a failed
//! fill left behind ([`crate::serve::fill`]) and shadow mode's counts of windows the gate no
//! longer reads ([`crate::rollout::evidence`]).
//! The sweep also deletes the rate counters (`r:` keys, [`crate::limit`]) of windows that
//! have ended: nothing reads them again, and every caller of every window would otherwise
//! leave a key behind. The window's end is in the key, so this needs no budget and no read,
//! and it uses the listing the entries need anyway. These are not sliced: they cost no read,
//! only a `delete` each of what died since the previous listing, and on a store with a key
//! cap (which always fits one slice, so is listed every tick) every window's callers would
//! otherwise pile up for a pass.
//!
//! # A listing per eight slices
//!
//! Spin's stores list nothing smaller than a whole store (on Redis, one `KEYS` of every
//! key, which blocks the server for every other client while it runs; on a million entries
//! the listing was most of a tick). So a listing of a sliced cache chooses the next
//! [`SLICES_PER_LISTING`] slices at once: its own sweep reads the first, and the keys of
//! the others are kept in the store (`m:sweepplan:{i}`, [`Plan`]), each taken out by the
//! sweep that reads it. The sweeps after it list nothing: they read their slice's keys and
//! the count the listing made, less what the slices since found gone or deleted. Entries
//! added meanwhile are unseen until the next listing (they are read in the next pass, and
//! counted in the excess eight ticks later at most); the deletions by name run with each
//! listing. A planned slice that is gone, or was planned by another listing (two sweeps at
//! once), makes the sweep list, from the cursor. A cache that fits one slice is listed by
//! every sweep, as before: the listing is small, and the eviction exact.
//!
//! # The count
//!
//! The sweep stores the entries it left (`m:sweep`, [`Swept`]) for `/metrics`, which then
//! reads one key instead of listing the cache: after a whole sweep, the entries it kept;
//! after a slice, the entry keys the last listing counted less those found gone or deleted
//! in the slices since, which counts the expired entries of slices not yet read as entries
//! (and, until the next listing, not the entries added since).

mod slice;
#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

use crate::auth::grant;
use crate::config::CacheConfig;
use crate::delivery::bulk_read::read_each;
use crate::delivery::rewrite_window;
use crate::envelope;
use crate::rollout::evidence;
use crate::serve::fill;
use crate::serve::idempotency;
use crate::serve::invalidate;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::{Area, KvKey, RecordKind};
use crate::time::{Clock, UnixMillis};
use slice::Slice;

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Entries read: the whole cache, or one slice of it.
    pub read: usize,
    /// Whether the entries read reached the end of the listing, so the next sweep starts a
    /// pass (always, for a cache that fits one slice).
    pub pass_complete: bool,
    /// Expired clean entries deleted.
    pub expired: usize,
    /// Clean entries evicted to respect `max_entries`.
    pub evicted: usize,
    /// Unreadable entries deleted.
    pub unreadable: usize,
    /// Dirty entries kept regardless.
    pub dirty: usize,
    /// Clean entries kept, expired or not, because they hold a recent invalidation
    /// ([`invalidate::hold`]); never evicted either.
    pub held: usize,
    /// Entries left: counted by a whole sweep, estimated by a slice ([`Swept`]).
    pub remaining: usize,
    /// Access decisions deleted because their window is past.
    pub grants_expired: usize,
    /// Rate counters of ended windows deleted.
    pub rate_counters: usize,
    /// Idempotency keys deleted because their window is past.
    pub idempotency_expired: usize,
    /// Fill tickets left by crashed fills, deleted because their window is past.
    pub fill_tickets_expired: usize,
    /// Shadow comparison counts of windows the gate no longer reads.
    pub shadow_windows_expired: usize,
    /// Whether the slice was one an earlier listing planned, so this sweep listed nothing.
    pub planned: bool,
    /// How long the sweep took by the clock, milliseconds: on a large cache mostly the
    /// listing, which Spin's stores make of every key.
    pub took_ms: u64,
}

/// The sweep's record in `m:sweep`, beside the entries: what the last sweep counted, and
/// where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Swept {
    /// Entries the last sweep left: those it kept after a whole sweep; after a slice, the
    /// entry keys the last listing counted less those found gone or deleted in the slices
    /// since (so entries expired in slices not yet read still count).
    pub entries: u64,
    /// The last entry key the previous slice read; absent at the start of a pass. Absent in
    /// records written before sweeps were sliced, which therefore start a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<String>,
    /// The slices the last listing chose for the sweeps after it, not read yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) plan: Option<Plan>,
}

/// Slices one listing of a sliced cache chooses: its own sweep's, and the next ones for the
/// sweeps after it, kept in `m:sweepplan:{i}` ([`KvKey::SweepPlan`]). Eight, the
/// [`slice::HORIZON`] over which a slice's share of the excess is spread.
pub(crate) const SLICES_PER_LISTING: usize = slice::HORIZON;

/// What the sweeps after a listing need of it besides their slices' keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Plan {
    /// The listing's time, Unix milliseconds: it names the listing, so that a slice another
    /// listing planned is never taken for one of this one.
    id: u64,
    /// The next planned slice to read (`m:sweepplan:{next}`), from 1.
    next: usize,
    /// How many slices the listing planned after its own.
    slices: usize,
    /// Entry keys the listing counted, less those found gone or deleted since.
    listed: usize,
    /// Entry keys from the next planned slice to the end of the pass, as listed.
    rest: usize,
}

/// One planned slice as kept in `m:sweepplan:{i}`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Planned {
    /// The [`Plan::id`] of the listing that chose it.
    id: u64,
    /// Its entry keys, in key order.
    keys: Vec<String>,
    /// Where the sweep after it starts; `None` when it ends the pass.
    next: Option<String>,
}

impl Swept {
    /// The last sweep's record; none (never swept, or unreadable) reads as the default.
    pub fn load(store: &mut impl KvStore) -> Result<Swept, StoreError> {
        Ok(store
            .get(&KvKey::Sweep.render())?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    fn save(&self, store: &mut impl KvStore) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(self).map_err(|e| StoreError::Other(e.to_string()))?;
        store.set(&KvKey::Sweep.render(), &bytes)
    }
}

/// Entries deleted per rewrite window: a write landing meanwhile waits for the window.
const DELETE_CHUNK: usize = 32;

/// What the sweep keeps of an entry it read, to tell whether it changed since: a SHA-256 of
/// its bytes, not the bytes (a million entries' bytes would not fit an instance's memory).
type Seen = [u8; 32];

fn seen(bytes: &[u8]) -> Seen {
    Sha256::digest(bytes).into()
}

/// Why an entry is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Unreadable,
    Expired,
    Evicted,
}

/// How many were deleted, per [`Why`].
#[derive(Debug, Default)]
struct Deleted {
    unreadable: usize,
    expired: usize,
    evicted: usize,
}

impl Deleted {
    fn count(&mut self, why: Why) {
        match why {
            Why::Unreadable => self.unreadable += 1,
            Why::Expired => self.expired += 1,
            Why::Evicted => self.evicted += 1,
        }
    }

    fn total(&self) -> usize {
        self.unreadable + self.expired + self.evicted
    }
}

/// Deletes each key that still holds what the sweep read, in rewrite windows
/// ([`rewrite_window`]): read again together, deleted together, and a write that lands in
/// between waits the window out and stores its entry again. A window with too little time
/// left deletes nothing (the next pass will).
fn delete_unchanged(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    doomed: &[(String, Seen, Why)],
) -> Result<Deleted, StoreError> {
    let mut deleted = Deleted::default();
    for chunk in doomed.chunks(DELETE_CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|(k, _, _)| k.clone()).collect();
        let window = rewrite_window::open(store, clock)?;
        let now = store.get_many(&keys)?;
        let unchanged: Vec<(String, Why)> = chunk
            .iter()
            .zip(now)
            .filter(|((_, was, _), now)| now.as_deref().map(seen) == Some(*was))
            .map(|((k, _, why), _)| (k.clone(), *why))
            .collect();
        if window.may_write(clock) {
            let keys: Vec<String> = unchanged.iter().map(|(k, _)| k.clone()).collect();
            store.delete_many(&keys)?;
            for (_, why) in unchanged {
                deleted.count(why);
            }
        }
        window.close(store)?;
    }
    Ok(deleted)
}

/// Deletes, unread, the keys of `keys` whose name says nothing reads them any more: grants,
/// idempotency keys and fill tickets of past windows, rate counters of ended windows.
fn delete_dead_names(
    store: &mut impl KvStore,
    keys: &[String],
    now: UnixMillis,
    cfg: &CacheConfig,
    report: &mut SweepReport,
) -> Result<(), StoreError> {
    let now_secs = now.0 / 1000;
    for key in keys {
        if !matches!(
            RecordKind::of(key),
            Some(RecordKind::Meta | RecordKind::Rate)
        ) {
            continue;
        }
        // A key that does not parse is not ours to judge; a current window's is in use.
        let count = match KvKey::parse(key) {
            Some(KvKey::Grant { window, .. }) if grant::is_dead(window, now, cfg.grant_ttl) => {
                &mut report.grants_expired
            }
            Some(KvKey::Idempotency { window, .. }) if idempotency::is_dead(window, now) => {
                &mut report.idempotency_expired
            }
            Some(KvKey::FillTicket { window, .. }) if fill::is_dead_ticket(window, now) => {
                &mut report.fill_tickets_expired
            }
            Some(KvKey::ShadowWindow { window, .. })
                if evidence::is_dead_window(window, now, cfg.rollout_gate_window) =>
            {
                &mut report.shadow_windows_expired
            }
            Some(KvKey::Rate { window_end, .. }) if window_end <= now_secs => {
                &mut report.rate_counters
            }
            _ => continue,
        };
        store.delete(key)?;
        *count += 1;
    }
    Ok(())
}

/// The next slice a listing planned, taken out of the store; `None` when none is left, or
/// the one due is gone or was planned by another listing (a sweep then lists).
fn take_planned(
    store: &mut impl KvStore,
    record: &Swept,
) -> Result<Option<(Slice, Plan)>, StoreError> {
    let Some(plan) = record.plan.clone().filter(|p| p.next <= p.slices) else {
        return Ok(None);
    };
    let key = KvKey::SweepPlan(plan.next).render();
    let Some(bytes) = store.get(&key)? else {
        return Ok(None);
    };
    store.delete(&key)?;
    let planned = match serde_json::from_slice::<Planned>(&bytes) {
        Ok(planned) if planned.id == plan.id => planned,
        _ => return Ok(None),
    };
    let slice = Slice {
        keys: planned.keys,
        listed: plan.listed,
        rest: plan.rest,
        whole: false,
        next: planned.next,
    };
    Ok(Some((slice, plan)))
}

/// Lists the cache's area: deletes what is dead by name, then chooses this sweep's slice
/// and, for a sliced cache, plans the next ones (storing their keys, and deleting those of
/// an older plan that are not stored again).
fn list(
    store: &mut impl KvStore,
    record: &Swept,
    now: UnixMillis,
    cfg: &CacheConfig,
    report: &mut SweepReport,
) -> Result<(Slice, Option<Plan>), StoreError> {
    let keys = store.get_keys_in(Area::Cache)?;
    delete_dead_names(store, &keys, now, cfg, report)?;
    let mut old_plan = Vec::new();
    let mut entry_keys = Vec::new();
    for key in keys {
        match RecordKind::of(&key) {
            Some(RecordKind::Entry) => entry_keys.push(key),
            _ => {
                if let Some(KvKey::SweepPlan(i)) = KvKey::parse(&key) {
                    old_plan.push((i, key));
                }
            }
        }
    }
    let cursor = if entry_keys.len() > cfg.sweep_slice {
        record.cursor.as_deref()
    } else {
        None
    };
    let (slice, later) = slice::select(entry_keys, cursor, cfg.sweep_slice, SLICES_PER_LISTING);
    let plan = (!later.is_empty()).then(|| Plan {
        id: now.0,
        next: 1,
        slices: later.len(),
        listed: slice.listed,
        rest: later[0].rest,
    });
    if let Some(plan) = &plan {
        let mut pairs = Vec::with_capacity(later.len());
        for (i, s) in later.into_iter().enumerate() {
            let planned = Planned {
                id: plan.id,
                keys: s.keys,
                next: s.next,
            };
            let bytes =
                serde_json::to_vec(&planned).map_err(|e| StoreError::Other(e.to_string()))?;
            pairs.push((KvKey::SweepPlan(i + 1).render(), bytes));
        }
        store.set_many(&pairs)?;
    }
    let kept = plan.as_ref().map_or(0, |p| p.slices);
    let stale: Vec<String> = old_plan
        .into_iter()
        .filter(|(i, _)| *i == 0 || *i > kept)
        .map(|(_, key)| key)
        .collect();
    if !stale.is_empty() {
        store.delete_many(&stale)?;
    }
    Ok((slice, plan))
}

/// Sweeps the cache entries of `store` at the clock's time: the whole cache when it fits
/// `sweep_slice`, else the next slice of the pass, planned by an earlier listing or chosen
/// by listing now.
pub fn sweep(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    cfg: &CacheConfig,
) -> Result<SweepReport, StoreError> {
    let now = clock.now();
    let mut report = SweepReport::default();
    let record = Swept::load(store)?;
    let (slice, plan) = match take_planned(store, &record)? {
        Some((slice, plan)) => {
            report.planned = true;
            (slice, Some(plan))
        }
        None => list(store, &record, now, cfg, &mut report)?,
    };
    report.read = slice.keys.len();
    report.pass_complete = slice.next.is_none();
    // Per entry only its index, its digest and (to evict) when it was last touched: a
    // whole sweep may read a million.
    let mut evictable: Vec<(UnixMillis, usize, Seen)> = Vec::new();
    let mut doomed: Vec<(String, Seen, Why)> = Vec::new();
    let mut gone = 0;
    read_each(store, &slice.keys, |i, bytes| {
        let Some(bytes) = bytes else {
            gone += 1;
            return Ok(());
        };
        let key = &slice.keys[i];
        match envelope::decode(&bytes) {
            Err(_) => doomed.push((key.clone(), seen(&bytes), Why::Unreadable)),
            Ok(entry) if entry.is_dirty() => report.dirty += 1,
            Ok(entry) if invalidate::is_held(&entry, now, cfg) => report.held += 1,
            Ok(entry) if entry.is_expired(now) => {
                doomed.push((key.clone(), seen(&bytes), Why::Expired));
            }
            Ok(entry) => evictable.push((entry.touched_at(), i, seen(&bytes))),
        }
        Ok(())
    })?;
    let evict = if slice.whole {
        (report.dirty + evictable.len()).saturating_sub(cfg.max_entries)
    } else {
        slice::share(slice.listed, cfg.max_entries, slice.keys.len(), slice.rest)
            .saturating_sub(doomed.len())
    }
    .min(evictable.len());
    if evict > 0 {
        evictable.sort_unstable_by_key(|(touched, i, _)| (*touched, slice.keys[*i].as_str()));
        doomed.extend(
            evictable
                .iter()
                .take(evict)
                .map(|(_, i, was)| (slice.keys[*i].clone(), *was, Why::Evicted)),
        );
    }
    let deleted = delete_unchanged(store, clock, &doomed)?;
    report.unreadable = deleted.unreadable;
    report.expired = deleted.expired;
    report.evicted = deleted.evicted;
    report.remaining = if slice.whole {
        report.dirty + report.held + evictable.len() - report.evicted
    } else {
        slice.listed.saturating_sub(gone + deleted.total())
    };
    // What the plan has left after this slice: the next one, and the entries it counts
    // less those this one found gone or deleted. It ends with the pass.
    let plan = plan.and_then(|mut plan| {
        if report.planned {
            plan.next += 1;
            plan.rest = plan.rest.saturating_sub(slice.keys.len());
        }
        plan.listed = slice.listed.saturating_sub(gone + deleted.total());
        (plan.next <= plan.slices && slice.next.is_some()).then_some(plan)
    });
    Swept {
        entries: report.remaining as u64,
        cursor: slice.next,
        plan,
    }
    .save(store)?;
    report.took_ms = clock.now().0.saturating_sub(now.0);
    Ok(report)
}
