//! Name rules for namespaces, item keys, batch ids and write ids.
//!
//! Namespaces and item keys use the edge's own rules from `cache_sync_contract::names` (namespace:
//! 1–64 of `[a-z0-9_-]`; key: 1–200 bytes of UTF-8 without control characters, not `.` or
//! `..`), so anything the cache accepts, this API stores, and anything else is refused before
//! it reaches the database.

/// Longest batch id, in bytes.
pub const MAX_BATCH_ID_BYTES: usize = 200;

/// Checks a namespace with the cache's own rule; the error is the reason.
pub fn namespace(ns: &str) -> Result<(), String> {
    cache_sync_contract::names::Namespace::parse(ns)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Checks an (already decoded) item key with the cache's own rule; the error is the reason.
pub fn item_key(key: &str) -> Result<(), String> {
    cache_sync_contract::names::ItemKey::parse(key)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Checks a batch id; the error is the reason.
pub fn batch_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_BATCH_ID_BYTES {
        return Err(format!(
            "batch_id must be 1 to {MAX_BATCH_ID_BYTES} bytes, got {}",
            id.len()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("batch_id contains a control character".into());
    }
    Ok(())
}

/// Checks a write id: exactly [`WRITE_ID_LEN`](cache_sync_contract::wire::WRITE_ID_LEN) lowercase
/// hex digits (a stamp's text form); the error is the reason.
pub fn write_id(id: &str) -> Result<(), String> {
    let len = cache_sync_contract::wire::WRITE_ID_LEN;
    if id.len() == len && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!("write_id must be {len} lowercase hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(namespace("users_v2-x").is_ok());
        assert!(namespace("Users").is_err());
        assert!(namespace("").is_err());
        assert!(namespace(&"a".repeat(65)).is_err());
        assert!(item_key("a/b:c#d é").is_ok());
        assert!(item_key("a\nb").is_err());
        assert!(item_key(&"k".repeat(201)).is_err());
        assert!(batch_id("b-1").is_ok());
        assert!(batch_id("").is_err());
        assert!(write_id("0000000003e800020000000000000003").is_ok());
        for bad in [
            "",
            "0000000003e80002000000000000000",
            "0000000003e8000200000000000000030",
            "0000000003E800020000000000000003",
            "0000000003e80002000000000000000g",
            "0000000003e80002000000000000000é",
        ] {
            assert!(write_id(bad).is_err(), "{bad:?}");
        }
    }
}
