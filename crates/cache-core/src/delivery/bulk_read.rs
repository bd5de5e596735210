//! Reading many keys in few calls without holding too many bytes at once.
//!
//! The flush reads every buffer record and the sweep every cache entry. One `get_many` per
//! key would cost a host call each (thousands per run); one call for all of them would hold
//! every value in the component's memory at once, and a value may be up to
//! `max_value_bytes` (960 KiB). So the keys are read in chunks sized by what was seen: the
//! first chunk is [`FIRST`] keys, and each next one as many as [`BUDGET`] holds at the largest
//! value read so far, between 1 and [`MAX`]. Small values (the usual case) are read
//! [`MAX`] to a call; a store of large ones never has more than about [`BUDGET`] in flight,
//! beyond one value.

use crate::store::{KvStore, StoreError};

/// Keys in the first chunk, before any size is known (at most 30 MiB of values).
const FIRST: usize = 32;
/// The most keys in one chunk.
const MAX: usize = 128;
/// The bytes a chunk aims to stay within, at the largest value seen.
const BUDGET: usize = 8 * 1024 * 1024;

/// Chunk sizes for reading many keys: [`ReadChunks::len`] keys next, then
/// [`ReadChunks::saw`] what they held.
#[derive(Debug)]
pub(crate) struct ReadChunks {
    len: usize,
    largest: usize,
}

impl ReadChunks {
    pub(crate) fn new() -> ReadChunks {
        ReadChunks {
            len: FIRST,
            largest: 0,
        }
    }

    /// How many keys to read in the next chunk.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Sizes the next chunk by the largest value read so far.
    pub(crate) fn saw(&mut self, values: &[Option<Vec<u8>>]) {
        let largest = values.iter().flatten().map(Vec::len).max().unwrap_or(0);
        self.largest = self.largest.max(largest);
        self.len = (BUDGET / self.largest.max(1)).clamp(1, MAX);
    }
}

/// Reads `keys` with [`KvStore::get_many`], chunk by chunk ([`ReadChunks`]), handing each
/// key's index and its value (`None`: absent) to `each`, in order.
pub(crate) fn read_each<S: KvStore>(
    store: &mut S,
    keys: &[String],
    mut each: impl FnMut(usize, Option<Vec<u8>>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut chunks = ReadChunks::new();
    let mut start = 0;
    while start < keys.len() {
        let end = keys.len().min(start + chunks.len());
        let values = store.get_many(&keys[start..end])?;
        chunks.saw(&values);
        for (i, value) in (start..end).zip(values) {
            each(i, value)?;
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AfterGetMany, MemoryStore};

    /// The sizes of the `get_many` calls reading `n` values of `value_len` bytes.
    fn chunks(value_len: usize, n: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut store = AfterGetMany(
            MemoryStore::new(),
            |_: &mut MemoryStore, keys: &[String]| {
                sizes.push(keys.len());
                Ok(())
            },
        );
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        for k in &keys {
            store.0.set(k, &vec![b'x'; value_len]).unwrap();
        }
        let mut seen = Vec::new();
        read_each(&mut store, &keys, |i, v| {
            seen.push((i, v.map(|v| v.len())));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            (0..n).map(|i| (i, Some(value_len))).collect::<Vec<_>>()
        );
        drop(store);
        sizes
    }

    #[test]
    fn small_values_are_read_many_to_a_call_and_large_ones_few() {
        assert_eq!(chunks(2_000, 300), [32, 128, 128, 12]);
        assert_eq!(chunks(960 * 1024, 20), [20]);
        assert_eq!(chunks(960 * 1024, 40), [32, 8]);
        assert_eq!(chunks(10, 0), Vec::<usize>::new());
    }
}
