//! Shared helpers: component paths, throwaway app directories, an HTTP client, a tiny
//! upstream server, the reference DB API in process. Everything listens on 127.0.0.1 with
//! port 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_sync_host::http_trigger::ServeOptions;
use cache_sync_host::run::RunOptions;
use cache_sync_host::variables::Providers;
use cache_sync_host::{AppOptions, RunningApp};
use db_api::backend::sqlite::SqliteBackend;
use db_api::faults::FaultConfig;
use db_api::stats::CountersSnapshot;
use db_api::{AppState, Settings};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of a built component; `cargo xtask test` builds them first.
pub fn wasm(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/wasm32-wasip1/wasm-release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`, which builds the components",
        path.display()
    );
    path
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("cache-sync-e2e-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `manifest` as `spin.toml` in `dir`; `{probe}`, `{gateway}`, `{flush}` and
/// `{flush_v2}` are replaced by the components' absolute paths.
pub fn write_manifest(dir: &Path, manifest: &str) -> PathBuf {
    let mut text = manifest.to_string();
    for (tag, name) in [
        ("{probe}", "probe"),
        ("{gateway}", "gateway"),
        ("{gateway_no_atomics}", "gateway_no_atomics"),
        ("{flush_v2}", "flush_cron_v2"),
        ("{flush}", "flush"),
    ] {
        if text.contains(tag) {
            text = text.replace(tag, &wasm(name).display().to_string().replace('\\', "/"));
        }
    }
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Options for `manifest` with component output kept off the terminal.
pub fn options(manifest: &Path) -> AppOptions {
    let mut o = AppOptions::new(manifest);
    o.echo_component_output = false;
    o.pooling = false;
    o
}

/// Options with `flags` as `--variable` values.
pub fn with_flags(mut o: AppOptions, flags: &[(&str, &str)]) -> AppOptions {
    o.providers = Providers {
        flags: flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Providers::default()
    };
    o
}

/// Starts the app on 127.0.0.1:0.
pub async fn start(options: AppOptions, cron: bool) -> RunningApp {
    RunningApp::start(
        options,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        RunOptions {
            serve: ServeOptions::default(),
            cron,
        },
    )
    .await
    .expect("app starts")
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Sends one request; fails the test after 10 s.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response within 10 s")
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Like [`send`], but `None` instead of failing when there is no complete answer within
/// `limit` (a host that is not up yet, or was just killed).
pub async fn try_send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> Option<Reply> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).ok()?;
    let resp = tokio::time::timeout(limit, client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(limit, resp.into_body().collect())
        .await
        .ok()?
        .ok()?
        .to_bytes();
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(url: &str) -> Reply {
    send("GET", url, &[], "").await
}

/// A loopback HTTP server answering every request with 200 `hello from upstream`.
pub async fn upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"hello from upstream"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The service token of [`Db::start_with_auth`]: give it to the app as `db_api_token`.
pub const DB_SERVICE_TOKEN: &str = "e2e-service-token";

/// The reference DB API on 127.0.0.1:0, in memory, with direct access to its state.
pub struct Db {
    pub addr: SocketAddr,
    pub state: AppState,
    token: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Db {
    pub async fn start() -> Db {
        Db::start_with(Settings::default()).await
    }

    /// With auth on: the demo users (`alice`, `bob`: `db_api::auth::DEMO_USERS`), the demo
    /// access rules, and [`DB_SERVICE_TOKEN`] as the service token.
    pub async fn start_with_auth() -> Db {
        Db::start_with(Settings {
            token: Some(DB_SERVICE_TOKEN.into()),
            auth: db_api::AuthSettings::on(),
            ..Settings::default()
        })
        .await
    }

    pub async fn start_with(settings: Settings) -> Db {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Db::start_on(listener, settings)
    }

    /// On a listener bound beforehand: for an app that must know the DB API's address
    /// before the DB API knows the app's (announcements to the cache).
    pub fn start_on(listener: tokio::net::TcpListener, settings: Settings) -> Db {
        let token = settings.token.clone();
        let backend = SqliteBackend::open(":memory:").expect("in-memory sqlite");
        let state = AppState::new(Arc::new(backend), settings).expect("valid settings");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            let _ = db_api::run(listener, served, async move {
                let _ = rx.await;
            })
            .await;
        });
        Db {
            addr,
            state,
            token,
            stop: Some(tx),
        }
    }

    /// Revokes `user`'s credentials (auth on): its token stops working and writes made on its
    /// behalf are refused, until [`Db::restore`].
    pub fn revoke(&self, user: &str) {
        self.state
            .auth
            .set_revoked(user, true)
            .expect("a known user");
    }

    /// Undoes [`Db::revoke`].
    pub fn restore(&self, user: &str) {
        self.state
            .auth
            .set_revoked(user, false)
            .expect("a known user");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> CountersSnapshot {
        self.state.counters.snapshot()
    }

    /// Item reads the DB API has served.
    pub fn reads(&self) -> u64 {
        self.stats().item_reads
    }

    /// Installs faults given as JSON (`{}` clears them).
    pub fn faults(&self, config: serde_json::Value) {
        let config: FaultConfig = serde_json::from_value(config).expect("valid fault config");
        self.set_faults(config);
    }

    /// Installs faults.
    pub fn set_faults(&self, config: FaultConfig) {
        self.state
            .faults
            .set(config)
            .expect("fault config accepted");
    }

    /// Answers every request `503` until [`Db::heal`].
    pub fn down(&self) {
        self.set_faults(FaultConfig {
            down: Some(db_api::faults::DownMode::Unavailable),
            ..FaultConfig::default()
        });
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.set_faults(FaultConfig::default());
    }

    /// Stores `value` under `ns/key` with `version`.
    pub async fn seed(&self, ns: &str, key: &str, value: serde_json::Value, version: u64) {
        let body = serde_json::json!({ "items": [{ "ns": ns, "key": key, "value": value, "version": version }] });
        let r = send(
            "POST",
            &format!("{}/_seed", self.url()),
            &[("content-type", "application/json")],
            &body.to_string(),
        )
        .await;
        assert!(r.status < 300, "seed failed: {r:?}");
    }

    /// The stored value of `ns/key`, or `None` when absent (read with the service token, when
    /// there is one).
    pub async fn item(&self, ns: &str, key: &str) -> Option<serde_json::Value> {
        let url = format!("{}/v1/items/{ns}/{key}", self.url());
        let r = match &self.token {
            Some(t) => {
                send(
                    "GET",
                    &url,
                    &[("authorization", &format!("Bearer {t}"))],
                    "",
                )
                .await
            }
            None => get(&url).await,
        };
        match r.status {
            200 => Some(serde_json::from_str(&r.body).expect("item is JSON")),
            404 => None,
            other => panic!("GET item {ns}/{key}: {other} {}", r.body),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
