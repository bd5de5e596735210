//! Running a loaded application: start-up output, both triggers, shutdown.
//!
//! `cache-sync-host` (the binary) and the end-to-end tests both go through
//! [`RunningApp::start`], so the tests exercise the same serving path users run.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{App, AppOptions, DEFAULT_KV_FILE};
use crate::http_trigger::{serve, ServeOptions};
use crate::runtime_config::KvPlacement;

/// What `spin up` prints before serving: log and store locations, then the routes.
pub fn startup_lines(app: &App, addr: SocketAddr) -> Vec<String> {
    let runtime_kv: Vec<(&String, &KvPlacement)> = app.runtime.key_value_stores.iter().collect();
    let mut lines = Vec::new();
    if !runtime_kv.is_empty() {
        let stores: Vec<String> = runtime_kv
            .iter()
            .map(|(label, p)| {
                let kind = match p {
                    KvPlacement::Spin(_) => "spin",
                    KvPlacement::Redis(_) => "redis",
                };
                format!("[key_value_store.{label}: {kind}]")
            })
            .collect();
        lines.push(format!("Using runtime config {}", stores.join(", ")));
    }
    if let Some(dir) = app.logger.dir() {
        lines.push(format!("Logging component stdio to {:?}", dir.join("")));
    }
    let uses_default = app
        .manifest
        .component
        .values()
        .any(|c| c.key_value_stores.iter().any(|l| l == "default"));
    if uses_default && !runtime_kv.iter().any(|(l, _)| *l == "default") {
        lines.push(match &app.state_dir {
            Some(dir) => format!(
                "Storing default key-value data to {:?}.",
                dir.join(DEFAULT_KV_FILE)
            ),
            None => "Storing default key-value data to a temporary in-memory store.".to_string(),
        });
    }
    for dup in &app.duplicate_routes {
        lines.push(format!(
            "The following component routes are duplicates and will never be used:\n  {}: {} (duplicate of {})",
            dup.replaced, dup.route, dup.effective
        ));
    }
    let base_url = format!("http://{addr:?}");
    lines.push(String::new());
    lines.push(format!("Serving {base_url}"));
    lines.push("Available Routes:".to_string());
    for (id, route, wildcard) in app.router.listing() {
        if *wildcard {
            lines.push(format!("  {id}: {base_url}{route} (wildcard)"));
        } else {
            lines.push(format!("  {id}: {base_url}{route}"));
        }
        if let Some(description) = app
            .manifest
            .component
            .get(id)
            .and_then(|c| c.description.as_ref())
        {
            lines.push(format!("    {description}"));
        }
    }
    for job in &app.cron_jobs {
        lines.push(format!(
            "Cron: {} on \"{}\" (UTC)",
            job.component,
            job.schedule.expression()
        ));
    }
    lines
}

/// A served application with its address; stops when [`RunningApp::stop`] is called
/// or it is dropped.
pub struct RunningApp {
    /// The address being served.
    pub addr: SocketAddr,
    /// The loaded application (for firing cron handlers directly in tests).
    pub app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// HTTP serving options.
    pub serve: ServeOptions,
    /// Run cron jobs on their schedules.
    pub cron: bool,
}

impl RunningApp {
    /// Loads the application (compiling on a blocking thread), binds `listen` and serves.
    ///
    /// # Errors
    /// Load errors (see [`App::load`]) and bind errors.
    pub async fn start(
        options: AppOptions,
        listen: SocketAddr,
        run: RunOptions,
    ) -> anyhow::Result<RunningApp> {
        let app = tokio::task::spawn_blocking(move || App::load(&options)).await??;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!("{listen} is already in use")
            } else {
                anyhow::anyhow!("cannot listen on {listen}: {e}")
            }
        })?;
        Ok(RunningApp::serve(Arc::new(app), listener, run))
    }

    /// Serves an already-loaded application on `listener`.
    pub fn serve(app: Arc<App>, listener: tokio::net::TcpListener, run: RunOptions) -> RunningApp {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = oneshot::channel::<()>();
        let task_app = app.clone();
        let task = tokio::spawn(async move {
            let (stop_cron_tx, stop_cron_rx) = oneshot::channel::<()>();
            let cron = run.cron.then(|| {
                tokio::spawn(crate::cron_trigger::run(task_app.clone(), async move {
                    let _ = stop_cron_rx.await;
                }))
            });
            serve(task_app, listener, run.serve, async move {
                let _ = rx.await;
            })
            .await;
            let _ = stop_cron_tx.send(());
            if let Some(cron) = cron {
                let _ = cron.await;
            }
        });
        RunningApp {
            addr,
            app,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting connections and stops the cron jobs.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
