//! Figure 3, origin read offload: Zipf(s = 1.0) reads over 10k keys with the default 60 s
//! TTL, counted at the origin. The run starts cold, so every key's first read is a miss
//! that no cache can avoid; the figure includes them.

use std::sync::Arc;

use anyhow::{ensure, Result};

use super::Ctx;
use crate::load::{self, MakeReq, Plan, Req, Stop};
use crate::report::{div, Row};
use crate::zipf::Zipf;

const FIG: &str = "3 read offload";
const KEYS: usize = 10_000;
const CONNECTIONS: usize = 4;

/// What figure 9 needs from this one.
pub struct Offload {
    /// Client reads per origin read.
    pub reads_per_origin_read: f64,
    /// Client reads sent.
    pub requests: u64,
}

/// Measures the figure.
pub async fn run(ctx: &Ctx<'_>, host: &str) -> Result<(Vec<Row>, Offload)> {
    let db = ctx.db();
    db.seed("zipf", "key-", KEYS as u64, 512).await?;
    let requests: u64 = if ctx.quick { 10_000 } else { 100_000 };
    let zipf = Arc::new(Zipf::new(KEYS, 1.0));
    let make: MakeReq = Arc::new(move |rng| Req::get(format!("/v1/zipf/key-{}", zipf.sample(rng))));
    let before = db.counter("item_reads").await?;
    let out = load::run(Plan {
        authority: load::authority(host).to_owned(),
        connections: CONNECTIONS,
        stop: Stop::Requests(requests),
        make,
        seed: 42,
    })
    .await?;
    let origin = db.counter("item_reads").await? - before;
    ensure!(out.failures() == 0, "offload run: {:?}", out.statuses);
    let per = div(out.count() as f64, origin as f64);
    let hits = out.cache_count("HIT");
    let hit_rate = div(hits as f64, out.count() as f64);
    let rows = vec![
        Row::info(
            FIG,
            format!(
                "client reads per origin read (Zipf s=1.0, {KEYS} keys, {} requests, cold start, TTL 60 s)",
                out.count()
            ),
            format!("{} reads / {origin} origin reads", out.count()),
            "1 origin read per client read (no cache)".to_string(),
            Some(per),
        )
        .target("≥ 20×", per >= 20.0),
        Row::info(
            FIG,
            "hit rate (X-Cache: HIT)",
            format!("{:.1} %", hit_rate * 100.0),
            "0 % (no cache)".to_string(),
            None,
        )
        .target("≥ 90 %", hit_rate >= 0.9),
        Row::info(
            FIG,
            "run length against the TTL (entries expire and are refetched once the run outlasts it)",
            format!("{:.0} s", out.elapsed.as_secs_f64()),
            "60 s TTL",
            Some(out.elapsed.as_secs_f64() / 60.0),
        ),
        Row::info(
            FIG,
            "throughput of the mixed run",
            format!("{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms", out.rps(), out.pct_ms(50.0), out.pct_ms(99.0)),
            "-",
            None,
        ),
    ];
    Ok((
        rows,
        Offload {
            reads_per_origin_read: per,
            requests: out.count(),
        },
    ))
}
