//! Rate limits: how many requests one caller may make per window, by class of request.
//!
//! A cache in front of a DB API is a cheap way to reach that API, and `/admin/*` guards a
//! token: without limits one client can fill the write buffer for everyone, turn every read
//! into an origin fetch (misses are not cached for errors), or guess `admin_token` at full
//! speed. So every request is charged to its caller before anything else happens:
//!
//! - **Who.** An opaque caller identity, the request's rate key. The item routes pass the
//!   principal once requests are authenticated; until then, and for anonymous callers, the
//!   client address ([`client_key`]). The admin routes are always counted per client
//!   address, whatever token is sent, so that guessing the token is limited per source.
//! - **What.** Three [`Class`]es with separate budgets: reads (`GET` of an item), writes
//!   (`PUT`, `PATCH`, `DELETE`) and admin requests (every `/admin/*` request, successful or
//!   not: a failed guess and a successful call cost the same, so the right token sent after
//!   the budget is spent is refused too, until the window ends).
//! - **How many.** A [`Budget`] per class from the variables `rate_limit_read`,
//!   `rate_limit_write` and `rate_limit_admin` (`{requests}/{window}`, or `off`). The
//!   defaults ([`RateLimits::default`]) are meant for production: `600/60s` reads and
//!   `120/60s` writes per caller, and `30/60s` admin requests per client address, which
//!   leaves a scheduler calling `/admin/flush` every minute and a dashboard polling
//!   `/admin/stats` plenty of room while holding a token guesser to one try every two
//!   seconds.
//!
//! # Counting
//!
//! One counter per caller, class and fixed window, in the store under
//! `r:{class}:{window end}:{who}` ([`KvKey::Rate`]): windows are aligned to multiples of
//! their length since the Unix epoch, so every instance agrees on the current one without
//! talking to the others. A request adds one with [`KvStore::increment`] and is refused when
//! the count it gets back exceeds the quota; refused requests keep counting, which changes
//! nothing until the window ends. A fixed window lets a caller spend one budget at the end
//! of a window and the next at the start of the following one (twice the quota within one
//! window's length, at most); a sliding window would cost another store read on every
//! request. The sweep ([`crate::delivery::sweep`]) deletes the counters of windows that
//! have ended, so keys do not pile up; each active caller costs one key per class until
//! then, which counts towards Fermyon Cloud's 1024 keys per store.
//!
//! The count is exact where the store has `wasi:keyvalue/atomics` (Spin, SpinKube, the
//! embedded host): one `increment` per request. Without atomics (Fermyon Cloud, Akamai
//! Functions) it is a `get` then a `set`, and two requests of one caller whose read and
//! write overlap both see the same count: one increment is lost, and the caller gets a
//! request more. A caller keeping `C` requests in flight at once can therefore get about
//! `C` × quota per window when every round trip overlaps (each step of the count admits
//! `C` requests instead of one); a late write sets the count back and lets a few more
//! through, so this is no hard bound. Measured (`tests/limit.rs`: threads
//! sending one caller's requests to one store whose every operation takes a 200 µs round
//! trip, quota 100, over twenty runs): with atomics exactly 100 admitted at any
//! concurrency; without, 100 with one request in flight, 460–940 with 8 and 1,640–1,950
//! with 32. Through the gateway built without atomics on the embedded host (its SQLite
//! store answers faster than that, so fewer round trips overlap; the ignored end-to-end
//! test `gateway_limit::measure_the_read_count_with_and_without_atomics`, three runs):
//! 100, 182–188 and 335–412 for 1, 8 and 32 requests in flight, against 100 each with
//! atomics. A client sending one request at a time is counted exactly either way; one that
//! opens `C` connections at once gets up to about `C` times the quota, occasionally a
//! little more.
//! Platforms without atomics are also eventually consistent across regions (Akamai
//! Functions documents read-your-writes within a request only), which loosens the count
//! further for a caller spread over regions.
//!
//! A counter the store cannot keep (full, failing) does not fail the request: it goes
//! ahead uncounted ([`RateState::Uncounted`], counted for `/metrics`). The limiter exists to
//! protect the service and must not become the reason it fails; in particular
//! `POST /admin/flush`, the way out of a full store where no cron runs, stays reachable.
//!
//! # Headers
//!
//! Over budget a request ends with `429 Too Many Requests` ([`RequestError::RateLimited`],
//! through the one error table), with `Retry-After` (the seconds until the window ends) and
//! the fields of the IETF draft "RateLimit header fields for HTTP"
//! (draft-ietf-httpapi-ratelimit-headers-11, May 2026, sections 3 and 4, where the policy
//! identifier must be a String; the working group's copy has since allowed a Token as well,
//! so the quoted form stays valid):
//!
//! ```text
//! RateLimit-Policy: "read";q=600;w=60
//! RateLimit: "read";r=0;t=17
//! ```
//!
//! `q` is the quota, `w` the window in seconds, `r` what is left of the quota and `t` the
//! seconds until the window ends. Every other answer of a counted request carries the same
//! two fields (draft section 6 allows them on any status), so clients can slow down before
//! they are refused. The draft's partition key (`pk`) is not sent: it would echo the rate
//! key, which can be a credential digest.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::config::parse_duration;
use crate::hash::Fnv64;
use crate::serve::RequestError;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;
use crate::time::UnixMillis;

