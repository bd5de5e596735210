//! What the browser client relies on, over HTTP against the real gateway: `Idempotency-Key`
//! (a repeat answers the first result and buffers nothing; reuse for another request is
//! refused) and long-poll reads (`?wait=N` with `If-None-Match` answers a change, `304`
//! otherwise, and refuses a wait out of bounds).

use std::time::{Duration, Instant};

use crate::gateway_support::*;
use crate::support::*;

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn an_idempotent_repeat_answers_the_first_result_and_buffers_nothing() {
    let db = Db::start().await;
    let gw = Gw::start("gw-idem", &db, &[]).await;
    let key = ("idempotency-key", "0b6f3c1e-9a2d-4f1e-8c7b-5d4e3f2a1b0c");
    let first = gw
        .send("PUT", "/v1/users/alice", &[JSON, key], r#"{"v":1}"#)
        .await;
    assert_eq!(first.status, 202, "{first:?}");
    let again = gw
        .send("PUT", "/v1/users/alice", &[JSON, key], r#"{"v":1}"#)
        .await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(header(&again, "etag"), header(&first, "etag"));
    assert_eq!(header(&again, "idempotent-replayed"), "true");
    assert_eq!(gw.buffered_count(), 1);

    let other = gw
        .send("PUT", "/v1/users/alice", &[JSON, key], r#"{"v":2}"#)
        .await;
    assert_eq!(other.status, 422, "{other:?}");
    assert_eq!(json(&other)["error"], "idempotency_key_reused");
    let bad = gw
        .send(
            "PUT",
            "/v1/users/alice",
            &[JSON, ("idempotency-key", "")],
            "1",
        )
        .await;
    assert_eq!(
        (bad.status, json(&bad)["error"].as_str()),
        (400, Some("bad_request"))
    );
    assert_eq!(gw.buffered_count(), 1, "refused requests buffered nothing");
}

#[tokio::test]
async fn a_long_poll_answers_a_change_and_times_out_with_304() {
    let db = Db::start().await;
    db.seed("users", "alice", serde_json::json!({"v": 1}), 1)
        .await;
    let gw = Gw::start("gw-watch", &db, &[]).await;
    let first = gw.get("/v1/users/alice").await;
    let etag = header(&first, "etag").to_owned();

    // No change: 304 after the wait.
    let started = Instant::now();
    let r = gw
        .get_with("/v1/users/alice?wait=1", &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status, 304, "{r:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A write during the wait answers it with the new value.
    let url = gw.url("/v1/users/alice?wait=8");
    let inm = etag.clone();
    let poll = tokio::spawn(async move { send("GET", &url, &[("if-none-match", &inm)], "").await });
    wait(600).await;
    let started = Instant::now();
    assert_eq!(gw.put("/v1/users/alice", r#"{"v":2}"#).await.status, 202);
    let r = poll.await.expect("join");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(json(&r)["v"], 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    for bad in [
        "/v1/users/alice?wait=26",
        "/v1/users/alice?wait=x",
        "/v1/users/alice?w=1",
    ] {
        let r = gw.get(bad).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    assert_eq!(
        json(&gw.get("/v1/users/alice?wait=26").await)["error"],
        "bad_wait"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_write_buffer_it_once() {
    // Sixteen copies of one write with one key at once, each in its own instance: one is
    // buffered; the others are replays of it or told to retry (409).
    let db = Db::start().await;
    let gw = Gw::start("gw-idem-race", &db, &[]).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = gw.url("/v1/users/race");
        tasks.push(tokio::spawn(async move {
            let key = ("idempotency-key", "race-7d1e2c3b");
            send("PUT", &url, &[JSON, key], r#"{"v":"once"}"#).await
        }));
    }
    let mut etags = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.expect("join");
        match r.status {
            202 => {
                etags.insert(header(&r, "etag").to_owned());
            }
            409 => assert_eq!(json(&r)["error"], "idempotency_in_progress"),
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert_eq!(etags.len(), 1, "every 202 names the same write: {etags:?}");
    assert_eq!(gw.buffered_count(), 1);
}
