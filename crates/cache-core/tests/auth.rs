//! The access rules of the request paths, against `MemoryStore` and a scripted origin: what
//! each caller is served, which writes are buffered, and what is kept in the store.

mod common;

use std::time::Duration;

use cache_core::auth::caller::Caller;
use cache_core::config::AuthMode;
use cache_core::contract::Access;
use cache_core::entry::Audience;
use cache_core::serve::origin::Unanswered;
use cache_core::serve::{CacheStatus, Op};
use common::{body, error_code, records, refusal, status, World};

const ALICE: &str = "Bearer alice";
const BOB: &str = "Bearer bob";

/// A world with an `auth_key`, so entries can be kept per caller.
fn world() -> World {
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    w
}

fn get_as(w: &mut World, name: &str, auth: Option<&str>) -> cache_core::serve::Outcome {
    w.get_with(name, |r| r.authorization = auth.map(str::to_owned))
}

fn put_as(w: &mut World, name: &str, json: &str, auth: Option<&str>) -> cache_core::serve::Outcome {
    w.send_with(name, Op::Put(json.as_bytes().to_vec()), |r| {
        r.authorization = auth.map(str::to_owned);
    })
}

/// Keys in the store other than the rate counters (`r:`), which every request moves.
fn stored(w: &World) -> usize {
    w.store
        .keys_with_prefix("")
        .iter()
        .filter(|k| !k.starts_with("r:"))
        .count()
}

/// An answer that passed the DB API's refusal through: its status and challenge.
fn assert_refused(out: &cache_core::serve::Outcome, status: u16) {
    assert_eq!(
        (out.reply.status, error_code(out)),
        (status, Some("origin_refused"))
    );
    assert_eq!(
        out.reply.header("www-authenticate"),
        Some("Bearer realm=\"db\"")
    );
}

fn own_entry_count(w: &World) -> usize {
    w.store.keys_with_prefix("c:ns#").len()
}

#[test]
fn a_private_answer_is_kept_for_its_caller_alone() {
    let mut w = world();
    w.origin.found_cc(r#"{"secret":"a"}"#, "\"v1\"", "private");
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert!(out
        .reply
        .header("cache-control")
        .unwrap()
        .starts_with("private"));
    assert_eq!(w.entry("a"), None, "nothing in the shared entry");
    assert_eq!(own_entry_count(&w), 1);

    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(w.origin.reads.len(), 1);

    // Bob and an anonymous caller are never served Alice's entry: each asks the origin,
    // with its own credentials (or none).
    w.origin.refuse(403);
    let out = get_as(&mut w, "a", Some(BOB));
    assert_refused(&out, 403);
    assert_eq!(w.origin.reads[1].authorization.as_deref(), Some(BOB));
    w.origin.refuse(401);
    let out = get_as(&mut w, "a", None);
    assert_eq!(out.reply.status, 401);
    assert_eq!(w.origin.reads[2].authorization, None);
    // The refusals evicted nothing and were not kept.
    assert_eq!(own_entry_count(&w), 1);
    assert_eq!(get_as(&mut w, "a", Some(ALICE)).reply.status, 200);
    assert_eq!(w.origin.reads.len(), 3);
}

#[test]
fn a_credentialed_answer_without_a_marking_is_private_and_public_is_shared() {
    let mut w = world();
    w.origin.found(r#"{"n":1}"#, "\"v1\"");
    get_as(&mut w, "a", Some(ALICE));
    assert_eq!(w.entry("a"), None);
    w.origin
        .found_cc(r#"{"n":2}"#, "\"v2\"", "public, max-age=5");
    get_as(&mut w, "b", Some(ALICE));
    let shared = w.entry("b").unwrap();
    assert_eq!(shared.audience, Audience::Anyone);
    assert_eq!(
        shared.fresh_until,
        w.now.saturating_add(Duration::from_secs(5))
    );
    let out = get_as(&mut w, "b", Some(BOB));
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    let out = get_as(&mut w, "b", None);
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert!(!out
        .reply
        .header("cache-control")
        .unwrap()
        .contains("private"));
    assert_eq!(w.origin.reads.len(), 2);
}

#[test]
fn without_an_auth_key_nothing_is_kept_per_caller_and_no_store_is_never_kept() {
    let mut w = World::new();
    w.origin.found_cc("1", "\"v1\"", "private");
    w.origin.found_cc("1", "\"v1\"", "private");
    assert_eq!(
        status(&get_as(&mut w, "a", Some(ALICE))),
        (200, Some(CacheStatus::Miss))
    );
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Miss)));
    assert_eq!(out.reply.header("cache-control"), Some("private, no-cache"));
    assert_eq!(w.store.keys_with_prefix("c:").len(), 0);

    let mut w = world();
    w.origin.found_cc("1", "\"v1\"", "no-store");
    get_as(&mut w, "a", None);
    w.origin.found("1", "\"v1\"");
    w.origin.script.back_mut().unwrap().as_mut().unwrap().vary = Some("Cookie".into());
    get_as(&mut w, "b", None);
    assert_eq!(w.store.keys_with_prefix("c:").len(), 0);
}

