//! The wire contract between cache-sync and the main DB API.
//!
//! Both sides use these types: the flush routine builds [`BatchRequest`]s and parses
//! [`BatchResponse`]s, and the reference DB API (`db-api` crate) deserializes the former and
//! produces the latter. Keeping one definition is what keeps the two from drifting.
//!
//! - `GET {db_api}/v1/items/{ns}/{key}` → `200` with the JSON value (optional `ETag`), `404` when absent.
//! - `POST {db_api}/v1/batch` with `Idempotency-Key: <batch_id>` and a [`BatchRequest`] body →
//!   `200` with a [`BatchResponse`]: one [`ItemResult`] per write, in order. Resending a batch id
//!   returns the first answer and applies nothing again.
//! - `429`, `5xx` or a timeout: retry the whole batch later with the same id.
//! - `POST {db_api}/v1/authorize` with the caller's `Authorization` (none for an anonymous
//!   caller) and an [`AuthorizeRequest`] → `200` with an [`AuthorizeResponse`] naming the
//!   principal the DB API knows the caller as, or `401`/`403` (with `WWW-Authenticate`) when it
//!   would refuse that access. The cache asks before it acknowledges a write.
//!
//! # Writes on behalf of a caller
//!
//! A write the cache acknowledged was authorized for its caller at that moment; it reaches the
//! DB API later, in a batch the cache sends under its own `db_api_token`. Each
//! [`BatchWrite`] therefore names the principal it is made for in
//! [`BatchWrite::on_behalf_of`], and the DB API checks that principal's rights again when
//! applying it: a write the principal may no longer make is answered
//! [`ItemStatus::Rejected`] with reason [`FORBIDDEN_REASON`], so a credential revoked between
//! the write and the flush is honoured. A write without `on_behalf_of` (buffered before the
//! cache knew its caller) is the cache's own.
//!
//! # Exactly once, per write
//!
//! Batch ids make a resend harmless, but they are not the whole guarantee: two flush runs on
//! different instances can, rarely, seal the same buffered write into two batches with
//! different ids (without compare-and-swap the flush lease narrows that overlap but cannot
//! close it; see [`crate::delivery::lease`]). Every [`BatchWrite`] therefore carries its own
//! [`BatchWrite::write_id`], the write's stamp, and the DB API must answer a write id it has
//! already applied with [`ItemStatus::Duplicate`] without applying it again, whatever batch it
//! comes in, for at least a retention window longer than a write can stay buffered and
//! retried in the cache (`max_dirty_age + flush_max_attempts × flush_retry_max`, about two
//! hours with the defaults). A DB API that keeps the highest version per key would answer such
//! a write `stale` anyway; the write id is what makes the guarantee hold without a version
//! guard. Settling treats `duplicate` exactly like `applied`.

use serde::{Deserialize, Serialize};

use crate::names::{ItemKey, Namespace};

/// Header that carries the batch id, per draft-ietf-httpapi-idempotency-key-header.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Path of the batch endpoint, relative to the DB API base URL.
pub const BATCH_PATH: &str = "/v1/batch";

/// Path prefix of the item endpoint: `{ITEMS_PATH}/{ns}/{key}`.
pub const ITEMS_PATH: &str = "/v1/items";

/// Path of the authorization endpoint, relative to the DB API base URL.
pub const AUTHORIZE_PATH: &str = "/v1/authorize";

/// The `reason` of a write the DB API refused because its principal may not make it.
pub const FORBIDDEN_REASON: &str = "forbidden";

/// The longest principal name a DB API may answer (bytes); longer answers are refused.
pub const MAX_PRINCIPAL_BYTES: usize = 256;

/// A kind of access to one item, as [`AUTHORIZE_PATH`] is asked about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `GET` the item.
    Read,
    /// `PUT`, `PATCH` or `DELETE` the item.
    Write,
}

impl Access {
    /// The wire name: `read` or `write`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Body of `POST /v1/authorize`: may the caller (its `Authorization` header) make this access?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    /// Namespace of the item.
    pub ns: String,
    /// The key inside its namespace.
    pub key: String,
    /// The access asked for.
    pub op: Access,
}

/// Body of a `200` answer to `POST /v1/authorize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeResponse {
    /// The subject the DB API knows the caller as (at most [`MAX_PRINCIPAL_BYTES`] bytes);
    /// `anonymous` callers have one too when the DB API grants them access.
    pub principal: String,
}

/// The DB API's path of `key`: `{ITEMS_PATH}/{ns}/{key}`, the key percent-encoded.
#[must_use]
pub fn item_path(ns: &Namespace, key: &ItemKey) -> String {
    format!("{ITEMS_PATH}/{ns}/{}", key.to_path_segment())
}

/// The DB API's ETag of an item at `version`: `"v{version}"` (strong).
#[must_use]
pub fn etag_of_version(version: u64) -> String {
    format!("\"v{version}\"")
}

/// The item version in the DB API's `"v{version}"` ETags (weak or strong); `None` for any
/// other ETag.
#[must_use]
pub fn version_from_etag(etag: &str) -> Option<u64> {
    etag.trim_start_matches("W/")
        .trim_matches('"')
        .strip_prefix('v')?
        .parse()
        .ok()
}

/// Bits below the milliseconds in a write's version.
pub const VERSION_TIME_SHIFT: u32 = 20;

