//! Figure 2, miss and stale paths: a miss pays the origin once (compared with the direct
//! DB API GET at the same added latency); a stale hit is answered from the entry and must
//! not pay the origin latency (compared with a fresh hit on the same host).
//!
//! The stale measurement needs entries past their TTL, so it runs on a host started with a
//! 1 s TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};

use super::{get_load, Ctx};
use crate::load::{self, MakeReq, Outcome, Plan, Req, Stop};
use crate::report::{div, ms, Row};

const FIG: &str = "2 miss / stale";

/// One sequential `GET` of each of `{prefix}0..{count}`, in order, on `base`.
async fn each_once(base: &str, prefix: &str, count: u64) -> Result<Outcome> {
    let next = Arc::new(AtomicU64::new(0));
    let prefix = prefix.to_owned();
    let make: MakeReq = Arc::new(move |_| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        Req::get(format!("{prefix}{i}"))
    });
    load::run(Plan {
        authority: load::authority(base).to_owned(),
        connections: 1,
        stop: Stop::Requests(count),
        make,
        seed: 3,
    })
    .await
}

/// Miss latency at 0 ms and 20 ms added origin latency (on the default-TTL host).
pub async fn misses(ctx: &Ctx<'_>, host: &str) -> Result<Vec<Row>> {
    let db = ctx.db();
    let n: u64 = if ctx.quick { 20 } else { 100 };
    let mut rows = Vec::new();
    for added in [0u64, 20] {
        let ns = format!("miss{added}");
        db.seed(&ns, "key-", n, 512).await?;
        db.read_latency(added).await?;
        let miss = each_once(host, &format!("/v1/{ns}/key-"), n).await?;
        let direct = each_once(ctx.db_url, &format!("/v1/items/{ns}/key-"), n).await?;
        ensure!(
            miss.cache_count("MISS") == n,
            "miss run ({added} ms): {:?}",
            miss.cache
        );
        rows.push(Row::info(
            FIG,
            format!("miss p50 vs direct DB API GET p50, {added} ms added ({n} cold keys)"),
            format!("{} (p99 {})", ms(miss.pct_ms(50.0)), ms(miss.pct_ms(99.0))),
            format!(
                "{} (p99 {})",
                ms(direct.pct_ms(50.0)),
                ms(direct.pct_ms(99.0))
            ),
            Some(div(miss.pct_ms(50.0), direct.pct_ms(50.0))),
        ));
    }
    db.read_latency(0).await?;
    Ok(rows)
}

/// Stale-hit latency with 20 ms added origin latency, on a host whose TTL is `ttl`.
pub async fn stale(ctx: &Ctx<'_>, host: &str, ttl: Duration) -> Result<Vec<Row>> {
    let db = ctx.db();
    let n: u64 = if ctx.quick { 20 } else { 100 };
    db.seed("stale", "key-", n, 512).await?;
    db.read_latency(20).await?;
    let fill = each_once(host, "/v1/stale/key-", n).await?;
    ensure!(fill.failures() == 0, "stale fill: {:?}", fill.statuses);
    let fresh = get_load(host, "/v1/stale/key-0".into(), 1, Stop::Requests(n)).await?;
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    let stale = each_once(host, "/v1/stale/key-", n).await?;
    db.read_latency(0).await?;
    let served_stale = stale.cache_count("STALE");
    ensure!(
        served_stale * 2 >= n,
        "expected STALE answers, got {:?}",
        stale.cache
    );
    let p50 = stale.pct_ms(50.0);
    Ok(vec![Row::info(
        FIG,
        format!("stale hit p50 vs fresh hit p50, origin +20 ms ({served_stale}/{n} STALE)"),
        format!("{} (p99 {})", ms(p50), ms(stale.pct_ms(99.0))),
        format!(
            "{} (p99 {})",
            ms(fresh.pct_ms(50.0)),
            ms(fresh.pct_ms(99.0))
        ),
        Some(div(p50, fresh.pct_ms(50.0))),
    )
    .at_most("excludes the 20 ms origin latency (p50 < 20 ms)", p50, 20.0)
    .headline(
        "stale hit p50 with the origin at +20 ms, vs a fresh hit",
    )])
}
