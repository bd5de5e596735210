//! The gateway's write path: read-your-writes, PATCH, DELETE, If-Match, backpressure, and
//! concurrent writers to one key.

use cache_core::buffer::coalesce;
use cache_core::envelope;
use cache_core::record::BufferedWrite;

use crate::gateway_support::*;

const JSON: (&str, &str) = ("content-type", "application/json");

async fn buffered(gw: &Gw) -> Vec<BufferedWrite> {
    let conn = gw.kv_file();
    let mut stmt = conn
        .prepare("SELECT value FROM spin_key_value WHERE store = 'default' AND key LIKE 'w:%'")
        .expect("prepare");
    let rows = stmt
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .expect("query");
    rows.map(|r| BufferedWrite::decode(&r.expect("row")).expect("record decodes"))
        .collect()
}

#[tokio::test]
async fn a_put_is_visible_at_once_and_buffered() {
    let db = Db::start().await;
    db.seed("users", "alice", serde_json::json!({"v": 1}), 1)
        .await;
    let gw = Gw::start("gw-ryw", &db, &[]).await;
    assert_eq!(gw.get("/v1/users/alice").await.status, 200);
    let r = gw.put("/v1/users/alice", r#"{"v": 2}"#).await;
    assert_eq!(r.status, 202, "{r:?}");
    let etag = header(&r, "etag").to_owned();
    assert!(etag.starts_with("\"w"), "{r:?}");
    let r = gw.get("/v1/users/alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["v"], 2);
    assert_eq!(header(&r, "etag"), etag);
    assert_eq!(header(&r, "x-sync"), "pending");
    assert!(header(&r, "x-dirty-age").parse::<u64>().is_ok(), "{r:?}");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    let writes = buffered(&gw).await;
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].value, Some(serde_json::json!({"v": 2})));
    // The DB API was asked once (the first read), never for the write's visibility.
    assert_eq!(db.reads(), 1);
}

#[tokio::test]
async fn patch_merges_into_the_current_value_reading_through_when_absent() {
    let db = Db::start().await;
    db.seed(
        "users",
        "p",
        serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}}),
        1,
    )
    .await;
    let gw = Gw::start("gw-patch", &db, &[]).await;
    let r = gw
        .send(
            "PATCH",
            "/v1/users/p",
            &[JSON],
            r#"{"b": {"c": null, "e": 4}, "f": 5}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(db.reads(), 1, "read through once");
    let r = gw.get("/v1/users/p").await;
    assert_eq!(
        json(&r),
        serde_json::json!({"a": 1, "b": {"d": 3, "e": 4}, "f": 5})
    );
    let r = gw
        .send(
            "PATCH",
            "/v1/users/p",
            &[("content-type", "application/merge-patch+json")],
            r#"{"a": null}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = gw.get("/v1/users/p").await;
    assert_eq!(json(&r), serde_json::json!({"b": {"d": 3, "e": 4}, "f": 5}));
    // A patch of an absent key patches null.
    let r = gw
        .send("PATCH", "/v1/users/new", &[JSON], r#"{"x": 1}"#)
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        json(&gw.get("/v1/users/new").await),
        serde_json::json!({"x": 1})
    );
    assert_eq!(buffered(&gw).await.len(), 3);
}

#[tokio::test]
async fn delete_hides_the_value_at_once_and_buffers_a_tombstone() {
    let db = Db::start().await;
    db.seed("users", "d", serde_json::json!(1), 1).await;
    let gw = Gw::start("gw-delete", &db, &[]).await;
    assert_eq!(gw.get("/v1/users/d").await.status, 200);
    let r = gw.send("DELETE", "/v1/users/d", &[], "").await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = gw.get("/v1/users/d").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(header(&r, "x-sync"), "pending");
    let writes = buffered(&gw).await;
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].value, None);
    assert_eq!(db.reads(), 1);
}

