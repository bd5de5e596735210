//! The flush routine against `MemoryStore` and a scripted fake DB API.

mod common;

use std::time::Duration;

use cache_core::contract::{ItemResult, ItemStatus};
use cache_core::db::SendError;
use cache_core::delivery::dlq::{self, DeadReason, Retried};
use cache_core::delivery::flush::FlushOutcome;
use cache_core::delivery::lease;
use cache_core::delivery::state::FlushState;
use cache_core::delivery::tick::TickError;
use cache_core::entry::EntryKind;
use cache_core::store::{AfterGetMany, KvStore, MemoryStore, StoreError};
use cache_core::stored::kv_key::Area;
use cache_core::time::UnixMillis;
use common::{write_into, Step, TestClock, World};
use serde_json::json;

fn retryable(reason: &str, retry_after: Option<u64>) -> SendError {
    SendError::Retryable {
        reason: reason.into(),
        retry_after: retry_after.map(Duration::from_secs),
    }
}

#[test]
fn buffered_writes_are_delivered_and_their_entries_marked_clean() {
    let mut w = World::new();
    w.write("a", Some(json!({"n": 1})));
    w.write("b", Some(json!(2)));
    w.write("c", None);
    let report = w.flush();
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!(
        (
            report.batches_sent,
            report.items.applied,
            report.items.records_deleted
        ),
        (1, 3, 3)
    );
    assert_eq!(w.db.value("a"), Some(json!({"n": 1})));
    assert_eq!(w.db.value("c"), None);
    assert_eq!((w.count("w:"), w.count("b:")), (0, 0));
    assert_eq!(
        lease::current(&mut w.store).unwrap(),
        None,
        "lease released"
    );
    for key in ["a", "b", "c"] {
        assert_eq!(w.entry(key).unwrap().dirty, None, "{key}");
    }
    assert_eq!(w.entry("c").unwrap().kind, EntryKind::Tombstone);
    assert_eq!(w.flush().outcome, FlushOutcome::Idle);
}

#[test]
fn hundred_writes_to_one_key_are_sent_as_one_item() {
    let mut w = World::new();
    for i in 0..100 {
        w.write("hot", Some(json!(i)));
        w.advance_ms(1);
    }
    let report = w.flush();
    assert_eq!(w.db.sent.len(), 1);
    assert_eq!(w.db.sent[0].writes.len(), 1);
    assert_eq!(w.db.value("hot"), Some(json!(99)));
    assert_eq!(report.items.records_deleted, 100);
    assert_eq!(w.count("w:"), 0);
}

fn check_split(
    keys: usize,
    value_len: usize,
    max_items: usize,
    max_bytes: usize,
    expected: &[usize],
) {
    let mut w = World::new();
    w.cfg.flush_batch_max_items = max_items;
    w.cfg.flush_batch_max_bytes = max_bytes;
    for i in 0..keys {
        w.write(&format!("k{i:03}"), Some(json!("x".repeat(value_len))));
    }
    assert_eq!(w.flush().outcome, FlushOutcome::Delivered);
    let sizes: Vec<usize> = w.db.sent.iter().map(|b| b.writes.len()).collect();
    assert_eq!(sizes, expected, "{keys} keys of {value_len} bytes");
    assert_eq!(w.count("w:"), 0);
}

#[test]
fn batches_are_split_by_item_count_and_bytes() {
    check_split(25, 10, 10, 512 * 1024, &[10, 10, 5]);
    check_split(6, 300, 100, 1100, &[2, 2, 2]);
    check_split(2, 5000, 100, 1024, &[1, 1]);
}

#[test]
fn crash_between_seal_and_send_resends_the_same_batch_id() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    // Lease, epoch switch (the state), the dead-letter index (first run), seal and
    // registration succeed, then the process dies: the DB never sees the batch.
    w.store.crash_after_mutations(5);
    w.db.script
        .push_back(Step::Fail(retryable("connection reset", None)));
    assert!(matches!(w.flush().outcome, FlushOutcome::StoreFailed(_)));
    w.store.recover();
    assert_eq!(w.count("b:"), 1);

    // The dead run's lease blocks until it expires.
    assert!(matches!(w.flush().outcome, FlushOutcome::LeaseBusy { .. }));
    w.advance_ms(60_000);
    let report = w.flush();
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!(report.batches_resent, 1);
    assert_eq!(w.db.sent.len(), 2);
    assert_eq!(w.db.sent[0].batch_id, w.db.sent[1].batch_id);
    assert_eq!((w.count("b:"), w.count("w:")), (0, 0));
}

