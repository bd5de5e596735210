//! The load generator: a fixed number of HTTP/1 keep-alive connections in a closed loop.
//!
//! Each worker owns one connection and sends its next request as soon as the previous answer
//! is read, so concurrency is exactly the connection count and latency is measured per
//! request into an HDR histogram (microseconds, 3 significant digits). A run stops after a
//! duration or a request count, whichever the plan says; both are bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::zipf::Rng;

/// One request to send.
pub struct Req {
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
}

impl Req {
    /// A plain `GET path`.
    pub fn get(path: String) -> Req {
        Req {
            method: http::Method::GET,
            path,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// Builds the next request of a worker from its own generator.
pub type MakeReq = Arc<dyn Fn(&mut Rng) -> Req + Send + Sync>;

/// Longest any run lasts, whatever its plan: keeps the whole benchmark bounded on a slow
/// machine (the report states the requests actually sent).
pub const MAX_RUN: Duration = Duration::from_secs(240);

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long (requests in flight finish).
    After(Duration),
    /// After this many requests in total (or [`MAX_RUN`]).
    Requests(u64),
}

/// What to run.
pub struct Plan {
    /// `127.0.0.1:PORT` of the server.
    pub authority: String,
    /// Connections, one per worker.
    pub connections: usize,
    /// When to stop.
    pub stop: Stop,
    /// The requests.
    pub make: MakeReq,
    /// Seed of the workers' generators.
    pub seed: u64,
}

/// What a run measured.
pub struct Outcome {
    /// Latency of every answered request, in microseconds.
    pub hist: Histogram<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers by `X-Cache` value (`HIT`, `MISS`, `STALE`, `NEGATIVE`; absent: not counted).
    pub cache: BTreeMap<String, u64>,
}

impl Outcome {
    /// Answered requests.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Answers outside 2xx/3xx.
    pub fn failures(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !(200..400).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Percentile `q` (0..=100) in milliseconds.
    pub fn pct_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q / 100.0) as f64 / 1000.0
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Answers with `X-Cache: tag`.
    pub fn cache_count(&self, tag: &str) -> u64 {
        self.cache.get(tag).copied().unwrap_or(0)
    }

    /// Adds `other`'s answers to this run's, as if both were one run.
    pub fn absorb(&mut self, other: &Outcome) -> Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow!("histogram: {e}"))?;
        self.elapsed += other.elapsed;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        for (tag, n) in &other.cache {
            *self.cache.entry(tag.clone()).or_default() += n;
        }
        Ok(())
    }
}

/// Most failed connects or sends one worker tolerates before the run fails.
const MAX_TRANSPORT_ERRORS: u32 = 20;
/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An empty latency histogram (microseconds, 3 significant digits).
pub fn new_hist() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connect {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

struct Shared {
    plan_stop: Stop,
    started: Instant,
    issued: AtomicU64,
}

impl Shared {
    /// Claims the next request slot; false when the run is over.
    fn claim(&self) -> bool {
        match self.plan_stop {
            Stop::After(d) => self.started.elapsed() < d,
            Stop::Requests(n) => {
                self.started.elapsed() < MAX_RUN && self.issued.fetch_add(1, Ordering::Relaxed) < n
            }
        }
    }
}

struct WorkerOut {
    hist: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    cache: BTreeMap<String, u64>,
}

async fn worker(
    authority: String,
    make: MakeReq,
    shared: Arc<Shared>,
    mut rng: Rng,
) -> Result<WorkerOut> {
    let mut out = WorkerOut {
        hist: new_hist()?,
        statuses: BTreeMap::new(),
        cache: BTreeMap::new(),
    };
    let mut errors = 0u32;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while shared.claim() {
        let conn = match sender.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(&authority).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    errors += 1;
                    if errors > MAX_TRANSPORT_ERRORS {
                        return Err(e);
                    }
                    continue;
                }
            },
        };
        conn.ready().await.ok();
        let r = make(&mut rng);
        let mut b = http::Request::builder()
            .method(r.method)
            .uri(&r.path)
            .header("host", &authority);
        for (k, v) in &r.headers {
            b = b.header(*k, v);
        }
        let req = b.body(Full::new(r.body))?;
        let start = Instant::now();
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = conn.send_request(req).await?;
            let status = resp.status().as_u16();
            let cache = resp
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>((status, cache))
        })
        .await;
        match sent {
            Ok(Ok((status, cache))) => {
                let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                out.hist.saturating_record(us.max(1));
                *out.statuses.entry(status).or_default() += 1;
                if let Some(c) = cache {
                    *out.cache.entry(c).or_default() += 1;
                }
            }
            Ok(Err(_)) | Err(_) => {
                sender = None;
                errors += 1;
                if errors > MAX_TRANSPORT_ERRORS {
                    bail!("too many transport errors talking to {authority}");
                }
            }
        }
    }
    Ok(out)
}

/// Runs `plan` and merges the workers' measurements.
pub async fn run(plan: Plan) -> Result<Outcome> {
    let shared = Arc::new(Shared {
        plan_stop: plan.stop,
        started: Instant::now(),
        issued: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(plan.connections);
    for i in 0..plan.connections.max(1) {
        tasks.push(tokio::spawn(worker(
            plan.authority.clone(),
            plan.make.clone(),
            shared.clone(),
            Rng::new(plan.seed.wrapping_add(i as u64 * 7919)),
        )));
    }
    let mut hist = new_hist()?;
    let mut statuses = BTreeMap::new();
    let mut cache = BTreeMap::new();
    for t in tasks {
        let w = t.await.context("load worker panicked")??;
        hist.add(&w.hist)
            .map_err(|e| anyhow!("histogram merge: {e}"))?;
        for (k, v) in w.statuses {
            *statuses.entry(k).or_default() += v;
        }
        for (k, v) in w.cache {
            *cache.entry(k).or_default() += v;
        }
    }
    Ok(Outcome {
        hist,
        elapsed: shared.started.elapsed(),
        statuses,
        cache,
    })
}

/// `127.0.0.1:PORT` of `http://127.0.0.1:PORT`.
pub fn authority(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Percentile `q` (0..=100), in milliseconds, of several runs' latencies taken together.
pub fn merged_pct_ms(runs: &[Outcome], q: f64) -> f64 {
    let Some((first, rest)) = runs.split_first() else {
        return 0.0;
    };
    let mut all = first.hist.clone();
    for r in rest {
        // Same bounds and precision for every run's histogram: adding cannot fail.
        let _ = all.add(&r.hist);
    }
    all.value_at_quantile(q / 100.0) as f64 / 1000.0
}
