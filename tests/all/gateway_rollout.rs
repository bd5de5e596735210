//! The rollout end to end (`/admin/rollout`, `cache_core::rollout`): the admin routes report,
//! change and refuse; in passthrough reads reach the DB API and its answer is relayed; in
//! canary the callers below the share are served by the cache and the others pass through;
//! a buffered write is never hidden behind a passed-through read; in shadow the caller gets
//! the DB API's answer and the cache's would-be answer is judged, counted and sampled; the
//! gate refuses a raise while shadow mismatches are high, but never a rollback.

use std::time::Duration;

use cache_core::auth::caller::Caller;
use cache_core::config::CacheConfig;
use cache_core::rollout::bucket;
use serde_json::{json, Value};

use crate::flush_support::ADMIN;
use crate::gateway_support::{header, json, Gw};
use crate::support::*;

async fn start(tag: &str, db: &Db) -> Gw {
    Gw::start(tag, db, &[("admin_token", ADMIN), ("ttl", "1h")]).await
}

async fn rollout_get(gw: &Gw) -> Value {
    let auth = format!("Bearer {ADMIN}");
    let r = gw
        .send("GET", "/admin/rollout", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    json(&r)
}

async fn rollout_post(gw: &Gw, body: &str) -> Reply {
    let auth = format!("Bearer {ADMIN}");
    gw.send(
        "POST",
        "/admin/rollout",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

async fn admin_flush(gw: &Gw) {
    let auth = format!("Bearer {ADMIN}");
    let r = gw
        .send("POST", "/admin/flush", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn the_admin_routes_report_change_and_refuse_bad_input() {
    let db = Db::start().await;
    let gw = start("rollout-admin", &db).await;
    let before = rollout_get(&gw).await;
    assert_eq!(before["state"]["mode"], "cutover");
    assert_eq!(before["source"], "defaults");
    assert_eq!(before["log"], json!([]));

    // Bad input: 400 with the JSON error, and nothing stored.
    for bad in [
        "",
        "not json",
        "{}",
        r#"{"mode":"Shadow"}"#,
        r#"{"mode":"sideways"}"#,
        r#"{"canary_share":101}"#,
        r#"{"canary_share":"5"}"#,
        r#"{"canary_share":5,"typo":true}"#,
    ] {
        let r = rollout_post(&gw, bad).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        let body = json(&r);
        assert_eq!(body["error"], "bad_request", "{bad}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(gw.raw("m:rollout").await, None);
    assert_eq!(rollout_get(&gw).await, before);

    // Without the token: 401; another method: 405 with Allow.
    let r = gw
        .send("POST", "/admin/rollout", &[], r#"{"mode":"passthrough"}"#)
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let auth = format!("Bearer {ADMIN}");
    let r = gw
        .send("PUT", "/admin/rollout", &[("authorization", &auth)], "{}")
        .await;
    assert_eq!((r.status, header(&r, "allow")), (405, "GET, POST"), "{r:?}");
    assert_eq!(gw.raw("m:rollout").await, None);

    let r = rollout_post(&gw, r#"{"mode":"canary","canary_share":5}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = rollout_post(&gw, r#"{"canary_share":25,"canary_writes_buffered":true}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    let after = rollout_get(&gw).await;
    assert_eq!(
        after["state"],
        json!({"mode": "canary", "canary_share": 25, "canary_writes_buffered": true})
    );
    assert_eq!(after["source"], "override");
    assert_eq!(after["defaults"]["mode"], "cutover");
    let log = after["log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["previous"]["mode"], "cutover");
    assert_eq!(log[1]["previous"]["canary_share"], 5);
    assert_eq!(log[1]["new"]["canary_share"], 25);
    assert_eq!(log[1]["by"], "admin");
    assert!(log[1]["at"].as_u64().unwrap() >= log[0]["at"].as_u64().unwrap());

    let metrics = gw.get("/metrics").await.body;
    assert!(
        metrics.contains("\ncache_rollout_canary_share_percent 25\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ncache_rollout_mode{mode=\"canary\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_overrides_off_the_variables_fix_the_rollout() {
    let db = Db::start().await;
    let gw = Gw::start(
        "rollout-fixed",
        &db,
        &[
            ("admin_token", ADMIN),
            ("ttl", "1h"),
            ("rollout_mode", "cutover"),
            ("rollout_overrides", "false"),
        ],
    )
    .await;
    db.seed("users", "1", json!({"v": 1}), 1).await;
    let refused = rollout_post(&gw, r#"{"mode":"passthrough"}"#).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(json(&refused)["error"], "rollout_fixed");
    let report = rollout_get(&gw).await;
    assert_eq!(
        (
            &report["overrides"],
            &report["source"],
            &report["state"]["mode"]
        ),
        (&json!(false), &json!("defaults"), &json!("cutover"))
    );
    // Served by the cache as the variables say.
    let first = gw.get("/v1/users/1").await;
    assert_eq!(
        (first.status, header(&first, "x-cache")),
        (200, "MISS"),
        "{first:?}"
    );
    let again = gw.get("/v1/users/1").await;
    assert_eq!(
        (again.status, header(&again, "x-cache")),
        (200, "HIT"),
        "{again:?}"
    );
}

#[tokio::test]
async fn passthrough_reads_reach_the_db_api_and_keep_nothing() {
    let db = Db::start().await;
    let gw = start("rollout-pass-read", &db).await;
    db.seed("users", "1", json!({"v": 1}), 1).await;
    assert_eq!(
        rollout_post(&gw, r#"{"mode":"passthrough"}"#).await.status,
        200
    );

    let reads = db.reads();
    let r = gw.get("/v1/users/1").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "PASS"), "{r:?}");
    assert_eq!(json(&r), json!({"v": 1}));
    let etag = header(&r, "etag").to_owned();
    assert!(!etag.is_empty());
    assert_eq!(db.reads(), reads + 1, "one read of the DB API");
    assert_eq!(gw.raw("c:users:1").await, None, "nothing kept");

    // A change behind the cache's back is seen at once: every read asks the DB API.
    db.seed("users", "1", json!({"v": 2}), 2).await;
    let r = gw.get("/v1/users/1").await;
    assert_eq!((r.status, json(&r)), (200, json!({"v": 2})));
    // The caller's validator goes with it; the DB API's 304 and 404 are relayed.
    let etag = header(&r, "etag").to_owned();
    let r = gw
        .get_with("/v1/users/1", &[("if-none-match", &etag)])
        .await;
    assert_eq!((r.status, header(&r, "x-cache")), (304, "PASS"), "{r:?}");
    let r = gw.get("/v1/users/none").await;
    assert_eq!((r.status, header(&r, "x-cache")), (404, "PASS"), "{r:?}");

    let metrics = gw.get("/metrics").await.body;
    assert!(
        metrics.contains("\ncache_passthrough_reads_total 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ncache_rollout_mode{mode=\"passthrough\"} 1\n"),
        "{metrics}"
    );

    // Back to cutover: the cache serves again.
    assert_eq!(rollout_post(&gw, r#"{"mode":"cutover"}"#).await.status, 200);
    let r = gw.get("/v1/users/1").await;
    assert_eq!(header(&r, "x-cache"), "MISS");
    let r = gw.get("/v1/users/1").await;
    assert_eq!(header(&r, "x-cache"), "HIT");
}

#[tokio::test]
async fn a_buffered_write_is_not_hidden_by_a_switch_to_passthrough() {
    let db = Db::start().await;
    let gw = start("rollout-dirty", &db).await;
    db.seed("users", "1", json!({"v": 1}), 1).await;
    let r = gw.put("/v1/users/1", r#"{"v":2}"#).await;
    assert_eq!(r.status, 202, "{r:?}");
    // Rolled back before the flush: the acknowledged write is still what readers get.
    assert_eq!(
        rollout_post(&gw, r#"{"mode":"passthrough"}"#).await.status,
        200
    );
    let r = gw.get("/v1/users/1").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "HIT"), "{r:?}");
    assert_eq!(header(&r, "x-sync"), "pending");
    assert_eq!(json(&r), json!({"v": 2}));
    // The buffer drains in every mode; once delivered, reads pass through and agree.
    admin_flush(&gw).await;
    assert_eq!(db.item("users", "1").await, Some(json!({"v": 2})));
    let r = gw.get("/v1/users/1").await;
    assert_eq!((header(&r, "x-cache"), json(&r)), ("PASS", json!({"v": 2})));
}

#[tokio::test]
async fn in_canary_callers_below_the_share_are_cached_and_stay_in_as_it_grows() {
    let db = Db::start().await;
    let gw = start("rollout-canary", &db).await;
    db.seed("docs", "1", json!({"v": 1}), 1).await;
    // The gateway has no auth_key: a principal's bucket comes from a plain digest.
    let cfg = CacheConfig::with_db_api_url("http://unused").unwrap();
    let callers: Vec<(String, u8)> = (0..24)
        .map(|i| {
            let auth = format!("Bearer canary-caller-{i}");
            let b = bucket::of_caller(&Caller::from_header(Some(&auth)), &cfg, "unused");
            (auth, b)
        })
        .collect();
    for share in [25u8, 60] {
        let body = format!(r#"{{"mode":"canary","canary_share":{share}}}"#);
        assert_eq!(rollout_post(&gw, &body).await.status, 200);
        for (auth, b) in &callers {
            let r = gw
                .get_with("/v1/docs/1", &[("authorization", auth.as_str())])
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            let passed = header(&r, "x-cache") == "PASS";
            assert_eq!(passed, *b >= share, "bucket {b} at {share}%: {r:?}");
        }
    }
    assert!(callers.iter().any(|(_, b)| *b < 25) && callers.iter().any(|(_, b)| *b >= 60));
}

async fn shadow_report(gw: &Gw) -> Value {
    let auth = format!("Bearer {ADMIN}");
    let r = gw
        .send("GET", "/admin/shadow", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    json(&r)
}

/// Waits until the shadow report has judged `n` reads (the comparison runs after each
/// response) and returns it.
async fn shadow_judged(gw: &Gw, n: u64) -> Value {
    let judged = |r: &Value| {
        ["hit", "negative", "stale", "miss"]
            .iter()
            .map(|s| r["totals"]["would_serve"][s].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let mut last = Value::Null;
    let done = eventually(Duration::from_secs(10), async || {
        last = shadow_report(gw).await;
        judged(&last) >= n
    })
    .await;
    assert!(done, "{n} shadow reads judged: {last}");
    last
}

#[tokio::test]
async fn shadow_matches_a_quiet_db_reports_a_change_behind_its_back_and_gates_the_raise() {
    let db = Db::start().await;
    let gw = start("rollout-shadow", &db).await;
    db.seed("users", "1", json!({"name": "Ada", "tags": ["a"]}), 1)
        .await;
    db.seed("users", "2", json!({"v": 1}), 1).await;
    let r = rollout_post(&gw, r#"{"mode":"shadow"}"#).await;
    assert_eq!(
        (r.status, json(&r)["rollback"].clone()),
        (200, json!(true)),
        "shadow serves nothing from the cache: {r:?}"
    );

    // Nothing changes behind the cache: every comparison matches. Each read reaches the DB
    // API, and the caller gets its answer.
    for path in ["/v1/users/1", "/v1/users/2", "/v1/users/1", "/v1/users/2"] {
        let reads = db.reads();
        let r = gw.get(path).await;
        assert_eq!((r.status, header(&r, "x-cache")), (200, "PASS"), "{r:?}");
        assert_eq!(db.reads(), reads + 1);
    }
    let report = shadow_judged(&gw, 4).await;
    assert_eq!(
        report["totals"]["would_serve"],
        json!({"hit": 2, "negative": 0, "stale": 0, "miss": 2}),
        "{report}"
    );
    assert_eq!(report["totals"]["matches"], 4, "{report}");
    assert_eq!(report["window"]["mismatch_per_mille"], 0, "{report}");
    assert!(gw.raw("c:users:1").await.is_some(), "kept as cutover would");

    // Changed behind the cache's back: the caller gets the new value, and the report says
    // the cache would have served the old one, where and how, without a value.
    db.seed("users", "1", json!({"name": "Ada", "tags": ["private"]}), 2)
        .await;
    let r = gw.get("/v1/users/1").await;
    assert_eq!(json(&r), json!({"name": "Ada", "tags": ["private"]}));
    let report = shadow_judged(&gw, 5).await;
    assert_eq!(report["totals"]["mismatches"]["value"], 1, "{report}");
    assert_eq!(report["window"]["mismatch_per_mille"], 200, "{report}");
    let sample = &report["samples"][0];
    assert_eq!(
        (
            &sample["reason"],
            &sample["ns"],
            &sample["key"],
            &sample["path"]
        ),
        (
            &json!("value"),
            &json!("users"),
            &json!("1"),
            &json!("/tags/0")
        ),
        "{report}"
    );
    assert_eq!(
        (&sample["cache_etag"], &sample["origin_etag"]),
        (&json!("\"v1\""), &json!("\"v2\"")),
        "{report}"
    );
    assert!(!report.to_string().contains("private"), "{report}");
    let metrics = gw.get("/metrics").await.body;
    for line in [
        "cache_shadow_comparisons_total{verdict=\"mismatch\",reason=\"value\"} 1",
        "cache_shadow_comparisons_total{verdict=\"match\"} 4",
        "cache_shadow_would_be_hit_ratio 0.600",
        "cache_rollout_mode{mode=\"shadow\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // 20% mismatches, over the default 1%: a raise is refused, with the reason.
    let before = gw.raw("m:rollout").await;
    for raise in [
        r#"{"mode":"canary","canary_share":5}"#,
        r#"{"mode":"cutover"}"#,
    ] {
        let r = rollout_post(&gw, raise).await;
        assert_eq!(
            (r.status, json(&r)["error"].clone()),
            (409, json!("rollout_gated")),
            "{r:?}"
        );
        assert!(
            json(&r)["message"].as_str().unwrap().contains("20.0%"),
            "{r:?}"
        );
    }
    assert_eq!(gw.raw("m:rollout").await, before, "nothing changed");
    assert_eq!(rollout_get(&gw).await["gate"]["allows_raise"], false);
    // A rollback goes through whatever the gate says, and so does a forced raise.
    let r = rollout_post(&gw, r#"{"mode":"passthrough"}"#).await;
    assert_eq!((r.status, json(&r)["rollback"].clone()), (200, json!(true)));
    let r = rollout_post(&gw, r#"{"mode":"cutover","force":true}"#).await;
    assert_eq!(
        (r.status, json(&r)["forced"].clone()),
        (200, json!(true)),
        "{r:?}"
    );
    assert_eq!(rollout_get(&gw).await["state"]["mode"], "cutover");
}

#[tokio::test]
async fn the_would_be_hit_rate_in_shadow_is_the_one_cutover_has_on_the_same_workload() {
    let db = Db::start().await;
    for key in ["1", "2", "3"] {
        db.seed("users", key, json!({ "key": key }), 1).await;
    }
    let workload = [
        "1", "2", "1", "none", "3", "1", "none", "2", "2", "3", "1", "none",
    ];
    // Cutover: what the cache served, read off each answer.
    let cutover = start("rollout-rate-cutover", &db).await;
    let mut served = std::collections::BTreeMap::new();
    for key in workload {
        let r = cutover.get(&format!("/v1/users/{key}")).await;
        *served
            .entry(header(&r, "x-cache").to_lowercase())
            .or_insert(0u64) += 1;
    }
    // Shadow, on a cache of its own: what the cache would have served.
    let shadow = start("rollout-rate-shadow", &db).await;
    assert_eq!(
        rollout_post(&shadow, r#"{"mode":"shadow"}"#).await.status,
        200
    );
    for (i, key) in workload.iter().enumerate() {
        let r = shadow.get(&format!("/v1/users/{key}")).await;
        assert_eq!(header(&r, "x-cache"), "PASS");
        // Sequential, as in cutover: each comparison (and fill) before the next read.
        shadow_judged(&shadow, i as u64 + 1).await;
    }
    let report = shadow_judged(&shadow, workload.len() as u64).await;
    let would: std::collections::BTreeMap<String, u64> = ["hit", "negative", "stale", "miss"]
        .iter()
        .filter_map(|s| {
            let n = report["totals"]["would_serve"][s].as_u64()?;
            (n > 0).then(|| ((*s).to_owned(), n))
        })
        .collect();
    assert_eq!(would, served, "{report}");
    assert_eq!(served.get("hit"), Some(&6), "{served:?}");
}

/// A credential whose bucket (no `auth_key`: a plain digest) is below `share` or not.
fn credential(share: u8, inside: bool) -> String {
    let cfg = CacheConfig::with_db_api_url("http://unused").unwrap();
    (0..10_000)
        .map(|i| format!("Bearer rollout-writer-{i}"))
        .find(|auth| {
            let b = bucket::of_caller(&Caller::from_header(Some(auth)), &cfg, "unused");
            (b < share) == inside
        })
        .expect("a caller in that bucket range")
}

#[tokio::test]
async fn passthrough_writes_reach_the_db_api_before_the_answer() {
    let db = Db::start().await;
    let gw = start("rollout-pass-write", &db).await;
    assert_eq!(
        rollout_post(&gw, r#"{"mode":"passthrough"}"#).await.status,
        200
    );
    let r = gw.put("/v1/users/7", r#"{"name":"Ada"}"#).await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "PASS"), "{r:?}");
    assert!(!header(&r, "etag").is_empty());
    assert_eq!(db.item("users", "7").await, Some(json!({"name": "Ada"})));
    assert_eq!(gw.buffered_count(), 0, "nothing buffered");
    let r = gw
        .send(
            "PATCH",
            "/v1/users/7",
            &[("content-type", "application/merge-patch+json")],
            r#"{"plan":"pro"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        db.item("users", "7").await,
        Some(json!({"name": "Ada", "plan": "pro"}))
    );
    // A retry with the same Idempotency-Key is applied once.
    let put = |body: &'static str| {
        gw.send(
            "PUT",
            "/v1/users/8",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "retry-1"),
            ],
            body,
        )
    };
    assert_eq!(put(r#"{"n":1}"#).await.status, 200);
    let writes = db.stats().item_writes;
    let again = put(r#"{"n":1}"#).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(header(&again, "idempotent-replayed"), "true", "{again:?}");
    assert_eq!(
        db.stats().item_writes,
        writes,
        "the retry applied nothing again"
    );
    let r = gw.send("DELETE", "/v1/users/7", &[], "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(db.item("users", "7").await, None);
    let metrics = gw.get("/metrics").await.body;
    assert!(
        metrics.contains("\ncache_passthrough_writes_total 5\n"),
        "{metrics}"
    );
}

/// Concurrent passed-through merge patches of one item: each reads, merges and writes on the
/// condition that the item is still what it read, so none overwrites another's field. A
/// patch that kept losing is `409 changed_concurrently` and wrote nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_passthrough_patches_lose_no_update() {
    let db = Db::start().await;
    let gw = start("rollout-pass-patches", &db).await;
    db.seed("users", "9", json!({"base": 0}), 1).await;
    assert_eq!(
        rollout_post(&gw, r#"{"mode":"passthrough"}"#).await.status,
        200
    );
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8 {
        let url = gw.url("/v1/users/9");
        calls.spawn(async move {
            let patch = format!(r#"{{"f{i}":{i}}}"#);
            let headers = [("content-type", "application/merge-patch+json")];
            (i, send("PATCH", &url, &headers, &patch).await)
        });
    }
    let mut applied = serde_json::Map::new();
    applied.insert("base".into(), json!(0));
    for (i, r) in calls.join_all().await {
        match r.status {
            200 => {
                applied.insert(format!("f{i}"), json!(i));
            }
            409 => assert_eq!(json(&r)["error"], "changed_concurrently", "{r:?}"),
            _ => panic!("patch {i}: {r:?}"),
        }
    }
    assert!(applied.len() > 1, "no patch applied");
    assert_eq!(db.item("users", "9").await, Some(Value::Object(applied)));
}

#[tokio::test]
async fn a_passthrough_write_behind_buffered_writes_of_its_key_is_refused() {
    let db = Db::start().await;
    let gw = start("rollout-pending", &db).await;
    assert_eq!(gw.put("/v1/users/1", r#"{"v":1}"#).await.status, 202);
    assert_eq!(
        rollout_post(&gw, r#"{"mode":"passthrough"}"#).await.status,
        200
    );
    let r = gw.put("/v1/users/1", r#"{"v":2}"#).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(json(&r)["error"], "writes_pending");
    assert_eq!(
        db.item("users", "1").await,
        None,
        "nothing sent ahead of the buffered write"
    );
    admin_flush(&gw).await;
    assert_eq!(db.item("users", "1").await, Some(json!({"v": 1})));
    assert_eq!(gw.put("/v1/users/1", r#"{"v":2}"#).await.status, 200);
    assert_eq!(db.item("users", "1").await, Some(json!({"v": 2})));
}

#[tokio::test]
async fn canary_writes_are_buffered_and_a_write_outside_is_never_hidden_from_a_canary_reader() {
    let db = Db::start().await;
    let gw = start("rollout-canary-write", &db).await;
    // Anonymous requests here all come from 127.0.0.1: one bucket, put inside the canary.
    let anonymous = bucket::of("ip:127.0.0.1");
    assert!(anonymous < 99, "a share that leaves some callers out");
    let share = anonymous + 1;
    let body =
        format!(r#"{{"mode":"canary","canary_share":{share},"canary_writes_buffered":true}}"#);
    assert_eq!(rollout_post(&gw, &body).await.status, 200);

    // A canary caller's write is buffered; one outside goes to the DB API.
    let inside = credential(share, true);
    let outside = credential(share, false);
    let write = |auth: &str, key: &str, body: &'static str| {
        let auth = auth.to_owned();
        let path = format!("/v1/notes/{key}");
        let gw = &gw;
        async move {
            gw.send(
                "PUT",
                &path,
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                body,
            )
            .await
        }
    };
    let r = write(&inside, "a", r#"{"v":1}"#).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(gw.buffered_count(), 1);
    assert_eq!(db.item("notes", "a").await, None);
    let r = write(&outside, "b", r#"{"v":1}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(gw.buffered_count(), 1);
    assert_eq!(db.item("notes", "b").await, Some(json!({"v": 1})));

    // The anonymous canary reader has b cached...
    let r = gw.get("/v1/notes/b").await;
    assert_eq!(header(&r, "x-cache"), "MISS", "{r:?}");
    let r = gw.get("/v1/notes/b").await;
    assert_eq!(header(&r, "x-cache"), "HIT", "{r:?}");
    // ...a caller outside the canary writes it and is answered...
    let r = write(&outside, "b", r#"{"v":2}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    // ...and the canary reader's next read is that write, not the kept value.
    let r = gw.get("/v1/notes/b").await;
    assert_eq!((r.status, json(&r)), (200, json!({"v": 2})), "{r:?}");
    assert_ne!(header(&r, "x-cache"), "HIT");
}

/// Objects nested `depth` levels under `"a"` around `leaf`.
fn nested(depth: usize, leaf: &str) -> String {
    format!("{}{leaf}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[tokio::test]
async fn documents_nested_to_the_limits_are_read_compared_and_written() {
    let db = Db::start().await;
    let gw = start("rollout-deep", &db).await;
    // As deep as the DB API's seeding carries (its own envelope takes three of serde_json's
    // 128 levels): filled, served from the cache, then compared in shadow after a change.
    let deep = |leaf: &str| serde_json::from_str::<Value>(&nested(124, leaf)).unwrap();
    db.seed("users", "deep", deep("1"), 1).await;
    let r = gw.get("/v1/users/deep").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
    let r = gw.get("/v1/users/deep").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "HIT"), "{r:?}");
    assert_eq!(json(&r), deep("1"));
    db.seed("users", "deep", deep("2"), 2).await;
    let r = rollout_post(&gw, r#"{"mode":"shadow"}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = gw.get("/v1/users/deep").await;
    assert_eq!((r.status, json(&r)), (200, deep("2")), "{r:?}");
    let report = shadow_judged(&gw, 1).await;
    assert_eq!(
        report["samples"][0]["path"],
        json!("/a".repeat(124)),
        "the first difference, at the bottom: {report}"
    );

    // Writes: the deepest document accepted, and a merge patch as deep, are buffered and
    // delivered; one level more is refused.
    let r = rollout_post(&gw, r#"{"mode":"cutover","force":true}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(gw.put("/v1/users/w", &nested(100, "1")).await.status, 202);
    let merge = format!(r#"{{"c":2,"a":{}}}"#, nested(99, "2"));
    let patch = gw
        .send(
            "PATCH",
            "/v1/users/w",
            &[("content-type", "application/merge-patch+json")],
            &merge,
        )
        .await;
    assert_eq!(patch.status, 202, "{patch:?}");
    let r = gw.put("/v1/users/x", &nested(101, "1")).await;
    assert_eq!(
        (r.status, json(&r)["error"].clone()),
        (400, json!("bad_json"))
    );
    admin_flush(&gw).await;
    let mut want: Value = serde_json::from_str(&nested(100, "2")).unwrap();
    want["c"] = json!(2);
    assert_eq!(db.item("users", "w").await, Some(want), "delivered");
    assert_eq!(db.item("users", "x").await, None);
}
