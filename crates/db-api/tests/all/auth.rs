//! Auth on: who may read and write what, `/v1/authorize`, the batch re-check, `Cache-Control`,
//! revocation and the test JWT issuer. Auth off: what stays as before.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use db_api::auth::AuthSettings;
use db_api::{AppState, Settings};
use serde_json::{json, Value};

use crate::support::*;

const SERVICE: &str = "service-token-for-tests";
const ALICE: &str = "demo-token-for-alice";
const BOB: &str = "demo-token-for-bob";

fn settings_on() -> Settings {
    Settings {
        token: Some(SERVICE.into()),
        auth: AuthSettings::on(),
        ..Settings::default()
    }
}

fn auth_app() -> (Router, AppState) {
    sqlite_app(settings_on())
}

fn with_token(
    mut builder: axum::http::request::Builder,
    token: Option<&str>,
) -> axum::http::request::Builder {
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    builder
}

async fn get_as(app: &Router, path: &str, token: Option<&str>) -> Answer {
    send(
        app,
        with_token(Request::get(path), token)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn authorize_as(app: &Router, token: Option<&str>, body: Value) -> Answer {
    let request = with_token(Request::post("/v1/authorize"), token)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, request).await
}

async fn batch_as(app: &Router, token: Option<&str>, id: &str, writes: Value) -> Answer {
    let mut request = batch_request(id, writes);
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    send(app, request).await
}

/// `write` made on behalf of `principal`.
fn for_principal(mut write: Value, principal: &str) -> Value {
    write["on_behalf_of"] = json!(principal);
    write
}

async fn seed(app: &Router, items: Value) {
    let a = post_json(app, "/_seed", json!({ "items": items })).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
}

/// The item of `ns` owned by alice in the matrix below.
fn alice_key(ns: &str) -> &'static str {
    match ns {
        "sessions" => "alice:web",
        "profiles" => "alice",
        _ => "alice:note",
    }
}

#[tokio::test]
async fn the_demo_acl_matrix_holds_for_reads_authorize_and_batch_writes() {
    let (app, _) = auth_app();
    let namespaces = ["sessions", "profiles", "public", "other"];
    seed(
        &app,
        json!(namespaces
            .iter()
            .map(|ns| json!({"ns": ns, "key": alice_key(ns), "value": {"of": "alice"}}))
            .collect::<Vec<_>>()),
    )
    .await;
    // Expected statuses, per caller and namespace: (read, write). 200 allowed, 401 sign in,
    // 403 forbidden.
    let callers: [(&str, Option<&str>); 3] = [
        ("anonymous", None),
        ("alice", Some(ALICE)),
        ("bob", Some(BOB)),
    ];
    let expected = |caller: &str, ns: &str| -> (u16, u16) {
        match (caller, ns) {
            ("anonymous", "public") => (200, 401),
            ("anonymous", _) => (401, 401),
            ("alice", _) => (200, 200),
            ("bob", "sessions" | "other") => (403, 403),
            ("bob", "profiles") => (200, 403),
            ("bob", "public") => (200, 200),
            _ => unreachable!(),
        }
    };
    let mut batch_no = 0;
    for (name, token) in callers {
        for ns in namespaces {
            let key = alice_key(ns);
            let (read, write) = expected(name, ns);
            let what = format!("{name} {ns}/{key}");

            let a = get_as(&app, &format!("/v1/items/{ns}/{key}"), token).await;
            assert_eq!(a.status.as_u16(), read, "GET as {what}: {:?}", a.body);
            if read == 200 {
                // Seeded, or written by an earlier caller of this matrix.
                assert!(a.json().is_object(), "{what}");
            }
            check_refusal(&a, &what);

            for (op, status) in [("read", read), ("write", write)] {
                let a = authorize_as(&app, token, json!({"ns": ns, "key": key, "op": op})).await;
                assert_eq!(
                    a.status.as_u16(),
                    status,
                    "authorize {op} as {what}: {:?}",
                    a.body
                );
                if status == 200 {
                    assert_eq!(a.json(), json!({"principal": name}), "{what}");
                }
                check_refusal(&a, &what);
            }

            batch_no += 1;
            let version = 10 + batch_no;
            let w = for_principal(put(ns, key, json!({"by": name}), version), name);
            let a = batch_as(&app, Some(SERVICE), &format!("b{batch_no}"), json!([w])).await;
            if write == 200 {
                assert_eq!(statuses(&a), ["applied"], "batch write for {what}");
            } else {
                assert_eq!(statuses(&a), ["rejected"], "batch write for {what}");
                assert_eq!(a.json()["results"][0]["reason"], "forbidden", "{what}");
            }
        }
    }
    let s = stats(&app).await;
    // Forbidden batch writes: anonymous ×4 namespaces, bob ×3.
    assert_eq!(s.counters.writes_forbidden, 7);
    assert_eq!(s.counters.writes_rejected, 7);
    assert_eq!(s.counters.writes_applied, 5);
    assert_eq!(s.counters.authorize_calls, 24);
    assert_eq!(s.counters.authorize_denied, 12);
}

