//! Figure 5, the stampede: 64 concurrent GETs on one cold key, counted at the origin.
//!
//! The origin gets 20 ms added per read so that every request arrives while the first
//! fetch is in flight: the worst case for request collapsing. The host's store has
//! `wasi:keyvalue/atomics`, so the target is one fetch (`cache_core::serve::fill`).

use anyhow::{ensure, Result};

use super::{get_load, Ctx};
use crate::load::Stop;
use crate::report::Row;

const FIG: &str = "5 stampede";
const CLIENTS: u64 = 64;

/// Measures the figure over a few cold keys and reports the worst.
pub async fn run(ctx: &Ctx<'_>, host: &str) -> Result<Vec<Row>> {
    let db = ctx.db();
    let rounds: u64 = if ctx.quick { 2 } else { 5 };
    db.seed("storm", "key-", rounds, 512).await?;
    db.read_latency(20).await?;
    let mut fetches = Vec::new();
    for r in 0..rounds {
        let before = db.counter("item_reads").await?;
        let out = get_load(
            host,
            format!("/v1/storm/key-{r}"),
            CLIENTS as usize,
            Stop::Requests(CLIENTS),
        )
        .await?;
        ensure!(
            out.failures() == 0 && out.count() == CLIENTS,
            "stampede round {r}: {:?}",
            out.statuses
        );
        fetches.push(db.counter("item_reads").await? - before);
    }
    db.read_latency(0).await?;
    let worst = fetches.iter().copied().max().unwrap_or(0);
    let listed: Vec<String> = fetches.iter().map(u64::to_string).collect();
    Ok(vec![Row::info(
        FIG,
        format!(
            "origin fetches for {CLIENTS} concurrent cold GETs (worst of {rounds}: {})",
            listed.join(", ")
        ),
        worst.to_string(),
        format!("{CLIENTS} (no collapsing)"),
        Some(worst as f64 / CLIENTS as f64),
    )
    // The host has `wasi:keyvalue/atomics`: a stampede costs one fetch (`serve::fill`).
    .at_most("1", worst as f64, 1.0)
    .headline_as(
        format!("{CLIENTS} concurrent GETs on one cold key"),
        format!("{worst} origin fetch(es), worst of {rounds} rounds"),
    )])
}
