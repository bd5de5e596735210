//! Stampede collapse on a cold key, and `/metrics`.

use std::time::Duration;

use crate::gateway_support::*;
use crate::support::eventually;

#[tokio::test]
async fn sixty_four_concurrent_cold_reads_cause_one_origin_fetch() {
    // The embedded host has `wasi:keyvalue/atomics`: the fill claim is a ticket.
    const CLIENTS: usize = 64;
    let db = Db::start().await;
    let gw = Gw::start("gw-stampede", &db, &[]).await;
    // A slow origin (the fill outlasts the burst) and a fast one (fills race the burst).
    for (key, latency_ms) in [("slow", 300), ("fast", 0)] {
        db.seed("hot", key, serde_json::json!({"hot": true}), 1)
            .await;
        db.set_faults(db_api::faults::FaultConfig {
            read_latency_ms: Some(latency_ms),
            ..Default::default()
        });
        let before = db.reads();
        let url = gw.url(&format!("/v1/hot/{key}"));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { crate::support::get(&url).await })
            })
            .collect();
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(json(&r)["hot"], true);
        }
        let fetches = db.reads() - before;
        eprintln!("{CLIENTS} concurrent cold reads, origin latency {latency_ms} ms: {fetches} origin fetches");
        assert_eq!(
            fetches, 1,
            "{fetches} origin fetches for {CLIENTS} concurrent misses"
        );
    }
}

#[tokio::test]
async fn metrics_count_hits_misses_writes_and_errors() {
    let db = Db::start().await;
    db.seed("users", "m", serde_json::json!(1), 1).await;
    // Every hit counted, so the count is exact.
    let gw = Gw::start("gw-metrics", &db, &[("metrics_hit_sample", "1")]).await;
    assert_eq!(gw.get("/v1/users/m").await.status, 200);
    assert_eq!(gw.get("/v1/users/m").await.status, 200);
    assert_eq!(gw.get("/v1/users/none").await.status, 404);
    assert_eq!(gw.get("/v1/users/none").await.status, 404);
    assert_eq!(gw.put("/v1/users/w", "1").await.status, 202);
    assert_eq!(gw.get("/v1/Bad/x").await.status, 400);
    let ok = eventually(Duration::from_secs(5), async || {
        let r = gw.get("/metrics").await;
        r.status == 200
            && r.body.contains("cache_hits_total 1")
            && r.body.contains("cache_misses_total 2")
            && r.body.contains("cache_negative_hits_total 1")
            && r.body.contains("cache_writes_buffered_total 1")
            && r.body.contains("cache_origin_fetch_seconds_count 2")
            && r.body.contains("cache_errors_total{kind=\"bad_key\"} 1")
            && r.body.contains("cache_buffered_writes 1")
    })
    .await;
    assert!(ok, "{}", gw.get("/metrics").await.body);
}
