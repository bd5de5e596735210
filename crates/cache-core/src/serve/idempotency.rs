//! `Idempotency-Key` on writes: a repeat answers the first result and buffers nothing.
//!
//! Why: a client whose connection broke after the gateway answered cannot tell whether its
//! write was buffered, so it sends it again. With the same `Idempotency-Key` (a value the
//! client made for that one write, draft-ietf-httpapi-idempotency-key-header) the repeat is
//! answered with the first `202` and its ETag, marked `Idempotent-Replayed: true`, and no
//! second buffer record exists: the write is applied once.
//!
//! # What is remembered, and for whom
//!
//! One record per caller, item and key, `m:idem:{window}:{digest}`
//! ([`crate::stored::kv_key`]): `digest` is [`Caller::idempotency_digest`], keyed under
//! `auth_key` as every per-caller digest is, so no credential is stored and another caller's
//! key never matches (an anonymous caller without an `auth_key` gets a plain digest; a
//! credentialed caller without one cannot use the header: nothing is kept per caller then,
//! and the write is refused rather than silently performed without the promise). The record
//! holds a fingerprint of the request (method, body, preconditions), the stamp of the write
//! and, once the buffer record is stored, its ETag. A record lives [`KEEP`]: `window` is
//! `now / KEEP`, a lookup reads the current window and the one before, and the sweep deletes
//! older windows by name ([`is_dead`]), so records never pile up (Fermyon Cloud counts keys).
//!
//! The lookup comes after the caller passed the same checks as any write (identity, rules,
//! write authorization): a replay never answers a caller the write itself would refuse.
//!
//! # One write with a key
//!
//! 1. Read the record. Done with the same fingerprint → replay. Another fingerprint → `422`
//!    (the key was reused for another request). Pending and not lapsed → `409` with
//!    `Retry-After` (the first is still running). Pending and lapsed (its instance died):
//!    if its buffer record `w:{stamp}` exists the write was stored → replay it; else the
//!    claim is taken over.
//! 2. Claim: store a pending record naming this request (a random owner, the stamp the write
//!    will carry) and read it back; another owner → `409`.
//! 3. Just before the buffer record is stored, read the claim again ([`Claim::confirm`]);
//!    another owner → `409`, nothing stored.
//! 4. Store the buffer record, then mark the claim done with the ETag ([`Claim::finish`]).
//!    An error before the record is stored deletes the claim ([`Claim::abandon`]), so a
//!    repeat is judged afresh (a `412` stays a `412` only if it still fails).
//!
//! # Two instances racing (no compare-and-swap)
//!
//! Fermyon Cloud and Akamai have no `wasi:keyvalue/atomics`, and a swap from an absent key
//! is an upsert on Spin's SQLite store anyway, so the claim is write-then-read. Two repeats
//! both go on only if the second read its empty record before the first stored its claim,
//! and stored its own claim only after the first's confirming read (step 3), which comes
//! several store calls after the first's claim: the second must stall between one read and
//! the next write for longer than the first takes to prepare its write. Were it to happen,
//! two buffer records carry the same value for the same key, one after the other: the DB API
//! ends with the same value, but the write counts as applied twice. A crash between storing
//! the buffer record and marking the claim done is recovered in step 1 (the record is found
//! by its stamp) unless a flush delivered and deleted the record within [`PENDING`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::caller::{plain_digest, Caller};
use crate::config::CacheConfig;
use crate::key::CacheKey;
use crate::serve::reply::{self, Reply, RequestError};
use crate::stamp::Stamp;
use crate::store::KvStore;
use crate::stored::kv_key::KvKey;
use crate::time::UnixMillis;

/// How long a finished write's key is remembered (one to two windows of this length).
pub const KEEP: Duration = Duration::from_secs(60 * 60);

/// How long a pending claim holds before a repeat may take it over: longer than any request
/// runs (Fermyon Cloud ends a request at 30 s).
pub const PENDING: Duration = Duration::from_secs(30);

/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_BYTES: usize = 255;

const FORMAT: u8 = 1;

