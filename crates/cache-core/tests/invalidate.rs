//! Invalidation: announced changes and purges make the next read fetch again, callers' own
//! entries included; a dirty entry is never dropped; an answer that may predate the change
//! is not stored; the signed webhook refuses what it cannot verify and changes nothing.

mod common;

use std::time::Duration;

use cache_core::auth::caller::Caller;
use cache_core::config::CacheConfig;
use cache_core::delivery::sweep::sweep;
use cache_core::serve::invalidate::{self, announced, hold, invalidate, purge};
use cache_core::serve::origin::{ItemAnswer, ItemRead, Origin, Unanswered};
use cache_core::serve::{self, CacheStatus, GetRequest};
use cache_core::store::{KvStore, MemoryStore, SharedStore};
use cache_core::time::{TestClock, UnixMillis};
use cache_sync_contract::invalidation::signature;
use common::*;

const ALICE: &str = "Bearer alice";
const SECRET: &str = "an-invalidation-secret";

fn get_as(w: &mut World, name: &str, auth: Option<&str>) -> serve::Outcome {
    w.get_with(name, |r| r.authorization = auth.map(str::to_owned))
}

fn invalidate_now(w: &mut World, names: &[&str]) -> invalidate::Invalidated {
    let keys: Vec<_> = names.iter().map(|n| World::key(n)).collect();
    let mut clock = TestClock::at(w.now);
    let done = invalidate(&mut w.store, &mut clock, &w.cfg, &keys).unwrap();
    w.now = clock.now;
    done
}

