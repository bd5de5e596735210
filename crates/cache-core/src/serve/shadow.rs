//! A read in shadow mode ([`crate::rollout`]): the caller gets the DB API's answer, and
//! after the response the cache judges what it would have served.
//!
//! On the request path the only work beyond a pass-through ([`super::pass`]) is that the
//! item is read whole, without the caller's `If-None-Match`, so that it can be compared and
//! kept; the caller's condition is then judged here against the DB API's ETag (a match is
//! the `304` the DB API would have sent). The shared entry, read anyway to route the request,
//! travels with the answer into a [`ShadowRead`], the request's deferred work.
//!
//! After the response, [`settle`]:
//! 1. decides what the cache would have served at the instant of the read, as
//!    [`super::get`] does (the shared entry, then the caller's own), without asking the DB
//!    API anything: a kept grant admits the caller, otherwise the cache would have asked the
//!    DB API whether it may read, which is the answer already at hand
//!    ([`compare::Admission`]);
//! 2. judges it against the DB API's answer ([`compare::judge`]) and counts the verdict
//!    ([`evidence::record`]);
//! 3. keeps the answer where cutover would have, on a would-be miss (a fill) or stale entry
//!    (a revalidation): the cache's entries then evolve as they would serving the traffic,
//!    and a would-be hit rate measured in shadow is the one cutover will have. A fresh hit
//!    stays as it is, also when it mismatched: cutover would have gone on serving it, and
//!    the next reads must say so too. Writes in shadow pass through and invalidate the entry
//!    ([`super::pass`]), so the comparison is of the cache's logic, not of its own
//!    staleness.
//!
//! The cost the caller sees is a pass-through's plus the clone of the answer for the
//! deferred work; the benchmark measures it against direct DB API calls.

use super::origin::{self, ItemAnswer, Unanswered};
use super::pass;
use super::reply::{Reply, RequestError};
use super::{Asked, Cx, Deferred, Event, Found, GetRequest, Origin};
use crate::auth::caller::Caller;
use crate::auth::gate;
use crate::config::CacheConfig;
use crate::entry::Audience;
use crate::key::CacheKey;
use crate::rollout::compare::{self, Admission, Verdict, Would};
use crate::rollout::evidence;
use crate::store::KvStore;
use crate::time::{Clock, UnixMillis};
use cache_sync_contract::precondition::list_matches_weak;

/// A shadow read's deferred work: everything [`settle`] judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowRead {
    /// The item read.
    pub key: CacheKey,
    /// The caller's `Authorization`, to identify it again and to keep the answer as its read
    /// would have.
    pub authorization: Option<String>,
    /// The shared entry as the request read it (`None`: absent).
    pub shared: Option<Vec<u8>>,
    /// The DB API's answer.
    pub answer: Result<ItemAnswer, Unanswered>,
    /// When the read was made.
    pub at: UnixMillis,
}

impl<S: KvStore, O: Origin, C: Clock> Cx<'_, S, O, C> {
    /// Answers a shadow read of `key` with the DB API's answer, and queues its comparison.
    pub(super) fn shadow_read(
        &mut self,
        req: &GetRequest,
        caller: &Caller,
        key: &CacheKey,
        shared: Option<Vec<u8>>,
    ) -> Result<Reply, RequestError> {
        let at = self.clock.now();
        let read = origin::item_read(key, caller.authorization(), None);
        let answer = self.origin.get_item(&read);
        self.events.push(Event::PassedThroughRead);
        self.deferred.push(Deferred::Shadow(Box::new(ShadowRead {
            key: key.clone(),
            authorization: caller.authorization().map(str::to_owned),
            shared,
            answer: answer.clone(),
            at,
        })));
        let unchanged = answer.as_ref().is_ok_and(|a| {
            a.status == 200
                && req
                    .if_none_match
                    .as_deref()
                    .zip(a.etag.as_deref())
                    .is_some_and(|(inm, etag)| list_matches_weak(inm, etag))
        });
        let mut reply = pass::relay(answer)?;
        if unchanged {
            reply.status = 304;
            reply.body.clear();
            reply.headers.retain(|(name, _)| *name != "content-type");
        }
        Ok(reply)
    }

    /// What the cache would have served `caller` for `key` at `at`, given the shared entry
    /// as read then and the caller's own slot (`own`): [`Cx::read_from`]'s choice
    /// ([`Cx::look_up`]) without its effects.
    fn would_serve(
        &mut self,
        caller: &Caller,
        key: &CacheKey,
        own: Option<&CacheKey>,
        shared: Option<Vec<u8>>,
        at: UnixMillis,
    ) -> Result<Would, RequestError> {
        let Some(Found { slot, entry, stale }) =
            self.look_up(key, own, Some(shared), at, true)?.found
        else {
            return Ok(Would::Miss);
        };
        let kept = slot.scope().is_some()
            || entry.audience == Audience::Anyone
            || gate::read_grant_kept(self.store, self.cfg, caller, slot, at)?;
        let admission = if kept {
            Admission::Kept
        } else {
            Admission::AsksOrigin
        };
        Ok(Would::Serve {
            entry,
            stale,
            admission,
        })
    }
}

/// Judges a shadow read after its response (the story in the module docs) and returns the
/// verdict. A store failure while deciding is the error; counting and keeping are best
/// effort.
pub fn settle<S: KvStore, O: Origin, C: Clock>(
    store: &mut S,
    origin: &mut O,
    clock: &mut C,
    rand: u64,
    cfg: &CacheConfig,
    read: ShadowRead,
) -> Result<Verdict, RequestError> {
    let mut cx = Cx::new(store, origin, clock, rand, cfg);
    let ShadowRead {
        key,
        authorization,
        shared,
        answer,
        at,
    } = read;
    let caller = gate::identify(cfg, authorization.as_deref(), at)?;
    let own = caller.own_entry(cfg, &key);
    let would = cx.would_serve(&caller, &key, own.as_ref(), shared, at)?;
    let verdict = compare::judge(&key, &would, &answer, at);
    let now = cx.clock.now();
    evidence::record(cx.store, cfg, now, would.status(), &verdict);
    let keeps = match &would {
        Would::Miss => true,
        Would::Serve { stale, .. } => *stale,
    };
    if keeps {
        if let Ok(fetched) = origin::classify(answer) {
            let _ = cx.keep(&caller, &key, own, Asked { fetched, at });
        }
    }
    Ok(verdict)
}