#[test]
fn crash_after_send_before_delete_resends_and_the_db_applies_once() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.write("b", Some(json!(2)));
    // Lease, epoch switch (the state), the dead-letter index (first run), seal and
    // registration succeed; the DB applies the batch; deleting its records fails.
    w.store.crash_after_mutations(5);
    assert!(matches!(w.flush().outcome, FlushOutcome::StoreFailed(_)));
    w.store.recover();
    assert_eq!(w.db.applications, 2);
    assert_eq!((w.count("b:"), w.count("w:")), (1, 2));

    w.advance_ms(60_000);
    let report = w.flush();
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!(w.db.sent[0].batch_id, w.db.sent[1].batch_id);
    assert_eq!(
        w.db.applications, 2,
        "the DB answered the resend from its idempotency record"
    );
    assert_eq!((w.count("b:"), w.count("w:")), (0, 0));
    assert_eq!(w.entry("a").unwrap().dirty, None);
}

/// A store that lets a gateway write land right after the flush seals its batch.
struct RacingStore {
    inner: MemoryStore,
    pending: Option<(String, serde_json::Value)>,
    cfg: cache_core::config::CacheConfig,
}

impl KvStore for RacingStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set(key, value)?;
        if key.starts_with("b:") {
            if let Some((name, v)) = self.pending.take() {
                let stamp = cache_core::stamp::StampGen::new(99).next(UnixMillis(common::T0 + 5));
                write_into(
                    &mut self.inner,
                    &name,
                    Some(v),
                    stamp,
                    UnixMillis(common::T0 + 5),
                    &self.cfg,
                );
            }
        }
        Ok(())
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.inner.get_keys()
    }
}

#[test]
fn write_arriving_mid_flush_survives_and_keeps_its_entry_dirty() {
    let mut w = World::new();
    let first = w.write("a", Some(json!("old")));
    let mut store = RacingStore {
        inner: std::mem::take(&mut w.store),
        pending: Some(("a".into(), json!("new"))),
        cfg: w.cfg.clone(),
    };
    let report = cache_core::delivery::flush::run(
        &mut store,
        &mut w.db,
        &mut TestClock::at(w.now),
        1,
        "r",
        &w.cfg,
    );
    w.store = store.inner;
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!(w.db.value("a"), Some(json!("old")));
    let left = w.store.keys_with_prefix("w:");
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], format!("w:{first}"));
    let entry = w.entry("a").unwrap();
    assert_eq!(entry.value, br#""new""#);
    assert!(entry.dirty.is_some_and(|d| d.stamp != first));

    w.advance_ms(1_000);
    assert_eq!(w.flush().outcome, FlushOutcome::Delivered);
    assert_eq!(w.db.value("a"), Some(json!("new")));
    assert_eq!(w.entry("a").unwrap().dirty, None);
}

#[test]
fn poison_item_is_dead_lettered_while_the_rest_is_delivered() {
    let mut w = World::new();
    w.db.poison.insert("bad".into());
    w.write("good", Some(json!(1)));
    let bad = w.write("bad", Some(json!(2)));
    let report = w.flush();
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!((report.items.applied, report.items.dead_lettered), (1, 1));
    assert_eq!(w.db.value("good"), Some(json!(1)));
    assert_eq!(w.count("w:"), 0);
    assert!(
        w.entry("bad").is_none(),
        "the refused value is no longer served"
    );
    let letters = dlq::list(&mut w.store).unwrap().letters;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].stamp, letters[0].reason),
        (bad, DeadReason::Rejected)
    );
    assert_eq!(letters[0].detail.as_deref(), Some("poison"));

    // Once the DB accepts it, an operator retry delivers it with its original stamp.
    w.db.poison.clear();
    assert_eq!(dlq::retry(&mut w.store, bad).unwrap(), Retried::Requeued);
    w.flush();
    assert_eq!(w.db.value("bad"), Some(json!(2)));
    assert_eq!(w.count("d:"), 0);
}

