//! The stored formats: every value cache-sync keeps in the key-value store.
//!
//! Each starts with a format version; a value that does not decode is a miss (entries) or is
//! set aside (records), never a panic.

pub mod envelope;
pub mod kv_key;
pub mod record;
