//! The rollout (`cache_core::rollout`): buckets, the per-request decision, and the admin
//! change with its gate, against `MemoryStore`.

use cache_core::auth::caller::Caller;
use cache_core::config::{var, CacheConfig};
use cache_core::rollout::decide::{in_canary, read_route, write_route, ReadRoute, WriteRoute};
use cache_core::rollout::state::{self, Mode, RolloutState};
use cache_core::rollout::{bucket, change};
use cache_core::store::{encode_counter, KvStore};
use cache_core::stored::kv_key::KvKey;
use cache_core::{MemoryStore, UnixMillis};
use serde_json::{json, Value};

fn cfg_with(vars: &[(&str, &str)]) -> CacheConfig {
    CacheConfig::from_lookup(|name| match name {
        var::DB_API_URL => Some("http://db".into()),
        _ => vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned()),
    })
    .unwrap()
}

fn cfg() -> CacheConfig {
    cfg_with(&[(var::AUTH_KEY, "a-secret-of-sixteen-bytes")])
}

fn canary(share: u8, buffered: bool) -> RolloutState {
    RolloutState {
        mode: Mode::Canary,
        canary_share: share,
        canary_writes_buffered: buffered,
    }
}

fn principal_bucket(cfg: &CacheConfig, i: usize) -> u8 {
    let caller = Caller::from_header(Some(&format!("Bearer token-of-user-{i}")));
    bucket::of_caller(&caller, cfg, "ip:127.0.0.1")
}

#[test]
fn the_canary_holds_its_share_of_10k_principals_within_two_points() {
    for cfg in [cfg(), cfg_with(&[])] {
        let buckets: Vec<u8> = (0..10_000).map(|i| principal_bucket(&cfg, i)).collect();
        for share in [1u8, 5, 10, 25, 50, 75, 99] {
            let state = canary(share, false);
            let n = buckets.iter().filter(|b| in_canary(&state, **b)).count();
            let got = n as f64 / 100.0;
            assert!(
                (got - f64::from(share)).abs() <= 2.0,
                "share {share}%: {got}% of 10k principals"
            );
        }
        for (share, expected) in [(0u8, 0usize), (100, 10_000)] {
            let state = canary(share, false);
            assert_eq!(
                buckets.iter().filter(|b| in_canary(&state, **b)).count(),
                expected
            );
        }
    }
}

#[test]
fn no_caller_leaves_the_canary_as_the_share_grows() {
    let cfg = cfg();
    for i in 0..10_000 {
        let b = principal_bucket(&cfg, i);
        // The same caller, another request: the same bucket.
        assert_eq!(b, principal_bucket(&cfg, i));
        let mut was_in = false;
        for share in 0..=100u8 {
            let now_in = in_canary(&canary(share, false), b);
            assert!(!was_in || now_in, "caller {i} left the canary at {share}%");
            was_in = now_in;
        }
    }
}

#[test]
fn anonymous_callers_are_bucketed_by_address_and_principals_by_credential() {
    let cfg = cfg();
    let anon = Caller::anonymous();
    let by_address: Vec<u8> = (0..200)
        .map(|i| bucket::of_caller(&anon, &cfg, &format!("ip:10.0.{}.{}", i / 250, i % 250)))
        .collect();
    assert!(by_address.iter().any(|b| *b != by_address[0]));
    // A credentialed caller's bucket does not depend on its address.
    let alice = Caller::from_header(Some("Bearer alice"));
    assert_eq!(
        bucket::of_caller(&alice, &cfg, "ip:10.0.0.1"),
        bucket::of_caller(&alice, &cfg, "ip:10.9.9.9")
    );
    // The verified subject stands for the caller, whatever token it presents.
    let a1 = Caller::from_header(Some("Bearer t1")).verified_as("alice".into());
    let a2 = Caller::from_header(Some("Bearer t2")).verified_as("alice".into());
    assert_eq!(
        bucket::of_caller(&a1, &cfg, "x"),
        bucket::of_caller(&a2, &cfg, "y")
    );
}

