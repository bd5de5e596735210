//! The rollout state, its defaults, and the run-time override kept in `m:rollout`.
//!
//! The state is three values: the mode, the canary share (percent of buckets) and whether
//! canary callers' writes are buffered. While `m:rollout` is absent the configured defaults
//! apply; once an operator changes the rollout, the stored state applies until the next
//! change, whatever the variables say (a redeploy with other defaults does not silently undo
//! a rollback). The record also holds the last [`LOG_LEN`] changes (when, who, before,
//! after): the answer to "who moved the canary, and from what".
//!
//! With `rollout_overrides` set to `false` the variables alone are the rollout: no request
//! reads the record (one KV read fewer each, a round trip on Redis), `POST /admin/rollout`
//! is refused, and a record stored earlier is ignored (`GET /admin/rollout` still shows it,
//! as ignored). That is for a rollout that is over: the way back is then a redeploy, not an
//! admin call.
//!
//! A record that does not decode is treated as absent (the defaults apply) and reported as
//! unreadable by `GET /admin/rollout`; the next change overwrites it. The read path must
//! never fail because of the rollout record: a request in doubt is served as configured.

use serde::{Deserialize, Serialize};

use crate::config::CacheConfig;
use crate::store::{KvStore, StoreError};
use crate::stored::kv_key::KvKey;

/// Changes kept in the log; older ones are dropped.
pub const LOG_LEN: usize = 32;

/// Who serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every request goes to the DB API.
    Passthrough,
    /// Every request goes to the DB API; after answering, the cache compares what it would
    /// have served with the DB API's answer ([`super::shadow`]).
    Shadow,
    /// The cache serves callers in the canary; the others pass through.
    Canary,
    /// The cache serves every request.
    Cutover,
}

impl Mode {
    /// Every mode, from the least exposed to the most.
    pub const ALL: [Mode; 4] = [Mode::Passthrough, Mode::Shadow, Mode::Canary, Mode::Cutover];

    /// The mode named `s`: `passthrough`, `shadow`, `canary` or `cutover`.
    #[must_use]
    pub fn parse_configurable(s: &str) -> Option<Mode> {
        match s {
            "passthrough" => Some(Mode::Passthrough),
            "shadow" => Some(Mode::Shadow),
            "canary" => Some(Mode::Canary),
            "cutover" => Some(Mode::Cutover),
            _ => None,
        }
    }

    /// The mode's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Passthrough => "passthrough",
            Mode::Shadow => "shadow",
            Mode::Canary => "canary",
            Mode::Cutover => "cutover",
        }
    }
}

/// The rollout's three settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RolloutState {
    /// Who serves requests.
    pub mode: Mode,
    /// In `canary`, the callers whose bucket is below this (0–100) are in the canary.
    pub canary_share: u8,
    /// In `canary`, whether canary callers' writes are buffered (otherwise they pass
    /// through like every other caller's).
    pub canary_writes_buffered: bool,
}

impl RolloutState {
    /// The share of buckets the cache serves reads for: 0 in passthrough and shadow, the
    /// canary share in canary, 100 in cutover.
    #[must_use]
    pub fn exposure(&self) -> u8 {
        match self.mode {
            Mode::Passthrough | Mode::Shadow => 0,
            Mode::Canary => self.canary_share.min(100),
            Mode::Cutover => 100,
        }
    }

    /// The share of buckets whose writes are buffered.
    #[must_use]
    pub fn buffered_exposure(&self) -> u8 {
        match self.mode {
            Mode::Passthrough | Mode::Shadow => 0,
            Mode::Canary if self.canary_writes_buffered => self.canary_share.min(100),
            Mode::Canary => 0,
            Mode::Cutover => 100,
        }
    }
}

/// One change of the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// When it was made, Unix milliseconds.
    pub at: u64,
    /// Who made it: `admin` (the admin token's holder; the cache knows no more).
    pub by: String,
    /// The state before.
    pub previous: RolloutState,
    /// The state after.
    pub new: RolloutState,
    /// Whether the gate was skipped (`force`).
    pub forced: bool,
}

