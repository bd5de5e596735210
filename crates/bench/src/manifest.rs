//! The application the benchmark runs: the gateway and, on `/probe/...`, the probe component
//! (the floor of figure 1: a minimal component round trip on the same host).
//!
//! Written to a scratch directory with absolute component paths; no cron trigger, since
//! flushes are driven by `POST /admin/flush` in simulated time. [`write_with_flush`] adds
//! the flush component on a cron trigger, for figure 8, which loads every component in
//! this process and never serves.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Every variable the gateway reads; an empty value means the core's default.
const VARS: &[&str] = &[
    "db_api_url",
    "db_api_token",
    "admin_token",
    "ttl",
    "stale_ttl",
    "stale_if_error",
    "negative_ttl",
    "compress_min_bytes",
    "max_value_bytes",
    "max_entries",
    "max_buffered_writes",
    "max_buffered_bytes",
    "max_dirty_age",
    "flush_batch_max_items",
    "flush_batch_max_bytes",
    "flush_max_batches",
    "flush_max_attempts",
    "flush_retry_base",
    "flush_retry_max",
    "flush_timeout",
    "lease_ttl",
];

/// Writes `spin.toml` into `dir` for the components in `wasm_dir`; returns its path.
pub fn write(dir: &Path, wasm_dir: &Path) -> Result<PathBuf> {
    let m = text(wasm_dir)?;
    save(dir, "spin.toml", &m)
}

/// [`write`]'s application plus the flush component on a cron trigger, as
/// `spin-with-flush.toml`; returns its path.
pub fn write_with_flush(dir: &Path, wasm_dir: &Path) -> Result<PathBuf> {
    let flush = component_path(wasm_dir, "flush")?;
    let mut m = text(wasm_dir)?;
    m.push_str(&format!(
        r#"[[trigger.cron]]
component = "flush"
cron_expression = "0 * * * * *"
[component.flush]
source = "{flush}"
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
[component.flush.variables]
"#
    ));
    for v in VARS {
        m.push_str(&format!("{v} = \"{{{{ {v} }}}}\"\n"));
    }
    save(dir, "spin-with-flush.toml", &m)
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

/// The manifest text of the gateway and the probe.
fn text(wasm_dir: &Path) -> Result<String> {
    let mut paths = Vec::new();
    for name in ["gateway", "probe"] {
        paths.push(component_path(wasm_dir, name)?);
    }
    let mut m = String::from(
        "spin_manifest_version = 2\n[application]\nname = \"cache-sync-bench\"\n[variables]\n",
    );
    for v in VARS {
        m.push_str(&format!("{v} = {{ default = \"\" }}\n"));
    }
    m.push_str(&format!(
        r#"[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/..."
component = "gateway"
[component.probe]
source = "{probe}"
key_value_stores = ["default"]
[component.gateway]
source = "{gateway}"
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
[component.gateway.variables]
"#,
        gateway = paths[0],
        probe = paths[1],
    ));
    for v in VARS {
        m.push_str(&format!("{v} = \"{{{{ {v} }}}}\"\n"));
    }
    Ok(m)
}
