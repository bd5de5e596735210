//! The request paths: one `GET`, `PUT`, `PATCH` or `DELETE` of an item, top-down.
//!
//! The gateway parses HTTP into a [`GetRequest`] or [`WriteRequest`], calls [`get`] or
//! [`write`](fn@write) with its store, its [`Origin`], its clock and a random number, and sends the
//! [`Outcome`]'s [`Reply`]. It then runs the outcome's [`Deferred`] work (with
//! [`revalidate`]) after the response is sent, and adds its [`Event`]s to the counters.
//! Nothing here does I/O of its own: the store and the origin are traits, time is a
//! [`Clock`], randomness an argument.
//!
//! Who may see and change what is decided in [`crate::auth`]: the caller is identified first
//! ([`gate::identify`]; in `jwt` mode its token must verify and
//! the rules must allow the access), every origin call carries the caller's own
//! `Authorization`, and nothing derived from a credential is stored but keyed digests.
//!
//! Both charge the caller (its principal's keyed digest when it has one, else its address,
//! [`GetRequest::rate_key`]) against the read or write budget ([`crate::limit`]): over budget the request ends at once
//! with `429`; every answer after that carries the `RateLimit-Policy` and `RateLimit`
//! headers.
//!
//! # One GET ([`get`])
//!
//! 0. Read the shared entry (`c:{ns}:{key}`) and the rollout record (`m:rollout`) in one
//!    `get_many` (the entry alone, a `get`, with `rollout_overrides` off). When the rollout passes this caller's reads through
//!    ([`crate::rollout::decide`]) and the entry is not dirty, the DB API's answer is
//!    relayed and nothing more happens ([`pass`]); in shadow mode the answer is relayed
//!    too, and what the cache would have served is judged against it after the response
//!    ([`shadow`]).
//! 1. With the shared entry read, [`plan_read`] decides. A value that does not
//!    decode is a miss and is overwritten.
//! 2. Fresh, or dirty (the DB API has not seen its write yet, so it is the newest truth) →
//!    serve it, if the caller may be served it: an entry for anyone needs nothing, any other
//!    a read grant ([`gate::check_read_grant`]). `HIT`,
//!    or `NEGATIVE` (404) for a negative entry or tombstone.
//! 3. Stale → serve it (`STALE`) and return a [`Deferred::Revalidate`]: the client never waits
//!    for the refresh.
//! 4. Otherwise the same for the caller's own entry (`c:{ns}#{scope}:{key}`), when it has
//!    one: a credentialed caller with an `auth_key` configured.
//! 5. Missing, expired or corrupt → fill: claim the fill lease of the caller's own entry (or
//!    the shared one) ([`fill::claim`]); a request that finds another's lease waits for its
//!    entry (`HIT`) and fetches itself only when the lease lapses without one. The fetch
//!    carries the caller's `Authorization` and is classified ([`origin::classify`]); its
//!    `Cache-Control` and `Vary` say where the answer is kept ([`cache_control`]: shared,
//!    shared behind grants, the caller's own entry, or nowhere). That entry is re-read just
//!    before storing and [`apply_origin`] decides what to store (a dirty entry is never
//!    replaced by origin data; a 404 becomes a negative entry; a value over
//!    `max_value_bytes` is served once and stored nowhere). The lease is released.
//! 6. The origin failed (502/504) and an entry the caller may be served is within
//!    `stale_if_error` → serve it (`STALE`); otherwise the error is the answer. Origin errors
//!    and refusals are never cached; a `401`/`403` is passed through with its
//!    `WWW-Authenticate`.
//! 7. The reply carries `ETag`, `Age`, `Cache-Control` (`private` unless the entry is for
//!    anyone), `X-Cache`, and `X-Sync: pending` with `X-Dirty-Age` for a dirty entry; a
//!    matching `If-None-Match` is a `304`. A long-poll ([`watch`]) waits on that `304` for
//!    the ETag to change.
//!
//! KV operations: every request starts with one `increment` (its budget; a `get` and a `set`
//! on a store without atomics; nothing when that budget is `off`). After it, a fresh hit of
//! an entry for anyone is one `get_many` (the entry and the rollout record). A caller's own
//! entry costs one more `get` (the shared entry first); an entry behind a grant one or two
//! more (the grant's window and the one before). A miss that fills is `get_many` (entry),
//! `get`, `set`, `get` (claim the lease), `get`, `set` (re-read and store the entry), `get`,
//! `delete` (release the lease): five reads and three writes. A passed-through read is the
//! `get_many` alone; a shadow read too, and after its response the comparison's counts (an
//! `increment` each, see [`crate::rollout::evidence`]) and, for a would-be miss or stale
//! entry, the fill's `get` and `set`.
//!
//! # One PUT, PATCH or DELETE ([`write`](fn@write))
//!
//! 1. Validate: the body within `max_value_bytes` and JSON. A rejected request stores nothing.
//! 2. Read the shared entry and the rollout record (one `get_many`). When the rollout sends
//!    this caller's writes to the DB API, the write is passed through ([`pass`]): refused
//!    with `409 writes_pending` while the entry is dirty (buffered writes of the key would
//!    overtake it), else sent to the DB API's item route with the caller's `Authorization`
//!    and an `Idempotency-Key` (a `PATCH` or a precondition reads the DB API's value first
//!    and writes on the condition that it is unchanged, read again when it was not), the key
//!    invalidated ([`invalidate`]) and the DB API's answer relayed.
//!
//!    Otherwise authorize ([`gate::authorize_write`]): a kept
//!    write grant, or the DB API's authorization call with the caller's credentials; a
//!    refusal is passed through, an unanswered call is `503`, and nothing is stored. The
//!    principal it names goes into the buffer record.
//!    With an `Idempotency-Key`, a repeat of an earlier write by the same caller is answered
//!    here with its first `202`, and nothing more happens ([`idempotency`]).
//! 3. A `PATCH`, or a write with `If-Match`/`If-None-Match`, needs the current value: it is
//!    read as a `GET` reads it (steps 1–5 above, without serving stale), so the caller needs
//!    read access too.
//! 4. Preconditions (RFC 9110 13.1.1–2): `If-Match` compares strongly, `If-None-Match` weakly,
//!    `*` stands for any current value (a negative entry or a tombstone is none) → `412`.
//! 5. `PATCH` applies the RFC 7386 merge patch to the current value (none: `null`) and is
//!    then a put.
//! 6. Read the shared entry, stamp the write and prepare the buffer record and the dirty
//!    entry ([`prepare_write`]); too large → `413`. The dirty entry is for anyone only if the
//!    entry it replaces was; otherwise readers need a grant.
//! 7. Admission: the write counts itself in the admission epoch, and the flush state's
//!    measure plus the epoch's counts give the buffer's size and age; over a bound → `503`
//!    with `Retry-After` ([`admit`], [`measure`]).
//! 8. Store the buffer record `w:{stamp}`: the durability point. The `202` can only be built
//!    from what storing it returns ([`reply::Buffered`]).
//! 9. Store the dirty entry unless it already shows a newer write, and check it stayed
//!    (read-your-writes; see `store_entry`); if a flush or sweep is rewriting entries at that
//!    moment, wait its rewrite window out and check again. The visibility point.
//! 10. `202 Accepted` with `ETag: "w{stamp}"` and `X-Sync: pending`.
//!
//! KV operations: after the `increment` of the write budget, a `PUT` without preconditions,
//! once authorized, is `get_many` (entry and rollout record), `get` (entry), `get` (flush
//! state), two `increment`s (admission), `set` (record), `get`, `set`, `get` (entry,
//! checked), `get` (rewrite window): six reads, two increments, two writes, none of them
//! depending on how much the store holds. Without atomics each `increment` is a `get` and a
//! `set`. Authorizing adds
//! one or two reads for a kept grant, or one write after asking the DB API. A `PATCH` of a
//! cached key adds the `GET`'s one read; of an uncached one, the fill's seven (claim, store,
//! release).
//! `tests/serve.rs` checks these sequences.
//!
//! A store failure ends the request with `500` (`503` when the store is full). One after the
//! record is stored but before the entry is leaves the write buffered but unacknowledged:
//! the flush delivers it, and nothing acknowledged is ever lost.

