//! Flush runs racing on one store, under scripted schedules.
//!
//! Several flushers (and a gateway writer) share one `MemoryStore`. Each runs on its own
//! thread, but a scheduler lets exactly one of them perform its next store or DB API call at a
//! time, in the order a schedule names; so every interleaving is reproducible from its seed,
//! with no sleeps and no dependence on the machine's speed.
//!
//! The property: no write reaches the DB API in two batches with different ids. A run's lease
//! can be lost to another run at any point (a race on acquisition, or expiry while the run is
//! stalled); the sealing registry in the lease record, changed only by compare-and-swap, must
//! keep every write sealable by one run only. The store's compare-and-swap comes in the three
//! kinds cache-sync meets: atomic (Spin's SQLite backend, the embedded host), atomic but
//! reporting an aborted swap as done (Spin's Redis backend), and none at all (Fermyon Cloud,
//! Akamai Functions), where the DB API's per-write idempotency has to carry the guarantee.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cache_core::config::CacheConfig;
use cache_core::contract::{BatchRequest, BatchResponse};
use cache_core::db::{DbApi, SendError};
use cache_core::delivery::flush;
use cache_core::stamp::StampGen;
use cache_core::store::{KvStore, MemoryStore, StoreError};
use cache_core::time::UnixMillis;
use common::{write_into, FakeDb, TestClock, T0};

/// Who performs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Flusher(usize),
    /// A gateway write of key `w{n}` happens here (performed by whichever thread reaches it).
    Write(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CasKind {
    /// Compare and set in one step.
    Atomic,
    /// Atomic, but a swap that found another value reports success without writing.
    ReportsAbortAsDone,
    /// No atomics: read, compare and write are separate steps others can run between.
    Emulated,
}

struct Shared {
    store: MemoryStore,
    db: FakeDb,
    schedule: Vec<Actor>,
    pos: usize,
    done: Vec<bool>,
    stamps: StampGen,
    cfg: CacheConfig,
    /// Every step taken, for the failure message.
    trace: Vec<String>,
}

impl Shared {
    fn gateway_write(&mut self, n: usize) {
        self.trace.push(format!("gateway writes w{n}"));
        let now = UnixMillis(T0 + 10 + n as u64);
        let stamp = self.stamps.next(now);
        write_into(
            &mut self.store,
            &format!("w{n}"),
            Some(n.into()),
            stamp,
            now,
            &self.cfg,
        );
    }
}

struct Scheduler {
    state: Mutex<Shared>,
    turn: Condvar,
}

impl Scheduler {
    /// Waits for `me`'s turn and returns the shared state, locked, for one step.
    fn step(&self, me: usize) -> MutexGuard<'_, Shared> {
        let mut s = self.state.lock().unwrap();
        loop {
            // Writes scheduled at this point happen first, whoever gets here.
            while let Some(&Actor::Write(n)) = s.schedule.get(s.pos) {
                s.gateway_write(n);
                s.pos += 1;
            }
            let turn = match s.schedule.get(s.pos) {
                Some(Actor::Flusher(f)) if !s.done[*f] => Some(*f),
                Some(_) => {
                    s.pos += 1;
                    continue;
                }
                // Schedule used up: the rest runs one flusher after the other.
                None => s.done.iter().position(|d| !d),
            };
            if turn == Some(me) {
                s.pos += 1;
                return s;
            }
            s = self.turn.wait(s).unwrap();
        }
    }

    fn finish(&self, me: usize) {
        self.state.lock().unwrap().done[me] = true;
        self.turn.notify_all();
    }
}

/// One flusher's view of the shared store and DB API.
struct Handle {
    sched: Arc<Scheduler>,
    me: usize,
    cas: CasKind,
}

impl Handle {
    fn op<R>(&self, what: &str, key: &str, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut s = self.sched.step(self.me);
        s.trace.push(format!("f{} {what} {key}", self.me));
        let r = f(&mut s);
        drop(s);
        self.sched.turn.notify_all();
        r
    }
}

