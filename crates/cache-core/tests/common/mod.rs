//! Shared test fixtures: a scripted, idempotent fake DB API, a scripted fake item endpoint
//! (`Origin`), a clock that moves only when slept on, and a small world around a
//! `MemoryStore` that runs flushes, ticks and requests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cache_core::config::CacheConfig;
use cache_core::contract::{
    BatchRequest, BatchResponse, ItemResult, ItemStatus, WriteOp, FORBIDDEN_REASON,
};
use cache_core::db::{DbApi, SendError};
use cache_core::delivery::flush::{self, FlushReport};
use cache_core::delivery::tick::{self, TickError, TickReport};
use cache_core::entry::Entry;
use cache_core::envelope;
use cache_core::key::CacheKey;
use cache_core::record::BufferedWrite;
use cache_core::rollout::change;
use cache_core::rollout::compare::Verdict;
use cache_core::rollout::state::RolloutState;
use cache_core::serve::origin::{
    AuthorizeCall, ItemAnswer, ItemRead, ItemWrite, Origin, Unanswered,
};
use cache_core::serve::prepare::{prepare_write, Change, EntryUpdate};
use cache_core::serve::{self, CacheStatus, GetRequest, Op, Outcome, RequestError, WriteRequest};
use cache_core::stamp::{Stamp, StampGen};
use cache_core::store::{KvStore, MemoryStore};
use cache_core::time::UnixMillis;
use serde_json::Value;

/// What the fake does with the next batch.
#[derive(Debug, Clone)]
pub enum Step {
    /// Process it and answer.
    Answer,
    /// Fail without processing it (network error before the DB saw it).
    Fail(SendError),
    /// Process it, then fail (the answer is lost).
    ProcessThenFail(SendError),
    /// Answer with these results instead, without processing.
    Garbage(Vec<ItemResult>),
}

/// An in-memory DB API: last writer wins by version, idempotent by batch id.
#[derive(Debug, Default)]
pub struct FakeDb {
    pub items: BTreeMap<(String, String), (u64, Option<Value>)>,
    pub answers: BTreeMap<String, BatchResponse>,
    pub script: VecDeque<Step>,
    pub sent: Vec<BatchRequest>,
    pub applications: usize,
    pub poison: BTreeSet<String>,
    /// Principals whose writes are now refused (`rejected: forbidden`).
    pub revoked: BTreeSet<String>,
    /// Write ids seen in first-seen batches, and how often each was processed without being
    /// caught as a duplicate.
    pub processed: BTreeMap<String, usize>,
    /// Answer a write id seen before `duplicate` (the contract's per-write idempotency).
    pub forget_write_ids: bool,
}

impl FakeDb {
    pub fn value(&self, key: &str) -> Option<Value> {
        self.items
            .get(&("ns".to_owned(), key.to_owned()))
            .and_then(|(_, v)| v.clone())
    }

    /// Writes processed more than once: a database without a version guard would have
    /// applied them twice.
    pub fn applied_twice(&self) -> usize {
        self.processed.values().filter(|n| **n > 1).count()
    }

    fn process(&mut self, batch: &BatchRequest) -> BatchResponse {
        if let Some(answer) = self.answers.get(&batch.batch_id) {
            return answer.clone();
        }
        let results = batch
            .writes
            .iter()
            .map(|w| {
                let seen = self.processed.contains_key(&w.write_id);
                if seen && !self.forget_write_ids {
                    return ItemResult {
                        status: ItemStatus::Duplicate,
                        reason: None,
                    };
                }
                if w.on_behalf_of
                    .as_ref()
                    .is_some_and(|p| self.revoked.contains(p))
                {
                    return ItemResult {
                        status: ItemStatus::Rejected,
                        reason: Some(FORBIDDEN_REASON.into()),
                    };
                }
                if self.poison.contains(&w.key) {
                    return ItemResult {
                        status: ItemStatus::Rejected,
                        reason: Some("poison".into()),
                    };
                }
                *self.processed.entry(w.write_id.clone()).or_default() += 1;
                let id = (w.ns.clone(), w.key.clone());
                let current = self.items.get(&id).map_or(0, |(v, _)| *v);
                if w.version <= current {
                    return ItemResult {
                        status: ItemStatus::Stale,
                        reason: None,
                    };
                }
                let value = match w.op {
                    WriteOp::Put => w.value.clone(),
                    WriteOp::Delete => None,
                };
                self.items.insert(id, (w.version, value));
                self.applications += 1;
                ItemResult {
                    status: ItemStatus::Applied,
                    reason: None,
                }
            })
            .collect();
        let answer = BatchResponse { results };
        self.answers.insert(batch.batch_id.clone(), answer.clone());
        answer
    }
}

