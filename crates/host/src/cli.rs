//! The command line of `cache-sync-host`: run a `spin.toml` like `spin up`.
//!
//! It lives in the library so that anything depending on the host can ship the same
//! program under its own binary name (the end-to-end tests run it as a child process to
//! kill it). Flags follow `spin up` where they overlap (`--from`, `--listen`,
//! `--runtime-config-file`, `--state-dir`, `--env`, `--variable`, `--quiet`). A bad flag
//! or a bad application prints one line naming the problem and exits non-zero.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::http_trigger::ServeOptions;
use crate::run::{startup_lines, RunOptions};
use crate::variables::Providers;
use crate::{AppOptions, RunningApp};

/// Run a Spin application (spin.toml) on the embedded host.
#[derive(Parser, Debug)]
#[command(name = "cache-sync-host", version)]
struct Cli {
    /// Optional `up`, for `spin up`-style invocations.
    #[arg(value_parser = ["up"], hide = true)]
    command: Option<String>,
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Address to serve HTTP on.
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Spin runtime-config file (key-value store placements).
    #[arg(long, env = "RUNTIME_CONFIG_FILE")]
    runtime_config_file: Option<PathBuf>,
    /// State directory (default: `.spin` beside the manifest).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Environment variable for every component, `KEY=VALUE` (repeatable).
    #[arg(short = 'e', long = "env", value_parser = key_value)]
    env: Vec<(String, String)>,
    /// Application variable, `name=value` (repeatable; highest precedence).
    #[arg(long = "variable", value_parser = key_value)]
    variables: Vec<(String, String)>,
    /// Do not echo component output to the terminal (it is still logged to files).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Print one line per request.
    #[arg(long)]
    log_requests: bool,
    /// Do not run `[[trigger.cron]]` jobs.
    #[arg(long)]
    no_cron: bool,
    /// Use the on-demand instance allocator instead of the pooling allocator.
    #[arg(long)]
    disable_pooling: bool,
    /// Set TCP_NODELAY on accepted connections (Spin does not: by default neither does
    /// this host, so small responses written in pieces behave as on Spin).
    #[arg(long)]
    tcp_nodelay: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' must be of the form key=value"))
}

/// Parses the process arguments, runs the app until SIGINT/SIGTERM, and returns the exit
/// code: 0, 1 for a failed start, 2 for bad flags.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Spin reads `.env` from the working directory and ignores one it cannot read.
    let dotenv = std::fs::read_to_string(".env").ok();
    let mut providers = Providers::from_env(spin_variable_env()?, dotenv.as_deref())?;
    providers.flags = cli.variables.into_iter().collect::<BTreeMap<_, _>>();
    let mut options = AppOptions::new(cli.from);
    options.runtime_config = cli.runtime_config_file;
    options.state_dir = cli.state_dir;
    options.providers = providers;
    options.echo_component_output = !cli.quiet;
    options.pooling = !cli.disable_pooling;
    options.extra_env = cli.env;
    let run = RunOptions {
        serve: ServeOptions {
            log_requests: cli.log_requests,
            tcp_nodelay: cli.tcp_nodelay,
        },
        cron: !cli.no_cron,
    };
    let stop = shutdown_signal();
    let running = RunningApp::start(options, cli.listen, run).await?;
    for line in startup_lines(&running.app, running.addr) {
        println!("{line}");
    }
    stop.await;
    eprintln!("Shutting down");
    running.stop().await;
    Ok(())
}

/// The process's `SPIN_VARIABLE_*` variables; one whose value is not Unicode is an error
/// (Spin fails to resolve it), other variables are not looked at.
fn spin_variable_env() -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if !key.starts_with(crate::variables::ENV_PREFIX) {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("environment variable {key} is not valid Unicode"))?;
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

/// Listens for SIGINT and SIGTERM from the moment it is called (so a signal that arrives
/// while the app is still starting is not missed); the future resolves on the first one.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listeners = signal(SignalKind::interrupt())
            .and_then(|int| signal(SignalKind::terminate()).map(|term| (int, term)));
        async move {
            match listeners {
                Ok((mut int, mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
