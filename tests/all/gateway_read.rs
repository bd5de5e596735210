//! The gateway's read path against the reference DB API: hit, miss, stale-while-revalidate,
//! stale-if-error, negative caching, conditional GET, corrupt entries, compression.

use std::time::Duration;

use cache_core::envelope::{self, Codec};

use crate::gateway_support::*;
use crate::support::eventually;

#[tokio::test]
async fn a_miss_is_fetched_once_then_served_as_a_hit() {
    let db = Db::start().await;
    db.seed("users", "alice", serde_json::json!({"name": "Alice"}), 3)
        .await;
    let gw = Gw::start("gw-hit", &db, &[]).await;
    let r = gw.get("/v1/users/alice").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(header(&r, "x-cache"), "MISS");
    assert_eq!(json(&r)["name"], "Alice");
    assert_eq!(header(&r, "etag"), "\"v3\"");
    let r = gw.get("/v1/users/alice").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "HIT"), "{r:?}");
    assert_eq!(json(&r)["name"], "Alice");
    assert!(header(&r, "cache-control").starts_with("max-age="), "{r:?}");
    assert!(header(&r, "age").parse::<u64>().is_ok(), "{r:?}");
    assert!(r.headers.get("x-sync").is_none());
    assert_eq!(db.reads(), 1);
}

/// An item read is answered from the request's head as `wasi:http` hands it over, without
/// spin-sdk's conversion, unless its path holds a character the conversion might take
/// otherwise (`"`, `{`, `}` here): the same read, its key written either way, is answered
/// alike, from the same entry, with the same query and header handling.
#[tokio::test]
async fn a_read_is_answered_alike_whether_its_head_is_taken_as_it_is_or_converted() {
    let db = Db::start().await;
    db.seed("users", "a\"b{c}", serde_json::json!({"name": "Q"}), 4)
        .await;
    let gw = Gw::start("gw-head", &db, &[]).await;
    let short = "/v1/users/a%22b%7Bc%7D";
    let long = "/v1/users/a\"b{c}";
    let r = gw.get(short).await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
    let r2 = gw.get(long).await;
    assert_eq!((r2.status, header(&r2, "x-cache")), (200, "HIT"), "{r2:?}");
    assert_eq!(
        (r.body.as_str(), header(&r, "etag")),
        (r2.body.as_str(), "\"v4\"")
    );
    for path in [short, long] {
        let r = gw.get_with(path, &[("if-none-match", "\"v4\"")]).await;
        assert_eq!(
            (r.status, header(&r, "x-cache")),
            (304, "HIT"),
            "{path}: {r:?}"
        );
        let r = gw.get(&format!("{path}?wait=0")).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let r = gw.get(&format!("{path}?x=1")).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(r.body.contains("unknown query parameter"), "{path}: {r:?}");
        let r = gw.get(&format!("{path}/")).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        let r = gw.send("HEAD", path, &[], "").await;
        assert_eq!(r.status, 405, "{path}: {r:?}");
    }
    assert_eq!(db.reads(), 1);
}

#[tokio::test]
async fn if_none_match_gets_304() {
    let db = Db::start().await;
    db.seed("users", "bob", serde_json::json!(1), 7).await;
    let gw = Gw::start("gw-304", &db, &[]).await;
    let r = gw
        .get_with("/v1/users/bob", &[("if-none-match", "\"v7\"")])
        .await;
    assert_eq!(r.status, 304, "{r:?}");
    let r = gw
        .get_with("/v1/users/bob", &[("if-none-match", "\"v7\"")])
        .await;
    assert_eq!((r.status, header(&r, "x-cache")), (304, "HIT"));
    assert_eq!(header(&r, "etag"), "\"v7\"");
    let r = gw
        .get_with("/v1/users/bob", &[("if-none-match", "\"v6\"")])
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_stale_entry_is_served_at_once_then_refreshed_after_the_response() {
    let db = Db::start().await;
    db.seed("users", "s", serde_json::json!("old"), 1).await;
    let gw = Gw::start("gw-swr", &db, &[("ttl", "200ms"), ("stale_ttl", "60s")]).await;
    assert_eq!(gw.get("/v1/users/s").await.status, 200);
    db.seed("users", "s", serde_json::json!("new"), 2).await;
    wait(300).await;
    let r = gw.get("/v1/users/s").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "STALE"), "{r:?}");
    assert_eq!(json(&r), "old");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    // Refreshed by the stale request itself, after its response: no later client pays.
    assert!(
        eventually(Duration::from_secs(5), async || db.reads() >= 2).await,
        "no revalidation"
    );
    assert!(
        eventually(Duration::from_secs(5), async || {
            let r = gw.get("/v1/users/s").await;
            header(&r, "x-cache") == "HIT" && json(&r) == "new"
        })
        .await
    );
}

