//! Runtime configuration, read from Spin variables through a lookup function.
//!
//! The components pass what the `cache_settings` component variable holds ([`bundle`]: every
//! variable in one host call), falling back to `|name| spin_sdk::variables::get(name).ok()`
//! for each; tests pass a table. A
//! declared Spin variable cannot be absent, so an empty string means "unset, use the default".
//! Every error names the variable it is about; secret values are never echoed.
//!
//! | variable                | default          | meaning                                          |
//! |-------------------------|------------------|--------------------------------------------------|
//! | `db_api_url`            | required         | base URL of the main DB API (http or https)      |
//! | `db_api_token`          | unset            | bearer token for the DB API                      |
//! | `ttl`                   | `60s`            | how long a fetched value is fresh                |
//! | `stale_ttl`             | `300s`           | after that, served stale while revalidating      |
//! | `stale_if_error`        | `3600s`          | after fresh, served stale when the origin fails  |
//! | `negative_ttl`          | `30s`            | how long "not found" is cached                   |
//! | `origin_timeout`        | `5s`             | longest wait for a DB API read                   |
//! | `compress_min_bytes`    | `1024`           | deflate values at least this long                |
//! | `max_value_bytes`       | `960KiB`         | largest accepted value (≤ 960 KiB)               |
//! | `max_entries`           | `1000`           | cache entries kept by the sweep                  |
//! | `sweep_slice`           | `4096`           | entries the sweep reads per tick (≥ 1024)        |
//! | `max_buffered_writes`   | `500`            | buffered writes before writes are refused        |
//! | `max_buffered_bytes`    | `8MiB`           | buffered bytes before writes are refused         |
//! | `max_dirty_age`         | `600s`           | oldest buffered write before writes are refused  |
//! | `flush_batch_max_items` | `100`            | writes per batch                                 |
//! | `flush_batch_max_bytes` | `512KiB`         | bytes per batch (≤ 768 KiB)                      |
//! | `flush_max_batches`     | `10`             | batches sent per flush run                       |
//! | `flush_max_attempts`    | `20`             | attempts before a batch is dead-lettered         |
//! | `flush_retry_base`      | `1s`             | first retry delay                                |
//! | `flush_retry_max`       | `300s`           | largest retry delay                              |
//! | `flush_timeout`         | `10s`            | connect/first-byte/between-bytes, batch request  |
//! | `lease_ttl`             | `60s`            | how long a flush run holds the lease             |
//! | `kv_store`              | `default`        | the key-value store label                        |
//! | `buffer_store`          | `kv_store`'s     | store label of buffered work (see below)         |
//! | `admin_token`           | unset            | bearer token for `/admin` routes                 |
//! | `invalidate_secret`     | unset            | shared secret of the DB API's change webhook     |
//! | `metrics_hit_sample`    | `16`             | count fresh hits one in N (adding N)             |
//! | `auth_mode`             | `origin`         | who decides access: `origin`, `grant` or `jwt`   |
//! | `auth_key`              | unset            | secret for keyed digests of credentials          |
//! | `grant_ttl`             | `60s`            | how long an access decision is kept (≤ 1h)       |
//! | `jwt_jwks`              | unset            | JWKS document (JSON) whose keys sign bearer JWTs |
//! | `jwt_issuer`            | unchecked        | the `iss` a JWT must have                        |
//! | `jwt_audience`          | unchecked        | the `aud` a JWT must contain                     |
//! | `jwt_leeway`            | `60s`            | clock skew allowed on `exp`/`nbf` (≤ 5m)         |
//! | `auth_rules`            | unset            | per-namespace access rules (JSON)                |
//!
//! The JWT variables are parsed here, once per load, into a [`JwtVerifier`] (see
//! [`crate::auth::jwt`]); `auth_rules` into [`Rules`] (see [`crate::auth::rules`]). A bad key
//! set or bad rules fail the load like any other bad value; `jwt_issuer`, `jwt_audience` or
//! `jwt_leeway` without `jwt_jwks` are refused too, since nothing would read them. The key set
//! may hold HMAC secrets, so its errors never quote it.
//! | `rate_limit_read`       | `600/60s`        | reads per caller and window, or `off`            |
//! | `rate_limit_write`      | `120/60s`        | writes per caller and window, or `off`           |
//! | `rate_limit_admin`      | `30/60s`         | admin requests per client address, or `off`      |
//! | `rollout_mode`          | `cutover`        | `passthrough`, `shadow`, `canary` or `cutover`   |
//! | `rollout_canary_share`  | `0`              | canary callers, percent of buckets (0–100)       |
//! | `rollout_canary_writes_buffered` | `false` | canary callers' writes go through the buffer     |
//! | `rollout_max_mismatch`  | `1`              | the gate's largest shadow mismatch rate, percent |
//! | `rollout_gate_window`   | `15m`            | the gate judges this window and the one before   |
//! | `rollout_overrides`     | `true`           | `POST /admin/rollout` may override the above at run time (each request then reads the override); `false` fixes them |
//!
//! Durations are plain seconds or suffixed (`500ms`, `30s`, `5m`, `1h`); sizes are plain bytes
//! or suffixed (`512KiB`, `1MiB`); budgets are `{requests}/{window}` with the window in whole
//! seconds ([`crate::limit`] says why these defaults). The `rollout_*` variables are the
//! rollout's defaults; `POST /admin/rollout` overrides them at run time ([`crate::rollout`]). Fermyon Cloud caps a store at 1024 keys; cache entries,
//! buffered writes, batches and dead letters share it, so keep `max_entries` plus
//! `max_buffered_writes` below that when deploying there.
//!
//! `buffer_store` names a second store for buffered work (writes, batches, dead letters, the
//! flush's bookkeeping and the metrics counters; [`crate::stored::kv_key::Area`]), so the
//! flush lists the buffer, not the cache. Where the platform offers several labels (local
//! Spin with a runtime config, SpinKube, Redis) list it in both components'
//! `key_value_stores`; empty or equal to `kv_store` keeps everything in one store, the only
//! choice on Fermyon Cloud and Akamai Functions.

