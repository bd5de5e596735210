use std::collections::HashMap;

use super::*;

fn load(vars: &[(&str, &str)]) -> Result<CacheConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    CacheConfig::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn defaults_apply_when_only_the_url_is_set_and_empty_means_unset() {
    let cfg = load(&[
        ("db_api_url", "https://db.example/api/"),
        ("ttl", ""),
        ("admin_token", ""),
    ])
    .unwrap();
    assert_eq!(cfg.db_api_url, "https://db.example/api");
    assert_eq!(cfg.ttl, Duration::from_secs(60));
    assert_eq!(cfg.stale_ttl, Duration::from_secs(300));
    assert_eq!(cfg.stale_if_error, Duration::from_secs(3600));
    assert_eq!(cfg.negative_ttl, Duration::from_secs(30));
    assert_eq!(cfg.compress_min_bytes, 1024);
    assert_eq!(cfg.max_value_bytes, MAX_VALUE_BYTES);
    assert_eq!(cfg.max_entries, 1000);
    assert_eq!(cfg.sweep_slice, 4096);
    assert_eq!(cfg.flush_batch_max_items, 100);
    assert_eq!(cfg.flush_batch_max_bytes, 512 * 1024);
    assert_eq!(cfg.admin_token, None);
    assert_eq!(cfg.flush_timeout, Duration::from_secs(10));
    assert_eq!(cfg.kv_store, "default");
    assert_eq!(cfg.buffer_store, None);
    assert_eq!(cfg.jwt_verifier, None);
    assert_eq!(cfg.auth_rules, None);
    let per_minute = |quota| {
        Some(crate::limit::Budget {
            quota,
            window_secs: 60,
        })
    };
    assert_eq!(
        cfg.rate_limits,
        crate::limit::RateLimits {
            read: per_minute(600),
            write: per_minute(120),
            admin: per_minute(30),
        }
    );
    let off = load(&[
        ("db_api_url", "http://db"),
        ("rate_limit_read", "off"),
        ("rate_limit_admin", " Off "),
    ])
    .unwrap();
    assert_eq!((off.rate_limits.read, off.rate_limits.admin), (None, None));
    let split = |kv: &str, buffer: &str| {
        load(&[
            ("db_api_url", "http://db"),
            ("kv_store", kv),
            ("buffer_store", buffer),
        ])
        .unwrap()
        .buffer_store
    };
    assert_eq!(split("", "buffer"), Some("buffer".to_owned()));
    assert_eq!(split("cache", "cache"), None);
    assert_eq!(split("", "default"), None);
    assert_eq!(split("cache", ""), None);
    assert_eq!(off.rate_limits.write, per_minute(120));
    assert_eq!(
        cfg,
        CacheConfig::with_db_api_url("https://db.example/api").unwrap()
    );
}

fn check(vars: &[(&str, &str)], expected: Result<(), &str>) {
    let got = load(vars).map(|_| ()).map_err(|e| e.to_string());
    match expected {
        Ok(()) => assert!(got.is_ok(), "{vars:?}: {got:?}"),
        Err(fragment) => {
            let msg = got.expect_err("should be refused");
            assert!(
                msg.contains(fragment),
                "{vars:?}: {msg:?} lacks {fragment:?}"
            );
        }
    }
}

type Vars<'a> = &'a [(&'a str, &'a str)];

