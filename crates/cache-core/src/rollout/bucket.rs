//! The caller's bucket, 0–99: which callers the canary holds.
//!
//! A caller must stay in the canary or out of it from one request to the next, and as the
//! share grows a caller already in must stay in (no flapping between the cache's and the DB
//! API's view of a key). So the bucket is a stable hash of who the caller is, and the canary
//! is every bucket below the share: raising the share only adds buckets.
//!
//! Who the caller is: its principal (a verified JWT's subject, else its credential) as a
//! digest ([`crate::auth::caller::Caller::rollout_digest`]: keyed under `auth_key` when one is
//! set, like every digest standing for a credential), or, for an anonymous caller, its client
//! address as the rate limits see it ([`crate::limit::client_key`]). The digest is computed
//! per request and reduced to a number below 100; neither it nor the credential is stored.

use sha2::{Digest, Sha256};

use crate::auth::caller::Caller;
use crate::config::CacheConfig;

/// Buckets: the share is a percentage.
pub const BUCKETS: u64 = 100;

/// The bucket of the identity `source`: SHA-256 of it, domain-separated, as a number
/// modulo 100 (the bias of a 64-bit number modulo 100 is below 10^-17).
#[must_use]
pub fn of(source: &str) -> u8 {
    let hash = Sha256::new()
        .chain_update(b"cache-sync rollout bucket\0")
        .chain_update(source.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u8::try_from(u64::from_be_bytes(first) % BUCKETS).unwrap_or(0)
}

/// The bucket of `caller`, whose client address key is `address_key` (used when it is
/// anonymous).
#[must_use]
pub fn of_caller(caller: &Caller, cfg: &CacheConfig, address_key: &str) -> u8 {
    match caller.rollout_digest(cfg) {
        Some(digest) => of(&format!("p:{digest}")),
        None => of(address_key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_stable_and_below_100() {
        for i in 0..1000 {
            let s = format!("caller-{i}");
            let b = of(&s);
            assert!(b < 100);
            assert_eq!(b, of(&s));
        }
    }
}
