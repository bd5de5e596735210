//! Passing a request through to the DB API: what a caller outside the rollout's canary (or
//! every caller in `passthrough`) gets ([`crate::rollout`]). The request paths themselves
//! are in [`crate::serve`] (step 0 of a `GET`, step 2 of a write); here is the relay of the
//! DB API's answer, for reads and writes alike.
//!
//! A passed-through read is one `GET` of the item with the caller's own `Authorization` and
//! `If-None-Match`, and the DB API's answer relayed as it came: status, body, `ETag`,
//! `Cache-Control`, `WWW-Authenticate`, with `X-Cache: PASS`; a write's answer also says
//! `Idempotent-Replayed: true` when the DB API answered a retry with the first write's
//! answer. The cache keeps nothing of it
//! and leaves the entry as it was: a pass-through is the DB API's behaviour, and the entry
//! is kept current by the writes the cache sees and the DB API's announcements
//! ([`super::invalidate`]), as in cutover. Only a read the DB API does not answer at all is
//! the cache's own error (`502`, or `504` after `origin_timeout`).
//!
//! A write that needs the DB API's current value (a `PATCH`, which merges into it, or a write
//! with `If-Match`/`If-None-Match`, judged against it) reads it first, and then writes only
//! if the item is still what was read: `If-Match` with the ETag read, or `If-None-Match: *`
//! when there was none. A DB API that honours those (the reference one judges them in the
//! write's transaction) answers a writer in between with `412`, and the write is read,
//! judged and merged again ([`CONDITIONAL_ATTEMPTS`]); the other writer's change is kept,
//! not overwritten. A DB API that ignores them, or sends no `ETag`, gets the write
//! unconditionally: a writer between the read and the write is then lost.
//!
//! One exception: a key whose entry is dirty (a buffered write the DB API has not received
//! yet) is served from the cache whatever the caller's route. The DB API's value is then
//! older than a write the cache has acknowledged, and nobody must read that after the
//! acknowledgement.

use super::origin::{ItemAnswer, Unanswered};
use super::reply::{Reply, RequestError};

/// How many times a passed-through write that reads first (a `PATCH`, or one with a
/// precondition) is tried when the DB API's item changes between its read and its write
/// (the DB API answers the conditional write `412`). Then the caller is answered
/// `409 changed_concurrently`, and nothing was written.
pub const CONDITIONAL_ATTEMPTS: u32 = 3;

/// The `X-Cache` value of a passed-through answer.
pub const X_CACHE_PASS: &str = "PASS";

/// The DB API's answer to a passed-through write, relayed ([`relay`]). Without a complete
/// answer the write may or may not have been applied (the request may have reached the DB
/// API and only its answer been lost), and the error says so: `502`/`504` naming the retry
/// that is safe, the same `Idempotency-Key`.
pub fn relay_write(answer: Result<ItemAnswer, Unanswered>) -> Result<Reply, RequestError> {
    const UNKNOWN: &str =
        "it may or may not have been applied: retry with the same Idempotency-Key";
    match answer {
        Err(Unanswered::TimedOut(reason)) => Err(RequestError::OriginTimeout(format!(
            "the DB API did not answer the write within origin_timeout ({reason}); {UNKNOWN}"
        ))),
        Err(Unanswered::Failed(reason)) => Err(RequestError::Origin(format!(
            "no complete answer from the DB API to the write ({reason}); {UNKNOWN}"
        ))),
        answered => relay(answered),
    }
}

/// The DB API's answer to a passed-through read, relayed.
pub fn relay(answer: Result<ItemAnswer, Unanswered>) -> Result<Reply, RequestError> {
    let answer = answer.map_err(Unanswered::into_error)?;
    let replayed = answer.idempotent_replayed;
    let mut reply = Reply {
        status: answer.status,
        body: answer.body,
        ..Reply::default()
    };
    if !reply.body.is_empty() {
        reply
            .headers
            .push(("content-type", "application/json".to_owned()));
    }
    for (name, value) in [
        ("etag", answer.etag),
        ("cache-control", answer.cache_control),
        ("www-authenticate", answer.www_authenticate),
    ] {
        if let Some(v) = value {
            reply.headers.push((name, v));
        }
    }
    if replayed {
        reply
            .headers
            .push(("idempotent-replayed", "true".to_owned()));
    }
    reply.headers.push(("x-cache", X_CACHE_PASS.to_owned()));
    Ok(reply)
}