pub mod cache_control;
pub mod fill;
pub mod idempotency;
pub mod invalidate;
pub(crate) mod merge_patch;
pub mod origin;
pub mod pass;
pub mod policy;
pub mod prepare;
pub mod read;
pub mod reply;
pub mod shadow;
pub mod watch;

use serde_json::Value;

use self::cache_control::Placement;
use self::fill::Claim;
use self::origin::{Fetched, ItemAnswer};
use self::prepare::{is_newer_than, prepare_write, Change, EntryUpdate, PreparedWrite, WriteError};
use crate::auth::caller::Caller;
use crate::auth::gate;
use crate::buffer::{admit, measure, Admission, Backpressure};
use crate::config::AuthMode;
use crate::config::CacheConfig;
use crate::contract::Access;
use crate::delivery::rewrite_window;
use crate::delivery::state::FlushState;
use crate::entry::{Audience, Entry, EntryKind};
use crate::envelope::{self, EnvelopeError};
use crate::key::CacheKey;
use crate::limit::{self, Class, RateState};
use crate::rollout;
use crate::rollout::decide::{read_route, write_route, ReadRoute, WriteRoute};
use crate::serve::merge_patch::merge_patch;
use crate::serve::policy::Windows;
use crate::serve::read::{apply_origin, plan_read, OriginAnswer, OriginApply, ReadPlan};
use crate::stamp::Stamp;
use crate::store::KvStore;
use crate::stored::kv_key::MAX_KV_VALUE_BYTES;
use crate::time::{Clock, UnixMillis};

pub use self::origin::Origin;
use self::reply::{accepted, Buffered};
pub use self::reply::{CacheStatus, Reply, RequestError};

/// A read of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    /// The item.
    pub key: CacheKey,
    /// The client's `Authorization`, forwarded to the DB API.
    pub authorization: Option<String>,
    /// The client's `If-None-Match`.
    pub if_none_match: Option<String>,
    /// Who is charged against the read budget: an opaque caller identity (a principal, or
    /// [`limit::client_key`] for an anonymous caller).
    pub rate_key: String,
}

/// Which write, with its body as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Replace the value with this JSON.
    Put(Vec<u8>),
    /// Merge-patch the value with this JSON (RFC 7386).
    Patch(Vec<u8>),
    /// Remove the key.
    Delete,
}

/// A write of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// The item.
    pub key: CacheKey,
    /// What to do.
    pub op: Op,
    /// The client's `If-Match`.
    pub if_match: Option<String>,
    /// The client's `If-None-Match`.
    pub if_none_match: Option<String>,
    /// The client's `Authorization`, forwarded on a read-through.
    pub authorization: Option<String>,
    /// Who is charged against the write budget (as [`GetRequest::rate_key`]).
    pub rate_key: String,
    /// The client's `Idempotency-Key`: a repeat answers the first result
    /// ([`idempotency`]).
    pub idempotency_key: Option<String>,
}

impl Op {
    /// The method's name.
    #[must_use]
    pub fn method(&self) -> &'static str {
        match self {
            Op::Put(_) => "PUT",
            Op::Patch(_) => "PATCH",
            Op::Delete => "DELETE",
        }
    }

    /// The body as sent (empty for `DELETE`).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        match self {
            Op::Put(b) | Op::Patch(b) => b,
            Op::Delete => &[],
        }
    }
}