impl KvStore for Handle {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.op("get", key, |s| s.store.get(key))
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.op("set", key, |s| s.store.set(key, value))
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.op("delete", key, |s| s.store.delete(key))
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.op("get_keys", "", |s| s.store.get_keys())
    }
    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        match self.cas {
            CasKind::Atomic => {
                self.op("cas", key, |s| s.store.compare_and_swap(key, expected, new))
            }
            CasKind::ReportsAbortAsDone => self.op("cas", key, |s| {
                s.store.compare_and_swap(key, expected, new)?;
                Ok(true)
            }),
            CasKind::Emulated => {
                let current = self.get(key)?;
                if current.as_deref() != expected {
                    return Ok(false);
                }
                self.set(key, new)?;
                Ok(true)
            }
        }
    }
}

struct Db(Arc<Scheduler>, usize);

impl DbApi for Db {
    fn send_batch(&mut self, batch: &BatchRequest) -> Result<BatchResponse, SendError> {
        let mut s = self.0.step(self.1);
        s.trace
            .push(format!("f{} sends batch {}", self.1, &batch.batch_id[..8]));
        let r = s.db.send_batch(batch);
        drop(s);
        self.0.turn.notify_all();
        r
    }
}

/// A small xorshift generator, so schedules depend on the seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What one scripted race produced.
struct Race {
    /// Writes sent in batches with different ids.
    redelivered: usize,
    /// Writes the DB API applied more than once.
    applied_twice: usize,
    /// Buffered writes that never reached the DB API.
    undelivered: usize,
    db_items: usize,
    trace: Vec<String>,
}

/// Runs `flushers` flush runs under the schedule drawn from `seed`. Flusher `i` starts at
/// `T0 + i * start_gap`; a gap beyond `lease_ttl` lets a later run take an earlier one's lease
/// over while the earlier one is stalled.
fn race(
    seed: u64,
    flushers: usize,
    start_gap: Duration,
    cas: CasKind,
    forget_write_ids: bool,
) -> Race {
    let mut cfg = CacheConfig::with_db_api_url("http://db.test").unwrap();
    cfg.flush_batch_max_items = 2;
    let mut store = MemoryStore::new();
    let mut stamps = StampGen::new(0x5eed);
    for n in 0..3 {
        let now = UnixMillis(T0 + n);
        write_into(
            &mut store,
            &format!("k{n}"),
            Some(n.into()),
            stamps.next(now),
            now,
            &cfg,
        );
    }
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    // Bursts of 1 to 24 steps of one flusher: short ones interleave single calls, long ones
    // let a run do a whole phase (take the lease, seal and register) while another is stalled.
    let mut schedule: Vec<Actor> = Vec::new();
    while schedule.len() < 200 {
        let who = Actor::Flusher(rng.below(flushers));
        let longest = if rng.below(2) == 0 { 3 } else { 24 };
        let burst = 1 + rng.below(longest);
        schedule.extend(std::iter::repeat_n(who, burst));
    }
    for n in 0..2 {
        let at = rng.below(schedule.len());
        schedule.insert(at, Actor::Write(n));
    }
    let sched = Arc::new(Scheduler {
        state: Mutex::new(Shared {
            store,
            db: FakeDb {
                forget_write_ids,
                ..FakeDb::default()
            },
            schedule,
            pos: 0,
            done: vec![false; flushers],
            stamps,
            cfg: cfg.clone(),
            trace: Vec::new(),
        }),
        turn: Condvar::new(),
    });
    let threads: Vec<_> = (0..flushers)
        .map(|me| {
            let sched = sched.clone();
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let mut store = Handle {
                    sched: sched.clone(),
                    me,
                    cas,
                };
                let mut db = Db(sched.clone(), me);
                let now = UnixMillis(T0 + 100 + me as u64 * start_gap.as_millis() as u64);
                let mut clock = TestClock::at(now);
                let report =
                    flush::run(&mut store, &mut db, &mut clock, 7, &format!("f{me}"), &cfg);
                sched.finish(me);
                report
            })
        })
        .collect();
    for t in threads {
        t.join().expect("flusher panicked");
    }
    let mut shared = Arc::try_unwrap(sched)
        .ok()
        .expect("threads are done")
        .state
        .into_inner()
        .unwrap();
    // Writes scheduled after every run ended happen now.
    while let Some(&actor) = shared.schedule.get(shared.pos) {
        if let Actor::Write(n) = actor {
            shared.gateway_write(n);
        }
        shared.pos += 1;
    }
    // Drain what is left with one undisturbed run, long after every lease expired.
    let later = UnixMillis(T0 + 3_600_000);
    let report = flush::run(
        &mut shared.store,
        &mut shared.db,
        &mut TestClock::at(later),
        7,
        "drain",
        &cfg,
    );
    assert!(
        report.items.dead_lettered == 0 && !report.more,
        "drain: {report:?}"
    );
    let mut batches_of: BTreeMap<(String, String, u64), BTreeSet<String>> = BTreeMap::new();
    for batch in &shared.db.sent {
        for w in &batch.writes {
            batches_of
                .entry((w.ns.clone(), w.key.clone(), w.version))
                .or_default()
                .insert(batch.batch_id.clone());
        }
    }
    Race {
        redelivered: batches_of.values().filter(|ids| ids.len() > 1).count(),
        applied_twice: shared.db.applied_twice(),
        undelivered: shared.store.keys_with_prefix("w:").len()
            + shared.store.keys_with_prefix("b:").len(),
        db_items: shared.db.items.len(),
        trace: shared.trace,
    }
}

