//! Which entries one sweep reads, and how many of them it evicts.
//!
//! A cache of at most `sweep_slice` entries is read whole, every tick, as it always was. A
//! larger one is read a slice at a time: the `sweep_slice` entry keys that follow the cursor
//! in key order, the cursor being the last key the previous sweep read. A pass is the
//! series of slices from the first key to the last; after the last slice the cursor is
//! cleared and the next sweep starts over. Key order is used, not the listing's order,
//! because Spin's stores list in no order that survives a change (Redis: its hash table's),
//! and it needs no sort of the whole listing: the slice is selected in linear time and only
//! it is sorted.
//!
//! Key order is unrelated to when an entry was last fetched, so a slice is a fair sample of
//! the cache, which is what lets each slice evict its share of the excess ([`share`]) among
//! its own least recently touched entries, as Redis evicts the best of a sample.

/// What one sweep reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slice {
    /// The entry keys to read, in key order.
    pub(crate) keys: Vec<String>,
    /// Entry keys listed: the whole cache's.
    pub(crate) listed: usize,
    /// Entry keys from the slice's first to the end of the listing: what the pass has left,
    /// this slice included.
    pub(crate) rest: usize,
    /// Whether the slice is the whole cache (then eviction is exact).
    pub(crate) whole: bool,
    /// Where the next sweep starts: the slice's last key, or `None` when the slice ends a
    /// pass.
    pub(crate) next: Option<String>,
}

/// The slice of `entries` (every entry key listed, in any order) that follows `cursor`, at
/// most `len` keys (at least 1). A cursor past every key starts a pass over.
pub(crate) fn select(mut entries: Vec<String>, cursor: Option<&str>, len: usize) -> Slice {
    let len = len.max(1);
    let listed = entries.len();
    if listed <= len {
        entries.sort_unstable();
        return Slice {
            keys: entries,
            listed,
            rest: listed,
            whole: true,
            next: None,
        };
    }
    if let Some(cursor) = cursor {
        if entries.iter().any(|k| k.as_str() > cursor) {
            entries.retain(|k| k.as_str() > cursor);
        }
    }
    let rest = entries.len();
    if rest > len {
        entries.select_nth_unstable(len - 1);
        entries.truncate(len);
    }
    entries.sort_unstable();
    let next = if rest > len {
        entries.last().cloned()
    } else {
        None
    };
    Slice {
        keys: entries,
        listed,
        rest,
        whole: false,
        next,
    }
}

/// Slices over which an excess is spread: each slice owes at least an eighth of it.
///
/// Spreading it over the whole rest of a pass would pick the victims best (each slice
/// evicts only its oldest few) but would let a steady inflow of new entries pile up to a
/// third of what a pass adds before the pass's last slices catch up (on a million entries a
/// pass is hundreds of ticks); over a fixed number of slices the excess settles near that
/// many ticks' inflow whatever the cache's size, and an excess of up to four slices still
/// costs each slice at most its older half.
pub(crate) const HORIZON: usize = 8;

/// How many entries a slice of `slice_len` keys removes when the cache holds `listed`
/// entries, `rest` of them from this slice to the end of the pass: its part of the excess
/// over `max_entries`, in proportion to its part of the next [`HORIZON`] slices or of the
/// rest of the pass, whichever is shorter, rounded up. The excess is measured by this
/// sweep's own listing, so what earlier slices removed and what was added since both
/// count; the last slice of a pass (`slice_len == rest`) owes all that is left.
pub(crate) fn share(listed: usize, max_entries: usize, slice_len: usize, rest: usize) -> usize {
    let excess = listed.saturating_sub(max_entries) as u128;
    let over = (rest as u128)
        .min(HORIZON as u128 * slice_len as u128)
        .max(1);
    let owed = (excess * slice_len as u128).div_ceil(over);
    usize::try_from(owed).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        // Listed out of order, as a store lists them.
        (0..n).rev().map(|i| format!("c:ns:k{i:03}")).collect()
    }

    #[test]
    fn slices_follow_the_cursor_in_key_order_and_wrap_after_the_last() {
        let first = select(keys(10), None, 4);
        assert_eq!(
            first.keys,
            ["c:ns:k000", "c:ns:k001", "c:ns:k002", "c:ns:k003"]
        );
        assert_eq!((first.listed, first.rest, first.whole), (10, 10, false));
        assert_eq!(first.next.as_deref(), Some("c:ns:k003"));
        let second = select(keys(10), first.next.as_deref(), 4);
        assert_eq!(second.keys[0], "c:ns:k004");
        assert_eq!(second.rest, 6);
        let last = select(keys(10), second.next.as_deref(), 4);
        assert_eq!(last.keys, ["c:ns:k008", "c:ns:k009"]);
        assert_eq!((last.rest, last.next), (2, None));
        // A cursor past every key (its entries were deleted) starts over.
        let over = select(keys(10), Some("c:ns:zzz"), 4);
        assert_eq!((over.keys[0].as_str(), over.rest), ("c:ns:k000", 10));
    }

    #[test]
    fn a_cache_that_fits_one_slice_is_read_whole_wherever_the_cursor_is() {
        let s = select(keys(4), Some("c:ns:k001"), 4);
        assert_eq!(s.keys.len(), 4);
        assert!(s.whole);
        assert_eq!(s.next, None);
    }

    #[test]
    fn each_slice_owes_its_part_of_the_excess_and_the_last_owes_the_rest() {
        // (listed, max, slice, rest) → share
        let cases = [
            // An eighth of the excess while the pass has more than eight slices left.
            ((10_000, 9_000, 100, 10_000), 125),
            ((10_000, 9_000, 100, 400), 250),
            ((10_000, 9_000, 100, 100), 1000),
            ((10_000, 9_999, 100, 10_000), 1),
            ((10_000, 10_000, 100, 10_000), 0),
            ((10, 20, 5, 10), 0),
            ((usize::MAX, 0, usize::MAX, usize::MAX), usize::MAX),
        ];
        for ((listed, max, len, rest), owed) in cases {
            assert_eq!(
                share(listed, max, len, rest),
                owed,
                "{listed} {max} {len} {rest}"
            );
        }
    }
}