#[test]
fn an_invalidated_entry_is_fetched_again_at_the_next_read() {
    let mut w = World::new();
    w.origin.found(r#"{"v":1}"#, "\"1\"");
    assert_eq!(status(&w.get("a")), (200, Some(CacheStatus::Miss)));
    assert_eq!(status(&w.get("a")), (200, Some(CacheStatus::Hit)));

    w.advance_ms(1);
    let done = invalidate_now(&mut w, &["a", "never-cached"]);
    assert_eq!((done.invalidated, done.untouched), (1, 1));
    let marker = w.entry("a").unwrap();
    assert!(marker.body().is_none() && marker.invalidated_at.is_some());
    // Without an auth_key nothing unseen can hold a key nobody cached: no marker for it.
    assert_eq!(w.entry("never-cached"), None);

    w.advance_ms(1);
    w.origin.found(r#"{"v":2}"#, "\"2\"");
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(body(&out), serde_json::json!({"v": 2}));
    assert_eq!(w.origin.reads.len(), 2);
    // What the fill stored keeps the instant and is served from then on.
    assert_eq!(w.entry("a").unwrap().invalidated_at, marker.invalidated_at);
    assert_eq!(status(&w.get("a")), (200, Some(CacheStatus::Hit)));
}

#[test]
fn an_invalidated_entry_is_not_served_stale_when_the_origin_fails() {
    let mut w = World::new();
    w.origin.found(r#"{"v":1}"#, "\"1\"");
    w.get("a");
    invalidate_now(&mut w, &["a"]);
    w.advance_ms(1);
    w.origin.status(503);
    let out = w.get("a");
    assert_eq!(out.reply.status, 502, "{:?}", out.reply);
}

#[test]
fn a_dirty_entry_is_kept_and_fetched_again_once_delivered() {
    let mut w = World::new();
    assert_eq!(w.put("a", r#"{"mine":1}"#).reply.status, 202);
    w.advance_ms(1);
    let done = invalidate_now(&mut w, &["a"]);
    assert_eq!((done.invalidated, done.kept_dirty), (0, 1));
    // Still the newest truth, value and all.
    let kept = w.entry("a").unwrap();
    assert!(kept.is_dirty() && kept.invalidated_at.is_some());
    assert_eq!(kept.body(), Some(&br#"{"mine":1}"#[..]));

    // Delivered and clean, its content is older than the announced change: fetched again.
    w.flush();
    w.advance_ms(1);
    w.origin.found(r#"{"theirs":2}"#, "\"2\"");
    let out = w.get("a");
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(body(&out), serde_json::json!({"theirs": 2}));
}

#[test]
fn callers_own_entries_from_before_an_invalidation_are_not_served() {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    w.origin.found_cc(r#"{"p":1}"#, "\"1\"", "private");
    get_as(&mut w, "a", Some(ALICE));
    assert_eq!(w.store.keys_with_prefix("c:ns#").len(), 1);
    assert_eq!(
        status(&get_as(&mut w, "a", Some(ALICE))),
        (200, Some(CacheStatus::Hit))
    );

    w.advance_ms(1);
    // Nothing shared is cached, but a caller's own entry may be: a marker all the same.
    assert_eq!(invalidate_now(&mut w, &["a"]).invalidated, 1);
    w.advance_ms(1);
    w.origin.found_cc(r#"{"p":2}"#, "\"2\"", "private");
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(body(&out), serde_json::json!({"p": 2}));
    // The refilled own entry is newer than the marker and is served again.
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(body(&out), serde_json::json!({"p": 2}));
    assert_eq!(w.origin.reads.len(), 2);
}

/// An origin that answers with what it held when asked, while the key is invalidated
/// before the answer arrives (the DB API changed it and announced it meanwhile).
struct ChangedWhileAsked {
    store: SharedStore,
    cfg: CacheConfig,
    answer: Option<ItemAnswer>,
}

impl Origin for ChangedWhileAsked {
    fn get_item(&mut self, _: &ItemRead) -> Result<ItemAnswer, Unanswered> {
        let mut clock = TestClock::at(UnixMillis(T0 + 5));
        invalidate(&mut self.store, &mut clock, &self.cfg, &[World::key("a")]).unwrap();
        self.answer
            .take()
            .ok_or_else(|| Unanswered::Failed("asked twice".into()))
    }

    fn authorize(
        &mut self,
        _: &cache_core::serve::origin::AuthorizeCall,
    ) -> Result<ItemAnswer, Unanswered> {
        Err(Unanswered::Failed("not used".into()))
    }

    fn write_item(
        &mut self,
        _: &cache_core::serve::origin::ItemWrite,
    ) -> Result<ItemAnswer, Unanswered> {
        Err(Unanswered::Failed("not used".into()))
    }
}

#[test]
fn an_answer_asked_for_before_the_invalidation_is_served_but_not_stored() {
    // With an auth_key an invalidation marks even a key nothing is cached for, so a fill in
    // flight is caught whether or not an entry existed.
    let mut cfg = CacheConfig::with_db_api_url("http://db.test").unwrap();
    cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    let mut store = SharedStore::default();
    let mut origin = ChangedWhileAsked {
        store: store.clone(),
        cfg: cfg.clone(),
        answer: Some(ItemAnswer {
            status: 200,
            etag: Some("\"old\"".into()),
            body: br#"{"v":"old"}"#.to_vec(),
            ..ItemAnswer::default()
        }),
    };
    let req = GetRequest {
        key: World::key("a"),
        authorization: None,
        if_none_match: None,
        rate_key: CALLER.into(),
    };
    // Asked at T0 + 5, invalidated at T0 + 5: the same millisecond counts as before.
    let mut clock = TestClock::at(UnixMillis(T0 + 5));
    let out = serve::get(&mut store, &mut origin, &mut clock, 1, &cfg, &req);
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(out.reply.header("cache-control"), Some("no-cache"));
    let stored = store.get(&World::key("a").kv_key()).unwrap().unwrap();
    let entry = cache_core::envelope::decode(&stored).unwrap();
    assert!(
        entry.body().is_none(),
        "the old answer was stored: {entry:?}"
    );
}

#[test]
fn the_sweep_keeps_a_marker_for_the_hold_then_removes_it() {
    let mut w = World::new();
    w.origin.found(r#"{"v":1}"#, "\"1\"");
    w.get("a");
    invalidate_now(&mut w, &["a"]);
    let hold = hold(&w.cfg);
    assert_eq!(hold, Duration::from_secs(60 + 3600));

    let mut clock = TestClock::at(w.now.saturating_add(hold - Duration::from_millis(1)));
    let report = sweep(&mut w.store, &mut clock, &w.cfg).unwrap();
    assert_eq!((report.held, report.expired), (1, 0));
    assert!(w.entry("a").is_some());

    let mut clock = TestClock::at(w.now.saturating_add(hold));
    let report = sweep(&mut w.store, &mut clock, &w.cfg).unwrap();
    assert_eq!((report.held, report.expired), (0, 1));
    assert_eq!(w.entry("a"), None);
}

fn purge_body(w: &mut World, body: &str) -> (u16, serde_json::Value) {
    let mut clock = TestClock::at(w.now);
    let reply =
        purge(&mut w.store, &mut clock, &w.cfg, body.as_bytes()).unwrap_or_else(|e| e.reply());
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or_default(),
    )
}

#[test]
fn a_namespace_purge_drops_every_clean_entry_and_never_a_dirty_one() {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    w.origin.found_cc(r#"{"v":1}"#, "\"1\"", "public");
    w.get("shared");
    w.origin.found_cc(r#"{"p":1}"#, "\"p\"", "private");
    get_as(&mut w, "own", Some(ALICE));
    w.put("dirty", r#"{"mine":1}"#);
    assert_eq!(w.store.keys_with_prefix("c:").len(), 3);

    let (status, body) = purge_body(&mut w, r#"{"ns":"ns"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["invalidated"], 1);
    assert_eq!(body["removed"], 1);
    assert_eq!(body["kept_dirty"], 1);
    assert_eq!(body["scope"], "namespace");
    assert_eq!(w.store.keys_with_prefix("c:ns#").len(), 0);
    assert!(w.entry("dirty").unwrap().is_dirty());
    assert!(w.entry("shared").unwrap().body().is_none());

    // Bad requests change nothing.
    let snapshot = |w: &World| {
        w.store
            .keys_with_prefix("")
            .iter()
            .filter(|k| !k.starts_with("r:"))
            .map(|k| (k.clone(), w.store.peek(k).map(<[u8]>::to_vec)))
            .collect::<Vec<_>>()
    };
    let before = snapshot(&w);
    for bad in [
        "",
        "{}",
        r#"{"ns":"bad ns"}"#,
        r#"{"ns":"ns","keys":[""]}"#,
        r#"{"ns":"ns","other":1}"#,
    ] {
        let (status, body) = purge_body(&mut w, bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(snapshot(&w), before);
}

#[test]
fn a_purge_by_key_marks_only_those_keys() {
    let mut w = World::new();
    for (name, v) in [("a", 1), ("b", 2)] {
        w.origin.found(&format!(r#"{{"v":{v}}}"#), "\"e\"");
        w.get(name);
    }
    let (status, body) = purge_body(&mut w, r#"{"ns":"ns","keys":["a"]}"#);
    assert_eq!((status, body["invalidated"].as_u64()), (200, Some(1)));
    assert_eq!(body["scope"], "keys");
    assert!(w.entry("a").unwrap().body().is_none());
    assert!(w.entry("b").unwrap().body().is_some());
}

fn announce(w: &mut World, sig: Option<String>, body: &str) -> (u16, serde_json::Value) {
    let mut clock = TestClock::at(w.now);
    let reply = announced(
        &mut w.store,
        &mut clock,
        &w.cfg,
        "ip:198.51.100.7",
        sig.as_deref(),
        body.as_bytes(),
    )
    .unwrap_or_else(|e| e.reply());
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or_default(),
    )
}

#[test]
fn the_webhook_needs_a_fresh_signature_of_its_body_and_refuses_bad_bodies() {
    let mut w = World::new();
    w.origin.found(r#"{"v":1}"#, "\"1\"");
    w.get("a");
    let body = r#"{"changed":[{"ns":"ns","key":"a"}]}"#;
    let secs = w.now.0 / 1000;
    let sign = |b: &str, t: u64| Some(signature(SECRET.as_bytes(), t, b.as_bytes()));

    // No secret configured: the route does not exist.
    assert_eq!(announce(&mut w, sign(body, secs), body).0, 404);
    w.cfg.invalidate_secret = Some(SECRET.into());

    let entries = |w: &World| {
        w.store
            .keys_with_prefix("c:")
            .iter()
            .map(|k| (k.clone(), w.store.peek(k).map(<[u8]>::to_vec)))
            .collect::<Vec<_>>()
    };
    let before = entries(&w);
    let wrong_secret = Some(signature(b"another-secret-entirely", secs, body.as_bytes()));
    for (sig, why) in [
        (None, "missing"),
        (wrong_secret, "wrong secret"),
        (sign("{}", secs), "other body"),
        (sign(body, secs - 301), "too old"),
        (Some("v1=00".into()), "malformed"),
    ] {
        let (status, reply) = announce(&mut w, sig, body);
        assert_eq!(
            (status, reply["error"].as_str()),
            (401, Some("bad_signature")),
            "{why}"
        );
    }
    for bad in [
        "{}",
        r#"{"changed":[{"ns":"bad ns","key":"a"}]}"#,
        r#"{"changed":[{"ns":"ns"}]}"#,
    ] {
        let (status, reply) = announce(&mut w, sign(bad, secs), bad);
        assert_eq!(status, 400, "{bad}: {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let many = serde_json::json!({
        "changed": (0..257).map(|i| serde_json::json!({"ns": "ns", "key": i.to_string()})).collect::<Vec<_>>()
    })
    .to_string();
    assert_eq!(announce(&mut w, sign(&many, secs), &many).0, 400);
    assert_eq!(entries(&w), before, "a refused call changed the cache");

    let (status, reply) = announce(&mut w, sign(body, secs), body);
    assert_eq!((status, reply["invalidated"].as_u64()), (200, Some(1)));
    assert!(w.entry("a").unwrap().body().is_none());
}

#[test]
fn unverified_calls_are_charged_to_the_admin_budget() {
    let mut w = World::new();
    w.cfg.invalidate_secret = Some(SECRET.into());
    w.cfg.rate_limits.admin = cache_core::limit::Budget::parse("2/60s").unwrap();
    let body = r#"{"changed":[]}"#;
    assert_eq!(announce(&mut w, None, body).0, 401);
    assert_eq!(announce(&mut w, None, body).0, 401);
    assert_eq!(announce(&mut w, None, body).0, 429);
    // A verified call is never charged.
    let sig = Some(signature(
        SECRET.as_bytes(),
        w.now.0 / 1000,
        body.as_bytes(),
    ));
    for _ in 0..5 {
        assert_eq!(announce(&mut w, sig.clone(), body).0, 200);
    }
}

#[test]
fn a_callers_scope_is_what_a_namespace_purge_removes() {
    // The scoped key a purge lists is the one the read path uses.
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    let caller = Caller::from_header(Some(ALICE));
    let own = caller.own_entry(&w.cfg, &World::key("a")).unwrap();
    let mut store = MemoryStore::new();
    store.set(&own.kv_key(), b"anything").unwrap();
    let mut clock = TestClock::at(w.now);
    let done = invalidate(&mut store, &mut clock, &w.cfg, &[own]).unwrap();
    assert_eq!(done.removed, 1);
    assert!(store.keys_with_prefix("c:").is_empty());
}
