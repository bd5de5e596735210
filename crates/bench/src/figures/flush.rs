//! Figure 7, flush time: how long `POST /admin/flush` takes to deliver 1k and 10k buffered
//! writes (distinct keys), against the DB API applying the same number of writes in the
//! same batches sent to it directly: the DB work that no flush can avoid.
//!
//! The writes are stored as the gateway stores them, without the HTTP round trip: for each,
//! `cache_core::serve::prepare::prepare_write` gives the buffer record (`w:{stamp}`) and the dirty
//! cache entry, and both go straight into the host's KV file (Spin's SQLite table, which the
//! host opens in WAL mode, [`crate::direct`]). Buffering 10k writes through the gateway would
//! take tens of seconds per run, each write authorized and stored one by one.
//!
//! The host runs with [`KNOBS`]: batches of [`BATCH_ITEMS`] writes, and up to
//! [`MAX_BATCHES`] batches per flush run, so one run can drain 10k writes; the timed flush
//! calls `POST /admin/flush` until it no longer reports `more`. Each call also runs the
//! sweep that follows a flush. The host's store holds nothing but these writes.
//!
//! Where the time goes: stored changes, which the host's SQLite store, like Spin's, syncs to
//! disk one commit at a time, while the DB API's baseline runs in memory. Eight batches at a
//! time are sealed in one call, registered in one swap and settled together (a rewrite
//! window opened and closed per 128 entries, one delete of records and batches): about two
//! commits per batch. The target (≤ 5× the DB API) applies to 10k writes.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use cache_core::buffer::coalesce;
use cache_core::config::CacheConfig;
use cache_core::contract::{BATCH_PATH, IDEMPOTENCY_KEY_HEADER};
use cache_core::delivery::batch::{split, SealedBatch};
use cache_core::key::CacheKey;
use cache_core::record::BufferedWrite;
use cache_core::serve::prepare::{prepare_write, Change, EntryUpdate};
use cache_core::stamp::StampGen;
use cache_core::time::UnixMillis;

use super::writes::flush_all;
use super::Ctx;
use crate::direct::{Direct, KvPair};
use crate::report::{div, ms, ratio, Row};

const FIG: &str = "7 scale";
/// Writes per batch (`flush_batch_max_items`, the default).
pub const BATCH_ITEMS: usize = 100;
/// Bytes per batch (`flush_batch_max_bytes`, the default).
pub const BATCH_BYTES: usize = 512 * 1024;
/// Batches per flush run (`flush_max_batches`): enough for 10k writes in one run.
pub const MAX_BATCHES: usize = 1_000;
/// The flush host's variables beyond the benchmark's defaults. The lease outlasts the
/// longest run, so a slow run is never overlapped by the next call.
pub const KNOBS: [(&str, &str); 4] = [
    ("flush_batch_max_items", "100"),
    ("flush_batch_max_bytes", "512KiB"),
    ("flush_max_batches", "1000"),
    ("lease_ttl", "300s"),
];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `n` writes to distinct keys `key-0..n` of `ns`, prepared as the gateway prepares them:
/// the buffered write, its record and its dirty entry, each with its KV key.
pub fn prepare(
    ns: &str,
    n: u64,
    instance: u64,
    cfg: &CacheConfig,
) -> Result<Vec<(BufferedWrite, [KvPair; 2])>> {
    let now = UnixMillis(now_ms());
    let mut stamps = StampGen::new(instance);
    (0..n)
        .map(|i| {
            let key = CacheKey::from_path(ns, &format!("key-{i}"))?;
            let value = serde_json::json!({
                "user": format!("user-{i}"),
                "score": i * 7 % 1000,
                "badges": ["a", "b"],
                "updated": "2026-01-01T00:00:00Z",
            });
            let p = prepare_write(
                &key,
                Change::Put(value),
                None,
                None,
                stamps.next(now),
                now,
                cfg,
            )?;
            let EntryUpdate::Store(entry) = p.entry else {
                anyhow::bail!("a write to a new key keeps no newer entry");
            };
            Ok((p.write, [(p.record_key, p.record), (p.entry_key, entry)]))
        })
        .collect()
}

