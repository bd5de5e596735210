//! The request paths (`cache_core::serve`) against `MemoryStore`, a scripted `Origin` and a
//! clock that moves only when told: every rule of one GET and one write.

mod common;

use std::time::Duration;

use cache_core::delivery::flush::FlushOutcome;
use cache_core::delivery::state::FlushState;
use cache_core::entry::EntryKind;
use cache_core::limit::{Budget, RateLimits};
use cache_core::serve::fill;
use cache_core::serve::origin::{classify, ItemAnswer, Unanswered};
use cache_core::serve::{
    self, CacheStatus, Deferred, Event, GetRequest, Op, RequestError, WriteRequest,
};
use cache_core::store::SharedStore;
use cache_core::store::{KvStore, MemoryStore, StoreError, WithoutAtomics};
use cache_core::time::UnixMillis;
use common::{body, error_code, records, status, TestClock, World, T0};
use serde_json::{json, Value};

/// A world whose origin holds `a` = `{"n":1}` with ETag `"v3"`, fetched once.
fn cached() -> World {
    let mut w = World::new();
    w.origin.found(r#"{"n":1}"#, "\"v3\"");
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    w
}

fn json_op(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

// ---- GET ----

#[test]
fn a_miss_fetches_stores_and_releases_the_fill_lease() {
    let mut w = World::new();
    w.origin.found(r#"{"n":1}"#, "\"v3\"");
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(body(&out), json!({"n": 1}));
    assert_eq!(out.reply.header("etag"), Some("\"v3\""));
    assert_eq!(out.reply.header("x-cache"), Some("MISS"));
    assert_eq!(out.events, [Event::Miss]);
    assert_eq!(w.origin.reads.len(), 1);
    assert_eq!(w.origin.reads[0].path, "/v1/items/ns/a");
    let e = w.entry("a").unwrap();
    assert_eq!((e.kind, e.version, e.dirty), (EntryKind::Value, 3, None));
    assert_eq!(w.count("m:fill:"), 0, "the fill lease is released");
}

#[test]
fn a_fresh_entry_is_a_hit_without_the_origin() {
    let mut w = cached();
    w.advance_ms(59_000);
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(body(&out), json!({"n": 1}));
    assert_eq!(out.events, [Event::Hit]);
    assert_eq!(out.reply.header("age"), Some("59"));
    assert!(out.deferred.is_empty());
    assert_eq!(w.origin.reads.len(), 1, "only the first fill");
}

#[test]
fn a_stale_entry_is_served_and_revalidated_after_the_reply() {
    let mut w = cached();
    w.advance_ms(61_000);
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Stale)));
    assert_eq!(body(&out), json!({"n": 1}));
    assert_eq!(
        out.deferred,
        [Deferred::Revalidate {
            key: World::key("a"),
            authorization: None
        }]
    );
    assert_eq!(
        w.origin.reads.len(),
        1,
        "the reply did not wait for the origin"
    );

    // The revalidation is conditional on the entry's ETag; a 304 makes it fresh again.
    w.origin.status(304);
    w.revalidate("a").unwrap();
    assert_eq!(w.origin.reads[1].if_none_match.as_deref(), Some("\"v3\""));
    assert_eq!(status(&w.get("a")), (200, Some(CacheStatus::Hit)));

    // A 200 replaces the value.
    w.advance_ms(61_000);
    w.origin.found(r#"{"n":2}"#, "\"v4\"");
    w.revalidate("a").unwrap();
    let out = w.get("a");
    assert_eq!(
        (body(&out), out.reply.header("etag")),
        (json!({"n": 2}), Some("\"v4\""))
    );
}

#[test]
fn a_revalidation_is_skipped_while_another_request_fills() {
    let mut w = cached();
    w.advance_ms(61_000);
    // Another request holds this window's fill ticket.
    let ticket = fill::ticket_key(&World::key("a"), w.now);
    w.store.increment(&ticket, 1).unwrap();
    w.revalidate("a").unwrap();
    assert_eq!(w.origin.reads.len(), 1);
}

#[test]
fn past_the_stale_window_an_origin_failure_serves_stale_if_error() {
    for failure in [
        Err(Unanswered::Failed("refused".into())),
        Err(Unanswered::TimedOut("HttpResponseTimeout".into())),
        Ok(500),
        Ok(504),
    ] {
        let mut w = cached();
        w.advance_ms(400_000);
        match &failure {
            Err(why) => w.origin.unanswered(why.clone()),
            Ok(s) => w.origin.status(*s),
        }
        let out = w.get("a");
        assert_eq!(status(&out), (200, Some(CacheStatus::Stale)), "{failure:?}");
        assert_eq!(body(&out), json!({"n": 1}));
        assert_eq!(out.events, [Event::Miss, Event::Stale]);
        assert_eq!(w.origin.reads.len(), 2);
    }
}

#[test]
fn past_stale_if_error_an_origin_failure_is_the_answer_and_is_not_cached() {
    let mut w = cached();
    w.advance_ms(3_661_000);
    w.origin.status(503);
    let out = w.get("a");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (502, Some("origin_error"))
    );
    w.origin
        .unanswered(Unanswered::TimedOut("ConnectionTimeout".into()));
    let out = w.get("a");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (504, Some("origin_timeout"))
    );
    // Not cached: the next read asks again and gets the value.
    w.origin.found("7", "\"v9\"");
    assert_eq!(body(&w.get("a")), json!(7));
}

