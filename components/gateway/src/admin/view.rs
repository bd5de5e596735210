//! The JSON bodies of the admin routes.
//!
//! The core's report types carry no serialization (they are not a wire format of the core);
//! this is the one place that decides how an operator sees them. Instants are Unix
//! milliseconds, absent instants are `null`.

use cache_core::dlq::{DeadLetter, DeadLetters};
use cache_core::flush::{FlushOutcome, FlushReport};
use cache_core::state::FlushStats;
use cache_core::sweep::SweepReport;
use serde_json::{json, Value};

/// `POST /admin/flush`: the flush report, with the sweep that followed it.
pub fn flush(r: &FlushReport, sweep: Option<&SweepReport>) -> Value {
    let mut outcome = json!({ "outcome": r.outcome.label() });
    match &r.outcome {
        FlushOutcome::LeaseBusy { owner, until } => {
            outcome["lease_owner"] = json!(owner);
            outcome["lease_until"] = json!(until.0);
        }
        FlushOutcome::BackingOff { until } => outcome["next_attempt_at"] = json!(until.0),
        FlushOutcome::Retrying {
            next_attempt_at,
            error,
        } => {
            outcome["next_attempt_at"] = json!(next_attempt_at.0);
            outcome["flush_error"] = json!(error);
        }
        FlushOutcome::StoreFailed(e) => outcome["flush_error"] = json!(e),
        FlushOutcome::Idle | FlushOutcome::Delivered | FlushOutcome::LeaseLost => {}
    }
    let fields = json!({
        "batches_sent": r.batches_sent,
        "batches_resent": r.batches_resent,
        "batches_settled": r.batches_settled,
        "records_read": r.records_read,
        "records_corrupt": r.records_corrupt,
        "batches_corrupt": r.batches_corrupt,
        "batches_unregistered": r.batches_unregistered,
        "items": {
            "applied": r.items.applied,
            "stale": r.items.stale,
            "duplicate": r.items.duplicate,
            "dead_lettered": r.items.dead_lettered,
            "records_deleted": r.items.records_deleted,
        },
        "more": r.more,
        "sweep": sweep.map(|s| json!({
            "expired": s.expired,
            "evicted": s.evicted,
            "unreadable": s.unreadable,
            "dirty": s.dirty,
            "remaining": s.remaining,
        })),
    });
    merge(outcome, fields)
}

/// `GET /admin/stats`.
pub fn stats(s: &FlushStats) -> Value {
    let st = &s.state;
    json!({
        "entries": s.entries,
        "buffered_writes": s.buffered_writes,
        "buffered_bytes": s.buffered_bytes,
        "oldest_buffered_age_ms": s.oldest_buffered_age_ms,
        "sealed_batches": s.sealed_batches,
        "dead_letters": s.dead_letters,
        "last_flush": {
            "outcome": st.last_outcome,
            "at": st.last_run_at.map(|t| t.0),
            "error": st.last_error,
            "last_success_at": st.last_success_at.map(|t| t.0),
        },
        "consecutive_failures": st.failures,
        "next_retry_at": st.next_attempt_at.map(|t| t.0),
    })
}

/// `GET /admin/dlq`.
pub fn dead_letters(d: &DeadLetters) -> Value {
    json!({
        "dead_letters": d.letters.iter().map(letter).collect::<Vec<_>>(),
        "unreadable": d.unreadable,
    })
}

fn letter(l: &DeadLetter) -> Value {
    let mut v = json!({
        "stamp": l.stamp.to_string(),
        "reason": l.reason,
        "detail": l.detail,
        "attempts": l.attempts,
        "batch_id": l.batch_id.as_ref().map(|b| b.as_str().to_owned()),
        "dead_at": l.dead_at.0,
    });
    if let Some(w) = &l.write {
        v["ns"] = json!(w.ns.to_string());
        v["key"] = json!(w.key.to_string());
        v["op"] = json!(if w.value.is_some() { "put" } else { "delete" });
        v["value"] = w.value.clone().unwrap_or(Value::Null);
        v["written_at"] = json!(w.written_at.0);
    }
    if let Some(raw) = &l.raw {
        v["raw"] = json!(raw);
    }
    v
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}
