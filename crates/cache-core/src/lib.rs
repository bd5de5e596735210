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
//! Names and formats:
//! - [`key`] — validated `Namespace`, `ItemKey`, `Scope`, `CacheKey`; percent-decoding.
//! - [`kv_key`] — the KV key layout of every record kind.
//! - [`stamp`] — write stamps, their total order, and the DB version derived from them.
//! - [`batch_id`] — content-derived ids of sealed batches.
//! - [`entry`] — a decoded cache entry.
//! - [`envelope`] — the versioned byte format of cache entries.
//! - [`record`] — a buffered write and its stored form.
//! - [`contract`] — the DB API wire types.
//! - [`config`] — `CacheConfig` from Spin variables, with defaults and validation.
//!
//! Request paths:
//! - [`serve`] — one `GET`, `PUT`, `PATCH` or `DELETE` top-down, over [`store::KvStore`] and
//!   [`serve::Origin`]: typed replies, the one error-to-status table, deferred work as data.
//! - [`policy`] — freshness windows and caching headers.
//! - [`read`] — the read plan and what to store after asking the origin.
//! - [`write`](mod@write) — what to store for a put or delete.
//! - [`merge_patch`] — RFC 7386 JSON Merge Patch.
//! - [`buffer`] — coalescing, backpressure, and the consistency model.
//! - [`fill`] — the fill lease that collapses concurrent misses of one key, and its protocol.
//! - [`counters`] — the `/metrics` counters, kept in the store, and their exposition.
//!
//! Flush and housekeeping:
//! - [`store`] — the `KvStore` trait and `MemoryStore`.
//! - [`db`] — the `DbApi` trait and classification of its answers.
//! - [`tick`] — one flush run then one sweep (cron and `POST /admin/flush`).
//! - [`flush`] — the flush run.
//! - [`batch`] — splitting into batches and sealed batches.
//! - [`settle`] — applying a batch answer to the store.
//! - [`backoff`] — retry delays.
//! - [`lease`] — the best-effort flush lease.
//! - [`dlq`] — the dead-letter queue: list, retry, discard.
//! - [`state`] — the flush state record and `/admin/stats`.
//! - [`admin`] — the admin operations (flush, stats, dead letters) as replies.
//! - [`sweep`] — expiry and eviction of cache entries.
//!
//! Small helpers: [`time`] (instants), [`hash`] (a stable FNV-1a hash).
//!
//! `fuzz_checks` (hidden) holds the invariants that the fuzz targets in `fuzz/` and the
//! `fuzz_corpus` test check on untrusted bytes.
#![deny(missing_docs)]

pub mod admin;
pub mod backoff;
pub mod batch;
pub mod batch_id;
pub mod buffer;
pub mod config;
pub mod contract;
pub mod counters;
pub mod db;
pub mod dlq;
pub mod entry;
pub mod envelope;
pub mod fill;
pub mod flush;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod hash;
pub mod key;
pub mod kv_key;
pub mod lease;
pub mod merge_patch;
pub mod policy;
pub mod read;
pub mod record;
pub mod serve;
pub mod settle;
pub mod stamp;
pub mod state;
pub mod store;
pub mod sweep;
pub mod tick;
pub mod time;
pub mod write;
