//! The read path's decisions, pure: what a stored entry means, what an origin answer stores.
//!
//! [`plan_read`] says what to do with whatever the store returned for a key; [`apply_origin`]
//! says what to store after asking the origin. [`crate::serve`] runs them.
//!
//! Rules:
//! - A dirty entry is the newest truth (the DB API has not seen its write yet): it is always
//!   served, whatever its age, and never revalidated or replaced by origin data.
//! - A clean entry is served by [`Freshness`]: fresh → serve; stale → serve and revalidate;
//!   stale-if-error → fetch, falling back to it if the origin fails; expired → fetch.
//! - A missing or undecodable entry is a miss; the fetched value overwrites it.
//! - A clean entry superseded by an invalidation ([`Entry::is_superseded_by`]: its own, or
//!   the shared entry's for a caller's own entry) is a miss with nothing to fall back on.
//! - An origin answer asked for no later than the stored entry's invalidation may predate
//!   the change it announced: it is served once and not stored. Whatever is stored keeps
//!   the invalidation's instant.
//!
//! There is no compare-and-swap in Spin KV. A write may land between reading the entry and
//! storing the origin's answer; [`crate::serve`] narrows that window by re-reading the entry
//! just before storing and passing it to [`apply_origin`].

use crate::config::CacheConfig;
use crate::entry::{Audience, Entry, EntryKind};
use crate::envelope::{self, MAX_ETAG_BYTES};
use crate::serve::cache_control::Directives;
use crate::serve::policy::{absent_windows, freshness, value_windows, Freshness};
use crate::time::UnixMillis;

/// What to do for a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// Serve the entry (a value, or 404 for a negative entry or tombstone).
    Serve(Entry),
    /// Serve the entry, then refresh it from the origin.
    ServeAndRevalidate(Entry),
    /// Ask the origin (no entry, an expired one, or one that does not decode and will be
    /// overwritten); if it fails, serve `fallback` when there is one, else fail.
    Fetch {
        /// A stale-if-error entry to serve when the origin fails.
        fallback: Option<Entry>,
        /// The entry's invalidation, if it holds one: what a caller's own entry of the same
        /// key is judged against.
        invalidated_at: Option<UnixMillis>,
    },
}

/// Decides a read from the stored bytes of the entry (`None` if the key is absent), given
/// the invalidation of its key that the shared entry holds, when this is a caller's own
/// entry (`None` for the shared entry itself, which holds its own).
#[must_use]
pub fn plan_read(
    stored: Option<&[u8]>,
    now: UnixMillis,
    key_invalidated_at: Option<UnixMillis>,
) -> ReadPlan {
    let Some(Ok(entry)) = stored.map(envelope::decode) else {
        return ReadPlan::Fetch {
            fallback: None,
            invalidated_at: None,
        };
    };
    if entry.is_dirty() {
        return ReadPlan::Serve(entry);
    }
    let invalidated_at = entry.invalidated_at;
    if entry.is_superseded_by(key_invalidated_at) {
        return ReadPlan::Fetch {
            fallback: None,
            invalidated_at,
        };
    }
    match freshness(&entry, now) {
        Freshness::Fresh => ReadPlan::Serve(entry),
        Freshness::Stale => ReadPlan::ServeAndRevalidate(entry),
        Freshness::StaleIfError => ReadPlan::Fetch {
            fallback: Some(entry),
            invalidated_at,
        },
        Freshness::Expired => ReadPlan::Fetch {
            fallback: None,
            invalidated_at,
        },
    }
}

/// What the origin answered (classified by [`crate::serve::origin::classify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginAnswer {
    /// `200` with a JSON body.
    Found {
        /// The body.
        value: Vec<u8>,
        /// The `ETag`, if any.
        etag: Option<String>,
        /// The item's version, if the origin reports one.
        version: Option<u64>,
    },
    /// `404`.
    NotFound,
    /// `304` to a conditional request made with the current entry's etag.
    NotModified,
}

/// Why an origin answer is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The entry now holds undelivered writes; they win over the origin.
    Dirty,
    /// `304` but nothing is cached to refresh.
    NothingToRefresh,
}

/// What to do with an origin answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginApply {
    /// Store this entry.
    Store(Entry),
    /// Serve this entry once and store nothing: the value exceeds `max_value_bytes`, or the
    /// answer may predate an invalidation of the key. Its windows all end at once, so it is
    /// never fresh.
    ServeUnstored(Entry),
    /// Store nothing.
    Skip(SkipReason),
}

/// Decides what to store after the origin answered, given the entry as it is now: the new
/// entry is for `audience`, with windows shortened by the answer's `directives`. `now` is
/// when the origin was asked: the answer is as old as that, and an invalidation at or after
/// it may announce a change the answer does not show.
#[must_use]
pub fn apply_origin(
    current: Option<&Entry>,
    origin: OriginAnswer,
    directives: &Directives,
    audience: Audience,
    now: UnixMillis,
    cfg: &CacheConfig,
) -> OriginApply {
    if current.is_some_and(Entry::is_dirty) {
        return OriginApply::Skip(SkipReason::Dirty);
    }
    let invalidated_at = current.and_then(|c| c.invalidated_at);
    let predates_invalidation = invalidated_at.is_some_and(|at| now <= at);
    if origin == OriginAnswer::NotModified && current.is_some_and(|c| c.is_superseded_by(None)) {
        // Nothing servable to refresh: the entry was invalidated after its content.
        return OriginApply::Skip(SkipReason::NothingToRefresh);
    }
    let entry = match origin {
        OriginAnswer::Found {
            value,
            etag,
            version,
        } => {
            let too_large = value.len() > cfg.max_value_bytes;
            let mut entry = Entry::at(EntryKind::Value, value, audience, now);
            entry.fetched_at = Some(now);
            if too_large || predates_invalidation {
                entry.etag = etag;
                return OriginApply::ServeUnstored(entry);
            }
            entry.etag = etag.filter(|e| e.len() <= MAX_ETAG_BYTES);
            entry.version = version.unwrap_or(0);
            value_windows(now, cfg, directives).apply(&mut entry);
            entry
        }
        OriginAnswer::NotFound => {
            let mut entry = Entry::at(EntryKind::Absent, Vec::new(), audience, now);
            entry.fetched_at = Some(now);
            if predates_invalidation {
                return OriginApply::ServeUnstored(entry);
            }
            absent_windows(now, cfg, directives).apply(&mut entry);
            entry
        }
        OriginAnswer::NotModified => {
            let Some(current) = current else {
                return OriginApply::Skip(SkipReason::NothingToRefresh);
            };
            if predates_invalidation {
                return OriginApply::Skip(SkipReason::NothingToRefresh);
            }
            let mut refreshed = current.clone();
            refreshed.fetched_at = Some(now);
            refreshed.audience = audience;
            value_windows(now, cfg, directives).apply(&mut refreshed);
            refreshed
        }
    };
    let mut entry = entry;
    entry.invalidated_at = invalidated_at;
    OriginApply::Store(entry)
}

#[cfg(test)]
mod tests;