pub mod bundle;

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::auth::jwt::{JwtConfigError, JwtVerifier, MAX_LEEWAY};
use crate::auth::rules::Rules;
use crate::envelope::CodecPolicy;
use crate::limit::{Budget, RateLimits};
use crate::rollout::state::{Mode, RolloutState};
use crate::stored::kv_key::MAX_KV_VALUE_BYTES;

/// Room kept free in a 1 MiB KV value for envelope, record and batch overhead.
pub const VALUE_HEADROOM_BYTES: usize = 64 * 1024;
/// The largest `max_value_bytes` allowed: what still fits a KV value with headroom.
pub const MAX_VALUE_BYTES: usize = MAX_KV_VALUE_BYTES - VALUE_HEADROOM_BYTES;
/// The largest `flush_batch_max_bytes` allowed, so a sealed batch fits a KV value.
pub const MAX_BATCH_BYTES: usize = 768 * 1024;

/// The default `sweep_slice`: a tick reads about this many entries, a fraction of a second
/// even one `get` at a time (Spin's Redis store), and a million entries are swept in about
/// 250 ticks.
pub const DEFAULT_SWEEP_SLICE: usize = 4096;
/// The smallest `sweep_slice`: Fermyon Cloud's whole store (1024 keys) always fits one
/// slice, so a cache there is swept whole, with exact eviction, whatever is configured.
pub const MIN_SWEEP_SLICE: usize = 1024;

