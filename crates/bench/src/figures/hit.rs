//! Figure 1, the hit path: what a cache hit costs against what Spin itself costs (the floor:
//! a minimal component on the same host) and against going to the database API directly,
//! on loopback and with 20 ms added per request (a typical edge-to-origin round trip).

use anyhow::{ensure, Result};

use super::{warm_get_load, Ctx};
use crate::load::{Outcome, Stop};
use crate::report::{div, ms, Row};

const FIG: &str = "1 hit path";
/// Rows in the DB API during the figure.
pub const ROWS: u64 = 100_000;
/// Concurrent connections of each window.
const CONNECTIONS: usize = 2;

/// Latency series of the figure, for the plot.
pub struct Series {
    /// Label and outcome.
    pub runs: Vec<(String, Outcome)>,
}

/// Measures the figure; the DB API must be empty of `hit` rows.
pub async fn run(ctx: &Ctx<'_>, host: &str) -> Result<(Vec<Row>, Series, f64)> {
    let db = ctx.db();
    db.seed("hit", "key-", ROWS, 256).await?;
    let key_path = "/v1/hit/key-4242".to_string();
    let warm = ctx.http.get(&format!("{host}{key_path}")).await?;
    ensure!(warm.status == 200, "warming GET answered {}", warm.status);
    let stop = Stop::After(ctx.window());
    let floor = warm_get_load(host, "/probe/headers".into(), CONNECTIONS, stop).await?;
    let hit = warm_get_load(host, key_path.clone(), CONNECTIONS, stop).await?;
    let direct0 = warm_get_load(
        ctx.db_url,
        "/v1/items/hit/key-4242".into(),
        CONNECTIONS,
        stop,
    )
    .await?;
    db.read_latency(20).await?;
    let direct20 = warm_get_load(
        ctx.db_url,
        "/v1/items/hit/key-4242".into(),
        CONNECTIONS,
        stop,
    )
    .await?;
    let hit20 = warm_get_load(host, key_path, CONNECTIONS, stop).await?;
    db.read_latency(0).await?;
    for (name, o) in [
        ("floor", &floor),
        ("hit", &hit),
        ("hit (origin +20 ms)", &hit20),
    ] {
        ensure!(
            o.failures() == 0,
            "{name}: {} failed requests",
            o.failures()
        );
    }
    ensure!(
        hit.cache_count("HIT") == hit.count(),
        "hit run: not every answer was a HIT ({:?})",
        hit.cache
    );

    let p50_vs_floor = div(hit.pct_ms(50.0), floor.pct_ms(50.0));
    let p50_vs_db20 = div(hit20.pct_ms(50.0), direct20.pct_ms(50.0));
    let rows = vec![
        Row::info(
            FIG,
            "hit p50 vs floor p50",
            ms(hit.pct_ms(50.0)),
            format!("{} (probe component)", ms(floor.pct_ms(50.0))),
            Some(p50_vs_floor),
        )
        .at_most("≤ 1.5×", p50_vs_floor, 1.5)
        .headline("hit p50 vs the floor (a minimal component on the same host)"),
        Row::info(
            FIG,
            "hit p99 vs floor p99",
            ms(hit.pct_ms(99.0)),
            ms(floor.pct_ms(99.0)),
            Some(div(hit.pct_ms(99.0), floor.pct_ms(99.0))),
        ),
        Row::info(
            FIG,
            format!("hit throughput vs floor ({CONNECTIONS} connections)"),
            format!("{:.0} req/s", hit.rps()),
            format!("{:.0} req/s", floor.rps()),
            Some(div(hit.rps(), floor.rps())),
        ),
        Row::info(
            FIG,
            format!("hit p50 vs direct DB API GET, 0 ms added ({ROWS} rows)"),
            ms(hit.pct_ms(50.0)),
            ms(direct0.pct_ms(50.0)),
            Some(div(hit.pct_ms(50.0), direct0.pct_ms(50.0))),
        ),
        Row::info(
            FIG,
            "hit p50 vs direct DB API GET, 20 ms added",
            ms(hit20.pct_ms(50.0)),
            ms(direct20.pct_ms(50.0)),
            Some(p50_vs_db20),
        )
        .at_most("≤ 0.05×", p50_vs_db20, 0.05)
        .headline("hit p50 vs a direct DB API GET with 20 ms added"),
        Row::info(
            FIG,
            "hit p99 vs direct DB API GET p99, 20 ms added",
            ms(hit20.pct_ms(99.0)),
            ms(direct20.pct_ms(99.0)),
            Some(div(hit20.pct_ms(99.0), direct20.pct_ms(99.0))),
        ),
    ];
    let hit_p50 = hit.pct_ms(50.0);
    let series = Series {
        runs: vec![
            ("floor (probe component)".into(), floor),
            ("cache hit".into(), hit),
            ("direct DB API, 0 ms".into(), direct0),
            ("direct DB API, +20 ms".into(), direct20),
            ("cache hit, origin +20 ms".into(), hit20),
        ],
    };
    Ok((rows, series, hit_p50))
}