#[test]
fn retryable_failure_keeps_the_batch_and_the_backoff_window_is_honoured() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.db.script.push_back(Step::Fail(retryable("503", None)));
    let FlushOutcome::Retrying {
        next_attempt_at, ..
    } = w.flush().outcome
    else {
        panic!("expected a retry");
    };
    // First failure: base 1 s with equal jitter → between 0.5 s and 1 s.
    let delay = next_attempt_at.0 - w.now.0;
    assert!((500..=1_000).contains(&delay), "{delay}");
    assert_eq!((w.count("b:"), w.count("w:")), (1, 1));
    assert_eq!(FlushState::load(&mut w.store).unwrap().failures, 1);

    w.advance_ms(delay - 1);
    assert_eq!(
        w.flush().outcome,
        FlushOutcome::BackingOff {
            until: next_attempt_at
        }
    );
    assert_eq!(w.db.sent.len(), 1);

    w.advance_ms(1);
    assert_eq!(w.flush().outcome, FlushOutcome::Delivered);
    assert_eq!(w.db.sent[0].batch_id, w.db.sent[1].batch_id);
    assert_eq!(FlushState::load(&mut w.store).unwrap().failures, 0);
}

#[test]
fn a_run_inside_the_backoff_window_leaves_the_registered_batches_registered() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    // Applied, but the answer is lost: the batch must go out again under its own id only.
    w.db.script
        .push_back(Step::ProcessThenFail(retryable("timeout", None)));
    let FlushOutcome::Retrying {
        next_attempt_at, ..
    } = w.flush().outcome
    else {
        panic!("expected a retry");
    };
    assert!(matches!(w.flush().outcome, FlushOutcome::BackingOff { .. }));
    // A newer write of the same key: re-coalescing now would cover both records.
    w.write("a", Some(json!(2)));
    w.now = next_attempt_at;
    assert_eq!(w.flush().outcome, FlushOutcome::Delivered);
    let ids: Vec<&str> = w.db.sent.iter().map(|b| b.batch_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], ids[1], "the sealed batch was resent under its id");
    let first = &w.db.sent[0].writes[0].write_id;
    assert!(
        w.db.sent[2].writes.iter().all(|x| &x.write_id != first),
        "the first write went out in a second batch: {:?}",
        w.db.sent
    );
    assert_eq!(w.db.value("a"), Some(json!(2)));
}

#[test]
fn retry_after_from_the_server_is_honoured() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.db.script
        .push_back(Step::Fail(retryable("429", Some(120))));
    let FlushOutcome::Retrying {
        next_attempt_at, ..
    } = w.flush().outcome
    else {
        panic!("expected a retry");
    };
    assert_eq!(next_attempt_at, UnixMillis(w.now.0 + 120_000));
}

#[test]
fn lost_answer_is_recovered_by_resending_the_same_id() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.db.script
        .push_back(Step::ProcessThenFail(retryable("timeout", None)));
    assert!(matches!(w.flush().outcome, FlushOutcome::Retrying { .. }));
    w.advance_ms(10_000);
    assert_eq!(w.flush().outcome, FlushOutcome::Delivered);
    assert_eq!(w.db.applications, 1);
    assert_eq!(w.count("w:"), 0);
}

fn check_garbage(results: Vec<ItemResult>) {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.write("b", Some(json!(2)));
    w.db.script.push_back(Step::Garbage(results.clone()));
    let outcome = w.flush().outcome;
    assert!(
        matches!(outcome, FlushOutcome::Retrying { ref error, .. } if error.contains("results for 2 writes")),
        "{results:?}: {outcome:?}"
    );
    assert_eq!((w.count("b:"), w.count("w:")), (1, 2));
}

#[test]
fn answer_with_the_wrong_number_of_results_is_retried() {
    let applied = ItemResult {
        status: ItemStatus::Applied,
        reason: None,
    };
    check_garbage(vec![]);
    check_garbage(vec![applied.clone()]);
    check_garbage(vec![applied.clone(), applied.clone(), applied]);
}