/// Names of the Spin variables read by [`CacheConfig::from_lookup`].
pub mod var {
    /// Base URL of the DB API.
    pub const DB_API_URL: &str = "db_api_url";
    /// Bearer token for the DB API.
    pub const DB_API_TOKEN: &str = "db_api_token";
    /// Fresh lifetime.
    pub const TTL: &str = "ttl";
    /// Stale-while-revalidate window.
    pub const STALE_TTL: &str = "stale_ttl";
    /// Stale-if-error window.
    pub const STALE_IF_ERROR: &str = "stale_if_error";
    /// Negative entry lifetime.
    pub const NEGATIVE_TTL: &str = "negative_ttl";
    /// Read timeout.
    pub const ORIGIN_TIMEOUT: &str = "origin_timeout";
    /// Compression threshold.
    pub const COMPRESS_MIN_BYTES: &str = "compress_min_bytes";
    /// Largest value.
    pub const MAX_VALUE_BYTES: &str = "max_value_bytes";
    /// Entries kept by the sweep.
    pub const MAX_ENTRIES: &str = "max_entries";
    /// Entries the sweep reads per tick.
    pub const SWEEP_SLICE: &str = "sweep_slice";
    /// Buffered write count bound.
    pub const MAX_BUFFERED_WRITES: &str = "max_buffered_writes";
    /// Buffered byte bound.
    pub const MAX_BUFFERED_BYTES: &str = "max_buffered_bytes";
    /// Buffered age bound.
    pub const MAX_DIRTY_AGE: &str = "max_dirty_age";
    /// Writes per batch.
    pub const FLUSH_BATCH_MAX_ITEMS: &str = "flush_batch_max_items";
    /// Bytes per batch.
    pub const FLUSH_BATCH_MAX_BYTES: &str = "flush_batch_max_bytes";
    /// Batches per flush run.
    pub const FLUSH_MAX_BATCHES: &str = "flush_max_batches";
    /// Attempts before dead-lettering.
    pub const FLUSH_MAX_ATTEMPTS: &str = "flush_max_attempts";
    /// First retry delay.
    pub const FLUSH_RETRY_BASE: &str = "flush_retry_base";
    /// Largest retry delay.
    pub const FLUSH_RETRY_MAX: &str = "flush_retry_max";
    /// Lease lifetime.
    pub const LEASE_TTL: &str = "lease_ttl";
    /// Timeout of a batch request to the DB API.
    pub const FLUSH_TIMEOUT: &str = "flush_timeout";
    /// The key-value store label.
    pub const KV_STORE: &str = "kv_store";
    /// The key-value store label of buffered work, when it is kept apart from the cache.
    pub const BUFFER_STORE: &str = "buffer_store";

    /// Every variable [`CacheConfig::from_lookup`](super::CacheConfig::from_lookup) reads:
    /// what a manifest declares and hands to the components.
    pub const ALL: &[&str] = &[
        DB_API_URL,
        DB_API_TOKEN,
        TTL,
        STALE_TTL,
        STALE_IF_ERROR,
        NEGATIVE_TTL,
        ORIGIN_TIMEOUT,
        COMPRESS_MIN_BYTES,
        MAX_VALUE_BYTES,
        MAX_ENTRIES,
        SWEEP_SLICE,
        MAX_BUFFERED_WRITES,
        MAX_BUFFERED_BYTES,
        MAX_DIRTY_AGE,
        FLUSH_BATCH_MAX_ITEMS,
        FLUSH_BATCH_MAX_BYTES,
        FLUSH_MAX_BATCHES,
        FLUSH_MAX_ATTEMPTS,
        FLUSH_RETRY_BASE,
        FLUSH_RETRY_MAX,
        LEASE_TTL,
        FLUSH_TIMEOUT,
        KV_STORE,
        BUFFER_STORE,
        ADMIN_TOKEN,
        INVALIDATE_SECRET,
        METRICS_HIT_SAMPLE,
        AUTH_MODE,
        AUTH_KEY,
        GRANT_TTL,
        JWT_JWKS,
        JWT_ISSUER,
        JWT_AUDIENCE,
        JWT_LEEWAY,
        AUTH_RULES,
        RATE_LIMIT_READ,
        RATE_LIMIT_WRITE,
        RATE_LIMIT_ADMIN,
        ROLLOUT_MODE,
        ROLLOUT_CANARY_SHARE,
        ROLLOUT_CANARY_WRITES_BUFFERED,
        ROLLOUT_MAX_MISMATCH,
        ROLLOUT_GATE_WINDOW,
        ROLLOUT_OVERRIDES,
    ];
    /// Admin bearer token.
    pub const ADMIN_TOKEN: &str = "admin_token";
    /// Secret of the DB API's signed change announcements.
    pub const INVALIDATE_SECRET: &str = "invalidate_secret";
    /// Sampling of the hit counter.
    pub const METRICS_HIT_SAMPLE: &str = "metrics_hit_sample";
    /// Who decides access.
    pub const AUTH_MODE: &str = "auth_mode";
    /// Secret of the keyed credential digests.
    pub const AUTH_KEY: &str = "auth_key";
    /// Lifetime of a kept access decision.
    pub const GRANT_TTL: &str = "grant_ttl";
    /// The JWKS document whose keys verify bearer JWTs.
    pub const JWT_JWKS: &str = "jwt_jwks";
    /// The issuer a JWT must name.
    pub const JWT_ISSUER: &str = "jwt_issuer";
    /// The audience a JWT must name.
    pub const JWT_AUDIENCE: &str = "jwt_audience";
    /// Clock skew allowed when checking a JWT's times.
    pub const JWT_LEEWAY: &str = "jwt_leeway";
    /// Per-namespace access rules.
    pub const AUTH_RULES: &str = "auth_rules";
    /// Read budget per caller.
    pub const RATE_LIMIT_READ: &str = "rate_limit_read";
    /// Write budget per caller.
    pub const RATE_LIMIT_WRITE: &str = "rate_limit_write";
    /// Admin budget per client address.
    pub const RATE_LIMIT_ADMIN: &str = "rate_limit_admin";
    /// The rollout mode by default.
    pub const ROLLOUT_MODE: &str = "rollout_mode";
    /// The canary share by default, percent.
    pub const ROLLOUT_CANARY_SHARE: &str = "rollout_canary_share";
    /// Whether canary callers' writes are buffered, by default.
    pub const ROLLOUT_CANARY_WRITES_BUFFERED: &str = "rollout_canary_writes_buffered";
    /// The gate's largest shadow mismatch rate, percent.
    pub const ROLLOUT_MAX_MISMATCH: &str = "rollout_max_mismatch";
    /// The length of the gate's windows of shadow comparisons.
    pub const ROLLOUT_GATE_WINDOW: &str = "rollout_gate_window";
    /// Whether the rollout may be overridden at run time.
    pub const ROLLOUT_OVERRIDES: &str = "rollout_overrides";
}

