//! Buffered work in a store of its own (`buffer_store`): writes, their admission counters and
//! the flush's bookkeeping land in the buffer's label, entries in the cache's, and the flush
//! delivers from there, with the labels defined in a runtime config as in Spin.

use cache_core::stored::kv_key::Area;
use cache_sync_testkit::Manifest;
use serde_json::json;

use crate::flush_support::*;
use crate::support::*;

async fn keys_of(app: &cache_sync_host::RunningApp, label: &str) -> Vec<String> {
    let r = get(&app.url(&format!("/probe/keys/{label}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).expect("key list")
}

#[tokio::test]
async fn buffered_work_lives_in_its_own_store_and_is_delivered_from_there() {
    let db = Db::start().await;
    let dir = TempDir::new("flush-split-store");
    let manifest = Manifest::new("split")
        .store("buffer")
        .probe("{probe}")
        .gateway("{gateway}", "{{ db_api_url }}")
        .flush("{flush}", "0 0 0 1 1 *", "{{ db_api_url }}")
        .render();
    let manifest = write_manifest(dir.path(), &manifest);
    let rc = dir.path().join("rc.toml");
    std::fs::write(
        &rc,
        "[key_value_store.buffer]\ntype = \"spin\"\npath = \"buffer.db\"\n",
    )
    .expect("write rc");
    let mut vars = flags(&db.url());
    set(&mut vars, "buffer_store", "buffer");
    set(&mut vars, "max_buffered_writes", "3");
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut o = with_flags(options(&manifest), &refs);
    o.runtime_config = Some(rc);
    let app = start(o, false).await;

    let put = |key: &'static str, n: u32| {
        let url = app.url(&format!("/v1/users/{key}"));
        async move {
            send(
                "PUT",
                &url,
                &[("content-type", "application/json")],
                &json!({ "n": n }).to_string(),
            )
            .await
        }
    };
    for (key, n) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(put(key, n).await.status, 202);
    }
    // The buffer's bound holds without listing anything: the counters say it is full.
    let refused = put("d", 4).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("too many buffered writes"),
        "{}",
        refused.body
    );

    let cache = keys_of(&app, "default").await;
    let buffer = keys_of(&app, "buffer").await;
    assert!(
        cache.iter().all(|k| k.starts_with("c:")),
        "cache: {cache:?}"
    );
    assert_eq!(cache.len(), 3, "cache: {cache:?}");
    assert_eq!(
        buffer.iter().filter(|k| k.starts_with("w:")).count(),
        3,
        "buffer: {buffer:?}"
    );
    assert!(
        buffer.iter().any(|k| k.starts_with("m:admit:")),
        "{buffer:?}"
    );
    assert!(dir.path().join("buffer.db").exists());

    // Read-your-writes across the two stores.
    let r = get(&app.url("/v1/users/b")).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"n":2}"#));

    let r = admin(&app, "POST", "/admin/flush").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(db.item("users", "c").await, Some(json!({ "n": 3 })));
    let buffer = keys_of(&app, "buffer").await;
    assert!(!buffer.iter().any(|k| k.starts_with("w:")), "{buffer:?}");
    assert!(buffer.contains(&"m:flush".to_owned()), "{buffer:?}");
    // The cache's store holds the cache's own bookkeeping (the closed rewrite window, the
    // sweep's count), none of the buffer's.
    let cache = keys_of(&app, "default").await;
    assert!(
        !cache.iter().any(|k| Area::of(k) == Area::Buffer),
        "{cache:?}"
    );
    assert!(cache.contains(&"m:sweep".to_owned()), "{cache:?}");

    // The run measured an empty buffer: writes are taken again.
    assert_eq!(put("d", 4).await.status, 202);
    let stats = admin(&app, "GET", "/admin/stats?exact=true").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats: serde_json::Value = serde_json::from_str(&stats.body).expect("json");
    assert_eq!(stats["buffered_writes"], 1, "{stats}");
    assert_eq!(stats["entries"], 4, "{stats}");
    // Measured, without listing: the write is counted by admission, the entries are as the
    // last sweep counted them (before the write).
    let stats = admin(&app, "GET", "/admin/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats.body).expect("json");
    assert_eq!(
        (
            &stats["exact"],
            &stats["buffered_writes"],
            &stats["entries"]
        ),
        (&json!(false), &json!(1), &json!(3)),
        "{stats}"
    );
}
