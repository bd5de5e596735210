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

/// The slices of `entries` (every entry key listed, in any order) that follow `cursor`, at
/// most `len` keys each (at least 1), at most `count` of them (at least 1), the last ending
/// the pass or where `count` runs out: the first, for this sweep, and the others, for the
/// sweeps after it ([`super::Plan`]). A cache of at most `len` entries is one whole slice.
/// A cursor past every key starts a pass over.
pub(crate) fn select(
    mut entries: Vec<String>,
    cursor: Option<&str>,
    len: usize,
    count: usize,
) -> (Slice, Vec<Slice>) {
    let len = len.max(1);
    let listed = entries.len();
    if listed <= len {
        entries.sort_unstable();
        let whole = Slice {
            keys: entries,
            listed,
            rest: listed,
            whole: true,
            next: None,
        };
        return (whole, Vec::new());
    }
    if let Some(cursor) = cursor {
        if entries.iter().any(|k| k.as_str() > cursor) {
            entries.retain(|k| k.as_str() > cursor);
        }
    }
    let rest = entries.len();
    let chosen = len.saturating_mul(count.max(1));
    if rest > chosen {
        entries.select_nth_unstable(chosen - 1);
        entries.truncate(chosen);
    }
    entries.sort_unstable();
    let mut keys = entries.into_iter();
    // The slice of the next `len` keys, `start` keys into what the pass has left.
    let mut take = |start: usize| {
        let slice: Vec<String> = keys.by_ref().take(len).collect();
        let next = if rest > start + slice.len() {
            slice.last().cloned()
        } else {
            None
        };
        Slice {
            keys: slice,
            listed,
            rest: rest - start,
            whole: false,
            next,
        }
    };
    let first = take(0);
    let mut later = Vec::new();
    let mut start = first.keys.len();
    while start < rest.min(chosen) {
        let slice = take(start);
        start += slice.keys.len();
        later.push(slice);
    }
    (first, later)
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
        let first = select(keys(10), None, 4, 1).0;
        assert_eq!(
            first.keys,
            ["c:ns:k000", "c:ns:k001", "c:ns:k002", "c:ns:k003"]
        );
        assert_eq!((first.listed, first.rest, first.whole), (10, 10, false));
        assert_eq!(first.next.as_deref(), Some("c:ns:k003"));
        let second = select(keys(10), first.next.as_deref(), 4, 1).0;
        assert_eq!(second.keys[0], "c:ns:k004");
        assert_eq!(second.rest, 6);
        let last = select(keys(10), second.next.as_deref(), 4, 1).0;
        assert_eq!(last.keys, ["c:ns:k008", "c:ns:k009"]);
        assert_eq!((last.rest, last.next), (2, None));
        // A cursor past every key (its entries were deleted) starts over.
        let over = select(keys(10), Some("c:ns:zzz"), 4, 1).0;
        assert_eq!((over.keys[0].as_str(), over.rest), ("c:ns:k000", 10));
    }

    #[test]
    fn one_listing_chooses_the_next_slices_as_the_sweeps_after_it_would() {
        // Chosen together, the slices are those one listing per sweep would choose.
        let (first, later) = select(keys(10), Some("c:ns:k001"), 3, 8);
        let together: Vec<Slice> = std::iter::once(first).chain(later).collect();
        let mut cursor = Some("c:ns:k001".to_owned());
        let mut one_by_one = Vec::new();
        loop {
            let s = select(keys(10), cursor.as_deref(), 3, 1).0;
            cursor = s.next.clone();
            one_by_one.push(s);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(together, one_by_one);
        assert_eq!(together.len(), 3);
        assert_eq!(together[2].keys, ["c:ns:k008", "c:ns:k009"]);
        // Fewer than the pass has left: the last one chosen leads on.
        let (_, later) = select(keys(10), None, 3, 2);
        assert_eq!(1 + later.len(), 2);
        assert_eq!(
            (later[0].rest, later[0].next.as_deref()),
            (7, Some("c:ns:k005"))
        );
    }

    #[test]
    fn a_cache_that_fits_one_slice_is_read_whole_wherever_the_cursor_is() {
        let (s, later) = select(keys(4), Some("c:ns:k001"), 4, 8);
        assert_eq!(1 + later.len(), 1);
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
