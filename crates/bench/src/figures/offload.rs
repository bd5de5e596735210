//! Figure 3, origin read offload: Zipf(s = 1.0) reads over 10k keys with the default 60 s
//! TTL, counted at the origin, in two passes.
//!
//! - **Cold start.** The cache starts empty, so every distinct key's first read is a miss
//!   that no cache can avoid. The figure states the bound this puts on the pass, computed
//!   from the same Zipf parameters: with `E[D]` the expected number of distinct keys among
//!   the pass's draws, at most `requests / E[D]` client reads per origin read and at most
//!   `1 − E[D] / requests` hits, even with an infinite TTL.
//! - **Warm.** The same requests (same seeds) again right after the cold pass. Entries
//!   are reused while within their TTL; a run that outlasts the TTL refetches (or serves
//!   stale and revalidates) the keys it reads after expiry, so the pass's length against the
//!   TTL is reported next to it.

use std::sync::Arc;

use anyhow::{ensure, Result};

use super::Ctx;
use crate::client::DbControl;
use crate::load::{self, MakeReq, Outcome, Plan, Req, Stop};
use crate::report::{div, ratio, Row};
use crate::zipf::Zipf;

const FIG: &str = "3 read offload";
const KEYS: usize = 10_000;
/// The Zipf exponent.
const S: f64 = 1.0;
const CONNECTIONS: usize = 4;
/// The gateway's default `ttl`, which the benchmark host runs with.
const TTL_S: f64 = 60.0;
/// Client reads per origin read the issue asks for.
const TARGET_RATIO: f64 = 20.0;
/// Hit rate the issue asks for.
const TARGET_HITS: f64 = 0.9;

/// What figure 9 needs from this one.
pub struct Offload {
    /// Client reads per origin read, cold start.
    pub reads_per_origin_read: f64,
    /// Client reads per origin read, warm pass.
    pub warm_reads_per_origin_read: f64,
    /// Client reads sent per pass.
    pub requests: u64,
}

/// One pass: the outcome and the origin reads it caused.
async fn pass(
    ctx: &Ctx<'_>,
    host: &str,
    zipf: &Arc<Zipf>,
    requests: u64,
) -> Result<(Outcome, u64)> {
    let z = zipf.clone();
    let make: MakeReq = Arc::new(move |rng| Req::get(format!("/v1/zipf/key-{}", z.sample(rng))));
    counted_run(&ctx.db(), host, CONNECTIONS, requests, make, "offload run").await
}

/// `requests` requests from `make` on `host` over `connections`, none failing, and the
/// origin reads they caused at `db`.
pub(super) async fn counted_run(
    db: &DbControl<'_>,
    host: &str,
    connections: usize,
    requests: u64,
    make: MakeReq,
    what: &str,
) -> Result<(Outcome, u64)> {
    let before = db.counter("item_reads").await?;
    let out = load::run(Plan {
        authority: load::authority(host).to_owned(),
        connections,
        stop: Stop::Requests(requests),
        make,
        seed: 42,
    })
    .await?;
    let origin = db.counter("item_reads").await? - before;
    ensure!(out.failures() == 0, "{what}: {:?}", out.statuses);
    Ok((out, origin))
}

fn share(n: u64, of: u64) -> f64 {
    div(n as f64, of as f64)
}

