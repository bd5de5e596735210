//! Shadow mode's comparison: what the cache would have served, judged against what the DB API
//! answered the same caller at the same moment.
//!
//! Shadow is the rollout's first step: every caller gets the DB API's answer, and the cache
//! only says what it would have done ([`Would`]). The evidence that it can serve traffic is
//! the share of reads where that is what the DB API said. A pure function of the two, so
//! the rule is tested without a store or a clock:
//!
//! | the cache would have | the DB API answered | verdict |
//! |---|---|---|
//! | asked the DB API (a miss) | anything | match: it would have relayed it |
//! | served an entry (`HIT`, `NEGATIVE`, `STALE`) | the same status and JSON value | match |
//! | served an entry fresh | another value | mismatch, `value` |
//! | served an entry fresh | another status (`200` for `404`, or the reverse) | mismatch, `status` |
//! | served an entry stale (beyond its freshness, within `stale_ttl`) | anything else | mismatch, `stale` |
//! | served an entry it needs no DB API call to admit the caller to | `401`/`403` | mismatch, `status` |
//! | asked the DB API whether the caller may read it | `401`/`403` | match: it would have refused |
//! | anything | no answer, or another status | not compared |
//!
//! A refusal is never blamed on staleness: an entry served to a caller the DB API refuses
//! widens access, the one mismatch an operator must see whatever its cause. An origin failure
//! is not compared: serving the entry then is what the cache is for.
//!
//! Values compare as JSON (key order and spacing do not count). A mismatch carries a
//! [`Sample`]: where (namespace, key), both ETags, the entry's age and the first differing
//! JSON path (RFC 6901) — never a value, which may be personal data.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entry::{Entry, EntryKind};
use crate::key::CacheKey;
use crate::serve::origin::{ItemAnswer, Unanswered};
use crate::time::UnixMillis;

/// How the cache would admit the caller to a cached entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Without asking the DB API: an entry for anyone, the caller's own, a kept read grant,
    /// or the caller's verified token under the access rules.
    Kept,
    /// By asking the DB API, whose answer is then the cache's: the same as the one compared.
    AsksOrigin,
}

/// What the cache would have served a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Would {
    /// An entry, fresh (`stale: false`) or stale-while-revalidate, admitted as `admission`.
    Serve {
        /// The entry.
        entry: Entry,
        /// Whether it is past its freshness.
        stale: bool,
        /// How the caller would be admitted to it.
        admission: Admission,
    },
    /// Nothing cached would do: it would ask the DB API.
    Miss,
}

impl Would {
    /// The `X-Cache` the cache would have answered with: `HIT`, `NEGATIVE`, `STALE` or `MISS`.
    #[must_use]
    pub fn status(&self) -> WouldStatus {
        match self {
            Would::Serve { stale: true, .. } => WouldStatus::Stale,
            Would::Serve { entry, .. } if entry.kind == EntryKind::Value => WouldStatus::Hit,
            Would::Serve { .. } => WouldStatus::Negative,
            Would::Miss => WouldStatus::Miss,
        }
    }
}

/// What the cache would have answered, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WouldStatus {
    /// A fresh value.
    Hit,
    /// A fresh negative entry (`404`).
    Negative,
    /// A stale entry, revalidated after.
    Stale,
    /// The DB API's answer.
    Miss,
}

impl WouldStatus {
    /// Every kind.
    pub const ALL: [WouldStatus; 4] = [
        WouldStatus::Hit,
        WouldStatus::Negative,
        WouldStatus::Stale,
        WouldStatus::Miss,
    ];

    /// Its name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WouldStatus::Hit => "hit",
            WouldStatus::Negative => "negative",
            WouldStatus::Stale => "stale",
            WouldStatus::Miss => "miss",
        }
    }
}

/// Why the cache's answer would have differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// A fresh entry with another JSON value.
    Value,
    /// Another status: found for not found, the reverse, or served where the DB API refuses.
    Status,
    /// An entry served past its freshness, with another answer.
    Stale,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 3] = [Reason::Value, Reason::Status, Reason::Stale];

    /// Its name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Value => "value",
            Reason::Status => "status",
            Reason::Stale => "stale",
        }
    }
}

