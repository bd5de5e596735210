//! `Idempotency-Key` on writes (`cache_core::serve::idempotency`), against `MemoryStore`
//! and a scripted origin: a repeat answers the first result and buffers nothing; a key is
//! the caller's own; reuse for another request, a repeat while the first runs, and a caller
//! without a way to be remembered are refused; records expire and are swept.

mod common;

use cache_core::delivery::sweep;
use cache_core::serve::idempotency::{self, KEEP, PENDING};
use cache_core::serve::origin::Unanswered;
use cache_core::serve::{Op, Outcome};
use cache_core::stamp::Stamp;
use cache_core::store::KvStore;
use cache_core::time::TestClock;
use common::{error_code, records, World};

const KEY: &str = "4f1c2a7e-2b1d-4c55-9d0b-6a3e8f0c1b2d";

fn world() -> World {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    w
}

fn put(w: &mut World, json: &str, key: Option<&str>, auth: Option<&str>) -> Outcome {
    w.send_with("a", Op::Put(json.as_bytes().to_vec()), |r| {
        r.idempotency_key = key.map(str::to_owned);
        r.authorization = auth.map(str::to_owned);
    })
}

/// Another instance's claim on [`KEY`] for an anonymous `PUT` of `1` to `a`, as owner `owner`.
fn claim_as(w: &mut World, owner: u64) -> idempotency::Claim {
    let key = World::key("a");
    let attempt = idempotency::Attempt {
        key: &key,
        idem: KEY,
        fingerprint: idempotency::Fingerprint {
            method: "PUT",
            body: b"1",
            if_match: None,
            if_none_match: None,
        },
        stamp: Stamp::new(w.now, 0, owner),
        owner,
    };
    let caller = cache_core::auth::caller::Caller::anonymous();
    match idempotency::begin(&mut w.store, &w.cfg, &caller, &attempt, w.now).unwrap() {
        idempotency::Begin::Proceed(c) => c,
        idempotency::Begin::Replay(_) => panic!("nothing to replay"),
    }
}

fn idem_keys(w: &World) -> Vec<String> {
    w.store.keys_with_prefix("m:idem:")
}

