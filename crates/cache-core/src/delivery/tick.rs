//! One tick: the flush run, then the sweep.
//!
//! The cron-triggered flush component and `POST /admin/flush` both call [`tick`], so the two
//! are the same operation by construction. The sweep runs only after a flush run that the
//! store did not abort, at the clock's time after the flush (which may have waited on the
//! DB API). A sweep that fails (the store refusing its listing, say) does not undo or hide
//! the flush run before it: the report carries both, the sweep as its error. Last, the tick adds a snapshot to the dashboard's history
//! ([`crate::history::record`]), best effort: a store that refuses it loses one point.

use thiserror::Error;

use crate::config::CacheConfig;
use crate::db::DbApi;
use crate::delivery::flush::{self, FlushOutcome, FlushReport};
use crate::delivery::sweep::{self, SweepReport};
use crate::store::{KvStore, StoreError};
use crate::time::Clock;

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// The flush run.
    pub flush: FlushReport,
    /// The sweep after it, or why it failed.
    pub sweep: Result<SweepReport, StoreError>,
}

impl TickReport {
    /// Whether the tick did anything worth a log line.
    #[must_use]
    pub fn did_work(&self) -> bool {
        self.flush.outcome != FlushOutcome::Idle
            || self
                .sweep
                .as_ref()
                .map_or(true, |s| s.expired + s.evicted + s.unreadable > 0)
    }
}

/// Why a tick failed: the store, during the flush run. A DB API failure is not a tick
/// failure (the flush has stored the backoff and kept the sealed batch), nor is a failed
/// sweep ([`TickReport::sweep`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TickError {
    /// The store failed during the flush run, which was aborted (the sweep did not run).
    #[error("flush: key-value store failed: {0}")]
    Flush(String),
}

/// Runs one flush (lease owner `owner`, unique per tick; random numbers from `rand`), then
/// one sweep.
pub fn tick<S: KvStore, D: DbApi, C: Clock>(
    store: &mut S,
    db: &mut D,
    clock: &mut C,
    rand: u64,
    owner: &str,
    cfg: &CacheConfig,
) -> Result<TickReport, TickError> {
    let report = flush::run(store, db, clock, rand, owner, cfg);
    if let FlushOutcome::StoreFailed(e) = &report.outcome {
        return Err(TickError::Flush(e.clone()));
    }
    let swept = sweep::sweep(store, clock, cfg);
    let _ = crate::history::record(store, clock.now(), &report);
    Ok(TickReport {
        flush: report,
        sweep: swept,
    })
}
