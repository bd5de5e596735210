//! A host process killed (SIGKILL) in the middle of flushes loses nothing and applies nothing
//! twice, over many kills at different moments.
//!
//! This runs the real host binary (`cache-sync-host`, rebuilt first if stale) on one state
//! directory, with the flush on an every-second cron schedule. Each round starts the host,
//! buffers new writes, and kills the process after a varying delay against a slow DB API
//! that sometimes loses its answers — so kills land before sealing, while a batch is in
//! flight, and after the DB API committed but before the answer was settled. At the end
//! one more process runs until the buffer is empty. Every write has its own key, so "exactly once"
//! is checkable from the DB API's counters: each write applied once, none answered `stale`
//! (a write delivered in two different batches would be).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::flush_support::*;
use crate::support::*;

const ROUNDS: u64 = 10;
const WRITES_PER_ROUND: u64 = 6;

/// Builds the host binary (a no-op when it is fresh) and returns its path.
fn host_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args(["build", "-q", "-j1", "-p", "cache-sync-host"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building cache-sync-host failed");
    let path = repo_root().join("target/debug/cache-sync-host");
    assert!(path.exists(), "{} is missing", path.display());
    path
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
    try_send("GET", url, &[], Duration::from_secs(2))
        .await
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

async fn buffer_via(host: &Host, key: &str, value: Value, millis: u64) {
    let stamp = stamp(millis);
    let record = json!({"v": 1, "ns": "kill", "key": key, "op": "put", "value": value,
        "stamp": stamp, "written_at": millis});
    let r = send(
        "PUT",
        &host.url(&format!("/probe/kv/default/w:{stamp}")),
        &[],
        &record.to_string(),
    )
    .await;
    assert!(r.status < 300, "{} {}", r.status, r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_flushes_loses_and_duplicates_nothing() {
    let bin = host_binary();
    let db = Db::start().await;
    let dir = TempDir::new("flush-kill");
    let manifest = write_manifest(dir.path(), &manifest_with(Some("* * * * * *"), false));
    let state = dir.path().join("state");
    let mut vars = flags(&db.url());
    // Small batches so a flush spans several sends; a short lease so a killed owner's lease
    // expires between rounds.
    set(&mut vars, "flush_batch_max_items", "2");
    set(&mut vars, "lease_ttl", "1s");
    set(&mut vars, "flush_timeout", "2s");
    // Every batch takes 150 ms; some answers are lost after the commit.
    db.faults(json!({"batch_latency_ms": 150, "garbage_after_commit": {"rate": 0.3}, "seed": 7}));

    let base = now_ms();
    let mut written = 0u64;
    for round in 0..ROUNDS {
        let host = Host::start(&bin, &manifest, &state, &vars).await;
        for i in 0..WRITES_PER_ROUND {
            let n = round * WRITES_PER_ROUND + i;
            buffer_via(&host, &format!("k{n:03}"), json!({"n": n}), base + n).await;
            written += 1;
        }
        // Kill at a different moment each round, relative to the second-boundary ticks.
        pause(300 + round * 137 % 900).await;
        host.kill();
    }
    let sent_before_recovery = db.stats().batch_requests;

    // Recovery: a healthy DB API; the last killed owner's lease expires; ticks drain the buffer.
    db.faults(json!({}));
    let host = Host::start(&bin, &manifest, &state, &vars).await;
    let drained = eventually(Duration::from_secs(20), async || {
        keys_via(&host, "w:").await == Some(0) && keys_via(&host, "b:").await == Some(0)
    })
    .await;
    assert!(drained, "the buffer never drained");
    assert!(
        sent_before_recovery > 0,
        "some flushes ran before the kills"
    );
    let s = db.stats();
    assert_eq!(
        s.writes_applied, written,
        "every write applied exactly once: {s:?}"
    );
    assert_eq!(
        s.writes_stale, 0,
        "no write delivered in two different batches: {s:?}"
    );
    for n in 0..written {
        assert_eq!(
            db.item("kill", &format!("k{n:03}")).await,
            Some(json!({"n": n})),
            "k{n:03}"
        );
    }
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
