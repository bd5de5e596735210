//! The sweep's tests: whole caches as before, and caches swept a slice at a time.

use std::cell::RefCell;

use super::*;
use crate::entry::{Audience, Dirty, Entry, EntryKind};
use crate::envelope::{encode, CodecPolicy};
use crate::stamp::Stamp;
use crate::store::{AfterGetMany, MemoryStore};
use crate::time::TestClock;

/// An entry fetched at `fetched` seconds, expiring at `expires` seconds, maybe dirty.
fn entry(fetched: u64, expires: u64, dirty: bool) -> Vec<u8> {
    let e = Entry {
        kind: EntryKind::Value,
        value: b"1".to_vec(),
        etag: None,
        version: 0,
        fetched_at: Some(UnixMillis(fetched * 1000)),
        written_at: None,
        fresh_until: UnixMillis(expires * 1000),
        stale_until: UnixMillis(expires * 1000),
        stale_if_error_until: UnixMillis(expires * 1000),
        audience: Audience::Granted,
        dirty: dirty.then(|| Dirty {
            stamp: Stamp::new(UnixMillis(1), 0, 1),
            since: UnixMillis(1),
        }),
        invalidated_at: None,
    };
    encode(
        &e,
        &CodecPolicy {
            compress_min_bytes: 0,
        },
    )
    .unwrap()
}