#[test]
fn a_stale_own_entry_is_revalidated_with_its_callers_credentials_and_a_refusal_removes_it() {
    let mut w = world();
    w.origin.found_cc("1", "\"v1\"", "private");
    get_as(&mut w, "a", Some(ALICE));
    w.advance_ms(70_000);
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Stale)));
    w.origin.refuse(401);
    let results = w.run_deferred(&out);
    assert_eq!(results[0].as_ref().unwrap_err().parts().0, 401);
    assert_eq!(w.origin.reads[1].authorization.as_deref(), Some(ALICE));
    assert_eq!(w.origin.reads[1].if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(
        own_entry_count(&w),
        0,
        "the revoked caller's own entry is gone"
    );
}

#[test]
fn a_refused_revalidation_of_a_shared_entry_leaves_it_for_others() {
    let mut w = world();
    w.origin.found_cc("1", "\"v1\"", "public");
    get_as(&mut w, "a", None);
    w.advance_ms(70_000);
    let out = get_as(&mut w, "a", Some(BOB));
    assert_eq!(status(&out), (200, Some(CacheStatus::Stale)));
    w.origin.refuse(403);
    w.run_deferred(&out);
    assert!(w.entry("a").is_some());
}

#[test]
fn a_write_is_authorized_with_the_callers_credentials_before_anything_is_stored() {
    let mut w = world();
    w.origin.authorize_script.push_back(Ok(refusal(403)));
    let out = put_as(&mut w, "a", "1", Some(BOB));
    assert_refused(&out, 403);
    assert_eq!(stored(&w), 0, "nothing stored");
    let call = &w.origin.authorizations[0];
    assert_eq!(call.authorization.as_deref(), Some(BOB));
    let asked: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        asked,
        serde_json::json!({"ns": "ns", "key": "a", "op": "write"})
    );

    w.origin
        .authorize_script
        .push_back(Err(Unanswered::TimedOut("slow".into())));
    let out = put_as(&mut w, "a", "1", Some(ALICE));
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (503, Some("access_unchecked"))
    );
    assert_eq!(out.reply.header("retry-after"), Some("1"));
    assert_eq!(stored(&w), 0);

    let out = put_as(&mut w, "a", "1", Some(ALICE));
    assert_eq!(out.reply.status, 202);
    assert_eq!(records(&w)[0].subject.as_deref(), Some("alice"));
    let raw = String::from_utf8(
        w.store
            .peek(&w.store.keys_with_prefix("w:")[0])
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        !raw.contains("Bearer"),
        "no credential in the record: {raw}"
    );
}

