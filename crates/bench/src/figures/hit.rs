//! Figure 1, the hit path: what a cache hit costs against what Spin itself costs (the floor:
//! a minimal component on the same host, measured in rounds alternating with the hit's, and
//! with the hit of a second host whose rollout is fixed by its variables, which reads one KV
//! key as the floor does instead of the entry and the rollout record),
//! against an in-memory key-value store on its own
//! (a Redis `GET` of a value of the same size, one connection, beside the hit on one
//! connection), and against going to the
//! database API directly, on loopback and with 20 ms added per request (a typical
//! edge-to-origin round trip).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use super::{get_load, warm_get_load, Ctx, WARM_UP};
use crate::load::{new_hist, Outcome, Stop};
use crate::procs::Redis;
use crate::report::{div, ms, Row};

const FIG: &str = "1 hit path";
/// Rows in the DB API during the figure.
pub const ROWS: u64 = 100_000;
/// Concurrent connections of each window.
const CONNECTIONS: usize = 2;

/// What a profile of the hit path showed, for the results' notes (measured by hand: valgrind's
/// callgrind on the host serving 200 hits and 200 floor requests, so instruction counts, which
/// the machine's load does not move; kept here beside the figure it explains).
pub const WHERE_THE_TIME_GOES: &str = "where a hit's time goes (callgrind, instructions per request on the host serving figure 1's hit and floor, on-demand instance allocator, 2026-12-01): a hit was 778k instructions against the floor's 354k (2.20×; measured against the floor as it was then, `/probe/headers`, which reads no KV; the floor is now `/probe/kv/default/c:hit:key-4242`, one KV read of the hit's own entry). Outside the component's handler (instantiation, HTTP, teardown) 258k against 232k; in it 520k against 123k: the configuration 201k (36 Spin variable lookups, about 5.1k each, 96% of it the host call: about 2.8k of wasmtime's per-call lifting, lowering and task bookkeeping, 1.5k the host's lookup), the request's conversion to spin-sdk's `Request` 87k, the KV open and get 41k (SQLite 15k), the route table built per request 36k, the response (headers, body, hand-over) about 46k, six clock reads 15k, the entry's decoding 14k; rate limits are off in this figure (no `increment`) and the caller is anonymous (no HMAC). The 36 lookups were 21 before the auth and rate-limit variables. After reading `jwt_leeway` once, reading the configuration once per request and answering item paths without the route table: 709k (2.00×), the configuration 180k (35 lookups). Wall time is another matter (perf, figure 1's load, pooling allocator): with memories returned to the kernel after each instance, about a quarter of the host's CPU went to `madvise`, page faults and the TLB shootdowns they cause across cores; keeping 2 MiB of memory and 512 KiB of tables resident, as Spin's engine does, took the hit p50 from 0.60 to 0.47 ms in the same quick run. What remains is spread over wasmtime's per-instance setup (memory image, zeroing the resident pages), the socket writes and the blocking pool's thread hand-offs; the floor alone, one KV read in a trivial component, is several Redis GETs. Reading every variable through one component variable (`cache_settings`, a template Spin composes from all of them) instead of 37 lookups took a hit from 600k to 435k instructions (callgrind, 200 hits on the on-demand allocator, same host and manifest, 2026-12-01). Host CPU per request, one connection (perf: task-clock, context switches and samples, wasmtime's perf map for the guest, 2026-12-01): each SQLite KV call runs in `block_in_place`, as Spin's does, and that hand-off of the worker to another thread costs 3 to 5 context switches and 0.1 to 0.2 ms of CPU per call, more than the query; a hit makes two calls (its entry, the rollout record) where the floor makes one, yet the hit with `rollout_overrides = false`, one call like the floor's, measures about the same in the same interleaved rounds (its own row in figure 1), so the rest of the gap is the gateway's own work in the instance rather than its KV reads. Resetting an instance's memory after the request (every page touched within the 2 MiB kept resident, as Spin keeps it) was about 13% of the host's CPU: the gateway now links a 256 KiB stack instead of Rust's 1 MiB, about 10% less CPU per hit. Preparing each SQLite statement afresh was about a tenth of a KV call: statements are now prepared once, as Spin's are. The guest's own code was 15% of the host's CPU, a quarter of it taking `cache_settings` apart, now done without a search per setting. So the floor, one KV read in a trivial component, is itself about 10 Redis GETs on one connection (the row beside the Redis row): instantiation, the hand-off and the memory reset are most of it, and they are Spin's. Then (callgrind, 200 hits and 200 floor requests by curl, a connection each, rate limits off, on-demand allocator, 2026-12-02) a hit was 725k instructions against the floor's 509k (1.42×), the configuration 157k of it: taking `cache_settings` apart into a table by each variable's place instead of a map took the hit to 667k, and answering an item read from its head as `wasi:http` hands it over, instead of spin-sdk's request conversion (which reads the body, parses the URI and hashes every header), to 611k against 510k (1.20×). What is left of the difference: the configuration's reading (about 64k in the guest, 35k in the host composing `cache_settings`), the rollout record's `get` (29k), clock and random reads, and the response's headers. In the full run right after (2026-12-02), the hit with `rollout_overrides = false` measured 1.00× the floor against 1.10× for the default hit: with less of the gateway's own work left, the rollout record's read (a second `block_in_place` hand-off on SQLite) is most of the rest";