/// Sends `writes`, coalesced and split as the flush splits them, to the DB API's batch
/// route one batch after another; returns the time taken and the batches sent.
async fn send_direct(ctx: &Ctx<'_>, writes: Vec<BufferedWrite>) -> Result<(Duration, usize)> {
    let now = UnixMillis(now_ms());
    let batches: Vec<(String, Bytes)> = split(coalesce(writes), BATCH_ITEMS, BATCH_BYTES)
        .into_iter()
        .map(|items| {
            let request = SealedBatch::new(items, now).request();
            let body = serde_json::to_vec(&request)?;
            Ok((request.batch_id, Bytes::from(body)))
        })
        .collect::<Result<_>>()?;
    let url = format!("{}{BATCH_PATH}", ctx.db_url);
    let start = Instant::now();
    for (id, body) in &batches {
        let r = ctx
            .http
            .send(
                "POST",
                &url,
                &[
                    ("content-type", "application/json"),
                    (IDEMPOTENCY_KEY_HEADER, id.as_str()),
                ],
                body.clone(),
            )
            .await?;
        ensure!(
            r.status == 200,
            "direct batch answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok((start.elapsed(), batches.len()))
}

/// `buffered_writes` from `GET /admin/stats?exact=true` (the writes are stored directly,
/// uncounted by admission).
pub async fn buffered(ctx: &Ctx<'_>, host: &str, token: &str) -> Result<u64> {
    let auth = format!("Bearer {token}");
    let r = ctx
        .http
        .send(
            "GET",
            &format!("{host}/admin/stats?exact=true"),
            &[("authorization", auth.as_str())],
            Bytes::new(),
        )
        .await?;
    ensure!(r.status == 200, "/admin/stats answered {}", r.status);
    r.json()?
        .get("buffered_writes")
        .and_then(serde_json::Value::as_u64)
        .context("/admin/stats has no buffered_writes")
}

/// Measures the figure on a host started with [`KNOBS`] whose state directory is
/// `state_dir` and whose store is otherwise empty.
pub async fn run(ctx: &Ctx<'_>, host: &str, state_dir: &Path, token: &str) -> Result<Vec<Row>> {
    let db = ctx.db();
    let cfg = CacheConfig::from_lookup(|name| (name == "db_api_url").then(|| ctx.db_url.into()))
        .context("bench cache config")?;
    let sizes: [u64; 2] = if ctx.quick {
        [100, 1_000]
    } else {
        [1_000, 10_000]
    };
    let mut rows = Vec::new();
    for n in sizes {
        // Baseline: the same number of writes, as the same batches, straight to the DB API
        // (another namespace, so that neither run sees the other's rows).
        let direct: Vec<BufferedWrite> = prepare(&format!("direct{n}"), n, 0xd1 + n, &cfg)?
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        let applied_before = db.counter("writes_applied").await?;
        let (direct_time, direct_batches) = send_direct(ctx, direct).await?;
        let applied = db.counter("writes_applied").await? - applied_before;
        ensure!(
            applied == n,
            "direct batches applied {applied} of {n} writes"
        );

        let prepared = prepare(&format!("flush{n}"), n, 0xf1 + n, &cfg)?;
        Direct::sqlite(state_dir).put_all(prepared.into_iter().flat_map(|(_, kv)| kv))?;
        let waiting = buffered(ctx, host, token).await?;
        ensure!(
            waiting == n,
            "expected {n} buffered writes, the host reports {waiting}"
        );
        let requests_before = db.counter("batch_requests").await?;
        let applied_before = db.counter("writes_applied").await?;
        let start = Instant::now();
        let calls = flush_all(ctx, host, token).await?.calls;
        let flush_time = start.elapsed();
        let applied = db.counter("writes_applied").await? - applied_before;
        let requests = db.counter("batch_requests").await? - requests_before;
        ensure!(applied == n, "the flush applied {applied} of {n} writes");
        let left = buffered(ctx, host, token).await?;
        ensure!(left == 0, "{left} writes still buffered after the flush");

        let f = flush_time.as_secs_f64() * 1000.0;
        let d = direct_time.as_secs_f64() * 1000.0;
        let label = format!(
            "flush time for {n} buffered writes, distinct keys ({BATCH_ITEMS}-write batches, flush_max_batches {MAX_BATCHES})"
        );
        let row = Row::info(
            FIG,
            format!(
                "{label}: {calls} POST /admin/flush call(s), {requests} batch requests, {:.0} writes/s",
                div(n as f64, flush_time.as_secs_f64())
            ),
            ms(f),
            format!(
                "{} (the DB API applying {n} writes sent directly as {direct_batches} batches)",
                ms(d)
            ),
            Some(div(f, d)),
        )
        .headline_as(
            format!("flush time, {n} buffered writes (distinct keys)"),
            format!(
                "{} ({calls} flush call(s), {requests} batches) vs {} for the DB API alone: {}",
                ms(f),
                ms(d),
                ratio(div(f, d))
            ),
        );
        // The target is set for the largest buffer of a full run.
        rows.push(if n == 10_000 {
            row.at_most("≤ 5×", div(f, d), 5.0)
        } else {
            row
        });
    }
    Ok(rows)
}
