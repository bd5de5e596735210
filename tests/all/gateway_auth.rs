//! Access through the host: the cache serves a caller only what the DB API would serve it and
//! buffers only the writes the DB API would accept from it, against the reference DB API with
//! its users and access rules on (`alice` and `bob`; `sessions` owner-only, `profiles` read by
//! anyone signed in and written by the owner, `public` read by anyone).

use std::time::{Duration, Instant};

use db_api::auth::DEMO_USERS;

use crate::gateway_support::*;
use crate::support::*;

const AUTH_KEY: &str = "e2e-auth-key-0123456789";
const ADMIN: &str = "e2e-admin-token";

fn bearer(user: &str) -> String {
    let token = DEMO_USERS
        .iter()
        .find(|(name, _)| *name == user)
        .map(|(_, t)| *t)
        .expect("a demo user");
    format!("Bearer {token}")
}

async fn gateway(tag: &str, db: &Db, extra: &[(&str, &str)]) -> Gw {
    Gw::start_with_auth(tag, db, AUTH_KEY, ADMIN, extra).await
}

async fn get_as(gw: &Gw, path: &str, user: Option<&str>) -> Reply {
    match user {
        Some(u) => gw.get_with(path, &[("authorization", &bearer(u))]).await,
        None => gw.get(path).await,
    }
}

async fn put_as(gw: &Gw, path: &str, body: &str, user: Option<&str>) -> Reply {
    let auth = user.map(bearer);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    gw.send("PUT", path, &headers, body).await
}