#[test]
fn lease_held_by_another_run_sends_nothing() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    cache_core::delivery::lease::acquire(&mut w.store, "other", w.now, Duration::from_secs(60))
        .unwrap();
    let outcome = w.flush().outcome;
    assert!(matches!(outcome, FlushOutcome::LeaseBusy { ref owner, .. } if owner == "other"));
    assert!(w.db.sent.is_empty());
    assert_eq!(w.count("w:"), 1);
}

#[test]
fn permanent_failure_dead_letters_the_batch_and_goes_on() {
    let mut w = World::new();
    w.cfg.flush_batch_max_items = 1;
    w.write("a", Some(json!(1)));
    w.write("b", Some(json!(2)));
    w.db.script.push_back(Step::Fail(SendError::Permanent {
        reason: "http status 400".into(),
    }));
    let report = w.flush();
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!((report.items.dead_lettered, report.items.applied), (1, 1));
    let letters = dlq::list(&mut w.store).unwrap().letters;
    assert_eq!(letters[0].reason, DeadReason::Permanent);
    assert_eq!((w.count("w:"), w.count("b:")), (0, 0));
}

#[test]
fn batch_failing_too_often_is_dead_lettered() {
    let mut w = World::new();
    w.cfg.flush_max_attempts = 2;
    w.write("a", Some(json!(1)));
    for _ in 0..2 {
        w.db.script.push_back(Step::Fail(retryable("500", None)));
        assert!(matches!(w.flush().outcome, FlushOutcome::Retrying { .. }));
        w.advance_ms(600_000);
    }
    let letters = dlq::list(&mut w.store).unwrap().letters;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].reason, letters[0].attempts),
        (DeadReason::Exhausted, 2)
    );
    assert_eq!((w.count("w:"), w.count("b:")), (0, 0));
}

#[test]
fn batch_limit_leaves_the_rest_for_the_next_run() {
    let mut w = World::new();
    w.cfg.flush_batch_max_items = 1;
    w.cfg.flush_max_batches = 2;
    for key in ["a", "b", "c"] {
        w.write(key, Some(json!(key)));
    }
    let report = w.flush();
    assert!(report.more);
    assert_eq!((report.batches_sent, w.count("w:")), (2, 1));
    assert!(!w.flush().more);
    assert_eq!(w.count("w:"), 0);
}

#[test]
fn unreadable_buffer_record_is_dead_lettered_raw() {
    let mut w = World::new();
    let stamp = w.write("a", Some(json!(1)));
    w.store.set(&format!("w:{stamp}"), b"not json").unwrap();
    let report = w.flush();
    assert_eq!(report.records_corrupt, 1);
    let letters = dlq::list(&mut w.store).unwrap().letters;
    assert_eq!(
        (letters[0].reason, letters[0].raw.as_deref()),
        (DeadReason::Corrupt, Some("not json"))
    );
    assert_eq!(
        dlq::retry(&mut w.store, stamp).unwrap(),
        Retried::NothingToResend
    );
}

#[test]
fn stats_reflect_buffer_batches_and_the_last_outcome() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.advance_ms(2_000);
    w.write("b", Some(json!(2)));
    w.db.script.push_back(Step::Fail(retryable("503", None)));
    w.flush();
    let st = cache_core::delivery::state::stats(&mut w.store, w.now).unwrap();
    assert_eq!(
        (
            st.entries,
            st.buffered_writes,
            st.sealed_batches,
            st.dead_letters
        ),
        (2, 2, 1, 0)
    );
    assert_eq!(st.oldest_buffered_age_ms, Some(2_000));
    assert_eq!(st.state.last_outcome.as_deref(), Some("retrying"));
    assert!(st.state.next_attempt_at.is_some());
}

#[test]
fn a_tick_flushes_then_sweeps() {
    let mut w = World::new();
    w.write("old", Some(json!(1)));
    assert_eq!(w.tick().unwrap().flush.outcome, FlushOutcome::Delivered);
    w.advance_ms(4_000_000);
    w.write("new", Some(json!(2)));
    let report = w.tick().unwrap();
    assert_eq!(report.flush.outcome, FlushOutcome::Delivered);
    let swept = report.sweep.as_ref().unwrap();
    assert_eq!((swept.expired, swept.remaining), (1, 1));
    assert!(report.did_work());
    assert_eq!(w.entry("old"), None);
    assert_eq!(w.entry("new").unwrap().dirty, None);
    assert_eq!(w.db.value("new"), Some(json!(2)));
    assert!(!w.tick().unwrap().did_work());
}

