//! Validated names at the edge: [`Namespace`], [`ItemKey`], [`Scope`] and [`CacheKey`].
//! The first two, with their rules, are the contract's (`cache_sync_contract::names`), shared
//! with the DB API; the scope and the combined key are the cache's own.
//!
//! Everything that reaches the core from a URL is checked once, here, and afterwards carried
//! as a type that cannot hold an invalid value. The rules follow from where the names end up:
//! a Spin key-value key (at most [`MAX_KV_KEY_BYTES`] bytes on Fermyon Cloud) and a DB API
//! path. The KV layout itself lives in [`crate::stored::kv_key`].

use thiserror::Error;

pub use cache_sync_contract::names::{
    percent_decode, percent_encode_segment, ItemKey, NameError, Namespace, MAX_ITEM_KEY_BYTES,
    MAX_NAMESPACE_LEN,
};

use crate::stored::kv_key::{KvKey, MAX_KV_KEY_BYTES};

/// Longest scope digest, in characters (all ASCII).
pub const MAX_SCOPE_LEN: usize = 32;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// A namespace or item key breaks the contract's name rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The scope is empty, too long, or has a character outside `[a-z0-9]`.
    #[error("scope must be 1 to {MAX_SCOPE_LEN} characters of a-z and 0-9")]
    Scope,
    /// The full KV key would be longer than the store allows.
    #[error("kv key would be {0} bytes, over the {MAX_KV_KEY_BYTES}-byte limit")]
    KvKeyTooLong(usize),
}

/// A short digest of a principal, for caching per caller: 1–32 characters of `[a-z0-9]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Checks `s` and wraps it.
    pub fn parse(s: &str) -> Result<Scope, KeyError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SCOPE_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Scope(s.to_owned()))
        } else {
            Err(KeyError::Scope)
        }
    }

    /// The scope text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which cached item: namespace, key and optional caller scope. Its KV key always fits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheKey {
    ns: Namespace,
    key: ItemKey,
    scope: Option<Scope>,
}

impl CacheKey {
    /// Combines the parts, refusing combinations whose KV key would be too long.
    pub fn new(ns: Namespace, key: ItemKey, scope: Option<Scope>) -> Result<CacheKey, KeyError> {
        let ck = CacheKey { ns, key, scope };
        let len = ck.kv_key().len();
        if len > MAX_KV_KEY_BYTES {
            return Err(KeyError::KvKeyTooLong(len));
        }
        Ok(ck)
    }

    /// Parses and combines raw parts: a namespace and an undecoded URL path segment.
    pub fn from_path(ns: &str, raw_key: &str) -> Result<CacheKey, KeyError> {
        CacheKey::new(
            Namespace::parse(ns)?,
            ItemKey::from_path_segment(raw_key)?,
            None,
        )
    }

    /// The namespace.
    #[must_use]
    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// The item key.
    #[must_use]
    pub fn key(&self) -> &ItemKey {
        &self.key
    }

    /// The caller scope, if the entry is cached per caller.
    #[must_use]
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The same item without a scope: what writes and the DB API address.
    #[must_use]
    pub fn unscoped(&self) -> CacheKey {
        CacheKey {
            ns: self.ns.clone(),
            key: self.key.clone(),
            scope: None,
        }
    }

    /// The KV key of the cache entry.
    #[must_use]
    pub fn kv_key(&self) -> String {
        KvKey::Entry(self.clone()).render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_longer_than_the_kv_limit_is_refused() {
        let ns = Namespace::parse(&"n".repeat(64)).unwrap();
        let fits = ItemKey::parse(&"k".repeat(250 - 2 - 64 - 1)).unwrap();
        let too_long = ItemKey::parse(&"k".repeat(250 - 2 - 64)).unwrap();
        assert!(CacheKey::new(ns.clone(), fits, None).is_ok());
        assert_eq!(
            CacheKey::new(ns, too_long, None),
            Err(KeyError::KvKeyTooLong(251))
        );
    }

    #[test]
    fn scope_is_a_short_lowercase_digest() {
        assert!(Scope::parse("abc123").is_ok());
        assert_eq!(Scope::parse(""), Err(KeyError::Scope));
        assert_eq!(Scope::parse("ABC"), Err(KeyError::Scope));
        assert_eq!(Scope::parse(&"a".repeat(33)), Err(KeyError::Scope));
    }
}
