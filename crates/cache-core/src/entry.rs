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

/// Who may be served an entry without asking the origin (the auth model in [`crate::auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Audience {
    /// Any caller: the origin marked the answer shareable (`public`, `s-maxage`, or an
    /// anonymous request's answer without `private`).
    Anyone,
    /// A caller holding a read grant for the key: written entries, answers kept shared in
    /// `grant` mode, and entries stored before audiences existed.
    #[default]
    Granted,
    /// The one caller whose scope is in the entry's key (`c:{ns}#{scope}:{key}`).
    Caller,
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
    /// Who may be served it.
    pub audience: Audience,
    /// When the DB API announced a change of this key, or an operator purged it
    /// ([`crate::invalidate`]): no content of this key fetched or written here before that
    /// instant is served, this entry's or a caller's own entry's, unless it is dirty. Kept
    /// over later fills and writes of the key, so that callers' own entries stay superseded.
    pub invalidated_at: Option<UnixMillis>,
}

impl Entry {
    /// An entry of `kind` holding `value`, for `audience`, with no etag, version 0, no
    /// history, and every window ending at `now`: the caller sets what it knows and applies
    /// its windows.
    #[must_use]
    pub fn at(kind: EntryKind, value: Vec<u8>, audience: Audience, now: UnixMillis) -> Entry {
        Entry {
            kind,
            value,
            etag: None,
            version: 0,
            fetched_at: None,
            written_at: None,
            fresh_until: now,
            stale_until: now,
            stale_if_error_until: now,
            dirty: None,
            audience,
            invalidated_at: None,
        }
    }

    /// The entry an invalidation at `now` leaves where no dirty entry is: no content, never
    /// servable, holding the instant ([`Entry::invalidated_at`]).
    #[must_use]
    pub fn invalidation(now: UnixMillis) -> Entry {
        let mut entry = Entry::at(EntryKind::Absent, Vec::new(), Audience::Granted, now);
        entry.invalidated_at = Some(now);
        entry
    }

    /// Whether an invalidation at `at` (this entry's own or its key's) supersedes this entry:
    /// it is clean and its content is not newer than the invalidation. The same millisecond
    /// counts as older, since a fetch may have been answered just before the change.
    #[must_use]
    pub fn is_superseded_by(&self, at: Option<UnixMillis>) -> bool {
        let at = at.max(self.invalidated_at);
        at.is_some_and(|at| !self.is_dirty() && self.touched_at() <= at)
    }

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
