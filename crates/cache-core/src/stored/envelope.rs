//! The stored form of a cache entry: a versioned, self-describing byte envelope.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "CE"
//! 2       1     format version (1)
//! 3       1     codec: 0 = identity, 1 = raw deflate
//! 4       4     header length n, big-endian
//! 8       n     header: a JSON object (kind, etag, version, instants, dirty, audience,
//!                   invalidated_at, len, sum)
//! 8+n     rest  payload: the value bytes, encoded by the codec
//! ```
//!
//! The JSON header keeps the format extensible (new optional fields need no version bump)
//! and readable when debugging a store. `len` (decoded length) and `sum` (FNV-1a of the
//! stored payload) make truncation and corruption detectable for both codecs. Deflate is used
//! only when the value is at least `compress_min_bytes` long and compressing makes it smaller.
//! Any undecodable value is an [`EnvelopeError`]; callers treat it as a miss and overwrite.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::{Audience, Dirty, Entry, EntryKind};
use crate::hash::fnv1a64;
use crate::stamp::Stamp;
use crate::stored::kv_key::MAX_KV_VALUE_BYTES;
use crate::time::UnixMillis;

/// First two bytes of every envelope.
pub const MAGIC: [u8; 2] = *b"CE";
/// The envelope format this build writes.
pub const FORMAT_VERSION: u8 = 1;
/// Longest etag stored; longer ones must be dropped before encoding.
pub const MAX_ETAG_BYTES: usize = 256;

const PREAMBLE: usize = 8;
const DEFLATE_LEVEL: u8 = 6;

/// How values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecPolicy {
    /// Values at least this long are deflated if that makes them smaller.
    pub compress_min_bytes: usize,
}

/// The payload codec of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    Identity,
    /// Raw deflate (RFC 1951).
    Deflate,
}

impl Codec {
    fn byte(self) -> u8 {
        match self {
            Codec::Identity => 0,
            Codec::Deflate => 1,
        }
    }
}

