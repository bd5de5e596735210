//! Corrupted key-value contents: every stored value starts with a format version and one
//! that does not decode is a miss, never a panic (ARCHITECTURE.md, invariants).
//!
//! Cache entries (`c:`) are corrupted in every way the envelope format can break (cut at
//! each part, unknown version or codec, bad magic, a header that is not JSON or names a
//! length past the end, random bytes, nothing at all, a damaged deflate stream with and
//! without a matching checksum, a payload of the wrong length): a read is then a miss that
//! serves the DB API's value and overwrites the entry. Buffer records (`w:`) that do not
//! decode are moved to the dead-letter queue with their raw text while the good records
//! are delivered; unreadable sealed batches (`b:`) are dropped and their writes sealed
//! again from the buffer, still applied exactly once; an unreadable lease (`m:lease`) is
//! free and an unreadable flush state (`m:flush`) is the default state. The flush never
//! traps and the gateway never answers 5xx.
//!
//! The corruption is written straight into the store's SQLite file, so any bytes can be
//! stored.

use std::time::Duration;

use cache_core::envelope;
use cache_core::hash::fnv1a64;
use cache_sync_host::RunningApp;
use serde_json::{json, Value};

use crate::flush_support::{admin, buffer, flags, now_ms, pause, stamp, start_app};
use crate::support::*;

/// The gateway, the flush component and the probe on one store, against a DB API.
struct App {
    db: Db,
    app: RunningApp,
    dir: TempDir,
}

impl App {
    async fn start(tag: &str) -> App {
        let db = Db::start().await;
        let dir = TempDir::new(tag);
        let app = start_app(dir.path(), None, &flags(&db.url())).await;
        App { db, app, dir }
    }

    /// Fires the flush component's cron handler once.
    async fn tick(&self) {
        cache_sync_host::cron_trigger::fire(&self.app.app, "flush", 0)
            .await
            .expect("the flush component does not trap");
    }

    /// `POST /admin/flush`; the report.
    async fn admin_flush(&self) -> Value {
        let r = admin(&self.app, "POST", "/admin/flush").await;
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_str(&r.body).expect("report is JSON")
    }

    async fn get(&self, path: &str) -> Reply {
        get(&self.app.url(path)).await
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        send(method, &self.app.url(path), headers, body).await
    }

    fn kv(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.dir.path().join(".spin/sqlite_key_value.db"))
            .expect("open kv file");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.kv()
            .query_row(
                "SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?1",
                [key],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .ok()
    }

    fn set_raw(&self, key: &str, value: &[u8]) {
        self.kv()
            .execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)
                 ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
                rusqlite::params![key, value],
            )
            .expect("write kv file");
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        let conn = self.kv();
        let mut stmt = conn
            .prepare("SELECT key FROM spin_key_value WHERE store = 'default' ORDER BY key")
            .expect("prepare");
        stmt.query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .filter(|k| k.starts_with(prefix))
            .collect()
    }

    /// Fails the test if any component panicked (a trap after a response leaves no status).
    fn assert_no_panic(&self) {
        for component in ["gateway", "flush"] {
            let log = std::fs::read_to_string(
                self.dir
                    .path()
                    .join(format!(".spin/logs/{component}_stderr.txt")),
            )
            .unwrap_or_default();
            assert!(!log.contains("panicked"), "{component} panicked:\n{log}");
        }
    }
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn body(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// Deterministic noise (xorshift), so a failure reproduces.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[0]
        })
        .collect()
}

/// An envelope split into its parts: preamble (8 bytes), header JSON, payload.
struct Parts {
    preamble: Vec<u8>,
    header: Value,
    payload: Vec<u8>,
}

fn split(envelope: &[u8]) -> Parts {
    let len = u32::from_be_bytes(envelope[4..8].try_into().expect("4 bytes")) as usize;
    Parts {
        preamble: envelope[..8].to_vec(),
        header: serde_json::from_slice(&envelope[8..8 + len]).expect("header is JSON"),
        payload: envelope[8 + len..].to_vec(),
    }
}