/// Who decides what a caller may read and write (see [`crate::auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// The DB API, asked with the caller's own credentials; entries are shared or kept per
    /// caller as its `Cache-Control` allows.
    Origin,
    /// The DB API, as in `Origin`, but answers are kept shared and every caller needs a read
    /// grant (a conditional `GET` with its credentials) before it is served one.
    Grant,
    /// The cache itself: bearer JWTs verified at the edge, access by per-namespace rules.
    Jwt,
}

impl AuthMode {
    fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "origin" => Some(AuthMode::Origin),
            "grant" => Some(AuthMode::Grant),
            "jwt" => Some(AuthMode::Jwt),
            _ => None,
        }
    }
}

/// The longest `grant_ttl`: how stale an access decision may ever be.
pub const MAX_GRANT_TTL: Duration = Duration::from_secs(3600);

/// Why the configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("variable `{0}` is required")]
    Missing(&'static str),
    /// A variable's value does not parse or is out of range.
    #[error("variable `{name}`: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The validated configuration. See the module docs for the defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Base URL of the DB API, without a trailing `/`.
    pub db_api_url: String,
    /// Bearer token for the DB API.
    pub db_api_token: Option<String>,
    /// How long a fetched or written value is fresh.
    pub ttl: Duration,
    /// How long after `ttl` a value is served stale while revalidating.
    pub stale_ttl: Duration,
    /// How long after `ttl` a value is served when the origin fails.
    pub stale_if_error: Duration,
    /// How long a "not found" answer is cached.
    pub negative_ttl: Duration,
    /// Longest wait for a DB API item read (connect, first byte, between bytes).
    pub origin_timeout: Duration,
    /// Values at least this long are deflated if that helps.
    pub compress_min_bytes: usize,
    /// Largest value accepted for a write or cached from the origin.
    pub max_value_bytes: usize,
    /// Cache entries the sweep keeps at most.
    pub max_entries: usize,
    /// Entries the sweep reads in one tick ([`crate::delivery::sweep`]): a cache this size
    /// or smaller is swept whole each tick, a larger one a slice at a time. At least
    /// [`MIN_SWEEP_SLICE`].
    pub sweep_slice: usize,
    /// Buffered writes beyond which writes are refused.
    pub max_buffered_writes: usize,
    /// Buffered bytes beyond which writes are refused.
    pub max_buffered_bytes: u64,
    /// Age of the oldest buffered write beyond which writes are refused.
    pub max_dirty_age: Duration,
    /// Writes per batch.
    pub flush_batch_max_items: usize,
    /// Serialized bytes per batch (a single larger write goes alone).
    pub flush_batch_max_bytes: usize,
    /// Batches sent per flush run.
    pub flush_max_batches: usize,
    /// Failed attempts after which a batch is dead-lettered.
    pub flush_max_attempts: u32,
    /// First retry delay.
    pub flush_retry_base: Duration,
    /// Largest retry delay (a longer `Retry-After` is still honoured).
    pub flush_retry_max: Duration,
    /// How long a flush run holds the lease.
    pub lease_ttl: Duration,
    /// Connect, first-byte and between-bytes timeout of a batch request.
    pub flush_timeout: Duration,
    /// The key-value store label (also listed in the component's `key_value_stores`).
    pub kv_store: String,
    /// The store label of buffered work ([`crate::stored::kv_key::Area::Buffer`]) when it
    /// differs from `kv_store`; `None` keeps everything in `kv_store`.
    pub buffer_store: Option<String>,
    /// Bearer token for the admin routes.
    pub admin_token: Option<String>,
    /// Secret the DB API signs its change announcements with
    /// ([`crate::serve::invalidate::announced`]); without it the webhook route is absent.
    pub invalidate_secret: Option<String>,
    /// Fresh hits are counted one in this many (each counted one adds this many), so that
    /// most hits write nothing to the store; 1 counts every hit.
    pub metrics_hit_sample: u64,
    /// Who decides access.
    pub auth_mode: AuthMode,
    /// Secret key of the credential digests; without it nothing derived from a credential is
    /// stored (no per-caller entries, no kept grants).
    pub auth_key: Option<String>,
    /// How long an access decision (a grant) is kept: the longest a revocation can take.
    pub grant_ttl: Duration,
    /// The bearer JWT verifier, when `jwt_jwks` is set: the parsed key set with the issuer,
    /// audience and leeway it checks. Parsed here so that a request verifies against keys
    /// already decoded and checked.
    pub jwt_verifier: Option<JwtVerifier>,
    /// The per-namespace access rules, when `auth_rules` is set.
    pub auth_rules: Option<Rules>,
    /// The read, write and admin budgets ([`crate::limit`]).
    pub rate_limits: RateLimits,
    /// The rollout state while no run-time override is stored ([`crate::rollout`]).
    pub rollout: RolloutState,
    /// The gate refuses raising the rollout while the shadow mismatch rate, percent, is above
    /// this ([`crate::rollout::gate`]).
    pub rollout_max_mismatch: u8,
    /// The gate judges the shadow comparisons of the current window of this length and the
    /// one before ([`crate::rollout::evidence`]).
    pub rollout_gate_window: Duration,
    /// Whether `POST /admin/rollout` may override [`CacheConfig::rollout`] at run time. Each
    /// request then reads the override record with its entry; `false` spares that read (one
    /// KV read fewer per request, a round trip on Redis) and the rollout is the variables'
    /// alone ([`crate::rollout::state`]).
    pub rollout_overrides: bool,
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("CacheConfig")
            .field("db_api_url", &self.db_api_url)
            .field("db_api_token", &redact(&self.db_api_token))
            .field("ttl", &self.ttl)
            .field("stale_ttl", &self.stale_ttl)
            .field("stale_if_error", &self.stale_if_error)
            .field("negative_ttl", &self.negative_ttl)
            .field("origin_timeout", &self.origin_timeout)
            .field("compress_min_bytes", &self.compress_min_bytes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_entries", &self.max_entries)
            .field("sweep_slice", &self.sweep_slice)
            .field("max_buffered_writes", &self.max_buffered_writes)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_dirty_age", &self.max_dirty_age)
            .field("flush_batch_max_items", &self.flush_batch_max_items)
            .field("flush_batch_max_bytes", &self.flush_batch_max_bytes)
            .field("flush_max_batches", &self.flush_max_batches)
            .field("flush_max_attempts", &self.flush_max_attempts)
            .field("flush_retry_base", &self.flush_retry_base)
            .field("flush_retry_max", &self.flush_retry_max)
            .field("lease_ttl", &self.lease_ttl)
            .field("flush_timeout", &self.flush_timeout)
            .field("kv_store", &self.kv_store)
            .field("buffer_store", &self.buffer_store)
            .field("admin_token", &redact(&self.admin_token))
            .field("invalidate_secret", &redact(&self.invalidate_secret))
            .field("metrics_hit_sample", &self.metrics_hit_sample)
            .field("auth_mode", &self.auth_mode)
            .field("auth_key", &redact(&self.auth_key))
            .field("grant_ttl", &self.grant_ttl)
            // The verifier's Debug shows key ids and algorithms, never key material.
            .field("jwt_verifier", &self.jwt_verifier)
            .field("auth_rules", &self.auth_rules)
            .field("rate_limits", &self.rate_limits)
            .field("rollout", &self.rollout)
            .field("rollout_max_mismatch", &self.rollout_max_mismatch)
            .field("rollout_gate_window", &self.rollout_gate_window)
            .field("rollout_overrides", &self.rollout_overrides)
            .finish()
    }
}