#[test]
fn the_decision_follows_the_mode_the_bucket_and_the_write_setting() {
    let cutover = RolloutState {
        mode: Mode::Cutover,
        canary_share: 0,
        canary_writes_buffered: false,
    };
    let passthrough = RolloutState {
        mode: Mode::Passthrough,
        canary_share: 100,
        canary_writes_buffered: true,
    };
    for b in [0u8, 49, 50, 99] {
        assert_eq!(read_route(&cutover, b), ReadRoute::Cache);
        assert_eq!(write_route(&cutover, b), WriteRoute::Buffer);
        assert_eq!(read_route(&passthrough, b), ReadRoute::Origin);
        assert_eq!(write_route(&passthrough, b), WriteRoute::Origin);
        let inside = b < 50;
        let expect_read = if inside {
            ReadRoute::Cache
        } else {
            ReadRoute::Origin
        };
        assert_eq!(read_route(&canary(50, false), b), expect_read);
        assert_eq!(read_route(&canary(50, true), b), expect_read);
        assert_eq!(write_route(&canary(50, false), b), WriteRoute::Origin);
        let expect_write = if inside {
            WriteRoute::Buffer
        } else {
            WriteRoute::Origin
        };
        assert_eq!(write_route(&canary(50, true), b), expect_write);
    }
}

#[test]
fn the_defaults_come_from_the_variables_and_bad_ones_are_refused() {
    let cfg = cfg_with(&[
        (var::ROLLOUT_MODE, "canary"),
        (var::ROLLOUT_CANARY_SHARE, "5"),
        (var::ROLLOUT_CANARY_WRITES_BUFFERED, "true"),
    ]);
    assert_eq!(cfg.rollout, canary(5, true));
    assert_eq!(cfg_with(&[]).rollout.mode, Mode::Cutover);
    assert_eq!(
        cfg_with(&[(var::ROLLOUT_MODE, "shadow")]).rollout.mode,
        Mode::Shadow
    );
    assert_eq!(
        cfg_with(&[(var::ROLLOUT_GATE_WINDOW, "1h")]).rollout_gate_window,
        std::time::Duration::from_secs(3600)
    );
    for (name, value) in [
        (var::ROLLOUT_MODE, "mirror"),
        (var::ROLLOUT_MODE, "Canary"),
        (var::ROLLOUT_GATE_WINDOW, "0s"),
        (var::ROLLOUT_GATE_WINDOW, "soon"),
        (var::ROLLOUT_CANARY_SHARE, "101"),
        (var::ROLLOUT_CANARY_SHARE, "-1"),
        (var::ROLLOUT_CANARY_WRITES_BUFFERED, "yes"),
        (var::ROLLOUT_MAX_MISMATCH, "200"),
    ] {
        let err = CacheConfig::from_lookup(|n| match n {
            var::DB_API_URL => Some("http://db".into()),
            _ => (n == name).then(|| value.to_owned()),
        })
        .unwrap_err();
        assert!(err.to_string().contains(name), "{name}={value}: {err}");
    }
}

fn post(store: &mut MemoryStore, cfg: &CacheConfig, at: u64, body: Value) -> (u16, Value) {
    let reply = change::apply(store, cfg, UnixMillis(at), body.to_string().as_bytes())
        .unwrap_or_else(|e| e.reply());
    (reply.status, serde_json::from_slice(&reply.body).unwrap())
}

fn get(store: &mut MemoryStore, cfg: &CacheConfig) -> Value {
    serde_json::from_slice(&change::report(store, cfg, UnixMillis(10)).unwrap().body).unwrap()
}

/// Shadow comparisons counted in the gate's window of the first seconds.
fn set_shadow_counts(store: &mut MemoryStore, matches: u64, mismatches: u64) {
    for (mismatch, n) in [(false, matches), (true, mismatches)] {
        let key = KvKey::ShadowWindow {
            window: 0,
            mismatch,
        };
        store.set(&key.render(), &encode_counter(n)).unwrap();
    }
}