/// Reassembles parts, recomputing the header length (and the checksum when `resum`).
fn join(mut parts: Parts, resum: bool) -> Vec<u8> {
    if resum {
        parts.header["sum"] = json!(fnv1a64(&parts.payload));
    }
    let header = serde_json::to_vec(&parts.header).expect("header");
    let mut out = parts.preamble;
    out[4..8].copy_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&parts.payload);
    out
}

fn header_len(e: &[u8]) -> usize {
    u32::from_be_bytes(e[4..8].try_into().expect("4 bytes")) as usize
}

type Damage = fn(&[u8]) -> Vec<u8>;

/// Every way the test damages a real stored envelope.
fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("empty value", |_| Vec::new()),
        ("cut inside the preamble", |e| e[..5].to_vec()),
        ("cut after the preamble", |e| e[..8].to_vec()),
        ("cut inside the header", |e| {
            e[..8 + header_len(e) / 2].to_vec()
        }),
        ("cut inside the payload", |e| e[..e.len() - 3].to_vec()),
        ("last byte missing", |e| e[..e.len() - 1].to_vec()),
        ("bad magic", |e| {
            let mut e = e.to_vec();
            e[0] = b'X';
            e
        }),
        ("unknown format version 2", |e| {
            let mut e = e.to_vec();
            e[2] = 2;
            e
        }),
        ("format version 0", |e| {
            let mut e = e.to_vec();
            e[2] = 0;
            e
        }),
        ("unknown codec", |e| {
            let mut e = e.to_vec();
            e[3] = 9;
            e
        }),
        ("header length past the end", |e| {
            let mut e = e.to_vec();
            e[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            e
        }),
        ("header not JSON", |e| {
            let mut e = e.to_vec();
            let n = header_len(&e);
            e[8..8 + n].fill(b'{');
            e
        }),
        ("header without its fields", |e| {
            let mut parts = split(e);
            parts.header = json!({"kind": "value"});
            join(parts, false)
        }),
        ("dirty stamp that is no stamp", |e| {
            let mut parts = split(e);
            parts.header["dirty"] = json!({"stamp": "zz", "since": 1});
            join(parts, false)
        }),
        ("flipped payload bit", |e| {
            let mut e = e.to_vec();
            let last = e.len() - 1;
            e[last] ^= 0x01;
            e
        }),
        // With the checksum recomputed, only the length and the codec are left to notice:
        // an identity payload of the right length decodes (the checksum is there for
        // accidents, not forgery), and a deflate stream ignores bytes after its end.
        ("deflate stream garbage with a matching checksum", |e| {
            let mut parts = split(e);
            parts.payload = noise(parts.payload.len(), 7);
            join(parts, true)
        }),
        (
            "identity payload one byte longer with a matching checksum",
            |e| {
                let mut parts = split(e);
                parts.payload.push(b' ');
                join(parts, true)
            },
        ),
        ("random bytes", |_| noise(512, 11)),
        ("random bytes after the magic and version", |_| {
            let mut e = b"CE\x01\x01".to_vec();
            e.extend(noise(300, 13));
            e
        }),
    ]
}

