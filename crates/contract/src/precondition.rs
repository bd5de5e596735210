//! Conditional requests (RFC 9110 13.1.1–2), judged alike on both sides of the contract.
//!
//! The cache judges a client's `If-Match`/`If-None-Match` against its entry before it
//! buffers a write, and the reference DB API judges them on its own item writes, inside the
//! transaction that applies the write. A passed-through `PATCH` depends on that second
//! judgement: the cache reads the DB API's value, merges, and writes the result back only if
//! the item is still what it read (`If-Match` with the ETag it read, or `If-None-Match: *`
//! when there was none), so a writer in between is detected instead of overwritten. Both
//! sides use one reading of the header lists, so they cannot disagree.

/// Whether a comma-separated `If-None-Match` list names `etag` (or is `*`). Weak
/// comparison: `W/` prefixes are ignored.
#[must_use]
pub fn list_matches_weak(list: &str, etag: &str) -> bool {
    fn strip(t: &str) -> &str {
        t.trim().trim_start_matches("W/")
    }
    let want = strip(etag);
    list.split(',').any(|t| t.trim() == "*" || strip(t) == want)
}

/// Whether a comma-separated `If-Match` list names `etag` (or is `*`). Strong comparison:
/// a weak tag on either side never matches.
#[must_use]
pub fn list_matches_strong(list: &str, etag: &str) -> bool {
    let want = etag.trim();
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || (t == want && !want.starts_with("W/")))
}

/// Whether a write's preconditions hold for the item's current state: `current` is `None`
/// when there is no current value (never written, deleted, or known absent), `Some(None)` for
/// a value without an ETag, `Some(Some(etag))` otherwise. `If-Match` is evaluated first
/// (strong comparison; `*` needs a current value), then `If-None-Match` (weak comparison; `*`
/// needs none). A write whose preconditions do not hold is answered `412` and changes
/// nothing.
#[must_use]
pub fn holds(
    current: Option<Option<&str>>,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> bool {
    if let Some(im) = if_match {
        let matches = current.is_some_and(|etag| match etag {
            Some(etag) => list_matches_strong(im, etag),
            None => im.trim() == "*",
        });
        if !matches {
            return false;
        }
    }
    if let Some(inm) = if_none_match {
        let matches = current.is_some_and(|etag| match etag {
            Some(etag) => list_matches_weak(inm, etag),
            None => inm.trim() == "*",
        });
        if matches {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_strongly_and_star_needs_a_value() {
        let v3 = Some(Some("\"v3\""));
        assert!(holds(v3, Some("\"v3\""), None));
        assert!(holds(v3, Some("\"v1\", \"v3\""), None));
        assert!(!holds(v3, Some("\"v4\""), None));
        assert!(
            !holds(v3, Some("W/\"v3\""), None),
            "a weak tag never matches strongly"
        );
        assert!(!holds(Some(Some("W/\"v3\"")), Some("W/\"v3\""), None));
        assert!(holds(v3, Some("*"), None));
        assert!(holds(Some(None), Some("*"), None));
        assert!(!holds(Some(None), Some("\"v3\""), None));
        assert!(!holds(None, Some("*"), None));
        assert!(!holds(None, Some("\"v3\""), None));
    }

    #[test]
    fn if_none_match_compares_weakly_and_star_needs_no_value() {
        let v3 = Some(Some("\"v3\""));
        assert!(!holds(v3, None, Some("W/\"v3\"")));
        assert!(!holds(v3, None, Some("\"v2\" , \"v3\"")));
        assert!(holds(v3, None, Some("\"v4\"")));
        assert!(!holds(v3, None, Some("*")));
        assert!(!holds(Some(None), None, Some("*")));
        assert!(holds(None, None, Some("*")));
        assert!(holds(None, None, Some("\"v3\"")));
        assert!(holds(v3, None, None));
        assert!(holds(None, None, None));
    }

    #[test]
    fn if_match_is_judged_before_if_none_match() {
        let v3 = Some(Some("\"v3\""));
        assert!(!holds(v3, Some("\"v3\""), Some("\"v3\"")));
        assert!(holds(v3, Some("\"v3\""), Some("\"v2\"")));
        assert!(!holds(None, Some("\"v3\""), Some("*")));
    }
}
