//! Invalidation end to end: the DB API announces the items its own routes change and the
//! next read through the cache serves the change; a change not announced is served from the
//! cache until its TTL; a call the cache cannot verify changes nothing; a purge drops what
//! the cache holds for a namespace but never a write it has not delivered.

use cache_sync_host::RunningApp;
use db_api::announce::AnnounceSettings;
use db_api::Settings;
use serde_json::json;

use crate::flush_support::{flags, set, start_app, ADMIN};
use crate::gateway_support::{header, json, wait};
use crate::support::*;

const SECRET: &str = "e2e-invalidation-secret";

struct Announcing {
    db: Db,
    app: RunningApp,
    _dir: TempDir,
}

impl Announcing {
    /// A DB API announcing to an app (gateway and flush) that keeps entries an hour.
    async fn start(tag: &str) -> Announcing {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let db_url = format!("http://{}", listener.local_addr().expect("addr"));
        let dir = TempDir::new(tag);
        let mut vars = flags(&db_url);
        set(&mut vars, "invalidate_secret", SECRET);
        set(&mut vars, "ttl", "1h");
        let app = start_app(dir.path(), None, &vars).await;
        let db = Db::start_on(
            listener,
            Settings {
                announce: Some(AnnounceSettings {
                    cache_url: app.url(""),
                    secret: SECRET.into(),
                }),
                ..Settings::default()
            },
        );
        Announcing { db, app, _dir: dir }
    }

    async fn get(&self, path: &str) -> Reply {
        get(&self.app.url(path)).await
    }

    /// `POST /admin/flush`, which must succeed.
    async fn admin_flush(&self) {
        let auth = format!("Bearer {ADMIN}");
        let url = self.app.url("/admin/flush");
        let r = send("POST", &url, &[("authorization", auth.as_str())], "").await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    /// A write made at the DB API itself, behind the cache.
    async fn db_put(&self, ns: &str, key: &str, value: serde_json::Value) {
        let r = send(
            "PUT",
            &format!("{}/v1/items/{ns}/{key}", self.db.url()),
            &[("content-type", "application/json")],
            &value.to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[tokio::test]
async fn an_announced_change_is_served_at_the_next_read_and_an_unannounced_one_is_not() {
    let t = Announcing::start("inval-announce").await;
    t.db.seed("users", "42", json!({"v": 1}), 1).await;
    t.db.seed("users", "43", json!({"v": 1}), 1).await;
    for key in ["42", "43"] {
        assert_eq!(
            header(&t.get(&format!("/v1/users/{key}")).await, "x-cache"),
            "MISS"
        );
        assert_eq!(
            header(&t.get(&format!("/v1/users/{key}")).await, "x-cache"),
            "HIT"
        );
    }

    t.db_put("users", "42", json!({"v": 2})).await;
    assert_eq!(t.db.stats().announcements_sent, 1);
    let r = t.get("/v1/users/42").await;
    assert_eq!((json(&r), header(&r, "x-cache")), (json!({"v": 2}), "MISS"));
    assert_eq!(header(&t.get("/v1/users/42").await, "x-cache"), "HIT");

    // Changed behind the cache's back without a word: served from the cache, as before.
    t.db.seed("users", "43", json!({"v": 2}), 2).await;
    let r = t.get("/v1/users/43").await;
    assert_eq!((json(&r), header(&r, "x-cache")), (json!({"v": 1}), "HIT"));
}

#[tokio::test]
async fn an_announcement_the_cache_cannot_verify_changes_nothing() {
    let t = Announcing::start("inval-refuse").await;
    t.db.seed("users", "42", json!({"v": 1}), 1).await;
    t.get("/v1/users/42").await;
    let body = r#"{"changed":[{"ns":"users","key":"42"}]}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = cache_sync_contract::invalidation::signature(
        b"not-the-shared-secret",
        now,
        body.as_bytes(),
    );
    for headers in [
        vec![("content-type", "application/json")],
        vec![
            ("content-type", "application/json"),
            ("cache-sync-signature", forged.as_str()),
        ],
    ] {
        let r = send("POST", &t.app.url("/hooks/invalidate"), &headers, body).await;
        assert_eq!(
            (r.status, json(&r)["error"].as_str()),
            (401, Some("bad_signature"))
        );
    }
    let r = send("GET", &t.app.url("/hooks/invalidate"), &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(header(&t.get("/v1/users/42").await, "x-cache"), "HIT");

    // Signed with the shared secret, the same call is honoured.
    let signed =
        cache_sync_contract::invalidation::signature(SECRET.as_bytes(), now, body.as_bytes());
    let r = send(
        "POST",
        &t.app.url("/hooks/invalidate"),
        &[("cache-sync-signature", signed.as_str())],
        body,
    )
    .await;
    assert_eq!((r.status, json(&r)["invalidated"].as_u64()), (200, Some(1)));
    assert_eq!(header(&t.get("/v1/users/42").await, "x-cache"), "MISS");
}

#[tokio::test]
async fn a_purge_drops_a_namespace_but_never_an_undelivered_write() {
    let t = Announcing::start("inval-purge").await;
    t.db.seed("users", "c", json!({"v": 1}), 1).await;
    t.get("/v1/users/c").await;
    let w = send(
        "PUT",
        &t.app.url("/v1/users/d"),
        &[("content-type", "application/json")],
        r#"{"mine":1}"#,
    )
    .await;
    assert_eq!(w.status, 202, "{w:?}");
    t.db.seed("users", "c", json!({"v": 2}), 2).await;

    let auth = format!("Bearer {ADMIN}");
    let purge = |body: &'static str| {
        let auth = auth.clone();
        let url = t.app.url("/admin/purge");
        async move {
            send(
                "POST",
                &url,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    let r = purge(r#"{"ns":"bad ns"}"#).await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = purge(r#"{"ns":"users"}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    let report = json(&r);
    assert_eq!(
        (
            report["invalidated"].as_u64(),
            report["kept_dirty"].as_u64()
        ),
        (Some(1), Some(1))
    );

    let r = t.get("/v1/users/c").await;
    assert_eq!((json(&r), header(&r, "x-cache")), (json!({"v": 2}), "MISS"));
    // The buffered write is still what the cache serves, and it is still delivered.
    let r = t.get("/v1/users/d").await;
    assert_eq!(
        (json(&r), header(&r, "x-sync")),
        (json!({"mine": 1}), "pending")
    );
    t.admin_flush().await;
    assert_eq!(t.db.item("users", "d").await, Some(json!({"mine": 1})));
}

#[tokio::test]
async fn a_direct_write_after_a_buffered_one_wins_when_the_buffered_one_is_delivered() {
    let t = Announcing::start("inval-order").await;
    let w = send(
        "PUT",
        &t.app.url("/v1/users/e"),
        &[("content-type", "application/json")],
        r#"{"by":"cache"}"#,
    )
    .await;
    assert_eq!(w.status, 202, "{w:?}");
    wait(5).await;
    t.db_put("users", "e", json!({"by": "db"})).await;
    // The cache's write is still the newest it knows of, and it is still delivered...
    let r = t.get("/v1/users/e").await;
    assert_eq!(
        (json(&r), header(&r, "x-sync")),
        (json!({"by": "cache"}), "pending")
    );
    t.admin_flush().await;
    // ...but, made earlier, it loses to the database's own write, and the cache then says so.
    assert_eq!(t.db.item("users", "e").await, Some(json!({"by": "db"})));
    let r = t.get("/v1/users/e").await;
    assert_eq!(
        (json(&r), header(&r, "x-cache")),
        (json!({"by": "db"}), "MISS")
    );
}
