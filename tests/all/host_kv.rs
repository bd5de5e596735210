//! Key-value stores: grants, labels, the default SQLite file, runtime-config placement,
//! Redis, `wasi:keyvalue/batch`.

use crate::support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "kv"
[[trigger.http]]
route = "/probe/..."
component = "probe"
[component.probe]
source = "{probe}"
key_value_stores = ["default"]
"#;

#[tokio::test]
async fn a_store_not_granted_is_refused_with_access_denied() {
    let dir = TempDir::new("kv-denied");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = send("PUT", &app.url("/probe/kv/default/k"), &[], "v").await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = get(&app.url("/probe/kv/secrets/k")).await;
    assert_eq!((r.status, r.body.as_str()), (403, "access-denied"));
}

#[tokio::test]
async fn an_undefined_label_is_a_startup_error() {
    let dir = TempDir::new("kv-undefined");
    let manifest = write_manifest(
        dir.path(),
        &APP.replace(r#"["default"]"#, r#"["default", "other"]"#),
    );
    let err = cache_sync_host::App::load(&options(&manifest))
        .err()
        .expect("load fails");
    let msg = err.to_string();
    assert!(msg.contains("'other'") && !msg.contains('\n'), "{msg}");
}

#[tokio::test]
async fn default_store_persists_in_the_state_dir_across_restarts() {
    let dir = TempDir::new("kv-persist");
    let manifest = write_manifest(dir.path(), APP);
    let app = start(options(&manifest), false).await;
    let r = send("PUT", &app.url("/probe/kv/default/greeting"), &[], "hello").await;
    assert_eq!(r.status, 204);
    app.stop().await;
    assert!(dir.path().join(".spin/sqlite_key_value.db").exists());
    let app = start(options(&manifest), false).await;
    let r = get(&app.url("/probe/kv/default/greeting")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));
    let r = get(&app.url("/probe/keys/default")).await;
    assert_eq!(r.body, r#"["greeting"]"#);
    let r = send("DELETE", &app.url("/probe/kv/default/greeting"), &[], "").await;
    assert_eq!(r.status, 204);
    let r = get(&app.url("/probe/kv/default/greeting")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn runtime_config_places_labels_on_their_own_files() {
    let dir = TempDir::new("kv-rc");
    let manifest = write_manifest(
        dir.path(),
        &APP.replace(r#"["default"]"#, r#"["default", "other"]"#),
    );
    let rc = dir.path().join("rc.toml");
    std::fs::write(
        &rc,
        "[key_value_store.other]\ntype = \"spin\"\npath = \"data/other.db\"\n",
    )
    .expect("write rc");
    let mut o = options(&manifest);
    o.runtime_config = Some(rc);
    let app = start(o, false).await;
    send("PUT", &app.url("/probe/kv/other/k"), &[], "in-other").await;
    send("PUT", &app.url("/probe/kv/default/k"), &[], "in-default").await;
    assert_eq!(get(&app.url("/probe/kv/other/k")).await.body, "in-other");
    assert_eq!(
        get(&app.url("/probe/kv/default/k")).await.body,
        "in-default"
    );
    assert!(
        dir.path().join("data/other.db").exists(),
        "relative path resolves against the config file"
    );
}

/// `wasi:keyvalue/atomics` on each backend, as Spin's backends behave: the cases are
/// (value at the start, another writer's value between `current` and `swap`) and the answer.
async fn check_compare_and_swap(app: &cache_sync_host::RunningApp, cases: &[(&str, &str, &str)]) {
    for (start, meddle, expected) in cases {
        let key = format!("cas-{}", std::process::id());
        let r = get(&app.url(&format!(
            "/probe/cas/default/{key}?start={start}&meddle={meddle}"
        )))
        .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, *expected),
            "start {start:?}, meddle {meddle:?}"
        );
        send(
            "DELETE",
            &app.url(&format!("/probe/kv/default/{key}")),
            &[],
            "",
        )
        .await;
    }
}

#[tokio::test]
async fn compare_and_swap_on_sqlite_is_spins() {
    let dir = TempDir::new("kv-cas-sqlite");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    check_compare_and_swap(
        &app,
        &[
            ("a", "", "swap=ok value=new incremented=4"),
            ("a", "b", "swap=cas-failed value=b incremented=4"),
            // From an absent key Spin's SQLite swap is an upsert: it succeeds regardless.
            ("", "b", "swap=ok value=new incremented=4"),
        ],
    )
    .await;
}

#[tokio::test]
async fn increment_on_sqlite_is_spins_and_a_value_that_is_no_counter_breaks_the_store() {
    let dir = TempDir::new("kv-incr-sqlite");
    let manifest = write_manifest(dir.path(), APP);
    let app = start(options(&manifest), false).await;
    let incr =
        |key: &str, by: i64| get_owned(app.url(&format!("/probe/incr/default/{key}?by={by}")));
    let r = incr("n", 5).await;
    assert_eq!((r.status, r.body.as_str()), (200, "5"));
    let r = incr("n", -7).await;
    assert_eq!((r.status, r.body.as_str()), (200, "-2"));
    // Spin's layout: the count as an 8-byte little-endian integer.
    let conn = rusqlite::Connection::open(dir.path().join(".spin/sqlite_key_value.db"))
        .expect("open kv file");
    let raw: Vec<u8> = conn
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'n'",
            [],
            |row| row.get(0),
        )
        .expect("counter row");
    assert_eq!(raw, (-2i64).to_le_bytes());
    send(
        "PUT",
        &app.url("/probe/kv/default/n"),
        &[],
        &i64::MAX.to_string()[..8],
    )
    .await;
    // Eight bytes of text are an integer to Spin as well.
    let r = incr("n", 0).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Any other length: Spin panics holding the store's lock, so this call and every later
    // one on the label fail (an empty 500) until the host restarts.
    send("PUT", &app.url("/probe/kv/default/n"), &[], "five").await;
    let r = incr("n", 1).await;
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    let r = get(&app.url("/probe/kv/default/other")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, ""),
        "the label is poisoned"
    );
    app.stop().await;
    let app = start(options(&manifest), false).await;
    let r = get(&app.url("/probe/kv/default/n")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "five"));
}

