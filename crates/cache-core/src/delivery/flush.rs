//! The flush: one run that delivers the write buffer to the DB API.
//!
//! [`run`] is the single entry point, called by the cron-triggered flush component and by the
//! admin route. One run:
//!
//! 1. takes the lease ([`crate::lease`]); if another owner holds it → [`FlushOutcome::LeaseBusy`];
//! 2. reads the flush state; inside the backoff window → [`FlushOutcome::BackingOff`];
//! 3. lists the store; deletes sealed batches the lease's registry does not list (they were
//!    never sent) and resends the registered ones left by earlier runs, unchanged (same id);
//! 4. reads the buffer records not covered by a registered batch (up to 128 per
//!    [`KvStore::get_many`]), coalesces them per key,
//!    splits them into batches by item count and bytes, and takes them a group of up to
//!    [`GROUP`] at a time: seals them (stores each `b:{id}`, in one call), registers them in
//!    the lease record (one swap), sends them one after another, and settles the answered ones
//!    together ([`crate::settle`]); a registration that fails means another run took the
//!    lease over: the group stays unsent and the run stops ([`FlushOutcome::LeaseLost`]);
//! 5. on a retryable failure stops (the group's batches not yet sent stay registered, to be
//!    resent by the next run), keeps the sealed batch and stores the next attempt time
//!    (exponential backoff with jitter from `rand`, at least the server's `Retry-After`);
//!    a batch that failed `flush_max_attempts` times, or permanently, is dead-lettered;
//! 6. saves the flush state and releases the lease, leaving unsettled batches registered.
//!
//! At most `flush_max_batches` batches are sent per run; the report says when more remain.
//! Store failures abort the run (the lease then expires by itself); everything already done
//! is idempotent and the next run continues. Why a write can be in only one sendable batch,
//! even when runs overlap, is the lease module's story.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::backoff::retry_delay;
use crate::batch::{self, SealedBatch};
use crate::batch_id::BatchId;
use crate::buffer::coalesce;
use crate::buffer::measure;
use crate::config::CacheConfig;
use crate::contract::BatchResponse;
use crate::db::{DbApi, SendError};
use crate::delivery::bulk_read::ReadChunks;
use crate::dlq::{self, DeadLetter, DeadReason};
use crate::kv_key::{Area, KvKey, RecordKind};
use crate::lease::{self, HeldLease, LeaseOutcome};
use crate::record::BufferedWrite;
use crate::settle::{bury_batch, mismatch, settle_answers, Tally};
use crate::stamp::Stamp;
use crate::state::FlushState;
use crate::store::{KvStore, StoreError};
use crate::time::{Clock, UnixMillis};

/// Batches sealed together (one `set_many`), registered together (one swap of the lease
/// record) and settled together (shared rewrite windows, one `delete_many`). Each of those is
/// a commit, which Spin's SQLite store syncs to disk: per batch they were most of a run's
/// time. Eight default batches seal at most 4 MiB in one call.
pub const GROUP: usize = 8;

/// How a flush run ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FlushOutcome {
    /// Nothing was buffered or sealed.
    #[default]
    Idle,
    /// Every batch sent was answered and settled.
    Delivered,
    /// Another run holds the lease; nothing was sent.
    LeaseBusy {
        /// The holder.
        owner: String,
        /// When its lease expires.
        until: UnixMillis,
    },
    /// Another run took the lease over during this one, which stopped before sending
    /// anything it could not register.
    LeaseLost,
    /// An earlier failure's backoff window is still open; nothing was sent.
    BackingOff {
        /// When sending may resume.
        until: UnixMillis,
    },
    /// A batch failed and will be retried.
    Retrying {
        /// When the next attempt may happen.
        next_attempt_at: UnixMillis,
        /// Why it failed.
        error: String,
    },
    /// The store failed; the run was aborted.
    StoreFailed(String),
}

