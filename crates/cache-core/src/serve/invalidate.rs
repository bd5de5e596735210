//! Invalidation: forgetting what the cache holds for items that changed behind its back.
//!
//! The DB API may have other writers. When it announces changed items (a signed call,
//! [`announced`]; the wire format is `cache_sync_contract::invalidation`) or an operator
//! purges them (`POST /admin/purge`, [`purge`]), the next read of each must fetch it again.
//!
//! # Why a marker, not a delete
//!
//! A key has one shared entry (`c:{ns}:{key}`) and possibly many callers' own entries
//! (`c:{ns}#{scope}:{key}`), which cannot be found without listing the store (Spin has no
//! prefix listing, and listing per announcement would cost as much as the store is large).
//! So the shared entry is replaced by a marker ([`Entry::invalidation`]) holding the instant;
//! a read always looks at the shared entry first, and a caller's own entry whose content is not
//! newer than that instant is not served ([`Entry::is_superseded_by`]). The instant also stops
//! a fill that was already asking the origin from storing its answer: an answer asked for no
//! later than the invalidation may predate the change ([`crate::serve::read::apply_origin`]).
//! Whatever later replaces the marker (a fill, a write, a settled write) keeps the instant,
//! and the sweep keeps an entry holding one for [`hold`], the longest any own entry fetched
//! before it can still be served.
//!
//! # What is never dropped
//!
//! A dirty entry holds a write the DB API has not received: it stays, still served (it is the
//! newest truth), and only takes the instant, so that once its write is delivered and it is
//! clean its content counts as older than the change (it is fetched again). Markers and the
//! removal of own entries are written in a rewrite window
//! ([`crate::delivery::rewrite_window`]), so a write whose dirty entry lands meanwhile stores it
//! again.
//!
//! # Costs and limits
//!
//! Invalidating `n` keys is one `get_many` and one `set_many` (plus the window's marker),
//! whatever the store holds. A key nothing is cached for gets a marker only when callers can
//! have entries of their own (`auth_key` set), since only then could something unseen hold
//! it; otherwise it costs nothing, and a fill that was asking the origin at that moment may
//! still store what it was answered (one origin round trip's window). Without
//! compare-and-swap, a fill that re-read the entry just before the marker was stored can
//! overwrite the marker, the same window [`crate::serve::read`] describes for writes. A
//! namespace purge lists the cache's keys, once.

use std::time::Duration;

use cache_sync_contract::invalidation::{self, Announcement, MAX_ANNOUNCED_ITEMS};
pub use cache_sync_contract::invalidation::{INVALIDATE_PATH, SIGNATURE_HEADER};
use serde::Deserialize;
use serde_json::json;

use crate::admin;
use crate::config::CacheConfig;
use crate::delivery::rewrite_window;
use crate::entry::Entry;
use crate::envelope;
use crate::key::{CacheKey, ItemKey, KeyError, Namespace};
use crate::limit::{self, Class};
use crate::serve::reply::{Reply, RequestError};
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::{Area, KvKey};
use crate::time::{Clock, UnixMillis};

/// Keys handled per rewrite window.
const CHUNK: usize = 64;
/// Windows tried per chunk before giving up (each is opened afresh when the last had too
/// little time left).
const ATTEMPTS: usize = 3;

/// What an invalidation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Invalidated {
    /// Shared entries replaced by a marker (or markers stored where nothing was cached).
    pub invalidated: usize,
    /// Dirty entries kept, with the instant.
    pub kept_dirty: usize,
    /// Callers' own entries removed (namespace purges).
    pub removed: usize,
    /// Keys nothing was cached for.
    pub untouched: usize,
}

impl Invalidated {
    fn add(&mut self, other: Invalidated) {
        self.invalidated += other.invalidated;
        self.kept_dirty += other.kept_dirty;
        self.removed += other.removed;
        self.untouched += other.untouched;
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "invalidated": self.invalidated,
            "kept_dirty": self.kept_dirty,
            "removed": self.removed,
            "untouched": self.untouched,
        })
    }
}

/// How long an entry holding an invalidation is kept: the longest a caller's own entry
/// fetched before it can be served (its windows never exceed the configured ones).
#[must_use]
pub fn hold(cfg: &CacheConfig) -> Duration {
    cfg.ttl + cfg.stale_ttl.max(cfg.stale_if_error)
}

/// Whether the sweep must keep `entry` at `now`, whatever its windows say.
#[must_use]
pub fn is_held(entry: &Entry, now: UnixMillis, cfg: &CacheConfig) -> bool {
    entry
        .invalidated_at
        .is_some_and(|at| now < at.saturating_add(hold(cfg)))
}

/// Invalidates `keys` (shared or callers' own entries) at the clock's time.
pub fn invalidate(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    cfg: &CacheConfig,
    keys: &[CacheKey],
) -> Result<Invalidated, StoreError> {
    let mut done = Invalidated::default();
    for chunk in keys.chunks(CHUNK) {
        done.add(invalidate_chunk(store, clock, cfg, chunk)?);
    }
    Ok(done)
}