/// The lowest version of a write made at `millis` (Unix milliseconds). Versions order writes
/// by time: the cache versions its writes `(millis << 20) | sequence and instance bits`, and
/// the DB API keeps the highest version per key. Another writer of the database keeps that
/// order by versioning its writes at least at this value (and above the version it
/// replaces), so that a write the cache buffered before it cannot win over it when it is
/// delivered later, and one buffered after it does.
#[must_use]
pub fn version_at(millis: u64) -> u64 {
    millis.saturating_mul(1 << VERSION_TIME_SHIFT)
}

/// Length of a [`BatchWrite::write_id`]: lowercase hex digits, the text form of the cache's
/// write stamp (48-bit milliseconds, 16-bit sequence, 64-bit instance id).
pub const WRITE_ID_LEN: usize = 32;

/// What a write does to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOp {
    /// Store `value` under the key.
    Put,
    /// Remove the key.
    Delete,
}

/// One coalesced write: the newest version of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchWrite {
    /// Namespace of the key.
    pub ns: String,
    /// The key inside its namespace.
    pub key: String,
    /// The write's unique id: its stamp in text form, [`WRITE_ID_LEN`] lowercase hex digits.
    /// The same write keeps the same id in every batch that carries it, so the DB API can
    /// apply it once even when it arrives under two batch ids.
    pub write_id: String,
    /// Put or delete.
    pub op: WriteOp,
    /// The JSON value for a put (which may be JSON `null`); absent for a delete.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub value: Option<serde_json::Value>,
    /// Per-key version; the DB API keeps the highest (last writer wins by version).
    pub version: u64,
    /// When the client's write was accepted, Unix milliseconds.
    pub written_at: u64,
    /// The principal the write is made for, as the DB API's authorization call named it; the
    /// DB API checks that principal's rights again before applying the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
}

/// Body of `POST /v1/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Stable id of the sealed batch; equal to the `Idempotency-Key` header.
    pub batch_id: String,
    /// The writes, at most one per key.
    pub writes: Vec<BatchWrite>,
}

/// Outcome of one write in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// The write is now what the DB holds.
    Applied,
    /// The DB already holds this or a newer version; nothing changed.
    Stale,
    /// This write id was already applied (in any batch, this one included); nothing was
    /// applied now. A DB API may also answer it for a write id it answered `stale` before.
    /// Settles like `applied`.
    Duplicate,
    /// The DB refused the write because of a conflicting state.
    Conflict,
    /// The DB refused the write as invalid.
    Rejected,
}

/// The DB API's answer for one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// What happened to the write.
    pub status: ItemStatus,
    /// Why, for `conflict` and `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of a `200` answer to `POST /v1/batch`: one result per write, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Results, in the order of the request's writes.
    pub results: Vec<ItemResult>,
}

/// Deserializes a present member as `Some`, even when it is JSON `null`; an absent member
/// falls back to `None` through `#[serde(default)]`. Without this, a put of `null` would read
/// back as a put without a value.
pub fn present_value<'de, D>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    serde_json::Value::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_put_of_null_keeps_its_value_and_a_delete_has_none() {
        let put_null = BatchWrite {
            ns: "n".into(),
            key: "k".into(),
            write_id: "0000000003e800020000000000000003".into(),
            op: WriteOp::Put,
            value: Some(json!(null)),
            version: 1,
            written_at: 2,
            on_behalf_of: None,
        };
        let text = serde_json::to_string(&put_null).unwrap();
        assert_eq!(
            text,
            r#"{"ns":"n","key":"k","write_id":"0000000003e800020000000000000003","op":"put","value":null,"version":1,"written_at":2}"#
        );
        assert_eq!(serde_json::from_str::<BatchWrite>(&text).unwrap(), put_null);
        let delete: BatchWrite = serde_json::from_str(
            r#"{"ns":"n","key":"k","write_id":"0000000003e800020000000000000003","op":"delete","version":1,"written_at":2}"#,
        )
        .unwrap();
        assert_eq!(delete.value, None);
        let missing_id = r#"{"ns":"n","key":"k","op":"delete","version":1,"written_at":2}"#;
        assert!(serde_json::from_str::<BatchWrite>(missing_id).is_err());
    }

    #[test]
    fn on_behalf_of_is_sent_only_when_known_and_authorize_speaks_lowercase() {
        let w: BatchWrite = serde_json::from_str(
            r#"{"ns":"n","key":"k","write_id":"0000000003e800020000000000000003","op":"delete","version":1,"written_at":2,"on_behalf_of":"alice"}"#,
        )
        .unwrap();
        assert_eq!(w.on_behalf_of.as_deref(), Some("alice"));
        let req = AuthorizeRequest {
            ns: "sessions".into(),
            key: "alice:1".into(),
            op: Access::Write,
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"ns":"sessions","key":"alice:1","op":"write"}"#
        );
    }

    #[test]
    fn duplicate_is_a_status_on_the_wire() {
        let answer: BatchResponse =
            serde_json::from_str(r#"{"results":[{"status":"duplicate"}]}"#).unwrap();
        assert_eq!(answer.results[0].status, ItemStatus::Duplicate);
        assert_eq!(
            serde_json::to_string(&ItemStatus::Duplicate).unwrap(),
            r#""duplicate""#
        );
    }
}
