//! The acknowledged-write ledger: every write the reliability tests send, with what the
//! gateway answered, and the check of the DB API's end state against it.
//!
//! A write is *acknowledged* when the gateway answered `202` with its stamp (the `ETag`
//! `"w{stamp}"`), or, passed through by the rollout, `200` with the DB API's version (the
//! `ETag` `"v{version}"`: applied before the answer); *refused* when it answered anything
//! else (e.g. `503` backpressure or `409 writes_pending`: the client knows to retry);
//! *unknown* when no answer came (the host was killed mid-request), or when the gateway
//! answered `502`/`504`: a passed-through write whose answer the DB API did not complete
//! may have been applied, as the error says (a buffered `PUT` or `DELETE` never answers
//! either). Once everything is
//! flushed, the DB API must hold, for every key, the last-writer-wins winner among the
//! acknowledged writes (highest version: a stamp's, or the one the DB API gave a
//! passed-through write, both ordered by time), unless an unknown write of that key landed
//! later, and no write may have reached it in two different batches (the DB API's
//! delivery journal counts those). Values are unique per write, so "which write is stored"
//! is always answerable.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cache_core::stamp::Stamp;
use serde_json::Value;

use crate::support::{try_send, Db};

/// What the gateway said about one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `202` with this stamp.
    Acked(Stamp),
    /// `200` from a write the rollout passed through: the DB API applied it at this version.
    Applied(u64),
    /// Any other status: the client was told it did not happen.
    Refused(u16),
    /// No answer.
    Unknown,
}

impl Outcome {
    /// The version an acknowledged write has at the DB API; `None` if it was not acknowledged.
    pub fn version(&self) -> Option<u64> {
        match self {
            Outcome::Acked(stamp) => Some(stamp.version()),
            Outcome::Applied(version) => Some(*version),
            Outcome::Refused(_) | Outcome::Unknown => None,
        }
    }
}

/// One write as sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub ns: String,
    pub key: String,
    /// The value of a put; `None` for a delete.
    pub value: Option<Value>,
    pub outcome: Outcome,
}

/// Counts over the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub acked: u64,
    /// Writes passed through and applied before their answer.
    pub applied: u64,
    pub refused: u64,
    pub unknown: u64,
    /// Refusals that were `503` (backpressure or an unavailable store).
    pub refused_503: u64,
}

/// The end-state check.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Keys with at least one acknowledged write.
    pub keys: usize,
    pub tally: Tally,
    /// Keys whose acknowledged winner is not what the DB API holds, with what was found.
    pub lost: Vec<String>,
    /// Writes the DB API received in two batches with different ids: none where the store
    /// has compare-and-swap (the embedded host, local Spin), whose sealing registry makes a
    /// write sealable by one flush run only.
    pub redelivered: u64,
    /// Writes the DB API applied twice: none anywhere, its per-write idempotency answering a
    /// repeated write id `duplicate`.
    pub applied_twice: u64,
}

impl Verdict {
    /// Fails the test loudly, naming every lost key, unless nothing was lost or duplicated.
    pub fn assert_clean(&self, scenario: &str) {
        assert!(
            self.lost.is_empty() && self.redelivered == 0 && self.applied_twice == 0,
            "{scenario}: {} of {} keys lost their acknowledged winner, {} writes sent in two \
             batches, {} applied twice ({:?}):\n{}",
            self.lost.len(),
            self.keys,
            self.redelivered,
            self.applied_twice,
            self.tally,
            self.lost.join("\n")
        );
        assert!(
            self.tally.acked + self.tally.applied > 0,
            "{scenario}: no write was acknowledged"
        );
    }

    /// One line for the test log, in the README table's terms.
    pub fn line(&self, scenario: &str, iterations: &str) -> String {
        format!(
            "{scenario}: {iterations}, acknowledged {} (passed through {}), refused {} (503: {}), \
             unknown {}, keys {}, lost {}, sent in two batches {}, applied twice {}",
            self.tally.acked + self.tally.applied,
            self.tally.applied,
            self.tally.refused,
            self.tally.refused_503,
            self.tally.unknown,
            self.keys,
            self.lost.len(),
            self.redelivered,
            self.applied_twice
        )
    }
}

/// Every write of one test run.
#[derive(Debug, Default)]
pub struct Ledger {
    sent: Mutex<Vec<Sent>>,
}

