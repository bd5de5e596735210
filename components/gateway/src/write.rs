//! `PUT`, `PATCH` and `DELETE /v1/{ns}/{key}`: buffered writes with read-your-writes.
//!
//! Order matters and follows `cache_core::write`: validate everything first (nothing is
//! stored for a rejected request), check `If-Match`, prepare the record and entry, check
//! backpressure ([`admit`]), store the buffer record (the durability point: a write is
//! acknowledged only after it), then the dirty entry (the visibility point). `PATCH` applies
//! an RFC 7386 merge patch to the current value, reading it through from the DB API when it
//! is not cached, and is then an ordinary put.

use cache_core::buffer::{admit, Admission, Backpressure, BufferStats};
use cache_core::config::CacheConfig;
use cache_core::entry::{Entry, EntryKind};
use cache_core::envelope;
use cache_core::key::CacheKey;
use cache_core::kv_key::MAX_KV_VALUE_BYTES;
use cache_core::merge_patch::merge_patch;
use cache_core::read::{plan_read, ReadPlan};
use cache_core::stamp::{Stamp, StampGen};
use cache_core::state::FlushState;
use cache_core::store::KvStore;
use cache_core::write::{prepare_write, Change, EntryUpdate, WriteError};
use serde_json::Value;
use spin_adapters::{env, kv::SpinKv};
use spin_sdk::http::{Request, Response};

use crate::metrics;
use crate::read;
use crate::respond::{self, etag_list_matches, etag_list_matches_strong, Error, Result};

/// Which write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Replace the value.
    Put,
    /// Merge-patch the value.
    Patch,
    /// Remove the key.
    Delete,
}

/// Performs a write of `key`.
pub async fn write(
    cfg: &CacheConfig,
    key: &CacheKey,
    op: Op,
    req: &Request,
    auth: Option<&str>,
) -> Result<Response> {
    let body = match op {
        Op::Put | Op::Patch => Some(json_body(cfg, req, op)?),
        Op::Delete => None,
    };
    let if_match = req.header("if-match").and_then(|v| v.as_str());
    let if_none_match = req.header("if-none-match").and_then(|v| v.as_str());
    let mut kv = SpinKv::open_configured()?;
    let now = env::now();
    let stored = kv.get(&key.kv_key())?;
    let servable = match plan_read(stored.as_deref(), now) {
        ReadPlan::Serve(e) | ReadPlan::ServeAndRevalidate(e) => Some(e),
        ReadPlan::Fetch { .. } => None,
    };
    let needs_base = op == Op::Patch || if_match.is_some() || if_none_match.is_some();
    let base = match servable {
        Some(e) => Some(e),
        None if needs_base => Some(read::fill(cfg, &mut kv, key, auth, None).await?.entry),
        None => None,
    };
    // RFC 9110, 13.1.1 and 13.1.2: `If-Match` compares strongly, `If-None-Match` weakly; `*`
    // stands for any current value (a negative entry or a tombstone is none).
    let current = base.as_ref().filter(|e| e.kind == EntryKind::Value);
    if let Some(im) = if_match {
        let matches = current.is_some_and(|e| match e.etag.as_deref() {
            Some(etag) => etag_list_matches_strong(im, etag),
            None => im.trim() == "*",
        });
        if !matches {
            return Err(Error::PreconditionFailed);
        }
    }
    if let Some(inm) = if_none_match {
        let matches = current.is_some_and(|e| match e.etag.as_deref() {
            Some(etag) => etag_list_matches(inm, etag),
            None => inm.trim() == "*",
        });
        if matches {
            return Err(Error::PreconditionFailed);
        }
    }
    let change = match (op, body) {
        (Op::Put, Some(v)) => Change::Put(v),
        (Op::Patch, Some(patch)) => {
            let target = base
                .as_ref()
                .and_then(Entry::body)
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .unwrap_or(Value::Null);
            Change::Put(merge_patch(&target, &patch))
        }
        _ => Change::Delete,
    };
    // The entry as stored now (a read-through may have replaced it), for last-writer-wins.
    let current = kv
        .get(&key.kv_key())?
        .and_then(|b| envelope::decode(&b).ok());
    let mut stamps = StampGen::new(env::random_u64());
    let stamp = stamps.next(now);
    let prepared =
        prepare_write(key, change, current.as_ref(), stamp, now, cfg).map_err(|e| match e {
            WriteError::TooLarge { .. }
            | WriteError::Envelope(envelope::EnvelopeError::TooLarge { .. }) => {
                Error::TooLarge(e.to_string())
            }
            other => Error::Internal(other.to_string()),
        })?;
    let keys = kv.get_keys()?;
    let known_bytes = FlushState::load(&mut kv)?.buffered_bytes;
    let stats = BufferStats::from_keys(&keys, known_bytes);
    let incoming = u64::try_from(prepared.record.len()).unwrap_or(u64::MAX);
    if let Admission::Reject {
        reason,
        retry_after,
    } = admit(&stats, incoming, now, cfg)
    {
        return Err(Error::Backpressure {
            reason: match reason {
                Backpressure::TooManyWrites => "too many buffered writes",
                Backpressure::TooManyBytes => "too many buffered bytes",
                Backpressure::TooOld => "oldest buffered write too old",
            },
            retry_after,
        });
    }
    kv.set(&prepared.record_key, &prepared.record)?;
    if let EntryUpdate::Store(bytes) = &prepared.entry {
        store_entry(&mut kv, &prepared.entry_key, bytes, stamp)?;
    }
    metrics::inc(metrics::WRITES_BUFFERED);
    let etag = format!("\"w{stamp}\"");
    let body = serde_json::json!({ "status": "accepted", "etag": etag });
    let mut resp = respond::json(202, body.to_string());
    resp.set_header("etag", etag);
    resp.set_header("x-sync", "pending");
    Ok(resp)
}

