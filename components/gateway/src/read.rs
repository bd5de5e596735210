//! `GET /v1/{ns}/{key}`: serving from the cache, filling misses from the DB API.
//!
//! The decisions are `cache_core::read`: [`plan_read`] on the stored bytes says serve,
//! serve-and-revalidate, or fetch (with a stale-if-error fallback); [`apply_origin`] on the
//! entry as re-read just before storing says what to store. A corrupt entry is a miss and is
//! overwritten. Origin errors are never cached; a 404 becomes a negative entry.
//!
//! Stale-while-revalidate: the stale entry is answered at once and a revalidation (a
//! conditional `GET` with the entry's ETag) is queued to run after the response is sent
//! ([`crate::deferred`]); the fill lease keeps concurrent stale reads from all refreshing.

use cache_core::config::CacheConfig;
use cache_core::entry::{Entry, EntryKind};
use cache_core::envelope;
use cache_core::key::CacheKey;
use cache_core::read::{apply_origin, plan_read, Origin, OriginApply, ReadPlan};
use cache_core::store::KvStore;
use spin_adapters::{config, env, kv::SpinKv};
use spin_sdk::http::Response;

use crate::deferred::{self, Task};
use crate::fill::{self, Claim};
use crate::metrics;
use crate::origin;
use crate::respond::{self, CacheStatus, Error, Result};

/// Serves a read of `key`.
pub async fn get(
    cfg: &CacheConfig,
    key: &CacheKey,
    auth: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<Response> {
    let mut kv = SpinKv::open_configured()?;
    let now = env::now();
    let stored = kv.get(&key.kv_key())?;
    match plan_read(stored.as_deref(), now) {
        ReadPlan::Serve(entry) => {
            let status = if entry.kind == EntryKind::Absent {
                metrics::inc(metrics::NEGATIVE_HITS);
                CacheStatus::Negative
            } else {
                metrics::inc_sampled(metrics::HITS, cfg.metrics_hit_sample);
                CacheStatus::Hit
            };
            Ok(respond::entry(&entry, status, if_none_match, now))
        }
        ReadPlan::ServeAndRevalidate(entry) => {
            metrics::inc(metrics::STALE);
            deferred::defer(Task::Revalidate {
                key: key.clone(),
                auth: auth.map(str::to_owned),
            });
            Ok(respond::entry(
                &entry,
                CacheStatus::Stale,
                if_none_match,
                now,
            ))
        }
        ReadPlan::Fetch { fallback, .. } => {
            let served = fill(cfg, &mut kv, key, auth, fallback).await?;
            Ok(respond::entry(
                &served.entry,
                served.status,
                if_none_match,
                env::now(),
            ))
        }
    }
}

/// An entry to serve and how it was obtained.
pub struct Served {
    /// The entry (possibly not stored, e.g. too large to cache).
    pub entry: Entry,
    /// `MISS`, `STALE` (fallback) or `HIT` (filled by a concurrent request).
    pub status: CacheStatus,
}

/// Fills `key` from the origin, collapsing concurrent misses; serves `fallback` if the
/// origin fails.
pub async fn fill(
    cfg: &CacheConfig,
    kv: &mut SpinKv,
    key: &CacheKey,
    auth: Option<&str>,
    fallback: Option<Entry>,
) -> Result<Served> {
    let held = match fill::claim(kv, key)? {
        Claim::Fill(held) => Some(held),
        Claim::Wait(until) => {
            if let Some(entry) = fill::wait_for_entry(kv, key, until) {
                metrics::inc_sampled(metrics::HITS, cfg.metrics_hit_sample);
                return Ok(Served {
                    entry,
                    status: CacheStatus::Hit,
                });
            }
            None
        }
    };
    metrics::inc(metrics::MISSES);
    let result = origin::fetch(cfg, key, auth, None).await;
    let outcome = match result {
        Ok(answer) => store_answer(cfg, kv, key, answer).map(|entry| Served {
            entry,
            status: CacheStatus::Miss,
        }),
        Err(e) => match (fallback, &e) {
            (Some(entry), Error::Origin(_) | Error::OriginTimeout(_)) => {
                metrics::inc(metrics::STALE);
                Ok(Served {
                    entry,
                    status: CacheStatus::Stale,
                })
            }
            _ => Err(e),
        },
    };
    if let Some(held) = held {
        fill::release(kv, held);
    }
    outcome
}

/// Stores what the origin answered (unless the entry turned dirty meanwhile) and returns
/// the entry to serve.
fn store_answer(
    cfg: &CacheConfig,
    kv: &mut SpinKv,
    key: &CacheKey,
    answer: Origin,
) -> Result<Entry> {
    let now = env::now();
    let entry_key = key.kv_key();
    let current = kv.get(&entry_key)?.and_then(|b| envelope::decode(&b).ok());
    let uncached = match &answer {
        Origin::Found { value, etag, .. } => Some((value.clone(), etag.clone())),
        _ => None,
    };
    match apply_origin(current.as_ref(), answer, now, cfg) {
        OriginApply::Store(entry) => {
            let bytes = envelope::encode(&entry, &cfg.codec_policy())
                .map_err(|e| Error::Internal(format!("cannot encode entry: {e}")))?;
            kv.set(&entry_key, &bytes)?;
            Ok(entry)
        }
        OriginApply::Skip(_) => match (current.filter(Entry::is_dirty), uncached) {
            (Some(dirty), _) => Ok(dirty),
            (None, Some((value, etag))) => {
                // Too large to cache: served once, stored nowhere.
                Ok(Entry {
                    kind: EntryKind::Value,
                    value,
                    etag,
                    version: 0,
                    fetched_at: Some(now),
                    written_at: None,
                    fresh_until: now,
                    stale_until: now,
                    stale_if_error_until: now,
                    dirty: None,
                })
            }
            (None, None) => Err(Error::NotFound),
        },
    }
}

/// Refreshes a stale entry (deferred work): a conditional fetch, stored through
/// [`apply_origin`]. Skipped when another request holds the fill lease.
pub async fn revalidate(key: &CacheKey, auth: Option<&str>) -> Result<()> {
    let cfg = config::load()?;
    let mut kv = SpinKv::open_configured()?;
    let Claim::Fill(held) = fill::claim(&mut kv, key)? else {
        return Ok(());
    };
    let etag = kv
        .get(&key.kv_key())?
        .and_then(|b| envelope::decode(&b).ok())
        .and_then(|e| e.etag);
    let result = match origin::fetch(&cfg, key, auth, etag.as_deref()).await {
        Ok(answer) => store_answer(&cfg, &mut kv, key, answer).map(|_| ()),
        Err(e) => Err(e),
    };
    fill::release(&mut kv, held);
    result
}