impl DbApi for FakeDb {
    fn send_batch(&mut self, batch: &BatchRequest) -> Result<BatchResponse, SendError> {
        self.sent.push(batch.clone());
        match self.script.pop_front().unwrap_or(Step::Answer) {
            Step::Answer => Ok(self.process(batch)),
            Step::Fail(e) => Err(e),
            Step::ProcessThenFail(e) => {
                self.process(batch);
                Err(e)
            }
            Step::Garbage(results) => Ok(BatchResponse { results }),
        }
    }
}

/// A scripted item endpoint: answers reads in order, and records them. Its authorization
/// endpoint answers from `authorize_script`, and when that is empty allows every call, naming
/// the bearer token's text (or `anonymous`) as the principal.
#[derive(Debug, Default)]
pub struct FakeOrigin {
    pub script: VecDeque<Result<ItemAnswer, Unanswered>>,
    pub reads: Vec<ItemRead>,
    pub authorize_script: VecDeque<Result<ItemAnswer, Unanswered>>,
    pub authorizations: Vec<AuthorizeCall>,
    /// Answers to passed-through item writes; when empty, `200` with a version.
    pub write_script: VecDeque<Result<ItemAnswer, Unanswered>>,
    pub writes: Vec<ItemWrite>,
    /// When set, reads the script does not answer are answered from here, as a DB would:
    /// the item's path to its version and JSON body, `404` when absent.
    pub items: Option<BTreeMap<String, (u64, String)>>,
}

impl FakeOrigin {
    /// Queues `200` with `body` and `etag`.
    pub fn found(&mut self, body: &str, etag: &str) {
        self.script.push_back(Ok(ItemAnswer {
            status: 200,
            etag: Some(etag.to_owned()),
            body: body.as_bytes().to_vec(),
            ..ItemAnswer::default()
        }));
    }

    /// Queues `200` with `body`, `etag` and `Cache-Control: {cache_control}`.
    pub fn found_cc(&mut self, body: &str, etag: &str, cache_control: &str) {
        self.script.push_back(Ok(ItemAnswer {
            status: 200,
            etag: Some(etag.to_owned()),
            cache_control: Some(cache_control.to_owned()),
            body: body.as_bytes().to_vec(),
            ..ItemAnswer::default()
        }));
    }

    /// Queues a refusal (`401`/`403`) with a `WWW-Authenticate` challenge.
    pub fn refuse(&mut self, status: u16) {
        self.script.push_back(Ok(refusal(status)));
    }

    /// Queues a bodiless answer with `status`.
    pub fn status(&mut self, status: u16) {
        self.script.push_back(Ok(ItemAnswer {
            status,
            ..ItemAnswer::default()
        }));
    }

    /// Queues no answer.
    pub fn unanswered(&mut self, why: Unanswered) {
        self.script.push_back(Err(why));
    }
}

impl Origin for FakeOrigin {
    fn get_item(&mut self, read: &ItemRead) -> Result<ItemAnswer, Unanswered> {
        self.reads.push(read.clone());
        if let Some(answer) = self.script.pop_front() {
            return answer;
        }
        let Some(items) = &self.items else {
            return Err(Unanswered::Failed("no scripted answer".into()));
        };
        Ok(match items.get(&read.path) {
            Some((version, body)) => ItemAnswer {
                status: 200,
                etag: Some(format!("\"v{version}\"")),
                body: body.as_bytes().to_vec(),
                ..ItemAnswer::default()
            },
            None => ItemAnswer {
                status: 404,
                ..ItemAnswer::default()
            },
        })
    }

    fn authorize(&mut self, call: &AuthorizeCall) -> Result<ItemAnswer, Unanswered> {
        self.authorizations.push(call.clone());
        self.authorize_script.pop_front().unwrap_or_else(|| {
            let principal = call
                .authorization
                .as_deref()
                .map_or("anonymous", |a| a.trim_start_matches("Bearer "));
            Ok(ItemAnswer {
                status: 200,
                body: serde_json::json!({ "principal": principal })
                    .to_string()
                    .into_bytes(),
                ..ItemAnswer::default()
            })
        })
    }