impl FlushOutcome {
    /// A short label for the state record and logs.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            FlushOutcome::Idle => "idle",
            FlushOutcome::Delivered => "delivered",
            FlushOutcome::LeaseBusy { .. } => "lease_busy",
            FlushOutcome::LeaseLost => "lease_lost",
            FlushOutcome::BackingOff { .. } => "backing_off",
            FlushOutcome::Retrying { .. } => "retrying",
            FlushOutcome::StoreFailed(_) => "store_failed",
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// How it ended.
    pub outcome: FlushOutcome,
    /// Batches sent (including resends).
    pub batches_sent: usize,
    /// Of those, sealed batches left by earlier runs.
    pub batches_resent: usize,
    /// Batches answered and settled.
    pub batches_settled: usize,
    /// Buffer records read this run.
    pub records_read: usize,
    /// Unreadable buffer records moved to the dead-letter queue.
    pub records_corrupt: usize,
    /// Unreadable sealed batches deleted (their records are still buffered).
    pub batches_corrupt: usize,
    /// Sealed batches deleted because no run registered them (never sent; their records are
    /// still buffered).
    pub batches_unregistered: usize,
    /// Per-item results.
    pub items: Tally,
    /// The batch limit stopped the run with work left.
    pub more: bool,
}

/// Runs one flush at the clock's time (the rewrite windows of settling read it again).
/// `owner` must be unique per run (e.g. derived from `rand`).
pub fn run<S: KvStore, D: DbApi, C: Clock>(
    store: &mut S,
    db: &mut D,
    clock: &mut C,
    rand: u64,
    owner: &str,
    cfg: &CacheConfig,
) -> FlushReport {
    let now = clock.now();
    let mut report = FlushReport::default();
    let lease = match lease::acquire(store, owner, now, cfg.lease_ttl) {
        Err(e) => {
            report.outcome = FlushOutcome::StoreFailed(e.to_string());
            return report;
        }
        Ok(LeaseOutcome::Busy(held)) => {
            report.outcome = FlushOutcome::LeaseBusy {
                owner: held.owner,
                until: held.expires_at,
            };
            return report;
        }
        Ok(LeaseOutcome::Acquired(held)) => held,
    };
    let mut flush = Flush {
        store: &mut *store,
        db,
        clock,
        now,
        cfg,
        report: &mut report,
        lease,
        registered: None,
        sends: 0,
        settled: BTreeSet::new(),
        read_bytes: Vec::new(),
        listed: None,
        read_all: false,
        listed_dead: 0,
    };
    let outcome = flush
        .go(rand)
        .unwrap_or_else(|e| FlushOutcome::StoreFailed(e.to_string()));
    let Flush {
        lease, registered, ..
    } = flush;
    if outcome != FlushOutcome::LeaseLost {
        // A failed release is harmless: the lease expires, the registry stays. A run that
        // never read the registry (backing off, or the store failed first) leaves it as is.
        let _ = lease.release(store, registered);
    }
    report.outcome = outcome;
    report
}

/// How delivering ended, short of a store failure.
enum Delivery {
    /// Everything due was sent and settled (or the batch limit was reached).
    Done,
    /// A retryable failure; retry later.
    Failed(Failure),
    /// Another run holds the lease now.
    LeaseLost,
}

/// A retryable failure that ends the run.
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
}

enum Sent {
    /// Settled (delivered or dead-lettered); go on.
    Settled,
    /// Retry later; stop the run.
    Failed(Failure),
}

impl From<Sent> for Option<Delivery> {
    fn from(sent: Sent) -> Option<Delivery> {
        match sent {
            Sent::Settled => None,
            Sent::Failed(f) => Some(Delivery::Failed(f)),
        }
    }
}

struct Flush<'a, S, D, C> {
    store: &'a mut S,
    db: &'a mut D,
    clock: &'a mut C,
    now: UnixMillis,
    cfg: &'a CacheConfig,
    report: &'a mut FlushReport,
    lease: HeldLease,
    /// The registered batches not yet settled: what the release leaves registered; `None`
    /// until the run has read the registry, and then the release keeps it unchanged.
    registered: Option<BTreeSet<BatchId>>,
    sends: usize,
    settled: BTreeSet<Stamp>,
    read_bytes: Vec<(Stamp, u64)>,
    /// The buffer records the listing found; `None` until the buffer is listed.
    listed: Option<Vec<Stamp>>,
    /// Whether every listed record not in a sealed batch was read (their bytes are known).
    read_all: bool,
    /// Dead letters the listing found.
    listed_dead: u64,
}

