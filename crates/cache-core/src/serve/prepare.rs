//! The write path's one pure step: what to store for a put or delete.
//!
//! [`prepare_write`] turns an accepted change into the buffer record and the new cache entry.
//! [`crate::serve::write()`] then checks [`crate::buffer::admit`] with the record's size, stores
//! the record (this is the durability point: the client is answered only after it succeeded),
//! and then stores the entry (the visibility point). `PATCH` is a put of
//! `merge_patch` applied to the current value.
//!
//! Writes go to the unscoped entry; the DB API knows no scopes.

use thiserror::Error;

use crate::config::CacheConfig;
use crate::entry::{Audience, Dirty, Entry, EntryKind};
use crate::envelope::{self, EnvelopeError};
use crate::key::CacheKey;
use crate::record::{BufferedWrite, RecordError};
use crate::serve::cache_control::Directives;
use crate::serve::policy::{absent_windows, value_windows};
use crate::stamp::Stamp;
use crate::time::UnixMillis;

/// A client's change to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Store this JSON value.
    Put(serde_json::Value),
    /// Remove the key.
    Delete,
}

/// Why a write cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WriteError {
    /// The serialized value exceeds `max_value_bytes`.
    #[error("value is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Serialized size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The buffer record cannot be encoded.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The cache entry cannot be encoded.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// What to do with the cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryUpdate {
    /// Store these envelope bytes under the entry key.
    Store(Vec<u8>),
    /// Leave the entry: it already reflects a newer write (last writer wins).
    KeepNewer,
}

/// The stores a write needs, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedWrite {
    /// The buffered write.
    pub write: BufferedWrite,
    /// `w:{stamp}`.
    pub record_key: String,
    /// The record bytes; their length is what [`crate::buffer::admit`] needs.
    pub record: Vec<u8>,
    /// The unscoped entry key.
    pub entry_key: String,
    /// The new entry, or why to keep the current one.
    pub entry: EntryUpdate,
}

/// Prepares `change` to `key` made for `subject` (the principal the write was authorized
/// for), stamped `stamp`, given the entry currently stored (if any).
///
/// The new entry is for callers holding a read grant ([`Audience::Granted`]), unless the
/// entry it replaces was for anyone: the origin said this item's answers are shareable.
pub fn prepare_write(
    key: &CacheKey,
    change: Change,
    subject: Option<&str>,
    current: Option<&Entry>,
    stamp: Stamp,
    now: UnixMillis,
    cfg: &CacheConfig,
) -> Result<PreparedWrite, WriteError> {
    let (kind, value, body) = match change {
        Change::Put(v) => {
            let body = serde_json::to_vec(&v)
                .map_err(|e| WriteError::Record(RecordError::Json(e.to_string())))?;
            if body.len() > cfg.max_value_bytes {
                return Err(WriteError::TooLarge {
                    size: body.len(),
                    limit: cfg.max_value_bytes,
                });
            }
            (EntryKind::Value, Some(v), body)
        }
        Change::Delete => (EntryKind::Tombstone, None, Vec::new()),
    };
    let key = key.unscoped();
    let write = BufferedWrite {
        ns: key.ns().clone(),
        key: key.key().clone(),
        value,
        stamp,
        written_at: now,
        subject: subject.map(str::to_owned),
    };
    let record = write.encode()?;
    let entry = if current.is_some_and(|c| is_newer_than(c, stamp)) {
        EntryUpdate::KeepNewer
    } else {
        let since = current
            .and_then(|c| c.dirty)
            .map_or(now, |d| d.since.min(now));
        let mut entry = Entry {
            kind,
            value: body,
            etag: Some(format!("\"w{stamp}\"")),
            version: stamp.version(),
            fetched_at: None,
            written_at: Some(now),
            fresh_until: now,
            stale_until: now,
            stale_if_error_until: now,
            dirty: Some(Dirty { stamp, since }),
            audience: match current.map(|c| c.audience) {
                Some(Audience::Anyone) => Audience::Anyone,
                _ => Audience::Granted,
            },
            invalidated_at: current.and_then(|c| c.invalidated_at),
        };
        match kind {
            EntryKind::Value => value_windows(now, cfg, &Directives::default()),
            EntryKind::Absent | EntryKind::Tombstone => {
                absent_windows(now, cfg, &Directives::default())
            }
        }
        .apply(&mut entry);
        EntryUpdate::Store(envelope::encode(&entry, &cfg.codec_policy())?)
    };
    Ok(PreparedWrite {
        record_key: write.kv_key(),
        record,
        entry_key: key.kv_key(),
        entry,
        write,
    })
}

