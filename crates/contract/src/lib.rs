//! The wire contract between cache-sync and the main DB API, in a crate of its own so that
//! both sides build against one definition and neither depends on the other: the cache
//! (`cache-core`) produces batches and reads items, the reference DB API (`db-api`) serves
//! them, and a change to the contract is a change to this crate.
//!
//! - [`wire`]: the batch and item wire types, paths, headers, the write id, and the
//!   ETag/version codec.
//! - [`names`]: the rules for namespaces and item keys.
//! - [`invalidation`]: the DB API's signed announcements of items changed behind the cache.
//! - [`precondition`]: `If-Match`/`If-None-Match` on writes, judged alike by both sides.

#![deny(missing_docs)]

pub mod invalidation;
pub mod names;
pub mod precondition;
pub mod wire;
