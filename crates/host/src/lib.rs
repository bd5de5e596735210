//! `cache-sync-host`: a small, faithful Spin host on wasmtime.
//!
//! It reads a `spin.toml` (manifest version 2) and runs it the way `spin up` does, for
//! the parts cache-sync uses: HTTP and cron triggers, spin-sdk 5.x (WASI preview 2)
//! components built for `wasm32-wasip1` or `wasm32-wasip2`, key-value stores on SQLite
//! or Redis placed by Spin's runtime-config file, application and component variables,
//! and outbound HTTP gated by `allowed_outbound_hosts`. Where Spin's behaviour matters
//! (route precedence, request headers, variable precedence, error answers, log files),
//! the module docs name the rule followed.
//!
//! # Layout
//! - `manifest`: `spin.toml` schema and validation.
//! - `runtime_config`: `--runtime-config-file` (key-value placements).
//! - `variables`: templates and provider precedence.
//! - `outbound`: `allowed_outbound_hosts` grammar and matching.
//! - `routes`: route table (Spin's matcher, `routefinder`).
//! - `kv`: key-value backends (SQLite, Redis).
//! - `componentize`: adapting `wasm32-wasip1` modules into components.
//! - `bindings`, `state`: the Spin interfaces and per-instance state.
//! - `app`: loading and validating an application.
//! - `http_trigger`, `cron_schedule`, `cron_trigger`: the triggers.
//! - `logs`: component stdio files and host messages.
//! - `run`: start-up output, serving until shutdown, and a handle for tests.

#![deny(missing_docs)]

pub mod app;
pub mod bindings;
pub mod cli;
pub mod componentize;
pub mod cron_schedule;
pub mod cron_trigger;
pub mod error;
pub mod http_trigger;
pub mod kv;
pub mod logs;
pub mod manifest;
pub mod outbound;
pub mod routes;
pub mod run;
pub mod runtime_config;
pub mod state;
pub mod variables;

pub use app::{App, AppOptions, LoadTimes};
pub use error::{InstantiateError, LoadError, ManifestError};
pub use run::RunningApp;
