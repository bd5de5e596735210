//! Reference main-database API for cache-sync.
//!
//! cache-sync is a cache at the edge that writes behind to a "main DB API". This crate is a
//! real, small implementation of that API, so the app runs out of the box and every test and
//! benchmark talks to a real origin: item reads with ETags, item writes of its own (announced
//! to the cache, as a database with other writers would), and idempotent batch writes that
//! apply in one transaction with last-writer-wins by version, each write at most once by its
//! write id (kept for `--write-id-retention`, see [`backend`]). Because an origin that never
//! fails proves nothing about a cache's reliability, it can also be told to misbehave (see
//! [`faults`]). The wire types are `cache_sync_contract::wire`; nothing here redefines them.
//!
//! # Layout
//!
//! - [`mod@app`]: routes, request validation, shared state ([`AppState`], [`app()`]).
//! - [`announce`]: telling the cache which items the item routes changed.
//! - [`backend`]: the [`Backend`] trait and its [`backend::sqlite`] (default) and
//!   [`backend::postgres`] implementations.
//! - [`faults`]: fault injection (latency, errors, throttling, timeouts, garbage, down,
//!   rejected keys, skipped write guards).
//! - [`deliveries`]: the delivery journal behind `writes_redelivered` and
//!   `writes_applied_twice`.
//! - [`auth`]: principals (service token, users, anonymous), per-namespace access rules,
//!   revocation; enforced with `--auth on`.
//! - [`jwt`]: the test JWT issuer behind `POST /_jwt` and `GET /_jwks`.
//! - [`stats`]: request counters behind `GET /_stats`.
//! - [`seed`]: bulk loading behind `POST /_seed`.
//! - [`validate`]: name rules for namespaces, keys, batch ids and write ids.
//! - [`error`]: errors and their JSON form.
//! - `main.rs`: the `db-api` binary (argument parsing only).
//!
//! The public contract is described in `openapi.yaml` next to this crate's manifest.
//!
//! # Running
//!
//! ```text
//! cargo run -p db-api                                   # SQLite at .spin/db-api.sqlite, auth on
//! cargo run -p db-api -- --db :memory: --token s3cret   # in memory, s3cret is the service token
//! cargo run -p db-api -- --auth off                     # no users, no access rules
//! cargo run -p db-api -- --user carol:carol-token-0123456789 --acl acl.json
//! cargo run -p db-api -- --db postgres://user:pw@127.0.0.1/cache   # PostgreSQL (no TLS)
//! cargo run -p db-api -- --error-rate 0.1 --fault-seed 7 --read-latency-ms 20
//! ```
//!
//! The PostgreSQL tests run when `DB_API_TEST_POSTGRES_URL` names a scratch database (its
//! `db_api_items`, `db_api_batches` and `db_api_write_ids` tables are truncated).

pub mod announce;
pub mod app;
pub mod auth;
pub mod backend;
pub mod deliveries;
pub mod error;
pub mod faults;
pub mod jwt;
pub mod seed;
pub mod stats;
pub mod validate;

use std::future::Future;

pub use app::{app, AppState, Settings, SettingsError};
pub use auth::AuthSettings;
pub use backend::Backend;
pub use error::{ApiError, BackendError};

/// Serves `state` on `listener` until `shutdown` completes, then finishes in-flight requests
/// (requests held by an injected timeout are let go at once).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.begin_shutdown();
        })
        .await
}