/// (fetched secs, expiry secs, dirty); `None` stores garbage.
type Spec = Option<(u64, u64, bool)>;
type Case<'a> = (&'a [(&'a str, Spec)], usize, u64, &'a [&'a str]);

fn check(entries: &[(&str, Spec)], max: usize, now: u64, left: &[&str]) {
    let mut store = MemoryStore::new();
    for (key, e) in entries {
        let bytes = e.map_or(b"junk".to_vec(), |(f, x, d)| entry(f, x, d));
        store.set(&format!("c:ns:{key}"), &bytes).unwrap();
    }
    store.set("w:x", b"keep").unwrap();
    let mut cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    cfg.max_entries = max;
    let report = sweep(&mut store, &mut TestClock::at(UnixMillis(now * 1000)), &cfg).unwrap();
    let got: Vec<String> = store
        .keys_with_prefix("c:ns:")
        .iter()
        .map(|k| k[5..].to_owned())
        .collect();
    assert_eq!(got, left, "{entries:?} max {max} at {now}");
    assert_eq!(report.remaining, left.len());
    assert!(store.peek("w:x").is_some());
}

/// A store where a write stores a dirty entry over every entry just after the sweep
/// read it in bulk.
fn written_after_read(
    store: MemoryStore,
) -> AfterGetMany<MemoryStore, impl FnMut(&mut MemoryStore, &[String]) -> Result<(), StoreError>> {
    AfterGetMany(store, |store: &mut MemoryStore, keys: &[String]| {
        for key in keys {
            store.set(key, &entry(50, 60, true))?;
        }
        Ok(())
    })
}

#[test]
fn an_entry_written_after_the_sweep_read_it_is_neither_expired_nor_evicted() {
    let mut store = written_after_read(MemoryStore::new());
    store.set("c:ns:old", &entry(1, 2, false)).unwrap();
    store.set("c:ns:live", &entry(1, 100, false)).unwrap();
    let mut cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    cfg.max_entries = 0;
    let report = sweep(&mut store, &mut TestClock::at(UnixMillis(10_000)), &cfg).unwrap();
    assert_eq!((report.expired, report.evicted), (0, 0));
    assert_eq!(store.0.keys_with_prefix("c:ns:").len(), 2);
}

#[test]
fn the_rate_counters_of_ended_windows_go_and_current_ones_stay() {
    let mut store = MemoryStore::new();
    for key in [
        "r:read:100:ip:192.0.2.1",
        "r:admin:160:ip:192.0.2.1",
        "r:write:161:#0123456789abcdef0123456789abcdef",
        "r:read:0160:ip:192.0.2.1",
        "m:count:hits",
    ] {
        store.set(key, b"1").unwrap();
    }
    let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    let report = sweep(&mut store, &mut TestClock::at(UnixMillis(160_000)), &cfg).unwrap();
    assert_eq!(report.rate_counters, 2);
    assert_eq!(
        store.get_keys().unwrap(),
        [
            "m:count:hits",
            "m:sweep",
            "r:read:0160:ip:192.0.2.1",
            "r:write:161:#0123456789abcdef0123456789abcdef"
        ]
    );
}

#[test]
fn expired_and_excess_clean_entries_go_and_dirty_ones_stay() {
    let cases: &[Case] = &[
        (
            &[("a", Some((0, 10, false))), ("b", Some((0, 100, false)))],
            10,
            50,
            &["b"],
        ),
        (&[("a", Some((0, 10, true)))], 10, 50, &["a"]),
        (&[("a", None), ("b", Some((0, 100, false)))], 10, 50, &["b"]),
        (
            &[
                ("a", Some((3, 100, false))),
                ("b", Some((1, 100, false))),
                ("c", Some((2, 100, false))),
            ],
            2,
            50,
            &["a", "c"],
        ),
        (
            &[
                ("a", Some((1, 100, true))),
                ("b", Some((2, 100, true))),
                ("c", Some((3, 100, false))),
            ],
            1,
            50,
            &["a", "b"],
        ),
    ];
    for (entries, max, now, left) in cases {
        check(entries, *max, *now, left);
    }
}

#[test]
fn grants_of_windows_no_lookup_reads_are_deleted_unread() {
    let mut store = MemoryStore::new();
    let digest = "ab".repeat(16);
    let key = |window| {
        KvKey::Grant {
            window,
            digest: digest.clone(),
        }
        .render()
    };
    for w in [0, 1, 2, 3] {
        store.set(&key(w), b"any").unwrap();
    }
    let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    // grant_ttl is 60 s: at 150 s the current window is 2, and 1 is still read.
    let report = sweep(&mut store, &mut TestClock::at(UnixMillis(150_000)), &cfg).unwrap();
    assert_eq!(report.grants_expired, 2);
    assert_eq!(store.keys_with_prefix("m:grant:"), [key(1), key(2)]);
}

#[test]
fn shadow_counts_of_windows_the_gate_no_longer_reads_are_deleted_unread() {
    let mut store = MemoryStore::new();
    let key = |window, mismatch| KvKey::ShadowWindow { window, mismatch }.render();
    for w in [0, 1, 2] {
        store.set(&key(w, false), b"any").unwrap();
        store.set(&key(w, true), b"any").unwrap();
    }
    store.set(&KvKey::ShadowSamples.render(), b"[]").unwrap();
    let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    // rollout_gate_window is 15 min: at 40 min the current window is 2, and 1 is still read.
    let report = sweep(&mut store, &mut at(40 * 60), &cfg).unwrap();
    assert_eq!(report.shadow_windows_expired, 2, "window 0's two counts");
    assert_eq!(
        store.keys_with_prefix("m:shadow:"),
        [
            key(1, false),
            key(1, true),
            key(2, false),
            key(2, true),
            KvKey::ShadowSamples.render()
        ]
    );
}

/// A store of `n` entries `c:ns:k{i:06}`, entry `i` being `make(i)`.
fn cache_of(n: usize, make: impl Fn(usize) -> Vec<u8>) -> MemoryStore {
    let mut store = MemoryStore::new();
    for i in 0..n {
        store.set(&format!("c:ns:k{i:06}"), &make(i)).unwrap();
    }
    store
}

/// A configuration keeping `max` entries, sweeping `slice` a tick.
fn sliced(max: usize, slice: usize) -> CacheConfig {
    let mut cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    cfg.max_entries = max;
    cfg.sweep_slice = slice;
    cfg
}

fn at(secs: u64) -> TestClock {
    TestClock::at(UnixMillis(secs * 1000))
}

#[test]
fn slices_resume_where_the_last_one_stopped_and_wrap_after_the_last_key() {
    let reads = RefCell::new(Vec::new());
    let mut store = AfterGetMany(
        cache_of(10, |_| entry(1, 100, false)),
        |_: &mut MemoryStore, keys: &[String]| {
            reads.borrow_mut().extend(keys.iter().cloned());
            Ok(())
        },
    );
    let cfg = sliced(100, 4);
    let mut slices = Vec::new();
    for _ in 0..4 {
        let report = sweep(&mut store, &mut at(50), &cfg).unwrap();
        let read: Vec<String> = reads
            .borrow_mut()
            .drain(..)
            .map(|k| k[6..].to_owned())
            .collect();
        slices.push((read.join(" "), report.pass_complete));
    }
    assert_eq!(
        slices,
        [
            ("000000 000001 000002 000003".to_owned(), false),
            ("000004 000005 000006 000007".to_owned(), false),
            ("000008 000009".to_owned(), true),
            ("000000 000001 000002 000003".to_owned(), false),
        ]
    );
}

#[test]
fn a_million_like_cache_is_covered_once_in_n_over_slice_ticks() {
    const N: usize = 20_000;
    const SLICE: usize = 1_000;
    let reads = RefCell::new(Vec::new());
    let mut store = AfterGetMany(
        cache_of(N, |_| entry(1, 100, false)),
        |_: &mut MemoryStore, keys: &[String]| {
            reads.borrow_mut().extend(keys.iter().cloned());
            Ok(())
        },
    );
    let cfg = sliced(N, SLICE);
    for tick in 1..=N / SLICE {
        let report = sweep(&mut store, &mut at(50), &cfg).unwrap();
        assert_eq!(report.read, SLICE);
        assert_eq!(report.pass_complete, tick == N / SLICE, "tick {tick}");
        assert_eq!(report.remaining, N);
    }
    let mut read = reads.take();
    read.sort();
    read.dedup();
    assert_eq!(read.len(), N, "every entry read, none twice");
    assert_eq!(Swept::load(&mut store).unwrap().entries, N as u64);
}

#[test]
fn a_sliced_cache_is_listed_once_in_eight_sweeps_and_each_pass_still_reads_every_entry() {
    // 20 slices a pass: a listing at its start, then after every eight slices.
    let mut store = cache_of(2_000, |_| entry(1, 100, false));
    let cfg = sliced(10_000, 100);
    let mut listed_at = Vec::new();
    let mut read = 0;
    for tick in 0..40 {
        let report = sweep(&mut store, &mut at(50), &cfg).unwrap();
        if !report.planned {
            listed_at.push(tick);
        }
        read += report.read;
        assert_eq!(report.pass_complete, tick % 20 == 19, "tick {tick}");
    }
    assert_eq!(listed_at, [0, 8, 16, 20, 28, 36]);
    assert_eq!(read, 4_000);
    // The plan's slices are taken out as they are read: at most seven are ever kept.
    assert!(store.keys_with_prefix("m:sweepplan:").len() < SLICES_PER_LISTING);
}

#[test]
fn a_planned_slice_that_is_gone_or_of_another_listing_makes_the_sweep_list_again() {
    let mut store = cache_of(2_000, |_| entry(1, 100, false));
    let cfg = sliced(10_000, 100);
    assert!(!sweep(&mut store, &mut at(50), &cfg).unwrap().planned);
    // The next planned slice is lost: the sweep lists, and goes on from the cursor.
    store.delete("m:sweepplan:1").unwrap();
    let reads = RefCell::new(Vec::new());
    let mut store = AfterGetMany(store, |_: &mut MemoryStore, keys: &[String]| {
        reads.borrow_mut().extend(keys.iter().cloned());
        Ok(())
    });
    let report = sweep(&mut store, &mut at(51), &cfg).unwrap();
    assert!(!report.planned);
    assert_eq!(
        reads.borrow().first().map(String::as_str),
        Some("c:ns:k000100")
    );
    // A slice kept under the next name by another listing is not taken for this plan's.
    let mut other = store.0.get("m:sweepplan:2").unwrap().unwrap();
    let text = String::from_utf8(other.clone()).unwrap();
    other = text.replacen("\"id\":51000", "\"id\":1", 1).into_bytes();
    assert_ne!(other, text.as_bytes());
    store.set("m:sweepplan:2", &other).unwrap();
    assert!(sweep(&mut store, &mut at(52), &cfg).unwrap().planned);
    reads.borrow_mut().clear();
    let report = sweep(&mut store, &mut at(53), &cfg).unwrap();
    assert!(!report.planned);
    assert_eq!(
        reads.borrow().first().map(String::as_str),
        Some("c:ns:k000300")
    );
}

#[test]
fn a_listing_deletes_the_planned_slices_it_does_not_plan_again() {
    let mut store = cache_of(2_000, |_| entry(1, 100, false));
    let cfg = sliced(10_000, 100);
    sweep(&mut store, &mut at(5), &cfg).unwrap();
    assert_eq!(store.keys_with_prefix("m:sweepplan:").len(), 7);
    // The cache shrinks to one slice, and the next planned slice is lost: the listing
    // that follows sweeps the cache whole and deletes the rest of the old plan.
    for i in 100..2_000 {
        store.delete(&format!("c:ns:k{i:06}")).unwrap();
    }
    store.delete("m:sweepplan:1").unwrap();
    let report = sweep(&mut store, &mut at(6), &cfg).unwrap();
    assert!(!report.planned && report.pass_complete);
    assert!(store.keys_with_prefix("m:sweepplan:").is_empty());
    assert_eq!(Swept::load(&mut store).unwrap().plan, None);
}

#[test]
fn expired_entries_of_a_large_cache_are_gone_after_one_pass() {
    let mut store = cache_of(5_000, |i| {
        entry(1, if i % 2 == 0 { 10 } else { 100 }, false)
    });
    let cfg = sliced(10_000, 1_024);
    let mut expired = 0;
    for _ in 0..5 {
        expired += sweep(&mut store, &mut at(50), &cfg).unwrap().expired;
    }
    assert_eq!(expired, 2_500);
    assert_eq!(store.keys_with_prefix("c:").len(), 2_500);
}

#[test]
fn a_cache_that_fits_one_slice_is_swept_whole_with_exact_eviction() {
    // Oldest first: entry i was fetched at second i.
    for (n, slice, whole) in [(50, 50, true), (51, 50, false)] {
        let mut store = cache_of(n, |i| entry(i as u64, 100, false));
        let cfg = sliced(10, slice);
        let report = sweep(&mut store, &mut at(99), &cfg).unwrap();
        assert_eq!(report.pass_complete, whole);
        let left = store.keys_with_prefix("c:");
        if whole {
            assert_eq!(report.evicted, 40);
            assert_eq!(left.first().map(String::as_str), Some("c:ns:k000040"));
            assert_eq!(
                Swept::load(&mut store).unwrap(),
                Swept {
                    entries: 10,
                    cursor: None,
                    plan: None,
                }
            );
        } else {
            // Sliced: the first of two slices owes 50/51 of the 41 over, all of it
            // rounded up, paid with its own oldest (k50, the newest, is in the next slice).
            assert_eq!(report.evicted, 41);
            assert_eq!(left.first().map(String::as_str), Some("c:ns:k000041"));
            assert_eq!(report.remaining, 10);
        }
    }
}

#[test]
fn dirty_and_held_entries_survive_every_slice_of_every_pass() {
    // Every third entry dirty, every third held by an invalidation, the rest clean and
    // expired or not; nothing may stay but the dirty and the held.
    let held = encode(
        &Entry::invalidation(UnixMillis(40_000)),
        &CodecPolicy {
            compress_min_bytes: 0,
        },
    )
    .unwrap();
    let mut store = cache_of(3_000, |i| match i % 3 {
        0 => entry(1, 10, true),
        1 => held.clone(),
        _ => entry(1, if i % 2 == 0 { 10 } else { 100 }, false),
    });
    let cfg = sliced(0, 256);
    for _ in 0..2 * 3_000usize.div_ceil(256) {
        sweep(&mut store, &mut at(50), &cfg).unwrap();
    }
    let left = store.keys_with_prefix("c:");
    assert_eq!(left.len(), 2_000);
    assert!(left
        .iter()
        .all(|k| k[6..].parse::<usize>().is_ok_and(|i| i % 3 != 2)));
}

#[test]
fn an_entry_written_after_its_slice_read_it_is_kept() {
    let mut inner = MemoryStore::new();
    for i in 0..40 {
        inner
            .set(&format!("c:ns:k{i:02}"), &entry(1, 2, false))
            .unwrap();
    }
    let mut store = written_after_read(inner);
    let cfg = sliced(0, 10);
    for _ in 0..4 {
        let report = sweep(&mut store, &mut at(10), &cfg).unwrap();
        assert_eq!((report.read, report.expired, report.evicted), (10, 0, 0));
    }
    assert_eq!(store.0.keys_with_prefix("c:ns:").len(), 40);
}

#[test]
fn slices_evict_their_least_recently_touched_and_a_pass_ends_within_max_entries() {
    // Entry i was last touched at a time spread over the keys (a permutation of 0..2000).
    const N: usize = 2_000;
    let touched = |i: usize| (i * 7_919 % N) as u64;
    let mut store = cache_of(N, |i| entry(touched(i), 1_000_000, false));
    let cfg = sliced(1_800, 100);
    let mut evicted = 0;
    for _ in 0..N / 100 {
        evicted += sweep(&mut store, &mut at(10_000), &cfg).unwrap().evicted;
    }
    assert_eq!(evicted, 200);
    let left = store.keys_with_prefix("c:");
    assert_eq!(left.len(), 1_800);
    let gone: Vec<u64> = (0..N)
        .filter(|i| !left.contains(&format!("c:ns:k{i:06}")))
        .map(touched)
        .collect();
    // The exact choice would be the 200 oldest (touched below 200). The first slices owe an
    // eighth of the excess each, 25 of their 100, so the victims come from the oldest
    // quarter of the cache, never from the rest.
    let worst = gone.iter().max().copied().unwrap_or_default();
    assert!(
        worst < N as u64 / 4,
        "evicted an entry touched at {worst}: {gone:?}"
    );
}

#[test]
fn a_steady_inflow_stays_within_sixteen_ticks_of_it_over_max_entries() {
    const MAX: usize = 4_000;
    const INFLOW: usize = 20;
    let mut store = cache_of(MAX, |i| entry(i as u64, 1_000_000, false));
    let cfg = sliced(MAX, 100);
    let mut worst = 0;
    let mut next = MAX;
    for tick in 0..200 {
        for _ in 0..INFLOW {
            store
                .set(
                    &format!("c:ns:k{next:06}"),
                    &entry(10_000 + tick, 1_000_000, false),
                )
                .unwrap();
            next += 1;
        }
        sweep(&mut store, &mut at(20_000), &cfg).unwrap();
        worst = worst.max(store.keys_with_prefix("c:").len().saturating_sub(MAX));
    }
    // Eight ticks over which an excess is spread, and up to eight more of inflow that the
    // planned slices after a listing do not see.
    assert!(worst <= 16 * INFLOW, "{worst} over max_entries");
}

/// A clock that moves on by 7 ms each time it is read.
struct Ticking(u64);

impl Clock for Ticking {
    fn now(&mut self) -> UnixMillis {
        self.0 += 7;
        UnixMillis(self.0)
    }
    fn sleep(&mut self, d: std::time::Duration) {
        self.0 += u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    }
}

#[test]
fn a_sweep_reports_how_long_it_took_by_the_clock() {
    let cfg = CacheConfig::with_db_api_url("http://db").unwrap();
    let mut store = MemoryStore::new();
    store.set("c:ns:a", &entry(0, 1_000_000, false)).unwrap();
    let report = sweep(&mut store, &mut Ticking(10_000), &cfg).unwrap();
    // Read at its start and at its end, and perhaps in between.
    assert!(report.took_ms >= 7, "{report:?}");
    let fixed = sweep(&mut store, &mut TestClock::at(UnixMillis(10_000)), &cfg).unwrap();
    assert_eq!(fixed.took_ms, 0);
}
