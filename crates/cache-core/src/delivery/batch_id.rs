//! The stable id of a sealed batch.
//!
//! A batch id doubles as the DB API's `Idempotency-Key`, so it must be the same every time the
//! same writes are sent, including after a crash that lost everything but the buffer records.
//! It is therefore derived from the content: two independent FNV-1a hashes over the stamps of
//! every buffer record the batch covers, in order. Re-coalescing the same records yields the
//! same id; any difference in coverage yields a different one.

use std::fmt;

use crate::hash::Fnv64;
use crate::stamp::Stamp;

/// Length of a batch id's text form.
pub const BATCH_ID_LEN: usize = 32;

/// A batch id: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(String);

impl BatchId {
    /// The id of a batch covering `stamps` (order matters; pass them as the batch lists them).
    #[must_use]
    pub fn derive<'a>(stamps: impl IntoIterator<Item = &'a Stamp>) -> BatchId {
        let mut a = Fnv64::new();
        let mut b = Fnv64::with_seed(0x6361_6368_652d_7379); // "cache-sy"
        for s in stamps {
            let text = s.to_string();
            a.write(text.as_bytes());
            b.write(text.as_bytes());
            a.write(b",");
            b.write(b",");
        }
        BatchId(format!("{:016x}{:016x}", a.finish(), b.finish()))
    }

    /// Checks the text form; `None` if it is not 32 lowercase hex digits.
    #[must_use]
    pub fn parse(s: &str) -> Option<BatchId> {
        let ok = s.len() == BATCH_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| BatchId(s.to_owned()))
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::UnixMillis;

    #[test]
    fn id_depends_only_on_the_covered_stamps() {
        let s1 = Stamp::new(UnixMillis(1), 0, 1);
        let s2 = Stamp::new(UnixMillis(2), 0, 1);
        let id = BatchId::derive([&s1, &s2]);
        assert_eq!(id, BatchId::derive([&s1, &s2]));
        assert_ne!(id, BatchId::derive([&s1]));
        assert_ne!(id, BatchId::derive([&s2, &s1]));
        assert_eq!(BatchId::parse(id.as_str()), Some(id));
        assert_eq!(BatchId::parse("xyz"), None);
    }
}