    /// Answers as the DB API's item route: a repeated `Idempotency-Key` gets the first
    /// write's answer, marked replayed.
    fn write_item(&mut self, write: &ItemWrite) -> Result<ItemAnswer, Unanswered> {
        let first = self
            .writes
            .iter()
            .position(|w| w.idempotency_key == write.idempotency_key);
        self.writes.push(write.clone());
        let version = first.map_or(self.writes.len(), |i| i + 1);
        self.write_script.pop_front().unwrap_or_else(|| {
            Ok(ItemAnswer {
                status: 200,
                etag: Some(format!("\"v{version}\"")),
                body: format!(r#"{{"version":{version}}}"#).into_bytes(),
                idempotent_replayed: first.is_some(),
                ..ItemAnswer::default()
            })
        })
    }
}

/// A `401`/`403` with a `WWW-Authenticate` challenge.
pub fn refusal(status: u16) -> ItemAnswer {
    ItemAnswer {
        status,
        www_authenticate: Some("Bearer realm=\"db\"".into()),
        body: br#"{"error":"refused"}"#.to_vec(),
        ..ItemAnswer::default()
    }
}

pub use cache_core::time::TestClock;

pub const T0: u64 = 1_700_000_000_000;

/// The rate key of the requests a [`World`] sends.
pub const CALLER: &str = "ip:192.0.2.1";

/// A store, a fake DB, a config and a clock that only moves when told.
pub struct World {
    pub store: MemoryStore,
    pub db: FakeDb,
    pub cfg: CacheConfig,
    pub now: UnixMillis,
    pub stamps: StampGen,
    pub runs: u64,
    pub origin: FakeOrigin,
    /// Random numbers handed to requests: one more per request.
    pub rand: u64,
}

impl World {
    pub fn new() -> World {
        World {
            store: MemoryStore::new(),
            db: FakeDb::default(),
            cfg: CacheConfig::with_db_api_url("http://db.test").unwrap(),
            now: UnixMillis(T0),
            stamps: StampGen::new(0xabcd),
            runs: 0,
            origin: FakeOrigin::default(),
            rand: 0x5000,
        }
    }

    pub fn advance_ms(&mut self, ms: u64) {
        self.now = UnixMillis(self.now.0 + ms);
    }

    pub fn key(name: &str) -> CacheKey {
        CacheKey::from_path("ns", name).unwrap()
    }

    /// A gateway write: record first, then the entry.
    pub fn write(&mut self, name: &str, value: Option<Value>) -> Stamp {
        let stamp = self.stamps.next(self.now);
        write_into(&mut self.store, name, value, stamp, self.now, &self.cfg);
        stamp
    }

    pub fn flush(&mut self) -> FlushReport {
        self.runs += 1;
        let owner = format!("run-{}", self.runs);
        flush::run(
            &mut self.store,
            &mut self.db,
            &mut TestClock::at(self.now),
            7,
            &owner,
            &self.cfg,
        )
    }

    /// One flush then one sweep, as cron and `POST /admin/flush` run them.
    pub fn tick(&mut self) -> Result<TickReport, TickError> {
        self.runs += 1;
        let owner = format!("tick-{}", self.runs);
        let mut clock = TestClock::at(self.now);
        tick::tick(
            &mut self.store,
            &mut self.db,
            &mut clock,
            7,
            &owner,
            &self.cfg,
        )
    }

    /// Runs one request at the world's clock with a fresh random number; the clock moves on
    /// as far as the request waited.
    fn step(
        &mut self,
        request: impl FnOnce(
            &mut MemoryStore,
            &mut FakeOrigin,
            &mut TestClock,
            u64,
            &CacheConfig,
        ) -> Outcome,
    ) -> Outcome {
        self.rand += 1;
        let mut clock = TestClock::at(self.now);
        let out = request(
            &mut self.store,
            &mut self.origin,
            &mut clock,
            self.rand,
            &self.cfg,
        );
        self.now = clock.now;
        out
    }

    /// `GET` of `name`, with the request's other fields from `with`.
    pub fn get_with(&mut self, name: &str, with: impl FnOnce(&mut GetRequest)) -> Outcome {
        let mut req = GetRequest {
            key: World::key(name),
            authorization: None,
            if_none_match: None,
            rate_key: CALLER.into(),
        };
        with(&mut req);
        self.step(|store, origin, clock, rand, cfg| {
            serve::get(store, origin, clock, rand, cfg, &req)
        })
    }

    /// A plain `GET` of `name`.
    pub fn get(&mut self, name: &str) -> Outcome {
        self.get_with(name, |_| {})
    }

    /// A write of `name`, with the request's other fields from `with`.
    pub fn send_with(
        &mut self,
        name: &str,
        op: Op,
        with: impl FnOnce(&mut WriteRequest),
    ) -> Outcome {
        let mut req = WriteRequest {
            key: World::key(name),
            op,
            if_match: None,
            if_none_match: None,
            authorization: None,
            rate_key: CALLER.into(),
            idempotency_key: None,
        };
        with(&mut req);
        self.step(|store, origin, clock, rand, cfg| {
            serve::write(store, origin, clock, rand, cfg, &req)
        })
    }

