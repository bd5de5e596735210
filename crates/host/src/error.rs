//! The host's typed errors. Each displays as one line naming the problem, because
//! `cache-sync-host` prints exactly that line and exits non-zero on a bad setup.

use std::path::PathBuf;

/// A problem with `spin.toml`.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {}: {reason}", path.display())]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("invalid TOML in manifest: {0}")]
    Syntax(String),
    /// The manifest is well-formed but inconsistent.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

/// A problem found while loading the application described by a valid manifest.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// See [`ManifestError`].
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The runtime configuration file is unreadable or invalid.
    #[error("invalid runtime config {}: {reason}", path.display())]
    RuntimeConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A component's `.wasm` is missing or unreadable.
    #[error("component '{component}': cannot read {}: {reason}", path.display())]
    MissingWasm {
        /// Component id.
        component: String,
        /// The resolved source path.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A component's `.wasm` is not a valid module or component, or does not link.
    #[error("component '{component}': {reason}")]
    BadComponent {
        /// Component id.
        component: String,
        /// What is wrong.
        reason: String,
    },
    /// A route is not a valid Spin route, or two routes collide.
    #[error("invalid route '{route}': {reason}")]
    BadRoute {
        /// The route as written.
        route: String,
        /// What is wrong.
        reason: String,
    },
    /// A variable problem: required without a value, bad template, unknown reference.
    #[error("{0}")]
    Variable(String),
    /// An `allowed_outbound_hosts` entry cannot be parsed.
    #[error("component '{component}': invalid allowed_outbound_hosts entry '{entry}': {reason}")]
    BadOutboundHost {
        /// Component id.
        component: String,
        /// The entry as written (after template expansion).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A key-value store label is used but not defined, or its backend cannot be opened.
    #[error("key-value store '{label}': {reason}")]
    KeyValue {
        /// The store label.
        label: String,
        /// What is wrong.
        reason: String,
    },
    /// A cron expression is not valid.
    #[error("invalid cron expression '{expression}' for component '{component}': {reason}")]
    BadCron {
        /// Component id.
        component: String,
        /// The expression as written.
        expression: String,
        /// What is wrong.
        reason: String,
    },
    /// The wasm engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
}

/// Why [`crate::App::instantiate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InstantiateError {
    /// The application has no component with this id.
    #[error("no component '{0}'")]
    UnknownComponent(String),
    /// wasmtime refused to instantiate it (for example, the instance pool is exhausted).
    #[error("component '{component}': cannot instantiate: {reason}")]
    Failed {
        /// Component id.
        component: String,
        /// wasmtime's error.
        reason: String,
    },
}
