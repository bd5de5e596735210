//! Work that runs after the response has been sent.
//!
//! The handler sends and closes the response body before calling [`run_all`] (see the crate
//! docs), so nothing here delays the client. A stale read queues a revalidation of its
//! entry; every request's metrics are persisted last. Failures are logged and dropped: the
//! entry stays stale and the next stale read queues another attempt.

use std::cell::RefCell;

use cache_core::key::CacheKey;

use crate::{metrics, read};

/// One piece of deferred work.
pub enum Task {
    /// Refresh a stale entry from the origin.
    Revalidate {
        /// The entry.
        key: CacheKey,
        /// The `Authorization` to send, as the read would have.
        auth: Option<String>,
    },
}

thread_local! {
    static QUEUE: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
}

/// Queues `task` to run after the response.
pub fn defer(task: Task) {
    QUEUE.with(|q| q.borrow_mut().push(task));
}

/// Runs the queued tasks, then persists metrics.
pub async fn run_all() {
    let tasks = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
    for task in tasks {
        match task {
            Task::Revalidate { key, auth } => {
                if let Err(e) = read::revalidate(&key, auth.as_deref()).await {
                    eprintln!("gateway: revalidating {} failed: {e:?}", key.kv_key());
                }
            }
        }
    }
    metrics::persist();
}