/// Stores the dirty entry of the write stamped `stamp` unless the entry already shows a
/// newer write, then checks it is still there. Without compare-and-swap a concurrent older
/// writer can overwrite it between our check and our store; re-checking and re-storing
/// (a few rounds) leaves the newest writer's entry in place in all but the tightest races.
/// The buffer records are unaffected either way: the flush delivers the newest by stamp.
fn store_entry(kv: &mut SpinKv, entry_key: &str, bytes: &[u8], stamp: Stamp) -> Result<()> {
    for _ in 0..3 {
        let now = kv.get(entry_key)?.and_then(|b| envelope::decode(&b).ok());
        let newer = now.as_ref().is_some_and(|e| match e.dirty {
            Some(d) => d.stamp > stamp,
            None => e.version > stamp.version(),
        });
        if newer {
            return Ok(());
        }
        kv.set(entry_key, bytes)?;
        let after = kv.get(entry_key)?.and_then(|b| envelope::decode(&b).ok());
        if after
            .and_then(|e| e.dirty)
            .is_some_and(|d| d.stamp >= stamp)
        {
            return Ok(());
        }
    }
    Ok(())
}

/// The request body as JSON, after the media type and size checks.
fn json_body(cfg: &CacheConfig, req: &Request, op: Op) -> Result<Value> {
    let content_type = req
        .header("content-type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    match op {
        Op::Patch if !is_merge_patch(content_type) => {
            return Err(Error::UnsupportedMediaType(
                "application/merge-patch+json or application/json",
            ))
        }
        Op::Put | Op::Delete if !is_json(content_type) => {
            return Err(Error::UnsupportedMediaType("application/json"))
        }
        _ => {}
    }
    let declared = req
        .header("content-length")
        .and_then(|v| v.as_str())
        .map(|v| v.trim().parse::<u64>());
    let chunked = req.header("transfer-encoding").is_some();
    match declared {
        None if !chunked && req.body().is_empty() => return Err(Error::LengthRequired),
        Some(Err(_)) => return Err(Error::BadRequest("invalid Content-Length".into())),
        _ => {}
    }
    let limit = cfg.max_value_bytes.min(MAX_KV_VALUE_BYTES);
    if req.body().len() > limit {
        return Err(Error::TooLarge(format!(
            "body is {} bytes, over the {limit}-byte limit",
            req.body().len()
        )));
    }
    serde_json::from_slice(req.body()).map_err(|e| Error::BadJson(e.to_string()))
}

/// `application/json` or any `+json` type, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A `PATCH` body is an RFC 7386 merge patch: `application/merge-patch+json`, or plain
/// `application/json`. Other `+json` types are other patch formats (a JSON Patch,
/// `application/json-patch+json`, is a list of operations); applying one as a merge patch
/// would replace the value with the operations, so they are refused.
fn is_merge_patch(content_type: &str) -> bool {
    matches!(
        essence(content_type).as_str(),
        "application/merge-patch+json" | "application/json"
    )
}

/// The media type without parameters, lowercased.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
