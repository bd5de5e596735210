//! The cron trigger: call a component's `handle-cron-event` on its schedule.
//!
//! As with the cron plugin, each firing gets a fresh instance and `Metadata.timestamp`
//! holds the Unix time in seconds; an `Err` from the handler or a trap is logged and the
//! schedule goes on. Both plugin generations are served: the current `spin:cron@3.0.0`
//! (async export, driven under `run_concurrent`) and the older `fermyon:spin-cron@2.0.0`.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::Utc;
use wasmtime::Store;

use crate::app::{App, CronJob, Entry};
use crate::bindings::{cron2, cron3};
use crate::state::HostState;

/// Why one firing failed.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// No such component, or it has no cron entry point.
    #[error("component '{0}' is not a cron component")]
    NotCron(String),
    /// The handler returned `Err(other(message))`.
    #[error("component '{component}' returned an error: {message}")]
    Handler {
        /// Component id.
        component: String,
        /// The guest's message.
        message: String,
    },
    /// Instantiation failed or the guest trapped.
    #[error("component '{component}' failed: {reason}")]
    Trap {
        /// Component id.
        component: String,
        /// The trap or instantiation error.
        reason: String,
    },
}

/// Calls `component`'s cron handler once with `timestamp` (Unix seconds).
///
/// # Errors
/// [`CronError`] when the component is unknown, traps, or returns an error.
pub async fn fire(app: &App, component: &str, timestamp: u64) -> Result<(), CronError> {
    let loaded = app
        .components
        .get(component)
        .ok_or_else(|| CronError::NotCron(component.to_string()))?;
    let trap = |e: wasmtime::Error| CronError::Trap {
        component: component.to_string(),
        reason: format!("{e:#}"),
    };
    let mut store = Store::new(&app.engine, HostState::new(loaded.context.clone()));
    let result = match &loaded.entry {
        Entry::Cron3(pre) => {
            let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
            let metadata = cron3::spin::cron::cron_types::Metadata { timestamp };
            store
                .run_concurrent(async move |accessor| {
                    instance.call_handle_cron_event(accessor, metadata).await
                })
                .await
                .and_then(|r| r)
                .map_err(trap)?
                .map_err(|cron3::spin::cron::cron_types::Error::Other(m)| m)
        }
        Entry::Cron2(pre) => {
            let instance = pre.instantiate_async(&mut store).await.map_err(trap)?;
            let metadata = cron2::fermyon::spin_cron::cron_types::Metadata { timestamp };
            instance
                .call_handle_cron_event(&mut store, metadata)
                .await
                .map_err(trap)?
                .map_err(|cron2::fermyon::spin_cron::cron_types::Error::Other(m)| m)
        }
        Entry::Http(_) => return Err(CronError::NotCron(component.to_string())),
    };
    result.map_err(|message| CronError::Handler {
        component: component.to_string(),
        message,
    })
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs every cron job of `app` on its schedule until `shutdown` completes.
pub async fn run(app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..app.cron_jobs.len() {
        let app = app.clone();
        tasks.spawn(async move {
            let Some(job) = app.cron_jobs.get(index) else {
                return;
            };
            run_job(&app, job).await;
        });
    }
    shutdown.await;
    tasks.abort_all();
}

async fn run_job(app: &App, job: &CronJob) {
    loop {
        let now = Utc::now();
        let Some(next) = job.schedule.next_after(now) else {
            app.logger.host(&format!(
                "cron '{}' for component '{}' has no future firing; stopping it",
                job.schedule.expression(),
                job.component
            ));
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        // A firing runs on its own task so a slow handler does not delay the schedule,
        // as with the plugin's scheduler.
        let timestamp = unix_seconds();
        if let Err(e) = fire(app, &job.component, timestamp).await {
            app.logger.host(&format!("cron: {e}"));
        }
    }
}