#[test]
fn with_overrides_off_the_variables_are_the_rollout_and_a_change_is_refused() {
    let on = cfg_with(&[(var::ROLLOUT_MODE, "cutover")]);
    let mut store = MemoryStore::new();
    // An override stored while overrides were allowed.
    assert_eq!(
        post(&mut store, &on, 1, json!({"mode": "passthrough"})).0,
        200
    );
    let stored = store.peek(&state::kv_key()).unwrap().to_vec();
    assert_eq!(
        state::load(&mut store, &on).unwrap().state.mode,
        Mode::Passthrough
    );

    let off = cfg_with(&[
        (var::ROLLOUT_MODE, "cutover"),
        (var::ROLLOUT_OVERRIDES, "false"),
    ]);
    assert!(!off.rollout_overrides && on.rollout_overrides);
    assert_eq!(
        state::load(&mut store, &off).unwrap().state.mode,
        Mode::Cutover
    );
    let (status, body) = post(
        &mut store,
        &off,
        2,
        json!({"mode": "shadow", "force": true}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("rollout_fixed"))
    );
    assert_eq!(
        store.peek(&state::kv_key()).unwrap(),
        &stored[..],
        "nothing changed"
    );
    let report = get(&mut store, &off);
    assert_eq!(report["overrides"], json!(false));
    assert_eq!(report["source"], json!("defaults"));
    assert_eq!(report["state"]["mode"], json!("cutover"));
    assert_eq!(report["ignored_override"]["mode"], json!("passthrough"));
    assert_eq!(get(&mut store, &on)["ignored_override"], Value::Null);

    // A request follows the variables: served by the cache, not passed through.
    let mut w = World::new();
    w.cfg = off.clone();
    w.store = store;
    w.origin.found("1", "\"v1\"");
    let first = w.get("k");
    assert_eq!(first.reply.status, 200);
    assert_ne!(first.reply.header("x-cache"), Some("PASS"));
    assert_eq!(w.get("k").reply.header("x-cache"), Some("HIT"));

    for bad in ["yes", "1", ""] {
        let err = CacheConfig::from_lookup(|n| match n {
            var::DB_API_URL => Some("http://db".into()),
            var::ROLLOUT_OVERRIDES => Some(bad.to_owned()),
            _ => None,
        });
        // An empty value is the default; anything else must be true or false.
        assert_eq!(err.is_ok(), bad.is_empty(), "{bad:?}");
    }
}

