//! Shadow mode: the caller gets the DB API's answer; after it, the cache's would-be answer is
//! judged, counted and sampled, and the gate reads the recent window.

mod common;

use std::collections::BTreeMap;

use cache_core::config::AuthMode;
use cache_core::counters;
use cache_core::entry::Audience;
use cache_core::rollout::compare::{Reason, Verdict};
use cache_core::rollout::state::{Mode, RolloutState};
use cache_core::rollout::{change, evidence};
use cache_core::serve::origin::Unanswered;
use cache_core::serve::{CacheStatus, Deferred, Event};
use cache_core::store::KvStore;
use cache_core::stored::kv_key::KvKey;
use cache_core::UnixMillis;
use common::World;
use serde_json::{json, Value};

fn mode(mode: Mode) -> RolloutState {
    RolloutState {
        mode,
        canary_share: 0,
        canary_writes_buffered: false,
    }
}

fn shadow_world() -> World {
    let mut w = World::new();
    w.set_rollout(mode(Mode::Shadow));
    w
}

fn report(w: &mut World) -> Value {
    let reply = evidence::report(&mut w.store, &w.cfg, w.now).unwrap();
    serde_json::from_slice(&reply.body).unwrap()
}

fn mismatch(v: Verdict) -> Box<cache_core::rollout::compare::Sample> {
    match v {
        Verdict::Mismatch(sample) => sample,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn a_shadow_read_answers_with_the_db_api_and_is_judged_after_the_response() {
    let mut w = shadow_world();
    w.origin.found(r#"{"name":"Ada"}"#, "\"v1\"");
    let out = w.get_with("a", |r| r.if_none_match = Some("\"v0\"".into()));
    assert_eq!(out.reply.status, 200);
    assert_eq!(out.reply.body, br#"{"name":"Ada"}"#);
    assert_eq!(out.reply.header("x-cache"), Some("PASS"));
    assert_eq!(out.events, [Event::PassedThroughRead]);
    // Read whole, so that it can be compared and kept.
    assert_eq!(w.origin.reads[0].if_none_match, None);
    // Nothing judged or kept before the response is sent.
    assert!(w.entry("a").is_none());
    assert_eq!(w.settle_shadow(&out), Verdict::Match);
    // A would-be miss is kept as the fill would have kept it.
    assert_eq!(w.entry("a").unwrap().value, br#"{"name":"Ada"}"#);
    // The next read: the cache would have hit, and agrees.
    w.origin.found(r#"{ "name": "Ada" }"#, "\"v1\"");
    let out = w.get_with("a", |r| r.if_none_match = Some("\"v1\"".into()));
    assert_eq!(
        out.reply.status, 304,
        "the caller's validator is judged on the DB API's ETag"
    );
    assert!(out.reply.body.is_empty());
    assert_eq!(out.reply.header("etag"), Some("\"v1\""));
    assert_eq!(w.settle_shadow(&out), Verdict::Match);
    let r = report(&mut w);
    assert_eq!(r["totals"]["matches"], 2);
    assert_eq!(
        r["totals"]["would_serve"],
        json!({"hit": 1, "negative": 0, "stale": 0, "miss": 1})
    );
    assert_eq!(r["window"]["matches"], 2);
    assert_eq!(r["window"]["mismatch_per_mille"], 0);
    assert_eq!(r["would_be_hit_per_mille"], 500);
    assert_eq!(r["estimated_origin_offload_per_mille"], 500);
    let text = counters::metrics(&mut w.store, w.now, &w.cfg).unwrap();
    for line in [
        "cache_shadow_comparisons_total{verdict=\"match\"} 2",
        "cache_shadow_comparisons_total{verdict=\"mismatch\",reason=\"value\"} 0",
        "cache_shadow_would_serve_total{status=\"hit\"} 1",
        "cache_shadow_would_be_hit_ratio 0.500",
        "cache_rollout_mode{mode=\"shadow\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[test]
fn a_change_behind_the_cache_s_back_is_a_value_mismatch_sampled_without_values() {
    let mut w = shadow_world();
    w.origin
        .found(r#"{"name":"Ada","tags":["a","b"]}"#, "\"v1\"");
    let out = w.get("a");
    w.settle_shadow(&out);
    w.now = UnixMillis(w.now.0 + 5_000);
    w.origin
        .found(r#"{"name":"Ada","tags":["a","secret"]}"#, "\"v2\"");
    let out = w.get("a");
    assert_eq!(out.reply.body, br#"{"name":"Ada","tags":["a","secret"]}"#);
    let sample = mismatch(w.settle_shadow(&out));
    assert_eq!(sample.reason, Reason::Value);
    assert_eq!(sample.path.as_deref(), Some("/tags/1"));
    assert_eq!((sample.cache_status, sample.origin_status), (200, 200));
    assert_eq!(sample.cache_etag.as_deref(), Some("\"v1\""));
    assert_eq!(sample.origin_etag.as_deref(), Some("\"v2\""));
    assert_eq!(sample.entry_age_ms, 5_000);
    // A fresh hit stays as cutover would have kept serving it.
    assert_eq!(
        w.entry("a").unwrap().value,
        br#"{"name":"Ada","tags":["a","b"]}"#
    );
    let r = report(&mut w);
    assert_eq!(r["totals"]["mismatches"]["value"], 1);
    assert_eq!(r["window"]["mismatch_per_mille"], 500);
    let samples = r["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(
        (&samples[0]["ns"], &samples[0]["key"]),
        (&json!("ns"), &json!("a"))
    );
    assert_eq!(samples[0]["path"], "/tags/1");
    let text = r.to_string();
    assert!(!text.contains("secret") && !text.contains("Ada"), "{text}");
}

#[test]
fn status_stale_and_refusal_mismatches_have_their_reasons() {
    let mut w = shadow_world();
    w.origin.found(r#"{"v":1}"#, "\"v1\"");
    let out = w.get("a");
    w.settle_shadow(&out);
    // Deleted behind the cache's back: the cache would have served a value.
    w.origin.status(404);
    let out = w.get("a");
    let sample = mismatch(w.settle_shadow(&out));
    assert_eq!(
        (sample.reason, sample.cache_status, sample.origin_status),
        (Reason::Status, 200, 404)
    );
    // The DB API refuses this caller an entry kept for anyone: the one mismatch that widens
    // access.
    w.origin.refuse(403);
    let out = w.get("a");
    assert_eq!(out.reply.status, 403);
    let sample = mismatch(w.settle_shadow(&out));
    assert_eq!((sample.reason, sample.origin_status), (Reason::Status, 403));
    // Past its freshness, within stale_ttl: a stale mismatch, and the entry is refreshed
    // as the revalidation would have.
    w.now = UnixMillis(w.now.0 + w.cfg.ttl.as_millis() as u64 + 1_000);
    w.origin.found(r#"{"v":2}"#, "\"v2\"");
    let out = w.get("a");
    let sample = mismatch(w.settle_shadow(&out));
    assert_eq!(sample.reason, Reason::Stale);
    assert_eq!(sample.path.as_deref(), Some("/v"));
    assert_eq!(w.entry("a").unwrap().value, br#"{"v":2}"#);
    // A DB API failure is not compared: serving the entry then is the cache's purpose.
    w.origin.unanswered(Unanswered::TimedOut("slow".into()));
    let out = w.get("a");
    assert_eq!(out.reply.status, 504);
    assert_eq!(w.settle_shadow(&out), Verdict::Uncompared);
    let r = report(&mut w);
    assert_eq!(
        r["totals"]["mismatches"],
        json!({"value": 0, "status": 2, "stale": 1})
    );
    assert_eq!(r["totals"]["uncompared"], 1);
    assert_eq!(r["samples"].as_array().unwrap().len(), 3);
}

#[test]
fn an_entry_behind_a_grant_is_judged_by_what_the_db_api_says_of_the_caller() {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-of-sixteen-bytes".into());
    w.cfg.auth_mode = AuthMode::Grant;
    w.set_rollout(mode(Mode::Shadow));
    let alice = Some("Bearer alice".to_owned());
    let bob = Some("Bearer bob".to_owned());
    w.origin.found_cc(r#"{"v":1}"#, "\"v1\"", "private");
    let out = w.get_with("a", |r| r.authorization = alice.clone());
    w.settle_shadow(&out);
    assert_eq!(w.entry("a").unwrap().audience, Audience::Granted);
    // Without a kept grant the cache would ask the DB API, whose refusal it would relay.
    w.origin.refuse(403);
    let out = w.get_with("a", |r| r.authorization = bob.clone());
    assert_eq!(w.settle_shadow(&out), Verdict::Match);
    // Alice's fill kept her a grant: the cache would serve her what the DB API now refuses.
    w.origin.refuse(403);
    let out = w.get_with("a", |r| r.authorization = alice.clone());
    let sample = mismatch(w.settle_shadow(&out));
    assert_eq!((sample.reason, sample.origin_status), (Reason::Status, 403));
}

#[test]
fn a_write_in_shadow_passes_through_and_the_next_read_is_no_mismatch() {
    let mut w = shadow_world();
    w.origin.found(r#"{"v":1}"#, "\"v1\"");
    let out = w.get("a");
    w.settle_shadow(&out);
    let out = w.put("a", r#"{"v":2}"#);
    assert_eq!(out.reply.status, 200, "passed through, not buffered");
    assert_eq!(w.origin.writes.len(), 1);
    assert_eq!(w.count("w:"), 0);
    // The entry was invalidated: the cache would ask, so nothing stale is blamed on it.
    w.origin.found(r#"{"v":2}"#, "\"v2\"");
    let out = w.get("a");
    assert_eq!(w.settle_shadow(&out), Verdict::Match);
    assert_eq!(report(&mut w)["totals"]["would_serve"]["miss"], 2);
}

/// Reads `workload` (key names, one a second) with the DB API's items as given, in `mode`,
/// and counts what the cache served (cutover) or would have served (shadow).
fn run_workload(mode_in_force: Mode, workload: &[usize]) -> BTreeMap<&'static str, u64> {
    let mut w = World::new();
    w.set_rollout(mode(mode_in_force));
    let mut items = BTreeMap::new();
    for i in 0..8 {
        items.insert(format!("/v1/items/ns/k{i}"), (1, format!(r#"{{"n":{i}}}"#)));
    }
    w.origin.items = Some(items);
    let mut counts = BTreeMap::new();
    for (step, &i) in workload.iter().enumerate() {
        w.now = UnixMillis(w.now.0 + 1_000);
        if step % 97 == 0 {
            // The DB changes behind the cache's back now and then.
            let items = w.origin.items.as_mut().unwrap();
            items.insert(
                format!("/v1/items/ns/k{}", step % 8),
                (2, r#"{"n":-1}"#.into()),
            );
        }
        let out = w.get(&format!("k{i}"));
        for d in &out.deferred {
            if let Deferred::Shadow(read) = d {
                assert_ne!(read.answer.as_ref().map(|a| a.status).ok(), Some(500));
            }
        }
        if mode_in_force == Mode::Cutover {
            let status = match out.reply.header("x-cache") {
                Some("HIT") => "hit",
                Some("NEGATIVE") => "negative",
                Some("STALE") => "stale",
                Some("MISS") => "miss",
                other => panic!("{other:?}"),
            };
            *counts.entry(status).or_insert(0) += 1;
        }
        for result in w.run_deferred(&out) {
            result.unwrap();
        }
    }
    if mode_in_force == Mode::Shadow {
        let r = report(&mut w);
        for status in ["hit", "negative", "stale", "miss"] {
            let n = r["totals"]["would_serve"][status].as_u64().unwrap();
            if n > 0 {
                counts.insert(status, n);
            }
        }
    }
    counts
}

#[test]
fn the_would_be_hit_rate_in_shadow_is_cutover_s_on_the_same_workload() {
    // Ten keys (two never exist), read in a fixed pseudo-random order over 20 minutes:
    // misses, hits, stale reads past the 60 s TTL and negative entries all occur.
    let mut x: u64 = 7;
    let workload: Vec<usize> = (0..1200)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % 10) as usize
        })
        .collect();
    let cutover = run_workload(Mode::Cutover, &workload);
    let shadow = run_workload(Mode::Shadow, &workload);
    for status in ["hit", "negative", "stale", "miss"] {
        assert!(
            cutover.get(status).is_some_and(|&n| n > 0),
            "{status}: {cutover:?}"
        );
    }
    assert_eq!(shadow, cutover);
}

#[test]
fn the_gate_judges_the_recent_window_and_forgets_old_ones() {
    let mut w = shadow_world();
    let window = w.cfg.rollout_gate_window.as_millis() as u64;
    w.now = UnixMillis(w.now.0 / window * window);
    w.origin.found(r#"{"v":1}"#, "\"v1\"");
    let out = w.get("a");
    w.settle_shadow(&out);
    // Changed behind the cache's back: every read mismatches until the entry expires.
    for _ in 0..3 {
        w.origin.found(r#"{"v":2}"#, "\"v2\"");
        let out = w.get("a");
        mismatch(w.settle_shadow(&out));
    }
    let raise = |w: &mut World| {
        let body = json!({"mode": "canary", "canary_share": 5});
        change::apply(&mut w.store, &w.cfg, w.now, body.to_string().as_bytes())
            .unwrap_or_else(|e| e.reply())
            .status
    };
    assert_eq!(raise(&mut w), 409, "3 of 4 mismatched");
    // One window later the evidence is still recent.
    w.now = UnixMillis(w.now.0 + window);
    assert_eq!(raise(&mut w), 409);
    // Two windows later it is not; the first comparison of a new window deletes the
    // window two before it.
    w.now = UnixMillis(w.now.0 + window);
    let first = KvKey::ShadowWindow {
        window: w.now.0 / window - 2,
        mismatch: true,
    };
    assert!(w.store.get(&first.render()).unwrap().is_some());
    w.origin.found(r#"{"v":2}"#, "\"v2\"");
    let out = w.get("a");
    assert_eq!(w.settle_shadow(&out), Verdict::Match);
    assert!(w.store.get(&first.render()).unwrap().is_none());
    assert_eq!(raise(&mut w), 200);
}

#[test]
fn shadow_is_a_rollback_from_a_canary_and_writes_pending_stay_served() {
    let mut w = World::new();
    // A buffered write, then shadow: the dirty entry is served from the cache, never
    // compared, until the flush delivers it.
    assert_eq!(w.put("a", r#"{"v":9}"#).reply.status, 202);
    w.set_rollout(RolloutState {
        mode: Mode::Canary,
        canary_share: 50,
        canary_writes_buffered: true,
    });
    let body = json!({"mode": "shadow"});
    let reply = change::apply(&mut w.store, &w.cfg, w.now, body.to_string().as_bytes()).unwrap();
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["rollback"], true);
    // The DB API is asked only whether the caller may read it.
    w.origin.found(r#"{"v":1}"#, "\"v1\"");
    let out = w.get("a");
    assert_eq!(out.reply.body, br#"{"v":9}"#);
    assert_eq!(out.reply.header("x-cache"), Some(CacheStatus::Hit.as_str()));
    assert!(out.deferred.is_empty());
}
