//! Long-poll reads (`cache_core::serve::watch`) against `MemoryStore`, a scripted origin and
//! a clock that moves only when slept on: the answer comes when the ETag changes, `304` at
//! the deadline, with a bounded number of store reads, and the same access decision as a
//! plain read.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use cache_core::serve::watch::{self, MAX_POLLS, MAX_WAIT, POLL_EVERY};
use cache_core::serve::{GetRequest, Op, Outcome};
use cache_core::store::{KvStore, MemoryStore, StoreError};
use cache_core::time::{TestClock, UnixMillis};
use common::{body, error_code, write_into, FakeOrigin, World, CALLER};
use serde_json::json;

/// A store shared with the clock's sleep hook (a concurrent writer), counting reads.
#[derive(Clone, Default)]
struct Shared {
    inner: Rc<RefCell<MemoryStore>>,
    gets: Rc<RefCell<usize>>,
}

impl KvStore for Shared {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        *self.gets.borrow_mut() += 1;
        self.inner.borrow_mut().get(key)
    }
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.borrow_mut().set(key, value)
    }
    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.inner.borrow_mut().delete(key)
    }
    fn get_keys(&mut self) -> Result<Vec<String>, StoreError> {
        self.inner.borrow_mut().get_keys()
    }
    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.inner.borrow_mut().increment(key, delta)
    }
}

fn request(etag: Option<&str>, auth: Option<&str>) -> GetRequest {
    GetRequest {
        key: World::key("a"),
        authorization: auth.map(str::to_owned),
        if_none_match: etag.map(str::to_owned),
        rate_key: CALLER.into(),
    }
}

