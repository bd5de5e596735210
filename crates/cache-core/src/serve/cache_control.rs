//! What the origin's caching headers allow: the shared-cache rules of RFC 9111.
//!
//! cache-sync is a *shared* cache: one entry can serve many callers. RFC 9111 says when a
//! shared cache may store an answer at all and for how long, and this module applies it to
//! every answer the DB API gives an item read:
//!
//! - `no-store` (§5.2.2.5): never stored. `no-cache` (§5.2.2.4) is treated the same, since a
//!   stored copy could never be served without asking again.
//! - A `Vary` naming anything but `Authorization` or `Accept-Encoding` (§4.1): not stored,
//!   since the cache keys entries by item only. `Vary: *` likewise.
//! - An answer to a request that carried credentials (§3.5) is stored for sharing only when
//!   the origin marked it shareable: `public` or `s-maxage`. Otherwise, and always for
//!   `private` (§5.2.2.7) or `Vary: Authorization`, it is stored for that caller alone.
//!   An anonymous request's answer is shareable unless it is `private`; then it is not
//!   stored at all (a private cache for "nobody" is no cache).
//! - `s-maxage` (else `max-age`), `stale-while-revalidate` and `stale-if-error` (RFC 5861)
//!   replace the configured windows when present, but never lengthen them: the configured
//!   `ttl`, `stale_ttl` and `stale_if_error` (and `negative_ttl` for a 404) are the ceiling.
//!
//! The parser is small and lenient on purpose: unknown directives are ignored, a directive
//! whose value does not parse is ignored (its window falls back to the configured one), and
//! quoted values and arguments of `private="..."` are accepted. Nothing here can fail.

use std::time::Duration;

/// The directives of one answer that matter to a shared cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    /// `no-store`, `no-cache`, or a `Vary` the cache cannot honour.
    pub no_store: bool,
    /// `private`, or `Vary: Authorization`.
    pub private: bool,
    /// `public`, or `s-maxage` present.
    pub public: bool,
    /// `s-maxage`, else `max-age`.
    pub max_age: Option<Duration>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error`.
    pub stale_if_error: Option<Duration>,
}

impl Directives {
    /// Reads an answer's `Cache-Control` and `Vary` headers (either may be absent).
    #[must_use]
    pub fn parse(cache_control: Option<&str>, vary: Option<&str>) -> Directives {
        let mut d = Directives::default();
        let mut max_age = None;
        let mut s_maxage = None;
        for part in cache_control.unwrap_or("").split(',') {
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n, Some(v.trim().trim_matches('"'))),
                None => (part, None),
            };
            let secs = || {
                value
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "no-store" | "no-cache" => d.no_store = true,
                "private" => d.private = true,
                "public" => d.public = true,
                "max-age" => max_age = secs(),
                "s-maxage" => {
                    s_maxage = secs();
                    d.public |= s_maxage.is_some();
                }
                "stale-while-revalidate" => d.stale_while_revalidate = secs(),
                "stale-if-error" => d.stale_if_error = secs(),
                _ => {}
            }
        }
        d.max_age = s_maxage.or(max_age);
        for field in vary.unwrap_or("").split(',').map(str::trim) {
            if field.is_empty() || field.eq_ignore_ascii_case("accept-encoding") {
                continue;
            }
            if field.eq_ignore_ascii_case("authorization") {
                d.private = true;
            } else {
                d.no_store = true;
            }
        }
        d
    }

    /// Where an answer with these directives may be kept: the request carried credentials
    /// when `credentialed`; `per_caller` says whether this cache can keep entries for one
    /// caller (it has an `auth_key`), and `grant_checked` whether shared entries are checked
    /// per caller (`grant` mode).
    #[must_use]
    pub fn placement(
        &self,
        credentialed: bool,
        per_caller: bool,
        grant_checked: bool,
    ) -> Placement {
        if self.no_store {
            return Placement::Nowhere;
        }
        let shareable = if self.private {
            false
        } else {
            self.public || !credentialed
        };
        if shareable {
            Placement::Shared
        } else if grant_checked {
            Placement::SharedGranted
        } else if credentialed && per_caller {
            Placement::Caller
        } else {
            Placement::Nowhere
        }
    }

    /// `configured`, shortened to the origin's `max_age` when it gives a shorter one.
    #[must_use]
    pub fn fresh_for(&self, configured: Duration) -> Duration {
        self.max_age.map_or(configured, |d| d.min(configured))
    }

    /// `configured`, shortened to the origin's `stale-while-revalidate`.
    #[must_use]
    pub fn stale_for(&self, configured: Duration) -> Duration {
        self.stale_while_revalidate
            .map_or(configured, |d| d.min(configured))
    }

    /// `configured`, shortened to the origin's `stale-if-error`.
    #[must_use]
    pub fn stale_if_error_for(&self, configured: Duration) -> Duration {
        self.stale_if_error
            .map_or(configured, |d| d.min(configured))
    }
}

/// Where an origin answer is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the item's shared entry, for any caller.
    Shared,
    /// In the item's shared entry, for callers holding a read grant (`grant` mode).
    SharedGranted,
    /// In the caller's own entry (`c:{ns}#{scope}:{key}`).
    Caller,
    /// Nowhere: served once.
    Nowhere,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(cc: &str, vary: &str, credentialed: bool) -> Placement {
        Directives::parse(Some(cc), Some(vary)).placement(credentialed, true, false)
    }

    #[test]
    fn shared_only_when_the_origin_says_so_for_a_credentialed_request() {
        assert_eq!(place("", "", true), Placement::Caller);
        assert_eq!(place("max-age=60", "", true), Placement::Caller);
        assert_eq!(place("private", "", true), Placement::Caller);
        assert_eq!(place("public", "", true), Placement::Shared);
        assert_eq!(place("s-maxage=10", "", true), Placement::Shared);
        assert_eq!(place("public", "Authorization", true), Placement::Caller);
        assert_eq!(place("public, no-store", "", true), Placement::Nowhere);
        assert_eq!(place("no-cache", "", false), Placement::Nowhere);
        assert_eq!(place("PUBLIC", "accept-encoding", true), Placement::Shared);
        assert_eq!(place("public", "Cookie", true), Placement::Nowhere);
        assert_eq!(place("public", "*", false), Placement::Nowhere);
    }

    #[test]
    fn anonymous_answers_are_shared_unless_private_and_then_kept_nowhere() {
        assert_eq!(place("", "", false), Placement::Shared);
        assert_eq!(place("private", "", false), Placement::Nowhere);
        let d = Directives::parse(Some("private"), None);
        assert_eq!(d.placement(false, true, true), Placement::SharedGranted);
        assert_eq!(d.placement(true, false, false), Placement::Nowhere);
    }

    #[test]
    fn origin_windows_shorten_but_never_lengthen_the_configured_ones() {
        let d = Directives::parse(
            Some(r#"max-age=5, s-maxage="20", stale-while-revalidate=1, stale-if-error=x"#),
            None,
        );
        assert!(d.public);
        let s = Duration::from_secs;
        assert_eq!(d.fresh_for(s(60)), s(20));
        assert_eq!(d.fresh_for(s(10)), s(10));
        assert_eq!(d.stale_for(s(300)), s(1));
        assert_eq!(d.stale_if_error_for(s(3600)), s(3600));
        let none = Directives::parse(None, None);
        assert_eq!(none.fresh_for(s(60)), s(60));
        assert_eq!(none, Directives::default());
    }
}
