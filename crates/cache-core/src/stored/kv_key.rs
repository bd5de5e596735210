//! The layout of keys in the Spin key-value store.
//!
//! Every record kind shares one store. Spin KV has no prefix listing (`get_keys` returns the
//! whole store), so each key starts with a one-letter kind and `:`; filtering a listing by kind
//! is a two-byte prefix check ([`RecordKind::of`]), and parsing goes strictly left to right
//! because item keys may themselves contain `:` and `#`.
//!
//! | key                         | record                                              |
//! |-----------------------------|-----------------------------------------------------|
//! | `c:{ns}:{key}`              | cache entry (an envelope)                           |
//! | `c:{ns}#{scope}:{key}`      | cache entry cached for one caller scope             |
//! | `w:{stamp}`                 | one buffered write                                  |
//! | `b:{batch_id}`              | a sealed batch, in flight to the DB API             |
//! | `d:{stamp}`                 | a dead-lettered write                               |
//! | `m:lease`                   | the flush lease                                     |
//! | `m:flush`                   | flush state: backoff, last outcome, buffer measure  |
//! | `m:admit:{epoch}:{n\|b\|t}`  | writes, bytes (and first time) admitted in an epoch |
//! | `m:fill:{hash}`             | fill lease of one cold cache entry                  |
//! | `m:fill:{window}:{hash}`    | fill claims counted in one lease-length window      |
//! | `m:rewrite`                 | when the open rewrite window closes (0: closed)     |
//! | `m:sweep`                   | the sweep's count of entries, its cursor and plan   |
//! | `m:sweepplan:{i}`           | a slice of entry keys planned for a later sweep     |
//! | `m:dlq`                     | the index of dead letters (their stamps)            |
//! | `m:count:{name}`            | a metrics counter, as kept before `m:tally:` (read)  |
//! | `m:tally:{name}`            | a metrics counter, kept with `increment`            |
//! | `m:grant:{window}:{digest}` | an access decision kept for one caller (`grant_ttl`) |
//! | `m:idem:{window}:{digest}`  | a write's `Idempotency-Key`, kept for one caller     |
//! | `m:history`                 | the dashboard's per-minute snapshots (a short ring)  |
//! | `m:rollout`                 | the rollout's run-time state and its change log      |
//! | `r:{class}:{end}:{who}`     | rate counter of one caller and class, one window    |
//!
//! The scope sits after the namespace, not after the key: namespaces cannot contain `#` or
//! `:`, so `{ns}#{scope}` is unambiguous, while a `#` after the key could belong to the key.
//! Unscoped keys keep their form when scopes are introduced. A rate counter names its
//! window by the window's end (Unix seconds), so the sweep can tell a past window from the
//! key alone, whatever the budgets are now; `{who}` is the caller's rate key, or its hash
//! when long ([`crate::limit`]), last because it may contain `:`. Keys longer than
//! [`MAX_KV_KEY_BYTES`] cannot be stored; [`crate::key::CacheKey::new`] refuses them.

use crate::delivery::batch_id::BatchId;
use crate::key::{CacheKey, ItemKey, Namespace, Scope};
use crate::limit::{self, Class};
use crate::stamp::Stamp;

/// The longest key Fermyon Cloud's key-value store accepts.
pub const MAX_KV_KEY_BYTES: usize = 250;

/// The largest value Spin's key-value store accepts (1 MiB).
pub const MAX_KV_VALUE_BYTES: usize = 1024 * 1024;

/// Prefix of cache entries.
pub const ENTRY_PREFIX: &str = "c:";
/// Prefix of buffered writes.
pub const WRITE_PREFIX: &str = "w:";
/// Prefix of sealed batches.
pub const BATCH_PREFIX: &str = "b:";
/// Prefix of dead letters.
pub const DEAD_LETTER_PREFIX: &str = "d:";
/// Prefix of bookkeeping records (lease, flush state, counters).
pub const META_PREFIX: &str = "m:";
/// Prefix of rate counters.
pub const RATE_PREFIX: &str = "r:";

