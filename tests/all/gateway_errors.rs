//! Every error status of the gateway, each as a JSON `{"error", "message"}` body, with
//! nothing stored for a rejected request.

use std::io::{Read, Write};

use crate::gateway_support::*;

const JSON: (&str, &str) = ("content-type", "application/json");

fn assert_error(r: &crate::support::Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let body = json(r);
    assert_eq!(body["error"], code, "{r:?}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{r:?}"
    );
    assert_eq!(header(r, "content-type"), "application/json");
}

#[tokio::test]
async fn bad_requests_get_their_status_and_store_nothing() {
    let db = Db::start().await;
    let gw = Gw::start("gw-errors", &db, &[("max_value_bytes", "100")]).await;
    let long_key = "k".repeat(201);
    let long_ns = "n".repeat(64);
    let fits_alone = "k".repeat(190);
    for path in [
        "/v1/Users/a".to_owned(),
        "/v1/us.ers/a".to_owned(),
        format!("/v1/{}/a", "n".repeat(65)),
        format!("/v1/users/{long_key}"),
        "/v1/users/%zz".to_owned(),
        "/v1/users/a%01b".to_owned(),
        "/v1/users/%ff".to_owned(),
        format!("/v1/{long_ns}/{fits_alone}"),
    ] {
        assert_error(&gw.get(&path).await, 400, "bad_key");
        assert_error(&gw.put(&path, "1").await, 400, "bad_key");
    }
    assert_error(&gw.put("/v1/users/a", "{not json").await, 400, "bad_json");
    assert_error(
        &gw.send("PATCH", "/v1/users/a", &[JSON], "[1,").await,
        400,
        "bad_json",
    );
    assert_error(&gw.get("/nowhere").await, 404, "not_found");
    let r = gw.send("POST", "/v1/users/a", &[JSON], "1").await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(header(&r, "allow"), "GET, PUT, PATCH, DELETE");
    let r = gw.send("POST", "/healthz", &[], "").await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(header(&r, "allow"), "GET");
    assert_error(
        &gw.send("PUT", "/v1/users/a", &[("content-type", "text/plain")], "1")
            .await,
        415,
        "unsupported_media_type",
    );
    assert_error(
        &gw.send("PUT", "/v1/users/a", &[], "1").await,
        415,
        "unsupported_media_type",
    );
    let big = format!("\"{}\"", "x".repeat(200));
    assert_error(&gw.put("/v1/users/a", &big).await, 413, "too_large");
    assert_error(
        &gw.send("PATCH", "/v1/users/a", &[JSON], &big).await,
        413,
        "too_large",
    );
    let stored: Vec<String> = gw_keys(&gw);
    assert!(
        stored
            .iter()
            .all(|k| !k.starts_with("w:") && !k.starts_with("c:")),
        "{stored:?}"
    );
}

fn gw_keys(gw: &Gw) -> Vec<String> {
    let conn = gw.kv_file();
    let mut stmt = conn
        .prepare("SELECT key FROM spin_key_value WHERE store = 'default'")
        .expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[tokio::test]
async fn a_write_without_content_length_gets_411() {
    let db = Db::start().await;
    let gw = Gw::start("gw-411", &db, &[]).await;
    let url = gw.url("/");
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&authority).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "PUT /v1/users/a HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("join");
    assert!(reply.starts_with("HTTP/1.1 411"), "{reply}");
    assert!(reply.contains("length_required"), "{reply}");
}

#[tokio::test]
async fn invalid_configuration_is_a_500_naming_the_variable() {
    let db = Db::start().await;
    let gw = Gw::start("gw-config", &db, &[("ttl", "soon")]).await;
    let r = gw.get("/v1/users/a").await;
    assert_error(&r, 500, "config_invalid");
    assert!(
        json(&r)["message"].as_str().unwrap_or("").contains("ttl"),
        "{r:?}"
    );
    let r = gw.put("/v1/users/a", "1").await;
    assert_error(&r, 500, "config_invalid");
    assert_error(&gw.get("/healthz").await, 500, "config_invalid");
    assert_eq!(db.reads(), 0);
}

#[tokio::test]
async fn healthz_answers_ok() {
    let db = Db::start().await;
    let gw = Gw::start("gw-healthz", &db, &[]).await;
    let r = gw.get("/healthz").await;
    assert_eq!((r.status, json(&r)["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn an_origin_garbage_answer_is_a_502() {
    let db = Db::start().await;
    db.seed("users", "g", serde_json::json!(1), 1).await;
    let gw = Gw::start("gw-garbage", &db, &[]).await;
    db.set_faults(db_api::faults::FaultConfig {
        garbage: db_api::faults::Trigger {
            next: 1,
            ..Default::default()
        },
        garbage_kind: db_api::faults::GarbageKind::Html,
        ..Default::default()
    });
    assert_error(&gw.get("/v1/users/g").await, 502, "origin_error");
    assert!(gw.raw("c:users:g").await.is_none(), "nothing cached");
}