/// Latency series of the figure, for the plot.
pub struct Series {
    /// Label and outcome.
    pub runs: Vec<(String, Outcome)>,
}

/// Measures the figure on `host`, and the hit again on `fixed`, the same application with
/// `rollout_overrides = false`; the DB API must be empty of `hit` rows.
pub async fn run(ctx: &Ctx<'_>, host: &str, fixed: &str) -> Result<(Vec<Row>, Series, f64)> {
    let db = ctx.db();
    db.seed("hit", "key-", ROWS, 256).await?;
    let key_path = "/v1/hit/key-4242".to_string();
    let warm = ctx.http.get(&format!("{host}{key_path}")).await?;
    ensure!(warm.status == 200, "warming GET answered {}", warm.status);
    let warm_fixed = ctx.http.get(&format!("{fixed}{key_path}")).await?;
    ensure!(
        warm_fixed.status == 200,
        "warming GET answered {}",
        warm_fixed.status
    );
    let stop = Stop::After(ctx.window());
    // The floor: a component reading the hit's own entry from the same store, one KV `get`.
    let floor_path = "/probe/kv/default/c:hit:key-4242".to_string();
    let [floor, hit, hit_fixed] = alternate(
        [(host, &floor_path), (host, &key_path), (fixed, &key_path)],
        ctx.window(),
    )
    .await?;
    ensure!(floor.failures() == 0, "floor answered {:?}", floor.statuses);
    ensure!(
        hit_fixed.failures() == 0 && hit_fixed.cache_count("HIT") == hit_fixed.count(),
        "hit with the rollout fixed: not every answer was a HIT ({:?})",
        hit_fixed.cache
    );
    // Started here, not before the figure, so that it runs only during its own window.
    let redis = match Redis::start().await {
        Ok(server) => redis_get_load(&server.url, &warm.body, ctx.window()).await,
        Err(e) => Err(e),
    };
    // The hit and the floor under the Redis baseline's load: one connection, one request at
    // a time.
    let hit1 = warm_get_load(host, key_path.clone(), 1, stop).await?;
    let floor1 = warm_get_load(host, floor_path.clone(), 1, stop).await?;
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
        ("hit (1 connection)", &hit1),
        ("floor (1 connection)", &floor1),
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
    ensure!(
        hit1.cache_count("HIT") == hit1.count(),
        "one-connection hit run: not every answer was a HIT ({:?})",
        hit1.cache
    );
    let redis_row = redis_row(&hit1, warm.body.len(), redis.as_ref());
    let floor_redis_row = redis.as_ref().ok().map(|r| {
        Row::info(
            FIG,
            "floor p50 vs Redis GET p50 (1 connection each): what the host costs before the gateway's own work",
            ms(floor1.pct_ms(50.0)),
            ms(r.pct_ms(50.0)),
            Some(div(floor1.pct_ms(50.0), r.pct_ms(50.0))),
        )
    });
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let mut rows = vec![
        Row::info(
            FIG,
            "hit p50 vs floor p50",
            ms(hit.pct_ms(50.0)),
            format!("{} (probe component)", ms(floor.pct_ms(50.0))),
            Some(p50_vs_floor),
        )
        .at_most("≤ 1.2×", p50_vs_floor, 1.2)
        .headline("hit p50 vs the floor (a minimal component on the same host)"),
        redis_row,
        Row::info(
            FIG,
            "hit p50 with `rollout_overrides = false` (no rollout record read: one KV read, as the floor's) vs floor p50",
            ms(hit_fixed.pct_ms(50.0)),
            format!("{} (the same floor)", ms(floor.pct_ms(50.0))),
            Some(div(hit_fixed.pct_ms(50.0), floor.pct_ms(50.0))),
        ),
        Row::info(
            FIG,
            "hits/s with `rollout_overrides = false` vs the floor's",
            format!("{:.0} hits/s", hit_fixed.rps()),
            format!("{:.0} req/s", floor.rps()),
            Some(div(hit_fixed.rps(), floor.rps())),
        ),
        Row::info(
            FIG,
            "hit p99 vs floor p99",
            ms(hit.pct_ms(99.0)),
            ms(floor.pct_ms(99.0)),
            Some(div(hit.pct_ms(99.0), floor.pct_ms(99.0))),
        ),
        Row::info(
            FIG,
            format!(
                "hits/s vs the floor's, {cpus} logical CPUs ({CONNECTIONS} connections, closed loop; the load generator shares the CPUs)"
            ),
            format!("{:.0} hits/s", hit.rps()),
            format!("{:.0} req/s", floor.rps()),
            Some(div(hit.rps(), floor.rps())),
        )
        .headline(format!("hits/s on {cpus} logical CPUs vs the floor's")),
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
    // Beside the Redis row it explains.
    if let Some(row) = floor_redis_row {
        rows.insert(2, row);
    }
    let hit_p50 = hit.pct_ms(50.0);
    let mut runs = vec![
        ("floor (probe component)".into(), floor),
        ("cache hit".into(), hit),
        ("cache hit, 1 connection".into(), hit1),
    ];
    if let Ok(redis) = redis {
        runs.push(("Redis GET, 1 connection".into(), redis));
    }
    runs.extend([
        ("direct DB API, 0 ms".into(), direct0),
        ("direct DB API, +20 ms".into(), direct20),
        ("cache hit, origin +20 ms".into(), hit20),
    ]);
    let series = Series { runs };
    Ok((rows, series, hit_p50))
}

/// Key of the Redis baseline's value.
const REDIS_KEY: &str = "bench:hit";

/// Rounds of [`alternate`].
const ROUNDS: u32 = 4;

/// The floor and the hit measured in alternating rounds of a quarter window each, after one
/// warm-up of each: on a shared machine, whatever else runs weighs on both alike, so their
/// ratio holds where two back-to-back windows would each catch a different neighbour.
async fn alternate<const N: usize>(
    runs: [(&str, &String); N],
    window: Duration,
) -> Result<[Outcome; N]> {
    let round = Stop::After(window / ROUNDS);
    let mut out = Vec::with_capacity(N);
    for (host, path) in runs {
        out.push(warm_get_load(host, path.clone(), CONNECTIONS, round).await?);
    }
    for _ in 1..ROUNDS {
        for ((host, path), o) in runs.iter().zip(&mut out) {
            o.absorb(&get_load(host, (*path).clone(), CONNECTIONS, round).await?)?;
        }
    }
    out.try_into()
        .map_err(|_| anyhow::anyhow!("one outcome per run"))
}

/// The row of the one-connection hit's p50 against a Redis `GET` p50 (the same load: one
/// connection, one request at a time), or why Redis was not measured.
fn redis_row(hit: &Outcome, bytes: usize, redis: Result<&Outcome, &anyhow::Error>) -> Row {
    let measure = format!(
        "hit p50 vs Redis GET p50 (loopback, 1 connection each, one request at a time, {bytes}-byte value)"
    );
    let label = "hit p50 vs a Redis GET of the same value";
    match redis {
        Ok(r) => {
            let x = div(hit.pct_ms(50.0), r.pct_ms(50.0));
            Row::info(
                FIG,
                measure,
                ms(hit.pct_ms(50.0)),
                format!(
                    "{} (p99 {}; {:.0} GET/s)",
                    ms(r.pct_ms(50.0)),
                    ms(r.pct_ms(99.0)),
                    r.rps()
                ),
                Some(x),
            )
            .at_most("≤ 6×", x, 6.0)
            .headline(label)
        }
        Err(e) => {
            let mut row = Row::info(
                FIG,
                measure,
                ms(hit.pct_ms(50.0)),
                format!("not measured: {e:#}"),
                None,
            )
            .headline(label);
            row.target = "≤ 6×".into();
            row
        }
    }
}

/// `GET`s of one key holding `value`, one after another on one connection to the Redis at
/// `url`, for `window` after [`WARM_UP`] unrecorded ones; each answer is checked to be the
/// value.
async fn redis_get_load(url: &str, value: &[u8], window: Duration) -> Result<Outcome> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET")
        .arg(REDIS_KEY)
        .arg(value)
        .query_async::<()>(&mut con)
        .await?;
    let get = redis::cmd("GET").arg(REDIS_KEY).clone();
    for _ in 0..WARM_UP {
        get.query_async::<Vec<u8>>(&mut con).await?;
    }
    let mut hist = new_hist()?;
    let started = Instant::now();
    // Bounded: the window is a few seconds.
    while started.elapsed() < window {
        let t = Instant::now();
        let got: Vec<u8> = get.query_async(&mut con).await?;
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        hist.saturating_record(us.max(1));
        ensure!(got == value, "Redis GET answered another value");
    }
    let answered = hist.len();
    Ok(Outcome {
        hist,
        elapsed: started.elapsed(),
        statuses: BTreeMap::from([(200, answered)]),
        cache: BTreeMap::new(),
    })
}
