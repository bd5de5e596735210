//! Glue shared by the gateway and flush components: cache-core's `KvStore` and `DbApi`
//! traits implemented over spin-sdk 5.x, the configuration read from Spin variables,
//! and the clock and randomness the core takes as arguments.
//!
//! # Layout
//! - `kv`: `SpinKv`, cache-core's `KvStore` over a Spin key-value store, and `Stores`,
//!   the one or two stores the configuration names.
//! - `db`: `HttpDb`, cache-core's `DbApi` over outbound HTTP.
//! - `config`: `CacheConfig` from Spin variables.
//! - `env`: wall clock and random numbers.

pub mod config;
pub mod db;
pub mod env;
pub mod kv;
