//! Fault injection: make the origin slow, flaky, throttled, down or lying, on purpose.
//!
//! The reliability tests of cache-sync must show that reads degrade gracefully and that no
//! write is lost or applied twice whatever the origin does. These faults are the "whatever":
//! they are set at start (CLI) or at run time (`POST /_faults`) and apply to `/v1/*` only, so
//! the test-only `_` routes keep working to turn them off again.
//!
//! Every fault except `garbage_after_commit` acts *before* the handler runs, so nothing is
//! stored; `garbage_after_commit` applies the batch and then answers garbage, which is
//! exactly "the database applied it but the client never learned", the case that idempotent
//! resend exists for. `skip_write_guards` is of another kind: it does not fail requests but
//! makes the store apply every write as received, without the write-id check or the version
//! guard, as a DB API with neither would; a write delivered twice is then applied twice, which
//! shows that `writes_applied_twice` in `/_stats` catches it. Random faults draw from a seeded
//! generator, so a test that sets the same config and sends the same requests sees the same
//! faults.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::ApiError;
use crate::stats::bump;

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Routes {
    /// Item reads and batches.
    #[default]
    All,
    /// `GET /v1/items/...` only.
    Reads,
    /// `POST /v1/batch` only.
    Batches,
}

/// The kind of `/v1` request, for [`Routes`] and per-route latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// An item read.
    Read,
    /// A batch write.
    Batch,
    /// Anything else under `/v1` (unknown paths).
    Other,
}

impl Routes {
    fn matches(self, class: RouteClass) -> bool {
        match self {
            Routes::All => true,
            Routes::Reads => class == RouteClass::Read,
            Routes::Batches => class == RouteClass::Batch,
        }
    }
}

/// When a fault fires: for the next `next` matching requests, then for a `rate` fraction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trigger {
    /// Fire for this many upcoming matching requests (counts down).
    pub next: u64,
    /// Then fire for this fraction (0..=1) of matching requests, drawn from the seed.
    pub rate: f64,
    /// Which requests match.
    pub routes: Routes,
}

impl Trigger {
    fn is_set(&self) -> bool {
        self.next > 0 || self.rate > 0.0
    }
}

/// How a "down" origin behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownMode {
    /// Answer `503` with `Retry-After` at once.
    Unavailable,
    /// Drop the connection without a complete answer.
    Close,
}

/// What a garbage body looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GarbageKind {
    /// A JSON answer cut in the middle.
    #[default]
    Truncated,
    /// An HTML error page with a `200`.
    Html,
    /// An empty body.
    Empty,
}

impl GarbageKind {
    fn body(self) -> &'static str {
        match self {
            GarbageKind::Truncated => "{\"results\":[{\"status\":\"appl",
            GarbageKind::Html => "<html><body><h1>502 Bad Gateway</h1></body></html>",
            GarbageKind::Empty => "",
        }
    }
}

fn default_retry_after() -> u64 {
    1
}
fn default_hold_ms() -> u64 {
    30_000
}
fn default_error_status() -> u16 {
    500
}

/// The fault configuration: the body of `POST /_faults` and `GET /_faults`.
///
/// Every field is optional; `{}` means no fault. A `POST` replaces the whole configuration
/// and restarts the random sequence from `seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the generator behind every `rate`.
    pub seed: u64,
    /// Added delay for every `/v1` request, in ms.
    pub latency_ms: u64,
    /// Added delay for item reads, replacing `latency_ms` when set.
    pub read_latency_ms: Option<u64>,
    /// Added delay for batches, replacing `latency_ms` when set.
    pub batch_latency_ms: Option<u64>,
    /// Up to this many extra ms, drawn from the seed, on top of the latency.
    pub jitter_ms: u64,
    /// Answer `error_status` (a 5xx) instead of serving.
    pub error: Trigger,
    /// Status of injected errors (500..=599).
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    /// Answer `429` with `Retry-After: retry_after_secs`.
    pub throttle: Trigger,
    /// The `Retry-After` of throttled answers, in seconds.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
    /// Hold the request for `hold_ms`, then answer `504`; nothing is stored.
    pub timeout: Trigger,
    /// How long a timed-out request is held, in ms.
    #[serde(default = "default_hold_ms")]
    pub hold_ms: u64,
    /// Answer `200` with a garbage body; nothing is stored.
    pub garbage: Trigger,
    /// What garbage bodies look like.
    pub garbage_kind: GarbageKind,
    /// Batches only: apply the batch, then answer `200` with a garbage body.
    pub garbage_after_commit: Trigger,
    /// When set, every `/v1` request and `/healthz` fails this way.
    pub down: Option<DownMode>,
    /// Writes to these keys (`"ns/key"`, split at the first `/`) are answered `rejected`.
    pub reject_keys: Vec<String>,
    /// Batches: apply every write as received, skipping the write-id check (no `duplicate`
    /// answers) and the version guard (no `stale` answers), like a DB API with neither. Write
    /// ids are still recorded.
    pub skip_write_guards: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            latency_ms: 0,
            read_latency_ms: None,
            batch_latency_ms: None,
            jitter_ms: 0,
            error: Trigger::default(),
            error_status: default_error_status(),
            throttle: Trigger::default(),
            retry_after_secs: default_retry_after(),
            timeout: Trigger::default(),
            hold_ms: default_hold_ms(),
            garbage: Trigger::default(),
            garbage_kind: GarbageKind::default(),
            garbage_after_commit: Trigger::default(),
            down: None,
            reject_keys: Vec::new(),
            skip_write_guards: false,
        }
    }
}