fn invalidate_chunk(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    cfg: &CacheConfig,
    keys: &[CacheKey],
) -> Result<Invalidated, StoreError> {
    let kv_keys: Vec<String> = keys.iter().map(CacheKey::kv_key).collect();
    for _ in 0..ATTEMPTS {
        let window = rewrite_window::open(store, clock)?;
        let now = clock.now();
        let current = store.get_many(&kv_keys)?;
        let mut done = Invalidated::default();
        let mut stores = Vec::new();
        let mut removes = Vec::new();
        for ((key, kv_key), bytes) in keys.iter().zip(&kv_keys).zip(current) {
            let entry = bytes.as_deref().map(envelope::decode);
            match (key.scope(), entry) {
                (_, Some(Ok(mut dirty))) if dirty.is_dirty() => {
                    dirty.invalidated_at = Some(now);
                    let bytes = envelope::encode(&dirty, &cfg.codec_policy())
                        .map_err(|e| StoreError::Other(format!("cannot encode entry: {e}")))?;
                    stores.push((kv_key.clone(), bytes));
                    done.kept_dirty += 1;
                }
                (Some(_), Some(_)) => {
                    removes.push(kv_key.clone());
                    done.removed += 1;
                }
                (Some(_), None) => done.untouched += 1,
                (None, None) if cfg.auth_key.is_none() => done.untouched += 1,
                (None, _) => {
                    stores.push((kv_key.clone(), envelope::invalidation(now)));
                    done.invalidated += 1;
                }
            }
        }
        if !window.may_write(clock) {
            window.close(store)?;
            continue;
        }
        if !removes.is_empty() {
            store.delete_many(&removes)?;
        }
        window.close_with(store, stores)?;
        return Ok(done);
    }
    Err(StoreError::Other(
        "invalidating: no rewrite window left time to write entries back".to_owned(),
    ))
}

/// What `POST /admin/purge` takes: a namespace, and the keys in it (all of them when
/// omitted).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    ns: String,
    #[serde(default)]
    keys: Option<Vec<String>>,
}

/// The most keys one purge request may name.
pub const MAX_PURGE_KEYS: usize = 1000;

/// `POST /admin/purge`: drops the cached entries of the named keys, or of a whole namespace,
/// without touching the DB API; never an entry holding a write not yet delivered. A body that
/// does not parse, or names a bad namespace or key, changes nothing.
pub fn purge(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    cfg: &CacheConfig,
    body: &[u8],
) -> Result<Reply, RequestError> {
    let req: PurgeRequest = serde_json::from_slice(body).map_err(|e| {
        RequestError::BadRequest(format!(
            "body must be {{\"ns\": \"…\", \"keys\": [\"…\"]}} (keys optional): {e}"
        ))
    })?;
    let ns = Namespace::parse(&req.ns).map_err(KeyError::from)?;
    let keys = match &req.keys {
        Some(keys) if keys.len() > MAX_PURGE_KEYS => {
            return Err(RequestError::BadRequest(format!(
                "at most {MAX_PURGE_KEYS} keys per purge, got {}",
                keys.len()
            )))
        }
        Some(keys) => keys
            .iter()
            .map(|k| CacheKey::new(ns.clone(), ItemKey::parse(k)?, None))
            .collect::<Result<Vec<_>, _>>()?,
        None => namespace_entries(store, &ns).map_err(RequestError::StoreUnavailable)?,
    };
    let done = invalidate(store, clock, cfg, &keys).map_err(RequestError::StoreUnavailable)?;
    let mut body = done.json();
    body["ns"] = json!(ns.as_str());
    body["scope"] = json!(if req.keys.is_some() {
        "keys"
    } else {
        "namespace"
    });
    Ok(admin::ok(&body))
}

/// Every entry key of `ns` in the cache's store, shared and callers' own.
fn namespace_entries(
    store: &mut impl KvStore,
    ns: &Namespace,
) -> Result<Vec<CacheKey>, StoreError> {
    Ok(store
        .get_keys_in(Area::Cache)?
        .iter()
        .filter_map(|k| match KvKey::parse(k) {
            Some(KvKey::Entry(key)) if key.ns() == ns => Some(key),
            _ => None,
        })
        .collect())
}

/// `POST /hooks/invalidate`: the DB API announces changed items. Without `invalidate_secret`
/// the route does not exist (`404`). A call whose signature does not verify is charged to
/// `who` (the client address) against the admin budget and refused (`401`), so guessing is
/// as slow as guessing the admin token; a verified one is not charged, since an origin may
/// announce every change it makes. A body that does not parse changes nothing (`400`).
pub fn announced(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    cfg: &CacheConfig,
    who: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Reply, RequestError> {
    let Some(secret) = cfg.invalidate_secret.as_deref() else {
        return Err(RequestError::NoRoute);
    };
    let now = clock.now();
    let verified = match signature {
        None => Err(format!("missing {} header", invalidation::SIGNATURE_HEADER)),
        Some(sig) => invalidation::verify(secret.as_bytes(), sig, body, now.0 / 1000)
            .map_err(|e| e.to_string()),
    };
    if let Err(why) = verified {
        let budget = cfg.rate_limits.budget(Class::Admin);
        limit::charge(store, now, budget, Class::Admin, who)?;
        return Err(RequestError::BadSignature(why));
    }
    let announcement: Announcement = serde_json::from_slice(body).map_err(|e| {
        RequestError::BadRequest(format!(
            "body must be {{\"changed\": [{{\"ns\": \"…\", \"key\": \"…\"}}]}}: {e}"
        ))
    })?;
    if announcement.changed.len() > MAX_ANNOUNCED_ITEMS {
        return Err(RequestError::BadRequest(format!(
            "at most {MAX_ANNOUNCED_ITEMS} items per announcement, got {}",
            announcement.changed.len()
        )));
    }
    let keys = announcement
        .changed
        .iter()
        .map(|item| {
            let ns = Namespace::parse(&item.ns)?;
            let key = ItemKey::parse(&item.key)?;
            CacheKey::new(ns, key, None)
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    let done = invalidate(store, clock, cfg, &keys)?;
    Ok(admin::ok(&done.json()))
}