#[test]
fn a_refusal_is_passed_through_never_served_stale_and_never_cached() {
    let mut w = cached();
    w.advance_ms(400_000);
    w.origin.status(403);
    let out = w.get_with("a", |r| r.authorization = Some("Bearer x".into()));
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (403, Some("origin_refused"))
    );
    assert_eq!(w.origin.reads[1].authorization.as_deref(), Some("Bearer x"));
    assert_eq!(w.entry("a").unwrap().value, b"{\"n\":1}");
}

#[test]
fn the_gateway_token_is_never_lent_to_a_caller() {
    let mut w = World::new();
    w.cfg.db_api_token = Some("t".into());
    w.origin.status(404);
    w.origin.status(404);
    w.get("a");
    w.get_with("b", |r| r.authorization = Some("Bearer mine".into()));
    assert_eq!(w.origin.reads[0].authorization, None);
    assert_eq!(
        w.origin.reads[1].authorization.as_deref(),
        Some("Bearer mine")
    );
}

#[test]
fn not_found_is_cached_as_a_negative_entry_for_negative_ttl() {
    let mut w = World::new();
    w.origin.status(404);
    let out = w.get("gone");
    assert_eq!(status(&out), (404, Some(CacheStatus::Miss)));
    assert_eq!(body(&out)["error"], "not_found");
    let out = w.get("gone");
    assert_eq!(status(&out), (404, Some(CacheStatus::Negative)));
    assert_eq!(out.events, [Event::NegativeHit]);
    assert_eq!(w.origin.reads.len(), 1);
    w.advance_ms(31_000);
    w.origin.found("1", "\"v1\"");
    assert_eq!(status(&w.get("gone")), (200, Some(CacheStatus::Miss)));
}

#[test]
fn if_none_match_is_answered_304_weakly() {
    let mut w = cached();
    for inm in ["\"v3\"", "W/\"v3\"", "\"x\", \"v3\"", "*"] {
        let out = w.get_with("a", |r| r.if_none_match = Some(inm.into()));
        assert_eq!(status(&out), (304, Some(CacheStatus::Hit)), "{inm}");
        assert!(out.reply.body.is_empty());
        assert_eq!(out.reply.header("etag"), Some("\"v3\""));
    }
    let out = w.get_with("a", |r| r.if_none_match = Some("\"v2\"".into()));
    assert_eq!(out.reply.status, 200);
}

#[test]
fn a_corrupt_entry_is_a_miss_and_is_overwritten() {
    let mut w = World::new();
    let key = World::key("a").kv_key();
    for garbage in [&b""[..], b"\x01garbage", b"{\"v\":1}", &[0xff; 64]] {
        w.store.set(&key, garbage).unwrap();
        w.origin.found("1", "\"v1\"");
        let out = w.get("a");
        assert_eq!(status(&out), (200, Some(CacheStatus::Miss)), "{garbage:?}");
        assert_eq!(w.entry("a").unwrap().value, b"1");
    }
}

#[test]
fn a_value_over_max_value_bytes_is_served_once_and_not_stored() {
    let mut w = World::new();
    w.cfg.max_value_bytes = 8;
    w.origin.found(r#""0123456789""#, "\"v1\"");
    let out = w.get("big");
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(body(&out), json!("0123456789"));
    assert_eq!(w.entry("big"), None);
}

#[test]
fn an_origin_answer_that_is_not_json_is_a_502() {
    let mut w = World::new();
    w.origin.found("<html>", "\"v1\"");
    let out = w.get("a");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (502, Some("origin_error"))
    );
    assert_eq!(w.entry("a"), None);
}