const LEASE: &str = "lease";
const FLUSH_STATE: &str = "flush";
const COUNTER: &str = "count:";
const TALLY: &str = "tally:";
const FILL: &str = "fill:";
const GRANT: &str = "grant:";
const ADMIT: &str = "admit:";
const REWRITE: &str = "rewrite";
const SWEEP: &str = "sweep";
const SWEEP_PLAN: &str = "sweepplan:";
const DLQ_INDEX: &str = "dlq";
const IDEMPOTENCY: &str = "idem:";
const HISTORY: &str = "history";
const ROLLOUT: &str = "rollout";
const SHADOW: &str = "shadow:";
const SHADOW_SAMPLES: &str = "shadow:samples";

/// Which store a key lives in when the cache and the buffer are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// Cache entries, fill leases, access grants, the rewrite window, the sweep's count,
    /// the rollout and shadow mode's evidence, rate counters, and keys of other owners.
    Cache,
    /// Buffered writes, sealed batches, dead letters, the flush lease and state, admission
    /// and metrics counters.
    Buffer,
}

impl Area {
    /// The area of `key`, from its text alone.
    #[must_use]
    pub fn of(key: &str) -> Area {
        match RecordKind::of(key) {
            Some(RecordKind::Write | RecordKind::Batch | RecordKind::DeadLetter) => Area::Buffer,
            Some(RecordKind::Meta) => {
                let rest = &key[2..];
                if rest.starts_with(FILL)
                    || rest.starts_with(GRANT)
                    || rest.starts_with(IDEMPOTENCY)
                    || rest == REWRITE
                    || rest == SWEEP
                    || rest.starts_with(SWEEP_PLAN)
                    || rest == ROLLOUT
                    || rest.starts_with(SHADOW)
                {
                    Area::Cache
                } else {
                    Area::Buffer
                }
            }
            Some(RecordKind::Entry | RecordKind::Rate) | None => Area::Cache,
        }
    }
}

/// What an admission counter counts ([`KvKey::Admitted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admitted {
    /// Writes (`n`).
    Writes,
    /// Bytes of their buffer records (`b`).
    Bytes,
    /// When the first of them was counted (`t`), kept only in an epoch no flush run began,
    /// whose start is otherwise unknown.
    Since,
}

/// The kind of record a KV key names, from its prefix alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `c:` — a cache entry.
    Entry,
    /// `w:` — a buffered write.
    Write,
    /// `b:` — a sealed batch.
    Batch,
    /// `d:` — a dead letter.
    DeadLetter,
    /// `m:` — bookkeeping.
    Meta,
    /// `r:` — a rate counter.
    Rate,
}

impl RecordKind {
    /// The kind of `key`, or `None` for keys the cache does not own.
    #[must_use]
    pub fn of(key: &str) -> Option<RecordKind> {
        match key.get(..2)? {
            ENTRY_PREFIX => Some(RecordKind::Entry),
            WRITE_PREFIX => Some(RecordKind::Write),
            BATCH_PREFIX => Some(RecordKind::Batch),
            DEAD_LETTER_PREFIX => Some(RecordKind::DeadLetter),
            META_PREFIX => Some(RecordKind::Meta),
            RATE_PREFIX => Some(RecordKind::Rate),
            _ => None,
        }
    }
}

