//! The per-request decision: does the cache serve this request, or does it pass through?
//!
//! A pure function of the rollout state and the caller's bucket, so every instance decides
//! the same for the same caller without talking to the others.
//!
//! | mode | read | write |
//! |---|---|---|
//! | `passthrough` | origin | origin |
//! | `shadow` | origin, compared with the cache | origin |
//! | `canary`, bucket < share | cache | buffer if `canary_writes_buffered`, else origin |
//! | `canary`, bucket ≥ share | origin | origin |
//! | `cutover` | cache | buffer |

use super::state::{Mode, RolloutState};

/// Who answers a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRoute {
    /// The cache, as in cutover.
    Cache,
    /// The DB API, its answer relayed.
    Origin,
    /// The DB API, its answer relayed, and compared after the response with what the cache
    /// would have served ([`super::shadow`]).
    Shadow,
}

/// Where a write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRoute {
    /// The write buffer, as in cutover (`202`).
    Buffer,
    /// The DB API, synchronously.
    Origin,
}

/// Whether a caller in `bucket` is in the canary: its bucket is below the share. Raising
/// the share only adds buckets, so a caller in stays in.
#[must_use]
pub fn in_canary(state: &RolloutState, bucket: u8) -> bool {
    bucket < state.canary_share
}

/// Who answers a read of a caller in `bucket`.
#[must_use]
pub fn read_route(state: &RolloutState, bucket: u8) -> ReadRoute {
    match state.mode {
        Mode::Cutover => ReadRoute::Cache,
        Mode::Canary if in_canary(state, bucket) => ReadRoute::Cache,
        Mode::Canary | Mode::Passthrough => ReadRoute::Origin,
        Mode::Shadow => ReadRoute::Shadow,
    }
}

/// Where a write of a caller in `bucket` goes.
#[must_use]
pub fn write_route(state: &RolloutState, bucket: u8) -> WriteRoute {
    match state.mode {
        Mode::Cutover => WriteRoute::Buffer,
        Mode::Canary if state.canary_writes_buffered && in_canary(state, bucket) => {
            WriteRoute::Buffer
        }
        Mode::Canary | Mode::Passthrough | Mode::Shadow => WriteRoute::Origin,
    }
}