#[test]
fn invalid_values_are_refused_naming_the_variable() {
    const URL: (&str, &str) = ("db_api_url", "http://localhost:3000");
    let cases: &[(Vars, Result<(), &str>)] = &[
        (&[], Err("`db_api_url` is required")),
        (&[("db_api_url", "  ")], Err("`db_api_url` is required")),
        (&[("db_api_url", "ftp://x")], Err("`db_api_url`")),
        (&[("db_api_url", "https://")], Err("`db_api_url`")),
        (&[URL], Ok(())),
        (&[URL, ("ttl", "90")], Ok(())),
        (&[URL, ("ttl", "1.5s")], Err("`ttl`: expected a duration")),
        (&[URL, ("stale_ttl", "-1")], Err("`stale_ttl`")),
        (
            &[URL, ("max_value_bytes", "2MiB")],
            Err("`max_value_bytes`: must be between"),
        ),
        (&[URL, ("max_value_bytes", "0")], Err("`max_value_bytes`")),
        (&[URL, ("max_value_bytes", "100KiB")], Ok(())),
        (
            &[URL, ("flush_batch_max_bytes", "1MiB")],
            Err("`flush_batch_max_bytes`"),
        ),
        (
            &[URL, ("flush_batch_max_items", "0")],
            Err("`flush_batch_max_items`"),
        ),
        (
            &[URL, ("max_entries", "ten")],
            Err("`max_entries`: expected a whole number"),
        ),
        (
            &[URL, ("sweep_slice", "1023")],
            Err("`sweep_slice`: must be between 1024"),
        ),
        (&[URL, ("sweep_slice", "100000")], Ok(())),
        (
            &[URL, ("flush_retry_base", "0s")],
            Err("`flush_retry_base`"),
        ),
        (
            &[URL, ("flush_retry_base", "10m"), ("flush_retry_max", "1m")],
            Err("`flush_retry_max`"),
        ),
        (&[URL, ("lease_ttl", "0")], Err("`lease_ttl`")),
        (&[URL, ("flush_timeout", "0s")], Err("`flush_timeout`")),
        (&[URL, ("flush_timeout", "soon")], Err("`flush_timeout`")),
        (&[URL, ("rate_limit_read", "off")], Ok(())),
        (&[URL, ("rate_limit_write", "10/1s")], Ok(())),
        (
            &[URL, ("rate_limit_read", "fast")],
            Err("`rate_limit_read`: expected a budget like 600/60s"),
        ),
        (
            &[URL, ("rate_limit_admin", "0/60s")],
            Err("`rate_limit_admin`"),
        ),
        (
            &[URL, ("rate_limit_write", "5/100ms")],
            Err("`rate_limit_write`"),
        ),
    ];
    for (vars, expected) in cases {
        check(vars, *expected);
    }
}

#[test]
fn durations_and_sizes_accept_plain_and_suffixed_forms() {
    let durations: &[(&str, Option<Duration>)] = &[
        ("30", Some(Duration::from_secs(30))),
        ("30s", Some(Duration::from_secs(30))),
        ("500ms", Some(Duration::from_millis(500))),
        ("5m", Some(Duration::from_secs(300))),
        ("1h", Some(Duration::from_secs(3600))),
        ("0", Some(Duration::ZERO)),
        ("", None),
        ("s", None),
        ("5d", None),
        ("+5s", None),
        ("99999999999999999999h", None),
    ];
    for (text, expected) in durations {
        assert_eq!(parse_duration(text), *expected, "{text:?}");
    }
    let sizes: &[(&str, Option<u64>)] = &[
        ("1024", Some(1024)),
        ("1024B", Some(1024)),
        ("512KiB", Some(512 * 1024)),
        ("1MiB", Some(1024 * 1024)),
        ("1MB", None),
        ("x", None),
    ];
    for (text, expected) in sizes {
        assert_eq!(parse_bytes(text), *expected, "{text:?}");
    }
}

#[test]
fn debug_output_hides_secrets() {
    let cfg = load(&[
        ("db_api_url", "http://h"),
        ("db_api_token", "s3cret"),
        ("admin_token", "t0ken"),
    ])
    .unwrap();
    let text = format!("{cfg:?}");
    assert!(
        !text.contains("s3cret") && !text.contains("t0ken"),
        "{text}"
    );
}