/// A parsed KV key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvKey {
    /// A cache entry.
    Entry(CacheKey),
    /// A buffered write.
    Write(Stamp),
    /// A sealed batch.
    Batch(BatchId),
    /// A dead letter, named by the stamp of its write.
    DeadLetter(Stamp),
    /// The flush lease.
    Lease,
    /// The flush state record.
    FlushState,
    /// A metrics counter as stored before counters were incremented: decimal text, only
    /// read now.
    Counter(String),
    /// A metrics counter, added to with `increment`.
    Tally(String),
    /// The marker of an open rewrite window ([`crate::delivery::rewrite_window`]).
    RewriteWindow,
    /// The sweep's record: the entries it counted and where its next slice starts
    /// ([`crate::delivery::sweep::Swept`]).
    Sweep,
    /// One slice of entry keys a sweep's listing chose for a later sweep, by its place in
    /// the listing's plan, from 1 ([`crate::delivery::sweep`]).
    SweepPlan(usize),
    /// The index of dead letters ([`crate::delivery::dlq`]).
    DeadLetterIndex,
    /// An admission counter of one epoch ([`crate::delivery::state::FlushState::epoch`]).
    Admitted {
        /// The epoch counted in.
        epoch: u64,
        /// What it counts.
        measure: Admitted,
    },
    /// The fill lease of a cache entry, named by the FNV-1a hash of the entry's KV key
    /// (entry keys can be 250 bytes; the hash keeps the lease key short).
    Fill(u64),
    /// The fill claim counter of a cache entry for one window of [`crate::serve::fill`]'s
    /// lease length, where the store increments atomically: the window it counts (the sweep
    /// deletes those of past windows by name alone) and the entry's key hash, as for [`KvKey::Fill`].
    FillTicket {
        /// `now / LEASE_TTL` when it was counted.
        window: u64,
        /// The FNV-1a hash of the entry's KV key.
        hash: u64,
    },
    /// A kept access decision: the `grant_ttl` window it was made in (the sweep deletes
    /// those of past windows by name alone) and a keyed digest of caller, item and access.
    Grant {
        /// `now / grant_ttl` when it was stored.
        window: u64,
        /// 32 lowercase hex digits ([`crate::auth::caller`]).
        digest: String,
    },
    /// A remembered `Idempotency-Key` ([`crate::serve::idempotency`]): the window it was
    /// claimed in (the sweep deletes those of past windows by name alone) and a digest of
    /// caller, item and key.
    Idempotency {
        /// `now / idempotency::KEEP` when it was claimed.
        window: u64,
        /// 32 lowercase hex digits.
        digest: String,
    },
    /// The dashboard's history of per-minute snapshots ([`crate::history`]).
    History,
    /// The rollout's run-time state and change log ([`crate::rollout::state`]).
    Rollout,
    /// A count of shadow comparisons in one window of `rollout_gate_window`
    /// ([`crate::rollout::evidence`]; the sweep deletes those of past windows by name).
    ShadowWindow {
        /// `now / rollout_gate_window` when it was counted.
        window: u64,
        /// Whether it counts mismatches (otherwise matches).
        mismatch: bool,
    },
    /// The latest shadow mismatches ([`crate::rollout::evidence`]).
    ShadowSamples,
    /// The rate counter of one caller and class in the window ending at `window_end`.
    Rate {
        /// The class of requests counted.
        class: Class,
        /// The end of the window, Unix seconds.
        window_end: u64,
        /// The caller's rate key as kept in the key (`limit::who_part`).
        who: String,
    },
}