/// The parts of a write request that must be the same for a repeat.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint<'a> {
    /// `PUT`, `PATCH` or `DELETE`.
    pub method: &'a str,
    /// The body as sent.
    pub body: &'a [u8],
    /// `If-Match`, as sent.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`, as sent.
    pub if_none_match: Option<&'a str>,
}

impl Fingerprint<'_> {
    fn digest(&self) -> String {
        let opt = |v: Option<&str>| v.map_or(Vec::new(), |v| [b"1", v.as_bytes()].concat());
        plain_digest(&[
            self.method.as_bytes(),
            self.body,
            &opt(self.if_match),
            &opt(self.if_none_match),
        ])
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    v: u8,
    /// The request's fingerprint.
    fp: String,
    /// Who claimed it.
    owner: u64,
    /// The stamp the write carries.
    stamp: String,
    /// Pending: when the claim lapses. Done: when the record may be forgotten.
    until: u64,
    /// Set once the buffer record is stored: the reply's ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

/// What a write with a key does next.
#[derive(Debug)]
pub enum Begin {
    /// Answer this: the first result of the same request.
    Replay(Reply),
    /// Go on with the write under this stamp, holding the claim.
    Proceed(Claim),
}

/// A claim on one key, held while the write is performed.
#[derive(Debug)]
pub struct Claim {
    kv_key: String,
    stored: Stored,
    /// The stamp the write must carry.
    pub stamp: Stamp,
}

/// Whether `value` is an acceptable `Idempotency-Key`: 1–255 visible ASCII characters.
#[must_use]
pub fn is_valid_key(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_KEY_BYTES
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// The window `now` falls in.
#[must_use]
pub fn window(now: UnixMillis) -> u64 {
    now.0 / crate::time::duration_millis(KEEP)
}

/// Whether a record kept in `stored_window` can no longer be found at `now` (its window is
/// past, or lies ahead of the clock: no lookup reads it).
#[must_use]
pub fn is_dead(stored_window: u64, now: UnixMillis) -> bool {
    let current = window(now);
    stored_window.saturating_add(1) < current || stored_window > current
}

/// One write sent with an `Idempotency-Key`.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The item written.
    pub key: &'a CacheKey,
    /// The `Idempotency-Key` as sent.
    pub idem: &'a str,
    /// What a repeat must match.
    pub fingerprint: Fingerprint<'a>,
    /// The stamp the write will carry.
    pub stamp: Stamp,
    /// A random number naming this attempt's claim.
    pub owner: u64,
}

/// Steps 1 and 2 of the module docs for `attempt` by `caller`.
pub fn begin(
    store: &mut impl KvStore,
    cfg: &CacheConfig,
    caller: &Caller,
    attempt: &Attempt<'_>,
    now: UnixMillis,
) -> Result<Begin, RequestError> {
    let Attempt {
        key,
        idem,
        fingerprint,
        stamp,
        owner,
    } = *attempt;
    if !is_valid_key(idem) {
        return Err(RequestError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters"
        )));
    }
    let digest = caller
        .idempotency_digest(cfg, key, idem)
        .ok_or(RequestError::IdempotencyUnavailable)?;
    let fp = fingerprint.digest();
    let current = window(now);
    let mut claim_key = KvKey::Idempotency {
        window: current,
        digest: digest.clone(),
    }
    .render();
    for w in [Some(current), current.checked_sub(1)]
        .into_iter()
        .flatten()
    {
        let kv_key = KvKey::Idempotency {
            window: w,
            digest: digest.clone(),
        }
        .render();
        let Some(found) = load(store, &kv_key)? else {
            continue;
        };
        if found.fp != fp {
            return Err(RequestError::IdempotencyKeyReused);
        }
        if let Some(etag) = found.etag {
            return Ok(Begin::Replay(replay(etag)));
        }
        if now.0 < found.until {
            return Err(RequestError::IdempotencyInProgress);
        }
        // A lapsed claim: its instance died. Stored its buffer record? Then it was buffered.
        if let Ok(s) = Stamp::parse(&found.stamp) {
            if store.get(&KvKey::Write(s).render())?.is_some() {
                let etag = reply::write_etag(s);
                let mut done = found.clone();
                done.etag = Some(etag.clone());
                done.until = now.saturating_add(KEEP).0;
                save(store, &kv_key, &done)?;
                return Ok(Begin::Replay(replay(etag)));
            }
        }
        claim_key = kv_key;
        break;
    }
    let stored = Stored {
        v: FORMAT,
        fp,
        owner,
        stamp: stamp.to_string(),
        until: now.saturating_add(PENDING).0,
        etag: None,
    };
    save(store, &claim_key, &stored)?;
    let claim = Claim {
        kv_key: claim_key,
        stored,
        stamp,
    };
    claim.confirm(store)?;
    Ok(Begin::Proceed(claim))
}