/// Reads variables through a lookup and applies defaults.
struct Reader<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn raw(&self, name: &'static str) -> Option<String> {
        let value = (self.lookup)(name)?;
        let trimmed = value.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == value.len() {
            Some(value)
        } else {
            Some(trimmed.to_owned())
        }
    }

    fn parsed<T>(
        &self,
        name: &'static str,
        default: T,
        parse: fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<T, ConfigError> {
        parse_raw(name, self.raw(name), default, parse, what)
    }

    fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.duration_of(name, self.raw(name), default)
    }

    /// [`Reader::duration`] of a value already looked up with [`Reader::raw`].
    fn duration_of(
        &self,
        name: &'static str,
        raw: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        parse_raw(
            name,
            raw,
            default,
            parse_duration,
            "a duration like 30s, 500ms, 5m or 1h",
        )
    }

    fn bytes(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.parsed(
            name,
            default,
            parse_bytes,
            "a size like 1024, 512KiB or 1MiB",
        )
    }

    fn size_in(
        &self,
        name: &'static str,
        default: usize,
        range: (usize, usize),
    ) -> Result<usize, ConfigError> {
        let v = self.bytes(name, default as u64)?;
        in_range(name, usize::try_from(v).unwrap_or(usize::MAX), range)
    }

    fn count(
        &self,
        name: &'static str,
        default: usize,
        range: (usize, usize),
    ) -> Result<usize, ConfigError> {
        let v = self.parsed(name, default, |s| s.parse().ok(), "a whole number")?;
        in_range(name, v, range)
    }

    fn budget(
        &self,
        name: &'static str,
        default: Option<Budget>,
    ) -> Result<Option<Budget>, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => Budget::parse(&v).map_err(|reason| ConfigError::Invalid { name, reason }),
        }
    }
}

