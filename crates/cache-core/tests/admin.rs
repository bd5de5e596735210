//! The admin operations (`cache_core::admin`) against `MemoryStore` and the fake DB API.

mod common;

use cache_core::admin;
use cache_core::delivery::dlq;
use cache_core::serve::Reply;
use common::{TestClock, World};
use serde_json::{json, Value};

fn body(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn flush(w: &mut World) -> Reply {
    let mut clock = TestClock::at(w.now);
    admin::flush(&mut w.store, &mut w.db, &mut clock, 7, "admin-test", &w.cfg).unwrap()
}

#[test]
fn flush_answers_the_tick_report_and_stats_the_state() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    // Stored without being counted, as a write that raced an epoch switch: only the exact
    // view, which lists the store, sees it before a run measures it.
    let exact = body(&admin::stats(&mut w.store, w.now, "exact=true").unwrap());
    assert_eq!(
        (&exact["buffered_writes"], &exact["exact"]),
        (&json!(1), &json!(true))
    );
    let measured = body(&admin::stats(&mut w.store, w.now, "").unwrap());
    assert_eq!(
        (&measured["buffered_writes"], &measured["exact"]),
        (&json!(0), &json!(false))
    );
    let r = flush(&mut w);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("no-store"))
    );
    let b = body(&r);
    assert_eq!(b["outcome"], "delivered");
    assert_eq!(b["items"]["applied"], 1);
    assert_eq!(b["sweep"]["remaining"], 1);
    for query in ["", "exact=false", "exact=true"] {
        let stats = body(&admin::stats(&mut w.store, w.now, query).unwrap());
        assert_eq!(
            (
                &stats["entries"],
                &stats["buffered_writes"],
                &stats["last_flush"]["outcome"]
            ),
            (&json!(1), &json!(0), &json!("delivered")),
            "{query}"
        );
    }
    for query in ["exact=yes", "exact", "verbose=true"] {
        let r = admin::stats(&mut w.store, w.now, query)
            .unwrap_err()
            .reply();
        assert_eq!(
            (r.status, body(&r)["error"].as_str()),
            (400, Some("bad_request")),
            "{query}"
        );
    }
}

