//! Figure 14, one million entries on Redis: a hit, a write and a flush of 10k buffered writes
//! on a host whose Redis store holds a million cache entries, against the same measures on a
//! host whose store holds only what the measure needs, and the host's memory (RSS) beside it.
//!
//! Run on request only (`cargo xtask bench --figure 14`): filling a million entries takes
//! about a gigabyte of Redis memory and a minute, more than a full run should cost. Both
//! hosts keep buffered work under a `buffer` label of its own (`buffer_store`), as README
//! recommends for Redis, so the flush lists the buffer, not the million entries: the full
//! host on databases 0 (cache) and 2 (buffer) of one `redis-server`, the empty one on 1 and
//! 3. The entries are written straight into the store ([`crate::direct`]), encoded as a fill
//! stores them. Hits and writes alternate between the hosts, round by round.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Result};
use cache_core::config::CacheConfig;

use super::{flush, scale, warm_get_load, write_scale, Ctx};
use crate::direct::Direct;
use crate::load::{self, Stop};
use crate::procs::{Bins, Host, Redis};
use crate::report::{div, ms, Row};

const FIG: &str = "14 one million entries";
/// Cached entries in the full host's store.
const ENTRIES: u64 = 1_000_000;
/// Buffered writes flushed on each host.
const FLUSHED: u64 = 10_000;

/// Flush runs and sweeps after the measures, each followed by a look at the host's memory:
/// as many as one listing plans slices for, so that they include one listing whatever
/// tick of the plan they start at.
const SWEEPS_AGAIN: usize = 8;

/// The entry both hosts serve as a hit.
const HIT_KEY: u64 = ENTRIES / 2;

/// A runtime config with the `default` label on database `cache` and `buffer` on `buffer`.
fn runtime_config(
    scratch: &Path,
    server: &str,
    cache: u8,
    buffer: u8,
) -> Result<std::path::PathBuf> {
    let path = scratch.join(format!("redis-million-{cache}.toml"));
    std::fs::write(
        &path,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{server}/{cache}\"\n\n\
             [key_value_store.buffer]\ntype = \"redis\"\nurl = \"{server}/{buffer}\"\n"
        ),
    )?;
    Ok(path)
}

/// Hits on the same entry, rounds alternating between the hosts; the p50s (empty, full).
async fn hits(ctx: &Ctx<'_>, empty: &str, full: &str, rounds: u64) -> Result<(f64, f64)> {
    let path = format!("/v1/scale/key-{HIT_KEY}");
    let (mut e, mut f) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [empty, full]
        } else {
            [full, empty]
        };
        for host in order {
            let out = warm_get_load(host, path.clone(), 2, Stop::After(ctx.window())).await?;
            ensure!(
                out.count() > 0 && out.cache_count("HIT") == out.count(),
                "not every answer was a HIT ({:?})",
                out.cache
            );
            if host == empty { &mut e } else { &mut f }.push(out);
        }
    }
    Ok((load::merged_pct_ms(&e, 50.0), load::merged_pct_ms(&f, 50.0)))
}

/// Buffers [`FLUSHED`] writes in `host`'s stores and times the `POST /admin/flush` calls
/// that deliver them: the whole calls, and the sweeps' share as they report it.
async fn flush_time(
    ctx: &Ctx<'_>,
    host: &str,
    cache: &Direct,
    buffer: &Direct,
    ns: &str,
    token: &str,
) -> Result<(f64, f64, usize)> {
    // The write measure's writes first, so that only the prepared ones are timed.
    super::writes::flush_all(ctx, host, token).await?;
    let cfg = CacheConfig::with_db_api_url(ctx.db_url)?;
    let prepared = flush::prepare(ns, FLUSHED, 0x1e6 + FLUSHED, &cfg)?;
    let (records, entries): (Vec<_>, Vec<_>) =
        prepared.into_iter().map(|(_, [r, e])| (r, e)).unzip();
    buffer.put_all(records.into_iter())?;
    cache.put_all(entries.into_iter())?;
    let waiting = flush::buffered(ctx, host, token).await?;
    ensure!(
        waiting == FLUSHED,
        "{waiting} writes buffered, not {FLUSHED}"
    );
    let start = Instant::now();
    let flushed = super::writes::flush_all(ctx, host, token).await?;
    let took = start.elapsed().as_secs_f64() * 1000.0;
    let left = flush::buffered(ctx, host, token).await?;
    ensure!(left == 0, "{left} writes still buffered after the flush");
    Ok((took, flushed.sweep_ms as f64, flushed.listings))
}

