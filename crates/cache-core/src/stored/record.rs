//! One buffered write, and its stored form under `w:{stamp}`.
//!
//! The write buffer is append-only: each accepted write is its own KV record, keyed by its
//! stamp, so parallel gateway instances never overwrite each other's records (there is no CAS
//! in Spin KV). Records are JSON objects whose first member is the format version `"v": 1`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::contract::{BatchWrite, WriteOp};
use crate::key::{ItemKey, KeyError, Namespace};
use crate::stamp::{Stamp, StampError};
use crate::stored::kv_key::{KvKey, MAX_KV_VALUE_BYTES};
use crate::time::UnixMillis;

/// The record format this build writes.
pub const RECORD_FORMAT: u8 = 1;

/// Why a stored record could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// Not the expected JSON.
    #[error("invalid record: {0}")]
    Json(String),
    /// Written by an unknown format version.
    #[error("unknown record format version {0}")]
    UnknownVersion(u8),
    /// A name inside is invalid.
    #[error("invalid key in record: {0}")]
    Key(#[from] KeyError),
    /// The stamp inside is invalid.
    #[error("invalid stamp in record: {0}")]
    Stamp(#[from] StampError),
    /// A put without a value.
    #[error("put record without a value")]
    MissingValue,
    /// The encoded record exceeds the store's value limit.
    #[error("record is {0} bytes, over the store limit")]
    TooLarge(usize),
}

/// A write accepted by the gateway and not yet delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferedWrite {
    /// Namespace of the written key.
    pub ns: Namespace,
    /// The written key.
    pub key: ItemKey,
    /// The new value, for a put; `None` for a delete.
    pub value: Option<serde_json::Value>,
    /// Identity and order of the write.
    pub stamp: Stamp,
    /// When the gateway accepted it.
    pub written_at: UnixMillis,
    /// The principal the write was authorized for (never a credential); `None` for a write
    /// accepted without an authorization decision.
    pub subject: Option<String>,
}

impl BufferedWrite {
    /// Put or delete.
    #[must_use]
    pub fn op(&self) -> WriteOp {
        if self.value.is_some() {
            WriteOp::Put
        } else {
            WriteOp::Delete
        }
    }

    /// The KV key of the record: `w:{stamp}`.
    #[must_use]
    pub fn kv_key(&self) -> String {
        KvKey::Write(self.stamp).render()
    }

    /// The write as the DB API receives it.
    #[must_use]
    pub fn to_batch_write(&self) -> BatchWrite {
        BatchWrite {
            ns: self.ns.to_string(),
            key: self.key.to_string(),
            write_id: self.stamp.to_string(),
            op: self.op(),
            value: self.value.clone(),
            version: self.stamp.version(),
            written_at: self.written_at.0,
            on_behalf_of: self.subject.clone(),
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let bytes = serde_json::to_vec(&StoredWrite::from(self))
            .map_err(|e| RecordError::Json(e.to_string()))?;
        if bytes.len() > MAX_KV_VALUE_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<BufferedWrite, RecordError> {
        let stored: StoredWrite =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        stored.into_write()
    }
}

/// The JSON form of a buffered write, shared by `w:` records, sealed batches and dead letters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredWrite {
    v: u8,
    ns: String,
    key: String,
    op: WriteOp,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::contract::present_value"
    )]
    value: Option<serde_json::Value>,
    stamp: String,
    written_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

impl From<&BufferedWrite> for StoredWrite {
    fn from(w: &BufferedWrite) -> Self {
        StoredWrite {
            v: RECORD_FORMAT,
            ns: w.ns.to_string(),
            key: w.key.to_string(),
            op: w.op(),
            value: w.value.clone(),
            stamp: w.stamp.to_string(),
            written_at: w.written_at.0,
            subject: w.subject.clone(),
        }
    }
}

impl StoredWrite {
    pub(crate) fn into_write(self) -> Result<BufferedWrite, RecordError> {
        if self.v != RECORD_FORMAT {
            return Err(RecordError::UnknownVersion(self.v));
        }
        let value = match self.op {
            WriteOp::Put => Some(self.value.ok_or(RecordError::MissingValue)?),
            WriteOp::Delete => None,
        };
        Ok(BufferedWrite {
            ns: Namespace::parse(&self.ns).map_err(KeyError::from)?,
            key: ItemKey::parse(&self.key).map_err(KeyError::from)?,
            value,
            stamp: Stamp::parse(&self.stamp)?,
            written_at: UnixMillis(self.written_at),
            subject: self.subject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(value: Option<serde_json::Value>) -> BufferedWrite {
        BufferedWrite {
            ns: Namespace::parse("users").unwrap(),
            key: ItemKey::parse("a:b/c").unwrap(),
            value,
            stamp: Stamp::new(UnixMillis(1_000), 2, 3),
            written_at: UnixMillis(1_000),
            subject: None,
        }
    }

    #[test]
    fn records_round_trip_and_start_with_their_format_version() {
        for w in [
            write(Some(json!({"n": 1}))),
            write(Some(json!(null))),
            write(None),
        ] {
            let bytes = w.encode().unwrap();
            assert!(
                bytes.starts_with(b"{\"v\":1,"),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(BufferedWrite::decode(&bytes).unwrap(), w);
        }
        assert_eq!(write(None).kv_key(), "w:0000000003e800020000000000000003");
    }

    fn check(text: &str, expected: fn(&RecordError) -> bool) {
        let got = BufferedWrite::decode(text.as_bytes()).expect_err(text);
        assert!(expected(&got), "{text}: {got:?}");
    }

    type Expect = fn(&RecordError) -> bool;

    #[test]
    fn damaged_records_are_typed_errors() {
        let stamp = "0000000003e800020000000000000003";
        let cases: Vec<(String, Expect)> = vec![
            ("nope".into(), |e| matches!(e, RecordError::Json(_))),
            (
                format!(
                    r#"{{"v":2,"ns":"u","key":"k","op":"delete","stamp":"{stamp}","written_at":1}}"#
                ),
                |e| matches!(e, RecordError::UnknownVersion(2)),
            ),
            (
                format!(
                    r#"{{"v":1,"ns":"U","key":"k","op":"delete","stamp":"{stamp}","written_at":1}}"#
                ),
                |e| matches!(e, RecordError::Key(_)),
            ),
            (
                r#"{"v":1,"ns":"u","key":"k","op":"delete","stamp":"zz","written_at":1}"#.into(),
                |e| matches!(e, RecordError::Stamp(_)),
            ),
            (
                format!(
                    r#"{{"v":1,"ns":"u","key":"k","op":"put","stamp":"{stamp}","written_at":1}}"#
                ),
                |e| matches!(e, RecordError::MissingValue),
            ),
        ];
        for (text, expected) in cases {
            check(&text, expected);
        }
    }
}
