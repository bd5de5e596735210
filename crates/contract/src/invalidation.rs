//! The origin's change announcements: how the DB API tells the cache that items changed
//! behind its back, so that the next read fetches them again.
//!
//! - `POST {cache}/hooks/invalidate` ([`INVALIDATE_PATH`]) with an [`Announcement`] body and
//!   the header [`SIGNATURE_HEADER`]: `t=<unix seconds>,v1=<hex HMAC-SHA256>` of
//!   `"{t}.{body}"` under the secret both sides share ([`signature`]).
//! - `200` with what the cache did; `401` when the signature is missing, wrong or older than
//!   [`TOLERANCE_SECS`]; `400` for a body that is not an announcement (nothing is changed);
//!   `404` when the cache has no secret configured.
//!
//! The scheme is the one payment and source-hosting webhooks use: a keyed digest, not the
//! secret itself, travels with each call, so a logged request gives nothing away, and the
//! timestamp inside the digest bounds how long a captured call can be replayed. Replaying an
//! announcement within that bound is harmless: invalidating a key twice costs one more fetch.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The cache's route for announcements.
pub const INVALIDATE_PATH: &str = "/hooks/invalidate";
/// The header carrying the timestamp and the digest.
pub const SIGNATURE_HEADER: &str = "Cache-Sync-Signature";
/// How far a signature's timestamp may be from the receiver's clock, either way.
pub const TOLERANCE_SECS: u64 = 300;
/// The most items one announcement may name.
pub const MAX_ANNOUNCED_ITEMS: usize = 256;

/// One changed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangedItem {
    /// Its namespace.
    pub ns: String,
    /// Its key.
    pub key: String,
}

/// The body of an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// The items that changed, at most [`MAX_ANNOUNCED_ITEMS`].
    pub changed: Vec<ChangedItem>,
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `t` (Unix seconds).
#[must_use]
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let digest = mac(secret, t, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("the signature header is not t=<unix seconds>,v1=<hex digest>")]
    Malformed,
    /// The timestamp is further than [`TOLERANCE_SECS`] from now.
    #[error("the signature's timestamp is more than {TOLERANCE_SECS} s from the receiver's clock")]
    Expired,
    /// The digest does not match.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks `header` (the [`SIGNATURE_HEADER`] value) against `body` at `now` (Unix seconds);
/// the digest is compared in constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = decode_hex(v),
            _ => {}
        }
    }
    let (Some(t), Some(digest)) = (t, v1) else {
        return Err(SignatureError::Malformed);
    };
    if t.abs_diff(now) > TOLERANCE_SECS {
        return Err(SignatureError::Expired);
    }
    mac(secret, t, body)
        .verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_against_its_body_only_within_the_tolerance() {
        let body = br#"{"changed":[{"ns":"users","key":"42"}]}"#;
        let header = signature(b"s3cret", 1_000_000, body);
        assert_eq!(verify(b"s3cret", &header, body, 1_000_000), Ok(()));
        assert_eq!(verify(b"s3cret", &header, body, 1_000_300), Ok(()));
        assert_eq!(
            verify(b"s3cret", &header, body, 1_000_301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(b"other", &header, body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", &header, b"{}", 1_000_000),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is inside the digest: moving it breaks the signature.
        let moved = header.replace("t=1000000", "t=1000001");
        assert_eq!(
            verify(b"s3cret", &moved, body, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1000000,v1=0g"] {
            assert_eq!(
                verify(b"s3cret", bad, body, 1_000_000),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