/// A class of requests with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `GET` of an item.
    Read,
    /// `PUT`, `PATCH` or `DELETE` of an item.
    Write,
    /// Any `/admin/*` request.
    Admin,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 3] = [Class::Read, Class::Write, Class::Admin];

    /// The name in KV keys and the policy identifier in the RateLimit headers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Admin => "admin",
        }
    }

    /// The class named `name` ([`Class::as_str`]).
    #[must_use]
    pub fn parse(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// How many requests of a class one caller may make per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests per window.
    pub quota: u64,
    /// The window length in whole seconds: the draft's `w` has no sub-second precision.
    pub window_secs: u64,
}

/// The longest window: a day. Longer windows would keep a caller's counter (and the key)
/// around for longer than anyone tunes a rate limit for.
pub const MAX_WINDOW_SECS: u64 = 86_400;

impl Budget {
    /// Parses `{requests}/{window}` (`600/60s`, `10/1m`, `1000/1h`; the window a whole
    /// number of seconds, 1 s to 24 h), or `off` for no limit (`None`).
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn parse(text: &str) -> Result<Option<Budget>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let wrong =
            || format!("expected a budget like 600/60s (requests per window) or off, got {text:?}");
        let (quota, window) = text.split_once('/').ok_or_else(wrong)?;
        let quota = quota.trim();
        if quota.is_empty() || !quota.bytes().all(|b| b.is_ascii_digit()) {
            return Err(wrong());
        }
        let quota: u64 = quota.parse().map_err(|_| wrong())?;
        let window = parse_duration(window).ok_or_else(wrong)?;
        if quota == 0 {
            return Err(format!(
                "the quota must be at least 1 (to refuse nothing, use off), got {text:?}"
            ));
        }
        if window.subsec_nanos() != 0 || window.is_zero() || window.as_secs() > MAX_WINDOW_SECS {
            return Err(format!(
                "the window must be whole seconds, from 1s to 24h, got {text:?}"
            ));
        }
        Ok(Some(Budget {
            quota,
            window_secs: window.as_secs(),
        }))
    }

    /// The end of the window that holds `now`, in Unix seconds.
    #[must_use]
    pub fn window_end(self, now: UnixMillis) -> u64 {
        let secs = now.0 / 1000;
        (secs / self.window_secs + 1) * self.window_secs
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.quota, self.window_secs)
    }
}

/// The budgets of the three classes; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `rate_limit_read`, per caller.
    pub read: Option<Budget>,
    /// `rate_limit_write`, per caller.
    pub write: Option<Budget>,
    /// `rate_limit_admin`, per client address.
    pub admin: Option<Budget>,
}

impl Default for RateLimits {
    /// `600/60s` reads, `120/60s` writes, `30/60s` admin requests (the module docs say why).
    fn default() -> RateLimits {
        let per_minute = |quota| {
            Some(Budget {
                quota,
                window_secs: 60,
            })
        };
        RateLimits {
            read: per_minute(600),
            write: per_minute(120),
            admin: per_minute(30),
        }
    }
}

impl RateLimits {
    /// No limits at all.
    pub const OFF: RateLimits = RateLimits {
        read: None,
        write: None,
        admin: None,
    };

    /// The budget of `class`.
    #[must_use]
    pub fn budget(&self, class: Class) -> Option<Budget> {
        match class {
            Class::Read => self.read,
            Class::Write => self.write,
            Class::Admin => self.admin,
        }
    }
}

/// A counted request: its class, budget, the count so far in this window (itself
/// included) and when the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The class charged.
    pub class: Class,
    /// Its budget.
    pub budget: Budget,
    /// Requests counted in this window, this one included.
    pub count: u64,
    /// Seconds until the window ends (at least 1).
    pub reset_secs: u64,
}

impl Usage {
    /// Whether the count is within the quota.
    #[must_use]
    pub fn within(&self) -> bool {
        self.count <= self.budget.quota
    }

