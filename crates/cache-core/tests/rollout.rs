//! The rollout (`cache_core::rollout`): buckets, the per-request decision, and the admin
//! change with its gate, against `MemoryStore`.

use cache_core::auth::caller::Caller;
use cache_core::config::{var, CacheConfig};
use cache_core::rollout::decide::{in_canary, read_route, write_route, ReadRoute, WriteRoute};
use cache_core::rollout::state::{self, Mode, RolloutState};
use cache_core::rollout::{bucket, change, gate};
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
    for (name, value) in [
        (var::ROLLOUT_MODE, "shadow"),
        (var::ROLLOUT_MODE, "Canary"),
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
    serde_json::from_slice(&change::report(store, cfg).unwrap().body).unwrap()
}

fn set_shadow_counts(store: &mut MemoryStore, matches: u64, mismatches: u64) {
    for (name, n) in [
        (gate::SHADOW_MATCHES, matches),
        (gate::SHADOW_MISMATCHES, mismatches),
    ] {
        store
            .set(&KvKey::Tally(name.into()).render(), &encode_counter(n))
            .unwrap();
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
        json!({"mode": "shadow"}),
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
