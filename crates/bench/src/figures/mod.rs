//! The figures of the benchmark, one module each, in the numbering (figure 11,
//! auth, has a DB API of its own with auth on).
//!
//! Every figure takes the running systems from [`Ctx`] and returns rows for the report;
//! each row carries the baseline it was measured against in the same run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::client::{DbControl, Http};
use crate::load::{self, MakeReq, Outcome, Plan, Req, Stop};

pub mod auth;
pub mod cost;
pub mod flush;
pub mod hit;
pub mod keep_alive;
pub mod million;
pub mod miss;
pub mod offload;
pub mod rollout;
pub mod scale;
pub mod stampede;
pub mod startup;
pub mod storage;
pub mod write_scale;
pub mod writes;

/// What every figure needs.
pub struct Ctx<'a> {
    /// Control client.
    pub http: &'a Http,
    /// DB API base URL.
    pub db_url: &'a str,
    /// Short run (smoke test): fewer requests, shorter windows.
    pub quick: bool,
}

impl Ctx<'_> {
    /// The DB API's test routes.
    pub fn db(&self) -> DbControl<'_> {
        DbControl {
            http: self.http,
            url: self.db_url,
        }
    }

    /// How long one latency/throughput window lasts.
    pub fn window(&self) -> Duration {
        if self.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        }
    }
}

/// Unrecorded requests before a measured window: the first requests after a change of
/// target pay one-off costs (connection set-up, cold instance pools, cold caches).
pub const WARM_UP: u64 = 50;

/// [`get_load`] after [`WARM_UP`] unrecorded requests on the same path.
pub async fn warm_get_load(
    base: &str,
    path: String,
    connections: usize,
    stop: Stop,
) -> Result<Outcome> {
    get_load(base, path.clone(), connections, Stop::Requests(WARM_UP)).await?;
    get_load(base, path, connections, stop).await
}

/// A closed-loop run of `GET path` on `base` over `connections` for `stop`.
pub async fn get_load(base: &str, path: String, connections: usize, stop: Stop) -> Result<Outcome> {
    let make: MakeReq = Arc::new(move |_| Req::get(path.clone()));
    load::run(Plan {
        authority: load::authority(base).to_owned(),
        connections,
        stop,
        make,
        seed: 1,
    })
    .await
}
