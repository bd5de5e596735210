use proptest::prelude::*;
use serde_json::json;

use super::*;

fn write(key: &str, millis: u64, instance: u64) -> BufferedWrite {
    BufferedWrite {
        ns: Namespace::parse("ns").unwrap(),
        key: ItemKey::parse(key).unwrap(),
        value: Some(json!({ "at": millis })),
        stamp: Stamp::new(UnixMillis(millis), 0, instance),
        written_at: UnixMillis(millis),
        subject: None,
    }
}

#[test]
fn hundred_writes_to_one_key_coalesce_to_the_last_one() {
    let writes: Vec<_> = (0..100).rev().map(|i| write("k", 1_000 + i, 7)).collect();
    let out = coalesce(writes);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].winner.value, Some(json!({ "at": 1_099 })));
    assert_eq!(out[0].covers.len(), 100);
    assert!(out[0].covers.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn coalesced_keys_are_ordered_by_their_winner() {
    let out = coalesce([
        write("b", 5, 1),
        write("a", 9, 1),
        write("b", 1, 1),
        write("c", 7, 1),
    ]);
    let order: Vec<_> = out.iter().map(|c| c.winner.key.to_string()).collect();
    assert_eq!(order, ["b", "c", "a"]);
}

#[test]
fn same_millisecond_writes_are_decided_by_instance_id() {
    let out = coalesce([write("k", 5, 2), write("k", 5, 9), write("k", 5, 1)]);
    assert_eq!(out[0].winner.stamp.instance(), 9);
}

fn cfg() -> CacheConfig {
    CacheConfig::with_db_api_url("http://db").unwrap()
}

fn check(stats: BufferStats, incoming: u64, now: u64, expected: Option<Backpressure>) {
    let got = match admit(&stats, incoming, UnixMillis(now), &cfg()) {
        Admission::Accept => None,
        Admission::Reject {
            reason,
            retry_after,
        } => {
            assert!(retry_after >= Duration::from_secs(1));
            Some(reason)
        }
    };
    assert_eq!(got, expected, "{stats:?} + {incoming} at {now}");
}

#[test]
fn writes_are_refused_when_the_buffer_is_full_or_stale() {
    let mb = 1024 * 1024;
    let stats = |writes, bytes, oldest: Option<u64>| BufferStats {
        writes,
        bytes,
        oldest: oldest.map(UnixMillis),
    };
    let cases = [
        (stats(0, 0, None), 100, 0, None),
        (stats(499, 0, Some(0)), 100, 600_000, None),
        (
            stats(500, 0, None),
            100,
            0,
            Some(Backpressure::TooManyWrites),
        ),
        (stats(1, 8 * mb - 100, None), 100, 0, None),
        (
            stats(1, 8 * mb - 100, None),
            101,
            0,
            Some(Backpressure::TooManyBytes),
        ),
        (
            stats(1, u64::MAX, None),
            u64::MAX,
            0,
            Some(Backpressure::TooManyBytes),
        ),
        (
            stats(1, 0, Some(1_000)),
            1,
            601_001,
            Some(Backpressure::TooOld),
        ),
    ];
    for (stats, incoming, now, expected) in cases {
        check(stats, incoming, now, expected);
    }
}

#[test]
fn the_oldest_age_is_measured_from_its_stamp_time() {
    let stats = BufferStats {
        writes: 3,
        bytes: 42,
        oldest: Some(UnixMillis(200)),
    };
    assert_eq!(
        stats.oldest_age(UnixMillis(1_200)),
        Some(Duration::from_secs(1))
    );
    assert_eq!(BufferStats::default().oldest_age(UnixMillis(1)), None);
}

fn writes() -> impl Strategy<Value = Vec<BufferedWrite>> {
    proptest::collection::vec((0usize..5, 0u64..50, 0u64..4), 0..60).prop_map(|v| {
        let mut seen = std::collections::BTreeSet::new();
        v.into_iter()
            .filter(|(_, m, i)| seen.insert((*m, *i)))
            .map(|(k, m, i)| write(&format!("k{k}"), m, i))
            .collect()
    })
}

proptest! {
    #[test]
    fn coalescing_keeps_the_newest_write_per_key_and_covers_every_record(ws in writes(), rot in 0usize..60) {
        let out = coalesce(ws.clone());
        let mut keys: Vec<_> = ws.iter().map(|w| w.key.clone()).collect();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(out.len(), keys.len());
        let mut covered: Vec<Stamp> = out.iter().flat_map(|c| c.covers.clone()).collect();
        covered.sort();
        let mut all: Vec<Stamp> = ws.iter().map(|w| w.stamp).collect();
        all.sort();
        prop_assert_eq!(covered, all);
        for c in &out {
            let newest = ws.iter().filter(|w| w.key == c.winner.key).map(|w| w.stamp).max();
            prop_assert_eq!(Some(c.winner.stamp), newest);
            prop_assert_eq!(c.covers.last(), Some(&c.winner.stamp));
        }
        prop_assert!(out.windows(2).all(|p| p[0].winner.stamp < p[1].winner.stamp));
        let mut rotated = ws.clone();
        if !rotated.is_empty() {
            let n = rot % rotated.len();
            rotated.rotate_left(n);
        }
        prop_assert_eq!(coalesce(rotated), out);
    }
}