impl Ledger {
    fn push(&self, sent: Sent) {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sent);
    }

    /// All writes so far.
    pub fn writes(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `PUT {base}/v1/{ns}/{key}` with `value`; records and returns the outcome.
    pub async fn put(&self, base: &str, ns: &str, key: &str, value: Value) -> Outcome {
        let outcome = write(base, "PUT", ns, key, Some(&value)).await;
        self.push(Sent {
            ns: ns.into(),
            key: key.into(),
            value: Some(value),
            outcome: outcome.clone(),
        });
        outcome
    }

    /// `DELETE {base}/v1/{ns}/{key}`; records and returns the outcome.
    pub async fn delete(&self, base: &str, ns: &str, key: &str) -> Outcome {
        let outcome = write(base, "DELETE", ns, key, None).await;
        self.push(Sent {
            ns: ns.into(),
            key: key.into(),
            value: None,
            outcome: outcome.clone(),
        });
        outcome
    }

    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for s in self.sent.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            t.sent += 1;
            match s.outcome {
                Outcome::Acked(_) => t.acked += 1,
                Outcome::Applied(_) => t.applied += 1,
                Outcome::Refused(status) => {
                    t.refused += 1;
                    t.refused_503 += u64::from(status == 503);
                }
                Outcome::Unknown => t.unknown += 1,
            }
        }
        t
    }

    /// Checks the DB API's end state against the ledger, skipping `except` keys
    /// (`ns/key`: keys the scenario expects to be dead-lettered).
    pub async fn verify(&self, db: &Db, except: &[&str]) -> Verdict {
        let sent = self.writes();
        let mut by_key: BTreeMap<(String, String), Vec<&Sent>> = BTreeMap::new();
        for s in &sent {
            by_key
                .entry((s.ns.clone(), s.key.clone()))
                .or_default()
                .push(s);
        }
        let mut verdict = Verdict {
            tally: self.tally(),
            redelivered: db.stats().writes_redelivered,
            applied_twice: db.stats().writes_applied_twice,
            ..Verdict::default()
        };
        for ((ns, key), writes) in by_key {
            if except.contains(&format!("{ns}/{key}").as_str()) {
                continue;
            }
            let Some(winner) = writes.iter().filter_map(|s| s.outcome.version()).max() else {
                continue;
            };
            verdict.keys += 1;
            let stored = db
                .state
                .backend
                .get_item(&ns, &key)
                .await
                .expect("DB API backend answers");
            let stored_value: Option<Option<Value>> = stored.as_ref().map(|i| {
                i.value
                    .as_deref()
                    .map(|t| serde_json::from_str(t).expect("stored JSON"))
            });
            // Writes whose version equals the winner's: the DB API cannot order them (see
            // `cache_core::stamp`), so any of them is a correct end state.
            let ties = writes
                .iter()
                .filter(|s| s.outcome.version() == Some(winner));
            let unknown = writes.iter().filter(|s| s.outcome == Outcome::Unknown);
            let explained = match &stored_value {
                None => false,
                Some(v) => ties.chain(unknown).any(|s| s.value.as_ref() == v.as_ref()),
            };
            let version_ok = stored.as_ref().is_some_and(|i| i.version >= winner);
            if !(explained && version_ok) {
                let expected = writes
                    .iter()
                    .find(|s| s.outcome.version() == Some(winner))
                    .map(|s| (s.value.clone(), s.outcome.clone()));
                verdict.lost.push(format!(
                    "  {ns}/{key}: expected {expected:?} (version {winner}), DB API holds \
                     {stored_value:?} (version {:?})",
                    stored.as_ref().map(|i| i.version)
                ));
            }
        }
        verdict
    }
}

/// Distinct refusals printed so far (the first few only), to tell why writes were refused.
static REFUSALS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Sends one write; `Unknown` when there is no complete answer within 10 s.
async fn write(base: &str, method: &str, ns: &str, key: &str, value: Option<&Value>) -> Outcome {
    let body = value.map(|v| v.to_string()).unwrap_or_default();
    let Some(r) = try_send(
        method,
        &format!("{base}/v1/{ns}/{key}"),
        &[("content-type", "application/json")],
        &body,
        Duration::from_secs(10),
    )
    .await
    else {
        return Outcome::Unknown;
    };
    let etag = r.headers.get("etag").and_then(|v| v.to_str().ok());
    if r.status == 200 {
        let version = etag.and_then(cache_core::contract::version_from_etag);
        match version {
            Some(version) => return Outcome::Applied(version),
            None => panic!("a passed-through 200 without a version ETag: {etag:?}"),
        }
    }
    if matches!(r.status, 502 | 504) {
        return Outcome::Unknown;
    }
    if r.status != 202 {
        let text = format!("{} {}", r.status, r.body);
        let mut seen = REFUSALS.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains(&text) && seen.len() < 20 {
            eprintln!("refused: {text}");
            seen.push(text);
        }
        return Outcome::Refused(r.status);
    }
    let stamp = etag
        .and_then(|e| e.strip_prefix("\"w"))
        .and_then(|e| e.strip_suffix('"'))
        .and_then(|s| Stamp::parse(s).ok());
    match stamp {
        Some(stamp) => Outcome::Acked(stamp),
        None => panic!("a 202 without a stamp ETag: {etag:?}"),
    }
}
