//! Spin's runtime-config file (`--runtime-config-file`): where each key-value store
//! label lives.
//!
//! ```toml
//! [key_value_store.default]
//! type = "spin"                 # a SQLite file
//! path = ".spin/cache.db"       # relative to this file's directory
//!
//! [key_value_store.default]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! Labels without an entry fall back to Spin's default: `default` lives in
//! `<state dir>/sqlite_key_value.db`; any other label is an error at start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LoadError;

/// A parsed runtime-config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    /// Key-value store placements by label.
    pub key_value_stores: BTreeMap<String, KvPlacement>,
}

/// Where one key-value label lives.
#[derive(Debug, Clone, PartialEq)]
pub enum KvPlacement {
    /// A SQLite file (absolute, or already resolved against the config's directory);
    /// `None` means the default file in the state directory.
    Spin(Option<PathBuf>),
    /// A Redis server URL.
    Redis(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawKv>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawKv {
    Spin {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
}

impl RuntimeConfig {
    /// Reads a runtime-config file; relative paths resolve against its directory.
    ///
    /// # Errors
    /// [`LoadError::RuntimeConfig`] naming the file and the problem.
    pub fn from_file(path: &Path) -> Result<RuntimeConfig, LoadError> {
        let err = |reason: String| LoadError::RuntimeConfig {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        RuntimeConfig::parse(&text, base).map_err(err)
    }

    /// Parses runtime-config text; relative paths resolve against `base`.
    ///
    /// # Errors
    /// A one-line message naming the problem.
    pub fn parse(text: &str, base: &Path) -> Result<RuntimeConfig, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            e.to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })?;
        let key_value_stores = raw
            .key_value_store
            .into_iter()
            .map(|(label, kv)| {
                let placement = match kv {
                    RawKv::Spin { path } => KvPlacement::Spin(path.map(|p| {
                        if p.is_absolute() || p.as_os_str() == ":memory:" {
                            p
                        } else {
                            base.join(p)
                        }
                    })),
                    RawKv::Redis { url } => KvPlacement::Redis(url),
                };
                (label, placement)
            })
            .collect();
        Ok(RuntimeConfig { key_value_stores })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_placed_and_paths_resolved() {
        let rc = RuntimeConfig::parse(
            r#"
[key_value_store.default]
type = "redis"
url = "redis://127.0.0.1:6379"
[key_value_store.local]
type = "spin"
path = "data/kv.db"
[key_value_store.mem]
type = "spin"
path = ":memory:"
[key_value_store.plain]
type = "spin"
"#,
            Path::new("/etc/app"),
        )
        .expect("valid");
        let kv = &rc.key_value_stores;
        assert_eq!(
            kv["default"],
            KvPlacement::Redis("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            kv["local"],
            KvPlacement::Spin(Some("/etc/app/data/kv.db".into()))
        );
        assert_eq!(kv["mem"], KvPlacement::Spin(Some(":memory:".into())));
        assert_eq!(kv["plain"], KvPlacement::Spin(None));
    }

    #[test]
    fn bad_configs_are_rejected() {
        for text in [
            "[key_value_store.x]\ntype = \"etcd\"\n",
            "[key_value_store.x]\ntype = \"redis\"\n",
            "[key_value_store.x]\ntype = \"spin\"\npath = 3\n",
            "[key_value_stor.x]\ntype = \"spin\"\n",
            "not toml [",
        ] {
            let err = RuntimeConfig::parse(text, Path::new(".")).expect_err(text);
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
