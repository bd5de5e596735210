//! `GET /admin/rollout` and `POST /admin/rollout`: the rollout as an operator sees and
//! changes it.
//!
//! `POST` takes `{"mode", "canary_share", "canary_writes_buffered", "force"}`, every field
//! optional but at least one setting; the fields given replace the state in force, the
//! others stay. A body that is not that (unknown field, wrong type, an unknown mode, a share
//! over 100) is `400` and changes nothing.
//!
//! A change that lowers what the cache serves (a lower share, passthrough, canary writes no
//! longer buffered; `shadow`, which serves nothing from the cache) is a rollback and is
//! always accepted: the way back must never be
//! blocked by the evidence that made it necessary. A change that raises it (a higher
//! exposure: canary share in canary, cutover; or more writes buffered) goes through the
//! [`gate`](super::gate) unless `force` is `true`; a refusal is `409 rollout_gated` with the
//! reason, and nothing changes. An accepted change is stored with the previous state in the
//! log ([`super::state`]) and is in force from the next request on.
//!
//! With `rollout_overrides` off, `POST` is `409 rollout_fixed` and changes nothing: the
//! rollout is the variables' ([`super::state`]).
//!
//! The record is replaced with compare-and-swap against what was read, and read back: two
//! operators changing the rollout at once get one `409 rollout_conflict` rather than a log
//! missing a change (on a host without atomics the swap is a read-compare-write, and the
//! read-back is what catches most races).

use serde::Deserialize;
use serde_json::{json, Value};

use super::gate::{self, Verdict};
use super::state::{self, Change, Current, Mode, RolloutState};
use crate::admin::ok;
use crate::config::CacheConfig;
use crate::serve::{Reply, RequestError};
use crate::store::{swap_confirmed, KvStore};
use crate::time::UnixMillis;

/// The largest accepted body.
const MAX_BODY_BYTES: usize = 4096;

/// A change as sent: the settings to replace, and whether to skip the gate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default, deserialize_with = "mode")]
    mode: Option<Mode>,
    canary_share: Option<u8>,
    canary_writes_buffered: Option<bool>,
    #[serde(default)]
    force: bool,
}

/// A mode by its name, with the names in the error.
fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Mode>, D::Error> {
    let name = String::deserialize(d)?;
    Mode::parse_configurable(&name).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown mode {name:?} (passthrough, shadow, canary or cutover)"
        ))
    })
}

/// `GET /admin/rollout`: the state in force, where it comes from, the configured
/// defaults, what the gate would say now, and the change log.
pub fn report(
    store: &mut impl KvStore,
    cfg: &CacheConfig,
    now: UnixMillis,
) -> Result<Reply, RequestError> {
    let stored = store
        .get(&state::kv_key())
        .map_err(RequestError::StoreUnavailable)?;
    let stored = state::decode(stored.as_deref(), cfg);
    // With overrides off a record stored earlier is not in force, but an operator must see it.
    let (current, ignored) = if cfg.rollout_overrides {
        (stored, None)
    } else {
        (state::defaults(cfg), Some(stored))
    };
    let verdict = gate_verdict(store, cfg, now)?;
    Ok(ok(&json!({
        "state": state_view(&current.state),
        "source": if current.overridden { "override" } else { "defaults" },
        "overrides": cfg.rollout_overrides,
        "ignored_override": ignored.as_ref().filter(|c| c.overridden).map(|c| state_view(&c.state)),
        "unreadable": current.unreadable,
        "defaults": state_view(&cfg.rollout),
        "gate": gate_view(verdict, cfg.rollout_max_mismatch),
        "log": current.log.iter().map(change_view).collect::<Vec<_>>(),
    })))
}