#[tokio::test]
async fn stale_if_error_serves_the_old_value_when_the_origin_fails() {
    let db = Db::start().await;
    db.seed("users", "e", serde_json::json!("kept"), 1).await;
    let gw = Gw::start(
        "gw-sie",
        &db,
        &[
            ("ttl", "100ms"),
            ("stale_ttl", "0s"),
            ("stale_if_error", "60s"),
        ],
    )
    .await;
    assert_eq!(gw.get("/v1/users/e").await.status, 200);
    wait(200).await;
    db.down();
    let r = gw.get("/v1/users/e").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "STALE"), "{r:?}");
    assert_eq!(json(&r), "kept");
    // Without a stale-if-error entry the failure is a 502, and nothing is cached.
    let r = gw.get("/v1/users/other").await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(json(&r)["error"], "origin_error");
    db.heal();
    let r = gw.get("/v1/users/other").await;
    assert_eq!((r.status, header(&r, "x-cache")), (404, "MISS"), "{r:?}");
}

#[tokio::test]
async fn past_stale_if_error_an_origin_failure_is_an_error() {
    let db = Db::start().await;
    db.seed("users", "x", serde_json::json!(1), 1).await;
    let gw = Gw::start(
        "gw-sie-over",
        &db,
        &[
            ("ttl", "100ms"),
            ("stale_ttl", "0s"),
            ("stale_if_error", "100ms"),
        ],
    )
    .await;
    assert_eq!(gw.get("/v1/users/x").await.status, 200);
    wait(300).await;
    db.set_faults(db_api::faults::FaultConfig {
        error: db_api::faults::Trigger {
            next: 1,
            ..Default::default()
        },
        error_status: 504,
        ..Default::default()
    });
    let r = gw.get("/v1/users/x").await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(json(&r)["error"], "origin_timeout");
}

#[tokio::test]
async fn a_silent_origin_is_cut_off_by_origin_timeout() {
    let db = Db::start().await;
    db.seed("users", "slow", serde_json::json!({"n": 1}), 1)
        .await;
    let gw = Gw::start(
        "gw-origin-timeout",
        &db,
        &[
            ("origin_timeout", "300ms"),
            ("ttl", "100ms"),
            ("stale_ttl", "0s"),
            ("stale_if_error", "60s"),
        ],
    )
    .await;
    db.set_faults(db_api::faults::FaultConfig {
        read_latency_ms: Some(3000),
        ..Default::default()
    });
    // The DB API would answer 404 after 3 s; a 504 means the gateway stopped waiting.
    let r = gw.get("/v1/users/cold").await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(json(&r)["error"], "origin_timeout");
    // A cached value past its TTL is served stale instead, within stale_if_error.
    db.heal();
    assert_eq!(gw.get("/v1/users/slow").await.status, 200);
    wait(200).await;
    db.set_faults(db_api::faults::FaultConfig {
        read_latency_ms: Some(3000),
        ..Default::default()
    });
    let r = gw.get("/v1/users/slow").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "STALE"), "{r:?}");
    assert_eq!(json(&r), serde_json::json!({"n": 1}));
    db.heal();
}

#[tokio::test]
async fn origin_404_is_cached_as_negative_for_negative_ttl() {
    let db = Db::start().await;
    let gw = Gw::start("gw-neg", &db, &[("negative_ttl", "300ms")]).await;
    let r = gw.get("/v1/users/ghost").await;
    assert_eq!((r.status, header(&r, "x-cache")), (404, "MISS"), "{r:?}");
    assert_eq!(json(&r)["error"], "not_found");
    let r = gw.get("/v1/users/ghost").await;
    assert_eq!(
        (r.status, header(&r, "x-cache")),
        (404, "NEGATIVE"),
        "{r:?}"
    );
    assert_eq!(db.reads(), 1);
    db.seed("users", "ghost", serde_json::json!("here"), 1)
        .await;
    wait(400).await;
    let r = gw.get("/v1/users/ghost").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
    // A write replaces a negative entry at once.
    let r = gw.get("/v1/users/ghost2").await;
    assert_eq!(r.status, 404);
    assert_eq!(gw.put("/v1/users/ghost2", "5").await.status, 202);
    let r = gw.get("/v1/users/ghost2").await;
    assert_eq!((r.status, r.body.as_str()), (200, "5"), "{r:?}");
}

#[tokio::test]
async fn origin_errors_are_never_cached() {
    let db = Db::start().await;
    db.seed("users", "flaky", serde_json::json!(1), 1).await;
    let gw = Gw::start("gw-nocache-err", &db, &[]).await;
    db.set_faults(db_api::faults::FaultConfig {
        error: db_api::faults::Trigger {
            next: 1,
            ..Default::default()
        },
        ..Default::default()
    });
    assert_eq!(gw.get("/v1/users/flaky").await.status, 502);
    let r = gw.get("/v1/users/flaky").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
}

