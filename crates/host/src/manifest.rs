//! `spin.toml` (manifest version 2): the subset of Spin's schema this host runs.
//!
//! Parsing is strict where Spin is strict (unknown top-level and component fields are
//! refused, so a typo is not silently ignored), and every problem becomes one
//! [`ManifestError`] line naming the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ManifestError;

/// A parsed `spin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must be `2`.
    pub spin_manifest_version: u32,
    /// `[application]`.
    pub application: Application,
    /// `[variables]`: application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.<type>]]` tables, by trigger type.
    #[serde(default)]
    pub trigger: Triggers,
    /// `[component.<id>]` tables.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Application name.
    pub name: String,
    /// Application version.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Authors.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Application-wide trigger settings (accepted, not used by this host).
    #[serde(default)]
    pub trigger: Option<toml::Table>,
}

/// One `[variables]` entry: `{ default = "…" }` or `{ required = true }`, optionally secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when no provider supplies one.
    #[serde(default)]
    pub default: Option<String>,
    /// The application refuses to start without a value.
    #[serde(default)]
    pub required: bool,
    /// The value must not be logged.
    #[serde(default)]
    pub secret: bool,
}

/// The trigger tables this host knows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    /// `[[trigger.http]]`.
    #[serde(default)]
    pub http: Vec<HttpTriggerDecl>,
    /// `[[trigger.cron]]` (the cron trigger plugin's schema).
    #[serde(default)]
    pub cron: Vec<CronTriggerDecl>,
    /// Any other trigger type: refused at validation with a clear message.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

/// `[[trigger.http]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTriggerDecl {
    /// `route = "/..."` or `route = { private = true }`.
    pub route: RouteDecl,
    /// The component serving the route (an id; inline components are not supported).
    #[serde(default)]
    pub component: Option<String>,
    /// `executor = { type = "spin" }` (the only executor for Rust components).
    #[serde(default)]
    pub executor: Option<toml::Table>,
    /// `static_response = { status_code, headers, body }`.
    #[serde(default)]
    pub static_response: Option<StaticResponse>,
}

/// A route: a path pattern, or private (reachable only by service chaining).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDecl {
    /// A path pattern such as `/...` or `/api/:id`.
    Path(String),
    /// `{ private = true }`.
    Private {
        /// Must be true.
        private: bool,
    },
}

/// A response the host answers without running a component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    /// Status code, 200 when absent.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body.
    #[serde(default)]
    pub body: Option<String>,
}

/// `[[trigger.cron]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTriggerDecl {
    /// The component to call.
    pub component: String,
    /// Six (or seven) fields, seconds first, UTC.
    pub cron_expression: String,
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    /// Path of the `.wasm`, relative to the manifest's directory.
    pub source: SourceDecl,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables: name → template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables visible to the component.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Files to mount (not supported by this host; refused when non-empty).
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Patterns excluded from `files`.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Outbound destinations the component may reach.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Deprecated Spin 1 spelling of outbound HTTP permissions.
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// SQLite databases (not supported by this host; refused when non-empty).
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// AI models (not supported by this host; refused when non-empty).
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// `spin build` settings.
    #[serde(default)]
    pub build: Option<BuildDecl>,
    /// Tool-specific settings, ignored.
    #[serde(default)]
    pub tool: Option<toml::Table>,
    /// Component dependencies (not supported; refused when non-empty).
    #[serde(default)]
    pub dependencies: Option<toml::Table>,
}

