//! Validated names at the edge: [`Namespace`], [`ItemKey`], [`Scope`] and [`CacheKey`].
//!
//! Everything that reaches the core from a URL is checked once, here, and afterwards carried
//! as a type that cannot hold an invalid value. The rules follow from where the names end up:
//! a Spin key-value key (at most [`MAX_KV_KEY_BYTES`] bytes on Fermyon Cloud) and a DB API
//! path. The KV layout itself lives in [`crate::stored::kv_key`].

use std::fmt;

use thiserror::Error;

use crate::stored::kv_key::{KvKey, MAX_KV_KEY_BYTES};

/// Longest namespace, in characters (all ASCII).
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Longest item key, in bytes after percent-decoding.
pub const MAX_ITEM_KEY_BYTES: usize = 200;
/// Longest scope digest, in characters (all ASCII).
pub const MAX_SCOPE_LEN: usize = 32;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
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
    /// The scope is empty, too long, or has a character outside `[a-z0-9]`.
    #[error("scope must be 1 to {MAX_SCOPE_LEN} characters of a-z and 0-9")]
    Scope,
    /// The full KV key would be longer than the store allows.
    #[error("kv key would be {0} bytes, over the {MAX_KV_KEY_BYTES}-byte limit")]
    KvKeyTooLong(usize),
}

/// A namespace: 1–64 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Checks `s` and wraps it.
    pub fn parse(s: &str) -> Result<Namespace, KeyError> {
        if s.is_empty() || s.len() > MAX_NAMESPACE_LEN {
            return Err(KeyError::NamespaceLength(s.chars().count()));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(KeyError::NamespaceChar);
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
    pub fn parse(s: &str) -> Result<ItemKey, KeyError> {
        if s.is_empty() || s.len() > MAX_ITEM_KEY_BYTES {
            return Err(KeyError::ItemKeyLength(s.len()));
        }
        if s.chars().any(char::is_control) {
            return Err(KeyError::ItemKeyControl);
        }
        if s == "." || s == ".." {
            return Err(KeyError::ItemKeyDotSegment);
        }
        Ok(ItemKey(s.to_owned()))
    }

    /// Decodes a raw URL path segment (`%2F` → `/`) and checks the result.
    pub fn from_path_segment(raw: &str) -> Result<ItemKey, KeyError> {
        let bytes = percent_decode(raw)?;
        let text = String::from_utf8(bytes).map_err(|_| KeyError::ItemKeyUtf8)?;
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

/// A short digest of a principal, for caching per caller: 1–32 characters of `[a-z0-9]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Checks `s` and wraps it.
    pub fn parse(s: &str) -> Result<Scope, KeyError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SCOPE_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Scope(s.to_owned()))
        } else {
            Err(KeyError::Scope)
        }
    }

    /// The scope text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which cached item: namespace, key and optional caller scope. Its KV key always fits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheKey {
    ns: Namespace,
    key: ItemKey,
    scope: Option<Scope>,
}

impl CacheKey {
    /// Combines the parts, refusing combinations whose KV key would be too long.
    pub fn new(ns: Namespace, key: ItemKey, scope: Option<Scope>) -> Result<CacheKey, KeyError> {
        let ck = CacheKey { ns, key, scope };
        let len = ck.kv_key().len();
        if len > MAX_KV_KEY_BYTES {
            return Err(KeyError::KvKeyTooLong(len));
        }
        Ok(ck)
    }

    /// Parses and combines raw parts: a namespace and an undecoded URL path segment.
    pub fn from_path(ns: &str, raw_key: &str) -> Result<CacheKey, KeyError> {
        CacheKey::new(
            Namespace::parse(ns)?,
            ItemKey::from_path_segment(raw_key)?,
            None,
        )
    }

    /// The namespace.
    #[must_use]
    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// The item key.
    #[must_use]
    pub fn key(&self) -> &ItemKey {
        &self.key
    }

    /// The caller scope, if the entry is cached per caller.
    #[must_use]
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The same item without a scope: what writes and the DB API address.
    #[must_use]
    pub fn unscoped(&self) -> CacheKey {
        CacheKey {
            ns: self.ns.clone(),
            key: self.key.clone(),
            scope: None,
        }
    }

    /// The KV key of the cache entry.
    #[must_use]
    pub fn kv_key(&self) -> String {
        KvKey::Entry(self.clone()).render()
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
pub fn percent_decode(raw: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(KeyError::PercentEscape(i)),
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

    fn check_ns(input: &str, expected: Result<(), KeyError>) {
        assert_eq!(
            Namespace::parse(input).map(|_| ()),
            expected,
            "namespace {input:?}"
        );
    }

    #[test]
    fn namespace_accepts_only_short_lowercase_names() {
        let long = "a".repeat(65);
        let cases: &[(&str, Result<(), KeyError>)] = &[
            ("users", Ok(())),
            ("a_b-9", Ok(())),
            (&long[..64], Ok(())),
            (&long, Err(KeyError::NamespaceLength(65))),
            ("", Err(KeyError::NamespaceLength(0))),
            ("Users", Err(KeyError::NamespaceChar)),
            ("a:b", Err(KeyError::NamespaceChar)),
            ("a#b", Err(KeyError::NamespaceChar)),
            ("é", Err(KeyError::NamespaceChar)),
        ];
        for (input, expected) in cases {
            check_ns(input, expected.clone());
        }
    }

    fn check_segment(raw: &str, expected: Result<&str, KeyError>) {
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
        let cases: &[(&str, Result<&str, KeyError>)] = &[
            ("plain", Ok("plain")),
            ("a%2Fb", Ok("a/b")),
            ("a%3ab:c", Ok("a:b:c")),
            ("caf%C3%A9", Ok("café")),
            ("a+b", Ok("a+b")),
            ("%23frag", Ok("#frag")),
            (&max, Ok(&max)),
            (&over, Err(KeyError::ItemKeyLength(201))),
            ("", Err(KeyError::ItemKeyLength(0))),
            ("a%0Ab", Err(KeyError::ItemKeyControl)),
            ("%FF", Err(KeyError::ItemKeyUtf8)),
            ("bad%2", Err(KeyError::PercentEscape(3))),
            ("bad%zz", Err(KeyError::PercentEscape(3))),
            ("%", Err(KeyError::PercentEscape(0))),
            ("..", Err(KeyError::ItemKeyDotSegment)),
            ("%2e%2E", Err(KeyError::ItemKeyDotSegment)),
            (".", Err(KeyError::ItemKeyDotSegment)),
            ("%2E", Err(KeyError::ItemKeyDotSegment)),
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

    #[test]
    fn cache_key_longer_than_the_kv_limit_is_refused() {
        let ns = Namespace::parse(&"n".repeat(64)).unwrap();
        let fits = ItemKey::parse(&"k".repeat(250 - 2 - 64 - 1)).unwrap();
        let too_long = ItemKey::parse(&"k".repeat(250 - 2 - 64)).unwrap();
        assert!(CacheKey::new(ns.clone(), fits, None).is_ok());
        assert_eq!(
            CacheKey::new(ns, too_long, None),
            Err(KeyError::KvKeyTooLong(251))
        );
    }

    #[test]
    fn scope_is_a_short_lowercase_digest() {
        assert!(Scope::parse("abc123").is_ok());
        assert_eq!(Scope::parse(""), Err(KeyError::Scope));
        assert_eq!(Scope::parse("ABC"), Err(KeyError::Scope));
        assert_eq!(Scope::parse(&"a".repeat(33)), Err(KeyError::Scope));
    }
}