/// `POST /admin/rollout` with `body`, at `now`.
pub fn apply(
    store: &mut impl KvStore,
    cfg: &CacheConfig,
    now: UnixMillis,
    body: &[u8],
) -> Result<Reply, RequestError> {
    if !cfg.rollout_overrides {
        return Err(RequestError::RolloutFixed);
    }
    let body = parse(body)?;
    let key = state::kv_key();
    let stored = store.get(&key).map_err(RequestError::StoreUnavailable)?;
    let current = state::decode(stored.as_deref(), cfg);
    let new = RolloutState {
        mode: body.mode.unwrap_or(current.state.mode),
        canary_share: body.canary_share.unwrap_or(current.state.canary_share),
        canary_writes_buffered: body
            .canary_writes_buffered
            .unwrap_or(current.state.canary_writes_buffered),
    };
    let raises = is_raise(&current.state, &new);
    let verdict = gate_verdict(store, cfg, now)?;
    if raises && !body.force && !verdict.allows() {
        return Err(RequestError::RolloutGated(format!(
            "the shadow mismatch rate is {} (over rollout_max_mismatch, {}%); roll back, \
             fix the cause, or send \"force\": true",
            per_mille_text(verdict),
            cfg.rollout_max_mismatch
        )));
    }
    let change = Change {
        at: now.0,
        by: "admin".to_owned(),
        previous: current.state,
        new,
        forced: raises && body.force,
    };
    let Current { log, .. } = current;
    let bytes = state::encode(
        new,
        if stored.is_some() { log } else { Vec::new() },
        change.clone(),
    );
    let confirmed = swap_confirmed(store, &key, stored.as_deref(), &bytes)
        .map_err(RequestError::StoreUnavailable)?;
    if !confirmed {
        return Err(RequestError::RolloutConflict);
    }
    Ok(ok(&json!({
        "state": state_view(&new),
        "previous": state_view(&change.previous),
        "rollback": !raises,
        "forced": change.forced,
    })))
}

/// What the gate says at `now`.
fn gate_verdict(
    store: &mut impl KvStore,
    cfg: &CacheConfig,
    now: UnixMillis,
) -> Result<Verdict, RequestError> {
    gate::check(
        store,
        cfg.rollout_max_mismatch,
        now,
        cfg.rollout_gate_window,
    )
    .map_err(RequestError::StoreUnavailable)
}

/// Whether `new` serves more from the cache than `old`: a higher read exposure, or more
/// buffered writes.
#[must_use]
pub fn is_raise(old: &RolloutState, new: &RolloutState) -> bool {
    new.exposure() > old.exposure() || new.buffered_exposure() > old.buffered_exposure()
}

fn parse(bytes: &[u8]) -> Result<Body, RequestError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::BadRequest(format!(
            "a rollout change is at most {MAX_BODY_BYTES} bytes"
        )));
    }
    let body: Body = serde_json::from_slice(bytes).map_err(|e| {
        RequestError::BadRequest(format!(
            "expected {{\"mode\", \"canary_share\", \"canary_writes_buffered\", \"force\"}}: {e}"
        ))
    })?;
    if body.canary_share.is_some_and(|s| s > 100) {
        return Err(RequestError::BadRequest(
            "canary_share is a percentage, 0 to 100".into(),
        ));
    }
    if body.mode.is_none() && body.canary_share.is_none() && body.canary_writes_buffered.is_none() {
        return Err(RequestError::BadRequest(
            "nothing to change: give mode, canary_share or canary_writes_buffered".into(),
        ));
    }
    Ok(body)
}

fn state_view(s: &RolloutState) -> Value {
    json!({
        "mode": s.mode.as_str(),
        "canary_share": s.canary_share,
        "canary_writes_buffered": s.canary_writes_buffered,
    })
}

fn change_view(c: &Change) -> Value {
    json!({
        "at": c.at,
        "by": c.by,
        "previous": state_view(&c.previous),
        "new": state_view(&c.new),
        "forced": c.forced,
    })
}

fn gate_view(v: Verdict, max: u8) -> Value {
    json!({
        "allows_raise": v.allows(),
        "max_mismatch_percent": max,
        "mismatch_per_mille": match v {
            Verdict::NoEvidence => Value::Null,
            Verdict::Within { mismatch_per_mille } | Verdict::Above { mismatch_per_mille } => {
                json!(mismatch_per_mille)
            }
        },
    })
}

fn per_mille_text(v: Verdict) -> String {
    match v {
        Verdict::NoEvidence => "unknown".to_owned(),
        Verdict::Within { mismatch_per_mille } | Verdict::Above { mismatch_per_mille } => {
            format!("{}.{}%", mismatch_per_mille / 10, mismatch_per_mille % 10)
        }
    }
}