impl KvKey {
    /// The key text.
    #[must_use]
    pub fn render(&self) -> String {
        match self {
            KvKey::Entry(ck) => match ck.scope() {
                None => format!("{ENTRY_PREFIX}{}:{}", ck.ns(), ck.key()),
                Some(scope) => {
                    format!("{ENTRY_PREFIX}{}#{}:{}", ck.ns(), scope.as_str(), ck.key())
                }
            },
            KvKey::Write(s) => format!("{WRITE_PREFIX}{s}"),
            KvKey::Batch(id) => format!("{BATCH_PREFIX}{id}"),
            KvKey::DeadLetter(s) => format!("{DEAD_LETTER_PREFIX}{s}"),
            KvKey::Lease => format!("{META_PREFIX}{LEASE}"),
            KvKey::FlushState => format!("{META_PREFIX}{FLUSH_STATE}"),
            KvKey::RewriteWindow => format!("{META_PREFIX}{REWRITE}"),
            KvKey::Sweep => format!("{META_PREFIX}{SWEEP}"),
            KvKey::SweepPlan(i) => format!("{META_PREFIX}{SWEEP_PLAN}{i}"),
            KvKey::DeadLetterIndex => format!("{META_PREFIX}{DLQ_INDEX}"),
            KvKey::Counter(name) => format!("{META_PREFIX}{COUNTER}{name}"),
            KvKey::Tally(name) => format!("{META_PREFIX}{TALLY}{name}"),
            KvKey::Admitted { epoch, measure } => {
                let m = match measure {
                    Admitted::Writes => 'n',
                    Admitted::Bytes => 'b',
                    Admitted::Since => 't',
                };
                format!("{META_PREFIX}{ADMIT}{epoch}:{m}")
            }
            KvKey::Fill(hash) => format!("{META_PREFIX}{FILL}{hash:016x}"),
            KvKey::FillTicket { window, hash } => {
                format!("{META_PREFIX}{FILL}{window}:{hash:016x}")
            }
            KvKey::Grant { window, digest } => format!("{META_PREFIX}{GRANT}{window}:{digest}"),
            KvKey::Idempotency { window, digest } => {
                format!("{META_PREFIX}{IDEMPOTENCY}{window}:{digest}")
            }
            KvKey::History => format!("{META_PREFIX}{HISTORY}"),
            KvKey::Rollout => format!("{META_PREFIX}{ROLLOUT}"),
            KvKey::ShadowWindow { window, mismatch } => {
                let what = if *mismatch { "mismatch" } else { "match" };
                format!("{META_PREFIX}{SHADOW}{window}:{what}")
            }
            KvKey::ShadowSamples => format!("{META_PREFIX}{SHADOW_SAMPLES}"),
            KvKey::Rate {
                class,
                window_end,
                who,
            } => format!("{RATE_PREFIX}{}:{window_end}:{who}", class.as_str()),
        }
    }

    /// Parses a key; `None` for keys of other owners or malformed keys.
    #[must_use]
    pub fn parse(key: &str) -> Option<KvKey> {
        let rest = key.get(2..)?;
        match RecordKind::of(key)? {
            RecordKind::Entry => parse_entry(rest).map(KvKey::Entry),
            RecordKind::Write => Stamp::parse(rest).ok().map(KvKey::Write),
            RecordKind::Batch => BatchId::parse(rest).map(KvKey::Batch),
            RecordKind::DeadLetter => Stamp::parse(rest).ok().map(KvKey::DeadLetter),
            RecordKind::Meta => match rest {
                LEASE => Some(KvKey::Lease),
                FLUSH_STATE => Some(KvKey::FlushState),
                REWRITE => Some(KvKey::RewriteWindow),
                SWEEP => Some(KvKey::Sweep),
                DLQ_INDEX => Some(KvKey::DeadLetterIndex),
                HISTORY => Some(KvKey::History),
                ROLLOUT => Some(KvKey::Rollout),
                SHADOW_SAMPLES => Some(KvKey::ShadowSamples),
                _ if rest.starts_with(SWEEP_PLAN) => rest
                    .strip_prefix(SWEEP_PLAN)
                    .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|i| i.parse().ok())
                    .map(KvKey::SweepPlan),
                _ if rest.starts_with(SHADOW) => parse_shadow_window(rest.strip_prefix(SHADOW)?),
                _ if rest.starts_with(IDEMPOTENCY) => {
                    let (window, digest) = parse_window_digest(rest.strip_prefix(IDEMPOTENCY)?)?;
                    Some(KvKey::Idempotency { window, digest })
                }
                _ if rest.starts_with(FILL) => parse_fill(rest.strip_prefix(FILL)?),
                _ if rest.starts_with(GRANT) => parse_grant(rest.strip_prefix(GRANT)?),
                _ if rest.starts_with(ADMIT) => parse_admitted(rest.strip_prefix(ADMIT)?),
                _ if rest.starts_with(TALLY) => rest
                    .strip_prefix(TALLY)
                    .filter(|n| !n.is_empty())
                    .map(|n| KvKey::Tally(n.to_owned())),
                _ => rest
                    .strip_prefix(COUNTER)
                    .filter(|n| !n.is_empty())
                    .map(|n| KvKey::Counter(n.to_owned())),
            },
            RecordKind::Rate => parse_rate(rest),
        }
    }
}

