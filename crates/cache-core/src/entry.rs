//! A cache entry as the core sees it: value, validity windows and dirty state.
//!
//! [`Entry`] is the decoded form of what `c:` keys hold; [`crate::envelope`] turns it into
//! bytes and back. The windows are absolute instants so that reading an entry needs no
//! configuration: only `now`.

use crate::stamp::Stamp;
use crate::time::UnixMillis;

/// What an entry says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// The key holds `value` (JSON).
    Value,
    /// The origin said the key does not exist (a negative entry).
    Absent,
    /// The key was deleted by a write (possibly not yet delivered).
    Tombstone,
}

/// The newest write of this entry that the DB API may not have yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dirty {
    /// Stamp of the newest buffered write this entry reflects.
    pub stamp: Stamp,
    /// Since when the entry has held undelivered writes.
    pub since: UnixMillis,
}

/// One cached item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Value, negative or tombstone.
    pub kind: EntryKind,
    /// JSON bytes for [`EntryKind::Value`]; empty otherwise.
    pub value: Vec<u8>,
    /// Entity tag from the origin or derived from the write.
    pub etag: Option<String>,
    /// Per-key version: from the origin, or [`Stamp::version`] of the write.
    pub version: u64,
    /// When the content was fetched from the origin, if it was.
    pub fetched_at: Option<UnixMillis>,
    /// When the content was written through the cache, if it was.
    pub written_at: Option<UnixMillis>,
    /// Until when the entry is fresh (exclusive).
    pub fresh_until: UnixMillis,
    /// Until when it may be served stale while revalidating (exclusive).
    pub stale_until: UnixMillis,
    /// Until when it may be served stale if the origin fails (exclusive).
    pub stale_if_error_until: UnixMillis,
    /// Undelivered-write state; `None` when the DB API has everything this entry shows.
    pub dirty: Option<Dirty>,
}

impl Entry {
    /// The JSON body to serve, for value entries.
    #[must_use]
    pub fn body(&self) -> Option<&[u8]> {
        match self.kind {
            EntryKind::Value => Some(&self.value),
            EntryKind::Absent | EntryKind::Tombstone => None,
        }
    }

    /// When the content last changed here: the later of fetch and write.
    #[must_use]
    pub fn touched_at(&self) -> UnixMillis {
        self.fetched_at.max(self.written_at).unwrap_or_default()
    }

    /// Whether the entry holds writes the DB API may not have.
    #[must_use]
    pub fn is_dirty(&self) -> bool {
        self.dirty.is_some()
    }

    /// Whether nothing may be served from it any more, at `now`.
    #[must_use]
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self
            .fresh_until
            .max(self.stale_until)
            .max(self.stale_if_error_until)
    }
}