/// Something to count for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A fresh entry was served (or one a concurrent fill stored).
    Hit,
    /// A negative entry was served.
    NegativeHit,
    /// A stale entry was served.
    Stale,
    /// The origin was asked to fill an entry.
    Miss,
    /// A write was buffered.
    WriteBuffered,
    /// The store did not keep the request's rate counter; it went ahead uncounted.
    RateUncounted,
    /// A read was passed through to the DB API ([`pass`]).
    PassedThroughRead,
    /// A write was passed through to the DB API ([`pass`]).
    PassedThroughWrite,
}

/// Work to run after the reply is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// Refresh a stale entry from the origin ([`revalidate`]).
    Revalidate {
        /// The entry.
        key: CacheKey,
        /// The `Authorization` the read would have sent.
        authorization: Option<String>,
    },
    /// Judge a shadow read ([`shadow::settle`]).
    Shadow(Box<shadow::ShadowRead>),
}

/// What a request produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The answer.
    pub reply: Reply,
    /// What to count.
    pub events: Vec<Event>,
    /// What to do after answering.
    pub deferred: Vec<Deferred>,
}

/// Serves a read (the story in the module docs). `rand` is a random number: the fill lease's
/// owner id.
pub fn get<S: KvStore, O: Origin, C: Clock>(
    store: &mut S,
    origin: &mut O,
    clock: &mut C,
    rand: u64,
    cfg: &CacheConfig,
    req: &GetRequest,
) -> Outcome {
    let mut cx = Cx::new(store, origin, clock, rand, cfg);
    let result = cx.get(req);
    cx.finish(result)
}

/// Performs a write (the story in the module docs). `rand` is a random number: the stamp's
/// instance id and the fill lease's owner id.
pub fn write<S: KvStore, O: Origin, C: Clock>(
    store: &mut S,
    origin: &mut O,
    clock: &mut C,
    rand: u64,
    cfg: &CacheConfig,
    req: &WriteRequest,
) -> Outcome {
    let mut cx = Cx::new(store, origin, clock, rand, cfg);
    let result = cx.write(req);
    cx.finish(result)
}

/// Refreshes a stale entry ([`Deferred::Revalidate`]): a conditional fetch with the entry's
/// ETag and the reading caller's `authorization`, kept through [`apply_origin`] where the
/// answer's directives allow. Skipped when another request holds the fill lease. A refusal
/// (`401`/`403`) removes the entry only if it is that caller's own.
pub fn revalidate<S: KvStore, O: Origin, C: Clock>(
    store: &mut S,
    origin: &mut O,
    clock: &mut C,
    rand: u64,
    cfg: &CacheConfig,
    key: &CacheKey,
    authorization: Option<&str>,
) -> Result<(), RequestError> {
    let mut cx = Cx::new(store, origin, clock, rand, cfg);
    let now = cx.clock.now();
    let caller = gate::identify(cfg, authorization, now)?;
    // Another request refreshing, or done refreshing, is enough.
    let held = match fill::claim(cx.store, key, rand, now, None)? {
        Claim::Fill { held, after: None } => held,
        Claim::Fill {
            held,
            after: Some(_),
        } => {
            fill::release(cx.store, held);
            return Ok(());
        }
        Claim::Wait(_) | Claim::Filled(_) => return Ok(()),
    };
    let current = cx
        .store
        .get(&key.kv_key())?
        .and_then(|b| envelope::decode(&b).ok());
    let etag = current.as_ref().and_then(|e| e.etag.clone());
    let result = match cx.fetch(&key.unscoped(), authorization, etag.as_deref()) {
        Ok(asked) => cx.refresh(&caller, key, current, asked),
        Err(e @ RequestError::OriginRefused { .. }) => {
            if key.scope().is_some() {
                cx.store.delete(&key.kv_key())?;
            }
            Err(e)
        }
        Err(e) => Err(e),
    };
    fill::release(cx.store, held);
    result
}

/// An origin answer and the instant it was asked for.
struct Asked {
    fetched: Fetched,
    at: UnixMillis,
}

/// What [`Cx::look_up`] found among a read's slots.
struct Lookup<'k> {
    /// The entry to serve, if any.
    found: Option<Found<'k>>,
    /// Without one: a stale-if-error entry to serve if the fill fails, and its slot.
    fallback: Option<(Entry, CacheKey)>,
    /// Without one: the key's invalidation, which a fill is judged against.
    key_invalidated_at: Option<UnixMillis>,
}

/// An entry a read would serve.
struct Found<'k> {
    /// The slot it was found under (the shared entry or the caller's own).
    slot: &'k CacheKey,
    /// The entry.
    entry: Entry,
    /// Whether it is stale (served, then revalidated).
    stale: bool,
}

/// An entry to serve and how it was obtained.
struct Served {
    entry: Entry,
    status: CacheStatus,
}

/// One request's ports, arguments and counts.
struct Cx<'a, S, O, C> {
    store: &'a mut S,
    origin: &'a mut O,
    clock: &'a mut C,
    rand: u64,
    cfg: &'a CacheConfig,
    events: Vec<Event>,
    deferred: Vec<Deferred>,
    /// The caller's budget as charged, for the reply's RateLimit headers.
    rate: RateState,
}

impl<'a, S: KvStore, O: Origin, C: Clock> Cx<'a, S, O, C> {
    fn new(
        store: &'a mut S,
        origin: &'a mut O,
        clock: &'a mut C,
        rand: u64,
        cfg: &'a CacheConfig,
    ) -> Self {
        Cx {
            store,
            origin,
            clock,
            rand,
            cfg,
            events: Vec::new(),
            deferred: Vec::new(),
            rate: RateState::Off,
        }
    }

    fn finish(self, result: Result<Reply, RequestError>) -> Outcome {
        let mut reply = result.unwrap_or_else(|e| e.reply());
        reply.headers.extend(self.rate.headers());
        Outcome {
            reply,
            events: self.events,
            deferred: self.deferred,
        }
    }

