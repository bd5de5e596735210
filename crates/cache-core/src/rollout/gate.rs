//! The gate: whether the rollout may be raised now.
//!
//! Raising the share of traffic the cache serves, or switching to cutover, is the step that
//! can hurt; the evidence that it will not is shadow mode's comparison of what the cache
//! would have served with what the DB API answered. The gate refuses a raise while the
//! mismatch rate is above `rollout_max_mismatch` percent. Lowering is never gated
//! ([`super::change`]), and an operator can skip the gate (`force`).
//!
//! The evidence is shadow mode's comparisons of the recent window ([`super::evidence`]): the
//! current `rollout_gate_window` and the one before. With none counted (shadow never ran,
//! or not recently) there is nothing to judge by and the gate allows: skipping shadow is the
//! operator's choice, and `GET /admin/rollout` says the gate had no evidence.

use std::time::Duration;

use super::evidence;
use crate::store::{KvStore, StoreError};
use crate::time::UnixMillis;

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

/// Judges the recent window's comparisons (windows of `window`, at `now`) against
/// `max_mismatch` percent (one `get_many`).
pub fn check(
    store: &mut impl KvStore,
    max_mismatch: u8,
    now: UnixMillis,
    window: Duration,
) -> Result<Verdict, StoreError> {
    let recent = evidence::recent(store, now, window)?;
    let total = recent.matches.saturating_add(recent.mismatches);
    if total == 0 {
        return Ok(Verdict::NoEvidence);
    }
    let mismatch_per_mille = recent.mismatches.saturating_mul(1000) / total;
    Ok(if mismatch_per_mille > u64::from(max_mismatch) * 10 {
        Verdict::Above { mismatch_per_mille }
    } else {
        Verdict::Within { mismatch_per_mille }
    })
}