#[test]
fn a_change_is_stored_logged_and_reported() {
    let cfg = cfg();
    let mut store = MemoryStore::new();
    let before = get(&mut store, &cfg);
    assert_eq!(before["source"], "defaults");
    assert_eq!(before["state"]["mode"], "cutover");
    assert_eq!(before["log"], json!([]));
    let (status, body) = post(
        &mut store,
        &cfg,
        1000,
        json!({"mode": "canary", "canary_share": 5}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previous"]["mode"], "cutover");
    assert_eq!(
        body["rollback"], true,
        "cutover to a 5% canary lowers exposure"
    );
    let (status, body) = post(&mut store, &cfg, 2000, json!({"canary_share": 20}));
    assert_eq!((status, &body["rollback"]), (200, &json!(false)));
    let after = get(&mut store, &cfg);
    assert_eq!(after["source"], "override");
    assert_eq!(
        after["state"],
        json!({"mode": "canary", "canary_share": 20, "canary_writes_buffered": false})
    );
    assert_eq!(after["defaults"]["mode"], "cutover");
    let log = after["log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["at"], 2000);
    assert_eq!(log[1]["by"], "admin");
    assert_eq!(log[1]["previous"]["canary_share"], 5);
    assert_eq!(log[1]["new"]["canary_share"], 20);
    assert_eq!(
        state::load(&mut store, &cfg).unwrap().state,
        canary(20, false)
    );
}

#[test]
fn bad_input_is_400_and_changes_nothing() {
    let cfg = cfg();
    let mut store = MemoryStore::new();
    post(
        &mut store,
        &cfg,
        1,
        json!({"mode": "canary", "canary_share": 10}),
    );
    let stored = store.get(&state::kv_key()).unwrap();
    for bad in [
        json!({}),
        json!({"force": true}),
        json!({"mode": "mirror"}),
        json!({"mode": "CUTOVER"}),
        json!({"mode": 3}),
        json!({"canary_share": 101}),
        json!({"canary_share": -1}),
        json!({"canary_share": 5.5}),
        json!({"canary_writes_buffered": "yes"}),
        json!({"canary_share": 5, "extra": 1}),
        json!([1]),
    ] {
        let (status, body) = post(&mut store, &cfg, 2, bad.clone());
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("bad_request")),
            "{bad}: {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(store.get(&state::kv_key()).unwrap(), stored, "{bad}");
    }
    let reply = change::apply(&mut store, &cfg, UnixMillis(3), b"not json")
        .unwrap_err()
        .reply();
    assert_eq!(reply.status, 400);
    assert_eq!(store.get(&state::kv_key()).unwrap(), stored);
}

#[test]
fn the_gate_refuses_a_raise_but_never_a_rollback_and_force_skips_it() {
    let cfg = cfg();
    let mut store = MemoryStore::new();
    assert_eq!(
        post(
            &mut store,
            &cfg,
            1,
            json!({"mode": "canary", "canary_share": 10})
        )
        .0,
        200
    );
    // No shadow evidence: a raise is allowed.
    assert_eq!(
        post(&mut store, &cfg, 2, json!({"canary_share": 20})).0,
        200
    );
    // 5% mismatches, over the default 1%.
    set_shadow_counts(&mut store, 95, 5);
    let stored = store.get(&state::kv_key()).unwrap();
    for raise in [
        json!({"canary_share": 30}),
        json!({"mode": "cutover"}),
        json!({"canary_writes_buffered": true}),
    ] {
        let (status, body) = post(&mut store, &cfg, 3, raise.clone());
        assert_eq!(
            (status, &body["error"]),
            (409, &json!("rollout_gated")),
            "{raise}"
        );
        assert!(body["message"].as_str().unwrap().contains("5.0%"), "{body}");
        assert_eq!(store.get(&state::kv_key()).unwrap(), stored);
    }
    assert_eq!(get(&mut store, &cfg)["gate"]["allows_raise"], false);
    for rollback in [
        json!({"canary_share": 15}),
        json!({"canary_share": 0}),
        json!({"mode": "shadow"}),
        json!({"mode": "passthrough"}),
    ] {
        let (status, body) = post(&mut store, &cfg, 4, rollback.clone());
        assert_eq!(
            (status, &body["rollback"]),
            (200, &json!(true)),
            "{rollback}: {body}"
        );
    }
    let (status, body) = post(
        &mut store,
        &cfg,
        5,
        json!({"mode": "cutover", "force": true}),
    );
    assert_eq!((status, &body["forced"]), (200, &json!(true)), "{body}");
    assert_eq!(
        state::load(&mut store, &cfg).unwrap().state.mode,
        Mode::Cutover
    );
    // Within the bound, a raise goes ahead.
    set_shadow_counts(&mut store, 999, 1);
    assert_eq!(
        post(
            &mut store,
            &cfg,
            6,
            json!({"mode": "canary", "canary_share": 1})
        )
        .0,
        200
    );
    assert_eq!(
        post(&mut store, &cfg, 7, json!({"canary_share": 50})).0,
        200
    );
}

// ---- The read path under each mode ----

mod common;

use cache_core::serve::Event;
use common::World;

fn bearer(i: usize) -> String {
    format!("Bearer token-of-user-{i}")
}

#[test]
fn a_passed_through_read_relays_the_origin_answer_and_keeps_nothing() {
    let mut w = World::new();
    w.set_rollout(RolloutState {
        mode: Mode::Passthrough,
        canary_share: 0,
        canary_writes_buffered: false,
    });
    w.origin.found(r#"{"v":1}"#, "\"v7\"");
    let out = w.get_with("a", |r| r.if_none_match = Some("\"v6\"".into()));
    assert_eq!(out.reply.status, 200);
    assert_eq!(out.reply.body, br#"{"v":1}"#);
    assert_eq!(out.reply.header("etag"), Some("\"v7\""));
    assert_eq!(out.reply.header("x-cache"), Some("PASS"));
    assert_eq!(out.events, [Event::PassedThroughRead]);
    // The caller's own validator went to the DB API, and nothing was kept.
    assert_eq!(w.origin.reads[0].if_none_match.as_deref(), Some("\"v6\""));
    assert!(w.entry("a").is_none());
    // Statuses are relayed too, never cached.
    w.origin.status(404);
    w.origin.status(500);
    assert_eq!(w.get("b").reply.status, 404);
    assert_eq!(w.get("b").reply.status, 500);
    assert!(w.entry("b").is_none());
}

#[test]
fn a_dirty_entry_is_served_from_the_cache_whatever_the_route() {
    let mut w = World::new();
    assert_eq!(w.put("a", r#"{"v":2}"#).reply.status, 202);
    w.set_rollout(RolloutState {
        mode: Mode::Passthrough,
        canary_share: 0,
        canary_writes_buffered: false,
    });
    // The DB API still holds the older value; it is asked only whether the caller may read.
    w.origin.found(r#"{"v":1}"#, "\"v1\"");
    let out = w.get("a");
    assert_eq!(
        (out.reply.status, out.reply.header("x-cache")),
        (200, Some("HIT"))
    );
    assert_eq!(out.reply.header("x-sync"), Some("pending"));
    assert_eq!(out.reply.body, br#"{"v":2}"#);
    assert!(!out.events.contains(&Event::PassedThroughRead));
    // Once delivered, the entry is clean and reads pass through again.
    w.flush();
    w.origin.found(r#"{"v":2}"#, "\"v9\"");
    assert_eq!(w.get("a").reply.header("x-cache"), Some("PASS"));
}

#[test]
fn in_canary_callers_below_the_share_are_served_by_the_cache_and_the_others_pass_through() {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-of-sixteen-bytes".into());
    w.set_rollout(canary(30, false));
    let state = canary(30, false);
    let (mut cached, mut passed) = (0, 0);
    for i in 0..40 {
        let auth = bearer(i);
        let inside = in_canary(
            &state,
            bucket::of_caller(&Caller::from_header(Some(&auth)), &w.cfg, common::CALLER),
        );
        w.origin.found_cc(r#"{"v":1}"#, "\"v1\"", "private");
        let out = w.get_with(&format!("k{i}"), |r| r.authorization = Some(auth.clone()));
        let x_cache = out.reply.header("x-cache").unwrap().to_owned();
        if inside {
            cached += 1;
            assert_eq!(x_cache, "MISS", "caller {i}");
        } else {
            passed += 1;
            assert_eq!(x_cache, "PASS", "caller {i}");
        }
    }
    assert!(cached > 0 && passed > 0, "{cached} cached, {passed} passed");
}

// ---- The write path under each mode ----

use cache_core::serve::origin::ItemAnswer;
use cache_core::serve::Op;

fn passthrough() -> RolloutState {
    RolloutState {
        mode: Mode::Passthrough,
        canary_share: 0,
        canary_writes_buffered: false,
    }
}

#[test]
fn a_passed_through_write_goes_to_the_db_api_at_once_and_invalidates_the_entry() {
    let mut w = World::new();
    w.origin.found(r#"{"v":1}"#, "\"v1\"");
    assert_eq!(w.get("a").reply.header("x-cache"), Some("MISS"));
    w.set_rollout(passthrough());
    let out = w.send_with("a", Op::Put(br#"{"v":2}"#.to_vec()), |r| {
        r.authorization = Some("Bearer alice".into());
    });
    assert_eq!(out.reply.status, 200, "{:?}", out.reply);
    assert_eq!(out.reply.header("etag"), Some("\"v1\""));
    assert_eq!(out.reply.header("x-cache"), Some("PASS"));
    assert_eq!(out.events, [Event::PassedThroughWrite]);
    let sent = &w.origin.writes[0];
    assert_eq!((sent.method, sent.path.as_str()), ("PUT", "/v1/items/ns/a"));
    assert_eq!(sent.body, br#"{"v":2}"#);
    assert_eq!(sent.authorization.as_deref(), Some("Bearer alice"));
    assert!(sent.idempotency_key.starts_with("pass-"));
    assert_eq!(w.count("w:"), 0, "nothing buffered");
    // The entry the cache held is superseded: the next cached read asks the DB API.
    w.set_rollout(RolloutState {
        mode: Mode::Cutover,
        ..passthrough()
    });
    w.origin.found(r#"{"v":2}"#, "\"v2\"");
    let out = w.get("a");
    assert_eq!(
        (out.reply.header("x-cache"), out.reply.body.as_slice()),
        (Some("MISS"), &br#"{"v":2}"#[..])
    );
    // A DELETE goes as a DELETE, without a body.
    w.set_rollout(passthrough());
    assert_eq!(w.send_with("a", Op::Delete, |_| {}).reply.status, 200);
    assert_eq!(
        (w.origin.writes[1].method, w.origin.writes[1].body.len()),
        ("DELETE", 0)
    );
    // The DB API's refusals and errors are relayed, and nothing is buffered.
    w.origin.write_script.push_back(Ok(common::refusal(403)));
    assert_eq!(w.put("a", "1").reply.status, 403);
    w.origin
        .write_script
        .push_back(Err(cache_core::serve::origin::Unanswered::TimedOut(
            "slow".into(),
        )));
    let out = w.put("a", "1");
    assert_eq!(out.reply.status, 504);
    // Without an answer the write may have been applied, and the caller is told how to retry.
    let body: Value = serde_json::from_slice(&out.reply.body).unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("may or may not have been applied")
            && message.contains("same Idempotency-Key"),
        "{message}"
    );
    assert_eq!(w.count("w:"), 0);
}

#[test]
fn a_passed_through_write_waits_for_the_buffered_writes_of_its_key() {
    let mut w = World::new();
    assert_eq!(w.put("a", r#"{"v":1}"#).reply.status, 202);
    w.set_rollout(passthrough());
    let entry_before = w.entry("a");
    let out = w.put("a", r#"{"v":2}"#);
    assert_eq!(out.reply.status, 409);
    assert_eq!(common::error_code(&out), Some("writes_pending"));
    assert_eq!(out.reply.header("retry-after"), Some("60"));
    assert!(
        w.origin.writes.is_empty(),
        "nothing sent ahead of the buffered write"
    );
    assert_eq!(w.entry("a"), entry_before, "the dirty entry stays");
    // Once the buffer has delivered it, the write goes through.
    w.flush();
    assert_eq!(w.put("a", r#"{"v":2}"#).reply.status, 200);
    assert_eq!(w.origin.writes.len(), 1);
}

#[test]
fn a_passed_through_patch_merges_into_the_db_api_value_and_preconditions_hold() {
    let mut w = World::new();
    w.set_rollout(passthrough());
    w.origin.found(r#"{"a":1,"b":2}"#, "\"v5\"");
    let out = w.send_with("k", Op::Patch(br#"{"b":null,"c":3}"#.to_vec()), |_| {});
    assert_eq!(out.reply.status, 200, "{:?}", out.reply);
    let sent: Value = serde_json::from_slice(&w.origin.writes[0].body).unwrap();
    assert_eq!(sent, json!({"a": 1, "c": 3}));
    // Written only over the value it merged into.
    assert_eq!(w.origin.writes[0].if_match.as_deref(), Some("\"v5\""));
    // If-Match against the DB API's current ETag: a mismatch sends nothing.
    w.origin.found(r#"{"a":1}"#, "\"v6\"");
    let out = w.send_with("k", Op::Put(b"1".to_vec()), |r| {
        r.if_match = Some("\"v5\"".into())
    });
    assert_eq!(out.reply.status, 412);
    assert_eq!(w.origin.writes.len(), 1);
    w.origin.found(r#"{"a":1}"#, "\"v6\"");
    let out = w.send_with("k", Op::Put(b"1".to_vec()), |r| {
        r.if_match = Some("\"v6\"".into())
    });
    assert_eq!(out.reply.status, 200);
    // If-None-Match: * on an absent item.
    w.origin.status(404);
    let out = w.send_with("new", Op::Put(b"1".to_vec()), |r| {
        r.if_none_match = Some("*".into())
    });
    assert_eq!(out.reply.status, 200);
    assert_eq!(w.origin.writes.len(), 3);
    assert_eq!(w.origin.writes[2].if_none_match.as_deref(), Some("*"));
    assert_eq!(w.origin.writes[2].if_match, None);
    // A write that needs no read goes unconditioned.
    let out = w.send_with("k", Op::Put(b"2".to_vec()), |_| {});
    assert_eq!(out.reply.status, 200);
    assert_eq!(w.origin.writes.len(), 4);
    assert_eq!(
        (
            w.origin.writes[3].if_match.as_ref(),
            w.origin.writes[3].if_none_match.as_ref()
        ),
        (None, None)
    );
}

fn precondition_failed() -> ItemAnswer {
    ItemAnswer {
        status: 412,
        body: br#"{"error":"precondition_failed"}"#.to_vec(),
        ..ItemAnswer::default()
    }
}

#[test]
fn a_passed_through_patch_keeps_a_change_made_between_its_read_and_its_write() {
    let mut w = World::new();
    w.set_rollout(passthrough());
    // Read at v5; another writer adds "b" (v6) before the write, which the DB API refuses.
    w.origin.found(r#"{"a":1}"#, "\"v5\"");
    w.origin.write_script.push_back(Ok(precondition_failed()));
    w.origin.found(r#"{"a":1,"b":2}"#, "\"v6\"");
    let out = w.send_with("k", Op::Patch(br#"{"c":3}"#.to_vec()), |r| {
        r.idempotency_key = Some("patch-1".into());
    });
    assert_eq!(out.reply.status, 200, "{:?}", out.reply);
    let writes = &w.origin.writes;
    assert_eq!(writes.len(), 2);
    let merged: Value = serde_json::from_slice(&writes[1].body).unwrap();
    assert_eq!(
        merged,
        json!({"a": 1, "b": 2, "c": 3}),
        "the other writer's b is kept"
    );
    assert_eq!(writes[1].if_match.as_deref(), Some("\"v6\""));
    assert_eq!(writes[0].idempotency_key, writes[1].idempotency_key);

    // The caller's own precondition is judged again on the fresh read: here it now fails.
    w.origin.found(r#"{"a":1}"#, "\"v7\"");
    w.origin.write_script.push_back(Ok(precondition_failed()));
    w.origin.found(r#"{"a":2}"#, "\"v8\"");
    let out = w.send_with("k", Op::Put(b"1".to_vec()), |r| {
        r.if_match = Some("\"v7\"".into())
    });
    assert_eq!(out.reply.status, 412);
    assert_eq!(w.origin.writes.len(), 3);

    // An item that keeps changing: after the attempts, 409 and nothing written.
    for n in 0..3 {
        w.origin
            .found(&format!(r#"{{"n":{n}}}"#), &format!("\"v{}\"", 10 + n));
        w.origin.write_script.push_back(Ok(precondition_failed()));
    }
    let out = w.send_with("k", Op::Patch(br#"{"c":3}"#.to_vec()), |_| {});
    assert_eq!(out.reply.status, 409);
    assert_eq!(common::error_code(&out), Some("changed_concurrently"));
    assert_eq!(w.origin.writes.len(), 6);
}

#[test]
fn a_retried_passed_through_write_carries_the_same_idempotency_key() {
    let mut w = World::new();
    w.set_rollout(passthrough());
    for replayed in [None, Some("true")] {
        let out = w.send_with("a", Op::Put(b"1".to_vec()), |r| {
            r.idempotency_key = Some("client-key-1".into());
        });
        assert_eq!(out.reply.status, 200);
        // The DB API's word that the retry was answered, not applied again, is relayed.
        assert_eq!(out.reply.header("idempotent-replayed"), replayed);
        assert_eq!(out.reply.header("etag"), Some("\"v1\""));
    }
    let other = w.send_with("a", Op::Put(b"1".to_vec()), |r| {
        r.idempotency_key = Some("client-key-2".into());
    });
    assert_eq!(other.reply.status, 200);
    let keys: Vec<&str> = w
        .origin
        .writes
        .iter()
        .map(|x| x.idempotency_key.as_str())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert!(
        !keys[0].contains("client-key"),
        "the client's key goes as a digest"
    );
    let bad = w.send_with("a", Op::Put(b"1".to_vec()), |r| {
        r.idempotency_key = Some(String::new())
    });
    assert_eq!(bad.reply.status, 400);
    assert_eq!(w.origin.writes.len(), 3);
}

fn caller_in(w: &World, share: u8, inside: bool) -> String {
    (0..1000)
        .map(bearer)
        .find(|auth| {
            let b = bucket::of_caller(&Caller::from_header(Some(auth)), &w.cfg, common::CALLER);
            (b < share) == inside
        })
        .unwrap()
}

#[test]
fn canary_writes_are_buffered_when_enabled_and_the_others_pass_through() {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-of-sixteen-bytes".into());
    let inside = caller_in(&w, 50, true);
    let outside = caller_in(&w, 50, false);
    for buffered in [true, false] {
        w.set_rollout(canary(50, buffered));
        let sent = w.origin.writes.len();
        let out = w.send_with("in", Op::Put(b"1".to_vec()), |r| {
            r.authorization = Some(inside.clone())
        });
        let expected = if buffered { 202 } else { 200 };
        assert_eq!(
            out.reply.status, expected,
            "canary caller, buffered={buffered}"
        );
        w.flush();
        let out = w.send_with("out", Op::Put(b"1".to_vec()), |r| {
            r.authorization = Some(outside.clone())
        });
        assert_eq!(out.reply.status, 200, "caller outside the canary");
        assert_eq!(w.origin.writes.len() - sent, if buffered { 1 } else { 2 });
    }
}

#[test]
fn a_write_outside_the_canary_is_never_hidden_from_a_canary_reader() {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-of-sixteen-bytes".into());
    let reader = caller_in(&w, 50, true);
    let writer = caller_in(&w, 50, false);
    w.set_rollout(canary(50, true));
    // The canary reader has the value cached (shared: the origin allows it).
    w.origin
        .found_cc(r#"{"v":1}"#, "\"v1\"", "public, max-age=3600");
    let read = |w: &mut World| w.get_with("k", |r| r.authorization = Some(reader.clone()));
    assert_eq!(read(&mut w).reply.header("x-cache"), Some("MISS"));
    assert_eq!(read(&mut w).reply.header("x-cache"), Some("HIT"));
    // A caller outside the canary writes through the DB API and is answered...
    let out = w.send_with("k", Op::Put(br#"{"v":2}"#.to_vec()), |r| {
        r.authorization = Some(writer.clone())
    });
    assert_eq!(out.reply.status, 200);
    // ...so the canary reader's next read cannot be the value from before.
    w.origin
        .found_cc(r#"{"v":2}"#, "\"v2\"", "public, max-age=3600");
    let out = read(&mut w);
    assert_eq!(out.reply.header("x-cache"), Some("MISS"));
    assert_eq!(out.reply.body, br#"{"v":2}"#);
}

#[test]
fn a_passed_through_long_poll_answers_at_once() {
    use cache_core::serve::{watch, GetRequest};
    use cache_core::time::TestClock;
    let mut w = World::new();
    w.set_rollout(passthrough());
    w.origin.status(304);
    let req = GetRequest {
        key: World::key("a"),
        authorization: None,
        if_none_match: Some("\"v1\"".into()),
        rate_key: common::CALLER.into(),
    };
    let mut clock = TestClock::at(w.now);
    let out = watch::get_waiting(
        &mut w.store,
        &mut w.origin,
        &mut clock,
        1,
        &w.cfg,
        &req,
        std::time::Duration::from_secs(10),
    );
    assert_eq!(
        (out.reply.status, out.reply.header("x-cache")),
        (304, Some("PASS"))
    );
    assert_eq!(
        clock.now, w.now,
        "no wait on a store that holds nothing of it"
    );
}
