//! The cache semantics of cache-sync, free of I/O.
//!
//! cache-sync keeps JSON values per key in a Spin key-value store in front of a main DB API:
//! reads are served from the cache (TTL, stale-while-revalidate, stale-if-error), writes update
//! the cache at once and are buffered durably in the same store, and a flush delivers the
//! buffered writes to the DB API in coalesced, idempotent batches. This crate holds every rule
//! of that scheme and none of the plumbing: no clock (instants are [`time::UnixMillis`]
//! arguments), no randomness (random numbers are arguments), no spin-sdk and no async runtime.
//! The store and the DB API are reached through small synchronous traits that the
//! components implement: [`store::KvStore`], [`db::DbApi`] (batches) and [`serve::Origin`]
//! (item reads). The consistency model is described in [`buffer`].
//!
//! # Layout
//!
//! The tree follows the architecture: three groups, and the shared vocabulary beside them.
//!
//! [`serve`] — the request paths: one `GET`, `PUT`, `PATCH` or `DELETE` top-down, over
//! [`KvStore`] and [`serve::Origin`]: typed replies, the one error-to-status table, deferred
//! work as data. Its parts: [`serve::read`] (the read plan, what an origin answer stores),
//! [`serve::prepare`] (the buffer record and dirty entry of a write), [`serve::fill`] (the fill
//! lease that collapses concurrent misses), [`serve::policy`] (freshness, caching headers),
//! `merge_patch` (RFC 7386), [`serve::origin`] (the item endpoint and its answers),
//! [`serve::reply`] (replies as data). Beside it: [`admin`] (the admin operations as replies),
//! [`limit`] (rate limits per caller and class of request) and [`counters`] (the `/metrics`
//! counters and their exposition).
//!
//! [`delivery`] — the flush machinery: [`delivery::tick`] (one flush then one sweep, what cron
//! and `POST /admin/flush` run), [`delivery::flush`] (the run), [`delivery::batch`] and
//! [`delivery::batch_id`] (sealed batches and their content-derived ids), `settle` (applying
//! an answer), `backoff` (retry delays), [`delivery::lease`] (the flush lease),
//! [`delivery::dlq`] (dead letters), [`delivery::state`] (the flush state record and
//! `/admin/stats`), [`delivery::sweep`] (expiry and eviction of entries).
//!
//! [`stored`] — the stored formats: [`stored::envelope`] (cache entries),
//! [`stored::record`] (buffered writes), [`stored::kv_key`] (the KV key layout of every record
//! kind). `envelope` and `record` are also at the root, the paths tools and end-to-end tests
//! use to inspect a store.
//!
//! The shared vocabulary: [`key`] (validated names; percent-decoding), [`stamp`] (write
//! order and versions), [`entry`] (a decoded cache entry), [`buffer`] (coalescing,
//! backpressure, and the consistency model), [`contract`] (the DB API wire types and paths, re-exported from the `cache-sync-contract` crate),
//! [`config`] (`CacheConfig` from Spin variables), and the traits the components implement:
//! [`store`] ([`KvStore`], with [`MemoryStore`] for tests), [`db`] ([`DbApi`], batches),
//! [`serve::Origin`] (item reads), [`time`] ([`Clock`] and instants); and [`hash`], a
//! stable FNV-1a hash. Inside the crate the grouped modules are also reachable by their short
//! names (`crate::lease`), which the flush's own modules use.
//!
//! [`history`] keeps the dashboard's per-minute snapshots, written by each tick.
//!
//! `fuzz_checks` (hidden) holds the invariants that the fuzz targets in `fuzz/` and the
//! `fuzz_corpus` test check on untrusted bytes.
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod buffer;
pub mod config;
/// The DB API wire contract (its own crate, shared with the reference DB API).
pub use cache_sync_contract::wire as contract;
pub mod counters;
pub mod db;
pub mod delivery;
pub mod entry;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod hash;
pub mod history;
pub mod key;
pub mod limit;
pub mod rollout;
pub mod serve;
pub mod stamp;
pub mod store;
pub mod stored;
pub mod time;

pub use config::CacheConfig;
pub use db::DbApi;
pub use key::CacheKey;
pub use serve::Origin;
pub use store::{KvStore, MemoryStore, StoreError};
pub use stored::{envelope, record};
pub use time::{Clock, UnixMillis};

// The short paths the flush run and the flush lease use for their siblings.
use delivery::{backoff, batch, batch_id, dlq, lease, settle, state};
use stored::kv_key;