/// `HIT 87.9 %, STALE 0.3 %, MISS 11.8 %`.
fn answers(out: &Outcome) -> String {
    out.cache
        .iter()
        .map(|(tag, n)| format!("{tag} {:.1} %", share(*n, out.count()) * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Measures the figure.
pub async fn run(ctx: &Ctx<'_>, host: &str) -> Result<(Vec<Row>, Offload)> {
    ctx.db().seed("zipf", "key-", KEYS as u64, 512).await?;
    let requests: u64 = if ctx.quick { 10_000 } else { 100_000 };
    let zipf = Arc::new(Zipf::new(KEYS, S));
    let (cold, cold_origin) = pass(ctx, host, &zipf, requests).await?;
    let (warm, warm_origin) = pass(ctx, host, &zipf, requests).await?;
    // The bound for the requests actually sent (a run stopped by its time limit sends fewer).
    let sent = cold.count();
    let distinct = zipf.expected_distinct(sent);
    let bound_ratio = div(sent as f64, distinct);
    let bound_hits = 1.0 - div(distinct, sent as f64);

    let mix = format!("Zipf s={S:.1}, {KEYS} keys, {requests} requests, TTL {TTL_S:.0} s");
    let cold_per = share(cold.count(), cold_origin);
    let cold_hits = share(cold.cache_count("HIT"), cold.count());
    let warm_per = share(warm.count(), warm_origin);
    let warm_hits = share(warm.cache_count("HIT"), warm.count());
    let cold_s = cold.elapsed.as_secs_f64();
    let warm_s = warm.elapsed.as_secs_f64();
    let no_cache = "1 origin read per client read (no cache)";
    let rows = vec![
        Row::info(
            FIG,
            format!("cold start: client reads per origin read ({mix})"),
            format!("{} reads / {cold_origin} origin reads", cold.count()),
            no_cache,
            Some(cold_per),
        )
        .at_least(format!("≥ {TARGET_RATIO:.0}×"), cold_per, TARGET_RATIO)
        .headline_as(
            format!("Zipf(1.0) reads over 10k keys, {requests} requests, cold start: client reads per origin read"),
            format!(
                "{} ({cold_origin} origin reads); the cold-start bound is {}",
                ratio(cold_per),
                ratio(bound_ratio)
            ),
        ),
        Row::info(
            FIG,
            "cold start: hit rate (X-Cache: HIT)",
            format!("{:.1} % ({})", cold_hits * 100.0, answers(&cold)),
            "0 % (no cache)",
            None,
        )
        .at_least_share(format!("≥ {:.0} %", TARGET_HITS * 100.0), cold_hits, TARGET_HITS)
        .headline_as(
            "cold start: hit rate",
            format!(
                "{:.1} %; the cold-start bound is {:.1} %",
                cold_hits * 100.0,
                bound_hits * 100.0
            ),
        ),
        Row::info(
            FIG,
            format!(
                "cold-start bound: expected distinct keys among {sent} Zipf(s={S:.1}) draws over {KEYS} keys, each one origin read even with an infinite TTL"
            ),
            format!(
                "{distinct:.0} keys: ≤ {} client reads per origin read, ≤ {:.1} % hits",
                ratio(bound_ratio),
                bound_hits * 100.0
            ),
            format!("measured {}", ratio(cold_per)),
            Some(div(cold_per, bound_ratio)),
        )
        .headline_as(
            "cold-start bound from the same Zipf parameters (no cache can beat it)",
            format!(
                "{distinct:.0} distinct keys expected: ≤ {}, ≤ {:.1} % hits; measured {} of the bound",
                ratio(bound_ratio),
                bound_hits * 100.0,
                ratio(div(cold_per, bound_ratio))
            ),
        ),
        Row::info(
            FIG,
            "cold start: run length against the TTL (entries expire and are refetched once the run outlasts it)",
            format!("{cold_s:.0} s"),
            format!("{TTL_S:.0} s TTL"),
            Some(cold_s / TTL_S),
        ),
        Row::info(
            FIG,
            "cold start: throughput",
            format!(
                "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                cold.rps(),
                cold.pct_ms(50.0),
                cold.pct_ms(99.0)
            ),
            "-",
            None,
        ),
        Row::info(
            FIG,
            format!("warm: client reads per origin read (the same requests again right after the cold pass; {mix})"),
            format!("{} reads / {warm_origin} origin reads", warm.count()),
            no_cache,
            Some(warm_per),
        )
        .at_least(format!("≥ {TARGET_RATIO:.0}×"), warm_per, TARGET_RATIO)
        .headline_as(
            format!("same {requests} requests again right after (warm): client reads per origin read"),
            format!(
                "{} ({warm_origin} origin reads); pass of {warm_s:.0} s against a {TTL_S:.0} s TTL",
                ratio(warm_per)
            ),
        ),
        Row::info(
            FIG,
            "warm: hit rate (X-Cache: HIT)",
            format!("{:.1} % ({})", warm_hits * 100.0, answers(&warm)),
            "0 % (no cache)",
            None,
        )
        .at_least_share(format!("≥ {:.0} %", TARGET_HITS * 100.0), warm_hits, TARGET_HITS)
        .headline_as("warm, hit rate", format!("{:.1} % ({})", warm_hits * 100.0, answers(&warm))),
        Row::info(
            FIG,
            "warm: run length against the TTL (the pass starts with entries up to one cold pass old)",
            format!("{warm_s:.0} s (cold pass {cold_s:.0} s before it)"),
            format!("{TTL_S:.0} s TTL"),
            Some(warm_s / TTL_S),
        ),
        Row::info(
            FIG,
            "warm: throughput",
            format!(
                "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                warm.rps(),
                warm.pct_ms(50.0),
                warm.pct_ms(99.0)
            ),
            "-",
            None,
        ),
    ];
    Ok((
        rows,
        Offload {
            reads_per_origin_read: cold_per,
            warm_reads_per_origin_read: warm_per,
            requests: cold.count(),
        },
    ))
}
