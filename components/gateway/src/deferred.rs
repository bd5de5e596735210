//! Work that runs after the response has been sent.
//!
//! The handler sends and closes the response body before calling [`run_all`] (see the crate
//! docs), so nothing here delays the client. The request paths return their deferred work
//! as data (`cache_core::serve::Deferred`): a stale read asks for a revalidation of its
//! entry, a shadow read for its comparison. Every request's metrics are persisted last. Failures are logged and dropped: the
//! entry stays stale and the next stale read queues another attempt.

use std::cell::RefCell;

use cache_core::serve::{self, Deferred, RequestError};
use spin_adapters::env::{self, WallClock};
use spin_adapters::kv::Stores;

use crate::{api, metrics, settings};

thread_local! {
    static QUEUE: RefCell<Vec<Deferred>> = const { RefCell::new(Vec::new()) };
}

/// Queues `work` to run after the response.
pub fn defer(work: Vec<Deferred>) {
    QUEUE.with(|q| q.borrow_mut().extend(work));
}

/// Runs the queued work, then persists metrics.
pub async fn run_all() {
    let work = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
    for item in work {
        match item {
            Deferred::Revalidate { key, authorization } => {
                let run = || -> Result<(), RequestError> {
                    let cfg = settings::get()?;
                    let mut kv = Stores::open(&cfg)?;
                    serve::revalidate(
                        &mut kv,
                        &mut api::DbOrigin(&cfg),
                        &mut WallClock,
                        env::random_u64(),
                        &cfg,
                        &key,
                        authorization.as_deref(),
                    )
                };
                if let Err(e) = run() {
                    eprintln!("gateway: revalidating {} failed: {e:?}", key.kv_key());
                }
            }
            Deferred::Shadow(read) => {
                let key = read.key.kv_key();
                let run = || -> Result<(), RequestError> {
                    let cfg = settings::get()?;
                    let mut kv = Stores::open(&cfg)?;
                    serve::shadow::settle(
                        &mut kv,
                        &mut api::DbOrigin(&cfg),
                        &mut WallClock,
                        env::random_u64(),
                        &cfg,
                        *read,
                    )
                    .map(drop)
                };
                if let Err(e) = run() {
                    eprintln!("gateway: judging the shadow read of {key} failed: {e:?}");
                }
            }
        }
    }
    metrics::persist();
}
