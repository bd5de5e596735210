//! Project automation, run as `cargo xtask <command>`.
//!
//! - `build-wasm`: install the `wasm32-wasip1` target if missing, build the components
//!   (and the test component, and the flush component bound to the previous cron
//!   generation) with the `wasm-release` profile.
//! - `up`: build everything, start the reference DB API on 127.0.0.1:3001 (when it is
//!   built into the workspace) with auth on and its demo users, and the app on the embedded
//!   host at 127.0.0.1:3000, both given one service token (`db_api_token`); print the demo
//!   users' credentials.
//! - `test`: build the components, then run every test in the workspace.
//! - `bench`: build the components and release binaries, then run the benchmarks
//!   (`crates/bench`), which write `docs/bench/results.md`.
//! - `fuzz [--runs N] [--target NAME]`: run the libFuzzer targets of `fuzz/` (nightly and
//!   cargo-fuzz, installed if missing) for N inputs each (default 1,000,000), then minimize
//!   each target's corpus under `fuzz/corpus/`.
//! - `soak [--factor N]`: the reliability scenarios (`tests/all/reliability_*`) with their
//!   durations and kill rounds multiplied by N (default 4), one at a time; prints the
//!   README's reliability table.
//!
//! Plain `std::process::Command` calls; `$CARGO` is the cargo that runs xtask.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

const WASM_TARGET: &str = "wasm32-wasip1";
const WASM_PROFILE: &str = "wasm-release";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-wasm") => build_wasm(),
        Some("up") => up(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some(other) => Err(anyhow::anyhow!(
            "unknown command '{other}' (expected: build-wasm, up, test, bench, fuzz, soak)"
        )),
        None => Err(anyhow::anyhow!(
            "missing command (expected: build-wasm, up, test, bench, fuzz, soak)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("cannot run rustup (is Rust installed with rustup?)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target");
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", WASM_TARGET]);
    run(cmd, "rustup target add")
}

/// Where `build-wasm` leaves the components.
fn wasm_dir() -> PathBuf {
    root().join("target").join(WASM_TARGET).join(WASM_PROFILE)
}

fn build_wasm() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    let mut cmd = cargo();
    cmd.args(["build", "--target", WASM_TARGET, "--profile", WASM_PROFILE])
        .args(["-p", "gateway", "-p", "flush", "-p", "probe"]);
    run(cmd, "building the components")?;
    // Variants in their own target directory, so the feature sets do not rebuild each other:
    // the flush component bound to the previous cron generation, and the gateway for hosts
    // without wasi:keyvalue atomics (Fermyon Cloud, Akamai Functions).
    build_variant("flush", &["--features", "cron-v2"], "flush_cron_v2")?;
    build_variant("gateway", &["--no-default-features"], "gateway_no_atomics")
}

/// Builds `package` with `flags` in the variants target directory and copies it beside the
/// default components as `{name}.wasm`.
fn build_variant(package: &str, flags: &[&str], name: &str) -> anyhow::Result<()> {
    let dir = root().join("target").join("cron-v2");
    let mut cmd = cargo();
    cmd.args(["build", "--target", WASM_TARGET, "--profile", WASM_PROFILE])
        .args(["-p", package])
        .args(flags)
        .arg("--target-dir")
        .arg(&dir);
    run(cmd, &format!("building {name}"))?;
    let from = dir
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join(format!("{package}.wasm"));
    let to = wasm_dir().join(format!("{name}.wasm"));
    std::fs::copy(&from, &to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    build_wasm()?;
    let mut cmd = cargo();
    // The default members: every native crate (the components are tested through the host).
    cmd.args(["test"]).args(extra);
    run(cmd, "the tests")
}

fn soak(args: &[String]) -> anyhow::Result<()> {
    let factor: u64 = match args {
        [] => 4,
        [flag, n] if flag == "--factor" => n
            .parse()
            .ok()
            .filter(|&n| n >= 1)
            .with_context(|| format!("--factor: '{n}' is not a whole number ≥ 1"))?,
        _ => bail!("unknown arguments {args:?} (expected --factor N)"),
    };
    build_wasm()?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "cache-sync-tests",
        "--test",
        "all",
        "reliability_",
    ])
    .args(["--", "--nocapture", "--test-threads=1"])
    .env("CACHE_SYNC_SOAK", factor.to_string())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start the reliability tests")?;
    let mut rows = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading the tests' output")?;
            match line.strip_prefix("RELIABILITY-ROW ") {
                Some(row) => rows.push(row.to_owned()),
                None => eprintln!("{line}"),
            }
        }
    }
    let status = child.wait().context("waiting for the tests")?;
    println!("| Scenario | Iterations | Acknowledged writes | Refused or unanswered | Lost | Sent in two batches | Applied twice |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!("{row}");
    }
    println!("\nCommand: `cargo xtask soak --factor {factor}`");
    if !status.success() {
        bail!("the reliability tests failed ({status})");
    }
    Ok(())
}