/// A fault configuration that makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultConfigError {
    /// A rate outside `0..=1`.
    #[error("{0}.rate must be between 0 and 1, got {1}")]
    Rate(&'static str, f64),
    /// `error_status` is not a 5xx.
    #[error("error_status must be 500..=599, got {0}")]
    ErrorStatus(u16),
    /// A `reject_keys` entry without a `/`.
    #[error("reject_keys entry {0:?} must look like \"ns/key\"")]
    RejectKey(String),
}

impl FaultConfig {
    /// Checks ranges; a config that passes can be installed.
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (name, t) in [
            ("error", &self.error),
            ("throttle", &self.throttle),
            ("timeout", &self.timeout),
            ("garbage", &self.garbage),
            ("garbage_after_commit", &self.garbage_after_commit),
        ] {
            if !(0.0..=1.0).contains(&t.rate) {
                return Err(FaultConfigError::Rate(name, t.rate));
            }
        }
        if !(500..=599).contains(&self.error_status) {
            return Err(FaultConfigError::ErrorStatus(self.error_status));
        }
        for k in &self.reject_keys {
            if split_key(k).is_none() {
                return Err(FaultConfigError::RejectKey(k.clone()));
            }
        }
        Ok(())
    }

    fn latency(&self, class: RouteClass) -> u64 {
        match class {
            RouteClass::Read => self.read_latency_ms.unwrap_or(self.latency_ms),
            RouteClass::Batch => self.batch_latency_ms.unwrap_or(self.latency_ms),
            RouteClass::Other => self.latency_ms,
        }
    }
}

fn split_key(s: &str) -> Option<(String, String)> {
    let (ns, key) = s.split_once('/')?;
    (!ns.is_empty() && !key.is_empty()).then(|| (ns.to_owned(), key.to_owned()))
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve it; for a batch, maybe garble the answer after the commit.
    Serve {
        /// Replace a `200` answer with garbage after the handler ran.
        garbage_after_commit: bool,
    },
    /// Fail as down.
    Down(DownMode),
    /// Hold, then `504`.
    Timeout,
    /// `429`.
    Throttle,
    /// `5xx`.
    Error,
    /// `200` with garbage, nothing stored.
    Garbage,
}

/// SplitMix64: tiny, seedable, good enough to pick which requests fail.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Live {
    config: FaultConfig,
    rejected: HashSet<(String, String)>,
    rng: Rng,
}

impl Live {
    fn new(config: FaultConfig) -> Self {
        let rejected = config
            .reject_keys
            .iter()
            .filter_map(|k| split_key(k))
            .collect();
        let rng = Rng(config.seed);
        Self {
            config,
            rejected,
            rng,
        }
    }

    fn fires(trigger: &mut Trigger, rng: &mut Rng, class: RouteClass) -> bool {
        if !trigger.is_set() || !trigger.routes.matches(class) {
            return false;
        }
        if trigger.next > 0 {
            trigger.next -= 1;
            return true;
        }
        trigger.rate > 0.0 && rng.next_f64() < trigger.rate
    }
}

/// The live fault configuration of a server.
pub struct Faults {
    live: Mutex<Live>,
}

impl Faults {
    /// Starts with `config` (assumed valid).
    pub fn new(config: FaultConfig) -> Self {
        Self {
            live: Mutex::new(Live::new(config)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the configuration (after validating it) and restarts the random sequence.
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        config.validate()?;
        *self.lock() = Live::new(config);
        Ok(())
    }

    /// The current configuration, with `next` counters as they stand now.
    pub fn get(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// Whether the origin is set to be down.
    pub fn down(&self) -> Option<DownMode> {
        self.lock().config.down
    }

    /// Whether batches skip the write-id check and the version guard.
    pub fn skip_write_guards(&self) -> bool {
        self.lock().config.skip_write_guards
    }

    /// Whether writes to this key must be rejected.
    pub fn is_rejected(&self, ns: &str, key: &str) -> bool {
        let live = self.lock();
        !live.rejected.is_empty() && live.rejected.contains(&(ns.to_owned(), key.to_owned()))
    }

    /// Decides the fate of one request: the delay to add, then what to do.
    pub fn decide(&self, class: RouteClass) -> (Duration, Action) {
        let mut guard = self.lock();
        let live = &mut *guard;
        let mut delay = live.config.latency(class);
        if live.config.jitter_ms > 0 {
            delay += live.rng.next_u64() % (live.config.jitter_ms + 1);
        }
        let delay = Duration::from_millis(delay);
        let cfg = &mut live.config;
        let rng = &mut live.rng;
        let action = if let Some(mode) = cfg.down {
            Action::Down(mode)
        } else if Live::fires(&mut cfg.timeout, rng, class) {
            Action::Timeout
        } else if Live::fires(&mut cfg.throttle, rng, class) {
            Action::Throttle
        } else if Live::fires(&mut cfg.error, rng, class) {
            Action::Error
        } else if Live::fires(&mut cfg.garbage, rng, class) {
            Action::Garbage
        } else {
            Action::Serve {
                garbage_after_commit: class == RouteClass::Batch
                    && Live::fires(&mut cfg.garbage_after_commit, rng, class),
            }
        };
        (delay, action)
    }

    fn params(&self) -> (u64, Duration, StatusCode, GarbageKind) {
        let live = self.lock();
        let c = &live.config;
        (
            c.retry_after_secs,
            Duration::from_millis(c.hold_ms),
            StatusCode::from_u16(c.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            c.garbage_kind,
        )
    }
}

/// A response body that fails at once, which makes the server drop the connection.
struct AbortBody;

impl http_body::Body for AbortBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: connection closed",
        ))))
    }
}

