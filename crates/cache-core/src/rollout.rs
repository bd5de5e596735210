//! The rollout: how much of the traffic the cache serves, changed at run time.
//!
//! Nobody puts a write-behind cache in front of the database that holds their users'
//! sessions in one step. The cache therefore starts where the operator says and moves one
//! call at a time, with a one-call rollback at every step:
//!
//! - `passthrough`: every read and write goes to the DB API with the caller's own
//!   credentials, synchronously, and the caller gets the DB API's answer;
//! - `shadow`: as passthrough for the caller; after the response the cache judges what it
//!   would have served against the DB API's answer ([`compare`]), counts and samples the
//!   verdicts ([`evidence`], `GET /admin/shadow`), and keeps the answer as cutover would
//!   have, so its entries evolve as they would serving the traffic;
//! - `canary`: callers whose bucket ([`bucket`]) is below the canary share are served by the
//!   cache as in cutover, the others pass through; canary callers' writes are buffered when
//!   `canary_writes_buffered` is on, and pass through otherwise;
//! - `cutover`: the cache serves everything (the default, and the behaviour before rollouts
//!   existed).
//!
//! The defaults come from the `rollout_*` variables ([`crate::config`]); `POST
//! /admin/rollout` stores an override in `m:rollout` with a bounded log of changes
//! ([`state`]), effective at the next request; with `rollout_overrides` off the variables
//! alone are the rollout and no request reads the record. Raising the rollout goes through [`gate`];
//! lowering it never does ([`change`]). The per-request decision is [`decide`], a pure
//! function of the state and the caller's bucket. The buffer keeps draining in every mode:
//! the flush does not read the rollout at all, so leaving cutover never strands an
//! acknowledged write.
//!
//! Shadow's verdicts are the gate's evidence: raising the rollout is refused while the
//! recent mismatch rate is above `rollout_max_mismatch`.

pub mod bucket;
pub mod change;
pub mod compare;
pub mod decide;
pub mod evidence;
pub mod gate;
pub mod state;