fn bench(extra: &[String]) -> anyhow::Result<()> {
    build_wasm()?;
    // One build command for the three, so hyper's features (and so wasmtime-wasi-http)
    // are resolved once.
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "cache-sync-host",
        "-p",
        "db-api",
        "-p",
        "bench",
    ]);
    run(cmd, "building the release binaries")?;
    let mut cmd = Command::new(root().join("target").join("release").join("bench"));
    cmd.current_dir(root()).args(extra);
    run(cmd, "the benchmarks")
}

/// Kills a child process when dropped, so Ctrl-C or an error never leaves one behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference DB API's demo users and their published tokens (`db_api::auth::DEMO_USERS`,
/// which a db-api test holds this list to).
const DEMO_USERS: &[(&str, &str)] = &[
    ("alice", "demo-token-for-alice"),
    ("bob", "demo-token-for-bob"),
];

/// The service token for this run: `SPIN_VARIABLE_DB_API_TOKEN` when set, else fresh
/// random hex (it guards a loopback port for one run, and is never printed).
fn service_token() -> String {
    if let Some(t) = std::env::var("SPIN_VARIABLE_DB_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return t;
    }
    format!("svc-{}", random_hex())
}

/// The cache's `auth_key` (the secret of its credential digests): `SPIN_VARIABLE_AUTH_KEY`
/// when set, else the one kept in `.spin/auth_key`, made on the first run, so that entries
/// kept per caller survive a restart.
fn auth_key() -> anyhow::Result<String> {
    if let Some(k) = std::env::var("SPIN_VARIABLE_AUTH_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    {
        return Ok(k);
    }
    let path = root().join(".spin").join("auth_key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        if k.trim().len() >= 16 {
            return Ok(k.trim().to_owned());
        }
    }
    let k = random_hex();
    std::fs::create_dir_all(root().join(".spin"))?;
    std::fs::write(&path, &k).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(k)
}

/// 32 random hex digits.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = |salt: u64| {
        // RandomState is seeded from the OS's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}

