//! `bench`: the figures a user decides by, each next to a baseline measured in the same run.
//!
//! Starts the reference DB API and the app on the embedded host as child processes on free
//! loopback ports, drives them with the closed-loop load generator in [`load`], loads the
//! components in this process through the host library for the per-component start-up
//! times, and writes a Markdown table (and an SVG plot) into `--out`. A full run into the
//! default `--out` also rewrites the summary between the `<!-- bench:begin -->` and
//! `<!-- bench:end -->` lines of the workspace's `README.md`.
//!
//! `cargo xtask bench [--quick]` builds everything and runs it; by hand,
//! `cargo run --release -p bench -- [--quick] [--out DIR]` after
//! `cargo build --release -p cache-sync-host -p db-api` and `cargo xtask build-wasm`.
//! Children are killed on every exit path; every loop and wait is bounded.

mod client;
mod direct;
mod documents;
mod figures;
mod load;
mod machine;
mod manifest;
mod plot;
mod procs;
mod report;
mod zipf;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use crate::client::Http;
use crate::figures::Ctx;
use crate::procs::{Bins, DbApi, Host};
use crate::report::{Header, Row};

/// Benchmark the cache against its baselines and write the results table.
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Cli {
    /// Short smoke run: fewer requests and 1 s windows (the figures are then rough); never
    /// touches the README.
    #[arg(long)]
    quick: bool,
    /// Where `results.md` and the plots go [default: docs/bench in the workspace]. Given,
    /// the README is left alone (its summary links to the default location).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the release binaries `cache-sync-host` and `db-api` are
    /// [default: target/release in the workspace].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the components are [default: target/wasm32-wasip1/wasm-release in the workspace].
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
    /// Run only this figure (repeatable: `--figure 1 --figure 5`; 1 to 9, 11 to 15; figure 14,
    /// a million entries on Redis, runs only when asked for). A partial run
    /// never touches the README, and writes into `docs/bench/raw` (not versioned) unless
    /// `--out` is given, so it cannot replace the full run's results.
    #[arg(long = "figure", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=15))]
    figures: Vec<u32>,
}

impl Cli {
    /// Whether figure `n` is part of this run.
    fn runs(&self, n: u32) -> bool {
        self.figures.is_empty() || self.figures.contains(&n)
    }

    /// Whether only some figures run.
    fn partial(&self) -> bool {
        !self.figures.is_empty()
    }
}

/// Paths the run uses, defaults resolved against the workspace root so that the benchmark
/// works from any directory.
struct Paths {
    out: PathBuf,
    bin_dir: PathBuf,
    wasm_dir: PathBuf,
    /// The README whose summary a full run rewrites; `None` with `--out`.
    readme: Option<PathBuf>,
}

impl Paths {
    fn of(cli: &Cli) -> Paths {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let pick = |given: &Option<PathBuf>, default: &str| {
            given.clone().unwrap_or_else(|| root.join(default))
        };
        let out = if cli.partial() {
            "docs/bench/raw"
        } else {
            "docs/bench"
        };
        Paths {
            out: pick(&cli.out, out),
            bin_dir: pick(&cli.bin_dir, "target/release"),
            wasm_dir: pick(&cli.wasm_dir, "target/wasm32-wasip1/wasm-release"),
            readme: (cli.out.is_none() && !cli.partial()).then(|| root.join("README.md")),
        }
    }
}