#[test]
fn origin_answers_are_classified_by_status() {
    let answer = |status: u16, body: &str| {
        Ok(ItemAnswer {
            status,
            etag: Some("W/\"v12\"".into()),
            body: body.as_bytes().to_vec(),
            ..ItemAnswer::default()
        })
    };
    let code = |r: Result<_, RequestError>| match r {
        Ok(a) => format!("{a:?}"),
        Err(e) => format!("{} {}", e.parts().0, e.parts().1),
    };
    assert_eq!(
        code(classify(answer(200, "1")).map(|f| f.answer)),
        "Found { value: [49], etag: Some(\"W/\\\"v12\\\"\"), version: Some(12) }"
    );
    let cases = [
        (304, "NotModified"),
        (404, "NotFound"),
        (401, "401 origin_refused"),
        (403, "403 origin_refused"),
        (408, "504 origin_timeout"),
        (504, "504 origin_timeout"),
        (429, "502 origin_error"),
        (500, "502 origin_error"),
        (302, "502 origin_error"),
    ];
    for (status, expected) in cases {
        assert_eq!(
            code(classify(answer(status, "")).map(|f| f.answer)),
            expected,
            "{status}"
        );
    }
    assert_eq!(
        code(classify(Err(Unanswered::TimedOut("t".into()))).map(|f| f.answer)),
        "504 origin_timeout"
    );
    assert_eq!(
        code(classify(Err(Unanswered::Failed("f".into()))).map(|f| f.answer)),
        "502 origin_error"
    );
}

// ---- The fill lease ----

/// A request that finds another's live fill lease waits, and is served what that request
/// stores, without asking the origin.
#[test]
fn a_miss_during_another_fill_waits_for_its_entry() {
    let shared = SharedStore::default();
    let key = World::key("a");
    let cfg = World::new().cfg;
    let now = UnixMillis(T0);
    let lease = fill::encode(&fill::new_lease(1, now, fill::LEASE_TTL));
    shared.clone().set(&fill::lease_key(&key), &lease).unwrap();

    // The holder: fills the entry after 100 ms, as a concurrent request would.
    let mut holder_store = shared.clone();
    let holder_cfg = cfg.clone();
    let mut clock = TestClock::at(now);
    clock.on_sleep = Some(Box::new(move |at| {
        if at >= UnixMillis(T0 + 100) && holder_store.get(&key.kv_key()).unwrap().is_none() {
            let mut origin = common::FakeOrigin::default();
            origin.found(r#"{"by":"holder"}"#, "\"v1\"");
            serve::get(
                &mut holder_store,
                &mut origin,
                &mut TestClock::at(at),
                1,
                &holder_cfg,
                &GetRequest {
                    key: key.clone(),
                    authorization: None,
                    if_none_match: None,
                    rate_key: common::CALLER.into(),
                },
            );
        }
    }));
    let mut origin = common::FakeOrigin::default();
    let mut store = shared.clone();
    let out = serve::get(
        &mut store,
        &mut origin,
        &mut clock,
        2,
        &cfg,
        &GetRequest {
            key: World::key("a"),
            authorization: None,
            if_none_match: None,
            rate_key: common::CALLER.into(),
        },
    );
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(body(&out), json!({"by": "holder"}));
    assert_eq!(out.events, [Event::Hit]);
    assert!(origin.reads.is_empty(), "the waiter never asked the origin");
    assert!(clock.slept >= Duration::from_millis(100) && clock.slept < fill::LEASE_TTL);
}

#[test]
fn a_waiter_fetches_itself_when_the_holder_never_fills() {
    let mut w = World::new();
    // A holder that crashed after taking this window's ticket.
    let ticket = fill::ticket_key(&World::key("a"), w.now);
    w.store.increment(&ticket, 1).unwrap();
    w.origin.found("1", "\"v1\"");
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(w.now, UnixMillis(T0).saturating_add(fill::LEASE_TTL));
    assert_eq!(w.origin.reads.len(), 1);
    // Not ours to delete: the sweep removes it once its window is past.
    assert!(w.store.peek(&ticket).is_some());
    w.advance_ms(4_000);
    w.tick().unwrap();
    assert_eq!(w.store.peek(&ticket), None);
}

#[test]
fn a_ticket_of_an_older_window_holds_nobody_back() {
    let mut w = World::new();
    let old = fill::ticket_key(&World::key("a"), UnixMillis(T0 - 5_000));
    w.store.increment(&old, 1).unwrap();
    w.origin.found("1", "\"v1\"");
    assert_eq!(status(&w.get("a")), (200, Some(CacheStatus::Miss)));
    assert_eq!(w.now, UnixMillis(T0), "no waiting");
    assert_eq!(
        w.store.peek(&fill::ticket_key(&World::key("a"), w.now)),
        None
    );
}

// ---- Writes ----

#[test]
fn a_put_is_buffered_then_visible_read_your_writes() {
    let mut w = cached();
    let out = w.put("a", r#"{"n":2}"#);
    assert_eq!(out.reply.status, 202);
    assert_eq!(out.events, [Event::WriteBuffered]);
    let etag = out.reply.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("\"w"), "{etag}");
    assert_eq!(out.reply.header("x-sync"), Some("pending"));
    assert_eq!(body(&out), json!({"status": "accepted", "etag": etag}));
    let recs = records(&w);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value, Some(json!({"n": 2})));
    assert_eq!(format!("\"w{}\"", recs[0].stamp), etag);

    // Served from the dirty entry, whatever its age, and never from the origin.
    w.advance_ms(10_000_000);
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(body(&out), json!({"n": 2}));
    assert_eq!(out.reply.header("etag"), Some(etag.as_str()));
    assert_eq!(out.reply.header("x-sync"), Some("pending"));
    assert_eq!(out.reply.header("x-dirty-age"), Some("10000"));
    assert_eq!(w.origin.reads.len(), 1);
}