/// `source = "path"` or `source = { url, digest }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SourceDecl {
    /// A local path.
    Path(PathBuf),
    /// A remote source (not fetched by this host).
    Remote {
        /// Download URL.
        url: String,
        /// Content digest.
        digest: String,
    },
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    /// Shell command.
    pub command: toml::Value,
    /// Working directory, relative to the manifest.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Files whose change triggers a rebuild under `spin watch`.
    #[serde(default)]
    pub watch: Vec<String>,
    /// Environment for the command.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and validates a manifest file.
    ///
    /// # Errors
    /// A [`ManifestError`] naming the problem: unreadable file, TOML syntax, a schema
    /// violation, or a semantic error (unknown component, bad id, unsupported feature).
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Manifest::parse(&text)
    }

    /// Parses and validates manifest text.
    ///
    /// # Errors
    /// See [`Manifest::from_file`].
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(one_line(&e.to_string())))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.spin_manifest_version != 2 {
            return Err(ManifestError::Invalid(format!(
                "spin_manifest_version must be 2, found {}",
                self.spin_manifest_version
            )));
        }
        if let Some(kind) = self.trigger.other.keys().next() {
            return Err(ManifestError::Invalid(format!(
                "trigger type '{kind}' is not supported by this host (supported: http, cron)"
            )));
        }
        for name in self.variables.keys() {
            check_variable_name(name)?;
        }
        for (name, decl) in &self.variables {
            match (&decl.default, decl.required) {
                (Some(_), true) => {
                    return Err(ManifestError::Invalid(format!(
                        "variable '{name}' cannot be both required and have a default"
                    )))
                }
                (None, false) => {
                    return Err(ManifestError::Invalid(format!(
                        "variable '{name}' must either be required or have a default"
                    )))
                }
                _ => {}
            }
        }
        for (id, component) in &self.component {
            check_component_id(id)?;
            for name in component.variables.keys() {
                check_variable_name(name)?;
            }
            let unsupported = [
                ("files", component.files.is_empty()),
                ("sqlite_databases", component.sqlite_databases.is_empty()),
                ("ai_models", component.ai_models.is_empty()),
                (
                    "dependencies",
                    component.dependencies.as_ref().is_none_or(|d| d.is_empty()),
                ),
            ];
            for (field, empty) in unsupported {
                if !empty {
                    return Err(ManifestError::Invalid(format!(
                        "component '{id}': '{field}' is not supported by this host"
                    )));
                }
            }
            if let SourceDecl::Remote { url, .. } = &component.source {
                return Err(ManifestError::Invalid(format!(
                    "component '{id}': remote source '{url}' is not supported by this host; build it locally"
                )));
            }
        }
        for trigger in &self.trigger.http {
            match (&trigger.component, &trigger.static_response) {
                (Some(id), None) => self.check_component_ref(id, "trigger.http")?,
                (None, Some(_)) => {}
                (Some(_), Some(_)) => {
                    return Err(ManifestError::Invalid(
                        "a [[trigger.http]] cannot have both 'component' and 'static_response'"
                            .into(),
                    ))
                }
                (None, None) => {
                    return Err(ManifestError::Invalid(
                        "a [[trigger.http]] needs 'component' or 'static_response'".into(),
                    ))
                }
            }
            if let RouteDecl::Private { private: false } = trigger.route {
                return Err(ManifestError::Invalid(
                    "route = { private = false } is not valid; use a path".into(),
                ));
            }
        }
        for trigger in &self.trigger.cron {
            self.check_component_ref(&trigger.component, "trigger.cron")?;
        }
        Ok(())
    }

    fn check_component_ref(&self, id: &str, table: &str) -> Result<(), ManifestError> {
        if self.component.contains_key(id) {
            Ok(())
        } else {
            Err(ManifestError::Invalid(format!(
                "[[{table}]] refers to component '{id}', which is not defined"
            )))
        }
    }
}

/// Spin variable names: lowercase ASCII letters, digits and underscores, starting
/// with a letter, no double or trailing underscore.
pub fn check_variable_name(name: &str) -> Result<(), ManifestError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if valid {
        Ok(())
    } else {
        Err(ManifestError::Invalid(format!(
            "invalid variable name '{name}': use lowercase letters, digits and single underscores, starting with a letter"
        )))
    }
}

/// Spin component ids: kebab-case words of lowercase letters and digits, each word
/// starting with a letter (`gateway`, `flush-v2`).
fn check_component_id(id: &str) -> Result<(), ManifestError> {
    let valid = !id.is_empty()
        && id.split('-').all(|word| {
            word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(ManifestError::Invalid(format!(
            "invalid component id '{id}': use kebab-case (lowercase words joined by '-')"
        )))
    }
}

/// Folds a multi-line parser message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
a = { default = "x" }
b = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.cron]]
component = "job"
cron_expression = "*/2 * * * * *"
[component.web]
source = "web.wasm"
key_value_stores = ["default"]
[component.web.variables]
c = "{{ a }}"
[component.job]
source = "job.wasm"
"#;

    #[test]
    fn minimal_manifest_parses() {
        let m = Manifest::parse(MINIMAL).expect("valid manifest");
        assert_eq!(m.trigger.http.len(), 1);
        assert_eq!(m.trigger.cron[0].component, "job");
        assert!(m.variables["b"].secret);
    }

    fn check_rejected(text: &str, needle: &str) {
        let err = Manifest::parse(text).expect_err("manifest should be rejected");
        let msg = err.to_string();
        assert!(msg.contains(needle), "'{msg}' should mention '{needle}'");
        assert!(!msg.contains('\n'), "error must be one line: {msg}");
    }

    #[test]
    fn invalid_manifests_are_rejected_with_one_line() {
        check_rejected(&MINIMAL.replace("= 2", "= 1"), "spin_manifest_version");
        check_rejected(
            &MINIMAL.replace("component = \"web\"", "component = \"nope\""),
            "nope",
        );
        check_rejected(&MINIMAL.replace("job", "Job_1"), "Job_1");
        check_rejected(&MINIMAL.replace("a = { default", "A = { default"), "A");
        check_rejected(&MINIMAL.replace("{ required = true,", "{ "), "required");
        check_rejected(
            &MINIMAL.replace("source = \"web.wasm\"", "source = \"web.wasm\"\nsorce = 1"),
            "sorce",
        );
        check_rejected(
            &format!("{MINIMAL}\n[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"web\"\n"),
            "redis",
        );
        check_rejected("spin_manifest_version = [", "TOML");
    }
}