/// The answer of a "down" origin.
pub fn down_response(mode: DownMode) -> Response {
    match mode {
        DownMode::Unavailable => ApiError::Down.into_response(),
        DownMode::Close => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONNECTION, "close")
            .body(Body::new(AbortBody))
            .unwrap_or_else(|_| ApiError::Down.into_response()),
    }
}

fn garbage(kind: GarbageKind) -> Response {
    let mut response = (StatusCode::OK, kind.body()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn classify(method: &Method, path: &str) -> RouteClass {
    if path.starts_with("/v1/items/") && (method == Method::GET || method == Method::HEAD) {
        RouteClass::Read
    } else if path == cache_sync_contract::wire::BATCH_PATH && method == Method::POST {
        RouteClass::Batch
    } else {
        RouteClass::Other
    }
}

/// Middleware for `/v1/*`: applies the configured faults around the handler.
pub async fn inject(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let class = classify(request.method(), request.uri().path());
    let faults = &state.faults;
    let counters = &state.counters;
    let (delay, action) = faults.decide(class);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (retry_after, hold, error_status, garbage_kind) = faults.params();
    match action {
        Action::Down(mode) => {
            bump(&counters.fault_down);
            down_response(mode)
        }
        Action::Timeout => {
            bump(&counters.fault_timeouts);
            state.hold(hold).await;
            ApiError::Timeout.into_response()
        }
        Action::Throttle => {
            bump(&counters.fault_throttled);
            ApiError::Throttled(retry_after).into_response()
        }
        Action::Error => {
            bump(&counters.fault_errors);
            ApiError::Injected(error_status).into_response()
        }
        Action::Garbage => {
            bump(&counters.fault_garbage);
            garbage(garbage_kind)
        }
        Action::Serve {
            garbage_after_commit,
        } => {
            let response = next.run(request).await;
            if garbage_after_commit && response.status() == StatusCode::OK {
                bump(&counters.fault_garbage_after_commit);
                garbage(garbage_kind)
            } else {
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_reproducible_from_the_seed() {
        let config = FaultConfig {
            seed: 7,
            error: Trigger {
                rate: 0.3,
                ..Trigger::default()
            },
            ..FaultConfig::default()
        };
        let run = || {
            let f = Faults::new(config.clone());
            (0..200)
                .map(|_| f.decide(RouteClass::Read).1 == Action::Error)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|&&x| x).count();
        assert!((40..=80).contains(&hits), "{hits} of 200 at rate 0.3");
    }

    #[test]
    fn next_counts_down_and_respects_routes() {
        let f = Faults::new(FaultConfig {
            throttle: Trigger {
                next: 2,
                routes: Routes::Batches,
                ..Trigger::default()
            },
            ..FaultConfig::default()
        });
        assert!(matches!(f.decide(RouteClass::Read).1, Action::Serve { .. }));
        assert_eq!(f.decide(RouteClass::Batch).1, Action::Throttle);
        assert_eq!(f.get().throttle.next, 1);
        assert_eq!(f.decide(RouteClass::Batch).1, Action::Throttle);
        assert!(matches!(
            f.decide(RouteClass::Batch).1,
            Action::Serve { .. }
        ));
    }

    #[test]
    fn validation_rejects_nonsense() {
        let bad = FaultConfig {
            error: Trigger {
                rate: 1.5,
                ..Trigger::default()
            },
            ..FaultConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = FaultConfig {
            reject_keys: vec!["nokey".into()],
            ..FaultConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = FaultConfig {
            error_status: 404,
            ..FaultConfig::default()
        };
        assert!(bad.validate().is_err());
        let nan = FaultConfig {
            garbage: Trigger {
                rate: f64::NAN,
                ..Trigger::default()
            },
            ..FaultConfig::default()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn empty_json_is_no_fault() {
        let c: FaultConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, FaultConfig::default());
        assert!(c.validate().is_ok());
    }
}