    /// Charges the caller's budget for `class`; over budget ends the request (`429`).
    fn charge(&mut self, class: Class, who: &str) -> Result<(), RequestError> {
        let now = self.clock.now();
        let budget = self.cfg.rate_limits.budget(class);
        self.rate = limit::charge(self.store, now, budget, class, who)?;
        if matches!(self.rate, RateState::Uncounted { .. }) {
            self.events.push(Event::RateUncounted);
        }
        Ok(())
    }

    /// Identifies the caller and charges it to the `class` budget: by its principal when it
    /// has one, else by `address_key`; a credential that does not verify is charged to the
    /// address before its refusal.
    fn caller(
        &mut self,
        class: Class,
        authorization: Option<&str>,
        address_key: &str,
    ) -> Result<Caller, RequestError> {
        let now = self.clock.now();
        let caller = match gate::identify(self.cfg, authorization, now) {
            Ok(caller) => caller,
            Err(e) => {
                self.charge(class, address_key)?;
                return Err(e);
            }
        };
        let who = caller.rate_key(self.cfg);
        self.charge(class, who.as_deref().unwrap_or(address_key))?;
        Ok(caller)
    }

    fn get(&mut self, req: &GetRequest) -> Result<Reply, RequestError> {
        let caller = self.caller(Class::Read, req.authorization.as_deref(), &req.rate_key)?;
        gate::check_rules(self.cfg, &caller, &req.key, Access::Read)?;
        let key = req.key.unscoped();
        let (shared, rollout, bucket) = self.entry_and_rollout(&key, &caller, &req.rate_key)?;
        let route = read_route(&rollout.state, bucket);
        if route != ReadRoute::Cache && !is_dirty(shared.as_deref()) {
            if route == ReadRoute::Shadow {
                return self.shadow_read(req, &caller, &key, shared);
            }
            self.events.push(Event::PassedThroughRead);
            let read =
                origin::item_read(&key, caller.authorization(), req.if_none_match.as_deref());
            return pass::relay(self.origin.get_item(&read));
        }
        let served = self.read_from(&caller, &key, true, Some(shared))?;
        let now = self.clock.now();
        Ok(reply::entry(
            &served.entry,
            served.status,
            req.if_none_match.as_deref(),
            now,
        ))
    }

    /// The shared entry of `key` and the rollout record, in one call, and `caller`'s bucket
    /// (in canary mode; 0 in the others, whose routes do not depend on it): what decides a
    /// request's route.
    fn entry_and_rollout(
        &mut self,
        key: &CacheKey,
        caller: &Caller,
        rate_key: &str,
    ) -> Result<(Option<Vec<u8>>, rollout::state::Current, u8), RequestError> {
        let (shared, rollout) = if self.cfg.rollout_overrides {
            let mut both = self
                .store
                .get_many(&[key.kv_key(), rollout::state::kv_key()])?
                .into_iter();
            let shared = both.next().flatten();
            (
                shared,
                rollout::state::decode(both.next().flatten().as_deref(), self.cfg),
            )
        } else {
            (
                self.store.get(&key.kv_key())?,
                rollout::state::defaults(self.cfg),
            )
        };
        // Only a canary routes by bucket; elsewhere the digest it costs is spared.
        let bucket = if rollout.state.mode == rollout::state::Mode::Canary {
            rollout::bucket::of_caller(caller, self.cfg, rate_key)
        } else {
            0
        };
        Ok((shared, rollout, bucket))
    }

    /// Reads `key` for `caller`: the shared entry if the caller may be served it, else the
    /// caller's own, else the origin. `serving` says the entry is for a `GET` (stale entries
    /// are served and revalidated); a write's base is read without that.
    fn read(
        &mut self,
        caller: &Caller,
        key: &CacheKey,
        serving: bool,
    ) -> Result<Served, RequestError> {
        self.read_from(caller, key, serving, None)
    }

    /// [`Cx::read`] with the shared entry already read (`shared`), when it was.
    fn read_from(
        &mut self,
        caller: &Caller,
        key: &CacheKey,
        serving: bool,
        shared: Option<Option<Vec<u8>>>,
    ) -> Result<Served, RequestError> {
        let now = self.clock.now();
        let own = caller.own_entry(self.cfg, key);
        let lookup = self.look_up(key, own.as_ref(), shared, now, serving)?;
        let Some(Found { slot, entry, stale }) = lookup.found else {
            let fallback = if serving { lookup.fallback } else { None };
            let key_invalidated_at = lookup.key_invalidated_at;
            return self.fill(caller, key, own, fallback, key_invalidated_at);
        };
        self.admit(caller, slot, &entry)?;
        if !stale {
            let status = if entry.kind == EntryKind::Absent {
                self.events.push(Event::NegativeHit);
                CacheStatus::Negative
            } else {
                self.events.push(Event::Hit);
                CacheStatus::Hit
            };
            return Ok(Served { entry, status });
        }
        self.events.push(Event::Stale);
        self.deferred.push(Deferred::Revalidate {
            key: slot.clone(),
            authorization: caller.authorization().map(str::to_owned),
        });
        Ok(Served {
            entry,
            status: CacheStatus::Stale,
        })
    }