fn up(extra: &[String]) -> anyhow::Result<()> {
    build_wasm()?;
    let mut cmd = cargo();
    cmd.args(["build", "-p", "cache-sync-host", "-p", "db-api"]);
    run(cmd, "building the host and the reference DB API")?;
    let bin = root().join("target").join("debug");
    let db_api = bin.join("db-api");
    let token = service_token();
    // The DB API announces the items its own routes change to the app, signed with a secret
    // made for this run (`SPIN_VARIABLE_INVALIDATE_SECRET` when set).
    let invalidate_secret = std::env::var("SPIN_VARIABLE_INVALIDATE_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("inv-{}", random_hex()));
    let mut children = Vec::new();
    if db_api.exists() {
        let child = Command::new(&db_api)
            .current_dir(root())
            .args(["--listen", "127.0.0.1:3001", "--auth", "on"])
            .args(["--announce-to", "http://127.0.0.1:3000"])
            .env("DB_API_TOKEN", &token)
            .env("DB_API_ANNOUNCE_SECRET", &invalidate_secret)
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start the reference DB API")?;
        children.push(Guard(child));
    }
    let mut host = Command::new(bin.join("cache-sync-host"));
    host.current_dir(root())
        .args([
            "--from",
            "spin.toml",
            "--listen",
            "127.0.0.1:3000",
            "--log-requests",
        ])
        .args(extra)
        .env("SPIN_VARIABLE_DB_API_TOKEN", &token)
        .env("SPIN_VARIABLE_AUTH_KEY", auth_key()?)
        .env("SPIN_VARIABLE_INVALIDATE_SECRET", &invalidate_secret)
        .stdin(Stdio::null());
    let mut host = Guard(host.spawn().context("cannot start the embedded host")?);
    eprintln!("xtask: app on http://127.0.0.1:3000 (try: curl http://127.0.0.1:3000/healthz)");
    eprintln!(
        "xtask: browser demo on http://127.0.0.1:3000/ (a demo user's token, below); dashboard \
         on http://127.0.0.1:3000/dashboard (needs SPIN_VARIABLE_ADMIN_TOKEN set)"
    );
    if !children.is_empty() {
        eprintln!(
            "xtask: reference DB API on http://127.0.0.1:3001, auth on (sessions: owner only; \
             profiles: signed-in users read, owner writes; public: anyone reads, signed-in users write); \
             its own PUT/DELETE /v1/items are announced to the app"
        );
        eprintln!(
            "xtask: demo users (a key is a user's own when it is the name or starts with 'name:'):"
        );
        for (name, token) in DEMO_USERS {
            eprintln!("xtask:   {name:<6} -H 'Authorization: Bearer {token}'");
        }
    }
    eprintln!("xtask: Ctrl-C stops both");
    let status = host.0.wait().context("waiting for the host")?;
    drop(children);
    if !status.success() {
        bail!("the host exited with {status}");
    }
    Ok(())
}

/// The targets of `fuzz/Cargo.toml`, each a call into `cache_core::fuzz_checks`.
const FUZZ_TARGETS: &[&str] = &["envelope", "key", "merge_patch", "batch_answer", "record"];
const FUZZ_DEFAULT_RUNS: u64 = 1_000_000;

/// `cargo +nightly …` through the rustup proxy, without the toolchain and the target
/// directory of the stable cargo that runs xtask (cargo-fuzz builds into `fuzz/target`).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTUP_TOOLCHAIN_SOURCE")
        .env_remove("CARGO")
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

fn succeeds(mut cmd: Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let mut runs = FUZZ_DEFAULT_RUNS;
    let mut targets: Vec<&str> = FUZZ_TARGETS.to_vec();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--runs" => {
                let n = rest.next().context("--runs needs a number")?;
                runs = n
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("--runs: '{n}' is not a number"))?;
            }
            "--target" => {
                let name = rest.next().context("--target needs a name")?;
                let Some(known) = FUZZ_TARGETS.iter().find(|t| **t == name.as_str()) else {
                    bail!(
                        "unknown fuzz target '{name}' (expected one of: {})",
                        FUZZ_TARGETS.join(", ")
                    );
                };
                targets = vec![known];
            }
            other => bail!("unknown argument '{other}' (expected --runs N, --target NAME)"),
        }
    }

    let mut version = nightly_cargo();
    version.arg("--version");
    if !succeeds(version) {
        bail!("cargo fuzz needs nightly Rust: `cargo +nightly --version` failed (install it with `rustup toolchain install nightly`)");
    }
    let mut fuzz_version = nightly_cargo();
    fuzz_version.args(["fuzz", "--version"]);
    if !succeeds(fuzz_version) {
        eprintln!("xtask: installing cargo-fuzz");
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "cargo-fuzz", "--locked"]);
        run(cmd, "cargo install cargo-fuzz")?;
    }

    let fuzz_dir = root().join("fuzz");
    let mut summaries = Vec::new();
    let mut crashed = Vec::new();
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        let seeds = fuzz_dir.join("seeds").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        eprintln!("xtask: fuzzing {target} for {runs} inputs");
        let started = Instant::now();
        let mut cmd = nightly_cargo();
        cmd.args(["fuzz", "run", target])
            .arg(&corpus)
            .arg(&seeds)
            .args(["--", &format!("-runs={runs}"), "-print_final_stats=1"]);
        let (ok, executed) = run_fuzzer(cmd, target)?;
        let secs = started.elapsed().as_secs_f64();
        if !ok {
            crashed.push(target);
            summaries.push(format!(
                "{target}: CRASHED after {secs:.0} s; input under fuzz/artifacts/{target}/"
            ));
            continue;
        }
        let (files_before, _) = corpus_size(&corpus)?;
        // Keeps a smallest set of inputs that together reach every edge the corpus reaches
        // (greedy set cover, hit counts ignored), so the committed corpus stays small.
        let mut cmin = nightly_cargo();
        cmin.args(["fuzz", "cmin", target]).arg(&corpus).args([
            "--",
            "-use_counters=0",
            "-set_cover_merge=1",
        ]);
        run(cmin, &format!("minimizing the {target} corpus"))?;
        let (files, bytes) = corpus_size(&corpus)?;
        summaries.push(format!(
            "{target}: {} inputs in {secs:.0} s, no crash; corpus {files} files, {} KiB \
             (minimized from {files_before})",
            executed.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            bytes.div_ceil(1024),
        ));
    }
    for line in &summaries {
        eprintln!("xtask: fuzz {line}");
    }
    if !crashed.is_empty() {
        bail!(
            "fuzz target(s) crashed: {}. Reproduce with `cargo +nightly fuzz run <target> <input>`; \
             once fixed, keep the input under fuzz/regressions/<target>/ so `cargo test` replays it",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// Runs one fuzzer, passing its output through; returns whether it exited cleanly and how
/// many inputs it executed (from libFuzzer's final stats).
fn run_fuzzer(mut cmd: Command, target: &str) -> anyhow::Result<(bool, Option<u64>)> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start cargo fuzz for {target}"))?;
    let mut executed = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading the fuzzer's output")?;
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                executed = n.trim().parse().ok();
            }
            eprintln!("{line}");
        }
    }
    let status = child.wait().context("waiting for the fuzzer")?;
    Ok((status.success(), executed))
}

/// Files and bytes in a corpus directory.
fn corpus_size(dir: &Path) -> anyhow::Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}