#[test]
fn a_repeat_answers_the_first_result_and_buffers_nothing() {
    let mut w = world();
    let first = put(&mut w, r#"{"n":1}"#, Some(KEY), Some("Bearer alice"));
    assert_eq!(first.reply.status, 202);
    let etag = first.reply.header("etag").unwrap().to_owned();
    assert_eq!(records(&w).len(), 1);
    assert_eq!(first.reply.header("idempotent-replayed"), None);

    w.advance_ms(5_000);
    let again = put(&mut w, r#"{"n":1}"#, Some(KEY), Some("Bearer alice"));
    assert_eq!(again.reply.status, 202);
    assert_eq!(again.reply.header("etag"), Some(etag.as_str()));
    assert_eq!(again.reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.reply.body, first.reply.body);
    assert_eq!(records(&w).len(), 1, "no second buffer record");
    assert!(again.events.is_empty(), "nothing counted as buffered");

    // After a flush delivered it, a repeat still answers the first result.
    w.tick().unwrap();
    assert_eq!(records(&w).len(), 0);
    let later = put(&mut w, r#"{"n":1}"#, Some(KEY), Some("Bearer alice"));
    assert_eq!(later.reply.header("etag"), Some(etag.as_str()));
    assert_eq!(records(&w).len(), 0);
    assert_eq!(w.db.applied_twice(), 0);

    // Without the header, the same body is a new write.
    let plain = put(&mut w, r#"{"n":1}"#, None, Some("Bearer alice"));
    assert_ne!(plain.reply.header("etag"), Some(etag.as_str()));
    assert_eq!(records(&w).len(), 1);
}

#[test]
fn the_key_is_the_callers_own_and_no_credential_is_stored() {
    let mut w = world();
    let alice = put(&mut w, r#"{"n":1}"#, Some(KEY), Some("Bearer alice"));
    let bob = put(&mut w, r#"{"n":1}"#, Some(KEY), Some("Bearer bob"));
    assert_eq!((alice.reply.status, bob.reply.status), (202, 202));
    assert_ne!(alice.reply.header("etag"), bob.reply.header("etag"));
    assert_eq!(bob.reply.header("idempotent-replayed"), None);
    assert_eq!(records(&w).len(), 2);
    for k in idem_keys(&w) {
        let v = String::from_utf8(w.store.peek(&k).unwrap().to_vec()).unwrap();
        for secret in ["alice", "bob", KEY] {
            assert!(!k.contains(secret) && !v.contains(secret), "{k} {v}");
        }
    }
}

#[test]
fn a_replay_passes_the_same_access_checks_as_the_write() {
    let mut w = world();
    assert_eq!(
        put(&mut w, "1", Some(KEY), Some("Bearer alice"))
            .reply
            .status,
        202
    );
    // The grant kept for alice's first write lapses; the DB API now refuses her.
    w.advance_ms(w.cfg.grant_ttl.as_millis() as u64 * 3);
    w.origin
        .authorize_script
        .push_back(Ok(common::refusal(403)));
    let again = put(&mut w, "1", Some(KEY), Some("Bearer alice"));
    assert_eq!(
        (again.reply.status, error_code(&again)),
        (403, Some("origin_refused"))
    );
    // The DB API does not answer the check: nothing is replayed either.
    w.origin
        .authorize_script
        .push_back(Err(Unanswered::Failed("down".into())));
    let again = put(&mut w, "1", Some(KEY), Some("Bearer alice"));
    assert_eq!(again.reply.status, 503);
    assert_eq!(records(&w).len(), 1);
}

#[test]
fn a_key_reused_for_another_request_is_refused_and_changes_nothing() {
    let mut w = world();
    put(&mut w, r#"{"n":1}"#, Some(KEY), None);
    let before = w.store.keys_with_prefix("");
    for (op, if_match) in [
        (Op::Put(br#"{"n":2}"#.to_vec()), None),
        (Op::Patch(br#"{"n":1}"#.to_vec()), None),
        (Op::Delete, None),
        (Op::Put(br#"{"n":1}"#.to_vec()), Some("\"x\"")),
    ] {
        let out = w.send_with("a", op, |r| {
            r.idempotency_key = Some(KEY.into());
            r.if_match = if_match.map(str::to_owned);
        });
        assert_eq!(
            (out.reply.status, error_code(&out)),
            (422, Some("idempotency_key_reused"))
        );
        let body: serde_json::Value = serde_json::from_slice(&out.reply.body).unwrap();
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"));
    }
    let after: Vec<String> = w
        .store
        .keys_with_prefix("")
        .into_iter()
        .filter(|k| !k.starts_with("r:") && !k.starts_with("m:admit:"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|k| !k.starts_with("r:") && !k.starts_with("m:admit:"))
        .collect();
    assert_eq!(after, before);
    assert_eq!(records(&w).len(), 1);
}

#[test]
fn bad_keys_and_callers_that_cannot_be_remembered_are_refused() {
    let mut w = world();
    for bad in ["", "tab\tkey", &"k".repeat(256)] {
        let out = put(&mut w, "1", Some(bad), None);
        assert_eq!(
            (out.reply.status, error_code(&out)),
            (400, Some("bad_request")),
            "{bad:?}"
        );
    }
    // Without an auth_key a credentialed caller's key cannot be kept per caller.
    let mut w = World::new();
    let out = put(&mut w, "1", Some(KEY), Some("Bearer alice"));
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (400, Some("idempotency_unavailable"))
    );
    assert_eq!(records(&w).len(), 0);
    // An anonymous caller's can: no credential goes into it.
    let first = put(&mut w, "1", Some(KEY), None);
    let again = put(&mut w, "1", Some(KEY), None);
    assert_eq!(again.reply.header("etag"), first.reply.header("etag"));
    assert_eq!(records(&w).len(), 1);
}

#[test]
fn a_repeat_while_the_first_runs_is_a_409_and_a_lapsed_claim_is_recovered() {
    let mut w = world();
    // Another instance claimed the key and is still running.
    let claim = claim_as(&mut w, 77);
    let out = put(&mut w, "1", Some(KEY), None);
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (409, Some("idempotency_in_progress"))
    );
    assert_eq!(out.reply.header("retry-after"), Some("1"));
    assert_eq!(records(&w).len(), 0);

    // It died before storing its record: after the claim lapses, a repeat performs the write.
    drop(claim);
    w.advance_ms(PENDING.as_millis() as u64 + 1);
    let out = put(&mut w, "1", Some(KEY), None);
    assert_eq!(out.reply.status, 202);
    assert_eq!(records(&w).len(), 1);
    assert_eq!(
        put(&mut w, "1", Some(KEY), None).reply.header("etag"),
        out.reply.header("etag")
    );
}

#[test]
fn a_claim_left_pending_after_its_record_was_stored_is_replayed() {
    let mut w = world();
    let out = put(&mut w, "1", Some(KEY), None);
    let etag = out.reply.header("etag").unwrap().to_owned();
    // Make it look as if the instance died between the record and the done mark.
    let k = idem_keys(&w).pop().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(w.store.peek(&k).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("etag");
    v["until"] = (w.now.0 + PENDING.as_millis() as u64).into();
    w.store.set(&k, &serde_json::to_vec(&v).unwrap()).unwrap();
    w.advance_ms(PENDING.as_millis() as u64 + 1);
    let again = put(&mut w, "1", Some(KEY), None);
    assert_eq!(again.reply.status, 202);
    assert_eq!(again.reply.header("etag"), Some(etag.as_str()));
    assert_eq!(records(&w).len(), 1);
}

#[test]
fn a_failed_write_forgets_its_claim_so_a_repeat_is_judged_afresh() {
    let mut w = world();
    w.origin.found(r#"{"n":1}"#, "\"v1\"");
    let stale = w.send_with("a", Op::Put(b"2".to_vec()), |r| {
        r.idempotency_key = Some(KEY.into());
        r.if_match = Some("\"v0\"".into());
    });
    assert_eq!(stale.reply.status, 412);
    assert!(idem_keys(&w).is_empty());
    // The same request once the precondition holds (a new key is what a client sends; the
    // same key is judged afresh, not answered 412 from memory).
    w.origin.found(r#"{"n":1}"#, "\"v0\"");
    w.store.delete(&World::key("a").kv_key()).unwrap();
    let ok = w.send_with("a", Op::Put(b"2".to_vec()), |r| {
        r.idempotency_key = Some(KEY.into());
        r.if_match = Some("\"v0\"".into());
    });
    assert_eq!(ok.reply.status, 202);
}

#[test]
fn a_second_claimer_that_overwrote_the_claim_stops_the_first_before_its_record() {
    // Two instances race: the first stored its claim, the second overwrote it before the
    // first's confirming read. The first stops with 409 and stores nothing.
    let mut w = world();
    let first = claim_as(&mut w, 1);
    // The second read the key empty before the first claimed: it writes its own claim.
    let k = idem_keys(&w).pop().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(w.store.peek(&k).unwrap()).unwrap();
    v["owner"] = 2.into();
    w.store.set(&k, &serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(first.confirm(&mut w.store).is_err());
}

#[test]
fn records_live_for_a_window_and_the_sweep_deletes_older_windows() {
    let mut w = world();
    put(&mut w, "1", Some(KEY), None);
    assert_eq!(idem_keys(&w).len(), 1);
    let hour = KEEP.as_millis() as u64;
    w.advance_ms(hour);
    let mut clock = TestClock::at(w.now);
    sweep::sweep(&mut w.store, &mut clock, &w.cfg).unwrap();
    assert_eq!(idem_keys(&w).len(), 1, "the previous window is still read");
    assert_eq!(
        put(&mut w, "1", Some(KEY), None)
            .reply
            .header("idempotent-replayed"),
        Some("true")
    );
    w.advance_ms(2 * hour);
    let mut clock = TestClock::at(w.now);
    let report = sweep::sweep(&mut w.store, &mut clock, &w.cfg).unwrap();
    assert_eq!(report.idempotency_expired, 1);
    assert!(idem_keys(&w).is_empty());
}