/// `{hash}` (a fill lease) or `{window}:{hash}` (a fill ticket), the hash 16 hex digits.
fn parse_fill(rest: &str) -> Option<KvKey> {
    let hash = |h: &str| {
        (h.len() == 16 && h.bytes().all(is_lower_hex))
            .then(|| u64::from_str_radix(h, 16).ok())
            .flatten()
    };
    match rest.split_once(':') {
        None => hash(rest).map(KvKey::Fill),
        Some((w, h)) => {
            let window: u64 = w.parse().ok()?;
            // One spelling per key: digits only, no leading zero.
            if window.to_string() != w {
                return None;
            }
            Some(KvKey::FillTicket {
                window,
                hash: hash(h)?,
            })
        }
    }
}

/// `{window}:match` or `{window}:mismatch`, the window's digits without a leading zero.
fn parse_shadow_window(rest: &str) -> Option<KvKey> {
    let (w, what) = rest.split_once(':')?;
    let window: u64 = w.parse().ok()?;
    if window.to_string() != w {
        return None;
    }
    let mismatch = match what {
        "match" => false,
        "mismatch" => true,
        _ => return None,
    };
    Some(KvKey::ShadowWindow { window, mismatch })
}

fn parse_admitted(rest: &str) -> Option<KvKey> {
    let (epoch, m) = rest.split_once(':')?;
    let measure = match m {
        "n" => Admitted::Writes,
        "b" => Admitted::Bytes,
        "t" => Admitted::Since,
        _ => return None,
    };
    if epoch.is_empty()
        || !epoch.bytes().all(|b| b.is_ascii_digit())
        || (epoch.len() > 1 && epoch.starts_with('0'))
    {
        return None;
    }
    Some(KvKey::Admitted {
        epoch: epoch.parse().ok()?,
        measure,
    })
}

fn parse_rate(rest: &str) -> Option<KvKey> {
    let (class, rest) = rest.split_once(':')?;
    let (end, who) = rest.split_once(':')?;
    let window_end: u64 = end.parse().ok()?;
    // One spelling per key: digits only, no leading zero.
    if window_end.to_string() != end || !limit::is_who_part(who) {
        return None;
    }
    Some(KvKey::Rate {
        class: Class::parse(class)?,
        window_end,
        who: who.to_owned(),
    })
}

/// The digits [`KvKey::render`] writes; `u64::from_str_radix` alone would also take `A-F`
/// and a leading `+`, giving one key several spellings.
fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn parse_grant(rest: &str) -> Option<KvKey> {
    let (window, digest) = parse_window_digest(rest)?;
    Some(KvKey::Grant { window, digest })
}

/// `{window}:{digest}`, each in its one spelling: the window's digits without a leading zero,
/// the digest 32 lowercase hex digits.
fn parse_window_digest(rest: &str) -> Option<(u64, String)> {
    let (window, digest) = rest.split_once(':')?;
    let canonical = !window.is_empty()
        && window.bytes().all(|b| b.is_ascii_digit())
        && (window == "0" || !window.starts_with('0'));
    if !canonical || digest.len() != 32 || !digest.bytes().all(is_lower_hex) {
        return None;
    }
    Some((window.parse().ok()?, digest.to_owned()))
}

