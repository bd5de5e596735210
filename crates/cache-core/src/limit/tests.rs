use super::*;
use crate::store::MemoryStore;

fn budget(quota: u64, window_secs: u64) -> Option<Budget> {
    Some(Budget { quota, window_secs })
}

#[test]
fn budgets_parse_with_whole_second_windows_or_off() {
    for (text, expected) in [
        ("600/60s", budget(600, 60)),
        (" 10 / 1m ", budget(10, 60)),
        ("5/90", budget(5, 90)),
        ("1000/1h", budget(1000, 3600)),
        ("1/86400s", budget(1, 86_400)),
        ("off", None),
        ("OFF", None),
    ] {
        assert_eq!(Budget::parse(text), Ok(expected), "{text}");
    }
    for (text, fragment) in [
        ("600", "like 600/60s"),
        ("600/", "like 600/60s"),
        ("/60s", "like 600/60s"),
        ("-1/60s", "like 600/60s"),
        ("1.5/60s", "like 600/60s"),
        ("0/60s", "at least 1"),
        ("10/500ms", "whole seconds"),
        ("10/1500ms", "whole seconds"),
        ("10/0s", "whole seconds"),
        ("10/2d", "like 600/60s"),
        ("10/25h", "from 1s to 24h"),
        ("none", "like 600/60s"),
    ] {
        let err = Budget::parse(text).expect_err(text);
        assert!(err.contains(fragment), "{text}: {err}");
    }
    assert_eq!(budget(600, 60).unwrap().to_string(), "600/60s");
}

#[test]
fn windows_are_aligned_to_their_length_since_the_epoch() {
    let b = budget(1, 60).unwrap();
    assert_eq!(b.window_end(UnixMillis(0)), 60);
    assert_eq!(b.window_end(UnixMillis(59_999)), 60);
    assert_eq!(b.window_end(UnixMillis(60_000)), 120);
    let b = budget(1, 7).unwrap();
    assert_eq!(b.window_end(UnixMillis(20_500)), 21);
}

#[test]
fn a_caller_gets_its_quota_per_window_and_then_429_with_the_headers() {
    let mut store = MemoryStore::new();
    let b = budget(3, 60);
    let at = |secs: f64| UnixMillis((secs * 1000.0) as u64);
    let mut seen = Vec::new();
    for t in [120.0, 130.5, 179.0] {
        match charge(&mut store, at(t), b, Class::Read, "ip:192.0.2.1").unwrap() {
            RateState::Counted(u) => seen.push((u.count, u.remaining(), u.reset_secs)),
            other => panic!("{other:?}"),
        }
    }
    // t rounds up: 49.5 s left reads 50, so a client never comes back early.
    assert_eq!(seen, [(1, 2, 60), (2, 1, 50), (3, 0, 1)]);
    let over = charge(&mut store, at(179.9), b, Class::Read, "ip:192.0.2.1").unwrap_err();
    let RequestError::RateLimited(usage) = &over else {
        panic!("{over:?}")
    };
    assert_eq!((usage.count, usage.reset_secs), (4, 1));
    let r = over.reply();
    assert_eq!(r.status, 429);
    assert_eq!(r.error.as_ref().map(|e| e.0), Some("rate_limited"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"read\";q=3;w=60"));
    assert_eq!(r.header("ratelimit"), Some("\"read\";r=0;t=1"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Other classes and callers are counted apart; the next window starts afresh.
    for (class, who) in [
        (Class::Write, "ip:192.0.2.1"),
        (Class::Read, "ip:192.0.2.2"),
    ] {
        assert!(matches!(
            charge(&mut store, at(179.9), b, class, who),
            Ok(RateState::Counted(Usage { count: 1, .. }))
        ));
    }
    assert!(matches!(
        charge(&mut store, at(180.0), b, Class::Read, "ip:192.0.2.1"),
        Ok(RateState::Counted(Usage { count: 1, .. }))
    ));
    assert_eq!(
        store.keys_with_prefix("r:"),
        [
            "r:read:180:ip:192.0.2.1",
            "r:read:180:ip:192.0.2.2",
            "r:read:240:ip:192.0.2.1",
            "r:write:180:ip:192.0.2.1",
        ]
    );
}

#[test]
fn a_class_that_is_off_counts_nothing_and_sends_no_headers() {
    let mut store = MemoryStore::new();
    for _ in 0..1000 {
        let state = charge(&mut store, UnixMillis(5), None, Class::Write, "me").unwrap();
        assert_eq!(state, RateState::Off);
        assert!(state.headers().is_empty());
    }
    assert!(store.get_keys().unwrap().is_empty());
}

#[test]
fn a_counter_the_store_refuses_lets_the_request_through_uncounted() {
    let mut store = MemoryStore::new();
    store.limit_keys(0);
    let b = budget(1, 60);
    for _ in 0..3 {
        let state = charge(&mut store, UnixMillis(0), b, Class::Admin, "me").unwrap();
        assert!(
            matches!(
                &state,
                RateState::Uncounted {
                    error: StoreError::Full,
                    ..
                }
            ),
            "{state:?}"
        );
        assert_eq!(
            state.headers(),
            [("ratelimit-policy", "\"admin\";q=1;w=60".to_owned())]
        );
    }
}

#[test]
fn rate_keys_are_kept_readable_when_short_and_hashed_otherwise() {
    assert_eq!(who_part("ip:192.0.2.1"), "ip:192.0.2.1");
    assert_eq!(who_part("ip:2001:db8::/64"), "ip:2001:db8::/64");
    let long = "sub:".repeat(40);
    for odd in ["", "has space", "ünïcode", "#looks-hashed", long.as_str()] {
        let part = who_part(odd);
        assert!(part.starts_with('#') && part.len() == 33, "{odd:?}: {part}");
        assert!(is_who_part(&part));
        assert!(!is_who_part(odd) || odd.is_empty(), "{odd:?}");
    }
    assert_ne!(who_part("a b"), who_part("a  b"));
    let key = KvKey::Rate {
        class: Class::Admin,
        window_end: u64::MAX,
        who: who_part(&"x".repeat(MAX_PLAIN_WHO)),
    }
    .render();
    assert!(
        key.len() <= crate::stored::kv_key::MAX_KV_KEY_BYTES,
        "{}",
        key.len()
    );
}

#[test]
fn anonymous_callers_are_keyed_by_address_without_port_and_ipv6_by_64() {
    for (addr, key) in [
        (Some("192.0.2.7:51234"), "ip:192.0.2.7"),
        (Some("192.0.2.7"), "ip:192.0.2.7"),
        (Some("[2001:db8:1:2:3:4:5:6]:443"), "ip:2001:db8:1:2::/64"),
        (Some("[2001:db8:1:2::ffff]:1"), "ip:2001:db8:1:2::/64"),
        (Some("[::ffff:192.0.2.7]:80"), "ip:192.0.2.7"),
        (Some(" 127.0.0.1:80 "), "ip:127.0.0.1"),
        (Some("spoofed, 192.0.2.7"), "ip:unknown"),
        (Some(""), "ip:unknown"),
        (None, "ip:unknown"),
    ] {
        assert_eq!(client_key(addr), key, "{addr:?}");
    }
}