#[test]
fn a_dirty_entry_is_never_replaced_by_origin_data() {
    let mut w = cached();
    w.put("a", "2");
    w.origin.found("1", "\"v3\"");
    w.revalidate("a").unwrap();
    assert_eq!(w.entry("a").unwrap().value, b"2");
}

#[test]
fn a_delete_leaves_a_dirty_tombstone() {
    let mut w = cached();
    let out = w.send_with("a", Op::Delete, |_| {});
    assert_eq!(out.reply.status, 202);
    assert_eq!(records(&w)[0].value, None);
    let out = w.get("a");
    assert_eq!(out.reply.status, 404);
    assert_eq!(w.entry("a").unwrap().kind, EntryKind::Tombstone);
}

#[test]
fn after_a_flush_the_written_value_is_served_clean() {
    let mut w = cached();
    w.put("a", "5");
    let report = w.tick().unwrap();
    assert_eq!(report.flush.outcome, FlushOutcome::Delivered);
    assert_eq!(w.db.value("a"), Some(json!(5)));
    let out = w.get("a");
    assert_eq!((body(&out), out.reply.header("x-sync")), (json!(5), None));
}

#[test]
fn a_patch_merges_into_the_cached_value() {
    let mut w = World::new();
    w.origin.found(r#"{"a":1,"b":{"c":2,"d":3}}"#, "\"v3\"");
    w.get("k");
    let patch = json!({"b": {"c": null, "e": 4}, "f": 5});
    let out = w.send_with("k", Op::Patch(json_op(&patch)), |_| {});
    assert_eq!(out.reply.status, 202);
    let expected = json!({"a": 1, "b": {"d": 3, "e": 4}, "f": 5});
    assert_eq!(records(&w)[0].value, Some(expected.clone()));
    assert_eq!(body(&w.get("k")), expected);
    assert_eq!(w.origin.reads.len(), 1);
}

#[test]
fn a_patch_of_an_uncached_key_reads_it_through_first() {
    let mut w = World::new();
    w.origin.found(r#"{"a":1}"#, "\"v3\"");
    let out = w.send_with("k", Op::Patch(json_op(&json!({"b": 2}))), |_| {});
    assert_eq!(out.reply.status, 202);
    assert_eq!(out.events, [Event::Miss, Event::WriteBuffered]);
    assert_eq!(records(&w)[0].value, Some(json!({"a": 1, "b": 2})));
    // Of a key the origin does not have: the patch applies to null.
    w.origin.status(404);
    w.send_with(
        "new",
        Op::Patch(json_op(&json!({"b": null, "c": 1}))),
        |_| {},
    );
    let rec = records(&w).into_iter().find(|r| r.key.as_str() == "new");
    assert_eq!(rec.unwrap().value, Some(json!({"c": 1})));
}

#[test]
fn if_match_must_name_the_current_etag_strongly() {
    let mut w = cached();
    for bad in ["\"v2\"", "W/\"v3\""] {
        let out = w.send_with("a", Op::Put(b"2".to_vec()), |r| {
            r.if_match = Some(bad.into());
        });
        assert_eq!(
            (out.reply.status, error_code(&out)),
            (412, Some("precondition_failed")),
            "{bad}"
        );
    }
    assert!(records(&w).is_empty(), "a refused write stores nothing");
    assert_eq!(w.entry("a").unwrap().value, b"{\"n\":1}");
    for good in ["\"v3\"", "*"] {
        let etag = w.entry("a").unwrap().etag.unwrap();
        let im = if good == "*" { good.to_owned() } else { etag };
        let out = w.send_with("a", Op::Put(b"2".to_vec()), |r| r.if_match = Some(im));
        assert_eq!(out.reply.status, 202, "{good}");
    }
}

#[test]
fn if_match_star_fails_on_a_key_the_origin_does_not_have() {
    let mut w = World::new();
    w.origin.status(404);
    let out = w.send_with("a", Op::Put(b"1".to_vec()), |r| {
        r.if_match = Some("*".into());
    });
    assert_eq!(out.reply.status, 412);
    assert!(records(&w).is_empty());
}

#[test]
fn if_none_match_star_creates_only() {
    let mut w = World::new();
    w.origin.status(404);
    let create = |w: &mut World| {
        w.send_with("a", Op::Put(b"1".to_vec()), |r| {
            r.if_none_match = Some("*".into());
        })
    };
    assert_eq!(create(&mut w).reply.status, 202);
    let out = create(&mut w);
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (412, Some("precondition_failed"))
    );
    assert_eq!(records(&w).len(), 1);
}

#[test]
fn backpressure_refuses_with_retry_after_and_stores_nothing() {
    let mut w = cached();
    w.cfg.max_buffered_writes = 1;
    assert_eq!(w.put("a", "2").reply.status, 202);
    let before = w.entry("a");
    let out = w.put("a", "3");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (503, Some("backpressure"))
    );
    assert_eq!(out.reply.header("retry-after"), Some("1"));
    assert!(out.events.is_empty());
    assert_eq!(records(&w).len(), 1);
    assert_eq!(w.entry("a"), before);

    // The oldest buffered write too old: refused as well, with the configured wait.
    let mut w = World::new();
    w.cfg.flush_retry_base = Duration::from_secs(7);
    w.put("a", "1");
    w.advance_ms(w.cfg.max_dirty_age.as_millis() as u64 + 1);
    let out = w.put("b", "1");
    assert_eq!(
        (out.reply.status, out.reply.header("retry-after")),
        (503, Some("7"))
    );
}

