//! Bulk loading for tests and benchmarks (`POST /_seed`).
//!
//! A benchmark of a cache in front of a database needs a database with realistic size:
//! 100k rows is one request. Generated values carry pseudo-random text so that they do not
//! compress to nothing and flatter a compressing cache.

use serde::Deserialize;
use serde_json::Value;

use crate::backend::SeedItem;
use crate::validate;

/// Most rows one generated seed may ask for.
pub const MAX_SEED_COUNT: u64 = 5_000_000;
/// Largest generated value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// One explicit row of a seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedEntry {
    /// Namespace; defaults to the request's `ns`.
    pub ns: Option<String>,
    /// Key.
    pub key: String,
    /// The JSON value.
    pub value: Value,
    /// Version; defaults to the request's `version`.
    pub version: Option<u64>,
}

/// The body of `POST /_seed`: either `count` generated rows or an explicit `items` list.
///
/// Generated rows are `{key_prefix}{i}` for `i` in `0..count`, with a value
/// `{"n": i, "data": "<text>"}` whose JSON text is `value_bytes` long (or just longer, when
/// `value_bytes` is smaller than the frame).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRequest {
    /// Namespace of generated rows, and default namespace of `items`.
    pub ns: Option<String>,
    /// How many rows to generate.
    pub count: Option<u64>,
    /// Size of each generated value's JSON text; default 256.
    pub value_bytes: Option<usize>,
    /// Prefix of generated keys; default `key-`.
    pub key_prefix: Option<String>,
    /// Version of the seeded rows; default 1.
    pub version: Option<u64>,
    /// Explicit rows, instead of `count`.
    pub items: Option<Vec<SeedEntry>>,
}

/// Turns a seed request into rows; the error is the reason it is invalid.
pub fn expand(request: SeedRequest) -> Result<Vec<SeedItem>, String> {
    let version = request.version.unwrap_or(1);
    if i64::try_from(version).is_err() {
        return Err("version must fit in 63 bits".into());
    }
    match (request.count, request.items) {
        (Some(_), Some(_)) => Err("give either count or items, not both".into()),
        (None, None) => Err("give count (with ns) or items".into()),
        (None, Some(items)) => items
            .into_iter()
            .map(|e| {
                let ns =
                    e.ns.or_else(|| request.ns.clone())
                        .ok_or_else(|| format!("item {:?} has no ns", e.key))?;
                validate::namespace(&ns)?;
                validate::item_key(&e.key)?;
                let version = e.version.unwrap_or(version);
                if i64::try_from(version).is_err() {
                    return Err("version must fit in 63 bits".into());
                }
                Ok(SeedItem {
                    ns,
                    key: e.key,
                    value: e.value.to_string(),
                    version,
                })
            })
            .collect(),
        (Some(count), None) => {
            let ns = request.ns.ok_or("ns is required with count")?;
            validate::namespace(&ns)?;
            if count > MAX_SEED_COUNT {
                return Err(format!("count must be at most {MAX_SEED_COUNT}"));
            }
            let value_bytes = request.value_bytes.unwrap_or(256);
            if value_bytes > MAX_VALUE_BYTES {
                return Err(format!("value_bytes must be at most {MAX_VALUE_BYTES}"));
            }
            let prefix = request.key_prefix.unwrap_or_else(|| "key-".into());
            validate::item_key(&format!("{prefix}{}", count.saturating_sub(1)))?;
            Ok((0..count)
                .map(|i| SeedItem {
                    ns: ns.clone(),
                    key: format!("{prefix}{i}"),
                    value: generated_value(i, value_bytes),
                    version,
                })
                .collect())
        }
    }
}

/// `{"n":i,"data":"..."}` padded to `bytes` with text drawn from `i`.
pub fn generated_value(i: u64, bytes: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let frame = format!("{{\"n\":{i},\"data\":\"");
    let pad = bytes.saturating_sub(frame.len() + 2);
    let mut out = String::with_capacity(frame.len() + pad + 2);
    out.push_str(&frame);
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    for _ in 0..pad {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(char::from(
            ALPHABET[(state % ALPHABET.len() as u64) as usize],
        ));
    }
    out.push_str("\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_json_of_the_asked_size() {
        for (i, n) in [(0, 256), (99_999, 1000), (5, 3)] {
            let v = generated_value(i, n);
            let parsed: Value = serde_json::from_str(&v).unwrap();
            assert_eq!(parsed["n"], i);
            if n > 20 {
                assert_eq!(v.len(), n);
            }
        }
        assert_ne!(generated_value(1, 64), generated_value(2, 64));
    }

    #[test]
    fn expand_checks_its_input() {
        let r = |s: &str| expand(serde_json::from_str(s).unwrap());
        assert_eq!(r(r#"{"ns":"a","count":3}"#).unwrap().len(), 3);
        assert!(r(r#"{"count":3}"#).is_err());
        assert!(r(r#"{"ns":"A","count":3}"#).is_err());
        assert!(r(r#"{"ns":"a"}"#).is_err());
        let items = r(r#"{"ns":"a","items":[{"key":"k","value":{"x":1}},{"ns":"b","key":"j","value":2,"version":9}]}"#).unwrap();
        assert_eq!(items[0].ns, "a");
        assert_eq!(items[1].version, 9);
    }
}