impl Claim {
    /// Step 3: the claim is still this request's; another owner is `409`.
    pub fn confirm(&self, store: &mut impl KvStore) -> Result<(), RequestError> {
        match load(store, &self.kv_key)? {
            Some(s) if s.owner == self.stored.owner && s.fp == self.stored.fp => Ok(()),
            _ => Err(RequestError::IdempotencyInProgress),
        }
    }

    /// Step 4: the buffer record is stored; a repeat answers `etag` from now on. Best effort:
    /// a claim left pending is recovered from the buffer record (module docs).
    pub fn finish(mut self, store: &mut impl KvStore, etag: &str, now: UnixMillis) {
        self.stored.etag = Some(etag.to_owned());
        self.stored.until = now.saturating_add(KEEP).0;
        let _ = save(store, &self.kv_key, &self.stored);
    }

    /// The write ended before its buffer record was stored: forget the claim, so a repeat is
    /// judged afresh. Best effort: a claim left behind lapses after [`PENDING`].
    pub fn abandon(self, store: &mut impl KvStore) {
        if matches!(load(store, &self.kv_key), Ok(Some(s)) if s.owner == self.stored.owner) {
            let _ = store.delete(&self.kv_key);
        }
    }
}

/// The answer to a repeat: the first `202`, marked as replayed.
fn replay(etag: String) -> Reply {
    let mut reply = reply::accepted_etag(etag);
    reply
        .headers
        .push(("idempotent-replayed", "true".to_owned()));
    reply
}

/// The record under `kv_key`; one that does not decode is none (it is overwritten).
fn load(store: &mut impl KvStore, kv_key: &str) -> Result<Option<Stored>, RequestError> {
    Ok(store
        .get(kv_key)?
        .and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
        .filter(|s| s.v == FORMAT))
}

fn save(store: &mut impl KvStore, kv_key: &str, stored: &Stored) -> Result<(), RequestError> {
    let bytes = serde_json::to_vec(stored)
        .map_err(|e| RequestError::Internal(format!("cannot encode idempotency record: {e}")))?;
    store.set(kv_key, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(is_valid_key("7c0b6a52-0f7e-4a5e-9d0e-5b1f3c2d4e6f"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key(&"a".repeat(256)));
        assert!(!is_valid_key("tab\there"));
        assert!(!is_valid_key("é"));
    }

    #[test]
    fn fingerprints_separate_method_body_and_preconditions() {
        let base = Fingerprint {
            method: "PUT",
            body: b"{}",
            if_match: None,
            if_none_match: None,
        };
        let d = base.digest();
        assert_eq!(d, base.digest());
        for other in [
            Fingerprint {
                method: "PATCH",
                ..base
            },
            Fingerprint {
                body: b"{ }",
                ..base
            },
            Fingerprint {
                if_match: Some(""),
                ..base
            },
            Fingerprint {
                if_none_match: Some("*"),
                ..base
            },
        ] {
            assert_ne!(other.digest(), d, "{other:?}");
        }
    }

    #[test]
    fn windows_older_than_the_previous_one_are_dead() {
        let hour = 3_600_000;
        let now = UnixMillis(10 * hour + 5);
        assert!(!is_dead(10, now));
        assert!(!is_dead(9, now));
        assert!(is_dead(8, now));
        assert!(is_dead(11, now));
    }
}
