//! Figure 12, write cost at scale: `PUT` → `202` p50 with 100k cached entries and a buffer
//! near its bound, against the same host's p50 on an empty store, on the host's SQLite store
//! and on Redis.
//!
//! A write must cost the same whatever the store holds: nothing on its path may list the
//! store. Each backend gets two hosts: one whose store receives 100k entries and 19,000
//! buffered writes (of a 20,000 bound) straight into its store ([`crate::direct`]), with the
//! flush state a flush run would have left (the buffer measured at 19,000), and one whose
//! store stays empty, the baseline. Rounds of writes to distinct keys, one connection, after
//! a few unrecorded ones, alternate between the two hosts.

use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Result};
use bytes::Bytes;
use cache_core::config::CacheConfig;
use cache_core::delivery::state::FlushState;
use cache_core::store::{KvStore, MemoryStore};
use cache_core::time::UnixMillis;

use super::{flush, scale};
use crate::direct::{Direct, KvPair};
use crate::load::{self, MakeReq, Plan, Req, Stop};
use crate::procs::{Bins, Host, Redis};
use crate::report::{div, ms, Row};

const FIG: &str = "12 write scale";
/// Cached entries added.
const ENTRIES: u64 = 100_000;
/// The buffer's bound (`max_buffered_writes`) and the writes buffered before measuring.
const BOUND: u64 = 20_000;
const BUFFERED: u64 = 19_000;

/// What the figure's hosts need beyond the benchmark's defaults.
fn knobs() -> [(String, String); 1] {
    [("max_buffered_writes".to_owned(), BOUND.to_string())]
}

/// Writes to distinct keys on `host`, over one connection: `n` recorded after a few
/// unrecorded; their latencies in a histogram.
async fn put_round(host: &str, round: u64, n: u64) -> Result<load::Outcome> {
    let make: MakeReq = Arc::new(move |rng| {
        let k = rng.next_u64();
        Req {
            method: http::Method::PUT,
            path: format!("/v1/wscale/r{round}-{k:016x}"),
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from(format!(
                "{{\"user\":\"u{k}\",\"score\":{},\"badges\":[\"a\",\"b\"]}}",
                k % 1000
            )),
        }
    });
    let plan = |stop, seed| Plan {
        authority: load::authority(host).to_owned(),
        connections: 1,
        stop,
        make: make.clone(),
        seed,
    };
    load::run(plan(Stop::Requests(20), round * 2)).await?;
    let out = load::run(plan(Stop::Requests(n), round * 2 + 1)).await?;
    ensure!(
        out.failures() == 0 && out.statuses.keys().all(|s| *s == 202),
        "writes answered {:?}",
        out.statuses
    );
    Ok(out)
}

/// The p50 of `rounds` rounds of `n` writes on each host, the rounds alternating between
/// them and each going first in every other round, so that neither gains from its place.
pub async fn alternate(empty: &str, full: &str, rounds: u64, n: u64) -> Result<(f64, f64)> {
    let mut e = Vec::new();
    let mut f = Vec::new();
    for round in 0..rounds {
        // Each host goes first in every other round.
        if round % 2 == 0 {
            e.push(put_round(empty, round * 2, n).await?);
            f.push(put_round(full, round * 2 + 1, n).await?);
        } else {
            f.push(put_round(full, round * 2 + 1, n).await?);
            e.push(put_round(empty, round * 2, n).await?);
        }
    }
    Ok((load::merged_pct_ms(&e, 50.0), load::merged_pct_ms(&f, 50.0)))
}

/// 100k entries, 19k buffered writes and the flush state that measured them.
fn fill(store: &Direct) -> Result<u64> {
    let cfg = CacheConfig::with_db_api_url("http://127.0.0.1:9")?;
    store.put_all(scale::entries(0, ENTRIES)?.into_iter())?;
    let prepared = flush::prepare("wbuffered", BUFFERED, 0xb0f, &cfg)?;
    let bytes: u64 = prepared.iter().map(|(_, [r, _])| r.1.len() as u64).sum();
    store.put_all(prepared.into_iter().flat_map(|(_, kv)| kv))?;
    let now = UnixMillis(
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )
        .unwrap_or(u64::MAX),
    );
    let state = FlushState {
        buffered_writes: BUFFERED,
        buffered_bytes: bytes,
        oldest_buffered: Some(now),
        epoch: 1,
        epoch_started_at: Some(now),
        ..FlushState::default()
    };
    let mut scratch = MemoryStore::new();
    state.save(&mut scratch)?;
    let pairs: Vec<KvPair> = scratch
        .get_keys()?
        .into_iter()
        .filter_map(|k| scratch.peek(&k).map(|v| (k.clone(), v.to_vec())))
        .collect();
    store.put_all(pairs.into_iter())?;
    store.count()
}

/// One backend's row.
fn row(backend: &str, keys: u64, empty: f64, full: f64) -> Row {
    let r = div(full, empty);
    Row::info(
        FIG,
        format!(
            "write (PUT → 202) p50 with {ENTRIES} cached entries and {BUFFERED} buffered writes of a {BOUND} bound ({keys} keys in the store), {backend}"
        ),
        ms(full),
        format!("{} (an empty store, rounds alternating)", ms(empty)),
        Some(r),
    )
    .at_most("≤ 1.2×", r, 1.2)
    .headline(format!("write p50 at 100k entries, buffer near its bound, {backend}"))
}

/// Runs the figure: two hosts on SQLite (one filled, one empty), then two on a Redis server
/// of their own (databases 0 and 1).
pub async fn run(
    bins: &Bins,
    http: &crate::client::Http,
    manifest: &Path,
    scratch: &Path,
    vars: &[(String, String)],
    quick: bool,
) -> Result<Vec<Row>> {
    let (rounds, n) = if quick { (2, 50) } else { (4, 100) };
    let mut vars = vars.to_vec();
    vars.extend(knobs());
    let mut rows = Vec::new();
    {
        let full_dir = scratch.join("state-wscale-sqlite-full");
        let empty_dir = scratch.join("state-wscale-sqlite-empty");
        let full = Host::start(bins, http, manifest, &full_dir, &vars).await?;
        let empty = Host::start(bins, http, manifest, &empty_dir, &vars).await?;
        let keys = fill(&Direct::sqlite(&full_dir))?;
        let (e, f) = alternate(&empty.url, &full.url, rounds, n).await?;
        rows.push(row("SQLite", keys, e, f));
    }
    let redis = Redis::start().await?;
    let server = redis.url.trim_end_matches("/0");
    let mut hosts = Vec::new();
    for db in [0, 1] {
        let rc = scratch.join(format!("redis-wscale-{db}.toml"));
        std::fs::write(
            &rc,
            format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{server}/{db}\"\n"),
        )?;
        let dir = scratch.join(format!("state-wscale-redis-{db}"));
        hosts.push(Host::start_with(bins, http, manifest, &dir, &vars, Some(&rc)).await?);
    }
    let keys = fill(&Direct::Redis(format!("{server}/0")))?;
    let (e, f) = alternate(&hosts[1].url, &hosts[0].url, rounds, n).await?;
    rows.push(row("Redis", keys, e, f));
    Ok(rows)
}