#[tokio::test]
async fn if_match_guards_writes() {
    let db = Db::start().await;
    db.seed("users", "m", serde_json::json!(1), 4).await;
    let gw = Gw::start("gw-ifmatch", &db, &[]).await;
    let r = gw
        .send("PUT", "/v1/users/m", &[JSON, ("if-match", "\"v3\"")], "2")
        .await;
    assert_eq!(r.status, 412, "{r:?}");
    assert_eq!(json(&r)["error"], "precondition_failed");
    assert!(buffered(&gw).await.is_empty(), "nothing stored on 412");
    let r = gw
        .send("PUT", "/v1/users/m", &[JSON, ("if-match", "\"v4\"")], "2")
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let etag = header(&r, "etag").to_owned();
    let r = gw
        .send("DELETE", "/v1/users/m", &[("if-match", "\"v4\"")], "")
        .await;
    assert_eq!(r.status, 412, "{r:?}");
    let r = gw
        .send(
            "PATCH",
            "/v1/users/m",
            &[JSON, ("if-match", etag.as_str())],
            "3",
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = gw
        .send("PUT", "/v1/users/absent", &[JSON, ("if-match", "*")], "1")
        .await;
    assert_eq!(r.status, 412, "{r:?}");
    assert_eq!(json(&gw.get("/v1/users/m").await), 3);
}

#[tokio::test]
async fn a_full_buffer_refuses_writes_with_503_and_retry_after() {
    let db = Db::start().await;
    let gw = Gw::start("gw-backpressure", &db, &[("max_buffered_writes", "3")]).await;
    for i in 0..3 {
        let r = gw.put(&format!("/v1/users/k{i}"), "1").await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    let r = gw.put("/v1/users/k3", "1").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(json(&r)["error"], "backpressure");
    assert!(
        header(&r, "retry-after").parse::<u64>().unwrap_or(0) >= 1,
        "{r:?}"
    );
    assert_eq!(
        buffered(&gw).await.len(),
        3,
        "the refused write is not stored"
    );
    assert_eq!(gw.get("/v1/users/k3").await.status, 404);
}

#[tokio::test]
async fn too_many_buffered_bytes_or_too_old_writes_refuse_writes() {
    let db = Db::start().await;
    let gw = Gw::start("gw-bp-bytes", &db, &[("max_buffered_bytes", "10")]).await;
    let r = gw
        .put("/v1/users/k", r#""a value longer than ten bytes""#)
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    let gw = Gw::start("gw-bp-age", &db, &[("max_dirty_age", "100ms")]).await;
    assert_eq!(gw.put("/v1/users/k", "1").await.status, 202);
    wait(300).await;
    let r = gw.put("/v1/users/k", "2").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(json(&gw.get("/v1/users/k").await), 1);
}

#[tokio::test]
async fn concurrent_writers_to_one_key_keep_every_write_and_agree_on_the_winner() {
    const WRITERS: usize = 16;
    let db = Db::start().await;
    let gw = Gw::start("gw-concurrent", &db, &[]).await;
    let url = gw.url("/v1/race/key");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                crate::support::send("PUT", &url, &[JSON], &format!(r#"{{"writer": {i}}}"#)).await
            })
        })
        .collect();
    let mut etags = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 202, "{r:?}");
        etags.push(header(&r, "etag").to_owned());
    }
    let writes = buffered(&gw).await;
    assert_eq!(
        writes.len(),
        WRITERS,
        "every acknowledged write is buffered"
    );
    let mut writers: Vec<i64> = writes
        .iter()
        .map(|w| {
            w.value
                .as_ref()
                .and_then(|v| v["writer"].as_i64())
                .expect("writer")
        })
        .collect();
    writers.sort_unstable();
    assert_eq!(writers, (0..WRITERS as i64).collect::<Vec<_>>());
    let coalesced = coalesce(writes);
    assert_eq!(coalesced.len(), 1);
    assert_eq!(coalesced[0].covers.len(), WRITERS);
    let winner = &coalesced[0].winner;
    // The entry shows the last writer by stamp, the same one the flush will deliver.
    let entry = envelope::decode(&gw.raw("c:race:key").await.expect("entry")).expect("decodes");
    assert_eq!(entry.dirty.map(|d| d.stamp), Some(winner.stamp));
    let r = gw.get("/v1/race/key").await;
    assert_eq!(Some(json(&r)), winner.value);
    assert_eq!(header(&r, "etag"), format!("\"w{}\"", winner.stamp));
    assert!(etags.contains(&format!("\"w{}\"", winner.stamp)));
}