    /// What is left of the quota in this window.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.budget.quota.saturating_sub(self.count)
    }

    /// `RateLimit-Policy` and `RateLimit` (lowercase names, as every [`Reply`] header).
    ///
    /// [`Reply`]: crate::serve::Reply
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            policy_header(self.class, self.budget),
            (
                "ratelimit",
                format!(
                    "\"{}\";r={};t={}",
                    self.class.as_str(),
                    self.remaining(),
                    self.reset_secs
                ),
            ),
        ]
    }
}

fn policy_header(class: Class, budget: Budget) -> (&'static str, String) {
    (
        "ratelimit-policy",
        format!(
            "\"{}\";q={};w={}",
            class.as_str(),
            budget.quota,
            budget.window_secs
        ),
    )
}

/// What charging a request found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RateState {
    /// The class has no budget (`off`): nothing counted, no headers.
    #[default]
    Off,
    /// Counted, and within the budget.
    Counted(Usage),
    /// The store did not keep the counter; the request goes ahead uncounted (the module
    /// docs say why).
    Uncounted {
        /// The class.
        class: Class,
        /// Its budget.
        budget: Budget,
        /// What the store said.
        error: StoreError,
    },
}

impl RateState {
    /// The headers a reply carries: both fields when counted, the policy alone when the
    /// count is unknown, none when the class is off.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            RateState::Off => Vec::new(),
            RateState::Counted(usage) => usage.headers(),
            RateState::Uncounted { class, budget, .. } => vec![policy_header(*class, *budget)],
        }
    }
}

/// Charges one request of `class` by `who` (an opaque rate key) against `budget` at `now`.
///
/// # Errors
/// [`RequestError::RateLimited`] when the count exceeds the quota: the request must end
/// there, with that `429`.
pub fn charge(
    store: &mut impl KvStore,
    now: UnixMillis,
    budget: Option<Budget>,
    class: Class,
    who: &str,
) -> Result<RateState, RequestError> {
    let Some(budget) = budget else {
        return Ok(RateState::Off);
    };
    let window_end = budget.window_end(now);
    let key = KvKey::Rate {
        class,
        window_end,
        who: who_part(who),
    }
    .render();
    let count = match store.increment(&key, 1) {
        Ok(count) => count,
        Err(error) => {
            return Ok(RateState::Uncounted {
                class,
                budget,
                error,
            })
        }
    };
    let usage = Usage {
        class,
        budget,
        count,
        reset_secs: (window_end * 1000)
            .saturating_sub(now.0)
            .div_ceil(1000)
            .max(1),
    };
    if usage.within() {
        Ok(RateState::Counted(usage))
    } else {
        Err(RequestError::RateLimited(usage))
    }
}

/// The longest rate key kept as it is in a KV key; longer ones are hashed.
const MAX_PLAIN_WHO: usize = 100;

/// The rate key as it appears in the KV key: as it is when it is short printable ASCII
/// (readable in the store, and it cannot collide), otherwise `#` and a 128-bit hash (two
/// seeded FNV-1a) so any identity fits Fermyon Cloud's 250-byte keys. Plain keys never
/// start with `#`, so the two forms cannot meet.
pub(crate) fn who_part(who: &str) -> String {
    if is_plain_who(who) {
        return who.to_owned();
    }
    let hash = |seed| {
        let mut h = Fnv64::with_seed(seed);
        h.write(who.as_bytes());
        h.finish()
    };
    format!("#{:016x}{:016x}", hash(1), hash(2))
}

/// Whether `part` is a form [`who_part`] writes.
pub(crate) fn is_who_part(part: &str) -> bool {
    is_plain_who(part)
        || part.strip_prefix('#').is_some_and(|h| {
            h.len() == 32
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn is_plain_who(who: &str) -> bool {
    !who.is_empty()
        && who.len() <= MAX_PLAIN_WHO
        && !who.starts_with('#')
        && who.bytes().all(|b| b.is_ascii_graphic())
}

/// The rate key of an anonymous caller: its address as Spin reports it in
/// `spin-client-addr` (`ip:port`), without the port (each connection has its own).
/// An IPv6 client is keyed by its /64 network, the block one subscriber usually gets, so
/// that rotating through its own addresses does not multiply its budget; an IPv4-mapped
/// address is the IPv4 one. An address that does not parse (Spin always sends one) is
/// `ip:unknown`, one budget for all such requests.
#[must_use]
pub fn client_key(spin_client_addr: Option<&str>) -> String {
    let ip = spin_client_addr.and_then(|a| {
        let a = a.trim();
        a.parse::<SocketAddr>()
            .map(|s| s.ip())
            .or_else(|_| a.parse::<IpAddr>())
            .ok()
    });
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("ip:{net}/64")
        }
        None => "ip:unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests;
