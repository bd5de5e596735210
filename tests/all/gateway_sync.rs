//! What the browser client relies on, over HTTP against the real gateway: `Idempotency-Key`
//! (a repeat answers the first result and buffers nothing; reuse for another request is
//! refused).

use crate::gateway_support::*;

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