/// Whether `entry` already shows something newer than a write stamped `stamp`.
pub(crate) fn is_newer_than(entry: &Entry, stamp: Stamp) -> bool {
    match entry.dirty {
        Some(d) => d.stamp > stamp,
        None => entry.version > stamp.version(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ItemKey, Namespace, Scope};
    use serde_json::json;

    fn cfg() -> CacheConfig {
        CacheConfig::with_db_api_url("http://db").unwrap()
    }

    fn key() -> CacheKey {
        CacheKey::new(
            Namespace::parse("ns").unwrap(),
            ItemKey::parse("k").unwrap(),
            Some(Scope::parse("abc").unwrap()),
        )
        .unwrap()
    }

    fn stored(p: &PreparedWrite) -> Entry {
        match &p.entry {
            EntryUpdate::Store(bytes) => envelope::decode(bytes).unwrap(),
            EntryUpdate::KeepNewer => panic!("entry not stored"),
        }
    }

    #[test]
    fn put_produces_a_record_and_a_dirty_entry_under_the_unscoped_key() {
        let stamp = Stamp::new(UnixMillis(1_000), 0, 1);
        let p = prepare_write(
            &key(),
            Change::Put(json!({"a":1})),
            None,
            None,
            stamp,
            UnixMillis(1_000),
            &cfg(),
        )
        .unwrap();
        assert_eq!(p.entry_key, "c:ns:k");
        assert_eq!(p.record_key, format!("w:{stamp}"));
        assert_eq!(BufferedWrite::decode(&p.record).unwrap(), p.write);
        let e = stored(&p);
        assert_eq!(
            (e.kind, e.value.as_slice(), e.version),
            (EntryKind::Value, &b"{\"a\":1}"[..], stamp.version())
        );
        assert_eq!(
            e.dirty,
            Some(Dirty {
                stamp,
                since: UnixMillis(1_000)
            })
        );
    }

    #[test]
    fn delete_leaves_a_dirty_tombstone_keeping_the_first_dirty_time() {
        let s1 = Stamp::new(UnixMillis(1_000), 0, 1);
        let s2 = Stamp::new(UnixMillis(2_000), 0, 1);
        let first = prepare_write(
            &key(),
            Change::Put(json!(1)),
            None,
            None,
            s1,
            UnixMillis(1_000),
            &cfg(),
        )
        .unwrap();
        let p = prepare_write(
            &key(),
            Change::Delete,
            None,
            Some(&stored(&first)),
            s2,
            UnixMillis(2_000),
            &cfg(),
        )
        .unwrap();
        let e = stored(&p);
        assert_eq!(e.kind, EntryKind::Tombstone);
        assert_eq!(
            e.dirty,
            Some(Dirty {
                stamp: s2,
                since: UnixMillis(1_000)
            })
        );
    }

    #[test]
    fn an_older_write_is_buffered_but_does_not_replace_a_newer_entry() {
        let newer = Stamp::new(UnixMillis(2_000), 0, 1);
        let older = Stamp::new(UnixMillis(1_000), 0, 2);
        let first = prepare_write(
            &key(),
            Change::Put(json!(2)),
            None,
            None,
            newer,
            UnixMillis(2_000),
            &cfg(),
        )
        .unwrap();
        let p = prepare_write(
            &key(),
            Change::Put(json!(1)),
            None,
            Some(&stored(&first)),
            older,
            UnixMillis(2_001),
            &cfg(),
        )
        .unwrap();
        assert_eq!(p.entry, EntryUpdate::KeepNewer);
        assert_eq!(p.write.value, Some(json!(1)));
    }

    #[test]
    fn oversized_values_are_refused() {
        let mut cfg = cfg();
        cfg.max_value_bytes = 10;
        let got = prepare_write(
            &key(),
            Change::Put(json!("0123456789")),
            None,
            None,
            Stamp::new(UnixMillis(1), 0, 1),
            UnixMillis(1),
            &cfg,
        );
        assert_eq!(
            got,
            Err(WriteError::TooLarge {
                size: 12,
                limit: 10
            })
        );
    }
}
