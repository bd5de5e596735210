//! The name rules both sides of the contract apply: a namespace and an item key.
//!
//! The cache checks every name once at its edge and carries it as a type that cannot hold an
//! invalid value; the reference DB API checks the names of every write it receives with the
//! same rules, so the two can never disagree on what a valid key is. The bounds follow from
//! where names end up: a Spin key-value key (at most 255 bytes on Fermyon Cloud, with the
//! cache's prefix) and a URL path segment.

use std::fmt;

use thiserror::Error;

/// Longest namespace, in characters (all ASCII).
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Longest item key, in bytes after percent-decoding.
pub const MAX_ITEM_KEY_BYTES: usize = 200;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The namespace is empty or too long.
    #[error("namespace must be 1 to {MAX_NAMESPACE_LEN} characters, got {0}")]
    NamespaceLength(usize),
    /// The namespace has a character outside `[a-z0-9_-]`.
    #[error("namespace may only contain a-z, 0-9, '_' and '-'")]
    NamespaceChar,
    /// The item key is empty or too long.
    #[error("item key must be 1 to {MAX_ITEM_KEY_BYTES} bytes, got {0}")]
    ItemKeyLength(usize),
    /// The item key contains a control character.
    #[error("item key contains a control character")]
    ItemKeyControl,
    /// The decoded item key is not UTF-8.
    #[error("item key is not valid utf-8")]
    ItemKeyUtf8,
    /// The item key is `.` or `..`, which URL resolution removes (RFC 3986, 5.2.4).
    #[error("item key may not be '.' or '..'")]
    ItemKeyDotSegment,
    /// A `%` is not followed by two hex digits.
    #[error("invalid percent-escape at byte {0}")]
    PercentEscape(usize),
}

/// A namespace: 1–64 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Checks `s` and wraps it.
    pub fn parse(s: &str) -> Result<Namespace, NameError> {
        if s.is_empty() || s.len() > MAX_NAMESPACE_LEN {
            return Err(NameError::NamespaceLength(s.chars().count()));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(NameError::NamespaceChar);
        }
        Ok(Namespace(s.to_owned()))
    }

    /// The namespace text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An item key: 1–200 bytes of UTF-8 without control characters, and not `.` or `..`.
/// May contain `:`, `/`, `#`.
///
/// The key travels as one path segment of the DB API's URL (percent-encoding keeps dots as
/// they are, and a decoder turns `%2E` back into `.`), and `.` and `..` are dot segments that
/// clients, proxies and servers resolve away: `GET /v1/items/ns/..` is not a request for the
/// key `..`. Such a key could be written but never read back, so it is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey(String);

impl ItemKey {
    /// Checks an already decoded key and wraps it.
    pub fn parse(s: &str) -> Result<ItemKey, NameError> {
        if s.is_empty() || s.len() > MAX_ITEM_KEY_BYTES {
            return Err(NameError::ItemKeyLength(s.len()));
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::ItemKeyControl);
        }
        if s == "." || s == ".." {
            return Err(NameError::ItemKeyDotSegment);
        }
        Ok(ItemKey(s.to_owned()))
    }

    /// Decodes a raw URL path segment (`%2F` → `/`) and checks the result.
    pub fn from_path_segment(raw: &str) -> Result<ItemKey, NameError> {
        let bytes = percent_decode(raw)?;
        let text = String::from_utf8(bytes).map_err(|_| NameError::ItemKeyUtf8)?;
        ItemKey::parse(&text)
    }

    /// The key text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a URL path segment, for calling the DB API.
    #[must_use]
    pub fn to_path_segment(&self) -> String {
        percent_encode_segment(&self.0)
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes of a URL path segment. `+` stays `+` (it means space only in forms).
pub fn percent_decode(raw: &str) -> Result<Vec<u8>, NameError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(NameError::PercentEscape(i)),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// Encodes `s` as one URL path segment: everything but RFC 3986 unreserved characters is escaped.
#[must_use]
pub fn percent_encode_segment(s: &str) -> String {
    let hex = |nibble: u8| {
        char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase())
    };
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex(b >> 4));
            out.push(hex(b & 0x0f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ns(input: &str, expected: Result<(), NameError>) {
        assert_eq!(
            Namespace::parse(input).map(|_| ()),
            expected,
            "namespace {input:?}"
        );
    }

    #[test]
    fn namespace_accepts_only_short_lowercase_names() {
        let long = "a".repeat(65);
        let cases: &[(&str, Result<(), NameError>)] = &[
            ("users", Ok(())),
            ("a_b-9", Ok(())),
            (&long[..64], Ok(())),
            (&long, Err(NameError::NamespaceLength(65))),
            ("", Err(NameError::NamespaceLength(0))),
            ("Users", Err(NameError::NamespaceChar)),
            ("a:b", Err(NameError::NamespaceChar)),
            ("a#b", Err(NameError::NamespaceChar)),
            ("é", Err(NameError::NamespaceChar)),
        ];
        for (input, expected) in cases {
            check_ns(input, expected.clone());
        }
    }

    fn check_segment(raw: &str, expected: Result<&str, NameError>) {
        let got = ItemKey::from_path_segment(raw);
        assert_eq!(
            got.as_ref().map(ItemKey::as_str),
            expected.as_deref(),
            "segment {raw:?}"
        );
    }

    #[test]
    fn item_key_is_percent_decoded_and_validated() {
        let max = "k".repeat(200);
        let over = "k".repeat(201);
        let cases: &[(&str, Result<&str, NameError>)] = &[
            ("plain", Ok("plain")),
            ("a%2Fb", Ok("a/b")),
            ("a%3ab:c", Ok("a:b:c")),
            ("caf%C3%A9", Ok("café")),
            ("a+b", Ok("a+b")),
            ("%23frag", Ok("#frag")),
            (&max, Ok(&max)),
            (&over, Err(NameError::ItemKeyLength(201))),
            ("", Err(NameError::ItemKeyLength(0))),
            ("a%0Ab", Err(NameError::ItemKeyControl)),
            ("%FF", Err(NameError::ItemKeyUtf8)),
            ("bad%2", Err(NameError::PercentEscape(3))),
            ("bad%zz", Err(NameError::PercentEscape(3))),
            ("%", Err(NameError::PercentEscape(0))),
            ("..", Err(NameError::ItemKeyDotSegment)),
            ("%2e%2E", Err(NameError::ItemKeyDotSegment)),
            (".", Err(NameError::ItemKeyDotSegment)),
            ("%2E", Err(NameError::ItemKeyDotSegment)),
            ("...", Ok("...")),
            ("..a", Ok("..a")),
            ("a%2F..", Ok("a/..")),
        ];
        for (raw, expected) in cases {
            check_segment(raw, expected.clone());
        }
    }

    #[test]
    fn encoding_a_key_as_path_segment_round_trips() {
        for s in ["a/b", "café", "a b%c", "x:y#z", "~._-"] {
            let key = ItemKey::parse(s).unwrap();
            assert_eq!(
                ItemKey::from_path_segment(&key.to_path_segment()).unwrap(),
                key
            );
        }
        assert_eq!(percent_encode_segment("a/b c"), "a%2Fb%20c");
    }
}
