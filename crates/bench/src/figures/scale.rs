//! Figure 7, scale: hit latency with 1k, 10k and 100k entries in the store, against the
//! 1k measurement.
//!
//! Filling 100k entries through the gateway would take minutes of misses, so the entries are
//! written straight into the host's KV file ([`crate::direct`]), encoded with the core's
//! envelope codec exactly as a fill stores them.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Result};
use cache_core::entry::{Audience, Entry, EntryKind};
use cache_core::envelope::{self, CodecPolicy};
use cache_core::time::UnixMillis;

use super::{warm_get_load, Ctx};
use crate::direct::{Direct, KvPair};
use crate::load::Stop;
use crate::report::{div, ms, Row};

const FIG: &str = "7 scale";
const SIZES: [u64; 3] = [1_000, 10_000, 100_000];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Entries `c:scale:key-{from..to}`, fresh for an hour, encoded as a fill stores them.
pub fn entries(from: u64, to: u64) -> Result<Vec<KvPair>> {
    let now = now_ms();
    let policy = CodecPolicy {
        compress_min_bytes: 1024,
    };
    (from..to)
        .map(|i| {
            let value = format!(
                "{{\"n\":{i},\"name\":\"user {i}\",\"plan\":\"pro\",\"score\":{}}}",
                i % 977
            );
            let entry = Entry {
                kind: EntryKind::Value,
                value: value.into_bytes(),
                etag: Some(format!("\"s{i}\"")),
                version: 1,
                fetched_at: Some(UnixMillis(now)),
                written_at: None,
                fresh_until: UnixMillis(now + 3_600_000),
                stale_until: UnixMillis(now + 3_900_000),
                stale_if_error_until: UnixMillis(now + 7_200_000),
                dirty: None,
                audience: Audience::Anyone,
                invalidated_at: None,
            };
            Ok((
                format!("c:scale:key-{i}"),
                envelope::encode(&entry, &policy)?,
            ))
        })
        .collect()
}

/// Adds entries `c:scale:key-{from..to}` to the host's store; the store's key count.
fn fill(store: &Direct, from: u64, to: u64) -> Result<u64> {
    store.put_all(entries(from, to)?.into_iter())?;
    store.count()
}

/// Measures the figure on the host whose state directory is `state_dir`.
pub async fn run(ctx: &Ctx<'_>, host: &str, state_dir: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut base: Option<f64> = None;
    let mut filled = 0;
    let mut p50s = Vec::new();
    for size in SIZES {
        let total = fill(&Direct::sqlite(state_dir), filled, size)?;
        filled = size;
        let path = format!("/v1/scale/key-{}", size / 2);
        let probe = ctx.http.get(&format!("{host}{path}")).await?;
        ensure!(probe.status == 200, "scale probe answered {}", probe.status);
        let out = warm_get_load(host, path, 2, Stop::After(ctx.window())).await?;
        ensure!(
            out.cache_count("HIT") == out.count(),
            "scale run: not every answer was a HIT ({:?})",
            out.cache
        );
        let p50 = out.pct_ms(50.0);
        let b = *base.get_or_insert(p50);
        let r = div(p50, b);
        let row = Row::info(
            FIG,
            format!("hit p50 with {size} scale entries ({total} keys in the store)"),
            format!("{} (p99 {})", ms(p50), ms(out.pct_ms(99.0))),
            format!("{} (1k entries)", ms(b)),
            Some(r),
        );
        p50s.push(ms(p50));
        rows.push(if size == SIZES[SIZES.len() - 1] {
            row.at_most("≤ 1.2× (flat)", r, 1.2).headline_as(
                "hit p50 at 1k / 10k / 100k entries",
                format!("{} ({} vs 1k)", p50s.join(" / "), crate::report::ratio(r)),
            )
        } else {
            row
        });
    }
    Ok(rows)
}