#[test]
fn a_write_grant_is_kept_for_grant_ttl_then_asked_again() {
    let mut w = world();
    w.cfg.grant_ttl = Duration::from_secs(10);
    put_as(&mut w, "a", "1", Some(ALICE));
    put_as(&mut w, "a", "2", Some(ALICE));
    assert_eq!(w.origin.authorizations.len(), 1);
    put_as(&mut w, "b", "2", Some(ALICE));
    put_as(&mut w, "a", "2", Some(BOB));
    assert_eq!(w.origin.authorizations.len(), 3, "per key and per caller");
    w.advance_ms(10_000);
    w.origin.authorize_script.push_back(Ok(refusal(403)));
    let out = put_as(&mut w, "a", "3", Some(ALICE));
    assert_eq!(out.reply.status, 403, "revoked: refused within grant_ttl");
    assert_eq!(records(&w).len(), 4);
    let grant_keys = w.store.keys_with_prefix("m:grant:");
    assert!(
        grant_keys.iter().all(|k| !k.contains("alice")),
        "{grant_keys:?}"
    );
}

#[test]
fn a_written_entry_is_served_only_to_callers_the_origin_lets_read() {
    let mut w = world();
    assert_eq!(
        put_as(&mut w, "a", r#"{"n":1}"#, Some(ALICE)).reply.status,
        202
    );
    assert_eq!(w.entry("a").unwrap().audience, Audience::Granted);

    // Bob: a conditional read with his credentials; refused.
    w.origin.refuse(403);
    let out = get_as(&mut w, "a", Some(BOB));
    assert_eq!(out.reply.status, 403);
    assert_eq!(w.origin.reads[0].authorization.as_deref(), Some(BOB));
    // Alice: the origin answers her read (it has no value yet: 404), so she may read; the
    // grant is kept and her next read asks nothing.
    w.origin.status(404);
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(body(&out), serde_json::json!({"n": 1}));
    assert!(out
        .reply
        .header("cache-control")
        .unwrap()
        .starts_with("private"));
    get_as(&mut w, "a", Some(ALICE));
    assert_eq!(w.origin.reads.len(), 2);
    // The origin down: a caller without a grant is not served on a guess.
    w.origin.unanswered(Unanswered::Failed("down".into()));
    let out = get_as(&mut w, "a", None);
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (503, Some("access_unchecked"))
    );
}

#[test]
fn a_write_to_a_shared_item_stays_shared() {
    let mut w = world();
    w.origin.found_cc("1", "\"v1\"", "public");
    get_as(&mut w, "a", None);
    put_as(&mut w, "a", "2", Some(ALICE));
    assert_eq!(w.entry("a").unwrap().audience, Audience::Anyone);
    let out = get_as(&mut w, "a", None);
    assert_eq!(body(&out), serde_json::json!(2));
    assert_eq!(w.origin.reads.len(), 1);
}

