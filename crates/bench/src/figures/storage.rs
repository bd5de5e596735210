//! Figure 6, storage: bytes the cache stores per entry against the raw JSON, for user
//! profiles (over 2 KB) and sessions, measured in the host's KV file and recomputed with
//! the core's envelope codec; and the size of each `.wasm` component.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use cache_core::entry::{Audience, Entry, EntryKind};
use cache_core::envelope::{self, CodecPolicy};
use cache_core::time::UnixMillis;

use crate::client::Http;
use crate::documents;
use crate::report::{div, Row};

const FIG: &str = "6 storage";
/// The default `compress_min_bytes`.
const COMPRESS_MIN: usize = 1024;

/// Stored size of `value` as the gateway would store a fetched entry.
fn envelope_len(value: &[u8]) -> Result<usize> {
    let entry = Entry {
        kind: EntryKind::Value,
        value: value.to_vec(),
        etag: Some("\"v1-0123456789abcdef\"".into()),
        version: 1,
        fetched_at: Some(UnixMillis(1_780_000_000_000)),
        written_at: None,
        fresh_until: UnixMillis(1_780_000_060_000),
        stale_until: UnixMillis(1_780_000_360_000),
        stale_if_error_until: UnixMillis(1_780_003_660_000),
        dirty: None,
        audience: Audience::Anyone,
        invalidated_at: None,
    };
    Ok(envelope::encode(
        &entry,
        &CodecPolicy {
            compress_min_bytes: COMPRESS_MIN,
        },
    )?
    .len())
}

/// Average stored bytes (key + value) of the `c:{ns}:` entries in the host's KV file.
fn stored_per_entry(state_dir: &Path, ns: &str) -> Result<(f64, u64)> {
    let path = state_dir.join("sqlite_key_value.db");
    let db = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    let (count, bytes): (u64, f64) = db
        .query_row(
            "SELECT COUNT(*), COALESCE(AVG(LENGTH(key) + LENGTH(value)), 0) FROM spin_key_value WHERE key LIKE ?1",
            [format!("c:{ns}:%")],
            |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?)),
        )
        .context("cannot read spin_key_value")?;
    Ok((bytes, count))
}

/// Measures the figure: writes `n` documents of each kind through the gateway (each write
/// stores the entry as a read fill would, with the same codec).
pub async fn run(
    http: &Http,
    host: &str,
    state_dir: &Path,
    wasm_dir: &Path,
    quick: bool,
) -> Result<Vec<Row>> {
    let n: u64 = if quick { 20 } else { 200 };
    let mut rows = Vec::new();
    for (ns, make, target) in [
        (
            "profiles",
            documents::profile as fn(u64) -> serde_json::Value,
            Some(3.0),
        ),
        (
            "sessions",
            documents::session as fn(u64) -> serde_json::Value,
            None,
        ),
    ] {
        let mut raw_total = 0usize;
        let mut env_total = 0usize;
        for i in 0..n {
            let body = make(i).to_string();
            raw_total += body.len();
            env_total += envelope_len(body.as_bytes())?;
            let r = http
                .send(
                    "PUT",
                    &format!("{host}/v1/{ns}/doc-{i}"),
                    &[("content-type", "application/json")],
                    Bytes::from(body),
                )
                .await?;
            ensure!(r.status == 202, "PUT {ns}/doc-{i} answered {}", r.status);
        }
        let raw = raw_total as f64 / n as f64;
        let env = env_total as f64 / n as f64;
        let (stored, count) = stored_per_entry(state_dir, ns)?;
        ensure!(
            count == n,
            "expected {n} {ns} entries in the KV file, found {count}"
        );
        let in_kv = div(raw, stored);
        let mut row = Row::info(
            FIG,
            format!("{ns}: raw JSON per stored KV bytes (key + envelope, host's SQLite)"),
            format!("{stored:.0} B stored"),
            format!("{raw:.0} B raw JSON"),
            Some(in_kv),
        );
        if let Some(t) = target {
            let text = format!("≥ {t}× on profiles over 2 KB");
            row = if raw > 2048.0 {
                row.at_least(text, in_kv, t)
            } else {
                row.target(text, false)
            }
            .headline_as(
                "~3 KB user profiles: raw JSON per stored byte",
                format!(
                    "{} smaller stored than raw JSON",
                    crate::report::ratio(in_kv)
                ),
            );
        }
        rows.push(row);
        rows.push(Row::info(
            FIG,
            format!("{ns}: raw JSON per envelope bytes (cache-core encode)"),
            format!("{env:.0} B envelope"),
            format!("{raw:.0} B raw JSON"),
            Some(div(raw, env)),
        ));
    }
    for name in ["gateway", "flush", "probe"] {
        let path = wasm_dir.join(format!("{name}.wasm"));
        let size = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let kib = size as f64 / 1024.0;
        let row = Row::info(
            FIG,
            format!("{name}.wasm size"),
            format!("{kib:.0} KiB"),
            "300 KiB target",
            Some(kib / 300.0),
        );
        rows.push(if name == "probe" {
            row
        } else {
            row.at_most("≤ 300 KiB", kib, 300.0)
                .headline_as(format!("`{name}.wasm` size"), format!("{kib:.0} KiB"))
        });
    }
    Ok(rows)
}