async fn get_owned(url: String) -> Reply {
    get(&url).await
}

/// Runs against a real Redis when `CACHE_SYNC_TEST_REDIS_URL` is set (CI starts one on
/// loopback); without it the test says so and checks nothing.
#[tokio::test]
async fn redis_backed_store_round_trips_and_is_shared_between_hosts() {
    let Ok(url) = std::env::var("CACHE_SYNC_TEST_REDIS_URL") else {
        eprintln!("skipped: CACHE_SYNC_TEST_REDIS_URL is not set");
        return;
    };
    let dir = TempDir::new("kv-redis");
    let manifest = write_manifest(dir.path(), APP);
    let rc = dir.path().join("rc.toml");
    std::fs::write(
        &rc,
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
    )
    .expect("write rc");
    let mut o = options(&manifest);
    o.runtime_config = Some(rc.clone());
    let a = start(o.clone(), false).await;
    let b = start(o, false).await;
    let key = format!("e2e-{}", std::process::id());
    let r = send(
        "PUT",
        &a.url(&format!("/probe/kv/default/{key}")),
        &[],
        "via-a",
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = get(&b.url(&format!("/probe/kv/default/{key}"))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "via-a"));
    let r = get(&b.url("/probe/keys/default")).await;
    assert!(r.body.contains(&key), "{}", r.body);
    send(
        "DELETE",
        &b.url(&format!("/probe/kv/default/{key}")),
        &[],
        "",
    )
    .await;
    assert_eq!(
        get(&a.url(&format!("/probe/kv/default/{key}")))
            .await
            .status,
        404
    );
    assert!(
        !dir.path().join(".spin/sqlite_key_value.db").exists(),
        "no SQLite file when default is on Redis"
    );
    // Spin's Redis swap is WATCH/MULTI/EXEC, and an aborted EXEC is reported as done:
    // nothing was written, yet the guest hears `ok`.
    check_compare_and_swap(
        &a,
        &[
            ("a", "", "swap=ok value=new incremented=4"),
            ("a", "b", "swap=ok value=b incremented=4"),
            ("", "b", "swap=ok value=b incremented=4"),
        ],
    )
    .await;
    // Spin's Redis increment is INCRBY: decimal text, and a refusal of anything else.
    let counter = format!("incr-{}", std::process::id());
    for (by, n) in [(5, "5"), (-7, "-2")] {
        let r = get(&a.url(&format!("/probe/incr/default/{counter}?by={by}"))).await;
        assert_eq!((r.status, r.body.as_str()), (200, n));
    }
    let r = get(&b.url(&format!("/probe/kv/default/{counter}"))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "-2"));
    send(
        "PUT",
        &a.url(&format!("/probe/kv/default/{counter}")),
        &[],
        "five",
    )
    .await;
    let r = get(&a.url(&format!("/probe/incr/default/{counter}?by=1"))).await;
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.contains("not an integer"), "{r:?}");
    let r = get(&a.url(&format!("/probe/kv/default/{counter}"))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "five"),
        "the store still answers"
    );
    send(
        "DELETE",
        &a.url(&format!("/probe/kv/default/{counter}")),
        &[],
        "",
    )
    .await;
}