impl<S: KvStore, D: DbApi, C: Clock> Flush<'_, S, D, C> {
    fn go(&mut self, rand: u64) -> Result<FlushOutcome, StoreError> {
        let mut state = FlushState::load(self.store)?;
        if let Some(until) = state.next_attempt_at.filter(|t| self.now < *t) {
            return Ok(FlushOutcome::BackingOff { until });
        }
        measure::begin_epoch(self.store, &mut state, self.now)?;
        let failure = match self.deliver(state.epoch)? {
            Delivery::LeaseLost => return Ok(FlushOutcome::LeaseLost),
            Delivery::Failed(f) => Some(f),
            Delivery::Done => None,
        };
        let outcome = match failure {
            Some(f) => {
                state.failures = state.failures.saturating_add(1);
                let delay = retry_delay(
                    state.failures,
                    self.cfg.flush_retry_base,
                    self.cfg.flush_retry_max,
                    rand,
                    f.retry_after,
                );
                let next_attempt_at = self.now.saturating_add(delay);
                state.next_attempt_at = Some(next_attempt_at);
                state.last_error = Some(f.reason.clone());
                FlushOutcome::Retrying {
                    next_attempt_at,
                    error: f.reason,
                }
            }
            None => {
                state.failures = 0;
                state.next_attempt_at = None;
                state.last_error = None;
                state.last_success_at = Some(self.now);
                if self.report.batches_sent == 0 && self.report.records_read == 0 {
                    FlushOutcome::Idle
                } else {
                    FlushOutcome::Delivered
                }
            }
        };
        if let Some(listed) = &self.listed {
            let remaining: Vec<Stamp> = listed
                .iter()
                .filter(|s| !self.settled.contains(s))
                .copied()
                .collect();
            let bytes = self.read_all.then(|| {
                self.read_bytes
                    .iter()
                    .filter(|(s, _)| !self.settled.contains(s))
                    .map(|(_, b)| *b)
                    .fold(0u64, u64::saturating_add)
            });
            measure::rebase(&mut state, &remaining, bytes);
            // For `/metrics`, which reads them instead of listing the store.
            let buried = self.report.items.dead_lettered + self.report.records_corrupt;
            state.dead_letters = self.listed_dead.saturating_add(buried as u64);
            state.sealed_batches = self.registered.as_ref().map_or(0, |r| r.len() as u64);
        }
        state.last_run_at = Some(self.now);
        state.last_outcome = Some(outcome.label().to_owned());
        state.save(self.store)?;
        Ok(outcome)
    }

    /// Resends registered batches, then flushes the buffer.
    fn deliver(&mut self, epoch: u64) -> Result<Delivery, StoreError> {
        let keys = self.store.get_keys_in(Area::Buffer)?;
        for key in keys.iter().filter(|k| measure::is_closed_counter(k, epoch)) {
            self.store.delete(key)?;
        }
        self.listed_dead = keys
            .iter()
            .filter(|k| RecordKind::of(k) == Some(RecordKind::DeadLetter))
            .count() as u64;
        // What `/admin/dlq` reads instead of listing the store.
        dlq::reindex(self.store, &keys)?;
        self.listed = Some(
            keys.iter()
                .filter_map(|k| match KvKey::parse(k) {
                    Some(KvKey::Write(stamp)) => Some(stamp),
                    _ => None,
                })
                .collect(),
        );
        let Some(registered) = self.registry(&keys)? else {
            return Ok(Delivery::LeaseLost);
        };
        let sealed = self.load_sealed(&registered)?;
        self.registered = Some(sealed.iter().map(|b| b.id.clone()).collect());
        let excluded: BTreeSet<Stamp> = sealed.iter().flat_map(|b| b.covered().copied()).collect();
        for batch in sealed {
            if self.sends >= self.cfg.flush_max_batches {
                self.report.more = true;
                return Ok(Delivery::Done);
            }
            self.report.batches_resent += 1;
            if let Some(d) = self.send(batch)?.into() {
                return Ok(d);
            }
        }
        let writes = self.load_writes(&keys, &excluded)?;
        self.read_all = true;
        let planned = batch::split(
            coalesce(writes),
            self.cfg.flush_batch_max_items,
            self.cfg.flush_batch_max_bytes,
        );
        let mut planned = planned.into_iter().peekable();
        while planned.peek().is_some() {
            let room = self.cfg.flush_max_batches.saturating_sub(self.sends);
            if room == 0 {
                self.report.more = true;
                break;
            }
            let mut group = Vec::new();
            let mut seals = Vec::new();
            while group.len() < room.min(GROUP) {
                let Some(items) = planned.next() else {
                    break;
                };
                let batch = SealedBatch::new(items, self.now);
                match batch.encode() {
                    Ok(bytes) => {
                        seals.push((batch.kv_key(), bytes));
                        group.push(batch);
                    }
                    Err(e) => self.bury(&batch, DeadReason::TooLarge, &e.to_string())?,
                }
            }
            if group.is_empty() {
                continue;
            }
            self.store.set_many(&seals)?;
            let ids: Vec<BatchId> = group.iter().map(|b| b.id.clone()).collect();
            if !self.lease.register(self.store, &ids)? {
                // Not sent. Whether the registration took effect before the lease changed
                // hands is for the holder's registry to say: it resends the batches, or
                // deletes them unsent. Deleting them here could remove batches the holder is
                // sending.
                return Ok(Delivery::LeaseLost);
            }
            self.registered.get_or_insert_default().extend(ids);
            if let Some(d) = self.send_group(group)?.into() {
                return Ok(d);
            }
        }
        Ok(Delivery::Done)
    }

    /// The registered batches among the stored ones, after deleting the stored ones nobody
    /// registered; `None` when the lease was lost. A lease record that does not say (first
    /// run, unreadable record) registers every stored batch.
    fn registry(&mut self, keys: &[String]) -> Result<Option<BTreeSet<BatchId>>, StoreError> {
        let mut stored = BTreeSet::new();
        for key in keys
            .iter()
            .filter(|k| RecordKind::of(k) == Some(RecordKind::Batch))
        {
            match KvKey::parse(key) {
                Some(KvKey::Batch(id)) => {
                    stored.insert(id);
                }
                _ => {
                    self.store.delete(key)?;
                    self.report.batches_corrupt += 1;
                }
            }
        }
        let registered = match self.lease.registry() {
            Some(r) => r.clone(),
            None => stored.clone(),
        };
        for id in stored.difference(&registered) {
            self.store.delete(&KvKey::Batch(id.clone()).render())?;
            self.report.batches_unregistered += 1;
        }
        let live: BTreeSet<BatchId> = registered.intersection(&stored).cloned().collect();
        let changed = match self.lease.registry() {
            Some(r) => *r != live,
            None => !live.is_empty(),
        };
        if changed && !self.lease.set_registry(self.store, live.clone())? {
            return Ok(None);
        }
        Ok(Some(live))
    }

    fn load_sealed(&mut self, ids: &BTreeSet<BatchId>) -> Result<Vec<SealedBatch>, StoreError> {
        let mut sealed = Vec::new();
        for id in ids {
            let key = KvKey::Batch(id.clone()).render();
            let Some(bytes) = self.store.get(&key)? else {
                continue;
            };
            match SealedBatch::decode(&bytes) {
                Ok(b) if b.id == *id => sealed.push(b),
                _ => {
                    self.store.delete(&key)?;
                    self.report.batches_corrupt += 1;
                }
            }
        }
        sealed.sort_by(|a, b| (a.sealed_at, &a.id).cmp(&(b.sealed_at, &b.id)));
        Ok(sealed)
    }

    fn load_writes(
        &mut self,
        keys: &[String],
        excluded: &BTreeSet<Stamp>,
    ) -> Result<Vec<BufferedWrite>, StoreError> {
        let due: Vec<(Stamp, &String)> = keys
            .iter()
            .filter_map(|key| match KvKey::parse(key) {
                Some(KvKey::Write(stamp)) if !excluded.contains(&stamp) => Some((stamp, key)),
                _ => None,
            })
            .collect();
        let mut writes = Vec::new();
        let mut chunks = ReadChunks::new();
        let mut rest = due.as_slice();
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(rest.len().min(chunks.len()));
            rest = after;
            let names: Vec<String> = chunk.iter().map(|(_, k)| (*k).clone()).collect();
            let values = self.store.get_many(&names)?;
            chunks.saw(&values);
            for ((stamp, key), bytes) in chunk.iter().zip(values) {
                let Some(bytes) = bytes else {
                    continue;
                };
                self.report.records_read += 1;
                self.read_bytes.push((*stamp, bytes.len() as u64));
                match BufferedWrite::decode(&bytes) {
                    Ok(w) if w.stamp == *stamp => writes.push(w),
                    Ok(_) => {
                        self.bury_corrupt(key, *stamp, &bytes, "record stamp differs from its key")?
                    }
                    Err(e) => self.bury_corrupt(key, *stamp, &bytes, &e.to_string())?,
                }
            }
        }
        Ok(writes)
    }

    fn bury_corrupt(
        &mut self,
        key: &str,
        stamp: Stamp,
        bytes: &[u8],
        detail: &str,
    ) -> Result<(), StoreError> {
        let letter = DeadLetter {
            stamp,
            write: None,
            raw: Some(String::from_utf8_lossy(bytes).into_owned()),
            reason: DeadReason::Corrupt,
            detail: Some(detail.to_owned()),
            attempts: 0,
            batch_id: None,
            dead_at: self.now,
        };
        dlq::bury(self.store, &letter).map_err(|e| StoreError::Other(e.to_string()))?;
        self.store.delete(key)?;
        self.settled.insert(stamp);
        self.report.records_corrupt += 1;
        Ok(())
    }

    fn send(&mut self, batch: SealedBatch) -> Result<Sent, StoreError> {
        self.send_group(vec![batch])
    }

    /// Sends `group` (sealed and registered) one batch after another until one fails to be
    /// delivered (the rest stay registered, for the next run), then settles the answered
    /// ones together.
    fn send_group(&mut self, group: Vec<SealedBatch>) -> Result<Sent, StoreError> {
        let mut answered: Vec<(SealedBatch, BatchResponse)> = Vec::new();
        let mut sent = Sent::Settled;
        for batch in group {
            self.sends += 1;
            self.report.batches_sent += 1;
            let error = match self.db.send_batch(&batch.request()) {
                Ok(answer) => match mismatch(&batch, &answer) {
                    None => {
                        answered.push((batch, answer));
                        continue;
                    }
                    Some((writes, results)) => SendError::retryable(format!(
                        "answer has {results} results for {writes} writes"
                    )),
                },
                Err(e) => e,
            };
            if let Sent::Failed(f) = self.fail(batch, error)? {
                sent = Sent::Failed(f);
                break;
            }
        }
        if !answered.is_empty() {
            let pairs: Vec<(&SealedBatch, &BatchResponse)> =
                answered.iter().map(|(b, a)| (b, a)).collect();
            let mut tally = Tally::default();
            settle_answers(
                self.store, self.clock, &pairs, self.now, self.cfg, &mut tally,
            )?;
            self.report.batches_settled += answered.len();
            for (batch, _) in &answered {
                self.add(batch, Tally::default());
            }
            self.add_tally(tally);
        }
        Ok(sent)
    }

    /// Handles a batch the DB API did not settle: dead-lettered when the failure is
    /// permanent or its attempts are spent, else stored with one more attempt.
    fn fail(&mut self, mut batch: SealedBatch, error: SendError) -> Result<Sent, StoreError> {
        batch.attempts = batch.attempts.saturating_add(1);
        match error {
            SendError::Permanent { reason } => {
                self.bury(&batch, DeadReason::Permanent, &reason)?;
                Ok(Sent::Settled)
            }
            SendError::Retryable {
                reason,
                retry_after,
            } => {
                if batch.attempts >= self.cfg.flush_max_attempts {
                    self.bury(&batch, DeadReason::Exhausted, &reason)?;
                } else if let Ok(bytes) = batch.encode() {
                    self.store.set(&batch.kv_key(), &bytes)?;
                }
                Ok(Sent::Failed(Failure {
                    reason,
                    retry_after,
                }))
            }
        }
    }

    fn bury(
        &mut self,
        batch: &SealedBatch,
        reason: DeadReason,
        detail: &str,
    ) -> Result<(), StoreError> {
        let mut tally = Tally::default();
        bury_batch(self.store, batch, reason, detail, self.now, &mut tally)?;
        self.add(batch, tally);
        Ok(())
    }

    fn add(&mut self, batch: &SealedBatch, tally: Tally) {
        if let Some(r) = &mut self.registered {
            r.remove(&batch.id);
        }
        self.settled.extend(batch.covered().copied());
        self.add_tally(tally);
    }

    fn add_tally(&mut self, tally: Tally) {
        let items = &mut self.report.items;
        items.applied += tally.applied;
        items.stale += tally.stale;
        items.duplicate += tally.duplicate;
        items.dead_lettered += tally.dead_lettered;
        items.records_deleted += tally.records_deleted;
    }
}