/// One mismatch, as the report shows it: where, both ETags, how old the entry was and the
/// first differing JSON path. No value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When the read was made, Unix milliseconds.
    pub at: u64,
    /// Why it differed.
    pub reason: Reason,
    /// The namespace.
    pub ns: String,
    /// The item key.
    pub key: String,
    /// What the cache would have answered.
    pub would: WouldStatus,
    /// The status the cache would have answered.
    pub cache_status: u16,
    /// The status the DB API answered.
    pub origin_status: u16,
    /// The cached entry's ETag.
    pub cache_etag: Option<String>,
    /// The DB API's ETag.
    pub origin_etag: Option<String>,
    /// The entry's age: since it was fetched or written, milliseconds.
    pub entry_age_ms: u64,
    /// The first JSON path (RFC 6901) where the values differ, when both are values.
    pub path: Option<String>,
}

/// The comparison's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The caller would have got the same answer.
    Match,
    /// It would not have.
    Mismatch(Box<Sample>),
    /// Nothing to compare: the DB API failed or answered a status the cache does not keep.
    Uncompared,
}

/// Judges what the cache `would` have served `key` at `at` against the DB API's `answer`
/// (the table in the module docs).
#[must_use]
pub fn judge(
    key: &CacheKey,
    would: &Would,
    answer: &Result<ItemAnswer, Unanswered>,
    at: UnixMillis,
) -> Verdict {
    let Ok(answer) = answer else {
        return Verdict::Uncompared;
    };
    if !matches!(answer.status, 200 | 404 | 401 | 403) {
        return Verdict::Uncompared;
    }
    let Would::Serve {
        entry,
        stale,
        admission,
    } = would
    else {
        return Verdict::Match;
    };
    let cache_status = if entry.kind == EntryKind::Value {
        200
    } else {
        404
    };
    let refused = matches!(answer.status, 401 | 403);
    let mismatch = |reason, path| {
        Verdict::Mismatch(Box::new(Sample {
            at: at.0,
            reason,
            ns: key.ns().to_string(),
            key: key.key().to_string(),
            would: would.status(),
            cache_status,
            origin_status: answer.status,
            cache_etag: entry.etag.clone(),
            origin_etag: answer.etag.clone(),
            entry_age_ms: at.0.saturating_sub(entry.touched_at().0),
            path,
        }))
    };
    if refused {
        return match admission {
            Admission::AsksOrigin => Verdict::Match,
            Admission::Kept => mismatch(Reason::Status, None),
        };
    }
    let differs = if cache_status == answer.status {
        first_difference(entry.body(), &answer.body)
    } else {
        Some(None)
    };
    match differs {
        None => Verdict::Match,
        Some(path) if *stale => mismatch(Reason::Stale, path),
        Some(path) if cache_status == answer.status => mismatch(Reason::Value, path),
        Some(_) => mismatch(Reason::Status, None),
    }
}

/// `None` when the two bodies hold the same JSON (or there are no bodies: two `404`s);
/// otherwise `Some` of the first differing path, when both are JSON.
fn first_difference(cached: Option<&[u8]>, origin: &[u8]) -> Option<Option<String>> {
    // No body: two `404`s.
    let cached = cached?;
    let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).ok();
    match (parse(cached), parse(origin)) {
        (Some(a), Some(b)) if a == b => None,
        (Some(a), Some(b)) => Some(
            json_patch::diff(&a, &b)
                .0
                .first()
                .map(|op| op.path().to_string()),
        ),
        _ if cached == origin => None,
        _ => Some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_a_json_pointer_and_key_order_does_not_count() {
        let d = |a: &str, b: &str| first_difference(Some(a.as_bytes()), b.as_bytes());
        assert_eq!(
            d(r#"{"a":1,"b":[1,2]}"#, r#"{ "b": [1, 2], "a": 1 }"#),
            None
        );
        assert_eq!(
            d(r#"{"a":1,"b":{"c":[1,2]}}"#, r#"{"a":1,"b":{"c":[1,3]}}"#),
            Some(Some("/b/c/1".to_owned()))
        );
        assert_eq!(
            d(r#"{"a/b":1}"#, r#"{"a/b":2}"#),
            Some(Some("/a~1b".to_owned()))
        );
        assert_eq!(d("1", "2"), Some(Some(String::new())));
        assert_eq!(d("1", "not json"), Some(None));
        assert_eq!(first_difference(None, b""), None);
    }
}