#[test]
fn a_tick_stops_when_the_store_fails() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.store.crash_after_mutations(0);
    assert!(matches!(w.tick(), Err(TickError::Flush(_))));
    w.store.recover();
    assert_eq!(w.count("w:"), 1);
    assert!(w.db.sent.is_empty());
}

/// A store that refuses to list the cache's keys, as Spin 4 refuses a listing over 128 MiB;
/// everything else as `MemoryStore`.
struct CacheListingRefused(MemoryStore);

impl KvStore for CacheListingRefused {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.0.get_keys()
    }
    fn get_keys_in(&mut self, area: Area) -> Result<Vec<String>, StoreError> {
        match area {
            Area::Cache => Err(StoreError::Other(
                "query result exceeds limit of 134217728 bytes".into(),
            )),
            other => self.0.get_keys_in(other),
        }
    }
}

#[test]
fn a_failed_sweep_neither_undoes_nor_hides_the_flush_before_it() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    let mut store = CacheListingRefused(std::mem::replace(&mut w.store, MemoryStore::new()));
    let mut clock = TestClock::at(w.now);
    let cfg = w.cfg.clone();
    let reply = cache_core::admin::flush(&mut store, &mut w.db, &mut clock, 7, "t-1", &cfg)
        .unwrap_or_else(|e| e.reply());
    assert_eq!(reply.status, 200, "{reply:?}");
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["outcome"], "delivered");
    assert_eq!(body["items"]["applied"], 1);
    assert_eq!(body["sweep"], serde_json::Value::Null);
    assert!(body["sweep_error"]
        .as_str()
        .unwrap()
        .contains("exceeds limit"));
    assert_eq!(w.db.value("a"), Some(json!(1)));
}

/// One store shared by a flush thread and a request thread.
#[derive(Clone)]
struct Locked(std::sync::Arc<std::sync::Mutex<MemoryStore>>);

impl KvStore for Locked {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.lock().unwrap().get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.lock().unwrap().set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.0.lock().unwrap().get_keys()
    }
}

/// [`Locked`], pausing after a bulk read made inside a rewrite window: the gap a write can
/// fall into between settling's read and its write-back.
fn pausing_in_window(
    store: Locked,
) -> AfterGetMany<Locked, impl FnMut(&mut Locked, &[String]) -> Result<(), StoreError>> {
    AfterGetMany(store, |store: &mut Locked, keys: &[String]| {
        if keys.iter().any(|k| k.starts_with("c:")) && window_open(store)? {
            std::thread::sleep(Duration::from_millis(150));
        }
        Ok(())
    })
}

/// Whether `m:rewrite` marks an open window (a closed one holds the instant 0).
fn window_open(store: &mut impl KvStore) -> Result<bool, StoreError> {
    Ok(store
        .get("m:rewrite")?
        .is_some_and(|b| b != 0u64.to_le_bytes()))
}

/// The wall clock, for the two threads of the race below.
struct Wall;