/// A world whose `a` was fetched from the origin (shared with anyone), and its ETag.
fn written() -> (World, String) {
    let mut w = World::new();
    w.origin.found(r#"{"n":1}"#, "\"v3\"");
    let out = w.get("a");
    let etag = out.reply.header("etag").unwrap().to_owned();
    (w, etag)
}

fn long_poll(
    w: &World,
    store: &mut Shared,
    clock: &mut TestClock,
    req: &GetRequest,
    wait: Duration,
) -> Outcome {
    watch::get_waiting(
        store,
        &mut FakeOrigin::default(),
        clock,
        9,
        &w.cfg,
        req,
        wait,
    )
}

#[test]
fn a_change_during_the_wait_is_answered_within_one_poll() {
    let (w, etag) = written();
    let mut store = Shared::default();
    *store.inner.borrow_mut() = w.store.clone();
    let writer = store.clone();
    let cfg = w.cfg.clone();
    let mut clock = TestClock::at(w.now);
    let changed_at = UnixMillis(w.now.0 + 3_000);
    let mut done = false;
    clock.on_sleep = Some(Box::new(move |now| {
        if now >= changed_at && !done {
            done = true;
            let stamp = cache_core::stamp::Stamp::new(now, 0, 5);
            write_into(
                &mut *writer.inner.borrow_mut(),
                "a",
                Some(json!({"n": 2})),
                stamp,
                now,
                &cfg,
            );
        }
    }));
    let out = long_poll(
        &w,
        &mut store,
        &mut clock,
        &request(Some(&etag), None),
        MAX_WAIT,
    );
    assert_eq!(out.reply.status, 200);
    assert_eq!(body(&out), json!({"n": 2}));
    assert_ne!(out.reply.header("etag"), Some(etag.as_str()));
    assert!(clock.slept <= Duration::from_millis(3_000) + POLL_EVERY);
}

#[test]
fn no_change_is_a_304_at_the_deadline_with_bounded_store_reads() {
    let (w, etag) = written();
    let mut store = Shared::default();
    *store.inner.borrow_mut() = w.store.clone();
    let mut clock = TestClock::at(w.now);
    let out = long_poll(
        &w,
        &mut store,
        &mut clock,
        &request(Some(&etag), None),
        MAX_WAIT,
    );
    assert_eq!(out.reply.status, 304);
    assert_eq!(clock.slept, MAX_WAIT);
    let gets = *store.gets.borrow();
    // Two ordinary reads, and one read per poll.
    assert!(gets <= MAX_POLLS as usize + 10, "{gets} reads");
    assert!(gets >= MAX_POLLS as usize, "{gets} reads");

    // A shorter wait, shorter.
    let mut clock = TestClock::at(w.now);
    let out = long_poll(
        &w,
        &mut store,
        &mut clock,
        &request(Some(&etag), None),
        Duration::from_secs(2),
    );
    assert_eq!(
        (out.reply.status, clock.slept),
        (304, Duration::from_secs(2))
    );
}

#[test]
fn without_a_matching_etag_or_a_wait_it_answers_at_once() {
    let (w, etag) = written();
    let mut store = Shared::default();
    *store.inner.borrow_mut() = w.store.clone();
    for (req, wait) in [
        (request(None, None), MAX_WAIT),
        (request(Some("\"other\""), None), MAX_WAIT),
        (request(Some(&etag), None), Duration::ZERO),
    ] {
        let mut clock = TestClock::at(w.now);
        let out = long_poll(&w, &mut store, &mut clock, &req, wait);
        assert_eq!(clock.slept, Duration::ZERO);
        assert!(matches!(out.reply.status, 200 | 304));
    }
}

#[test]
fn a_caller_refused_by_a_plain_read_is_refused_without_waiting() {
    // JWT mode with an owner-only namespace: an anonymous long-poll is refused at once.
    let mut w = World::new();
    w.cfg = cache_core::config::CacheConfig::from_lookup(|name| match name {
        cache_core::config::var::DB_API_URL => Some("http://db.test".into()),
        cache_core::config::var::AUTH_MODE => Some("jwt".into()),
        cache_core::config::var::AUTH_KEY => Some("a-secret-key-of-sixteen".into()),
        cache_core::config::var::JWT_JWKS => Some(
            std::fs::read_to_string(format!(
                "{}/tests/fixtures/jwt/jwks.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        ),
        cache_core::config::var::AUTH_RULES => {
            Some(r#"{"ns":{"read":"owner","write":"owner"}}"#.into())
        }
        _ => None,
    })
    .unwrap();
    let mut store = Shared::default();
    let mut clock = TestClock::at(w.now);
    let out = long_poll(
        &w,
        &mut store,
        &mut clock,
        &request(Some("*"), None),
        MAX_WAIT,
    );
    assert_eq!(out.reply.status, 401);
    assert_eq!(error_code(&out), Some("unauthenticated"));
    assert_eq!(clock.slept, Duration::ZERO);
}

#[test]
fn a_change_another_caller_may_not_see_is_not_leaked_while_waiting() {
    // Grant mode with an auth_key: alice's write is behind a grant. Bob long-polls with the
    // ETag he holds; his read grant lapses while he waits; when the entry changes, the
    // answer is an ordinary read for bob, which asks the origin again, and it refuses.
    let mut w = World::new();
    w.cfg.auth_key = Some("a-secret-key-of-sixteen".into());
    w.cfg.grant_ttl = Duration::from_secs(5);
    let out = w.send_with("a", Op::Put(b"1".to_vec()), |r| {
        r.authorization = Some("Bearer alice".into());
    });
    let etag = out.reply.header("etag").unwrap().to_owned();
    let mut store = Shared::default();
    *store.inner.borrow_mut() = w.store.clone();
    let writer = store.clone();
    let cfg = w.cfg.clone();
    let mut clock = TestClock::at(w.now);
    let mut done = false;
    let change_at = UnixMillis(w.now.0 + 12_000);
    clock.on_sleep = Some(Box::new(move |now| {
        if now >= change_at && !done {
            done = true;
            let stamp = cache_core::stamp::Stamp::new(now, 0, 5);
            write_into(
                &mut *writer.inner.borrow_mut(),
                "a",
                Some(json!("secret")),
                stamp,
                now,
                &cfg,
            );
        }
    }));
    let mut origin = FakeOrigin::default();
    // Bob's first read: the origin lets him read (a grant is kept); then it refuses him.
    origin.found("1", "\"v1\"");
    origin.refuse(403);
    let out = watch::get_waiting(
        &mut store,
        &mut origin,
        &mut clock,
        9,
        &w.cfg,
        &request(Some(&etag), Some("Bearer bob")),
        MAX_WAIT,
    );
    assert_eq!(
        out.reply.status,
        403,
        "{:?}",
        String::from_utf8_lossy(&out.reply.body)
    );
    assert!(!String::from_utf8_lossy(&out.reply.body).contains("secret"));
}