/// Why an envelope could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    /// The encoded entry exceeds the store's value limit.
    #[error("envelope is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The etag is longer than [`MAX_ETAG_BYTES`].
    #[error("etag longer than {MAX_ETAG_BYTES} bytes")]
    EtagTooLong,
    /// Fewer bytes than the preamble or the declared header.
    #[error("envelope truncated")]
    Truncated,
    /// The value does not start with the magic bytes.
    #[error("not a cache envelope")]
    BadMagic,
    /// Written by a newer or unknown format.
    #[error("unknown envelope format version {0}")]
    UnknownVersion(u8),
    /// Unknown payload codec.
    #[error("unknown envelope codec {0}")]
    UnknownCodec(u8),
    /// The header is not the expected JSON.
    #[error("invalid envelope header: {0}")]
    Header(String),
    /// The payload checksum does not match.
    #[error("envelope checksum mismatch")]
    Checksum,
    /// The payload does not inflate.
    #[error("envelope payload does not inflate")]
    Inflate,
    /// The decoded payload length differs from the header's.
    #[error("envelope payload length mismatch")]
    Length,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindTag {
    Value,
    Absent,
    Tombstone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AudienceTag {
    Anyone,
    // Absent in entries stored before audiences existed: they need a grant.
    #[default]
    Granted,
    Caller,
}

fn is_granted(a: &AudienceTag) -> bool {
    *a == AudienceTag::Granted
}

#[derive(Debug, Serialize, Deserialize)]
struct DirtyHeader {
    stamp: String,
    since: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    kind: KindTag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fetched_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    written_at: Option<u64>,
    fresh_until: u64,
    stale_until: u64,
    stale_if_error_until: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dirty: Option<DirtyHeader>,
    #[serde(default, skip_serializing_if = "is_granted")]
    audience: AudienceTag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invalidated_at: Option<u64>,
    len: u64,
    sum: u64,
}

/// Encodes `entry` for the store.
pub fn encode(entry: &Entry, policy: &CodecPolicy) -> Result<Vec<u8>, EnvelopeError> {
    if entry
        .etag
        .as_ref()
        .is_some_and(|e| e.len() > MAX_ETAG_BYTES)
    {
        return Err(EnvelopeError::EtagTooLong);
    }
    if entry.value.len() > MAX_KV_VALUE_BYTES {
        return Err(EnvelopeError::TooLarge {
            size: entry.value.len(),
            limit: MAX_KV_VALUE_BYTES,
        });
    }
    let (codec, payload) = choose_codec(&entry.value, policy);
    let header = Header {
        kind: match entry.kind {
            EntryKind::Value => KindTag::Value,
            EntryKind::Absent => KindTag::Absent,
            EntryKind::Tombstone => KindTag::Tombstone,
        },
        etag: entry.etag.clone(),
        version: entry.version,
        fetched_at: entry.fetched_at.map(|t| t.0),
        written_at: entry.written_at.map(|t| t.0),
        fresh_until: entry.fresh_until.0,
        stale_until: entry.stale_until.0,
        stale_if_error_until: entry.stale_if_error_until.0,
        dirty: entry.dirty.map(|d| DirtyHeader {
            stamp: d.stamp.to_string(),
            since: d.since.0,
        }),
        audience: match entry.audience {
            Audience::Anyone => AudienceTag::Anyone,
            Audience::Granted => AudienceTag::Granted,
            Audience::Caller => AudienceTag::Caller,
        },
        invalidated_at: entry.invalidated_at.map(|t| t.0),
        len: entry.value.len() as u64,
        sum: fnv1a64(&payload),
    };
    let header = serde_json::to_vec(&header).map_err(|e| EnvelopeError::Header(e.to_string()))?;
    let size = PREAMBLE
        .saturating_add(header.len())
        .saturating_add(payload.len());
    if size > MAX_KV_VALUE_BYTES {
        return Err(EnvelopeError::TooLarge {
            size,
            limit: MAX_KV_VALUE_BYTES,
        });
    }
    let header_len = u32::try_from(header.len()).map_err(|_| EnvelopeError::TooLarge {
        size,
        limit: MAX_KV_VALUE_BYTES,
    })?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(codec.byte());
    out.extend_from_slice(&header_len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The stored form of [`Entry::invalidation`]`(at)`: a header and no payload.
#[must_use]
pub fn invalidation(at: UnixMillis) -> Vec<u8> {
    let entry = Entry::invalidation(at);
    let identity = CodecPolicy {
        compress_min_bytes: usize::MAX,
    };
    // Cannot fail: no etag and no value, far below every limit.
    encode(&entry, &identity).unwrap_or_default()
}

fn choose_codec(value: &[u8], policy: &CodecPolicy) -> (Codec, Vec<u8>) {
    if value.len() >= policy.compress_min_bytes && !value.is_empty() {
        let deflated = miniz_oxide::deflate::compress_to_vec(value, DEFLATE_LEVEL);
        if deflated.len() < value.len() {
            return (Codec::Deflate, deflated);
        }
    }
    (Codec::Identity, value.to_vec())
}

/// The codec an envelope uses, without decoding it (for stats and tests).
pub fn codec_of(bytes: &[u8]) -> Result<Codec, EnvelopeError> {
    match bytes.get(3) {
        None => Err(EnvelopeError::Truncated),
        Some(0) => Ok(Codec::Identity),
        Some(1) => Ok(Codec::Deflate),
        Some(&other) => Err(EnvelopeError::UnknownCodec(other)),
    }
}

/// Decodes a stored envelope.
pub fn decode(bytes: &[u8]) -> Result<Entry, EnvelopeError> {
    let preamble = bytes.get(..PREAMBLE).ok_or(EnvelopeError::Truncated)?;
    let (magic, rest) = preamble.split_at(2);
    if magic != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    let (version, len_bytes) = match rest {
        [v, _codec, a, b, c, d] => (*v, [*a, *b, *c, *d]),
        _ => return Err(EnvelopeError::Truncated),
    };
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion(version));
    }
    let codec = codec_of(preamble)?;
    let header_len =
        usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| EnvelopeError::Truncated)?;
    let header_end = PREAMBLE
        .checked_add(header_len)
        .ok_or(EnvelopeError::Truncated)?;
    let header_bytes = bytes
        .get(PREAMBLE..header_end)
        .ok_or(EnvelopeError::Truncated)?;
    let payload = bytes.get(header_end..).ok_or(EnvelopeError::Truncated)?;
    let header: Header =
        serde_json::from_slice(header_bytes).map_err(|e| EnvelopeError::Header(e.to_string()))?;
    if fnv1a64(payload) != header.sum {
        return Err(EnvelopeError::Checksum);
    }
    let value = match codec {
        Codec::Identity => payload.to_vec(),
        Codec::Deflate => {
            miniz_oxide::inflate::decompress_to_vec_with_limit(payload, MAX_KV_VALUE_BYTES)
                .map_err(|_| EnvelopeError::Inflate)?
        }
    };
    if value.len() as u64 != header.len {
        return Err(EnvelopeError::Length);
    }
    let dirty = match header.dirty {
        None => None,
        Some(d) => Some(Dirty {
            stamp: Stamp::parse(&d.stamp).map_err(|e| EnvelopeError::Header(e.to_string()))?,
            since: UnixMillis(d.since),
        }),
    };
    Ok(Entry {
        kind: match header.kind {
            KindTag::Value => EntryKind::Value,
            KindTag::Absent => EntryKind::Absent,
            KindTag::Tombstone => EntryKind::Tombstone,
        },
        value,
        etag: header.etag,
        version: header.version,
        fetched_at: header.fetched_at.map(UnixMillis),
        written_at: header.written_at.map(UnixMillis),
        fresh_until: UnixMillis(header.fresh_until),
        stale_until: UnixMillis(header.stale_until),
        stale_if_error_until: UnixMillis(header.stale_if_error_until),
        dirty,
        audience: match header.audience {
            AudienceTag::Anyone => Audience::Anyone,
            AudienceTag::Granted => Audience::Granted,
            AudienceTag::Caller => Audience::Caller,
        },
        invalidated_at: header.invalidated_at.map(UnixMillis),
    })
}

#[cfg(test)]
mod tests;
