//! Freshness: how long an entry may be served, and what the HTTP caching headers say.
//!
//! An entry carries absolute instants ([`Entry::fresh_until`] and friends) computed once, when
//! it is stored, from the configuration ([`value_windows`], [`absent_windows`]). Judging it later
//! needs only `now`. The windows follow RFC 5861: `stale_ttl` (stale-while-revalidate) and
//! `stale_if_error` both start when the entry stops being fresh.
//!
//! Dirty entries are judged like any other here; the read plan ([`crate::serve::read`]) is what makes
//! them authoritative regardless of age.

use std::time::Duration;

use crate::config::CacheConfig;
use crate::entry::Entry;
use crate::serve::cache_control::Directives;
use crate::time::UnixMillis;

/// How servable an entry is at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Serve it; nothing else to do.
    Fresh,
    /// Serve it and revalidate it against the origin.
    Stale,
    /// Serve it only if the origin fails.
    StaleIfError,
    /// Do not serve it.
    Expired,
}

/// The validity windows of an entry, as absolute instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Fresh before this instant.
    pub fresh_until: UnixMillis,
    /// Servable while revalidating before this instant.
    pub stale_until: UnixMillis,
    /// Servable on origin failure before this instant.
    pub stale_if_error_until: UnixMillis,
}

impl Windows {
    /// Windows that all end at `now`: never fresh, never stale.
    #[must_use]
    pub fn ending(now: UnixMillis) -> Windows {
        Windows {
            fresh_until: now,
            stale_until: now,
            stale_if_error_until: now,
        }
    }

    /// Copies the windows into `entry`.
    pub fn apply(self, entry: &mut Entry) {
        entry.fresh_until = self.fresh_until;
        entry.stale_until = self.stale_until;
        entry.stale_if_error_until = self.stale_if_error_until;
    }
}

/// Windows for a value fetched or written at `now`.
///
/// The origin's `directives` shorten them (never lengthen; see
/// [`crate::serve::cache_control`]); a written value passes `Directives::default()`.
#[must_use]
pub fn value_windows(now: UnixMillis, cfg: &CacheConfig, directives: &Directives) -> Windows {
    let fresh_until = now.saturating_add(directives.fresh_for(cfg.ttl));
    Windows {
        fresh_until,
        stale_until: fresh_until.saturating_add(directives.stale_for(cfg.stale_ttl)),
        stale_if_error_until: fresh_until
            .saturating_add(directives.stale_if_error_for(cfg.stale_if_error)),
    }
}

/// Windows for a "not found" learned at `now`: fresh for `negative_ttl`, never stale.
#[must_use]
pub fn absent_windows(now: UnixMillis, cfg: &CacheConfig, directives: &Directives) -> Windows {
    let fresh_until = now.saturating_add(directives.fresh_for(cfg.negative_ttl));
    Windows {
        fresh_until,
        stale_until: fresh_until,
        stale_if_error_until: fresh_until,
    }
}

/// How servable `entry` is at `now`.
#[must_use]
pub fn freshness(entry: &Entry, now: UnixMillis) -> Freshness {
    if now < entry.fresh_until {
        Freshness::Fresh
    } else if now < entry.stale_until {
        Freshness::Stale
    } else if now < entry.stale_if_error_until {
        Freshness::StaleIfError
    } else {
        Freshness::Expired
    }
}

/// The `Cache-Control` of a response served from an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheControl {
    /// Downstream caches must revalidate every time (dirty or stale entries).
    NoCache,
    /// Downstream caches may reuse the response.
    MaxAge {
        /// Remaining fresh seconds.
        max_age: u64,
        /// Seconds it may then be served while revalidating.
        stale_while_revalidate: u64,
        /// Seconds it may then be served when the origin fails.
        stale_if_error: u64,
    },
}

impl CacheControl {
    /// The header value.
    #[must_use]
    pub fn render(&self) -> String {
        match self {
            CacheControl::NoCache => "no-cache".to_owned(),
            CacheControl::MaxAge {
                max_age,
                stale_while_revalidate,
                stale_if_error,
            } => format!(
                "max-age={max_age}, stale-while-revalidate={stale_while_revalidate}, stale-if-error={stale_if_error}"
            ),
        }
    }
}