#[test]
fn dead_letters_are_listed_retried_and_discarded() {
    let mut w = World::new();
    w.db.poison.insert("bad".into());
    w.write("bad", Some(json!(1)));
    // Before any flush run indexed the queue, reading it lists the store.
    let list = body(&admin::dead_letters(&mut w.store, "").unwrap());
    assert_eq!(
        (
            list["exact"].as_bool(),
            list["dead_letters"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    flush(&mut w);
    // After it, reading it lists nothing: the index names the letters.
    let list = body(&admin::dead_letters(&mut Unlisted(&mut w.store), "").unwrap());
    assert_eq!(list["exact"], false);
    assert_eq!(list["truncated"], false);
    let stamp = list["dead_letters"][0]["stamp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(list["dead_letters"][0]["key"], "bad");
    let exact = body(&admin::dead_letters(&mut w.store, "exact=true").unwrap());
    assert_eq!(exact["dead_letters"], list["dead_letters"]);
    let r = admin::dead_letters(&mut w.store, "exact=maybe")
        .unwrap_err()
        .reply();
    assert_eq!(r.status, 400);

    let r = admin::retry(&mut w.store, &stamp).unwrap();
    assert_eq!(body(&r)["status"], "requeued");
    assert_eq!(w.count("w:"), 1);
    let list = body(&admin::dead_letters(&mut Unlisted(&mut w.store), "").unwrap());
    assert_eq!(list["dead_letters"].as_array().map(Vec::len), Some(0));
    let missing = admin::retry(&mut w.store, &stamp).unwrap_err().reply();
    assert_eq!(
        (missing.status, body(&missing)["error"].as_str()),
        (404, Some("not_found"))
    );

    flush(&mut w);
    let list = body(&admin::dead_letters(&mut Unlisted(&mut w.store), "").unwrap());
    assert_eq!(list["dead_letters"][0]["stamp"], stamp.as_str());
    let r = admin::discard(&mut w.store, &stamp).unwrap();
    assert_eq!(body(&r)["status"], "discarded");
    let list = body(&admin::dead_letters(&mut Unlisted(&mut w.store), "").unwrap());
    assert_eq!(list["dead_letters"].as_array().map(Vec::len), Some(0));
    assert!(dlq::list(&mut w.store).unwrap().letters.is_empty());
    let again = admin::discard(&mut w.store, &stamp).unwrap_err().reply();
    assert_eq!(again.status, 404);
    let bad = admin::discard(&mut w.store, "nope").unwrap_err().reply();
    assert_eq!(
        (bad.status, body(&bad)["error"].as_str()),
        (400, Some("bad_stamp"))
    );
}

#[test]
fn a_failing_store_is_a_503() {
    let mut w = World::new();
    w.write("a", Some(json!(1)));
    w.store.crash_after_mutations(0);
    let mut clock = TestClock::at(w.now);
    let e = admin::flush(&mut w.store, &mut w.db, &mut clock, 7, "o", &w.cfg).unwrap_err();
    let r = e.reply();
    assert_eq!(
        (r.status, body(&r)["error"].as_str()),
        (503, Some("store_unavailable"))
    );
    let r = admin::stats(&mut w.store, w.now, "exact=true")
        .unwrap_err()
        .reply();
    assert_eq!(r.status, 503);
}

/// A store that refuses to list its keys, as `/metrics` must never need.
struct Unlisted<'a>(&'a mut cache_core::store::MemoryStore);

impl cache_core::store::KvStore for Unlisted<'_> {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, cache_core::store::StoreError> {
        self.0.get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), cache_core::store::StoreError> {
        self.0.set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), cache_core::store::StoreError> {
        self.0.delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, cache_core::store::StoreError> {
        Err(cache_core::store::StoreError::Other(
            "listing the store".into(),
        ))
    }
}

/// The value of the Prometheus sample `name` in `text`.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_are_read_without_listing_the_store() {
    let mut w = World::new();
    w.db.poison.insert("bad".into());
    for key in ["a", "b", "c", "bad"] {
        w.write(key, Some(json!(1)));
    }
    assert!(w.tick().is_ok());
    // Written since the tick: counted by admission, not yet measured by a run.
    assert_eq!(w.put("d", "2").reply.status, 202);
    assert_eq!(w.put("e", "2").reply.status, 202);
    cache_core::counters::add_to_store(
        &mut w.store,
        [("hits".to_owned(), 5), ("error.bad_key".to_owned(), 2)].into(),
    );
    let text = cache_core::counters::metrics(&mut Unlisted(&mut w.store), w.now, &w.cfg).unwrap();
    assert_eq!(sample(&text, "cache_entries"), Some(3), "{text}");
    assert_eq!(sample(&text, "cache_buffered_writes"), Some(2), "{text}");
    assert_eq!(sample(&text, "cache_dead_letters"), Some(1), "{text}");
    assert_eq!(sample(&text, "cache_sealed_batches"), Some(0), "{text}");
    assert_eq!(sample(&text, "cache_hits_total"), Some(5), "{text}");
    assert_eq!(
        sample(&text, "cache_errors_total{kind=\"bad_key\"}"),
        Some(2),
        "{text}"
    );
    // So does `/admin/stats` by default; its exact view lists, and agrees.
    let measured = body(&admin::stats(&mut Unlisted(&mut w.store), w.now, "").unwrap());
    assert_eq!(
        (
            &measured["entries"],
            &measured["buffered_writes"],
            &measured["dead_letters"]
        ),
        (&json!(3), &json!(2), &json!(1))
    );
    let stats = cache_core::delivery::state::stats(&mut w.store, w.now).unwrap();
    assert_eq!(
        (stats.entries, stats.buffered_writes, stats.dead_letters),
        (5, 2, 1)
    );
}