#[test]
fn bad_bodies_are_refused_and_change_nothing() {
    let mut w = cached();
    // Nothing of the cache; the caller's write budget counts the refused requests anyway.
    let snapshot = |w: &World| {
        w.store
            .keys_with_prefix("")
            .into_iter()
            .filter(|k| !k.starts_with("r:"))
            .map(|k| (w.store.peek(&k).unwrap().to_vec(), k))
            .collect::<Vec<_>>()
    };
    let before = snapshot(&w);
    let out = w.send_with("a", Op::Put(b"{not json".to_vec()), |_| {});
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (400, Some("bad_json"))
    );
    let out = w.send_with("a", Op::Patch(b"".to_vec()), |_| {});
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (400, Some("bad_json"))
    );
    w.cfg.max_value_bytes = 4;
    let out = w.put("a", "\"too long\"");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (413, Some("too_large"))
    );
    assert_eq!(snapshot(&w), before);
    assert!(w.origin.reads.len() == 1);
    let counted = w.store.keys_with_prefix("r:write:");
    assert_eq!(counted.len(), 1);
    assert_eq!(w.store.peek(&counted[0]), Some(&3i64.to_le_bytes()[..]));
}

/// Arrays nested `depth` levels around `1`.
fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn a_document_nests_at_most_100_levels_and_every_accepted_one_is_delivered() {
    let mut w = World::new();
    // The deepest document accepted reads back from its buffer record and is delivered.
    assert_eq!(w.put("a", &nested(100)).reply.status, 202);
    w.flush();
    let delivered: Value = serde_json::from_str(&nested(100)).unwrap();
    assert_eq!(w.db.value("a"), Some(delivered));
    assert_eq!(w.count("d:"), 0, "no dead letter");
    // One level more is refused (its record would nest past what serde_json reads back)
    // and changes nothing.
    let out = w.put("b", &nested(101));
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (400, Some("bad_json"))
    );
    assert!(w.entry("b").is_none());
    assert_eq!(w.count("w:"), 0);
    // A patch within the limit on a deeper document the DB API holds: refused as well.
    w.origin
        .found(&format!(r#"{{"deep":{}}}"#, nested(110)), "\"v1\"");
    let out = w.send_with("c", Op::Patch(br#"{"x":1}"#.to_vec()), |_| {});
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (400, Some("bad_request"))
    );
    assert_eq!(w.count("w:"), 0);
}

#[test]
fn an_older_write_is_buffered_but_leaves_the_newer_entry() {
    let mut w = cached();
    w.put("a", "2");
    let newer = w.entry("a").unwrap();
    w.now = UnixMillis(T0 - 1_000);
    assert_eq!(w.put("a", "1").reply.status, 202);
    assert_eq!(records(&w).len(), 2);
    assert_eq!(w.entry("a").unwrap(), newer);
}

/// A fault after each store operation of a write: every write that got its 202 has its
/// buffer record, and one that did not leaves the store readable.
#[test]
fn a_crash_after_any_store_operation_loses_nothing_acknowledged() {
    type Setup = fn(&mut World);
    let cases: [(&str, Setup, Op); 3] = [
        (
            "put of a cached key",
            |w| drop(w.get("a")),
            Op::Put(b"2".to_vec()),
        ),
        (
            "patch of an uncached key",
            |w| w.origin.found(r#"{"n":1}"#, "\"v3\""),
            Op::Patch(b"{\"m\":2}".to_vec()),
        ),
        ("delete", |_| {}, Op::Delete),
    ];
    for (name, setup, op) in cases {
        let mut acknowledged = 0;
        for n in 0..12 {
            let mut w = World::new();
            w.origin.found(r#"{"n":1}"#, "\"v3\"");
            setup(&mut w);
            w.store.crash_after_mutations(n);
            let out = w.send_with("a", op.clone(), |_| {});
            let crashed = w.store.has_crashed();
            w.store.recover();
            let recs = records(&w);
            if out.reply.status == 202 {
                acknowledged += 1;
                assert_eq!(
                    recs.len(),
                    1,
                    "{name}, crash after {n}: acknowledged but lost"
                );
                let etag = out.reply.header("etag").unwrap();
                assert_eq!(etag, format!("\"w{}\"", recs[0].stamp));
            } else {
                assert!(crashed, "{name}, crash after {n}: {:?}", out.reply);
                assert_eq!(out.reply.status, 500);
                // Whatever was left is readable: a read serves the write or the origin.
                w.origin.found(r#"{"n":1}"#, "\"v3\"");
                let read = w.get("a");
                assert!(matches!(read.reply.status, 200 | 404), "{name} {n}");
            }
        }
        assert!(acknowledged > 0, "{name}: some run got through");
    }
}

/// A store whose `n`-th operation fails once, whatever its kind; every other succeeds.
struct FailOnce {
    inner: MemoryStore,
    countdown: Option<usize>,
}

impl FailOnce {
    fn hit(&mut self) -> Result<(), StoreError> {
        match self.countdown {
            Some(0) => {
                self.countdown = None;
                Err(StoreError::Other("injected".into()))
            }
            Some(n) => {
                self.countdown = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl KvStore for FailOnce {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.hit()?;
        self.inner.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.hit()?;
        self.inner.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.hit()?;
        self.inner.delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.hit()?;
        self.inner.get_keys()
    }
}

/// One failed store operation anywhere in a write, the store working again right after:
/// a write is acknowledged only with its record stored, and every operation's failure is
/// tried.
#[test]
fn a_single_failed_store_operation_never_acknowledges_a_write_without_its_record() {
    for op in [Op::Put(b"2".to_vec()), Op::Patch(b"{\"m\":2}".to_vec())] {
        let mut failures = 0;
        for n in 0..20 {
            let mut w = World::new();
            let mut store = FailOnce {
                inner: std::mem::take(&mut w.store),
                countdown: Some(n),
            };
            w.origin.found(r#"{"n":1}"#, "\"v3\"");
            let req = WriteRequest {
                key: World::key("a"),
                op: op.clone(),
                if_match: None,
                if_none_match: None,
                authorization: None,
                rate_key: common::CALLER.into(),
                idempotency_key: None,
            };
            let mut clock = TestClock::at(w.now);
            let out = serve::write(&mut store, &mut w.origin, &mut clock, 9, &w.cfg, &req);
            let records = store.inner.keys_with_prefix("w:");
            if out.reply.status == 202 {
                assert_eq!(
                    records.len(),
                    1,
                    "{op:?}, failure at {n}: acknowledged, no record"
                );
            } else {
                failures += 1;
                assert!(
                    matches!(out.reply.status, 500 | 502),
                    "{op:?} {n}: {:?}",
                    out.reply
                );
            }
            if store.countdown.is_some() {
                assert!(
                    failures > 0,
                    "{op:?}: the write has fewer than {n} operations"
                );
                break;
            }
        }
    }
}

#[test]
fn a_write_whose_record_the_full_store_refuses_is_not_acknowledged() {
    let mut w = cached();
    let before = w.entry("a");
    w.store.limit_keys(w.store.keys_with_prefix("").len());
    let out = w.put("a", "2");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (503, Some("store_full"))
    );
    assert_eq!(out.reply.header("retry-after"), Some("1"));
    assert!(records(&w).is_empty());
    assert_eq!(w.entry("a"), before);
}

// ---- Rate limits ----

#[test]
fn reads_and_writes_have_budgets_of_their_own_and_every_answer_shows_them() {
    let mut w = cached();
    w.cfg.rate_limits = RateLimits {
        read: Some(Budget {
            quota: 2,
            window_secs: 60,
        }),
        write: Some(Budget {
            quota: 1,
            window_secs: 60,
        }),
        admin: None,
    };
    // Into the next window (`cached` read once in this one), 50 s before it ends.
    w.advance_ms(50_000);
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(
        out.reply.header("ratelimit-policy"),
        Some("\"read\";q=2;w=60")
    );
    assert_eq!(out.reply.header("ratelimit"), Some("\"read\";r=1;t=50"));
    let out = w.get("missing-and-counted");
    assert_eq!(out.reply.header("ratelimit"), Some("\"read\";r=0;t=50"));
    let reads = w.origin.reads.len();
    let out = w.get("a");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (429, Some("rate_limited"))
    );
    assert_eq!(out.reply.header("retry-after"), Some("50"));
    assert_eq!(out.reply.header("ratelimit"), Some("\"read\";r=0;t=50"));
    assert_eq!(
        out.reply
            .headers
            .iter()
            .filter(|h| h.0 == "ratelimit")
            .count(),
        1
    );
    assert!(out.events.is_empty() && out.deferred.is_empty());
    assert_eq!(w.origin.reads.len(), reads, "refused before the origin");
    // Writes have their own budget.
    let out = w.put("a", "2");
    assert_eq!(out.reply.status, 202);
    assert_eq!(out.reply.header("ratelimit"), Some("\"write\";r=0;t=50"));
    let records = w.count("w:");
    let out = w.put("a", "3");
    assert_eq!(out.reply.status, 429);
    assert_eq!(w.count("w:"), records, "nothing buffered");
    // Another caller, and the next window, start afresh.
    let out = w.get_with("a", |r| r.rate_key = "ip:192.0.2.99".into());
    assert_eq!(out.reply.status, 200);
    w.advance_ms(50_000);
    assert_eq!(
        w.get("a").reply.header("ratelimit"),
        Some("\"read\";r=1;t=60")
    );
}

#[test]
fn a_rate_counter_the_store_cannot_keep_is_counted_as_uncounted_and_the_read_goes_on() {
    let mut w = cached();
    w.advance_ms(50_000); // a window of its own: its counter would be a new key
    let keys = w.store.get_keys().unwrap().len();
    w.store.limit_keys(keys);
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(out.events, [Event::RateUncounted, Event::Hit]);
    assert_eq!(out.reply.header("ratelimit"), None);
    assert_eq!(
        out.reply.header("ratelimit-policy"),
        Some("\"read\";q=600;w=60")
    );
}

// ---- KV operations per request ----

/// A store that records the kind of each operation.
struct Counting {
    inner: MemoryStore,
    ops: Vec<&'static str>,
}

impl KvStore for Counting {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.ops.push("get");
        self.inner.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.ops.push("set");
        self.inner.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.ops.push("delete");
        self.inner.delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.ops.push("get_keys");
        self.inner.get_keys()
    }
    fn has_atomic_increment(&self) -> bool {
        true
    }
    /// One operation, as Spin's `wasi:keyvalue/batch` and the embedded host make it.
    fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.ops.push("get_many");
        keys.iter().map(|k| self.inner.get(k)).collect()
    }
    /// A store with atomics: one operation.
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.ops.push("increment");
        self.inner.increment(key, delta)
    }
}

#[test]
fn the_kv_operations_of_a_hit_a_miss_a_put_and_a_patch() {
    let cfg = World::new().cfg;
    let mut store = Counting {
        inner: MemoryStore::new(),
        ops: Vec::new(),
    };
    let mut origin = common::FakeOrigin::default();
    let mut clock = TestClock::at(UnixMillis(T0));
    let get = |key: &str| GetRequest {
        key: World::key(key),
        authorization: None,
        if_none_match: None,
        rate_key: common::CALLER.into(),
    };
    let write = |key: &str, op: Op| WriteRequest {
        key: World::key(key),
        op,
        if_match: None,
        if_none_match: None,
        authorization: None,
        rate_key: common::CALLER.into(),
        idempotency_key: None,
    };
    let ops = |store: &mut Counting| std::mem::take(&mut store.ops).join(" ");
    // The fill: claim the ticket, look for the previous window's, read the entry again;
    // then re-read and store the entry, and give the ticket back.
    let fill = "increment get get get set delete";

    origin.found("1", "\"v1\"");
    serve::get(&mut store, &mut origin, &mut clock, 1, &cfg, &get("a"));
    // The entry and the rollout record are read together.
    assert_eq!(
        ops(&mut store),
        format!("increment get_many {fill}"),
        "miss"
    );

    serve::get(&mut store, &mut origin, &mut clock, 2, &cfg, &get("a"));
    assert_eq!(ops(&mut store), "increment get_many", "hit");

    // A store no flush run has measured yet: its first write dates the admission epoch.
    // Every write reads the rollout record with the entry first (`get_many`).
    let put = "get get increment increment set get set get get";
    let req = write("a", Op::Put(b"1".to_vec()));
    serve::write(&mut store, &mut origin, &mut clock, 3, &cfg, &req);
    assert_eq!(
        ops(&mut store),
        "increment get_many get get increment increment set set get set get get",
        "first put"
    );
    let flushed = FlushState {
        epoch_started_at: Some(UnixMillis(T0)),
        ..FlushState::default()
    };
    flushed.save(&mut store.inner).unwrap();
    let req = write("a", Op::Put(b"2".to_vec()));
    let out = serve::write(&mut store, &mut origin, &mut clock, 3, &cfg, &req);
    assert_eq!(out.reply.status, 202);
    assert_eq!(ops(&mut store), format!("increment get_many {put}"), "put");

    let req = write("a", Op::Patch(b"3".to_vec()));
    serve::write(&mut store, &mut origin, &mut clock, 4, &cfg, &req);
    assert_eq!(
        ops(&mut store),
        format!("increment get_many get {put}"),
        "patch of a cached key"
    );

    origin.found("1", "\"v1\"");
    let req = write("b", Op::Patch(b"3".to_vec()));
    let out = serve::write(&mut store, &mut origin, &mut clock, 5, &cfg, &req);
    assert_eq!(out.reply.status, 202);
    assert_eq!(
        ops(&mut store),
        format!("increment get_many get {fill} {put}"),
        "patch of an uncached key"
    );

    // With the budgets off, the request paths are what they were without rate limits; on a
    // store without atomics the count is a read and a write.
    let mut off = cfg.clone();
    off.rate_limits = RateLimits::OFF;
    serve::get(&mut store, &mut origin, &mut clock, 6, &off, &get("a"));
    assert_eq!(ops(&mut store), "get_many", "hit, read budget off");
    // With the rollout fixed by the variables, the rollout record is not read.
    let mut fixed = off.clone();
    fixed.rollout_overrides = false;
    serve::get(&mut store, &mut origin, &mut clock, 6, &fixed, &get("a"));
    assert_eq!(
        ops(&mut store),
        "get",
        "hit, read budget off, rollout fixed"
    );
    let mut plain = WithoutAtomics(store);
    serve::get(&mut plain, &mut origin, &mut clock, 7, &cfg, &get("a"));
    assert_eq!(ops(&mut plain.0), "get set get_many", "hit, no atomics");
}

// ---- Errors ----

#[test]
fn every_error_reply_is_json_with_its_code_and_headers() {
    let cases = [
        (RequestError::NotFound, 404, "not_found"),
        (
            RequestError::MethodNotAllowed("GET"),
            405,
            "method_not_allowed",
        ),
        (RequestError::LengthRequired, 411, "length_required"),
        (RequestError::PreconditionFailed, 412, "precondition_failed"),
        (
            RequestError::UnsupportedMediaType("application/json"),
            415,
            "unsupported_media_type",
        ),
        (
            RequestError::OriginRefused {
                status: 401,
                www_authenticate: None,
            },
            401,
            "origin_refused",
        ),
        (
            RequestError::Store(cache_core::store::StoreError::Full),
            503,
            "store_full",
        ),
    ];
    for (e, status, code) in cases {
        let r = e.reply();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!((r.status, body["error"].as_str()), (status, Some(code)));
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    assert_eq!(
        RequestError::MethodNotAllowed("GET, PUT")
            .reply()
            .header("allow"),
        Some("GET, PUT")
    );
}

#[test]
fn requests_on_a_failing_store_answer_500() {
    let mut store = MemoryStore::new();
    store.crash_after_mutations(0);
    store.set("x", b"1").unwrap_err();
    let mut w = World::new();
    w.store = store;
    let out = w.get("a");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (500, Some("store_error"))
    );
    let out = w.put("a", "1");
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (500, Some("store_error"))
    );
}