#[tokio::test]
async fn corrupt_cache_entries_are_misses_served_from_the_db_api() {
    let app = App::start("corrupt-entries").await;
    let small = json!({"name": "Small", "tags": ["a", "b"]});
    let big = json!({"text": "abcdefgh".repeat(400)});
    app.db.seed("users", "small", small.clone(), 5).await;
    app.db.seed("users", "big", big.clone(), 6).await;
    for (key, value, codec) in [
        ("small", &small, envelope::Codec::Identity),
        ("big", &big, envelope::Codec::Deflate),
    ] {
        let path = format!("/v1/users/{key}");
        let kv_key = format!("c:users:{key}");
        assert_eq!(app.get(&path).await.status, 200);
        let original = app.raw(&kv_key).expect("entry cached");
        assert_eq!(envelope::codec_of(&original), Ok(codec));
        for (what, damage) in damages() {
            let only = match what.split(' ').next() {
                Some("deflate") => Some(envelope::Codec::Deflate),
                Some("identity") => Some(envelope::Codec::Identity),
                _ => None,
            };
            if only.is_some_and(|c| c != codec) {
                continue;
            }
            let damaged = damage(&original);
            assert!(
                envelope::decode(&damaged).is_err(),
                "{key}, {what}: the damage must make the entry undecodable"
            );
            app.set_raw(&kv_key, &damaged);
            let reads = app.db.reads();
            let r = app.get(&path).await;
            assert_eq!(
                (r.status, header(&r, "x-cache")),
                (200, "MISS"),
                "{key}, {what}: {r:?}"
            );
            assert_eq!(&body(&r), value, "{key}, {what}");
            assert_eq!(
                header(&r, "etag"),
                format!("\"v{}\"", if key == "small" { 5 } else { 6 })
            );
            assert_eq!(app.db.reads(), reads + 1, "{key}, {what}: one origin read");
            let stored = app.raw(&kv_key).expect("entry rewritten");
            let entry = envelope::decode(&stored)
                .unwrap_or_else(|e| panic!("{key}, {what}: entry not overwritten: {e}"));
            assert_eq!(
                entry.body(),
                Some(value.to_string().as_bytes()),
                "{key}, {what}"
            );
            let r = app.get(&path).await;
            assert_eq!(
                (r.status, header(&r, "x-cache")),
                (200, "HIT"),
                "{key}, {what}"
            );
        }
    }
    app.assert_no_panic();
}