    /// Sets the rollout, as an operator would (the gate skipped).
    pub fn set_rollout(&mut self, state: RolloutState) {
        let body = serde_json::json!({
            "mode": state.mode.as_str(),
            "canary_share": state.canary_share,
            "canary_writes_buffered": state.canary_writes_buffered,
            "force": true,
        });
        let reply = change::apply(
            &mut self.store,
            &self.cfg,
            self.now,
            body.to_string().as_bytes(),
        )
        .unwrap_or_else(|e| e.reply());
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }

    /// A `PUT` of `json` to `name`.
    pub fn put(&mut self, name: &str, json: &str) -> Outcome {
        self.send_with(name, Op::Put(json.as_bytes().to_vec()), |_| {})
    }

    /// The deferred revalidation of `name`.
    pub fn revalidate(&mut self, name: &str) -> Result<(), RequestError> {
        self.rand += 1;
        let mut clock = TestClock::at(self.now);
        serve::revalidate(
            &mut self.store,
            &mut self.origin,
            &mut clock,
            self.rand,
            &self.cfg,
            &World::key(name),
            None,
        )
    }

    /// Runs an outcome's deferred work, as the gateway does after answering (a shadow
    /// read's verdict is dropped; [`World::settle_shadow`] returns it).
    pub fn run_deferred(&mut self, out: &Outcome) -> Vec<Result<(), RequestError>> {
        let mut results = Vec::new();
        for d in &out.deferred {
            self.rand += 1;
            let mut clock = TestClock::at(self.now);
            results.push(match d {
                serve::Deferred::Revalidate { key, authorization } => serve::revalidate(
                    &mut self.store,
                    &mut self.origin,
                    &mut clock,
                    self.rand,
                    &self.cfg,
                    key,
                    authorization.as_deref(),
                ),
                serve::Deferred::Shadow(read) => self.settle(&mut clock, read).map(drop),
            });
        }
        results
    }

    /// Judges the shadow read of an outcome, as the gateway does after answering.
    pub fn settle_shadow(&mut self, out: &Outcome) -> Verdict {
        let [serve::Deferred::Shadow(read)] = out.deferred.as_slice() else {
            panic!("expected one shadow read, got {:?}", out.deferred);
        };
        self.rand += 1;
        let mut clock = TestClock::at(self.now);
        self.settle(&mut clock, read).unwrap()
    }

    fn settle(
        &mut self,
        clock: &mut TestClock,
        read: &serve::shadow::ShadowRead,
    ) -> Result<Verdict, RequestError> {
        serve::shadow::settle(
            &mut self.store,
            &mut self.origin,
            clock,
            self.rand,
            &self.cfg,
            read.clone(),
        )
    }

    pub fn entry(&self, name: &str) -> Option<Entry> {
        self.store
            .peek(&World::key(name).kv_key())
            .map(|b| envelope::decode(b).unwrap())
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.store.keys_with_prefix(prefix).len()
    }
}

/// Performs a gateway write against any store.
pub fn write_into(
    store: &mut impl KvStore,
    name: &str,
    value: Option<Value>,
    stamp: Stamp,
    now: UnixMillis,
    cfg: &CacheConfig,
) {
    let key = World::key(name);
    let current = store
        .get(&key.kv_key())
        .unwrap()
        .and_then(|b| envelope::decode(&b).ok());
    let change = value.map_or(Change::Delete, Change::Put);
    let p = prepare_write(&key, change, None, current.as_ref(), stamp, now, cfg).unwrap();
    store.set(&p.record_key, &p.record).unwrap();
    if let EntryUpdate::Store(bytes) = p.entry {
        store.set(&p.entry_key, &bytes).unwrap();
    }
}

/// An outcome's JSON body.
pub fn body(out: &Outcome) -> Value {
    serde_json::from_slice(&out.reply.body).expect("JSON body")
}

/// An outcome's status and cache status.
pub fn status(out: &Outcome) -> (u16, Option<CacheStatus>) {
    (out.reply.status, out.reply.cache)
}

/// An error outcome's `error` code.
pub fn error_code(out: &Outcome) -> Option<&'static str> {
    out.reply.error.as_ref().map(|(code, _)| *code)
}

/// The buffered writes in the world's store.
pub fn records(w: &World) -> Vec<BufferedWrite> {
    w.store
        .keys_with_prefix("w:")
        .iter()
        .map(|k| BufferedWrite::decode(w.store.peek(k).unwrap()).unwrap())
        .collect()
}