/// `raw` (a value as [`Reader::raw`] returns it) parsed, or `default` when unset.
fn parse_raw<T>(
    name: &'static str,
    raw: Option<String>,
    default: T,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(v) => parse(&v).ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!("expected {what}, got {v:?}"),
        }),
    }
}

/// The JWT verifier from `jwt_jwks`, `jwt_issuer`, `jwt_audience` and `jwt_leeway`.
fn jwt_verifier<F: Fn(&str) -> Option<String>>(
    r: &Reader<F>,
) -> Result<Option<JwtVerifier>, ConfigError> {
    let jwks = r.raw(var::JWT_JWKS);
    let issuer = r.raw(var::JWT_ISSUER);
    let audience = r.raw(var::JWT_AUDIENCE);
    // One lookup of `jwt_leeway` (each is a host call in a component): whether it is set,
    // and its value parsed as `Reader::duration` would.
    let leeway_raw = r.raw(var::JWT_LEEWAY);
    let leeway_set = leeway_raw.is_some();
    let leeway = r.duration_of(var::JWT_LEEWAY, leeway_raw, Duration::from_secs(60))?;
    if leeway > MAX_LEEWAY {
        return Err(ConfigError::Invalid {
            name: var::JWT_LEEWAY,
            reason: format!("must be at most {}s", MAX_LEEWAY.as_secs()),
        });
    }
    let Some(jwks) = jwks else {
        let orphan = [
            (var::JWT_ISSUER, issuer.is_some()),
            (var::JWT_AUDIENCE, audience.is_some()),
            (var::JWT_LEEWAY, leeway_set),
        ];
        return match orphan.into_iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(ConfigError::Invalid {
                name,
                reason: format!("is set but `{}` is not", var::JWT_JWKS),
            }),
            None => Ok(None),
        };
    };
    JwtVerifier::new(&jwks, issuer, audience, leeway)
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            name: match e {
                JwtConfigError::EmptyIssuer => var::JWT_ISSUER,
                JwtConfigError::EmptyAudience => var::JWT_AUDIENCE,
                _ => var::JWT_JWKS,
            },
            reason: e.to_string(),
        })
}

fn in_range(name: &'static str, v: usize, (lo, hi): (usize, usize)) -> Result<usize, ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be between {lo} and {hi}, got {v}"),
        });
    }
    Ok(v)
}