const SCHEDULES: u64 = 600;
/// Two runs sealing one write in two batches needs a rare interleaving (each run's emulated
/// swaps interrupted at exactly the wrong step); this many schedules find a few.
const SCHEDULES_WITHOUT_ATOMICS: u64 = 2000;

/// Checks every schedule; returns the seeds under which a write was sent in two batches.
fn check(flushers: usize, start_gap: Duration, cas: CasKind, may_redeliver: bool) -> Vec<u64> {
    let mut redelivered_in = Vec::new();
    let mut first_trace = Vec::new();
    let schedules = if cas == CasKind::Emulated {
        SCHEDULES_WITHOUT_ATOMICS
    } else {
        SCHEDULES
    };
    for seed in 0..schedules {
        let r = race(seed, flushers, start_gap, cas, false);
        assert_eq!(r.undelivered, 0, "seed {seed}: writes left undelivered");
        assert_eq!(r.db_items, 5, "seed {seed}: every key reaches the DB API");
        assert_eq!(
            r.applied_twice,
            0,
            "seed {seed}: a write was applied twice; steps:\n{}",
            r.trace.join("\n")
        );
        if r.redelivered > 0 {
            if redelivered_in.is_empty() {
                first_trace = r.trace;
            }
            redelivered_in.push(seed);
        }
    }
    if !may_redeliver {
        assert!(
            redelivered_in.is_empty(),
            "{flushers} flushers, {cas:?}: a write was sent in two batches under schedules \
             {redelivered_in:?}; the first one's steps:\n{}",
            first_trace.join("\n")
        );
    }
    redelivered_in
}

const SAME_TIME: Duration = Duration::ZERO;
/// Beyond the default `lease_ttl` (60 s): every later run finds the earlier lease expired.
const STALLED: Duration = Duration::from_secs(61);

#[test]
fn two_flushers_at_once_never_send_a_write_in_two_batches() {
    check(2, SAME_TIME, CasKind::Atomic, false);
}

#[test]
fn a_run_stalled_past_its_lease_never_shares_a_write_with_its_successor() {
    check(2, STALLED, CasKind::Atomic, false);
    check(3, STALLED, CasKind::Atomic, false);
}

#[test]
fn three_flushers_never_send_a_write_in_two_batches() {
    check(3, SAME_TIME, CasKind::Atomic, false);
}

#[test]
fn a_swap_reported_done_after_it_was_aborted_is_caught_by_reading_back() {
    check(2, SAME_TIME, CasKind::ReportsAbortAsDone, false);
    check(3, STALLED, CasKind::ReportsAbortAsDone, false);
}

#[test]
fn without_atomics_the_per_write_idempotency_keeps_every_write_applied_once() {
    let same_time = check(2, SAME_TIME, CasKind::Emulated, true);
    let stalled = check(3, STALLED, CasKind::Emulated, true);
    eprintln!(
        "without atomics, a write went out in two batches under {} and {} of \
         {SCHEDULES_WITHOUT_ATOMICS} schedules",
        same_time.len(),
        stalled.len()
    );
    // Those schedules are the ones the DB API's write ids guard: without them, a write is
    // applied twice.
    assert!(
        !stalled.is_empty(),
        "no schedule overlaps two runs' batches"
    );
    for seed in stalled {
        let r = race(seed, 3, STALLED, CasKind::Emulated, true);
        assert!(r.applied_twice > 0, "seed {seed}");
    }
}
