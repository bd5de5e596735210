//! One cron tick: `cache_core::delivery::tick::tick`, the flush run then the sweep.
//!
//! Everything here is plumbing: read the configuration, open the store and the DB API, and
//! hand them to `cache_core::delivery::tick::tick` (the admin route `POST /admin/flush` calls the
//! same). The lease owner is random per tick, so two overlapping runs (a slow tick and the next one, a tick and the admin route, two instances)
//! never both believe they hold the lease.
//!
//! A tick fails (and the host logs it) only when it cannot start — bad configuration, no
//! store — or when the store fails mid-run. A DB API failure is not a tick failure: the core
//! has stored the backoff and the sealed batch, which is the designed way to wait.

use cache_core::delivery::flush::{FlushOutcome, FlushReport};
use cache_core::delivery::sweep::SweepReport;
use cache_core::delivery::tick;
use cache_core::store::StoreError;
use spin_adapters::db::HttpDb;
use spin_adapters::env::{self, WallClock};
use spin_adapters::{config, kv::Stores};

/// Runs one tick: a flush, then a sweep.
pub fn on_tick() -> Result<(), String> {
    let cfg = config::load().map_err(|e| format!("configuration: {e}"))?;
    let mut db = HttpDb::from_config(&cfg).map_err(|e| format!("configuration: {e}"))?;
    let mut store = Stores::open(&cfg).map_err(|e| format!("key-value store: {e}"))?;
    let owner = format!("cron-{:016x}", env::random_u64());
    let rand = env::random_u64();
    let report = tick::tick(&mut store, &mut db, &mut WallClock, rand, &owner, &cfg)
        .map_err(|e| e.to_string())?;
    if report.did_work() {
        println!("{}", summary(&report.flush, report.sweep.as_ref()));
    }
    // The flush run is done and logged; the failed sweep is the tick's error.
    report.sweep.map(drop).map_err(|e| format!("sweep: {e}"))
}

/// One log line: what was sent and how it ended.
fn summary(r: &FlushReport, s: Result<&SweepReport, &StoreError>) -> String {
    let outcome = match &r.outcome {
        FlushOutcome::Retrying {
            next_attempt_at,
            error,
        } => {
            format!("retrying at {} ({error})", next_attempt_at.0)
        }
        FlushOutcome::BackingOff { until } => format!("backing off until {}", until.0),
        FlushOutcome::LeaseBusy { owner, until } => {
            format!("lease held by {owner} until {}", until.0)
        }
        other => other.label().to_owned(),
    };
    let sweep = match s {
        Ok(s) => format!(
            "read {}, expired {}, evicted {}",
            s.read, s.expired, s.evicted
        ),
        Err(e) => format!("failed ({e})"),
    };
    format!(
        "flush: {outcome}; batches sent {} (resent {}), settled {}; items applied {}, stale {}, \
         duplicate {}, dead-lettered {}{}; sweep: {sweep}",
        r.batches_sent,
        r.batches_resent,
        r.batches_settled,
        r.items.applied,
        r.items.stale,
        r.items.duplicate,
        r.items.dead_lettered,
        if r.more { "; more remain" } else { "" },
    )
}
