//! The reliability workload: writers and readers on hot keys through one or more gateways,
//! flushes from the cron trigger and the admin route at once, then a drain and the ledger's
//! verdict.
//!
//! Every value names its key, its writer and the writer's sequence number, so a reader can
//! tell a wrong value (another key's, or one nobody sent) from a legitimately old one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::flush_support::ADMIN;
use crate::ledger::Ledger;
use crate::support::*;

/// What to run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The namespace of every key.
    pub ns: &'static str,
    /// Concurrent writers (spread over the gateways round-robin).
    pub writers: u64,
    /// Concurrent readers.
    pub readers: u64,
    /// Keys `k0..k{keys}`.
    pub keys: u64,
    /// Every `delete_every`-th write of a writer is a delete (0: never).
    pub delete_every: u64,
    /// How long writers write.
    pub duration: Duration,
    /// Pause between two writes of one writer.
    pub pace: Duration,
    /// Also call `POST /admin/flush` on every gateway this often (`None`: cron only).
    pub admin_flush_every: Option<Duration>,
    /// Concurrent admin flush callers per gateway (beside its cron flush).
    pub admin_flushers: usize,
}

impl Workload {
    /// 8 writers and 4 readers on 10 hot keys.
    pub fn hot(ns: &'static str, duration: Duration) -> Workload {
        Workload {
            ns,
            writers: 8,
            readers: 4,
            keys: 10,
            delete_every: 9,
            duration,
            pace: Duration::from_millis(5),
            admin_flush_every: Some(Duration::from_millis(400)),
            admin_flushers: 1,
        }
    }
}

/// Busy threads competing with the hosts for the CPU while a scenario runs, as on a loaded
/// production host: flush runs then stall at arbitrary points, which is how overlapping runs
/// happen. The threads stop when this is dropped, and after `limit` at the latest.
pub struct CpuPressure {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuPressure {
    /// One busy thread per core.
    pub fn start(limit: Duration) -> CpuPressure {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let until = std::time::Instant::now() + limit;
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                        for _ in 0..100_000 {
                            x = next(&mut x);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        CpuPressure { stop, threads }
    }
}

impl Drop for CpuPressure {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the readers saw.
#[derive(Debug, Default)]
pub struct Reads {
    pub ok: AtomicU64,
    pub other: AtomicU64,
    /// Descriptions of wrong values served (must stay empty).
    pub wrong: std::sync::Mutex<Vec<String>>,
}

/// Runs `w` against `bases` (gateway base URLs) until its duration passes; returns what the
/// readers saw. Writes are recorded in `ledger`.
pub async fn run(w: &Workload, bases: &[String], ledger: &Arc<Ledger>) -> Arc<Reads> {
    let stop = Arc::new(AtomicBool::new(false));
    // issued[w] = how many values writer w has started to send: a reader may see any of them.
    let issued: Arc<Vec<AtomicU64>> = Arc::new((0..w.writers).map(|_| AtomicU64::new(0)).collect());
    let reads = Arc::new(Reads::default());
    let mut tasks = Vec::new();
    for writer in 0..w.writers {
        let base = bases[(writer as usize) % bases.len()].clone();
        let (ledger, stop, issued, w) = (ledger.clone(), stop.clone(), issued.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (writer + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = next(&mut rng) % w.keys;
                let key = format!("k{k}");
                issued[writer as usize].store(n + 1, Ordering::SeqCst);
                if w.delete_every > 0 && n % w.delete_every == w.delete_every - 1 {
                    ledger.delete(&base, w.ns, &key).await;
                } else {
                    let value = json!({"k": key, "w": writer, "n": n});
                    ledger.put(&base, w.ns, &key, value).await;
                }
                n += 1;
                tokio::time::sleep(w.pace).await;
            }
        }));
    }
    for reader in 0..w.readers {
        let base = bases[(reader as usize) % bases.len()].clone();
        let (stop, issued, reads, w) = (stop.clone(), issued.clone(), reads.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = 0xD1B5_4A32_D192_ED03u64 ^ (reader + 1);
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{}", next(&mut rng) % w.keys);
                let url = format!("{base}/v1/{}/{key}", w.ns);
                let Some(r) = try_send("GET", &url, &[], "", Duration::from_secs(10)).await else {
                    reads.other.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if r.status == 200 {
                    reads.ok.fetch_add(1, Ordering::Relaxed);
                    if let Some(why) = wrong_value(&r.body, &key, w.writers, &issued) {
                        reads
                            .wrong
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!("{}: {why}", r.body));
                    }
                } else {
                    reads.other.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    if let Some(every) = w.admin_flush_every {
        for base in bases
            .iter()
            .flat_map(|b| std::iter::repeat_n(b, w.admin_flushers))
        {
            let (base, stop) = (base.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = try_send(
                        "POST",
                        &format!("{base}/admin/flush"),
                        &[("authorization", &format!("Bearer {ADMIN}"))],
                        "",
                        Duration::from_secs(30),
                    )
                    .await;
                    if let Some(r) = r {
                        assert!(r.status < 500 || r.status == 503, "admin flush: {r:?}");
                    }
                    tokio::time::sleep(every).await;
                }
            }));
        }
    }
    tokio::time::sleep(w.duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("workload task");
    }
    let wrong = reads
        .wrong
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(
        wrong.is_empty(),
        "wrong values served:\n{}",
        wrong.join("\n")
    );
    reads
}

/// Why `body` cannot be a value of `key` (`None`: it can).
fn wrong_value(body: &str, key: &str, writers: u64, issued: &[AtomicU64]) -> Option<String> {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("not JSON: {e}")),
    };
    if v["k"] != key {
        return Some(format!("a value of another key (asked {key})"));
    }
    let (Some(w), Some(n)) = (v["w"].as_u64(), v["n"].as_u64()) else {
        return Some("not a value any writer sends".into());
    };
    if w >= writers || n >= issued[w as usize].load(Ordering::SeqCst) {
        return Some(format!("writer {w} never sent #{n}"));
    }
    None
}