    /// The one walk over a read's slots, the shared entry `key` (already read as `shared`,
    /// when it was) and then the caller's own (`own`), for the read itself and for what a
    /// shadow read would have served: the first entry to serve at `at` (a stale one only
    /// when `serving`, for a `GET`), or, when there is none, what a fill needs.
    fn look_up<'k>(
        &mut self,
        key: &'k CacheKey,
        own: Option<&'k CacheKey>,
        mut shared: Option<Option<Vec<u8>>>,
        at: UnixMillis,
        serving: bool,
    ) -> Result<Lookup<'k>, crate::store::StoreError> {
        let mut fallback = None;
        let mut key_invalidated_at = None;
        for slot in std::iter::once(key).chain(own) {
            let stored = match shared.take() {
                Some(read) => read,
                None => self.store.get(&slot.kv_key())?,
            };
            let (entry, stale) = match plan_read(stored.as_deref(), at, key_invalidated_at) {
                ReadPlan::Serve(entry) => (entry, false),
                ReadPlan::ServeAndRevalidate(entry) => (entry, true),
                ReadPlan::Fetch {
                    fallback: f,
                    invalidated_at,
                } => {
                    fallback = fallback.or(f.map(|e| (e, slot.clone())));
                    key_invalidated_at = key_invalidated_at.or(invalidated_at);
                    continue;
                }
            };
            if stale && !serving {
                continue;
            }
            return Ok(Lookup {
                found: Some(Found { slot, entry, stale }),
                fallback,
                key_invalidated_at,
            });
        }
        Ok(Lookup {
            found: None,
            fallback,
            key_invalidated_at,
        })
    }

    /// Whether `caller` may be served `entry`, found under `slot`: the caller's own entries
    /// and entries for anyone need nothing; the others a read grant.
    fn admit(
        &mut self,
        caller: &Caller,
        slot: &CacheKey,
        entry: &Entry,
    ) -> Result<(), RequestError> {
        if slot.scope().is_some() || entry.audience == Audience::Anyone {
            return Ok(());
        }
        let now = self.clock.now();
        gate::check_read_grant(
            self.store,
            self.origin,
            self.cfg,
            caller,
            slot,
            entry.etag.as_deref().filter(|_| !entry.is_dirty()),
            now,
        )
    }

    /// Serves `entry`, which another request's fill of `slot` stored, as a hit.
    fn filled_by_another(
        &mut self,
        caller: &Caller,
        slot: &CacheKey,
        entry: Entry,
    ) -> Result<Served, RequestError> {
        self.admit(caller, slot, &entry)?;
        self.events.push(Event::Hit);
        Ok(Served {
            entry,
            status: CacheStatus::Hit,
        })
    }

    /// Fills `key` for `caller` (whose own entry of it is `own`, if it can have one) from
    /// the origin, collapsing concurrent misses of the same entry; serves `fallback` (an
    /// entry and its slot) if the origin fails. An entry another request stores meanwhile is
    /// served if it is newer than the key's invalidation `invalidated_at`.
    fn fill(
        &mut self,
        caller: &Caller,
        key: &CacheKey,
        own: Option<CacheKey>,
        fallback: Option<(Entry, CacheKey)>,
        invalidated_at: Option<UnixMillis>,
    ) -> Result<Served, RequestError> {
        let now = self.clock.now();
        let lease_on = own.clone().unwrap_or_else(|| key.clone());
        let claimed = fill::claim(self.store, &lease_on, self.rand, now, invalidated_at)?;
        let (held, waiting) = match claimed {
            Claim::Fill { held, after } => (Some(held), after),
            Claim::Wait(waiting) => (None, Some(waiting)),
            Claim::Filled(entry) => return self.filled_by_another(caller, &lease_on, entry),
        };
        if let Some(waiting) = waiting {
            if let Some(entry) = fill::wait_for_entry(self.store, self.clock, &lease_on, &waiting) {
                if let Some(held) = held {
                    fill::release(self.store, held);
                }
                return self.filled_by_another(caller, &lease_on, entry);
            }
        }
        self.events.push(Event::Miss);
        let outcome = match self.fetch(key, caller.authorization(), None) {
            Ok(asked) => self.keep(caller, key, own, asked).map(|entry| Served {
                entry,
                status: CacheStatus::Miss,
            }),
            Err(e @ (RequestError::Origin(_) | RequestError::OriginTimeout(_))) => match fallback {
                Some((entry, slot)) => self.admit(caller, &slot, &entry).map(|()| {
                    self.events.push(Event::Stale);
                    Served {
                        entry,
                        status: CacheStatus::Stale,
                    }
                }),
                None => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Some(held) = held {
            fill::release(self.store, held);
        }
        outcome
    }

    /// Asks the origin for `key`; the answer comes with the instant it was asked for, which
    /// is as old as it can be ([`apply_origin`]).
    fn fetch(
        &mut self,
        key: &CacheKey,
        auth: Option<&str>,
        etag: Option<&str>,
    ) -> Result<Asked, RequestError> {
        let at = self.clock.now();
        let read = origin::item_read(key, auth, etag);
        let fetched = origin::classify(self.origin.get_item(&read))?;
        Ok(Asked { fetched, at })
    }

    /// Keeps what the origin answered `caller` (whose own entry of `key` is `own`) where its
    /// directives allow ([`Directives::placement`]) and returns the entry to serve.
    fn keep(
        &mut self,
        caller: &Caller,
        key: &CacheKey,
        own: Option<CacheKey>,
        asked: Asked,
    ) -> Result<Entry, RequestError> {
        let Asked { fetched, at } = asked;
        let grant_checked = self.cfg.auth_mode == AuthMode::Grant;
        let placement =
            fetched
                .directives
                .placement(caller.is_credentialed(), own.is_some(), grant_checked);
        let now = self.clock.now();
        let (slot, audience) = match placement {
            Placement::Shared => (Some(key.clone()), Audience::Anyone),
            Placement::SharedGranted => {
                gate::keep_read_grant(self.store, self.cfg, caller, key, now);
                (Some(key.clone()), Audience::Granted)
            }
            Placement::Caller => (own, Audience::Caller),
            Placement::Nowhere => (None, Audience::Caller),
        };
        match slot {
            Some(slot) => self.store_answer(&slot, Asked { fetched, at }, audience),
            None => match apply_origin(
                None,
                fetched.answer,
                &fetched.directives,
                audience,
                at,
                self.cfg,
            ) {
                OriginApply::Store(mut entry) | OriginApply::ServeUnstored(mut entry) => {
                    // Kept nowhere: the windows end now, so the reply says `no-cache`.
                    Windows::ending(now).apply(&mut entry);
                    Ok(entry)
                }
                OriginApply::Skip(_) => Err(RequestError::NotFound),
            },
        }
    }

    /// Stores what the origin answered under `slot` for `audience` (unless the entry turned
    /// dirty or was invalidated meanwhile) and returns the entry to serve.
    fn store_answer(
        &mut self,
        slot: &CacheKey,
        asked: Asked,
        audience: Audience,
    ) -> Result<Entry, RequestError> {
        let Asked { fetched, at } = asked;
        let entry_key = slot.kv_key();
        let current = self
            .store
            .get(&entry_key)?
            .and_then(|b| envelope::decode(&b).ok());
        let applied = apply_origin(
            current.as_ref(),
            fetched.answer,
            &fetched.directives,
            audience,
            at,
            self.cfg,
        );
        match applied {
            OriginApply::Store(entry) => {
                let bytes = envelope::encode(&entry, &self.cfg.codec_policy())
                    .map_err(|e| RequestError::Internal(format!("cannot encode entry: {e}")))?;
                self.store.set(&entry_key, &bytes)?;
                Ok(entry)
            }
            OriginApply::ServeUnstored(entry) => Ok(entry),
            OriginApply::Skip(_) => current
                .filter(Entry::is_dirty)
                .ok_or(RequestError::NotFound),
        }
    }

    /// Keeps a revalidation's answer: a `304` refreshes `slot` as it is; a new answer is
    /// kept where its directives allow, and a shared entry the origin no longer lets be
    /// shared is removed (never a dirty one; one holding an invalidation leaves it behind).
    fn refresh(
        &mut self,
        caller: &Caller,
        slot: &CacheKey,
        current: Option<Entry>,
        asked: Asked,
    ) -> Result<(), RequestError> {
        if asked.fetched.answer == OriginAnswer::NotModified {
            let audience = current.map_or(Audience::Granted, |e| e.audience);
            return self.store_answer(slot, asked, audience).map(|_| ());
        }
        let key = slot.unscoped();
        let own = caller.own_entry(self.cfg, &key);
        let kept = self.keep(caller, &key, own, asked)?;
        if slot.scope().is_none() && kept.audience == Audience::Caller {
            let clean = self
                .store
                .get(&slot.kv_key())?
                .and_then(|b| envelope::decode(&b).ok())
                .filter(|e| !e.is_dirty());
            match clean.map(|e| e.invalidated_at) {
                Some(Some(at)) => self
                    .store
                    .set(&slot.kv_key(), &envelope::invalidation(at))?,
                Some(None) => self.store.delete(&slot.kv_key())?,
                None => {}
            }
        }
        Ok(())
    }

    fn write(&mut self, req: &WriteRequest) -> Result<Reply, RequestError> {
        let key = &req.key.unscoped();
        let caller = self.caller(Class::Write, req.authorization.as_deref(), &req.rate_key)?;
        let body = match &req.op {
            Op::Put(bytes) | Op::Patch(bytes) => Some(json_body(bytes, self.cfg)?),
            Op::Delete => None,
        };
        // A write outside the buffered rollout goes to the DB API, unless buffered writes of
        // the key are still pending.
        let (shared, rollout, bucket) = self.entry_and_rollout(key, &caller, &req.rate_key)?;
        if write_route(&rollout.state, bucket) == WriteRoute::Origin {
            if is_dirty(shared.as_deref()) {
                return Err(RequestError::WritesPending);
            }
            return self.pass_write(req, key, &caller, body);
        }
        let now = self.clock.now();
        let subject = gate::authorize_write(self.store, self.origin, self.cfg, &caller, key, now)?;
        // A repeat is judged only now, after the checks every write passes.
        let mut claim = match &req.idempotency_key {
            Some(idem) => {
                let attempt = idempotency::Attempt {
                    key,
                    idem,
                    fingerprint: idempotency::Fingerprint {
                        method: req.op.method(),
                        body: req.op.body(),
                        if_match: req.if_match.as_deref(),
                        if_none_match: req.if_none_match.as_deref(),
                    },
                    stamp: Stamp::new(now, 0, self.rand),
                    owner: self.rand,
                };
                match idempotency::begin(self.store, self.cfg, &caller, &attempt, now)? {
                    idempotency::Begin::Replay(reply) => return Ok(reply),
                    idempotency::Begin::Proceed(claim) => Some(claim),
                }
            }
            None => None,
        };
        let result = self.perform(req, key, &caller, &subject, body, &mut claim);
        if let Some(claim) = claim {
            // The write ended before its buffer record was stored.
            claim.abandon(self.store);
        }
        result
    }

    /// A write passed through to the DB API ([`pass`]): the DB API authorizes it with the
    /// caller's credentials; a `PATCH` or a precondition is judged against the DB API's
    /// current value, read first, and the write is sent on the condition that the item is
    /// still that value (`If-Match` with the ETag read, or `If-None-Match: *` when there was
    /// none), so a writer in between is not overwritten: the DB API answers `412` and the
    /// write is judged again on a fresh read, up to [`pass::CONDITIONAL_ATTEMPTS`] times.
    /// The shared entry is invalidated after the DB API answered (whatever it answered), so
    /// no reader is served what the cache held before.
    fn pass_write(
        &mut self,
        req: &WriteRequest,
        key: &CacheKey,
        caller: &Caller,
        body: Option<Value>,
    ) -> Result<Reply, RequestError> {
        gate::check_rules(self.cfg, caller, key, Access::Write)?;
        let idempotency_key = match &req.idempotency_key {
            Some(idem) if !idempotency::is_valid_key(idem) => {
                return Err(RequestError::BadRequest(
                    "Idempotency-Key must be 1–255 visible ASCII characters".into(),
                ))
            }
            Some(idem) => caller
                .idempotency_digest(self.cfg, key, idem)
                .map(|d| format!("pass-{d}"))
                .ok_or(RequestError::IdempotencyUnavailable)?,
            None => format!("pass-{:016x}-{}", self.rand, self.clock.now().0),
        };
        let reads_first =
            matches!(req.op, Op::Patch(_)) || req.if_match.is_some() || req.if_none_match.is_some();
        if reads_first {
            gate::check_rules(self.cfg, caller, key, Access::Read)?;
        }
        // The DB API's answer, or `None` when every attempt found the item changed.
        let mut answer = None;
        for _ in 0..pass::CONDITIONAL_ATTEMPTS {
            let write = self.pass_write_attempt(
                req,
                key,
                caller,
                body.as_ref(),
                reads_first,
                &idempotency_key,
            )?;
            let conditioned = write.if_match.is_some() || write.if_none_match.is_some();
            match self.origin.write_item(&write) {
                Ok(ItemAnswer { status: 412, .. }) if conditioned => {}
                other => {
                    answer = Some(other);
                    break;
                }
            }
        }
        invalidate::invalidate(self.store, self.clock, self.cfg, std::slice::from_ref(key))?;
        let answer = answer.ok_or(RequestError::ChangedConcurrently)?;
        self.events.push(Event::PassedThroughWrite);
        pass::relay_write(answer)
    }

    /// One attempt of [`Cx::pass_write`]: the item write to send. When it `reads_first`,
    /// the DB API's current value is read, the caller's preconditions judged against it
    /// (`412` when they fail), a `PATCH` merged into it, and the write conditioned on it.
    fn pass_write_attempt(
        &mut self,
        req: &WriteRequest,
        key: &CacheKey,
        caller: &Caller,
        body: Option<&Value>,
        reads_first: bool,
        idempotency_key: &str,
    ) -> Result<origin::ItemWrite, RequestError> {
        let mut write = origin::ItemWrite {
            method: "PUT",
            path: crate::contract::item_path(key.ns(), key.key()),
            authorization: caller.authorization().map(str::to_owned),
            idempotency_key: idempotency_key.to_owned(),
            body: Vec::new(),
            if_match: None,
            if_none_match: None,
        };
        // A PATCH's merge result; any other write sends its own body.
        let mut merged = None;
        if reads_first {
            let asked = self.fetch(key, caller.authorization(), None)?;
            let (current, etag) = match asked.fetched.answer {
                OriginAnswer::Found { value, etag, .. } => (
                    Some(serde_json::from_slice::<Value>(&value).unwrap_or(Value::Null)),
                    etag,
                ),
                _ => (None, None),
            };
            check_preconditions_on(
                current.as_ref().map(|_| etag.as_deref()),
                req.if_match.as_deref(),
                req.if_none_match.as_deref(),
            )?;
            // A value without an ETag cannot be named: that write goes unconditioned.
            match (&current, etag) {
                (None, _) => write.if_none_match = Some("*".to_owned()),
                (Some(_), etag) => write.if_match = etag,
            }
            if let (Some(patch), Op::Patch(_)) = (body, &req.op) {
                merged = Some(merge_patch(current.as_ref().unwrap_or(&Value::Null), patch));
            }
        }
        let value = merged.as_ref().or(body);
        match value {
            Some(v) => write.body = serde_json::to_vec(v).unwrap_or_default(),
            None => write.method = "DELETE",
        }
        Ok(write)
    }

    /// The write after authorization (steps 3–10 of the module docs). A `claim` is taken
    /// just before the buffer record is stored and marked done after.
    fn perform(
        &mut self,
        req: &WriteRequest,
        key: &CacheKey,
        caller: &Caller,
        subject: &str,
        body: Option<Value>,
        claim: &mut Option<idempotency::Claim>,
    ) -> Result<Reply, RequestError> {
        let is_patch = matches!(req.op, Op::Patch(_));
        let needs_base = is_patch || req.if_match.is_some() || req.if_none_match.is_some();
        let base = if needs_base {
            gate::check_rules(self.cfg, caller, key, Access::Read)?;
            Some(self.read(caller, key, false)?.entry)
        } else {
            None
        };
        check_preconditions(
            base.as_ref(),
            req.if_match.as_deref(),
            req.if_none_match.as_deref(),
        )?;
        let change = match body {
            Some(patch) if is_patch => {
                let target = base
                    .as_ref()
                    .and_then(Entry::body)
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                    .unwrap_or(Value::Null);
                let merged = merge_patch(&target, &patch);
                // The patch is within the limit; the document it lands on may not be.
                let d = depth(&merged);
                if d > MAX_DOCUMENT_DEPTH {
                    return Err(RequestError::BadRequest(format!(
                        "the patched document would nest {d} levels deep, over the {MAX_DOCUMENT_DEPTH}-level limit"
                    )));
                }
                Change::Put(merged)
            }
            Some(value) => Change::Put(value),
            None => Change::Delete,
        };
        let now = self.clock.now();
        let current = self
            .store
            .get(&key.kv_key())?
            .and_then(|b| envelope::decode(&b).ok());
        // A Spin instance serves one request, and a request makes one write: the random
        // number is the instance id and the per-instance sequence is 0. A write with an
        // Idempotency-Key carries the stamp its claim names.
        let stamp = claim
            .as_ref()
            .map_or_else(|| Stamp::new(now, 0, self.rand), |c| c.stamp);
        let prepared = prepare_write(
            key,
            change,
            Some(subject),
            current.as_ref(),
            stamp,
            now,
            self.cfg,
        )
        .map_err(|e| match e {
            WriteError::TooLarge { .. } | WriteError::Envelope(EnvelopeError::TooLarge { .. }) => {
                RequestError::TooLarge(e.to_string())
            }
            other => RequestError::Internal(other.to_string()),
        })?;
        check_admission(self.store, &prepared, now, self.cfg)?;
        if let Some(c) = claim.as_ref() {
            c.confirm(self.store)?;
        }
        // From here the claim stays: a failed store may have stored the record, and a
        // lapsed claim is recovered from it.
        let held = claim.take();
        let buffered = store_record(self.store, &prepared)?;
        if let Some(held) = held {
            held.finish(self.store, &reply::write_etag(stamp), now);
        }
        if let EntryUpdate::Store(bytes) = &prepared.entry {
            store_entry(self.store, self.clock, &prepared.entry_key, bytes, stamp)?;
        }
        self.events.push(Event::WriteBuffered);
        Ok(accepted(buffered))
    }
}

/// Whether a stored entry holds a write the DB API has not received yet.
fn is_dirty(stored: Option<&[u8]>) -> bool {
    stored
        .and_then(|b| envelope::decode(b).ok())
        .is_some_and(|e| e.is_dirty())
}

/// The deepest nesting a written document may have: arrays and objects inside one another,
/// the document itself one level.
///
/// serde_json refuses text nested past 128 levels, and a buffered write travels wrapped:
/// its buffer record holds the value one level down, and the DB API's batch three
/// (`{"writes": [{"value": …}]}`). A deeper document could be acknowledged and then never
/// be read back from its own record: a dead letter. 100 leaves room for both.
pub(crate) const MAX_DOCUMENT_DEPTH: usize = 100;

/// The body of a `PUT` or `PATCH` as JSON, within the size and nesting limits.
fn json_body(bytes: &[u8], cfg: &CacheConfig) -> Result<Value, RequestError> {
    let limit = cfg.max_value_bytes.min(MAX_KV_VALUE_BYTES);
    if bytes.len() > limit {
        return Err(RequestError::TooLarge(format!(
            "body is {} bytes, over the {limit}-byte limit",
            bytes.len()
        )));
    }
    let value = serde_json::from_slice(bytes).map_err(|e| RequestError::BadJson(e.to_string()))?;
    match depth(&value) {
        d if d > MAX_DOCUMENT_DEPTH => Err(RequestError::BadJson(format!(
            "nested {d} levels deep, over the {MAX_DOCUMENT_DEPTH}-level limit"
        ))),
        _ => Ok(value),
    }
}

/// How deep `value` nests: 0 for a scalar, 1 for an array or object of scalars.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `If-Match` and `If-None-Match` against the current value (RFC 9110 13.1.1–2).
fn check_preconditions(
    base: Option<&Entry>,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<(), RequestError> {
    let current = base
        .filter(|e| e.kind == EntryKind::Value)
        .map(|e| e.etag.as_deref());
    check_preconditions_on(current, if_match, if_none_match)
}

/// [`check_preconditions`] against the current value's ETag: `None` when there is no value,
/// `Some(None)` for a value without one ([`cache_sync_contract::precondition::holds`]).
fn check_preconditions_on(
    current: Option<Option<&str>>,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<(), RequestError> {
    if cache_sync_contract::precondition::holds(current, if_match, if_none_match) {
        Ok(())
    } else {
        Err(RequestError::PreconditionFailed)
    }
}

/// Backpressure: whether the buffer takes the prepared record. The buffer's size is the last
/// flush run's measure plus the writes counted since ([`measure`]), never a listing: a
/// write costs the same whatever the store holds.
fn check_admission(
    store: &mut impl KvStore,
    prepared: &PreparedWrite,
    now: UnixMillis,
    cfg: &CacheConfig,
) -> Result<(), RequestError> {
    let state = FlushState::load(store)?;
    let incoming = u64::try_from(prepared.record.len()).unwrap_or(u64::MAX);
    let stats = measure::count_write(store, &state, incoming, now)?;
    match admit(&stats, incoming, now, cfg) {
        Admission::Accept => Ok(()),
        Admission::Reject {
            reason,
            retry_after,
        } => Err(RequestError::Backpressure {
            reason: match reason {
                Backpressure::TooManyWrites => "too many buffered writes",
                Backpressure::TooManyBytes => "too many buffered bytes",
                Backpressure::TooOld => "oldest buffered write too old",
            },
            retry_after,
        }),
    }
}

/// Stores the buffer record: the durability point. The returned proof is what
/// [`reply::accepted`] needs.
fn store_record(
    store: &mut impl KvStore,
    prepared: &PreparedWrite,
) -> Result<Buffered, RequestError> {
    store.set(&prepared.record_key, &prepared.record)?;
    Ok(Buffered {
        stamp: prepared.write.stamp,
    })
}

/// Stores the dirty entry of the write stamped `stamp` unless the entry already shows a
/// newer write ([`is_newer_than`], the rule [`prepare_write`] applies), then checks it is
/// still there. Without compare-and-swap a concurrent older writer can overwrite it between
/// our check and our store; re-checking and re-storing (a few rounds) leaves the newest
/// writer's entry in place in all but the tightest races. A flush or sweep rewriting entries
/// at that moment may have read the entry before we stored it and write back after we
/// checked: we wait out its rewrite window ([`rewrite_window::wait_out`]) and check again.
/// The buffer records are unaffected either way: the flush delivers the newest by stamp.
fn store_entry(
    store: &mut impl KvStore,
    clock: &mut impl Clock,
    entry_key: &str,
    bytes: &[u8],
    stamp: Stamp,
) -> Result<(), RequestError> {
    for _ in 0..3 {
        let now = store
            .get(entry_key)?
            .and_then(|b| envelope::decode(&b).ok());
        if now.as_ref().is_some_and(|e| is_newer_than(e, stamp)) {
            return Ok(());
        }
        store.set(entry_key, bytes)?;
        let after = store
            .get(entry_key)?
            .and_then(|b| envelope::decode(&b).ok());
        let stayed = after
            .and_then(|e| e.dirty)
            .is_some_and(|d| d.stamp >= stamp);
        if stayed && !rewrite_window::wait_out(store, clock)? {
            return Ok(());
        }
    }
    Ok(())
}