/// Every key and value in the store, as text.
fn store_text(gw: &Gw) -> String {
    let conn = gw.kv_file();
    let mut stmt = conn
        .prepare("SELECT key, value FROM spin_key_value WHERE store = 'default'")
        .expect("query");
    let rows = stmt
        .query_map([], |row| {
            let k: String = row.get(0)?;
            let v: Vec<u8> = row.get(1)?;
            Ok(format!("{k}={}", String::from_utf8_lossy(&v)))
        })
        .expect("rows");
    rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_entry_is_served_to_its_caller_alone() {
    let db = Db::start_with_auth().await;
    db.seed("sessions", "alice:1", serde_json::json!({"cart": 3}), 1)
        .await;
    let gw = gateway("auth-private", &db, &[("ttl", "1s"), ("stale_ttl", "60s")]).await;
    let path = "/v1/sessions/alice:1";

    // Cold, under concurrent misses from all three callers: only alice gets the value.
    let mut calls = tokio::task::JoinSet::new();
    for who in ["alice", "bob", "anon"].repeat(6) {
        let url = gw.url(path);
        let auth = (who != "anon").then(|| bearer(who));
        calls.spawn(async move {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            (who, send("GET", &url, &headers, "").await)
        });
    }
    for (who, r) in calls.join_all().await {
        let expected = match who {
            "alice" => 200,
            "bob" => 403,
            _ => 401,
        };
        assert_eq!(r.status, expected, "{who}: {r:?}");
        if expected != 200 {
            assert!(!r.body.contains("cart"), "{who} saw it: {r:?}");
            assert!(
                header(&r, "www-authenticate").starts_with("Bearer"),
                "{r:?}"
            );
        }
    }

    // Filled: alice hits her own entry, marked private for any cache downstream.
    let r = get_as(&gw, path, Some("alice")).await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "HIT"), "{r:?}");
    assert!(header(&r, "cache-control").starts_with("private"), "{r:?}");
    let r = get_as(&gw, path, Some("bob")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(get_as(&gw, path, None).await.status, 401);

    // Stale: still never served to the others.
    wait(1_100).await;
    let r = get_as(&gw, path, Some("alice")).await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "STALE"), "{r:?}");
    let r = get_as(&gw, path, Some("bob")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!r.body.contains("cart"));

    // Nothing in the store names a credential.
    let text = store_text(&gw);
    for (user, token) in DEMO_USERS {
        assert!(!text.contains(token), "{user}'s token is stored: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_origin_would_refuse_is_refused_and_nothing_is_buffered() {
    let db = Db::start_with_auth().await;
    let gw = gateway("auth-write", &db, &[]).await;
    let r = put_as(&gw, "/v1/sessions/alice:1", r#"{"cart":9}"#, Some("bob")).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = put_as(&gw, "/v1/sessions/alice:1", r#"{"cart":9}"#, None).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = put_as(&gw, "/v1/public/notice", r#""hi""#, None).await;
    assert_eq!(
        r.status, 401,
        "anonymous writes are refused by default: {r:?}"
    );
    assert_eq!(gw.buffered_count(), 0);

    let r = put_as(&gw, "/v1/sessions/alice:1", r#"{"cart":9}"#, Some("alice")).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(gw.buffered_count(), 1);
    // Read-your-writes for alice; bob is not served the buffered value.
    let r = get_as(&gw, "/v1/sessions/alice:1", Some("alice")).await;
    assert_eq!((r.status, json(&r)), (200, serde_json::json!({"cart": 9})));
    let r = get_as(&gw, "/v1/sessions/alice:1", Some("bob")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!r.body.contains("cart"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_credential_stops_reads_and_writes_within_grant_ttl() {
    let db = Db::start_with_auth().await;
    db.seed("profiles", "alice", serde_json::json!({"name": "A"}), 1)
        .await;
    let grant_ttl = Duration::from_secs(1);
    let gw = gateway(
        "auth-revoke",
        &db,
        &[("auth_mode", "grant"), ("grant_ttl", "1s"), ("ttl", "60s")],
    )
    .await;
    assert_eq!(
        get_as(&gw, "/v1/profiles/alice", Some("alice"))
            .await
            .status,
        200
    );
    let r = get_as(&gw, "/v1/profiles/alice", Some("bob")).await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "HIT"), "{r:?}");
    assert_eq!(
        put_as(&gw, "/v1/profiles/alice", r#"{"name":"B"}"#, Some("alice"))
            .await
            .status,
        202
    );

    db.revoke("alice");
    let revoked_at = Instant::now();
    let refused = eventually(grant_ttl * 3, async || {
        let read = get_as(&gw, "/v1/profiles/alice", Some("alice"))
            .await
            .status;
        let write = put_as(&gw, "/v1/profiles/alice", r#"{"name":"C"}"#, Some("alice"))
            .await
            .status;
        read == 401 && write == 401
    })
    .await;
    assert!(
        refused,
        "alice is still served after {:?}",
        revoked_at.elapsed()
    );
    assert!(
        revoked_at.elapsed() < grant_ttl + Duration::from_millis(900),
        "revocation took {:?}",
        revoked_at.elapsed()
    );
    // Bob, unaffected, is still served.
    assert_eq!(
        get_as(&gw, "/v1/profiles/alice", Some("bob")).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_principal_is_revoked_before_the_flush_is_dead_lettered() {
    let db = Db::start_with_auth().await;
    let gw = gateway("auth-flush", &db, &[]).await;
    let r = put_as(&gw, "/v1/sessions/alice:2", r#"{"cart":1}"#, Some("alice")).await;
    assert_eq!(r.status, 202, "{r:?}");
    db.revoke("alice");
    let admin = format!("Bearer {ADMIN}");
    let r = gw
        .send("POST", "/admin/flush", &[("authorization", &admin)], "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    db.restore("alice");
    assert_eq!(db.item("sessions", "alice:2").await, None, "not applied");
    let dlq = gw
        .send("GET", "/admin/dlq", &[("authorization", &admin)], "")
        .await;
    let letters = json(&dlq);
    assert!(
        letters.to_string().contains("forbidden"),
        "dead-lettered as forbidden: {letters}"
    );
    assert_eq!(gw.buffered_count(), 0);
    // The refused value left the cache: alice reads the DB API's truth (nothing).
    let r = get_as(&gw, "/v1/sessions/alice:2", Some("alice")).await;
    assert_eq!(r.status, 404, "{r:?}");
}

/// A token from the reference DB API's test issuer (`POST /_jwt`).
async fn issued(db: &Db, claims: serde_json::Value) -> String {
    let r = send(
        "POST",
        &format!("{}/_jwt", db.url()),
        &[("content-type", "application/json")],
        &claims.to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    json(&r)["token"].as_str().expect("a token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_jwt_mode_only_verifying_tokens_pass_and_the_rules_decide() {
    let db = Db::start_with_auth().await;
    db.seed("sessions", "alice:1", serde_json::json!({"cart": 1}), 1)
        .await;
    let jwks = get(&format!("{}/_jwks", db.url())).await.body;
    let rules = r#"{"sessions":{"read":"owner","write":"owner"},"public":{"read":"anyone","write":"signed-in"}}"#;
    let gw = gateway(
        "auth-jwt",
        &db,
        &[
            ("auth_mode", "jwt"),
            ("jwt_jwks", &jwks),
            ("jwt_issuer", "cache-sync-db-api"),
            ("jwt_audience", "cache-sync"),
            ("auth_rules", rules),
        ],
    )
    .await;
    let path = "/v1/sessions/alice:1";
    let as_token = |t: String| format!("Bearer {t}");
    let good = as_token(issued(&db, serde_json::json!({"sub": "alice", "alg": "ES256"})).await);
    let r = gw.get_with(path, &[("authorization", &good)]).await;
    assert_eq!(
        (r.status, json(&r)),
        (200, serde_json::json!({"cart": 1})),
        "{r:?}"
    );
    let r = gw
        .send(
            "PUT",
            path,
            &[
                ("authorization", &good),
                ("content-type", "application/json"),
            ],
            "2",
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");

    let bob = as_token(issued(&db, serde_json::json!({"sub": "bob", "alg": "RS256"})).await);
    assert_eq!(
        gw.get_with(path, &[("authorization", &bob)]).await.status,
        403
    );
    assert_eq!(gw.get(path).await.status, 401);

    let expired =
        as_token(issued(&db, serde_json::json!({"sub": "alice", "ttl_secs": -600})).await);
    let wrong_audience = as_token(
        issued(
            &db,
            serde_json::json!({"sub": "alice", "aud": "someone-else"}),
        )
        .await,
    );
    let forged = {
        let (rest, sig) = good.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{rest}.{flipped}{}", &sig[1..])
    };
    let payload = good.split('.').nth(1).unwrap().to_owned();
    let unsigned = format!("Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for (name, bad) in [
        ("expired", &expired),
        ("wrong audience", &wrong_audience),
        ("forged", &forged),
        ("alg none", &unsigned),
    ] {
        let r = gw.get_with(path, &[("authorization", bad)]).await;
        assert_eq!(r.status, 401, "{name}: {r:?}");
        assert!(!r.body.contains("cart"), "{name}");
        let r = gw
            .send(
                "PUT",
                path,
                &[("authorization", bad), ("content-type", "application/json")],
                "3",
            )
            .await;
        assert_eq!(r.status, 401, "{name}: {r:?}");
    }
    assert_eq!(gw.buffered_count(), 1, "only alice's write");
}
