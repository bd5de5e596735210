//! Kept access decisions: what the origin (or its answer to a conditional read) said about
//! one caller's access to one item, kept for `grant_ttl`.
//!
//! A grant is stored under `m:grant:{window}:{digest}` ([`crate::stored::kv_key`]): `window`
//! is `now / grant_ttl` when it was stored, `digest` the keyed digest of caller, item and
//! access ([`crate::auth::caller::Caller::grant_digest`]). A lookup reads the current window
//! and the one before (a grant stored late in a window is still valid early in the next)
//! and checks the grant's own `until`. The sweep deletes grants of older windows by name,
//! without reading them, so decisions never pile up in the store.
//!
//! Only allowances are kept. A refusal is passed through and asked again next time: keeping
//! it would let a burst of refused requests cost nothing, but also keep a caller out for a
//! whole `grant_ttl` after the origin let it in. The rate limits bound the cost instead.
//!
//! Revocation takes effect within `grant_ttl`: that is the longest a kept decision is used.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::contract::MAX_PRINCIPAL_BYTES;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::UnixMillis;

const GRANT_FORMAT: u8 = 1;

/// An allowance the origin gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Who the origin said the caller is: known for a write grant, not for a read grant
    /// (a conditional read names no one).
    pub principal: Option<String>,
    /// Until when (exclusive) it holds.
    pub until: UnixMillis,
}

#[derive(Serialize, Deserialize)]
struct StoredGrant {
    v: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    until: u64,
}

/// The `grant_ttl` window `now` falls in.
#[must_use]
pub fn window(now: UnixMillis, ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    now.0 / ttl_ms
}

/// Whether a grant stored in `stored_window` can no longer be found at `now`: its window is
/// past, or lies ahead (stored under a longer `grant_ttl` than today's, so no lookup reads it).
#[must_use]
pub fn is_dead(stored_window: u64, now: UnixMillis, ttl: Duration) -> bool {
    let current = window(now, ttl);
    stored_window.saturating_add(1) < current || stored_window > current
}

/// The live grant named `digest`, if one is kept.
pub fn find(
    store: &mut impl KvStore,
    digest: &str,
    now: UnixMillis,
    ttl: Duration,
) -> Result<Option<Grant>, StoreError> {
    let current = window(now, ttl);
    for w in [Some(current), current.checked_sub(1)]
        .into_iter()
        .flatten()
    {
        let key = KvKey::Grant {
            window: w,
            digest: digest.to_owned(),
        }
        .render();
        let live = store
            .get(&key)?
            .and_then(|b| serde_json::from_slice::<StoredGrant>(&b).ok())
            .filter(|g| g.v == GRANT_FORMAT && now.0 < g.until)
            .filter(|g| {
                g.principal
                    .as_ref()
                    .is_none_or(|p| !p.is_empty() && p.len() <= MAX_PRINCIPAL_BYTES)
            });
        if let Some(g) = live {
            return Ok(Some(Grant {
                principal: g.principal,
                until: UnixMillis(g.until),
            }));
        }
    }
    Ok(None)
}

/// Keeps an allowance (for `principal`, when known) under `digest` until `now + ttl`. Best
/// effort: a store that fails only means the origin is asked again next time.
pub fn keep(
    store: &mut impl KvStore,
    digest: &str,
    principal: Option<&str>,
    now: UnixMillis,
    ttl: Duration,
) {
    let stored = StoredGrant {
        v: GRANT_FORMAT,
        principal: principal.map(str::to_owned),
        until: now.saturating_add(ttl).0,
    };
    let key = KvKey::Grant {
        window: window(now, ttl),
        digest: digest.to_owned(),
    }
    .render();
    if let Ok(bytes) = serde_json::to_vec(&stored) {
        let _ = store.set(&key, &bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const D: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_grant_lives_grant_ttl_across_a_window_boundary() {
        let ttl = Duration::from_secs(60);
        let mut store = MemoryStore::new();
        let t = UnixMillis(119_000);
        keep(&mut store, D, Some("alice"), t, ttl);
        let at = |ms| UnixMillis(ms);
        assert_eq!(
            find(&mut store, D, at(119_500), ttl)
                .unwrap()
                .unwrap()
                .principal
                .as_deref(),
            Some("alice")
        );
        assert!(find(&mut store, D, at(178_999), ttl).unwrap().is_some());
        assert!(find(&mut store, D, at(179_000), ttl).unwrap().is_none());
        assert!(find(&mut store, &D.replace('0', "1"), t, ttl)
            .unwrap()
            .is_none());
    }

    #[test]
    fn old_windows_are_past_and_unreadable_grants_count_as_none() {
        let ttl = Duration::from_secs(60);
        assert!(!is_dead(1, UnixMillis(120_000), ttl));
        assert!(!is_dead(2, UnixMillis(120_000), ttl));
        assert!(is_dead(0, UnixMillis(120_000), ttl));
        assert!(is_dead(3, UnixMillis(120_000), ttl));
        let mut store = MemoryStore::new();
        let key = KvKey::Grant {
            window: 2,
            digest: D.into(),
        }
        .render();
        store.set(&key, b"garbage").unwrap();
        assert!(find(&mut store, D, UnixMillis(120_000), ttl)
            .unwrap()
            .is_none());
        store
            .set(&key, br#"{"v":1,"principal":"","until":999999999}"#)
            .unwrap();
        assert!(find(&mut store, D, UnixMillis(120_000), ttl)
            .unwrap()
            .is_none());
    }
}