#[test]
fn the_list_of_variables_is_exactly_what_the_configuration_reads_each_once() {
    // Each lookup is a host call in a component, on every request: none is asked twice.
    let asked = std::cell::RefCell::new(Vec::new());
    CacheConfig::from_lookup(|name| {
        asked.borrow_mut().push(name.to_owned());
        (name == var::DB_API_URL).then(|| "http://db.test".to_owned())
    })
    .unwrap();
    let mut asked = asked.into_inner();
    asked.sort();
    let before = asked.len();
    asked.dedup();
    assert_eq!(asked.len(), before, "a variable was looked up twice");
    let mut all: Vec<String> = var::ALL.iter().map(|s| (*s).to_owned()).collect();
    all.sort();
    assert_eq!(asked, all);
}

const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");
const RULES: &str = r#"{"public": {"read": "anyone", "write": "signed-in"}}"#;

#[test]
fn jwt_and_rule_variables_are_parsed_once_and_refused_naming_the_variable() {
    const URL: (&str, &str) = ("db_api_url", "http://localhost:3000");
    let cases: &[(Vars, Result<(), &str>)] = &[
        (&[URL, ("jwt_jwks", JWKS)], Ok(())),
        (
            &[
                URL,
                ("jwt_jwks", JWKS),
                ("jwt_issuer", "https://issuer.test"),
                ("jwt_audience", "cache-sync"),
                ("jwt_leeway", "5m"),
            ],
            Ok(()),
        ),
        (
            &[URL, ("jwt_jwks", "{}")],
            Err("`jwt_jwks`: not a JWKS document"),
        ),
        (
            &[
                URL,
                ("jwt_jwks", r#"{"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}"#),
            ],
            Err("`jwt_jwks`: key 0: HS256 secret of 5 bytes"),
        ),
        (
            &[URL, ("jwt_jwks", JWKS), ("jwt_leeway", "301s")],
            Err("`jwt_leeway`: must be at most 300s"),
        ),
        (
            &[URL, ("jwt_jwks", JWKS), ("jwt_leeway", "soon")],
            Err("`jwt_leeway`: expected a duration"),
        ),
        (
            &[URL, ("jwt_issuer", "https://issuer.test")],
            Err("`jwt_issuer`: is set but `jwt_jwks` is not"),
        ),
        (
            &[URL, ("jwt_audience", "cache-sync")],
            Err("`jwt_audience`: is set but `jwt_jwks` is not"),
        ),
        (
            &[URL, ("jwt_leeway", "10s")],
            Err("`jwt_leeway`: is set but `jwt_jwks` is not"),
        ),
        (&[URL, ("auth_rules", RULES)], Ok(())),
        (
            &[
                URL,
                (
                    "auth_rules",
                    r#"{"Public": {"read": "anyone", "write": "anyone"}}"#,
                ),
            ],
            Err("`auth_rules`: \"Public\" is not a namespace"),
        ),
        (
            &[URL, ("auth_rules", "owner")],
            Err("`auth_rules`: not JSON"),
        ),
    ];
    for (vars, expected) in cases {
        check(vars, *expected);
    }

    let cfg = load(&[
        URL,
        ("jwt_jwks", JWKS),
        ("jwt_audience", "cache-sync"),
        ("auth_rules", RULES),
    ])
    .unwrap();
    let verifier = cfg.jwt_verifier.as_ref().expect("a verifier");
    assert_eq!(verifier.issuer(), None);
    assert_eq!(verifier.audience(), Some("cache-sync"));
    assert_eq!(verifier.leeway(), Duration::from_secs(60));
    assert_eq!(cfg.auth_rules, Some(Rules::parse(RULES).unwrap()));
    // Loading twice gives equal configurations (the verifier compares by its keys).
    assert_eq!(
        cfg,
        load(&[
            URL,
            ("jwt_jwks", JWKS),
            ("jwt_audience", "cache-sync"),
            ("auth_rules", RULES),
        ])
        .unwrap()
    );
}

#[test]
fn debug_output_hides_the_key_sets_secrets() {
    let cfg = load(&[("db_api_url", "http://h"), ("jwt_jwks", JWKS)]).unwrap();
    let text = format!("{cfg:?}");
    let secret = JWKS
        .split("\"k\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the fixture has an oct key");
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains("hs-1"), "{text}");
}