#[tokio::test]
async fn writes_over_corrupt_entries_use_the_db_api_value_as_their_base() {
    let app = App::start("corrupt-write-base").await;
    app.db
        .seed("users", "p", json!({"name": "P", "plan": "pro"}), 7)
        .await;
    app.db.seed("users", "m", json!({"name": "M"}), 8).await;
    app.db.seed("users", "w", json!({"name": "W"}), 9).await;
    for key in ["p", "m", "w"] {
        assert_eq!(app.get(&format!("/v1/users/{key}")).await.status, 200);
        app.set_raw(&format!("c:users:{key}"), &noise(64, 3));
    }
    // A merge patch applies to the DB API's value, not to the garbage.
    let r = app
        .send(
            "PATCH",
            "/v1/users/p",
            &[("content-type", "application/merge-patch+json")],
            r#"{"plan":null,"seen":true}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = app.get("/v1/users/p").await;
    assert_eq!(body(&r), json!({"name": "P", "seen": true}), "{r:?}");
    assert_eq!(header(&r, "x-sync"), "pending");
    // If-Match compares with the DB API's current tag.
    let r = app
        .send("DELETE", "/v1/users/m", &[("if-match", "\"v7\"")], "")
        .await;
    assert_eq!(r.status, 412, "{r:?}");
    app.set_raw("c:users:m", b"CE\x01\x00garbage");
    let r = app
        .send("DELETE", "/v1/users/m", &[("if-match", "\"v8\"")], "")
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(app.get("/v1/users/m").await.status, 404);
    // A plain put replaces the garbage.
    let r = app
        .send(
            "PUT",
            "/v1/users/w",
            &[("content-type", "application/json")],
            r#"{"name":"W2"}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(body(&app.get("/v1/users/w").await), json!({"name": "W2"}));
    // And every write reaches the DB API.
    app.tick().await;
    assert_eq!(
        app.db.item("users", "p").await,
        Some(json!({"name": "P", "seen": true}))
    );
    assert_eq!(app.db.item("users", "m").await, None);
    assert_eq!(app.db.item("users", "w").await, Some(json!({"name": "W2"})));
    app.assert_no_panic();
}

#[tokio::test]
async fn a_corrupt_dirty_entry_is_fixed_once_its_write_is_delivered() {
    let app = App::start("corrupt-dirty").await;
    app.db.seed("users", "d", json!({"v": "old"}), 1).await;
    let r = app
        .send(
            "PUT",
            "/v1/users/d",
            &[("content-type", "application/json")],
            r#"{"v":"new"}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    app.set_raw("c:users:d", b"garbage");
    // The entry was the only readable copy of the undelivered write: the read is a miss and
    // serves what the DB API has. The write itself is safe in the buffer.
    let r = app.get("/v1/users/d").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
    assert_eq!(body(&r), json!({"v": "old"}));
    app.tick().await;
    assert_eq!(app.db.item("users", "d").await, Some(json!({"v": "new"})));
    // Once delivered, the DB API's older copy cached by that miss is not served any more.
    let r = app.get("/v1/users/d").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(body(&r), json!({"v": "new"}), "{r:?}");
    app.assert_no_panic();
}

/// A buffer record as the gateway writes it (`cache_core::record`).
fn record(ns: &str, key: &str, value: Option<Value>, stamp: &str, millis: u64) -> String {
    let mut r = json!({
        "v": 1, "ns": ns, "key": key, "op": if value.is_some() { "put" } else { "delete" },
        "stamp": stamp, "written_at": millis,
    });
    if let Some(v) = value {
        r["value"] = v;
    }
    r.to_string()
}

#[tokio::test]
async fn corrupt_buffer_records_are_dead_lettered_and_the_good_ones_delivered() {
    let app = App::start("corrupt-records").await;
    let base = now_ms() - 10_000;
    buffer(&app.app, "users", "g1", Some(json!({"g": 1})), base).await;
    buffer(&app.app, "users", "g2", None, base + 1).await;
    app.db.seed("users", "g2", json!({"g": 2}), 1).await;
    let r = app
        .send(
            "PUT",
            "/v1/users/g3",
            &[("content-type", "application/json")],
            r#"{"g":3}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let good = record("users", "c", Some(json!(1)), &stamp(base + 20), base + 20);
    let corrupt: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"not json".to_vec()),
        ("empty", Vec::new()),
        ("cut in half", good.as_bytes()[..good.len() / 2].to_vec()),
        ("binary", vec![0xff, 0x00, 0xfe, 0x7b]),
        (
            "unknown version",
            good.replacen("\"v\":1", "\"v\":9", 1).into_bytes(),
        ),
        ("a JSON array", b"[1,2,3]".to_vec()),
        (
            "put without a value",
            record("users", "c", None, &stamp(base + 20), base + 20)
                .replace("\"delete\"", "\"put\"")
                .into_bytes(),
        ),
        (
            "invalid namespace",
            record("Users", "c", Some(json!(1)), &stamp(base + 20), base + 20).into_bytes(),
        ),
        (
            "control character in the key",
            record(
                "users",
                "a\u{1}b",
                Some(json!(1)),
                &stamp(base + 20),
                base + 20,
            )
            .into_bytes(),
        ),
        (
            "stamp that is no stamp",
            record("users", "c", Some(json!(1)), "zz", base + 20).into_bytes(),
        ),
        // Readable, but filed under another stamp than its own: never delivered as is.
        ("another record's stamp", good.clone().into_bytes()),
    ];
    let mut stamps = Vec::new();
    for (i, (_, bytes)) in corrupt.iter().enumerate() {
        let s = stamp(base + 100 + i as u64);
        app.set_raw(&format!("w:{s}"), bytes);
        stamps.push(s);
    }
    // A `w:` key that is no stamp is not a buffer record: the flush leaves it alone.
    app.set_raw("w:not-a-stamp", b"junk");

    app.tick().await;

    assert_eq!(app.db.item("users", "g1").await, Some(json!({"g": 1})));
    assert_eq!(app.db.item("users", "g2").await, None);
    assert_eq!(app.db.item("users", "g3").await, Some(json!({"g": 3})));
    assert_eq!(
        app.db.item("users", "c").await,
        None,
        "no corrupt write applied"
    );
    let stats = app.db.stats();
    assert_eq!((stats.writes_applied, stats.batch_requests), (3, 1));
    assert_eq!(app.keys("w:"), vec!["w:not-a-stamp".to_owned()]);
    assert_eq!(app.keys("b:"), Vec::<String>::new());
    // Every unreadable record is a dead letter under its own stamp, with its raw text.
    for ((what, bytes), s) in corrupt.iter().zip(&stamps) {
        let letter: Value = serde_json::from_slice(
            &app.raw(&format!("d:{s}"))
                .unwrap_or_else(|| panic!("{what}: not dead-lettered")),
        )
        .unwrap_or_else(|e| panic!("{what}: dead letter unreadable: {e}"));
        assert_eq!(letter["reason"], "corrupt", "{what}: {letter}");
        assert_eq!(
            letter["raw"],
            String::from_utf8_lossy(bytes).as_ref(),
            "{what}"
        );
        assert!(letter.get("write").is_none(), "{what}: {letter}");
    }
    // The written entry is clean now that its write is delivered.
    let entry = envelope::decode(&app.raw("c:users:g3").expect("entry")).expect("decodes");
    assert!(!entry.is_dirty());
    // The queue lists them; a raw-only letter cannot be retried, only discarded.
    let r = admin(&app.app, "GET", "/admin/dlq").await;
    assert_eq!(r.status, 200, "{r:?}");
    let listed = body(&r);
    let letters = listed["dead_letters"].as_array().expect("dead letters");
    assert_eq!(letters.len(), corrupt.len(), "{listed}");
    assert!(letters.iter().all(|l| l["reason"] == "corrupt"), "{listed}");
    assert_eq!(listed["unreadable"], json!([]), "{listed}");
    let r = admin(&app.app, "POST", &format!("/admin/dlq/{}/retry", stamps[0])).await;
    assert_eq!(r.status, 409, "{r:?}");
    let r = admin(&app.app, "DELETE", &format!("/admin/dlq/{}", stamps[0])).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(app.raw(&format!("d:{}", stamps[0])).is_none());
    // A second run has nothing to do and sends nothing.
    let report = app.admin_flush().await;
    assert_eq!(report["outcome"], "idle", "{report}");
    assert_eq!(app.db.stats().batch_requests, 1);
    app.assert_no_panic();
}

#[tokio::test]
async fn corrupt_sealed_batches_are_dropped_and_their_writes_applied_once() {
    let app = App::start("corrupt-batches").await;
    let base = now_ms() - 10_000;
    buffer(&app.app, "users", "s1", Some(json!("one")), base).await;
    buffer(&app.app, "users", "s2", Some(json!("two")), base + 1).await;
    // The DB API applies the batch but its answer is lost: the sealed batch stays.
    app.db.faults(json!({"garbage_after_commit": {"next": 1}}));
    let report = app.admin_flush().await;
    assert_eq!(report["outcome"], "retrying", "{report}");
    assert_eq!(app.db.stats().writes_applied, 2);
    let sealed = app.keys("b:");
    assert_eq!(sealed.len(), 1, "{sealed:?}");
    let original = app.raw(&sealed[0]).expect("sealed batch");
    // Corrupt it, and add unreadable batches of every kind.
    app.set_raw(&sealed[0], &original[..original.len() / 2]);
    app.set_raw(&format!("b:{}", "0".repeat(32)), b"garbage");
    app.set_raw("b:not-an-id", br#"{"v":2}"#);
    app.set_raw(&format!("b:{}", "1".repeat(32)), &[]);
    pause(300).await;

    let report = app.admin_flush().await;
    assert_eq!(report["outcome"], "delivered", "{report}");
    // The damaged batch and the key that names no batch are corrupt; the two well-named ones
    // were never registered, so no run sent them.
    assert_eq!(report["batches_corrupt"], 2, "{report}");
    assert_eq!(report["batches_unregistered"], 2, "{report}");
    assert_eq!(report["items"]["records_deleted"], 2, "{report}");
    assert_eq!(app.keys("b:"), Vec::<String>::new());
    assert_eq!(app.keys("w:"), Vec::<String>::new());
    assert_eq!(app.db.item("users", "s1").await, Some(json!("one")));
    assert_eq!(app.db.item("users", "s2").await, Some(json!("two")));
    // Resealed from the same records, the batch has the same id: the DB API answers it from
    // its idempotency record and applies nothing twice.
    let stats = app.db.stats();
    assert_eq!(stats.writes_applied, 2, "{stats:?}");
    assert_eq!(stats.duplicate_batches, 1, "{stats:?}");
    assert_eq!(stats.writes_redelivered, 0, "{stats:?}");
    app.assert_no_panic();
}

#[tokio::test]
async fn corrupt_lease_and_flush_state_do_not_stop_the_flush() {
    let app = App::start("corrupt-meta").await;
    let base = now_ms() - 10_000;
    let garbage: [&[u8]; 6] = [
        b"",
        b"junk",
        &[0xff, 0xfe, 0x00],
        br#"{"v":9,"owner":"x","acquired_at":0,"expires_at":99999999999999}"#,
        br#"{"v":1,"owner":5}"#,
        br#"{"v":1,"failures":"many","next_attempt_at":"later"}"#,
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let key = format!("m{i}");
        buffer(&app.app, "users", &key, Some(json!(i)), base + i as u64).await;
        app.set_raw("m:lease", bytes);
        app.set_raw("m:flush", bytes);
        // The admin routes still answer.
        let r = admin(&app.app, "GET", "/admin/stats").await;
        assert_eq!(r.status, 200, "{i}: {r:?}");
        app.tick().await;
        assert_eq!(
            app.db.item("users", &key).await,
            Some(json!(i)),
            "{i}: {:?} blocked the flush",
            String::from_utf8_lossy(bytes)
        );
        let lease: Value =
            serde_json::from_slice(&app.raw("m:lease").expect("lease record")).expect("JSON");
        assert_eq!(
            lease["owner"],
            Value::Null,
            "{i}: lease not released: {lease}"
        );
        let state: Value =
            serde_json::from_slice(&app.raw("m:flush").expect("flush state")).expect("JSON");
        assert_eq!(
            (state["v"].as_u64(), state["last_outcome"].as_str()),
            (Some(1), Some("delivered")),
            "{i}: {state}"
        );
    }
    let r = admin(&app.app, "GET", "/admin/stats").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(body(&r)["buffered_writes"], 0, "{r:?}");
    app.assert_no_panic();
}

#[tokio::test]
async fn the_flush_sweeps_unreadable_entries() {
    let app = App::start("corrupt-sweep").await;
    app.db.seed("users", "x", json!(1), 1).await;
    assert_eq!(app.get("/v1/users/x").await.status, 200);
    app.set_raw("c:users:x", b"garbage");
    app.set_raw("c:users:y", &noise(100, 5));
    app.set_raw("c:users:z", b"");
    let report = app.admin_flush().await;
    assert_eq!(report["sweep"]["unreadable"], 3, "{report}");
    assert_eq!(app.keys("c:"), Vec::<String>::new());
    // The cron-triggered run sweeps too.
    app.set_raw("c:users:x", b"garbage again");
    app.tick().await;
    assert_eq!(app.keys("c:"), Vec::<String>::new());
    let r = app.get("/v1/users/x").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
    app.assert_no_panic();
}
