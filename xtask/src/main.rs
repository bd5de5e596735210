//! Project automation, run as `cargo xtask <command>`.
//!
//! - `build-wasm`: install the `wasm32-wasip1` target if missing, build the components
//!   (and the test component, and the flush component bound to the previous cron
//!   generation) with the `wasm-release` profile.
//! - `up`: build everything, start the reference DB API on 127.0.0.1:3001 (when it is
//!   built into the workspace) and the app on the embedded host at 127.0.0.1:3000.
//! - `test`: build the components, then run every test in the workspace.
//! - `bench`: build the components and release binaries, then run the benchmarks
//!   (`crates/bench`), which write `docs/bench/results.md`.
//!
//! Plain `std::process::Command` calls; `$CARGO` is the cargo that runs xtask.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

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
        Some(other) => Err(anyhow::anyhow!(
            "unknown command '{other}' (expected: build-wasm, up, test, bench)"
        )),
        None => Err(anyhow::anyhow!(
            "missing command (expected: build-wasm, up, test, bench)"
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
    // The flush component bound to the previous cron generation, in its own target
    // directory so the two feature sets do not rebuild each other.
    let v2_dir = root().join("target").join("cron-v2");
    let mut cmd = cargo();
    cmd.args(["build", "--target", WASM_TARGET, "--profile", WASM_PROFILE])
        .args(["-p", "flush", "--features", "cron-v2", "--target-dir"])
        .arg(&v2_dir);
    run(cmd, "building the flush component (cron-v2)")?;
    let from = v2_dir
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join("flush.wasm");
    let to = wasm_dir().join("flush_cron_v2.wasm");
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

fn up(extra: &[String]) -> anyhow::Result<()> {
    build_wasm()?;
    let mut cmd = cargo();
    cmd.args(["build", "-p", "cache-sync-host", "-p", "db-api"]);
    run(cmd, "building the host and the reference DB API")?;
    let bin = root().join("target").join("debug");
    let db_api = bin.join("db-api");
    let mut children = Vec::new();
    if db_api.exists() {
        let child = Command::new(&db_api)
            .current_dir(root())
            .args(["--listen", "127.0.0.1:3001"])
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
        .stdin(Stdio::null());
    let mut host = Guard(host.spawn().context("cannot start the embedded host")?);
    eprintln!("xtask: app on http://127.0.0.1:3000 (try: curl http://127.0.0.1:3000/healthz)");
    if !children.is_empty() {
        eprintln!("xtask: reference DB API on http://127.0.0.1:3001");
    }
    eprintln!("xtask: Ctrl-C stops both");
    let status = host.0.wait().context("waiting for the host")?;
    drop(children);
    if !status.success() {
        bail!("the host exited with {status}");
    }
    Ok(())
}