/// Runs the figure.
pub async fn run(
    ctx: &Ctx<'_>,
    bins: &Bins,
    manifest: &Path,
    scratch: &Path,
    vars: &[(String, String)],
    token: &str,
) -> Result<Vec<Row>> {
    let (rounds, n) = if ctx.quick { (2, 50) } else { (4, 100) };
    let mut vars = vars.to_vec();
    vars.push(("buffer_store".to_owned(), "buffer".to_owned()));
    // Room for every entry: this figure measures holding a million, not evicting them.
    vars.retain(|(k, _)| k != "max_entries");
    vars.push(("max_entries".to_owned(), (2 * ENTRIES).to_string()));
    vars.extend(
        flush::KNOBS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let redis = Redis::start().await?;
    let server = redis.url.trim_end_matches("/0").to_owned();
    let full_rc = runtime_config(scratch, &server, 0, 2)?;
    let empty_rc = runtime_config(scratch, &server, 1, 3)?;
    let full = Host::start_with(
        bins,
        ctx.http,
        manifest,
        &scratch.join("state-million-full"),
        &vars,
        Some(&full_rc),
    )
    .await?;
    let empty = Host::start_with(
        bins,
        ctx.http,
        manifest,
        &scratch.join("state-million-empty"),
        &vars,
        Some(&empty_rc),
    )
    .await?;
    let full_rss_before = full.rss_kib()?;
    let empty_rss_before = empty.rss_kib()?;

    let (full_cache, full_buffer) = (
        Direct::Redis(format!("{server}/0")),
        Direct::Redis(format!("{server}/2")),
    );
    let (empty_cache, empty_buffer) = (
        Direct::Redis(format!("{server}/1")),
        Direct::Redis(format!("{server}/3")),
    );
    let filling = Instant::now();
    // In slices, so the encoded entries never all sit in memory at once.
    for from in (0..ENTRIES).step_by(100_000) {
        full_cache.put_all(scale::entries(from, (from + 100_000).min(ENTRIES))?.into_iter())?;
    }
    empty_cache.put_all(scale::entries(HIT_KEY, HIT_KEY + 1)?.into_iter())?;
    let keys = full_cache.count()?;
    ensure!(keys >= ENTRIES, "the full store holds {keys} keys");
    let fill_secs = filling.elapsed().as_secs_f64();
    let redis_mib = full_cache.used_memory()? as f64 / (1024.0 * 1024.0);

    let mut rows = Vec::new();
    let (e, f) = hits(ctx, &empty.url, &full.url, rounds).await?;
    rows.push(
        Row::info(
            FIG,
            format!("hit p50 with {ENTRIES} entries in the Redis store ({keys} keys; filled in {fill_secs:.0} s, Redis used_memory {redis_mib:.0} MiB)"),
            ms(f),
            format!("{} (a store holding the one entry, rounds alternating)", ms(e)),
            Some(div(f, e)),
        )
        .at_most("≤ 1.2× (flat)", div(f, e), 1.2)
        .headline("hit p50 at 1M entries on Redis"),
    );
    let (e, f) = write_scale::alternate(&empty.url, &full.url, rounds, n).await?;
    rows.push(
        Row::info(
            FIG,
            format!("write (PUT → 202) p50 with {ENTRIES} entries in the Redis store"),
            ms(f),
            format!("{} (an empty store, rounds alternating)", ms(e)),
            Some(div(f, e)),
        )
        .at_most("≤ 1.2×", div(f, e), 1.2)
        .headline("write p50 at 1M entries on Redis"),
    );
    // Memory before anything lists the million keys: hits and writes read by name.
    let full_rss_served = full.rss_kib()?;
    let (e, e_sweep, _) = flush_time(
        ctx,
        &empty.url,
        &empty_cache,
        &empty_buffer,
        "million-e",
        token,
    )
    .await?;
    let full_flush = flush_time(
        ctx,
        &full.url,
        &full_cache,
        &full_buffer,
        "million-f",
        token,
    )
    .await;
    let run_label = format!(
        "flush run for {FLUSHED} buffered writes with {ENTRIES} entries in the Redis store (buffer under its own label): the `POST /admin/flush` calls less the sweep's own time, which each reports"
    );
    let run_baseline = format!(
        "{} (the same on the host with an empty cache)",
        ms(e - e_sweep)
    );
    let tick_label = format!(
        "flush run and the sweep after it (`POST /admin/flush` whole, as a cron tick) with {ENTRIES} entries: a sweep that lists reads every key of the cache's store, Spin's stores listing nothing smaller, and one listing in eight ticks does"
    );
    let tick_baseline = format!("{} (an empty cache; its sweep {})", ms(e), ms(e_sweep));
    match full_flush {
        Ok((f, f_sweep, listed)) => {
            let run = div(f - f_sweep, e - e_sweep);
            rows.push(
                Row::info(FIG, run_label, ms(f - f_sweep), run_baseline, Some(run))
                    .at_most("≤ 1.2×", run, 1.2)
                    .headline("flush of 10k writes at 1M entries on Redis"),
            );
            rows.push(Row::info(
                FIG,
                tick_label,
                format!(
                    "{} (its sweep {}, which {})",
                    ms(f),
                    ms(f_sweep),
                    if listed > 0 {
                        "listed"
                    } else {
                        "read a planned slice"
                    }
                ),
                tick_baseline,
                Some(div(f, e)),
            ));
        }
        // Reported, not hidden: finding such a limit is what the figure is for.
        Err(err) => rows.push(
            Row::info(
                FIG,
                run_label,
                format!("failed: {err:#}"),
                run_baseline,
                None,
            )
            .at_most("≤ 1.2×", f64::INFINITY, 1.2)
            .headline("flush of 10k writes at 1M entries on Redis"),
        ),
    }
    let (full_rss, empty_rss) = (full.rss_kib()?, empty.rss_kib()?);
    // More flush runs and sweeps, each listing the million keys again: memory that levels
    // off is a high-water mark, memory that climbs with every sweep a leak.
    let mut again = Vec::new();
    let (mut listing_ms, mut planned_ms) = (Vec::new(), Vec::new());
    for _ in 0..SWEEPS_AGAIN {
        let flushed = super::writes::flush_all(ctx, &full.url, token).await?;
        if flushed.listings > 0 {
            listing_ms.push(flushed.sweep_ms as f64);
        } else {
            planned_ms.push(flushed.sweep_ms as f64);
        }
        again.push(format!("{}", full.rss_kib()? / 1024));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let all: Vec<f64> = listing_ms.iter().chain(&planned_ms).copied().collect();
    rows.push(Row::info(
        FIG,
        format!(
            "the sweep's time per tick over {SWEEPS_AGAIN} ticks with {ENTRIES} entries (one listing chooses eight slices): {} that listed, {} each; {} that read a planned slice, {} each",
            listing_ms.len(),
            ms(mean(&listing_ms)),
            planned_ms.len(),
            ms(mean(&planned_ms)),
        ),
        ms(mean(&all)),
        format!("{} (the empty cache's sweep)", ms(e_sweep)),
        Some(div(mean(&all), e_sweep)),
    ));
    rows.push(Row::info(
        FIG,
        format!(
            "host memory (RSS) after the measures, {ENTRIES} entries in its Redis store (at start {} MiB; after the hits and writes {} MiB; after each of {SWEEPS_AGAIN} more flush runs and sweeps {} MiB)",
            full_rss_before / 1024,
            full_rss_served / 1024,
            again.join(", ")
        ),
        format!("{} MiB", full_rss / 1024),
        format!(
            "{} MiB (the host with an empty store; at start {} MiB)",
            empty_rss / 1024,
            empty_rss_before / 1024
        ),
        Some(div(full_rss as f64, empty_rss as f64)),
    ));
    drop((full, empty));
    drop(redis);
    Ok(rows)
}