impl cache_core::time::Clock for Wall {
    fn now(&mut self) -> UnixMillis {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        UnixMillis(u64::try_from(ms).unwrap())
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

#[test]
fn a_write_landing_while_settling_marks_its_entry_clean_stays_visible() {
    let mut w = World::new();
    w.write("a", Some(json!("delivered")));
    let store = Locked(std::sync::Arc::new(std::sync::Mutex::new(std::mem::take(
        &mut w.store,
    ))));
    let cfg = w.cfg.clone();
    let writer = {
        let mut store = store.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            // Bounded: the window opens within the flush's first steps.
            for _ in 0..2_000 {
                if window_open(&mut store).unwrap() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let req = cache_core::serve::WriteRequest {
                key: World::key("a"),
                op: cache_core::serve::Op::Put(br#""newer""#.to_vec()),
                if_match: None,
                if_none_match: None,
                authorization: None,
                rate_key: common::CALLER.into(),
                idempotency_key: None,
            };
            let mut origin = common::FakeOrigin::default();
            cache_core::serve::write(&mut store, &mut origin, &mut Wall, 99, &cfg, &req)
        })
    };
    let report = cache_core::delivery::flush::run(
        &mut pausing_in_window(store.clone()),
        &mut w.db,
        &mut Wall,
        1,
        "r",
        &cfg,
    );
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    let out = writer.join().unwrap();
    assert_eq!(out.reply.status, 202);
    w.store = store.0.lock().unwrap().clone();
    let entry = w.entry("a").unwrap();
    assert_eq!(entry.value, br#""newer""#, "the later write stays visible");
    assert!(entry.dirty.is_some(), "and pending");
    assert!(!window_open(&mut w.store).unwrap(), "the window is closed");
}

/// A store that counts the calls that change something (each one commit on a store that
/// syncs every commit, as Spin's SQLite store does).
struct CountingChanges {
    inner: MemoryStore,
    changes: usize,
}

impl KvStore for CountingChanges {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.changes += 1;
        self.inner.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.changes += 1;
        self.inner.delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.inner.get_keys()
    }
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.get_many(keys)
    }
    fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.changes += 1;
        self.inner.set_many(pairs)
    }
    fn delete_many(&mut self, keys: &[String]) -> Result<(), StoreError> {
        self.changes += 1;
        self.inner.delete_many(keys)
    }
    fn compare_and_swap(
        &mut self,
        key: &str,
        old: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, StoreError> {
        self.changes += 1;
        self.inner.compare_and_swap(key, old, new)
    }
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.changes += 1;
        self.inner.increment(key, delta)
    }
}

/// Stored changes of one flush run delivering `writes` writes to distinct keys, 100 a batch.
fn changes_of_a_flush(writes: usize) -> usize {
    let mut w = World::new();
    w.cfg.flush_batch_max_items = 100;
    w.cfg.flush_max_batches = 1_000;
    for i in 0..writes {
        w.write(&format!("key-{i}"), Some(json!(i)));
    }
    let mut store = CountingChanges {
        inner: std::mem::take(&mut w.store),
        changes: 0,
    };
    let report = cache_core::delivery::flush::run(
        &mut store,
        &mut w.db,
        &mut TestClock::at(w.now),
        7,
        "r",
        &w.cfg,
    );
    assert_eq!(report.items.applied, writes);
    store.changes
}

#[test]
fn a_group_of_eight_delivered_batches_costs_seventeen_stored_changes() {
    // Per group: the seals (one call), the registration, per 128 entries a rewrite window
    // opened and closed with the clean entries (800 entries: 7 windows), and the records and
    // batches deleted: what a run spends its time on where each commit is synced.
    let (one, two) = (changes_of_a_flush(800), changes_of_a_flush(1_600));
    assert_eq!(two - one, 17, "one group: {one} changes, two: {two}");
}

#[test]
fn a_failure_inside_a_group_leaves_its_unsent_batches_registered_for_the_next_run() {
    let mut w = World::new();
    w.cfg.flush_batch_max_items = 2;
    for i in 0..8 {
        w.write(&format!("k{i}"), Some(json!(i)));
    }
    // Four batches in one group: the first is answered, the second fails.
    w.db.script.push_back(Step::Answer);
    w.db.script.push_back(Step::Fail(retryable("503", None)));
    let report = w.flush();
    assert!(matches!(report.outcome, FlushOutcome::Retrying { .. }));
    assert_eq!((report.batches_sent, report.items.applied), (2, 2));
    // The answered batch is settled; the failed one and the two never sent stay sealed,
    // their writes buffered.
    assert_eq!((w.count("b:"), w.count("w:")), (3, 6));

    w.advance_ms(60_000);
    // Registered, so resent under their ids (a stored batch nobody registered is deleted
    // unsent, and its writes batched anew).
    let report = w.flush();
    assert_eq!(report.outcome, FlushOutcome::Delivered);
    assert_eq!((report.batches_resent, report.items.applied), (3, 6));
    assert_eq!(report.batches_unregistered, 0);
    assert_eq!((w.count("b:"), w.count("w:")), (0, 0));
    for i in 0..8 {
        assert_eq!(w.db.value(&format!("k{i}")), Some(json!(i)));
    }
    assert_eq!(w.db.applied_twice(), 0);
}
