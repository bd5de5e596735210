//! Figure 4, write batching: a write-heavy, hot-key-skewed mix for a simulated ten minutes
//! with a flush every simulated minute, counted at the DB API.
//!
//! Time is simulated: each minute's writes are sent as fast as the gateway takes them, then
//! `POST /admin/flush` runs what the cron tick would run. What the DB API sees depends only
//! on how many writes (and to how many distinct keys) fall between two flushes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use bytes::Bytes;

use super::Ctx;
use crate::load::{self, MakeReq, Plan, Req, Stop};
use crate::report::{div, ms, Row};
use crate::zipf::Zipf;

const FIG: &str = "4 write batching";
/// Keys written (hot-key skew: Zipf s = 1.0 over them).
const KEYS: usize = 1_000;
const CONNECTIONS: usize = 2;
/// Bounds the flush calls per simulated minute.
const MAX_FLUSH_CALLS: usize = 100;

/// What figure 9 needs from this one.
pub struct Batching {
    /// Client writes per DB API batch request.
    pub writes_per_request: f64,
    /// Client writes per DB row written.
    pub writes_per_row: f64,
}

/// What [`flush_all`] took.
pub struct Flushed {
    /// `POST /admin/flush` calls made.
    pub calls: usize,
    /// The sweeps' own time, as each call reported it (`sweep.took_ms`), milliseconds.
    pub sweep_ms: u64,
    /// Sweeps that listed the cache's store (those not reading a slice an earlier listing
    /// planned, `sweep.planned`).
    pub listings: usize,
}

/// Runs one `POST /admin/flush` after another until nothing is left.
pub async fn flush_all(ctx: &Ctx<'_>, host: &str, token: &str) -> Result<Flushed> {
    let auth = format!("Bearer {token}");
    let mut sweep_ms = 0;
    let mut listings = 0;
    for call in 1..=MAX_FLUSH_CALLS {
        let r = ctx
            .http
            .post_json(
                &format!("{host}/admin/flush"),
                &[("authorization", auth.as_str())],
                &serde_json::Value::Null,
            )
            .await?;
        let outcome = r.get("outcome").and_then(|v| v.as_str()).unwrap_or("");
        if !matches!(outcome, "delivered" | "idle") {
            bail!("flush answered {r}");
        }
        sweep_ms += r
            .pointer("/sweep/took_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if r.pointer("/sweep/planned") == Some(&serde_json::Value::Bool(false)) {
            listings += 1;
        }
        if !r.get("more").and_then(|v| v.as_bool()).unwrap_or(false) {
            return Ok(Flushed {
                calls: call,
                sweep_ms,
                listings,
            });
        }
    }
    bail!("the write buffer did not drain in {MAX_FLUSH_CALLS} flushes")
}

/// Measures the figure.
pub async fn run(ctx: &Ctx<'_>, host: &str, token: &str) -> Result<(Vec<Row>, Batching)> {
    let db = ctx.db();
    let (minutes, per_minute): (u64, u64) = if ctx.quick { (3, 300) } else { (10, 1_200) };
    flush_all(ctx, host, token).await?;
    let requests_before = db.counter("batch_requests").await?;
    let rows_before = db.counter("writes_applied").await?;
    let zipf = Arc::new(Zipf::new(KEYS, 1.0));
    let make: MakeReq = Arc::new(move |rng| {
        let k = zipf.sample(rng);
        let v = rng.next_u64() % 1_000_000;
        Req {
            method: http::Method::PUT,
            path: format!("/v1/counters/user-{k}"),
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from(format!(
                "{{\"user\":\"user-{k}\",\"score\":{v},\"badges\":[\"a\",\"b\"],\"updated\":\"2026-01-01T00:00:00Z\"}}"
            )),
        }
    });
    let mut written = 0u64;
    let mut latency = None;
    let mut flush_times: Vec<(Duration, Duration)> = Vec::new();
    for minute in 0..minutes {
        let out = load::run(Plan {
            authority: load::authority(host).to_owned(),
            connections: CONNECTIONS,
            stop: Stop::Requests(per_minute),
            make: make.clone(),
            seed: 1000 + minute,
        })
        .await?;
        ensure!(out.failures() == 0, "minute {minute}: {:?}", out.statuses);
        written += out.count();
        let flush_start = Instant::now();
        flush_all(ctx, host, token).await?;
        flush_times.push((flush_start.elapsed(), out.elapsed));
        latency.get_or_insert(out);
    }
    let requests = db.counter("batch_requests").await? - requests_before;
    let rows_written = db.counter("writes_applied").await? - rows_before;
    let per_request = div(written as f64, requests as f64);
    let per_row = div(written as f64, rows_written as f64);
    let mut rows = vec![
        Row::info(
            FIG,
            format!(
                "client writes per DB API request ({minutes} simulated minutes × {per_minute} writes, Zipf over {KEYS} keys, flush each minute)"
            ),
            format!("{written} writes / {requests} batch requests"),
            "1 request per write (write-through)",
            Some(per_request),
        )
        .at_least("≥ 50×", per_request, 50.0)
        .headline_as(
            format!("{minutes} simulated minutes of skewed writes, flush each minute"),
            format!(
                "{} fewer DB API requests than writes; {} writes per row written",
                crate::report::ratio(per_request),
                crate::report::ratio(per_row)
            ),
        ),
        Row::info(
            FIG,
            "client writes per DB row written (coalescing)",
            format!("{written} writes / {rows_written} rows"),
            "1 row per write (write-through)",
            Some(per_row),
        ),
    ];
    if let Some(o) = latency {
        rows.push(Row::info(
            FIG,
            "write (PUT → 202) latency, first minute",
            format!("p50 {}, p99 {}", ms(o.pct_ms(50.0)), ms(o.pct_ms(99.0))),
            "-",
            None,
        ));
    }
    flush_times.sort();
    if let Some((flush, sending)) = flush_times.get(flush_times.len() / 2) {
        let f = flush.as_secs_f64() * 1000.0;
        let w = sending.as_secs_f64() * 1000.0;
        rows.push(Row::info(
            "7 scale",
            format!("flush time for one simulated minute's buffer ({per_minute} buffered writes), median of {minutes}"),
            ms(f),
            format!("{} (sending those writes to the gateway)", ms(w)),
            Some(div(f, w)),
        ));
    }
    Ok((
        rows,
        Batching {
            writes_per_request: per_request,
            writes_per_row: per_row,
        },
    ))
}