/// What `m:rollout` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) state: RolloutState,
    pub(crate) log: Vec<Change>,
}

/// The rollout as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The state in force.
    pub state: RolloutState,
    /// Whether it is a stored override (otherwise the configured defaults).
    pub overridden: bool,
    /// Whether a stored record was there but did not decode.
    pub unreadable: bool,
    /// The change log, oldest first.
    pub log: Vec<Change>,
}

/// The KV key of the rollout record.
#[must_use]
pub fn kv_key() -> String {
    KvKey::Rollout.render()
}

/// The rollout the variables configure, with no override.
#[must_use]
pub fn defaults(cfg: &CacheConfig) -> Current {
    Current {
        state: cfg.rollout,
        overridden: false,
        unreadable: false,
        log: Vec::new(),
    }
}

/// The rollout given what `m:rollout` holds (`None`: absent).
#[must_use]
pub fn decode(stored: Option<&[u8]>, cfg: &CacheConfig) -> Current {
    let defaults = defaults(cfg);
    let Some(bytes) = stored else {
        return defaults;
    };
    match serde_json::from_slice::<Stored>(bytes) {
        Ok(s) if s.state.canary_share <= 100 => Current {
            state: s.state,
            overridden: true,
            unreadable: false,
            log: s.log,
        },
        _ => Current {
            unreadable: true,
            ..defaults
        },
    }
}

/// The rollout in force: the stored override if there is one (one `get`), or, with
/// `rollout_overrides` off, the variables' without reading anything.
pub fn load(store: &mut impl KvStore, cfg: &CacheConfig) -> Result<Current, StoreError> {
    if !cfg.rollout_overrides {
        return Ok(defaults(cfg));
    }
    let stored = store.get(&kv_key())?;
    Ok(decode(stored.as_deref(), cfg))
}

/// The record holding `state` after `log` plus `change`, the log cut to [`LOG_LEN`].
pub(crate) fn encode(state: RolloutState, mut log: Vec<Change>, change: Change) -> Vec<u8> {
    log.push(change);
    let excess = log.len().saturating_sub(LOG_LEN);
    log.drain(..excess);
    serde_json::to_vec(&Stored { state, log }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CacheConfig {
        CacheConfig::with_db_api_url("http://db").unwrap()
    }

    fn state(mode: Mode, share: u8) -> RolloutState {
        RolloutState {
            mode,
            canary_share: share,
            canary_writes_buffered: false,
        }
    }

    #[test]
    fn without_a_record_the_defaults_apply_and_the_default_is_cutover() {
        let c = decode(None, &cfg());
        assert_eq!(c.state, state(Mode::Cutover, 0));
        assert!(!c.overridden && !c.unreadable && c.log.is_empty());
    }

    #[test]
    fn an_unreadable_record_falls_back_to_the_defaults_and_says_so() {
        for bad in [&b"not json"[..], br#"{"state":{"mode":"canary","canary_share":101,"canary_writes_buffered":false},"log":[]}"#] {
            let c = decode(Some(bad), &cfg());
            assert_eq!(c.state, cfg().rollout);
            assert!(c.unreadable && !c.overridden);
        }
    }

    #[test]
    fn the_log_keeps_the_latest_changes_only() {
        let mut log = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..(LOG_LEN as u64 + 5) {
            let change = Change {
                at: i,
                by: "admin".into(),
                previous: state(Mode::Canary, 0),
                new: state(Mode::Canary, 1),
                forced: false,
            };
            bytes = encode(state(Mode::Canary, 1), log.clone(), change);
            log = decode(Some(&bytes), &cfg()).log;
        }
        let c = decode(Some(&bytes), &cfg());
        assert!(c.overridden);
        assert_eq!(c.log.len(), LOG_LEN);
        assert_eq!(c.log[0].at, 5);
        assert_eq!(c.log[LOG_LEN - 1].at, LOG_LEN as u64 + 4);
    }
}