/// The admin token the benchmark's hosts run with (loopback only).
const ADMIN_TOKEN: &str = "bench-admin-token";
/// TTL of the second host, which measures stale hits.
const SHORT_TTL: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            eprintln!(
                "bench: {}",
                text.lines().next().unwrap_or("invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On Ctrl-C the run future is dropped, which kills the child processes it owns.
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one figure if it is `wanted`; a failure is reported as a missing figure and the run
/// goes on.
async fn figure<T>(
    wanted: bool,
    name: &str,
    missing: &mut Vec<String>,
    f: impl Future<Output = Result<T>>,
) -> Option<T> {
    if !wanted {
        return None;
    }
    let start = Instant::now();
    eprintln!("bench: {name} …");
    match f.await {
        Ok(v) => {
            eprintln!(
                "bench: {name} done in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            Some(v)
        }
        Err(e) => {
            eprintln!("bench: {name} failed: {e:#}");
            missing.push(format!("{name}: failed ({e:#})"));
            None
        }
    }
}

fn vars(db_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("db_api_url", db_url),
        ("admin_token", ADMIN_TOKEN),
        ("max_entries", "200000"),
        ("max_buffered_writes", "100000"),
        ("max_buffered_bytes", "64MiB"),
        ("flush_max_batches", "1000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

async fn run(cli: Cli) -> Result<()> {
    if cli.figures.contains(&10) {
        anyhow::bail!("there is no figure 10 (figures: 1 to 9, 11 to 15)");
    }
    let started = Instant::now();
    let when = machine::now_utc();
    let load_at_start = machine::load_average();
    let paths = Paths::of(&cli);
    let bins = Bins::in_dir(&paths.bin_dir)?;
    let http = Http::new();
    let scratch = Scratch::new()?;
    let manifest = manifest::write(&scratch.0, &paths.wasm_dir)?;
    let (rows, missing, hit_series) =
        measure(&cli, &paths, &bins, &http, &manifest, &scratch.0).await?;
    drop(scratch);

    let mode = if cli.quick {
        "`--quick` smoke run: 1 s windows, 10k-request offload passes, 3 simulated minutes, 100 / 1k-write flushes, 2k-read auth passes: rough figures"
    } else {
        "full run: 3 s windows, 100k-request offload passes, 10 simulated minutes, 1k / 10k-write flushes, 6k-read auth passes"
    };
    let mode = if cli.partial() {
        let list: Vec<String> = cli.figures.iter().map(u32::to_string).collect();
        format!("{mode}; partial run: figure(s) {} only", list.join(", "))
    } else {
        mode.to_owned()
    };
    let mut machine = machine::describe();
    if let Some(load) = load_at_start {
        machine.push_str(&format!(" (load average {load:.2} when the run started)"));
    }
    let header = Header {
        when,
        machine,
        command: {
            let mut command = "cargo xtask bench".to_owned();
            if cli.quick {
                command.push_str(" --quick");
            }
            for n in &cli.figures {
                command.push_str(&format!(" --figure {n}"));
            }
            command
        },
        duration: format!("{:.0} s", started.elapsed().as_secs_f64()),
        notes: vec![
            mode,
            "loopback only; DB API (SQLite in memory) and host are child processes; the load generator (fixed connections, closed loop, HDR histograms) runs in the bench process on the same cores".to_owned(),
            "figures 1 to 9 run against one DB API with auth off; figure 11 against a DB API of its own with auth on (users, access rules, the test JWT issuer) and four hosts of its own, each with `ttl = 1h`".to_owned(),
            format!(
                "host and DB API binaries from `{}`",
                paths.bin_dir.display()
            ),
            format!(
                "figure 7's flush runs with {}",
                figures::flush::KNOBS
                    .iter()
                    .map(|(k, v)| format!("`{k} = {v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "figure 12 runs four hosts of its own, each with `max_buffered_writes = 20000`: two on SQLite files, two on a `redis-server` of its own (databases 0 and 1); one store of each pair is filled directly, the other stays empty".to_owned(),
            "every host runs with `--tcp-nodelay` except figure 13's host without it (Spin's socket: Spin never sets `TCP_NODELAY`), measured beside one with it".to_owned(),
            "plot: `hit-latency.svg` (figure 1's series)".to_owned(),
        ]
        .into_iter()
        .chain(cli.runs(1).then(|| figures::hit::WHERE_THE_TIME_GOES.to_owned()))
        .collect(),
    };
    let md = report::markdown(&header, &rows, &missing);
    println!("{md}");
    std::fs::create_dir_all(&paths.out)
        .with_context(|| format!("cannot create {}", paths.out.display()))?;
    let results = paths.out.join("results.md");
    std::fs::write(&results, &md).with_context(|| format!("cannot write {}", results.display()))?;
    if let Some(series) = hit_series {
        let svg = paths.out.join("hit-latency.svg");
        if let Err(e) =
            plot::latency_percentiles(&svg, "Figure 1: GET latency by percentile", &series.runs)
        {
            eprintln!("bench: plot not written: {e:#}");
        }
    }
    eprintln!("bench: wrote {}", results.display());
    match &paths.readme {
        Some(readme) if !cli.quick => {
            let summary = report::summary(&header, &rows, &missing, "docs/bench/results.md");
            write_readme(readme, &summary)?;
            eprintln!("bench: rewrote the summary in {}", readme.display());
        }
        _ => eprintln!("bench: README left alone (quick or partial run, or --out given)"),
    }
    Ok(())
}

/// Replaces the marked summary in `readme` with `summary`.
fn write_readme(readme: &Path, summary: &str) -> Result<()> {
    let text = std::fs::read_to_string(readme)
        .with_context(|| format!("cannot read {}", readme.display()))?;
    let Some(new) = report::replace_marked(&text, summary) else {
        anyhow::bail!(
            "{} needs exactly one `{}` line followed by one `{}` line around the benchmark summary",
            readme.display(),
            report::README_BEGIN,
            report::README_END
        );
    };
    std::fs::write(readme, new).with_context(|| format!("cannot write {}", readme.display()))
}

/// The run's scratch directory (manifest, KV state), removed when dropped: after the
/// children that use it, since it is dropped last.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("cache-sync-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Measured = (Vec<Row>, Vec<String>, Option<figures::hit::Series>);

async fn measure(
    cli: &Cli,
    paths: &Paths,
    bins: &Bins,
    http: &Http,
    manifest: &Path,
    scratch: &Path,
) -> Result<Measured> {
    let db_spawn = Instant::now();
    let db = DbApi::start(bins, http).await?;
    let db_ready = db_spawn.elapsed();
    let host_a = Host::start(
        bins,
        http,
        manifest,
        &scratch.join("state-a"),
        &vars(&db.url, &[]),
    )
    .await?;
    let short = format!("{}ms", SHORT_TTL.as_millis());
    let host_b = Host::start(
        bins,
        http,
        manifest,
        &scratch.join("state-b"),
        &vars(&db.url, &[("ttl", &short)]),
    )
    .await?;
    // Figure 1's hit with the rollout fixed by the variables (no rollout record read).
    let host_fixed = if cli.runs(1) {
        Some(
            Host::start(
                bins,
                http,
                manifest,
                &scratch.join("state-fixed"),
                &vars(&db.url, &[("rollout_overrides", "false")]),
            )
            .await?,
        )
    } else {
        None
    };
    let ctx = Ctx {
        http,
        db_url: &db.url,
        quick: cli.quick,
    };
    let a = host_a.url.as_str();
    let b = host_b.url.as_str();
    let mut rows = Vec::new();
    let mut missing = Vec::new();

    let hit = figure(
        cli.runs(1),
        "figure 1 (hit path)",
        &mut missing,
        figures::hit::run(&ctx, a, host_fixed.as_ref().map_or(a, |h| h.url.as_str())),
    )
    .await;
    let series = hit.map(|(r, s, _)| {
        rows.extend(r);
        s
    });
    let _ = ctx.db().read_latency(0).await;
    if let Some(r) = figure(
        cli.runs(5),
        "figure 5 (stampede)",
        &mut missing,
        figures::stampede::run(&ctx, a),
    )
    .await
    {
        rows.extend(r);
    }
    let _ = ctx.db().read_latency(0).await;
    if let Some(r) = figure(
        cli.runs(2),
        "figure 2 (misses)",
        &mut missing,
        figures::miss::misses(&ctx, a),
    )
    .await
    {
        rows.extend(r);
    }
    let _ = ctx.db().read_latency(0).await;
    if let Some(r) = figure(
        cli.runs(2),
        "figure 2 (stale)",
        &mut missing,
        figures::miss::stale(&ctx, b, SHORT_TTL),
    )
    .await
    {
        rows.extend(r);
    }
    let _ = ctx.db().read_latency(0).await;
    let batching = figure(
        cli.runs(4),
        "figure 4 (write batching)",
        &mut missing,
        figures::writes::run(&ctx, b, ADMIN_TOKEN),
    )
    .await
    .map(|(r, w)| {
        rows.extend(r);
        w
    });
    if let Some(r) = figure(
        cli.runs(6),
        "figure 6 (storage)",
        &mut missing,
        figures::storage::run(http, a, &host_a.state_dir, &paths.wasm_dir, cli.quick),
    )
    .await
    {
        rows.extend(r);
    }
    let offload = figure(
        cli.runs(3),
        "figure 3 (read offload)",
        &mut missing,
        figures::offload::run(&ctx, a),
    )
    .await
    .map(|(r, o)| {
        rows.extend(r);
        o
    });
    if let Some(r) = figure(
        cli.runs(7),
        "figure 7 (scale)",
        &mut missing,
        figures::scale::run(&ctx, a, &host_a.state_dir),
    )
    .await
    {
        rows.extend(r);
    }
    let mut starts = vec![host_a.ready_after, host_b.ready_after];
    // Figure 7's flush time on a host of its own, whose store holds only the flushed writes.
    let flush_vars = vars(&db.url, &figures::flush::KNOBS);
    if let Some(r) = figure(cli.runs(7), "figure 7 (flush time)", &mut missing, async {
        let host_c =
            Host::start(bins, http, manifest, &scratch.join("state-c"), &flush_vars).await?;
        starts.push(host_c.ready_after);
        figures::flush::run(&ctx, &host_c.url, &host_c.state_dir, ADMIN_TOKEN).await
    })
    .await
    {
        rows.extend(r);
    }
    if let Some(r) = figure(
        cli.runs(12),
        "figure 12 (write cost at scale)",
        &mut missing,
        async {
            let base = vars(ctx.db_url, &[]);
            figures::write_scale::run(bins, http, manifest, scratch, &base, cli.quick).await
        },
    )
    .await
    {
        rows.extend(r);
    }
    if let Some(r) = figure(
        cli.runs(13),
        "figure 13 (keep-alive without TCP_NODELAY)",
        &mut missing,
        async {
            let base = vars(ctx.db_url, &[]);
            figures::keep_alive::run(&ctx, bins, manifest, scratch, &base).await
        },
    )
    .await
    {
        rows.extend(r);
    }
    if let Some(r) = figure(
        cli.runs(15),
        "figure 15 (rollout: passthrough and shadow)",
        &mut missing,
        async {
            let base = vars(ctx.db_url, &[]);
            figures::rollout::run(&ctx, bins, manifest, scratch, &base, ADMIN_TOKEN).await
        },
    )
    .await
    {
        rows.extend(r);
    }
    // Figure 14 only when asked for: a million entries cost a minute and a gigabyte of Redis.
    if let Some(r) = figure(
        cli.figures.contains(&14),
        "figure 14 (one million entries on Redis)",
        &mut missing,
        async {
            let split = manifest::write_split(scratch, &paths.wasm_dir)?;
            let base = vars(ctx.db_url, &[]);
            figures::million::run(&ctx, bins, &split, scratch, &base, ADMIN_TOKEN).await
        },
    )
    .await
    {
        rows.extend(r);
    }
    if cli.runs(8) {
        rows.extend(figures::startup::rows(&starts, db_ready));
    }
    if let Some(r) = figure(
        cli.runs(8),
        "figure 8 (component compile and instantiate)",
        &mut missing,
        async {
            let with_flush = manifest::write_with_flush(scratch, &paths.wasm_dir)?;
            figures::startup::components(&with_flush, cli.quick).await
        },
    )
    .await
    {
        rows.extend(r);
    }
    if cli.runs(9) {
        rows.extend(figures::cost::rows(offload.as_ref(), batching.as_ref()));
    }
    // Figure 11 runs against a DB API of its own, with auth on, and hosts of its own.
    let env = figures::auth::Env {
        bins,
        manifest,
        scratch,
        vars,
    };
    if let Some(r) = figure(
        cli.runs(11),
        "figure 11 (auth)",
        &mut missing,
        figures::auth::run(&ctx, &env),
    )
    .await
    {
        rows.extend(r);
    }
    // Figure order in the table: by figure number.
    rows.sort_by_key(|r| {
        r.figure
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(99)
    });
    Ok((rows, missing, series))
}