#[tokio::test]
async fn a_corrupt_entry_is_a_miss_and_is_overwritten() {
    let db = Db::start().await;
    db.seed("users", "c", serde_json::json!({"ok": true}), 1)
        .await;
    let gw = Gw::start("gw-corrupt", &db, &[]).await;
    for garbage in [
        "garbage",
        "CE\u{1}\u{0}\u{0}\u{0}\u{0}\u{ff}",
        "CE\u{9}\u{0}",
    ] {
        gw.put_raw("c:users:c", garbage).await;
        let r = gw.get("/v1/users/c").await;
        assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
        assert_eq!(json(&r)["ok"], true);
        let stored = gw.raw("c:users:c").await.expect("entry");
        assert!(envelope::decode(&stored).is_ok(), "entry not overwritten");
    }
    // Also through the SQLite file directly, with bytes that are not UTF-8.
    gw.put_raw("c:users:c", "x").await;
    corrupt_in_sqlite(&gw, "c:users:c", &[0xff, 0xfe, 0x00, 0x43]);
    let r = gw.get("/v1/users/c").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
}

fn corrupt_in_sqlite(gw: &Gw, key: &str, bytes: &[u8]) {
    let n = gw
        .kv_file()
        .execute(
            "UPDATE spin_key_value SET value = ?1 WHERE store = 'default' AND key = ?2",
            rusqlite::params![bytes, key],
        )
        .expect("update");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn large_values_are_compressed_and_small_ones_are_not() {
    let db = Db::start().await;
    let big: String = "abcdefgh".repeat(500);
    db.seed("docs", "big", serde_json::json!(big), 1).await;
    db.seed("docs", "small", serde_json::json!("tiny"), 1).await;
    let gw = Gw::start("gw-deflate", &db, &[("compress_min_bytes", "1024")]).await;
    let r = gw.get("/v1/docs/big").await;
    assert_eq!(json(&r), serde_json::json!(big));
    assert_eq!(gw.get("/v1/docs/small").await.status, 200);
    let stored = gw.raw("c:docs:big").await.expect("entry");
    assert_eq!(envelope::codec_of(&stored), Ok(Codec::Deflate));
    assert!(stored.len() < big.len() / 4, "{} bytes", stored.len());
    let stored = gw.raw("c:docs:small").await.expect("entry");
    assert_eq!(envelope::codec_of(&stored), Ok(Codec::Identity));
    // And served back intact from the compressed entry.
    let r = gw.get("/v1/docs/big").await;
    assert_eq!(header(&r, "x-cache"), "HIT");
    assert_eq!(json(&r), serde_json::json!(big));
    // Writes are compressed by the same rule.
    assert_eq!(
        gw.put("/v1/docs/w", &serde_json::json!(big).to_string())
            .await
            .status,
        202
    );
    let stored = gw.raw("c:docs:w").await.expect("entry");
    assert_eq!(envelope::codec_of(&stored), Ok(Codec::Deflate));
}

#[tokio::test]
async fn compression_off_stores_values_as_is() {
    let db = Db::start().await;
    let big: String = "abcdefgh".repeat(500);
    db.seed("docs", "big", serde_json::json!(big), 1).await;
    let gw = Gw::start("gw-nodeflate", &db, &[("compress_min_bytes", "10MiB")]).await;
    assert_eq!(gw.get("/v1/docs/big").await.status, 200);
    let stored = gw.raw("c:docs:big").await.expect("entry");
    assert_eq!(envelope::codec_of(&stored), Ok(Codec::Identity));
    assert!(stored.len() > big.len());
}

#[tokio::test]
async fn the_client_authorization_is_forwarded_and_the_token_never_lent() {
    let db = Db::start_with(db_api::Settings {
        token: Some("s3cret".into()),
        ..Default::default()
    })
    .await;
    let gw = Gw::start("gw-auth", &db, &[]).await;
    let r = gw.get("/v1/users/a").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(json(&r)["error"], "origin_refused");
    let r = gw
        .get_with("/v1/users/a", &[("authorization", "Bearer wrong")])
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = gw
        .get_with("/v1/users/a", &[("authorization", "Bearer s3cret")])
        .await;
    assert_eq!((r.status, header(&r, "x-cache")), (404, "MISS"), "{r:?}");
    // The cache's own token is for batches: an anonymous caller's read does not carry it.
    let gw2 = Gw::start("gw-auth-token", &db, &[("db_api_token", "s3cret")]).await;
    let r = gw2.get("/v1/users/b").await;
    assert_eq!(r.status, 401, "{r:?}");
}