fn parse_entry(rest: &str) -> Option<CacheKey> {
    let (ns_part, key) = rest.split_once(':')?;
    let (ns, scope) = match ns_part.split_once('#') {
        Some((ns, scope)) => (ns, Some(Scope::parse(scope).ok()?)),
        None => (ns_part, None),
    };
    CacheKey::new(Namespace::parse(ns).ok()?, ItemKey::parse(key).ok()?, scope).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixMillis;

    fn entry(ns: &str, key: &str, scope: Option<&str>) -> KvKey {
        KvKey::Entry(
            CacheKey::new(
                Namespace::parse(ns).unwrap(),
                ItemKey::parse(key).unwrap(),
                scope.map(|s| Scope::parse(s).unwrap()),
            )
            .unwrap(),
        )
    }

    fn check(text: &str, expected: Option<KvKey>) {
        assert_eq!(KvKey::parse(text), expected, "parse {text:?}");
        if let Some(k) = expected {
            assert_eq!(k.render(), text, "render {k:?}");
        }
    }

    #[test]
    fn keys_round_trip_and_parse_from_the_left() {
        let stamp = Stamp::new(UnixMillis(5), 1, 2);
        let id = BatchId::derive([&stamp]);
        let cases = vec![
            ("c:users:42".to_owned(), Some(entry("users", "42", None))),
            (
                format!("m:grant:7:{}", "ab".repeat(16)),
                Some(KvKey::Grant {
                    window: 7,
                    digest: "ab".repeat(16),
                }),
            ),
            (format!("m:grant:07:{}", "ab".repeat(16)), None),
            (
                format!("m:idem:3:{}", "cd".repeat(16)),
                Some(KvKey::Idempotency {
                    window: 3,
                    digest: "cd".repeat(16),
                }),
            ),
            (format!("m:idem:03:{}", "cd".repeat(16)), None),
            ("m:idem:3:cd".to_owned(), None),
            ("m:history".to_owned(), Some(KvKey::History)),
            (
                "m:fill:12:00000000000000ff".to_owned(),
                Some(KvKey::FillTicket {
                    window: 12,
                    hash: 0xff,
                }),
            ),
            ("m:fill:012:00000000000000ff".to_owned(), None),
            ("m:fill:+12:00000000000000ff".to_owned(), None),
            ("m:fill:12:ff".to_owned(), None),
            ("m:rollout".to_owned(), Some(KvKey::Rollout)),
            ("m:shadow:samples".to_owned(), Some(KvKey::ShadowSamples)),
            (
                "m:shadow:7:mismatch".to_owned(),
                Some(KvKey::ShadowWindow {
                    window: 7,
                    mismatch: true,
                }),
            ),
            (
                "m:shadow:0:match".to_owned(),
                Some(KvKey::ShadowWindow {
                    window: 0,
                    mismatch: false,
                }),
            ),
            ("m:shadow:07:match".to_owned(), None),
            ("m:shadow:7:other".to_owned(), None),
            (format!("m:grant:7:{}", "AB".repeat(16)), None),
            ("m:grant:7:ab".to_owned(), None),
            (
                "c:users:a:b:c".to_owned(),
                Some(entry("users", "a:b:c", None)),
            ),
            ("c:users:a#b".to_owned(), Some(entry("users", "a#b", None))),
            (
                "c:users#ab12:a#b:c".to_owned(),
                Some(entry("users", "a#b:c", Some("ab12"))),
            ),
            (format!("w:{stamp}"), Some(KvKey::Write(stamp))),
            (format!("d:{stamp}"), Some(KvKey::DeadLetter(stamp))),
            (format!("b:{id}"), Some(KvKey::Batch(id.clone()))),
            ("m:lease".to_owned(), Some(KvKey::Lease)),
            ("m:flush".to_owned(), Some(KvKey::FlushState)),
            ("m:rewrite".to_owned(), Some(KvKey::RewriteWindow)),
            ("m:sweep".to_owned(), Some(KvKey::Sweep)),
            ("m:sweepplan:3".to_owned(), Some(KvKey::SweepPlan(3))),
            ("m:sweepplan:".to_owned(), None),
            ("m:sweepplan:x".to_owned(), None),
            ("m:dlq".to_owned(), Some(KvKey::DeadLetterIndex)),
            (
                "m:count:hits".to_owned(),
                Some(KvKey::Counter("hits".into())),
            ),
            ("m:tally:hits".to_owned(), Some(KvKey::Tally("hits".into()))),
            ("m:tally:".to_owned(), None),
            (
                "m:fill:00000000000000ff".to_owned(),
                Some(KvKey::Fill(0xff)),
            ),
            ("c:users".to_owned(), None),
            ("c:Users:1".to_owned(), None),
            ("c:users#:1".to_owned(), None),
            ("c:users:".to_owned(), None),
            ("w:nothex".to_owned(), None),
            ("m:other".to_owned(), None),
            (
                "m:admit:12:n".to_owned(),
                Some(KvKey::Admitted {
                    epoch: 12,
                    measure: Admitted::Writes,
                }),
            ),
            (
                "m:admit:0:b".to_owned(),
                Some(KvKey::Admitted {
                    epoch: 0,
                    measure: Admitted::Bytes,
                }),
            ),
            ("m:admit:012:n".to_owned(), None),
            ("m:admit:12:x".to_owned(), None),
            ("m:admit::n".to_owned(), None),
            ("m:fill:00000000000000FF".to_owned(), None),
            ("m:fill:+0000000000000ff".to_owned(), None),
            (
                "r:read:1700000060:ip:192.0.2.1".to_owned(),
                Some(KvKey::Rate {
                    class: Class::Read,
                    window_end: 1_700_000_060,
                    who: "ip:192.0.2.1".into(),
                }),
            ),
            (
                "r:admin:60:ip:2001:db8::/64".to_owned(),
                Some(KvKey::Rate {
                    class: Class::Admin,
                    window_end: 60,
                    who: "ip:2001:db8::/64".into(),
                }),
            ),
            ("r:read:060:ip:x".to_owned(), None),
            ("r:read:+60:ip:x".to_owned(), None),
            ("r:other:60:ip:x".to_owned(), None),
            ("r:read:60:".to_owned(), None),
            ("r:read:60:a b".to_owned(), None),
            ("r:read:60:#abc".to_owned(), None),
            ("x:1".to_owned(), None),
            ("".to_owned(), None),
            ("c".to_owned(), None),
        ];
        for (text, expected) in cases {
            check(&text, expected);
        }
    }

    #[test]
    fn the_area_is_known_from_the_key_alone() {
        let stamp = Stamp::new(UnixMillis(5), 1, 2);
        for key in [
            format!("w:{stamp}"),
            format!("d:{stamp}"),
            "b:x".to_owned(),
            "m:lease".to_owned(),
            "m:flush".to_owned(),
            "m:count:hits".to_owned(),
            "m:admit:3:n".to_owned(),
        ] {
            assert_eq!(Area::of(&key), Area::Buffer, "{key}");
        }
        for key in [
            "c:users:1",
            "c:users#ab:1",
            "m:fill:00000000000000ff",
            "m:grant:7:ab",
            "m:rewrite",
            "m:sweep",
            "m:sweepplan:1",
            "m:rollout",
            "m:shadow:7:match",
            "m:shadow:samples",
            "r:read:60:ip:x",
            "other",
            "",
        ] {
            assert_eq!(Area::of(key), Area::Cache, "{key}");
        }
    }

    #[test]
    fn kind_is_known_from_the_prefix_alone() {
        assert_eq!(RecordKind::of("c:anything"), Some(RecordKind::Entry));
        assert_eq!(RecordKind::of("w:x"), Some(RecordKind::Write));
        assert_eq!(RecordKind::of("é:x"), None);
        assert_eq!(RecordKind::of("cx"), None);
    }
}
