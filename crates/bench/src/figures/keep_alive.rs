//! Figure 13, keep-alive hits on Spin's socket: the hit p50 over one keep-alive connection
//! on a host without `TCP_NODELAY`, as Spin's HTTP trigger serves every connection, against
//! the same hit on a host with it.
//!
//! Spin never sets `TCP_NODELAY` on the sockets it accepts. A response that leaves in two
//! writes (head, then body) then waits for the client's delayed ACK before its second
//! segment: 20–40 ms on every keep-alive request, which no run with `TCP_NODELAY` shows. The
//! gateway writes a small body before it hands the response over, so head and body leave in
//! one write; this figure is what holds it to that. The probe, which hands its head over
//! before its body (spin-sdk's usual response path), is measured the same way beside it: the
//! stall the gateway avoids, on the same hosts in the same run.
//!
//! Two hosts of the same application, one started with `--tcp-nodelay` and one without, serve
//! rounds of `GET`s over one connection each (as `wrk -c1` does), after a few unrecorded
//! ones; the rounds alternate between the hosts and each host goes first in every other
//! round.

use std::path::Path;

use anyhow::{ensure, Result};

use super::{get_load, Ctx};
use crate::load::{merged_pct_ms, Outcome, Stop};
use crate::procs::{Bins, Host};
use crate::report::{div, ms, Row};

const FIG: &str = "13 keep-alive";
/// The key every hit reads.
const KEY: &str = "/v1/keepalive/key-0";
/// The probe route: one KV read of the hit's own entry, answered head first.
const PROBE: &str = "/probe/kv/default/c:keepalive:key-0";
/// A request slower than this waited for a delayed ACK (Linux's is 40 ms at most, 4 ms at
/// least; nothing else on this path takes 20 ms on loopback).
const STALL_US: u64 = 20_000;

/// The figure's two hosts: Spin's socket, and one with `TCP_NODELAY`.
struct Pair<'a> {
    without: &'a str,
    with: &'a str,
}

/// Rounds of `n` `GET path` over one connection on each host, alternating, each going first
/// in every other round; the outcomes without and with `TCP_NODELAY`.
async fn alternate(
    hosts: &Pair<'_>,
    path: &str,
    rounds: u64,
    n: u64,
) -> Result<(Vec<Outcome>, Vec<Outcome>)> {
    let round = |host: &str| {
        let (host, path) = (host.to_owned(), path.to_owned());
        async move {
            // A new connection each round; its first requests are not recorded.
            get_load(&host, path.clone(), 1, Stop::Requests(10)).await?;
            get_load(&host, path, 1, Stop::Requests(n)).await
        }
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        if r % 2 == 0 {
            off.push(round(hosts.without).await?);
            on.push(round(hosts.with).await?);
        } else {
            on.push(round(hosts.with).await?);
            off.push(round(hosts.without).await?);
        }
    }
    for o in off.iter().chain(&on) {
        ensure!(o.failures() == 0, "{path} answered {:?}", o.statuses);
    }
    Ok((off, on))
}

/// Requests slower than [`STALL_US`], and all requests, of `runs`.
fn stalled(runs: &[Outcome]) -> (u64, u64) {
    let total: u64 = runs.iter().map(Outcome::count).sum();
    let fast: u64 = runs.iter().map(|o| o.hist.count_between(0, STALL_US)).sum();
    (total.saturating_sub(fast), total)
}

/// Runs the figure on two hosts of its own (`vars` as the other figures' hosts get them).
pub async fn run(
    ctx: &Ctx<'_>,
    bins: &Bins,
    manifest: &Path,
    scratch: &Path,
    vars: &[(String, String)],
) -> Result<Vec<Row>> {
    let (rounds, n) = if ctx.quick { (2, 100) } else { (4, 300) };
    let without = Host::start_socket(
        bins,
        ctx.http,
        manifest,
        &scratch.join("state-keepalive-spin"),
        vars,
        false,
    )
    .await?;
    let with = Host::start_socket(
        bins,
        ctx.http,
        manifest,
        &scratch.join("state-keepalive-nodelay"),
        vars,
        true,
    )
    .await?;
    ctx.db().seed("keepalive", "key-", 1, 256).await?;
    for host in [&without.url, &with.url] {
        let warm = ctx.http.get(&format!("{host}{KEY}")).await?;
        ensure!(warm.status == 200, "warming GET answered {}", warm.status);
    }
    let hosts = Pair {
        without: &without.url,
        with: &with.url,
    };
    let (hit_off, hit_on) = alternate(&hosts, KEY, rounds, n).await?;
    for o in hit_off.iter().chain(&hit_on) {
        ensure!(
            o.cache_count("HIT") == o.count(),
            "not every answer was a HIT ({:?})",
            o.cache
        );
    }
    let (probe_off, probe_on) = alternate(&hosts, PROBE, rounds, n).await?;

    let p50 = (merged_pct_ms(&hit_off, 50.0), merged_pct_ms(&hit_on, 50.0));
    let p99 = (merged_pct_ms(&hit_off, 99.0), merged_pct_ms(&hit_on, 99.0));
    let probe = (
        merged_pct_ms(&probe_off, 50.0),
        merged_pct_ms(&probe_on, 50.0),
    );
    let probe_p90 = (
        merged_pct_ms(&probe_off, 90.0),
        merged_pct_ms(&probe_on, 90.0),
    );
    let ratio = div(p50.0, p50.1);
    let (hit_stalls, hits) = stalled(&hit_off);
    let (probe_stalls, probes) = stalled(&probe_off);
    let alternating = format!("(`--tcp-nodelay`, {rounds} alternating rounds of {n})");
    Ok(vec![
        Row::info(
            FIG,
            "keep-alive hit p50, one connection: host without TCP_NODELAY (Spin's socket) vs with",
            ms(p50.0),
            format!("{} {alternating}", ms(p50.1)),
            Some(ratio),
        )
        .at_most("≤ 1.5×", ratio, 1.5)
        .headline("keep-alive hit p50 without TCP_NODELAY (as on Spin) vs with"),
        Row::info(
            FIG,
            "keep-alive hit p99: without TCP_NODELAY vs with",
            ms(p99.0),
            ms(p99.1),
            Some(div(p99.0, p99.1)),
        ),
        Row::info(
            FIG,
            format!(
                "keep-alive hits over {} ms without TCP_NODELAY (a delayed ACK waited for)",
                STALL_US / 1000
            ),
            format!("{hit_stalls} of {hits}"),
            format!("{probe_stalls} of {probes} probe answers (head handed over first)"),
            None,
        ),
        Row::info(
            FIG,
            "probe p50 (head handed over before the body): without TCP_NODELAY vs with; the stall the gateway's one write avoids",
            format!("{} (p90 {})", ms(probe.0), ms(probe_p90.0)),
            format!("{} (p90 {})", ms(probe.1), ms(probe_p90.1)),
            Some(div(probe.0, probe.1)),
        ),
    ])
}
