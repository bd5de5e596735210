//! Figure 15, the rollout's cost to the caller: a read in passthrough and in shadow against
//! the same read sent to the DB API directly, and a passed-through write against the DB
//! API's own item write.
//!
//! Shadow promises no added latency beyond a measured bound: the comparison runs after the
//! response, so the caller waits for a passthrough's work plus the copy of the answer kept
//! for it. On a host with few cores the comparison of one request shares the CPU with the
//! next request's work; that is in the figure too, since the rounds are closed loops over
//! one connection. The three read paths run in alternating rounds (each round switches the
//! rollout with one `POST /admin/rollout`), so a noisy moment of the shared machine falls
//! on all three.

use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Result};
use bytes::Bytes;
use serde_json::json;

use super::{get_load, Ctx};
use crate::load::{self, merged_pct_ms, MakeReq, Outcome, Plan, Req, Stop};
use crate::procs::{Bins, Host};
use crate::report::{div, ms, ratio, Row};

const FIG: &str = "15 rollout";
/// Shadow's bound: its read p50 at most this many times passthrough's.
const SHADOW_BOUND: f64 = 1.2;

/// One round of `n` `GET path` on `base` over one connection, after a few unrecorded ones.
async fn round(base: &str, path: &str, n: u64) -> Result<Outcome> {
    get_load(base, path.to_owned(), 1, Stop::Requests(10)).await?;
    let o = get_load(base, path.to_owned(), 1, Stop::Requests(n)).await?;
    ensure!(o.failures() == 0, "{base}{path} answered {:?}", o.statuses);
    Ok(o)
}

/// `n` sequential `PUT path` of a small JSON value on `base`, each a new value.
async fn puts(base: &str, path: &str, n: u64) -> Result<Outcome> {
    let target = path.to_owned();
    let make: MakeReq = Arc::new(move |rng| Req {
        method: http::Method::PUT,
        path: target.clone(),
        headers: vec![("content-type", "application/json".to_owned())],
        body: Bytes::from(json!({ "n": rng.next_u64() % 1_000_000 }).to_string()),
    });
    let o = load::run(Plan {
        authority: load::authority(base).to_owned(),
        connections: 1,
        stop: Stop::Requests(n),
        make,
        seed: 15,
    })
    .await?;
    ensure!(
        o.failures() == 0,
        "PUT {base}{path} answered {:?}",
        o.statuses
    );
    Ok(o)
}

/// Sets the host's rollout mode.
async fn set_mode(ctx: &Ctx<'_>, host: &str, admin: &str, mode: &str) -> Result<()> {
    let auth = format!("Bearer {admin}");
    ctx.http
        .post_json(
            &format!("{host}/admin/rollout"),
            &[("authorization", &auth)],
            &json!({ "mode": mode, "force": true }),
        )
        .await?;
    Ok(())
}

/// Runs the figure on a host of its own (`vars` as the other figures' hosts get them).
pub async fn run(
    ctx: &Ctx<'_>,
    bins: &Bins,
    manifest: &Path,
    scratch: &Path,
    vars: &[(String, String)],
    admin: &str,
) -> Result<Vec<Row>> {
    let (rounds, n) = if ctx.quick { (2, 100) } else { (4, 300) };
    let host = Host::start(
        bins,
        ctx.http,
        manifest,
        &scratch.join("state-rollout"),
        vars,
    )
    .await?;
    let host = host.url.as_str();
    ctx.db().seed("rollout", "key-", 1, 512).await?;
    let item = "/v1/rollout/key-0";
    let direct_item = "/v1/items/rollout/key-0";
    let (mut direct, mut pass, mut shadow) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        // Each path goes first in turn.
        for step in 0..3 {
            match (r + step) % 3 {
                0 => direct.push(round(ctx.db_url, direct_item, n).await?),
                1 => {
                    set_mode(ctx, host, admin, "passthrough").await?;
                    pass.push(round(host, item, n).await?);
                }
                _ => {
                    set_mode(ctx, host, admin, "shadow").await?;
                    shadow.push(round(host, item, n).await?);
                }
            }
        }
    }
    for o in pass.iter().chain(&shadow) {
        ensure!(
            o.cache_count("PASS") == o.count(),
            "not every answer was passed through ({:?})",
            o.cache
        );
    }
    let auth = format!("Bearer {admin}");
    let report = ctx
        .http
        .send(
            "GET",
            &format!("{host}/admin/shadow"),
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
        .and_then(|r| r.json());
    let judged = report
        .ok()
        .and_then(|r| r["totals"]["matches"].as_u64())
        .unwrap_or(0);

    set_mode(ctx, host, admin, "passthrough").await?;
    let writes = n / 2;
    let pass_put = puts(host, "/v1/rollout/written", writes).await?;
    let direct_put = puts(ctx.db_url, "/v1/items/rollout/written-direct", writes).await?;

    let p = |runs: &[Outcome], q: f64| merged_pct_ms(runs, q);
    let with_p99 = |runs: &[Outcome]| format!("{} (p99 {})", ms(p(runs, 50.0)), ms(p(runs, 99.0)));
    let alternating = format!("{rounds} alternating rounds of {n}, 1 connection");
    let shadow_ratio = div(p(&shadow, 50.0), p(&pass, 50.0));
    Ok(vec![
        Row::info(
            FIG,
            format!("passthrough read p50 vs direct DB API GET p50 ({alternating})"),
            with_p99(&pass),
            format!("{} direct", with_p99(&direct)),
            Some(div(p(&pass, 50.0), p(&direct, 50.0))),
        ),
        Row::info(
            FIG,
            format!(
                "shadow read p50 vs passthrough read p50 ({alternating}; {judged} reads judged \
                 as matches after their responses)"
            ),
            with_p99(&shadow),
            format!("{} passthrough", with_p99(&pass)),
            Some(shadow_ratio),
        )
        .at_most(
            format!(
                "≤ {} passthrough (the comparison runs after the response)",
                ratio(SHADOW_BOUND)
            ),
            shadow_ratio,
            SHADOW_BOUND,
        )
        .headline("shadow read p50, vs passthrough"),
        Row::info(
            FIG,
            format!("shadow read p50 vs direct DB API GET p50 ({alternating})"),
            with_p99(&shadow),
            format!("{} direct", with_p99(&direct)),
            Some(div(p(&shadow, 50.0), p(&direct, 50.0))),
        ),
        Row::info(
            FIG,
            format!("passed-through PUT p50 vs direct DB API item PUT p50 ({writes} each)"),
            format!(
                "{} (p99 {})",
                ms(pass_put.pct_ms(50.0)),
                ms(pass_put.pct_ms(99.0))
            ),
            format!(
                "{} (p99 {}) direct",
                ms(direct_put.pct_ms(50.0)),
                ms(direct_put.pct_ms(99.0))
            ),
            Some(div(pass_put.pct_ms(50.0), direct_put.pct_ms(50.0))),
        ),
    ])
}
