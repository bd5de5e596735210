//! Sealed batches: splitting coalesced writes into batches, and their stored form `b:{id}`.
//!
//! A batch is sealed (stored) before it is sent, so that a crash at any later point leaves a
//! record of exactly what was sent under which id; the next flush resends it unchanged. Each
//! item keeps the stamps of the buffer records it covers: those, and only those, are deleted
//! once the DB API answered, so writes that arrived during the flush stay buffered.

use serde::{Deserialize, Serialize};

use crate::buffer::Coalesced;
use crate::contract::BatchRequest;
use crate::delivery::batch_id::BatchId;
use crate::record::{BufferedWrite, RecordError, StoredWrite};
use crate::stamp::{Stamp, STAMP_HEX_LEN};
use crate::stored::kv_key::{KvKey, MAX_KV_VALUE_BYTES};
use crate::time::UnixMillis;

const BATCH_FORMAT: u8 = 1;
/// Bytes a batch item costs beyond its serialized write: covers and JSON framing.
const ITEM_OVERHEAD: usize = 64;

/// A batch stored under `b:{id}`, in flight to the DB API.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedBatch {
    /// Stable id, also the `Idempotency-Key`.
    pub id: BatchId,
    /// When it was sealed.
    pub sealed_at: UnixMillis,
    /// Failed send attempts so far.
    pub attempts: u32,
    /// The writes, one per key, with the records each covers.
    pub items: Vec<Coalesced>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredItem {
    write: StoredWrite,
    covers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredBatch {
    v: u8,
    id: String,
    sealed_at: u64,
    attempts: u32,
    items: Vec<StoredItem>,
}

impl SealedBatch {
    /// Seals `items` at `now`; the id is derived from the covered stamps.
    #[must_use]
    pub fn new(items: Vec<Coalesced>, now: UnixMillis) -> SealedBatch {
        let id = BatchId::derive(items.iter().flat_map(|c| c.covers.iter()));
        SealedBatch {
            id,
            sealed_at: now,
            attempts: 0,
            items,
        }
    }

    /// `b:{id}`.
    #[must_use]
    pub fn kv_key(&self) -> String {
        KvKey::Batch(self.id.clone()).render()
    }

    /// The request body for the DB API.
    #[must_use]
    pub fn request(&self) -> BatchRequest {
        BatchRequest {
            batch_id: self.id.to_string(),
            writes: self
                .items
                .iter()
                .map(|c| c.winner.to_batch_write())
                .collect(),
        }
    }

    /// Every buffer record stamp the batch covers.
    pub fn covered(&self) -> impl Iterator<Item = &Stamp> {
        self.items.iter().flat_map(|c| c.covers.iter())
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let stored = StoredBatch {
            v: BATCH_FORMAT,
            id: self.id.to_string(),
            sealed_at: self.sealed_at.0,
            attempts: self.attempts,
            items: self
                .items
                .iter()
                .map(|c| StoredItem {
                    write: StoredWrite::from(&c.winner),
                    covers: c.covers.iter().map(Stamp::to_string).collect(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| RecordError::Json(e.to_string()))?;
        if bytes.len() > MAX_KV_VALUE_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Result<SealedBatch, RecordError> {
        let stored: StoredBatch =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        if stored.v != BATCH_FORMAT {
            return Err(RecordError::UnknownVersion(stored.v));
        }
        let id = BatchId::parse(&stored.id)
            .ok_or_else(|| RecordError::Json(format!("invalid batch id {:?}", stored.id)))?;
        let items = stored
            .items
            .into_iter()
            .map(|item| {
                let winner: BufferedWrite = item.write.into_write()?;
                let covers = item
                    .covers
                    .iter()
                    .map(|s| Stamp::parse(s))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Coalesced { winner, covers })
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        Ok(SealedBatch {
            id,
            sealed_at: UnixMillis(stored.sealed_at),
            attempts: stored.attempts,
            items,
        })
    }
}

/// The bytes an item adds to a batch (request body and sealed record alike).
#[must_use]
pub fn item_bytes(item: &Coalesced) -> usize {
    let write = serde_json::to_vec(&item.winner.to_batch_write()).map_or(usize::MAX, |b| b.len());
    let covers = item.covers.len().saturating_mul(STAMP_HEX_LEN + 3);
    write.saturating_add(covers).saturating_add(ITEM_OVERHEAD)
}

/// Splits items, in order, into batches of at most `max_items` items and `max_bytes` bytes.
/// An item larger than `max_bytes` travels alone.
#[must_use]
pub fn split(items: Vec<Coalesced>, max_items: usize, max_bytes: usize) -> Vec<Vec<Coalesced>> {
    let mut batches = Vec::new();
    let mut current: Vec<Coalesced> = Vec::new();
    let mut current_bytes = 0usize;
    for item in items {
        let bytes = item_bytes(&item);
        let full =
            current.len() >= max_items.max(1) || current_bytes.saturating_add(bytes) > max_bytes;
        if full && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes = current_bytes.saturating_add(bytes);
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::coalesce;
    use crate::key::{ItemKey, Namespace};
    use serde_json::json;

    fn items(n: usize, value_len: usize) -> Vec<Coalesced> {
        coalesce((0..n).map(|i| BufferedWrite {
            ns: Namespace::parse("ns").unwrap(),
            key: ItemKey::parse(&format!("k{i}")).unwrap(),
            value: Some(json!("x".repeat(value_len))),
            stamp: Stamp::new(UnixMillis(1_000 + i as u64), 0, 1),
            written_at: UnixMillis(1_000),
            subject: None,
        }))
    }

    fn check(n: usize, value_len: usize, max_items: usize, max_bytes: usize, expected: &[usize]) {
        let sizes: Vec<usize> = split(items(n, value_len), max_items, max_bytes)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, expected, "{n} items of {value_len} bytes");
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let one = item_bytes(&items(1, 1000)[0]);
        let cases: &[(usize, usize, usize, usize, &[usize])] = &[
            (0, 10, 100, 1 << 20, &[]),
            (250, 10, 100, 1 << 20, &[100, 100, 50]),
            (10, 1000, 100, one * 3, &[3, 3, 3, 1]),
            (3, 1000, 100, 10, &[1, 1, 1]),
            (5, 10, 0, 1 << 20, &[1, 1, 1, 1, 1]),
        ];
        for (n, len, max_items, max_bytes, expected) in cases {
            check(*n, *len, *max_items, *max_bytes, expected);
        }
    }

    #[test]
    fn sealed_batch_round_trips_and_keeps_its_id() {
        let batch = SealedBatch::new(items(3, 5), UnixMillis(9));
        let bytes = batch.encode().unwrap();
        assert!(bytes.starts_with(b"{\"v\":1,"));
        let back = SealedBatch::decode(&bytes).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.id, SealedBatch::new(items(3, 5), UnixMillis(99)).id);
        assert_eq!(back.request().writes.len(), 3);
        assert!(SealedBatch::decode(b"{\"v\":2}").is_err());
    }
}