/// The `Cache-Control` for serving `entry` at `now`.
///
/// Dirty entries get `no-cache`: the cache is the only place that knows the newest value, so
/// downstream caches must come back. Entries past their fresh window get `no-cache` as well.
#[must_use]
pub fn cache_control(entry: &Entry, now: UnixMillis) -> CacheControl {
    if entry.is_dirty() || freshness(entry, now) != Freshness::Fresh {
        return CacheControl::NoCache;
    }
    CacheControl::MaxAge {
        max_age: secs(now.until(entry.fresh_until)),
        stale_while_revalidate: secs(entry.fresh_until.until(entry.stale_until)),
        stale_if_error: secs(entry.fresh_until.until(entry.stale_if_error_until)),
    }
}

/// The `Age` header value: whole seconds since the content was fetched or written.
#[must_use]
pub fn age_secs(entry: &Entry, now: UnixMillis) -> u64 {
    secs(now.saturating_since(entry.touched_at()))
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Audience, Dirty, EntryKind};
    use crate::stamp::Stamp;

    fn cfg() -> CacheConfig {
        CacheConfig::with_db_api_url("http://db").unwrap()
    }

    fn fetched_at(t: u64) -> Entry {
        let mut e = Entry {
            kind: EntryKind::Value,
            value: b"1".to_vec(),
            etag: None,
            version: 0,
            fetched_at: Some(UnixMillis(t)),
            written_at: None,
            fresh_until: UnixMillis(0),
            stale_until: UnixMillis(0),
            stale_if_error_until: UnixMillis(0),
            audience: Audience::Anyone,
            dirty: None,
            invalidated_at: None,
        };
        value_windows(UnixMillis(t), &cfg(), &Directives::default()).apply(&mut e);
        e
    }

    fn check(entry: &Entry, now: u64, expected: Freshness) {
        assert_eq!(freshness(entry, UnixMillis(now)), expected, "at {now}");
    }

    #[test]
    fn freshness_follows_ttl_then_stale_then_stale_if_error() {
        let e = fetched_at(1_000_000);
        let cases = [
            (1_000_000, Freshness::Fresh),
            (1_059_999, Freshness::Fresh),
            (1_060_000, Freshness::Stale),
            (1_359_999, Freshness::Stale),
            (1_360_000, Freshness::StaleIfError),
            (4_659_999, Freshness::StaleIfError),
            (4_660_000, Freshness::Expired),
            (u64::MAX, Freshness::Expired),
        ];
        for (now, expected) in cases {
            check(&e, now, expected);
        }
    }

    #[test]
    fn negative_entries_are_fresh_for_negative_ttl_and_never_stale() {
        let mut e = fetched_at(0);
        e.kind = EntryKind::Absent;
        absent_windows(UnixMillis(0), &cfg(), &Directives::default()).apply(&mut e);
        check(&e, 29_999, Freshness::Fresh);
        check(&e, 30_000, Freshness::Expired);
    }

    #[test]
    fn headers_report_remaining_freshness_and_age() {
        let e = fetched_at(1_000_000);
        let now = UnixMillis(1_010_500);
        assert_eq!(
            cache_control(&e, now).render(),
            "max-age=49, stale-while-revalidate=300, stale-if-error=3600"
        );
        assert_eq!(age_secs(&e, now), 10);
        assert_eq!(
            cache_control(&e, UnixMillis(1_060_000)),
            CacheControl::NoCache
        );
        let mut dirty = e.clone();
        dirty.dirty = Some(Dirty {
            stamp: Stamp::new(UnixMillis(1), 0, 0),
            since: UnixMillis(1),
        });
        assert_eq!(cache_control(&dirty, now), CacheControl::NoCache);
    }

    #[test]
    fn windows_saturate_at_the_end_of_time() {
        let w = value_windows(UnixMillis(u64::MAX - 5), &cfg(), &Directives::default());
        assert_eq!(w.stale_if_error_until, UnixMillis(u64::MAX));
    }
}