impl CacheConfig {
    /// Reads and validates every variable through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<CacheConfig, ConfigError> {
        let r = Reader { lookup };
        let url = r
            .raw(var::DB_API_URL)
            .ok_or(ConfigError::Missing(var::DB_API_URL))?;
        let kv_store = r.raw(var::KV_STORE).unwrap_or_else(|| "default".to_owned());
        let cfg = CacheConfig {
            db_api_url: validate_url(var::DB_API_URL, &url)?,
            db_api_token: r.raw(var::DB_API_TOKEN),
            ttl: r.duration(var::TTL, Duration::from_secs(60))?,
            stale_ttl: r.duration(var::STALE_TTL, Duration::from_secs(300))?,
            stale_if_error: r.duration(var::STALE_IF_ERROR, Duration::from_secs(3600))?,
            negative_ttl: r.duration(var::NEGATIVE_TTL, Duration::from_secs(30))?,
            origin_timeout: r.duration(var::ORIGIN_TIMEOUT, Duration::from_secs(5))?,
            compress_min_bytes: r.size_in(var::COMPRESS_MIN_BYTES, 1024, (0, usize::MAX))?,
            max_value_bytes: r.size_in(
                var::MAX_VALUE_BYTES,
                MAX_VALUE_BYTES,
                (1, MAX_VALUE_BYTES),
            )?,
            max_entries: r.count(var::MAX_ENTRIES, 1000, (1, usize::MAX))?,
            sweep_slice: r.count(
                var::SWEEP_SLICE,
                DEFAULT_SWEEP_SLICE,
                (MIN_SWEEP_SLICE, usize::MAX),
            )?,
            max_buffered_writes: r.count(var::MAX_BUFFERED_WRITES, 500, (1, usize::MAX))?,
            max_buffered_bytes: r.bytes(var::MAX_BUFFERED_BYTES, 8 * 1024 * 1024)?,
            max_dirty_age: r.duration(var::MAX_DIRTY_AGE, Duration::from_secs(600))?,
            flush_batch_max_items: r.count(var::FLUSH_BATCH_MAX_ITEMS, 100, (1, 10_000))?,
            flush_batch_max_bytes: r.size_in(
                var::FLUSH_BATCH_MAX_BYTES,
                512 * 1024,
                (1024, MAX_BATCH_BYTES),
            )?,
            flush_max_batches: r.count(var::FLUSH_MAX_BATCHES, 10, (1, 10_000))?,
            flush_max_attempts: u32::try_from(r.count(
                var::FLUSH_MAX_ATTEMPTS,
                20,
                (1, 1_000_000),
            )?)
            .unwrap_or(u32::MAX),
            flush_retry_base: r.duration(var::FLUSH_RETRY_BASE, Duration::from_secs(1))?,
            flush_retry_max: r.duration(var::FLUSH_RETRY_MAX, Duration::from_secs(300))?,
            lease_ttl: r.duration(var::LEASE_TTL, Duration::from_secs(60))?,
            flush_timeout: r.duration(var::FLUSH_TIMEOUT, Duration::from_secs(10))?,
            kv_store: kv_store.clone(),
            buffer_store: r.raw(var::BUFFER_STORE).filter(|b| *b != kv_store),
            admin_token: r.raw(var::ADMIN_TOKEN),
            invalidate_secret: r.raw(var::INVALIDATE_SECRET),
            metrics_hit_sample: u64::try_from(r.count(
                var::METRICS_HIT_SAMPLE,
                16,
                (1, 1_000_000),
            )?)
            .unwrap_or(u64::MAX),
            auth_mode: r.parsed(
                var::AUTH_MODE,
                AuthMode::Origin,
                AuthMode::parse,
                "origin, grant or jwt",
            )?,
            auth_key: r.raw(var::AUTH_KEY),
            grant_ttl: r.duration(var::GRANT_TTL, Duration::from_secs(60))?,
            jwt_verifier: jwt_verifier(&r)?,
            auth_rules: r
                .raw(var::AUTH_RULES)
                .map(|json| Rules::parse(&json))
                .transpose()
                .map_err(|e| ConfigError::Invalid {
                    name: var::AUTH_RULES,
                    reason: e.to_string(),
                })?,
            rate_limits: {
                let default = RateLimits::default();
                RateLimits {
                    read: r.budget(var::RATE_LIMIT_READ, default.read)?,
                    write: r.budget(var::RATE_LIMIT_WRITE, default.write)?,
                    admin: r.budget(var::RATE_LIMIT_ADMIN, default.admin)?,
                }
            },
            rollout: RolloutState {
                mode: r.parsed(
                    var::ROLLOUT_MODE,
                    Mode::Cutover,
                    Mode::parse_configurable,
                    "passthrough, shadow, canary or cutover",
                )?,
                canary_share: percent(r.count(var::ROLLOUT_CANARY_SHARE, 0, (0, 100))?),
                canary_writes_buffered: r.parsed(
                    var::ROLLOUT_CANARY_WRITES_BUFFERED,
                    false,
                    parse_bool,
                    "true or false",
                )?,
            },
            rollout_max_mismatch: percent(r.count(var::ROLLOUT_MAX_MISMATCH, 1, (0, 100))?),
            rollout_gate_window: r.duration(var::ROLLOUT_GATE_WINDOW, Duration::from_secs(900))?,
            rollout_overrides: r.parsed(
                var::ROLLOUT_OVERRIDES,
                true,
                parse_bool,
                "true or false",
            )?,
        };
        cfg.cross_check()
    }

    /// The defaults with the given DB API URL; convenient for tests and tools.
    pub fn with_db_api_url(url: &str) -> Result<CacheConfig, ConfigError> {
        CacheConfig::from_lookup(|name| (name == var::DB_API_URL).then(|| url.to_owned()))
    }

    fn cross_check(self) -> Result<CacheConfig, ConfigError> {
        let invalid = |name, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_owned(),
        };
        if self.flush_retry_base.is_zero() {
            return Err(invalid(var::FLUSH_RETRY_BASE, "must be greater than zero"));
        }
        if self.flush_retry_max < self.flush_retry_base {
            return Err(invalid(
                var::FLUSH_RETRY_MAX,
                "must not be below flush_retry_base",
            ));
        }
        if self.origin_timeout.is_zero() {
            return Err(invalid(var::ORIGIN_TIMEOUT, "must be greater than zero"));
        }
        if self.lease_ttl.is_zero() {
            return Err(invalid(var::LEASE_TTL, "must be greater than zero"));
        }
        if self.flush_timeout.is_zero() {
            return Err(invalid(var::FLUSH_TIMEOUT, "must be greater than zero"));
        }
        if self.rollout_gate_window < Duration::from_secs(1) {
            return Err(invalid(var::ROLLOUT_GATE_WINDOW, "must be at least 1s"));
        }
        if self.auth_mode == AuthMode::Jwt && self.jwt_verifier.is_none() {
            return Err(ConfigError::Missing(var::JWT_JWKS));
        }
        if self.auth_mode == AuthMode::Jwt && self.auth_rules.is_none() {
            return Err(ConfigError::Missing(var::AUTH_RULES));
        }
        if self.grant_ttl.is_zero() || self.grant_ttl > MAX_GRANT_TTL {
            return Err(invalid(var::GRANT_TTL, "must be between 1ms and 1h"));
        }
        if self.auth_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(invalid(var::AUTH_KEY, "must be at least 16 characters"));
        }
        if self
            .invalidate_secret
            .as_ref()
            .is_some_and(|k| k.len() < 16)
        {
            return Err(invalid(
                var::INVALIDATE_SECRET,
                "must be at least 16 characters",
            ));
        }
        if self.max_buffered_bytes == 0 {
            return Err(invalid(
                var::MAX_BUFFERED_BYTES,
                "must be greater than zero",
            ));
        }
        Ok(self)
    }

    /// How values are encoded in envelopes.
    #[must_use]
    pub fn codec_policy(&self) -> CodecPolicy {
        CodecPolicy {
            compress_min_bytes: self.compress_min_bytes,
        }
    }
}

/// A count already checked to be within 0–100.
fn percent(v: usize) -> u8 {
    u8::try_from(v).unwrap_or(100)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn validate_url(name: &'static str, url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest
        .and_then(|r| r.split(['/', '?', '#']).next())
        .unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("expected an http:// or https:// URL with a host, got {url:?}"),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Parses `500ms`, `30s`, `5m`, `1h` or plain seconds.
#[must_use]
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit_ms) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1_000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = s.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (s, 1_000)
    };
    let n = parse_digits(digits)?;
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

/// Parses plain bytes or `KiB` / `MiB` suffixed sizes.
#[must_use]
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = if let Some(d) = s.strip_suffix("KiB") {
        (d, 1024)
    } else if let Some(d) = s.strip_suffix("MiB") {
        (d, 1024 * 1024)
    } else if let Some(d) = s.strip_suffix('B') {
        (d, 1)
    } else {
        (s, 1)
    };
    parse_digits(digits)?.checked_mul(unit)
}

fn parse_digits(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
