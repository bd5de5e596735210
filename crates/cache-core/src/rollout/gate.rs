//! The gate: whether the rollout may be raised now.
//!
//! Raising the share of traffic the cache serves, or switching to cutover, is the step that
//! can hurt; the evidence that it will not is shadow mode's comparison of what the cache
//! would have served with what the DB API answered. The gate refuses a raise while the
//! mismatch rate is above `rollout_max_mismatch` percent. Lowering is never gated
//! ([`super::change`]), and an operator can skip the gate (`force`).
//!
//! Shadow mode is not part of this version, so nothing counts matches yet: the gate reads
//! the two shadow counters (`m:tally:shadow_matches`, `m:tally:shadow_mismatches`) and
//! allows when both are zero. Once shadow mode counts them, the gate applies with no change
//! here. The counts are totals since they were last reset, not a recent window.

use crate::store::{decode_counter, KvStore, StoreError};
use crate::stored::kv_key::KvKey;

/// The counter of shadow comparisons that matched.
pub const SHADOW_MATCHES: &str = "shadow_matches";
/// The counter of shadow comparisons that did not.
pub const SHADOW_MISMATCHES: &str = "shadow_mismatches";

/// What the gate saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No shadow comparison has been counted: nothing to judge by.
    NoEvidence,
    /// The mismatch rate is within the bound.
    Within {
        /// Mismatches, per mille.
        mismatch_per_mille: u64,
    },
    /// The mismatch rate is above the bound.
    Above {
        /// Mismatches, per mille.
        mismatch_per_mille: u64,
    },
}

impl Verdict {
    /// Whether a raise may go ahead.
    #[must_use]
    pub fn allows(self) -> bool {
        !matches!(self, Verdict::Above { .. })
    }
}

/// Judges the shadow counters against `max_mismatch` percent (two reads, one `get_many`).
pub fn check(store: &mut impl KvStore, max_mismatch: u8) -> Result<Verdict, StoreError> {
    let keys = [SHADOW_MATCHES, SHADOW_MISMATCHES].map(|n| KvKey::Tally(n.to_owned()).render());
    let values = store.get_many(&keys)?;
    let count = |i: usize| {
        values
            .get(i)
            .and_then(Option::as_deref)
            .map_or(0, decode_counter)
    };
    let (matches, mismatches) = (count(0), count(1));
    let total = matches.saturating_add(mismatches);
    if total == 0 {
        return Ok(Verdict::NoEvidence);
    }
    let mismatch_per_mille = mismatches.saturating_mul(1000) / total;
    Ok(if mismatch_per_mille > u64::from(max_mismatch) * 10 {
        Verdict::Above { mismatch_per_mille }
    } else {
        Verdict::Within { mismatch_per_mille }
    })
}