/// A `401` carries `WWW-Authenticate: Bearer` (no credential) and a `403` says
/// `insufficient_scope`; both have a JSON error body.
fn check_refusal(a: &Answer, what: &str) {
    match a.status {
        StatusCode::UNAUTHORIZED => {
            assert_eq!(a.header("www-authenticate"), Some("Bearer"), "{what}");
            assert_eq!(a.code(), "unauthorized", "{what}");
            assert!(a.json()["message"].is_string(), "{what}");
        }
        StatusCode::FORBIDDEN => {
            assert_eq!(
                a.header("www-authenticate"),
                Some("Bearer error=\"insufficient_scope\""),
                "{what}"
            );
            assert_eq!(a.code(), "forbidden", "{what}");
            assert!(a.json()["message"].is_string(), "{what}");
        }
        _ => {}
    }
}

#[tokio::test]
async fn credentials_that_name_no_one_are_invalid_tokens_even_where_anyone_may_read() {
    let (app, state) = auth_app();
    state.auth.set_revoked("bob", true).unwrap();
    for auth in [
        "Bearer nobody-has-this-token",
        "Bearer demo-token-for-bo",
        "Basic YWxpY2U6cHc=",
        "Bearer",
        "Bearer a b",
        "Bearer demo-token-for-bob",
        "Bearer not.a.jwt",
    ] {
        let a = send(
            &app,
            Request::get("/v1/items/public/x")
                .header("authorization", auth)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(a.code(), "invalid_token", "{auth}");
        assert_eq!(
            a.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{auth}"
        );
        let a = send(
            &app,
            Request::post("/v1/authorize")
                .header("authorization", auth)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"ns":"public","key":"x","op":"read"}"#))
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth}");
    }
    // The scheme is case-insensitive.
    let a = send(
        &app,
        Request::get("/v1/items/sessions/alice")
            .header("authorization", format!("bearer {ALICE}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let s = stats(&app).await.counters;
    assert_eq!((s.unauthorized, s.item_reads), (14, 1));
}

#[tokio::test]
async fn authorize_names_the_principal_and_refuses_bad_input_with_400() {
    let (app, _) = auth_app();
    let ask = |ns: &str, key: &str, op: &str| json!({"ns": ns, "key": key, "op": op});
    let a = authorize_as(&app, Some(SERVICE), ask("sessions", "alice:1", "write")).await;
    assert_eq!(a.json(), json!({"principal": "service"}));
    let a = authorize_as(&app, None, ask("public", "notice", "read")).await;
    assert_eq!(a.json(), json!({"principal": "anonymous"}));
    let a = authorize_as(&app, Some(ALICE), ask("sessions", "alice", "write")).await;
    assert_eq!(a.json(), json!({"principal": "alice"}));
    // Ownership is the name or its `name:` prefix, nothing looser.
    for key in ["alice2", "alicex:1", "bob:alice", "ali"] {
        let a = authorize_as(&app, Some(ALICE), ask("sessions", key, "read")).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{key}");
    }

    let bad = [
        (
            json!({"ns": "Sessions", "key": "k", "op": "read"}),
            "bad_request",
        ),
        (
            json!({"ns": "sessions", "key": "", "op": "read"}),
            "bad_request",
        ),
        (
            json!({"ns": "sessions", "key": "a\u{1}b", "op": "read"}),
            "bad_request",
        ),
        (
            json!({"ns": "sessions", "key": ".", "op": "read"}),
            "bad_request",
        ),
        (
            json!({"ns": "sessions", "key": "k", "op": "delete"}),
            "bad_json",
        ),
        (json!({"ns": "sessions", "key": "k"}), "bad_json"),
        (json!({"ns": 1, "key": "k", "op": "read"}), "bad_json"),
        (json!(["sessions", "k", "read"]), "bad_json"),
    ];
    for (body, code) in bad {
        let a = authorize_as(&app, Some(ALICE), body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.code(), code, "{body}");
        assert!(a.json()["message"].is_string());
    }
    let a = send(
        &app,
        Request::post("/v1/authorize")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_json")
    );
    let a = send(
        &app,
        Request::post("/v1/authorize")
            .header("content-type", "text/plain")
            .body(Body::from(ask("public", "k", "read").to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = get(&app, "/v1/authorize").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let s = stats(&app).await.counters;
    assert_eq!((s.authorize_calls, s.authorize_denied), (17, 4));
    assert_eq!(s.item_reads, 0);
}

#[tokio::test]
async fn only_the_service_token_sends_batches() {
    let (app, _) = auth_app();
    let w = json!([put("public", "alice:note", json!(1), 1)]);
    let a = batch_as(&app, None, "b", w.clone()).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    let a = batch_as(&app, Some(ALICE), "b", w.clone()).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let a = batch_as(&app, Some("wrong-token"), "b", w.clone()).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    let s = stats(&app).await;
    assert_eq!(
        (s.counters.batch_requests, s.rows, s.stored_batches),
        (0, 0, 0)
    );
    assert_eq!((s.counters.unauthorized, s.counters.forbidden), (2, 1));
    // The service's own write (no on_behalf_of) is applied under any rule.
    let a = batch_as(
        &app,
        Some(SERVICE),
        "b",
        json!([put("sessions", "bob:1", json!(1), 1)]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied"]);
    // With no service token at all, nobody sends batches.
    let (app, _) = sqlite_app(Settings {
        token: None,
        ..settings_on()
    });
    let a = batch_as(&app, None, "b", json!([])).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = batch_as(&app, Some(SERVICE), "b", json!([])).await;
    assert_eq!(a.code(), "invalid_token");
}

#[tokio::test]
async fn a_write_on_behalf_of_a_revoked_user_is_forbidden_and_not_applied() {
    let (app, _) = auth_app();
    let note = |v: u64| put("sessions", "alice:s1", json!({"v": v}), v);
    // Allowed when the cache asked.
    let a = authorize_as(
        &app,
        Some(ALICE),
        json!({"ns": "sessions", "key": "alice:s1", "op": "write"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    // Revoked before the flush.
    let a = post_json(&app, "/_auth/revoke", json!({"user": "alice"})).await;
    assert_eq!(a.json(), json!({"user": "alice", "revoked": true}));
    assert_eq!(
        get_as(&app, "/v1/items/public/x", Some(ALICE)).await.code(),
        "invalid_token"
    );
    let writes = json!([
        for_principal(note(1), "alice"),
        for_principal(put("sessions", "carol:1", json!(1), 1), "carol"),
        for_principal(put("public", "x", json!(1), 1), "anonymous"),
        for_principal(put("public", "y", json!(1), 1), "bob"),
        for_principal(put("public", "z", json!(1), 1), "service"),
        put("sessions", "alice:s2", json!(1), 1),
    ]);
    let first = batch_as(&app, Some(SERVICE), "b1", writes.clone()).await;
    assert_eq!(
        statuses(&first),
        ["rejected", "rejected", "rejected", "applied", "applied", "applied"]
    );
    for i in 0..3 {
        assert_eq!(first.json()["results"][i]["reason"], "forbidden", "{i}");
    }
    let s = stats(&app).await;
    assert_eq!(
        (s.counters.writes_forbidden, s.counters.writes_rejected),
        (3, 3)
    );
    assert_eq!(
        (s.rows, s.stored_write_ids),
        (3, 3),
        "forbidden write ids are not kept"
    );
    let item = get_as(&app, "/v1/items/sessions/alice:s1", Some(SERVICE)).await;
    assert_eq!(item.status, StatusCode::NOT_FOUND, "not applied");
    // Resending the batch id answers the same, even after the user is restored.
    let a = post_json(&app, "/_auth/restore", json!({"user": "alice"})).await;
    assert_eq!(a.json(), json!({"user": "alice", "revoked": false}));
    let again = batch_as(&app, Some(SERVICE), "b1", writes).await;
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // The forbidden write's id was not kept: once allowed, it applies.
    let a = batch_as(
        &app,
        Some(SERVICE),
        "b2",
        json!([for_principal(note(1), "alice")]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied"]);
    // An applied write stays `duplicate` when it comes again after a revocation: the write-id
    // promise comes first.
    state_revoke(&app, "alice").await;
    let a = batch_as(
        &app,
        Some(SERVICE),
        "b3",
        json!([for_principal(note(1), "alice")]),
    )
    .await;
    assert_eq!(statuses(&a), ["duplicate"]);
    let a = batch_as(
        &app,
        Some(SERVICE),
        "b4",
        json!([for_principal(note(2), "alice")]),
    )
    .await;
    assert_eq!(statuses(&a), ["rejected"]);
    let item = get_as(&app, "/v1/items/sessions/alice:s1", Some(SERVICE)).await;
    assert_eq!(item.json(), json!({"v": 1}));
    // `/_reset` restores revoked users.
    let a = post_json(&app, "/_reset", json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        get_as(&app, "/v1/items/sessions/alice:s1", Some(ALICE))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn state_revoke(app: &Router, user: &str) {
    let a = post_json(app, "/_auth/revoke", json!({ "user": user })).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn revocation_routes_check_their_input() {
    let (app, _) = auth_app();
    let a = post_json(&app, "/_auth/revoke", json!({"user": "carol"})).await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    for body in [
        json!({}),
        json!({"user": 1}),
        json!({"user": "alice", "x": 1}),
        json!("alice"),
    ] {
        let a = post_json(&app, "/_auth/restore", body.clone()).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (StatusCode::BAD_REQUEST, "bad_json"),
            "{body}"
        );
    }
    let a = get(&app, "/_auth").await;
    assert_eq!(a.json()["auth"], "on");
    assert_eq!(a.json()["service_token"], true);
    assert_eq!(
        a.json()["users"],
        json!([{"name": "alice", "revoked": false}, {"name": "bob", "revoked": false}])
    );
    assert_eq!(
        a.json()["acl"]["profiles"],
        json!({"read": "signed-in", "write": "owner"})
    );
    assert_eq!(
        a.json()["acl"]["*"],
        json!({"read": "owner", "write": "owner"})
    );
    assert!(
        !a.body.windows(ALICE.len()).any(|w| w == ALICE.as_bytes()),
        "no tokens"
    );
}

#[tokio::test]
async fn item_reads_say_whether_shared_caches_may_store_them() {
    let (app, _) = auth_app();
    seed(
        &app,
        json!([
            {"ns": "public", "key": "n", "value": 1, "version": 4},
            {"ns": "profiles", "key": "alice", "value": 2},
            {"ns": "sessions", "key": "alice", "value": 3},
        ]),
    )
    .await;
    let cases = [
        ("/v1/items/public/n", None, StatusCode::OK, "public"),
        (
            "/v1/items/public/absent",
            None,
            StatusCode::NOT_FOUND,
            "public",
        ),
        (
            "/v1/items/profiles/alice",
            Some(BOB),
            StatusCode::OK,
            "private",
        ),
        (
            "/v1/items/profiles/absent",
            Some(BOB),
            StatusCode::NOT_FOUND,
            "private",
        ),
        (
            "/v1/items/sessions/alice",
            Some(ALICE),
            StatusCode::OK,
            "private",
        ),
        (
            "/v1/items/sessions/alice",
            Some(SERVICE),
            StatusCode::OK,
            "private",
        ),
        (
            "/v1/items/other/alice",
            Some(ALICE),
            StatusCode::NOT_FOUND,
            "private",
        ),
    ];
    for (path, token, status, cc) in cases {
        let a = get_as(&app, path, token).await;
        assert_eq!(a.status, status, "{path}");
        assert_eq!(a.header("cache-control"), Some(cc), "{path}");
    }
    let a = send(
        &app,
        Request::get("/v1/items/public/n")
            .header("if-none-match", "\"v4\"")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(a.header("cache-control"), Some("public"));

    // Auth off: everything is public; --max-age adds max-age.
    let (app, _) = sqlite_app(Settings {
        max_age: Some(30),
        ..Settings::default()
    });
    seed(
        &app,
        json!([{"ns": "sessions", "key": "alice", "value": 3}]),
    )
    .await;
    for path in ["/v1/items/sessions/alice", "/v1/items/sessions/bob"] {
        let a = get(&app, path).await;
        assert_eq!(
            a.header("cache-control"),
            Some("public, max-age=30"),
            "{path}"
        );
    }
    let (app, _) = sqlite_app(Settings {
        max_age: Some(0),
        ..settings_on()
    });
    let a = get_as(&app, "/v1/items/sessions/alice", Some(ALICE)).await;
    assert_eq!(a.header("cache-control"), Some("private, max-age=0"));
    // Refusals are not item answers.
    let a = get(&app, "/v1/items/sessions/alice").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("cache-control"), None);
}

#[tokio::test]
async fn with_auth_off_anyone_is_authorized_and_on_behalf_of_is_not_checked() {
    let (app, _) = sqlite_app(Settings {
        token: Some(SERVICE.into()),
        ..Settings::default()
    });
    let ask = json!({"ns": "sessions", "key": "bob:1", "op": "write"});
    for (token, principal) in [
        (None, "anonymous"),
        (Some(ALICE), "alice"),
        (Some(SERVICE), "service"),
        (Some("unknown-token"), "anonymous"),
    ] {
        let a = authorize_as(&app, token, ask.clone()).await;
        assert_eq!(a.json(), json!({"principal": principal}), "{token:?}");
    }
    // User tokens are not credentials for /v1/items with auth off: only the token is.
    assert_eq!(
        get_as(&app, "/v1/items/public/x", Some(ALICE)).await.code(),
        "unauthorized"
    );
    let a = batch_as(
        &app,
        Some(SERVICE),
        "b",
        json!([for_principal(
            put("sessions", "bob:1", json!(1), 1),
            "carol"
        )]),
    )
    .await;
    assert_eq!(statuses(&a), ["applied"]);
    assert_eq!(get(&app, "/_auth").await.json()["auth"], "off");
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    exp: u64,
    iat: u64,
}

async fn issue(app: &Router, body: Value) -> String {
    let a = post_json(app, "/_jwt", body.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{body}: {:?}", a.body);
    a.json()["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn issued_jwts_verify_against_the_jwks_and_are_credentials() {
    use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    let (app, _) = auth_app();
    seed(
        &app,
        json!([{"ns": "sessions", "key": "alice:web", "value": "s"}]),
    )
    .await;
    let a = get(&app, "/_jwks").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let jwks: JwkSet = serde_json::from_slice(&a.body).expect("a JWKS");
    let kinds: Vec<&str> = jwks
        .keys
        .iter()
        .map(|k| match &k.algorithm {
            AlgorithmParameters::RSA(_) => "RSA",
            AlgorithmParameters::EllipticCurve(_) => "EC",
            AlgorithmParameters::OctetKey(_) => "oct",
            AlgorithmParameters::OctetKeyPair(_) => "OKP",
        })
        .collect();
    assert_eq!(kinds, ["RSA", "EC", "oct"]);
    for (alg, algorithm) in [
        ("HS256", Algorithm::HS256),
        ("RS256", Algorithm::RS256),
        ("ES256", Algorithm::ES256),
    ] {
        let a = post_json(
            &app,
            "/_jwt",
            json!({"sub": "alice", "alg": alg, "ttl_secs": 60}),
        )
        .await;
        assert_eq!(a.json()["alg"], alg);
        let token = a.json()["token"].as_str().unwrap().to_owned();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm);
        let kid = header.kid.expect("kid");
        assert_eq!(a.json()["kid"], kid.as_str());
        let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&["cache-sync-db-api"]);
        validation.set_audience(&["cache-sync"]);
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(
            (
                data.claims.sub.as_str(),
                data.claims.iss.as_str(),
                data.claims.aud.as_str()
            ),
            ("alice", "cache-sync-db-api", "cache-sync")
        );
        assert_eq!(data.claims.exp, data.claims.iat + 60);
        // The API takes it as alice's credential.
        let r = get_as(&app, "/v1/items/sessions/alice:web", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{alg}: {:?}", r.body);
        let r = authorize_as(
            &app,
            Some(&token),
            json!({"ns": "sessions", "key": "alice:web", "op": "write"}),
        )
        .await;
        assert_eq!(r.json(), json!({"principal": "alice"}), "{alg}");
    }
    // Bob's token is bob's.
    let bob = issue(&app, json!({"sub": "bob", "alg": "ES256"})).await;
    assert_eq!(
        get_as(&app, "/v1/items/sessions/alice:web", Some(&bob))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Tokens that are not credentials here.
    let refused = [
        issue(&app, json!({"sub": "alice", "ttl_secs": -60})).await,
        issue(&app, json!({"sub": "alice", "aud": "someone-else"})).await,
        issue(
            &app,
            json!({"sub": "alice", "iss": "https://elsewhere.example"}),
        )
        .await,
        issue(&app, json!({"sub": "carol", "alg": "HS256"})).await,
        {
            // Signed with another secret.
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &json!({"sub": "alice", "iss": "cache-sync-db-api", "aud": "cache-sync", "exp": 4_000_000_000u64}),
                &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!"),
            )
            .unwrap()
        },
        {
            // A valid token with its payload changed.
            let t = issue(&app, json!({"sub": "bob"})).await;
            let alice = issue(&app, json!({"sub": "alice"})).await;
            let parts: Vec<&str> = t.split('.').collect();
            let alice_parts: Vec<&str> = alice.split('.').collect();
            format!("{}.{}.{}", parts[0], alice_parts[1], parts[2])
        },
    ];
    for token in &refused {
        let r = get_as(&app, "/v1/items/sessions/alice:web", Some(token)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{token}"
        );
    }
    // A revoked user's JWTs stop working too.
    let token = issue(&app, json!({"sub": "alice"})).await;
    state_revoke(&app, "alice").await;
    let r = get_as(&app, "/v1/items/sessions/alice:web", Some(&token)).await;
    assert_eq!(r.code(), "invalid_token");
}

#[tokio::test]
async fn the_jwt_issuer_refuses_bad_requests_with_400() {
    let (app, _) = auth_app();
    for body in [
        json!({}),
        json!({"sub": ""}),
        json!({"sub": "a\u{0}b"}),
        json!({"sub": "x".repeat(257)}),
        json!({"sub": "alice", "alg": "none"}),
        json!({"sub": "alice", "alg": "HS512"}),
        json!({"sub": "alice", "ttl_secs": 400_000_000}),
        json!({"sub": "alice", "ttl_secs": "60"}),
        json!({"sub": "alice", "aud": ""}),
        json!({"sub": "alice", "scope": "admin"}),
    ] {
        let a = post_json(&app, "/_jwt", body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.body);
        assert!(a.json()["message"].is_string(), "{body}");
    }
    let a = send(&app, Request::post("/_jwt").body(Body::from("{")).unwrap()).await;
    assert_eq!(a.code(), "bad_json");
}

#[tokio::test]
async fn without_the_test_routes_no_jwt_is_a_credential() {
    let (with_routes, _) = auth_app();
    let token = issue(&with_routes, json!({"sub": "alice", "alg": "HS256"})).await;
    let (app, _) = sqlite_app(Settings {
        admin_routes: false,
        ..settings_on()
    });
    for path in ["/_jwks", "/_auth"] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let a = post_json(&app, "/_jwt", json!({"sub": "alice"})).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let r = get_as(&app, "/v1/items/sessions/alice", Some(&token)).await;
    assert_eq!(r.code(), "invalid_token");
    let r = get_as(&app, "/v1/items/sessions/alice", Some(ALICE)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_auth_settings_are_refused() {
    use std::sync::Arc;
    let open = || Arc::new(db_api::backend::sqlite::SqliteBackend::open(":memory:").unwrap());
    let mut users = AuthSettings::demo_users();
    users.insert("carol".into(), "tiny".into());
    let cases = [
        Settings {
            auth: AuthSettings {
                users,
                ..AuthSettings::on()
            },
            ..Settings::default()
        },
        Settings {
            token: Some(BOB.into()),
            ..settings_on()
        },
        Settings {
            auth: AuthSettings {
                jwt: db_api::jwt::JwtSettings {
                    secret: "short".into(),
                    ..Default::default()
                },
                ..AuthSettings::on()
            },
            ..Settings::default()
        },
    ];
    for settings in cases {
        let what = format!("{settings:?}");
        assert!(
            matches!(
                AppState::new(open(), settings),
                Err(db_api::SettingsError::Auth(_))
            ),
            "{what}"
        );
    }
}

#[test]
fn the_published_demo_credentials_are_the_seeded_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for file in ["README.md", "xtask/src/main.rs"] {
        let text = std::fs::read_to_string(root.join(file)).expect("readable");
        for (name, token) in db_api::auth::DEMO_USERS {
            assert!(
                text.contains(name) && text.contains(token),
                "{file} should show {name}'s token {token}"
            );
        }
    }
    assert!(db_api::auth::DEMO_USERS
        .iter()
        .all(|(_, t)| db_api::auth::user_token(t).is_ok()));
}
