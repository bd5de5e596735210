//! Scenario 3: the host process killed (SIGKILL) at random points during flushes, 50 times,
//! restarted each time on the same state directory, loses no acknowledged write and delivers
//! none twice.
//!
//! This runs the host program (`test-host`, the host's command line) with the flush on an
//! every-second cron schedule. Each round starts the host, lets two writers write through
//! the gateway (hot keys and fresh keys), and kills the process after a varying delay,
//! against a slow DB API that sometimes loses its answers, so kills land before sealing,
//! while a batch is in flight, after the DB API committed but before the answer was settled,
//! and in the middle of a gateway write. At the end one more process runs until the buffer
//! is empty, and the ledger checks the DB API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::flush_support::*;
use crate::ledger::Ledger;
use crate::reliability_support::*;
use crate::support::*;

/// Kill rounds (times the soak factor).
const ROUNDS: u64 = 50;

/// The host program, built by cargo with the tests (`tests/bin/test_host.rs`).
fn host_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_test-host"))
}

/// A host process serving `manifest` on a free loopback port.
struct Host {
    child: Child,
    base: String,
}

impl Host {
    async fn start(bin: &Path, manifest: &Path, state: &Path, vars: &[(String, String)]) -> Host {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut cmd = Command::new(bin);
        cmd.arg("--from")
            .arg(manifest)
            .arg("--state-dir")
            .arg(state)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in vars {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        let child = cmd.spawn().expect("host starts");
        let base = format!("http://127.0.0.1:{port}");
        let probe = format!("{base}/probe/keys/default");
        let up = eventually(Duration::from_secs(20), async || {
            try_get(&probe).await.is_some()
        })
        .await;
        assert!(up, "the host did not come up on {base}");
        Host { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, and reap.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET that tolerates a host that is not up (yet) or was just killed.
async fn try_get(url: &str) -> Option<String> {
    try_send("GET", url, &[], "", Duration::from_secs(2))
        .await
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

/// Two writers through the gateway at `base` until `stop`: writer 0 on 6 hot keys, writer
/// 1 on a fresh key per write. Each write is recorded in `ledger`.
fn writers(
    base: String,
    round: u64,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2u64)
        .map(|writer| {
            let (base, ledger, stop) = (base.clone(), ledger.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = if writer == 0 {
                        format!("hot{}", (round + n) % 6)
                    } else {
                        format!("r{round:03}n{n:03}")
                    };
                    let value = json!({"k": key, "round": round, "w": writer, "n": n});
                    ledger.put(&base, "kill", &key, value).await;
                    n += 1;
                    let pace = if writer == 0 { 15 } else { 60 };
                    tokio::time::sleep(Duration::from_millis(pace)).await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_flushes_loses_and_duplicates_nothing() {
    let bin = host_binary();
    let db = Db::start().await;
    let dir = TempDir::new("rel-kill");
    let manifest = write_manifest(dir.path(), &manifest(Some("* * * * * *")));
    let state = dir.path().join("state");
    let mut vars = flags(&db.url());
    // Batches small enough that a flush spans several sends; a short lease so a killed
    // owner's lease expires between rounds; room for the writes of a few rounds.
    set(&mut vars, "flush_batch_max_items", "16");
    set(&mut vars, "max_buffered_writes", "3000");
    set(&mut vars, "lease_ttl", "1s");
    set(&mut vars, "flush_timeout", "2s");
    // Every batch takes 150 ms; some answers are lost after the commit.
    db.faults(json!({"batch_latency_ms": 150, "garbage_after_commit": {"rate": 0.3}, "seed": 7}));

    let ledger = Arc::new(Ledger::default());
    let rounds = ROUNDS * soak_factor();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..rounds {
        let host = Host::start(&bin, &manifest, &state, &vars).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = writers(host.url(""), round, ledger.clone(), stop.clone());
        // Kill at a random moment relative to the second-boundary cron ticks.
        pause(200 + next(&mut rng) % 1300).await;
        stop.store(true, Ordering::SeqCst);
        host.kill();
        for t in tasks {
            t.await.expect("writer");
        }
    }
    let sent_before_recovery = db.stats().batch_requests;

    // Recovery: a healthy DB API; the last killed owner's lease expires; flushes drain it.
    db.faults(json!({}));
    let host = Host::start(&bin, &manifest, &state, &vars).await;
    drain(&host.url(""), Duration::from_secs(60)).await;
    assert!(
        sent_before_recovery > 0,
        "some flushes ran before the kills"
    );
    let verdict = ledger.verify(&db, &[]).await;
    report(
        "host SIGKILLed at random points, restarted",
        &format!("{rounds} kills"),
        &verdict,
    );
    verdict.assert_clean("kill");
    assert!(
        ledger.tally().acked > rounds * 10,
        "writes went through in every round: {:?}",
        ledger.tally()
    );
    assert_eq!(
        keys_via(&host, "d:").await,
        Some(0),
        "nothing dead-lettered"
    );
}

/// How many keys start with `prefix`; `None` when the host does not answer.
async fn keys_via(host: &Host, prefix: &str) -> Option<usize> {
    let body = try_get(&host.url("/probe/keys/default")).await?;
    let keys: Vec<String> = serde_json::from_str(&body).ok()?;
    Some(keys.iter().filter(|k| k.starts_with(prefix)).count())
}