/// `wasi:keyvalue/batch` on SQLite, as Spin's backend answers it: `get-many` leaves absent
/// keys out and answers in key order; `set-many` and `delete-many` write what the Spin API
/// then reads.
#[tokio::test]
async fn batch_on_sqlite_is_spins() {
    let dir = TempDir::new("kv-batch-sqlite");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = send(
        "PUT",
        &app.url("/probe/batch/default"),
        &[],
        "c=3\na=1\nb=2",
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = get(&app.url("/probe/batch/default?keys=c,missing,a")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"[["a","1"],["c","3"]]"#)
    );
    assert_eq!(get(&app.url("/probe/kv/default/b")).await.body, "2");
    let r = send(
        "DELETE",
        &app.url("/probe/batch/default?keys=a,b,missing"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(get(&app.url("/probe/keys/default")).await.body, r#"["c"]"#);
    let r = get(&app.url("/probe/batch/default?keys=")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    let r = get(&app.url("/probe/batch/secrets?keys=c")).await;
    assert_eq!((r.status, r.body.as_str()), (403, "access-denied"));
}

/// `wasi:keyvalue/batch` on Redis, as Spin's backend answers it (`MSET`, `DEL`, and `KEYS`
/// for `get-many`). Runs when `CACHE_SYNC_TEST_REDIS_URL` is set.
#[tokio::test]
async fn batch_on_redis_is_spins() {
    let Ok(url) = std::env::var("CACHE_SYNC_TEST_REDIS_URL") else {
        eprintln!("skipped: CACHE_SYNC_TEST_REDIS_URL is not set");
        return;
    };
    let dir = TempDir::new("kv-batch-redis");
    let manifest = write_manifest(dir.path(), APP);
    let rc = dir.path().join("rc.toml");
    std::fs::write(
        &rc,
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
    )
    .expect("write rc");
    let mut o = options(&manifest);
    o.runtime_config = Some(rc);
    let app = start(o, false).await;
    let (a, b) = (
        format!("batch-e2e-{}-a", std::process::id()),
        format!("batch-e2e-{}-b", std::process::id()),
    );
    let r = send(
        "PUT",
        &app.url("/probe/batch/default"),
        &[],
        &format!("{a}=1\n{b}=2"),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        get(&app.url(&format!("/probe/kv/default/{b}"))).await.body,
        "2"
    );
    // Two keys: `KEYS a b`, which Redis refuses.
    let r = get(&app.url(&format!("/probe/batch/default?keys={a},{b}"))).await;
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.contains("wrong number of arguments"), "{r:?}");
    // One key that exists: where Spin panics, a trap (an empty 500).
    let r = get(&app.url(&format!("/probe/batch/default?keys={a}"))).await;
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    let r = get(&app.url("/probe/batch/default?keys=batch-e2e-absent")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    let r = send(
        "DELETE",
        &app.url(&format!("/probe/batch/default?keys={a},{b}")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        get(&app.url(&format!("/probe/kv/default/{a}")))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_empty_state_dir_keeps_the_default_store_in_memory() {
    let dir = TempDir::new("kv-memory");
    let mut o = options(&write_manifest(dir.path(), APP));
    o.state_dir = Some(std::path::PathBuf::new());
    let app = start(o, false).await;
    let r = send("PUT", &app.url("/probe/kv/default/k"), &[], "v").await;
    assert_eq!(r.status, 204);
    assert_eq!(get(&app.url("/probe/kv/default/k")).await.body, "v");
    assert!(
        !dir.path().join(".spin").exists(),
        "nothing written to disk"
    );
}
