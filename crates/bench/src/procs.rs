//! The systems under test as child processes: the reference DB API and the embedded host,
//! and `redis-server` for a baseline and for the figures on a Redis store.
//!
//! They run as separate processes (release binaries) so that the load generator in this
//! process does not share a runtime or an allocator with what it measures. Every child is
//! killed when its handle is dropped, so an error or a panic anywhere in a figure never
//! leaves a server behind.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::Http;

/// A child process killed (and reaped) on drop.
pub struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Result<Proc> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Proc { name, child })
    }

    /// Fails when the process has already exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Proc {
    /// The process's resident memory (`VmRSS` of `/proc/{pid}/status`, Linux), in KiB.
    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .with_context(|| format!("cannot read the status of {}", self.name))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS in the status of {}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, read, released: a small race accepted for a benchmark).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `url` until it answers 200, for at most `limit`; returns the time it took.
async fn wait_ready(http: &Http, proc: &mut Proc, url: &str, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    // Bounded: at most `limit` / 5 ms polls.
    while start.elapsed() < limit {
        proc.check_alive()?;
        if let Ok(r) = http.get(url).await {
            if r.status == 200 {
                return Ok(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("{} did not answer {url} within {limit:?}", proc.name)
}

/// Paths of the release binaries.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `db-api`.
    pub db_api: PathBuf,
    /// `cache-sync-host`.
    pub host: PathBuf,
}

impl Bins {
    /// The binaries in `dir`, which must exist.
    pub fn in_dir(dir: &Path) -> Result<Bins> {
        let exe = std::env::consts::EXE_SUFFIX;
        let bins = Bins {
            db_api: dir.join(format!("db-api{exe}")),
            host: dir.join(format!("cache-sync-host{exe}")),
        };
        for p in [&bins.db_api, &bins.host] {
            if !p.exists() {
                bail!(
                    "{} is missing: build with `cargo build --release -p cache-sync-host -p db-api`",
                    p.display()
                );
            }
        }
        Ok(bins)
    }
}

/// The reference DB API, in memory, on a free port.
pub struct DbApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _proc: Proc,
}

impl DbApi {
    /// Starts it with auth off (the figures measure the cache in front of an open origin)
    /// and waits until `/healthz` answers.
    pub async fn start(bins: &Bins, http: &Http) -> Result<DbApi> {
        DbApi::start_with(bins, http, &["--auth".into(), "off".into()]).await
    }

    /// Starts it with `args` added to the listen address and the in-memory database, and
    /// waits until `/healthz` answers.
    pub async fn start_with(bins: &Bins, http: &Http, args: &[OsString]) -> Result<DbApi> {
        let port = free_port()?;
        let mut proc = Proc::spawn(
            "db-api",
            Command::new(&bins.db_api)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--db")
                .arg(":memory:")
                .args(args),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(
            http,
            &mut proc,
            &format!("{url}/healthz"),
            Duration::from_secs(30),
        )
        .await?;
        Ok(DbApi { url, _proc: proc })
    }
}

/// The app on the embedded host, on a free port, with its own state directory.
pub struct Host {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The `--state-dir` (holds `sqlite_key_value.db`).
    pub state_dir: PathBuf,
    /// From spawning the process to the first `200` from the gateway.
    pub ready_after: Duration,
    proc: Proc,
}

impl Host {
    /// Starts `manifest` with `vars` as `--variable`s and no cron (flushes are driven by
    /// `POST /admin/flush`, so simulated time needs no waiting).
    pub async fn start(
        bins: &Bins,
        http: &Http,
        manifest: &Path,
        state_dir: &Path,
        vars: &[(String, String)],
    ) -> Result<Host> {
        Host::start_with(bins, http, manifest, state_dir, vars, None).await
    }

    /// [`Host::start`] with a Spin runtime config (`--runtime-config-file`).
    pub async fn start_with(
        bins: &Bins,
        http: &Http,
        manifest: &Path,
        state_dir: &Path,
        vars: &[(String, String)],
        runtime_config: Option<&Path>,
    ) -> Result<Host> {
        Host::spawn(bins, http, manifest, state_dir, vars, runtime_config, true).await
    }

    /// [`Host::start`], with `TCP_NODELAY` on accepted connections only if `nodelay`:
    /// without it the host's sockets are Spin's (figure 13).
    pub async fn start_socket(
        bins: &Bins,
        http: &Http,
        manifest: &Path,
        state_dir: &Path,
        vars: &[(String, String)],
        nodelay: bool,
    ) -> Result<Host> {
        Host::spawn(bins, http, manifest, state_dir, vars, None, nodelay).await
    }

    async fn spawn(
        bins: &Bins,
        http: &Http,
        manifest: &Path,
        state_dir: &Path,
        vars: &[(String, String)],
        runtime_config: Option<&Path>,
        nodelay: bool,
    ) -> Result<Host> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let port = free_port()?;
        let mut cmd = Command::new(&bins.host);
        cmd.arg("--from")
            .arg(manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--no-cron")
            .arg("-q");
        if nodelay {
            // The figures compare the gateway with the probe floor and with earlier runs on
            // equal terms; the probe, like any component that hands its response head over
            // before its body, would otherwise wait for delayed ACKs on keep-alive
            // connections (Spin sets no TCP_NODELAY, nor does the host by default).
            // Figure 13 measures both sockets.
            cmd.arg("--tcp-nodelay");
        }
        if let Some(rc) = runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for (k, v) in vars {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        let mut proc = Proc::spawn("cache-sync-host", &mut cmd)?;
        let url = format!("http://127.0.0.1:{port}");
        let ready_after = wait_ready(
            http,
            &mut proc,
            &format!("{url}/healthz"),
            Duration::from_secs(120),
        )
        .await?;
        Ok(Host {
            url,
            state_dir: state_dir.to_path_buf(),
            ready_after,
            proc,
        })
    }
}

impl Host {
    /// The host process's resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> Result<u64> {
        self.proc.rss_kib()
    }
}

/// A `redis-server` on a free loopback port, without persistence: figure 1's baseline of
/// what one in-memory key-value `GET` costs over loopback, and figure 12's Redis store.
pub struct Redis {
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
    _proc: Proc,
}

impl Redis {
    /// Starts `redis-server` (from `PATH`) and waits until it answers `PING`.
    pub async fn start() -> Result<Redis> {
        let port = free_port()?;
        let mut proc = Proc::spawn(
            "redis-server",
            Command::new("redis-server")
                .arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]),
        )?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let client = redis::Client::open(url.as_str())?;
        let start = Instant::now();
        let limit = Duration::from_secs(10);
        // Bounded: at most `limit` / 5 ms attempts.
        while start.elapsed() < limit {
            proc.check_alive()?;
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .is_ok()
                {
                    return Ok(Redis { url, _proc: proc });
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("redis-server did not answer PING within {limit:?}")
    }
}