#[test]
fn in_grant_mode_answers_are_shared_and_every_caller_needs_a_grant() {
    let mut w = world();
    w.cfg.auth_mode = AuthMode::Grant;
    w.origin.found_cc(r#"{"doc":1}"#, "\"v1\"", "private");
    get_as(&mut w, "a", Some(ALICE));
    let e = w.entry("a").unwrap();
    assert_eq!(e.audience, Audience::Granted);
    assert_eq!(own_entry_count(&w), 0);
    // Alice's fill was her grant.
    assert_eq!(
        status(&get_as(&mut w, "a", Some(ALICE))),
        (200, Some(CacheStatus::Hit))
    );
    assert_eq!(w.origin.reads.len(), 1);
    // Bob gets a conditional read: 304, no body moves; then he is served from the cache.
    w.origin.status(304);
    let out = get_as(&mut w, "a", Some(BOB));
    assert_eq!(status(&out), (200, Some(CacheStatus::Hit)));
    assert_eq!(w.origin.reads[1].if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(w.origin.reads[1].authorization.as_deref(), Some(BOB));
    // Anonymous: refused.
    w.origin.refuse(401);
    assert_eq!(get_as(&mut w, "a", None).reply.status, 401);
    // Bob's grant lapses after grant_ttl; revoked, he is refused.
    w.advance_ms(61_000);
    w.origin.found_cc(r#"{"doc":1}"#, "\"v1\"", "private");
    get_as(&mut w, "a", Some(ALICE));
    w.origin.refuse(403);
    assert_eq!(get_as(&mut w, "a", Some(BOB)).reply.status, 403);
}

#[test]
fn the_flush_sends_the_principal_and_a_revoked_one_ends_in_the_dead_letter_queue() {
    let mut w = world();
    put_as(&mut w, "a", "1", Some(ALICE));
    put_as(&mut w, "b", "1", Some(BOB));
    w.db.revoked.insert("bob".into());
    w.flush();
    let sent = &w.db.sent[0].writes;
    let by: Vec<_> = sent
        .iter()
        .map(|x| (x.key.as_str(), x.on_behalf_of.as_deref()))
        .collect();
    assert_eq!(by, [("a", Some("alice")), ("b", Some("bob"))]);
    assert_eq!(w.db.value("a"), Some(serde_json::json!(1)));
    assert_eq!(w.db.value("b"), None, "not applied");
    assert_eq!(w.count("d:"), 1, "dead-lettered");
    assert_eq!(w.count("w:"), 0);
    assert!(w.entry("b").is_none(), "the refused write left the cache");
}

#[test]
fn scopes_and_grant_keys_reveal_no_credential() {
    let w = world();
    let alice = Caller::from_header(Some(ALICE));
    let scope = alice.scope(&w.cfg).unwrap();
    let digest = alice
        .grant_digest(&w.cfg, &World::key("a"), Access::Read)
        .unwrap();
    for s in [scope.as_str(), digest.as_str()] {
        assert!(!s.contains("alice") && s.len() == 32, "{s}");
    }
}

#[test]
fn a_refused_write_does_not_take_older_writes_of_other_principals_with_it() {
    let mut w = world();
    put_as(&mut w, "k", r#""alice's""#, Some(ALICE));
    w.advance_ms(1);
    put_as(&mut w, "k", r#""bob's""#, Some(BOB));
    w.advance_ms(1);
    put_as(&mut w, "k", r#""bob's again""#, Some(BOB));
    w.db.revoked.insert("bob".into());
    w.flush();
    assert_eq!(w.db.sent[0].writes.len(), 1, "coalesced into bob's newest");
    assert_eq!(w.count("d:"), 1);
    assert_eq!(records(&w).len(), 1, "alice's write stays buffered");
    w.flush();
    let last = &w.db.sent[1].writes[0];
    assert_eq!(last.on_behalf_of.as_deref(), Some("alice"));
    assert_eq!(w.db.value("k"), Some(serde_json::json!("alice's")));
    assert_eq!(w.count("w:"), 0);
}

mod jwt_mode {
    use super::*;
    use cache_core::config::{var, CacheConfig};
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A world in JWT mode: the fixture keys; `ns` is owner-only, as `sessions` would be.
    fn jwt_world() -> World {
        let mut w = world();
        let jwks = fixture("jwks.json");
        w.cfg = CacheConfig::from_lookup(|name| match name {
            var::DB_API_URL => Some("http://db.test".into()),
            var::AUTH_MODE => Some("jwt".into()),
            var::AUTH_KEY => Some("a-secret-key-of-sixteen".into()),
            var::JWT_JWKS => Some(jwks.clone()),
            var::AUTH_RULES => Some(r#"{"ns":{"read":"owner","write":"owner"}}"#.into()),
            _ => None,
        })
        .unwrap();
        w
    }

    fn token(w: &World, sub: &str, exp_in_secs: i64) -> String {
        let now = i64::try_from(w.now.0 / 1000).unwrap();
        let claims = serde_json::json!({"sub": sub, "exp": now + exp_in_secs});
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs-1".into());
        let key = EncodingKey::from_secret(fixture("hmac-secret.txt").as_bytes());
        format!("Bearer {}", encode(&header, &claims, &key).unwrap())
    }

    #[test]
    fn the_rules_decide_at_the_edge_and_the_subject_is_the_principal() {
        let mut w = jwt_world();
        let alice = token(&w, "alice", 300);
        let bob = token(&w, "bob", 300);
        w.origin.found_cc(r#"{"s":1}"#, "\"v1\"", "private");
        let out = get_as(&mut w, "alice:1", Some(&alice));
        assert_eq!(out.reply.status, 200);
        assert_eq!(
            w.origin.reads[0].authorization.as_deref(),
            Some(alice.as_str())
        );
        // Bob and an anonymous caller are refused without asking the origin.
        let out = get_as(&mut w, "alice:1", Some(&bob));
        assert_eq!(
            (out.reply.status, error_code(&out)),
            (403, Some("forbidden"))
        );
        let out = get_as(&mut w, "alice:1", None);
        assert_eq!(
            (out.reply.status, error_code(&out)),
            (401, Some("unauthenticated"))
        );
        assert_eq!(w.origin.reads.len(), 1);
        // A write needs no authorization call; the record names the subject.
        let out = put_as(&mut w, "alice:1", "2", Some(&alice));
        assert_eq!(out.reply.status, 202);
        assert!(w.origin.authorizations.is_empty());
        assert_eq!(records(&w)[0].subject.as_deref(), Some("alice"));
        assert_eq!(put_as(&mut w, "alice:1", "3", Some(&bob)).reply.status, 403);
        assert_eq!(records(&w).len(), 1);
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_are_401_and_change_nothing() {
        let mut w = jwt_world();
        let expired = token(&w, "alice", -120);
        let good = token(&w, "alice", 300);
        let forged = format!("{}x", &good[..good.len() - 1]);
        let header = URL_SAFE.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE.encode(r#"{"sub":"alice","exp":99999999999}"#);
        let unsigned = format!("Bearer {header}.{claims}.");
        for bad in [expired, forged, unsigned, "Basic YWxpY2U6cHc=".to_owned()] {
            let out = put_as(&mut w, "alice:1", "1", Some(&bad));
            assert_eq!(out.reply.status, 401, "{bad}");
            assert_eq!(
                out.reply.header("www-authenticate"),
                Some("Bearer error=\"invalid_token\"")
            );
            assert_eq!(get_as(&mut w, "alice:1", Some(&bad)).reply.status, 401);
        }
        assert_eq!(super::stored(&w), 0);
        assert!(w.origin.reads.is_empty());
    }

    use base64::engine::general_purpose::URL_SAFE_NO_PAD as URL_SAFE;
    use base64::Engine;
}

#[test]
fn callers_with_credentials_are_counted_by_principal_and_the_others_by_address() {
    use cache_core::limit::Budget;
    let mut w = world();
    w.cfg.rate_limits.read = Some(Budget {
        quota: 2,
        window_secs: 60,
    });
    for _ in 0..4 {
        w.origin.found_cc("1", "\"v1\"", "public");
    }
    // All from one address (the world's rate key): each principal has its own budget.
    assert_eq!(get_as(&mut w, "a", Some(ALICE)).reply.status, 200);
    assert_eq!(get_as(&mut w, "a", Some(ALICE)).reply.status, 200);
    let out = get_as(&mut w, "a", Some(ALICE));
    assert_eq!(
        (out.reply.status, error_code(&out)),
        (429, Some("rate_limited"))
    );
    assert_eq!(get_as(&mut w, "a", Some(BOB)).reply.status, 200);
    assert_eq!(get_as(&mut w, "a", None).reply.status, 200);
    assert_eq!(get_as(&mut w, "a", None).reply.status, 200);
    assert_eq!(get_as(&mut w, "a", None).reply.status, 429);
    let keys = w.store.keys_with_prefix("r:");
    assert!(keys.iter().all(|k| !k.contains("alice")), "{keys:?}");
}
