//! The rewrite window: how the flush and the sweep rewrite cache entries without hiding a
//! write that lands at the same moment.
//!
//! Settling a delivered batch marks its entries clean (or drops those showing an older
//! value), and the sweep deletes expired and evicted entries: both read entries, decide, and
//! write back. Without compare-and-swap, a gateway write that stores its dirty entry between
//! that read and that write-back is overwritten: its record stays buffered and is delivered,
//! but until then readers, its own writer included, are served the older value. Reading and
//! writing back many entries per call widens that gap from one key's read and write to a
//! whole chunk's.
//!
//! So a rewriter opens a window first ([`open`]): it stores `m:rewrite`, in the cache's store
//! next to the entries it guards, holding the instant by which it closes; then it reads,
//! decides, writes back and closes the marker ([`Open::close`] deletes it,
//! [`Open::close_with`] stores it as closed together with the rewritten entries). A write, once its dirty
//! entry is stored and read back, reads the marker ([`wait_out`]); while a window is open it
//! waits for it to close, then reads its entry again and stores it again if it was
//! overwritten. A write that found no window open had stored its entry before any later
//! window opened, so that window's reads see the entry and keep it: an entry showing a newer
//! write is never cleaned or deleted.
//!
//! Bounds: a window closes within [`WINDOW`] of opening, and a writer never waits longer than
//! that, whatever the marker says. A rewriter that finds less than [`MARGIN`] left before it
//! writes back does not write back ([`Open::may_write`]); it reads again in a new window. A
//! crashed rewriter's marker lapses by itself, costing each write in the meantime a wait of
//! at most the rest of [`WINDOW`]. Two rewriters at once (overlapping flush runs, which the
//! lease makes rare, or a flush and a sweep on two instances) share the one marker: the
//! first to close it narrows the other's protection back to the plain race of one read
//! followed by one write. A write costs one more `get` when no window is open.

use std::time::Duration;

use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::{Clock, UnixMillis};

/// The longest a window stays open, and the longest a write waits for one.
pub const WINDOW: Duration = Duration::from_secs(2);
/// What must be left of a window for a rewriter to write back in it (clock skew between
/// instances included).
pub const MARGIN: Duration = Duration::from_secs(1);
/// How often a waiting write looks at the marker again.
const POLL: Duration = Duration::from_millis(5);

fn marker() -> String {
    KvKey::RewriteWindow.render()
}

/// An open window.
#[derive(Debug)]
#[must_use = "a window is closed by `close`; left open it delays writes until it lapses"]
pub struct Open {
    until: UnixMillis,
}

/// Opens a window at the clock's time.
pub fn open(store: &mut impl KvStore, clock: &mut impl Clock) -> Result<Open, StoreError> {
    let until = clock.now().saturating_add(WINDOW);
    store.set(&marker(), &until.0.to_le_bytes())?;
    Ok(Open { until })
}

impl Open {
    /// Whether enough of the window is left to write back now.
    pub fn may_write(&self, clock: &mut impl Clock) -> bool {
        clock.now().saturating_add(MARGIN) < self.until
    }

    /// Closes the window.
    pub fn close(self, store: &mut impl KvStore) -> Result<(), StoreError> {
        store.delete(&marker())
    }

    /// Stores `pairs` and closes the window in the same call: the marker, last among the
    /// pairs, is stored as closed (an instant long past). One host call (one transaction on
    /// Spin's SQLite store, one `MSET` on Redis) where the host has batch operations; one
    /// by one, the marker still goes last.
    pub fn close_with(
        self,
        store: &mut impl KvStore,
        mut pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        pairs.push((marker(), UnixMillis(0).0.to_le_bytes().to_vec()));
        store.set_many(&pairs)
    }
}

/// Waits while a window is open, at most [`WINDOW`]; whether one was. A marker that does not
/// decode counts as an open window that lapses with the wait.
pub fn wait_out(store: &mut impl KvStore, clock: &mut impl Clock) -> Result<bool, StoreError> {
    let give_up = clock.now().saturating_add(WINDOW);
    let mut waited = false;
    loop {
        let Some(bytes) = store.get(&marker())? else {
            return Ok(waited);
        };
        let until = <[u8; 8]>::try_from(bytes.as_slice())
            .map_or(give_up, |b| UnixMillis(u64::from_le_bytes(b)))
            .min(give_up);
        let now = clock.now();
        if now >= until {
            return Ok(waited);
        }
        waited = true;
        clock.sleep(POLL.min(now.until(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, SharedStore};
    use crate::time::TestClock;

    #[test]
    fn a_write_waits_for_an_open_window_and_no_longer() {
        let mut store = MemoryStore::new();
        let mut clock = TestClock::at(UnixMillis(1_000));
        assert_eq!(wait_out(&mut store, &mut clock), Ok(false));
        assert_eq!(clock.slept, Duration::ZERO);

        let window = open(&mut store, &mut clock).unwrap();
        assert!(window.may_write(&mut clock));
        // A crashed rewriter: the marker lapses by itself.
        assert_eq!(wait_out(&mut store, &mut clock), Ok(true));
        assert_eq!(clock.slept, WINDOW);
        assert!(!window.may_write(&mut clock));
        window.close(&mut store).unwrap();
        assert!(store.keys_with_prefix("m:").is_empty());

        // A marker claiming to stay open for ever, or unreadable: waited out within WINDOW.
        for bytes in [u64::MAX.to_le_bytes().to_vec(), b"junk".to_vec()] {
            store.set("m:rewrite", &bytes).unwrap();
            let mut clock = TestClock::at(UnixMillis(1_000));
            assert_eq!(wait_out(&mut store, &mut clock), Ok(true));
            assert_eq!(clock.slept, WINDOW);
        }
    }

    #[test]
    fn a_window_closed_meanwhile_ends_the_wait() {
        // One store held by the waiting write and by the rewriter that closes the window.
        let mut store = SharedStore::default();
        let mut clock = TestClock::at(UnixMillis(1_000));
        let mut window = Some(open(&mut store, &mut clock).unwrap());
        let mut rewriter = store.clone();
        clock.on_sleep = Some(Box::new(move |now| {
            if now.0 >= 1_020 {
                if let Some(w) = window.take() {
                    w.close(&mut rewriter).unwrap();
                }
            }
        }));
        assert_eq!(wait_out(&mut store, &mut clock), Ok(true));
        assert_eq!(clock.slept, Duration::from_millis(20));
    }

    #[test]
    fn closing_with_the_rewritten_entries_stores_them_and_ends_the_window() {
        let mut store = MemoryStore::new();
        let mut clock = TestClock::at(UnixMillis(1_000));
        let window = open(&mut store, &mut clock).unwrap();
        window
            .close_with(&mut store, vec![("c:ns:a".to_owned(), b"clean".to_vec())])
            .unwrap();
        assert_eq!(store.get("c:ns:a").unwrap(), Some(b"clean".to_vec()));
        assert_eq!(wait_out(&mut store, &mut clock), Ok(false));
        assert_eq!(clock.slept, Duration::ZERO);
    }
}