/// SplitMix64 step: deterministic choices (keys, kill moments) from a seed.
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Flushes through `base`'s admin route until no buffer record and no sealed batch is left;
/// fails the test after `limit`.
pub async fn drain(base: &str, limit: Duration) {
    let keys_url = format!("{base}/probe/keys/default");
    let drained = eventually(limit, async || {
        let _ = try_send(
            "POST",
            &format!("{base}/admin/flush"),
            &[("authorization", &format!("Bearer {ADMIN}"))],
            "",
            Duration::from_secs(30),
        )
        .await;
        let Some(r) = try_send("GET", &keys_url, &[], "", Duration::from_secs(10)).await else {
            return false;
        };
        let keys: Vec<String> = serde_json::from_str(&r.body).unwrap_or_default();
        !keys
            .iter()
            .any(|k| k.starts_with("w:") || k.starts_with("b:"))
    })
    .await;
    assert!(drained, "the buffer did not drain within {limit:?}");
}

/// Dead letters listed by `base`'s admin route.
pub async fn dead_letters(base: &str) -> Vec<Value> {
    let r = send(
        "GET",
        &format!("{base}/admin/dlq"),
        &[("authorization", &format!("Bearer {ADMIN}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let body: Value = serde_json::from_str(&r.body).expect("DLQ listing is JSON");
    body["dead_letters"]
        .as_array()
        .cloned()
        .expect("a dead_letters list")
}

/// The soak factor: `CACHE_SYNC_SOAK` (default 1) multiplies durations and iterations, for
/// the long runs of `cargo xtask soak`.
pub fn soak_factor() -> u64 {
    std::env::var("CACHE_SYNC_SOAK")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&f| f >= 1)
        .unwrap_or(1)
}

/// `d` times the soak factor.
pub fn soak(d: Duration) -> Duration {
    d * u32::try_from(soak_factor()).unwrap_or(u32::MAX)
}

/// Prints the scenario's row of the README's reliability table (collected by
/// `cargo xtask soak`) and a readable line.
/// `iterations` says how long or how often the scenario ran (e.g. "6 s of load", "50 kills").
pub fn report(scenario: &str, iterations: &str, v: &crate::ledger::Verdict) {
    eprintln!("{}", v.line(scenario, iterations));
    eprintln!(
        "RELIABILITY-ROW | {scenario} | {iterations} | {} | {} | {} | {} | {} |",
        v.tally.acked + v.tally.applied,
        v.tally.refused + v.tally.unknown,
        v.lost.len(),
        v.redelivered,
        v.applied_twice
    );
}
