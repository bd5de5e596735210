//! The application the benchmark runs: the gateway and, on `/probe/...`, the probe component
//! (the floor of figure 1: a minimal component round trip on the same host).
//!
//! Written to a scratch directory with absolute component paths; no cron trigger, since
//! flushes are driven by `POST /admin/flush` in simulated time. [`write_with_flush`] adds
//! the flush component on a cron trigger, for figure 8, which loads every component in
//! this process and never serves.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cache_sync_testkit::Manifest;

/// Writes `spin.toml` into `dir` for the components in `wasm_dir`; returns its path.
pub fn write(dir: &Path, wasm_dir: &Path) -> Result<PathBuf> {
    let m = manifest(wasm_dir)?.render();
    save(dir, "spin.toml", &m)
}

/// [`write`]'s application plus the flush component on a cron trigger, as
/// `spin-with-flush.toml`; returns its path.
pub fn write_with_flush(dir: &Path, wasm_dir: &Path) -> Result<PathBuf> {
    let flush = component_path(wasm_dir, "flush")?;
    // Loaded, never served: no DB API is given, so `db_api_url` needs a default.
    let m = manifest(wasm_dir)?
        .default("db_api_url", "http://127.0.0.1:9")
        .flush(&flush, "0 * * * * *", "http://127.0.0.1:*")
        .render();
    save(dir, "spin-with-flush.toml", &m)
}

/// [`write`]'s application with a second store label, `buffer`, granted to every component
/// (for `buffer_store`), as `spin-split.toml`; returns its path.
pub fn write_split(dir: &Path, wasm_dir: &Path) -> Result<PathBuf> {
    let m = manifest(wasm_dir)?.store("buffer").render();
    save(dir, "spin-split.toml", &m)
}

/// The absolute path of `{name}.wasm` in `wasm_dir`, which must exist.
fn component_path(wasm_dir: &Path, name: &str) -> Result<String> {
    let p = wasm_dir.join(format!("{name}.wasm"));
    if !p.exists() {
        bail!(
            "{} is missing: build the components with `cargo xtask build-wasm`",
            p.display()
        );
    }
    let abs = std::fs::canonicalize(&p)?;
    Ok(abs.display().to_string().replace('\\', "/"))
}

fn save(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The gateway and the probe.
fn manifest(wasm_dir: &Path) -> Result<Manifest> {
    Ok(Manifest::new("cache-sync-bench")
        .probe(&component_path(wasm_dir, "probe")?)
        .gateway(&component_path(wasm_dir, "gateway")?, "http://127.0.0.1:*"))
}
