//! Per-namespace access rules (`cache_core::auth::rules`): parsing and the decision matrix.

use cache_core::auth::rules::{Level, RuleDecision, Rules};
use cache_core::contract::Access;
use cache_core::key::{ItemKey, Namespace};

use Access::{Read, Write};
use RuleDecision::{Allow, Forbidden, Unauthenticated};

const RULES: &str = r#"{
    "sessions": {"read": "owner", "write": "owner"},
    "profiles": {"read": "signed-in", "write": "owner"},
    "public": {"read": "anyone", "write": "signed-in"},
    "closed": {"read": "nobody", "write": "nobody"}
}"#;

fn decide(
    rules: &Rules,
    principal: Option<&str>,
    ns: &str,
    key: &str,
    access: Access,
) -> RuleDecision {
    let ns = Namespace::parse(ns).unwrap();
    let key = ItemKey::parse(key).unwrap();
    rules.decide(principal, &ns, &key, access)
}

type Case<'a> = (Option<&'a str>, &'a str, &'a str, Access, RuleDecision);

fn check(rules: &Rules, cases: &[Case]) {
    for &(principal, ns, key, access, expected) in cases {
        assert_eq!(
            decide(rules, principal, ns, key, access),
            expected,
            "{principal:?} {access:?} {ns}/{key}"
        );
    }
}

#[test]
fn the_decision_matrix_of_the_example_rules() {
    let rules = Rules::parse(RULES).unwrap();
    let alice = Some("alice");
    let bob = Some("bob");
    check(
        &rules,
        &[
            // owner: the key is the principal or starts with `{principal}:`.
            (alice, "sessions", "alice", Read, Allow),
            (alice, "sessions", "alice:cart", Write, Allow),
            (alice, "sessions", "alice:cart:2", Read, Allow),
            (alice, "sessions", "alice2", Read, Forbidden),
            (alice, "sessions", "alice2:cart", Write, Forbidden),
            (alice, "sessions", "bob:alice", Read, Forbidden),
            (alice, "sessions", "ALICE", Read, Forbidden),
            (bob, "sessions", "alice:cart", Write, Forbidden),
            (None, "sessions", "alice:cart", Read, Unauthenticated),
            (None, "sessions", "alice", Write, Unauthenticated),
            // signed-in reads, owner writes.
            (bob, "profiles", "alice", Read, Allow),
            (None, "profiles", "alice", Read, Unauthenticated),
            (alice, "profiles", "alice", Write, Allow),
            (bob, "profiles", "alice", Write, Forbidden),
            (None, "profiles", "alice", Write, Unauthenticated),
            // anyone reads, signed-in writes.
            (None, "public", "notice", Read, Allow),
            (bob, "public", "notice", Read, Allow),
            (None, "public", "notice", Write, Unauthenticated),
            (bob, "public", "notice", Write, Allow),
            // nobody: signing in would not help, so 403 either way.
            (None, "closed", "x", Read, Forbidden),
            (alice, "closed", "alice", Write, Forbidden),
            // Not listed and no "*": nobody.
            (None, "elsewhere", "x", Read, Forbidden),
            (alice, "elsewhere", "alice", Write, Forbidden),
            // An empty principal is no principal.
            (Some(""), "sessions", ":x", Read, Unauthenticated),
            (Some(""), "profiles", "x", Read, Unauthenticated),
        ],
    );
}

#[test]
fn the_star_entry_covers_every_namespace_not_listed() {
    let rules = Rules::parse(
        r#"{"*": {"read": "anyone", "write": "owner"}, "closed": {"read": "nobody", "write": "nobody"}}"#,
    )
    .unwrap();
    check(
        &rules,
        &[
            (None, "anything", "k", Read, Allow),
            (None, "anything", "k", Write, Unauthenticated),
            (Some("k"), "anything", "k:1", Write, Allow),
            (None, "closed", "k", Read, Forbidden),
        ],
    );
    let ns = Namespace::parse("anything").unwrap();
    assert_eq!(rules.level(&ns, Read), Level::Anyone);
    assert_eq!(rules.level(&ns, Write), Level::Owner);
}

#[test]
fn anonymous_access_needs_an_explicit_anyone() {
    let levels = ["anyone", "signed-in", "owner", "nobody"];
    for read in levels {
        for write in levels {
            for (name, ns) in [("data", "data"), ("*", "other")] {
                let json = format!(r#"{{"{name}": {{"read": "{read}", "write": "{write}"}}}}"#);
                let rules = Rules::parse(&json).unwrap();
                for (access, level) in [(Read, read), (Write, write)] {
                    for key in ["k", ":k", "anonymous"] {
                        let got = decide(&rules, None, ns, key, access);
                        assert_eq!(got == Allow, level == "anyone", "{json} {access:?} {key}");
                    }
                }
            }
        }
    }
    // An empty set of rules allows nothing to anyone.
    let none = Rules::parse("{}").unwrap();
    for principal in [None, Some("alice")] {
        for access in [Read, Write] {
            assert_eq!(decide(&none, principal, "ns", "alice", access), Forbidden);
        }
    }
}

#[test]
fn bad_rules_are_refused_naming_the_bad_part() {
    let cases: &[(&str, &str)] = &[
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[]", "expected an object of namespace"),
        ("\"owner\"", "got a string"),
        (
            r#"{"Sessions": {"read": "owner", "write": "owner"}}"#,
            "\"Sessions\" is not a namespace",
        ),
        (
            r#"{"s": {"read": "owner", "write": "owner"}, "s": {"read": "anyone", "write": "anyone"}}"#,
            "namespace \"s\" is listed twice",
        ),
        (
            r#"{"*": {"read": "nobody", "write": "nobody"}, "*": {"read": "anyone", "write": "anyone"}}"#,
            "namespace \"*\" is listed twice",
        ),
        (r#"{"s": "owner"}"#, "namespace \"s\": expected {\"read\": level, \"write\": level}, got a string"),
        (r#"{"s": {"read": "owner"}}"#, "namespace \"s\": no \"write\" level"),
        (r#"{"s": {"write": "owner"}}"#, "namespace \"s\": no \"read\" level"),
        (
            r#"{"s": {"read": "owners", "write": "owner"}}"#,
            "namespace \"s\": \"read\": unknown level \"owners\" (expected anyone, signed-in, owner or nobody)",
        ),
        (
            r#"{"s": {"read": "owner", "write": "owner", "delete": "nobody"}}"#,
            "namespace \"s\": unknown field \"delete\"",
        ),
        (
            r#"{"s": {"read": "owner", "write": 1}}"#,
            "namespace \"s\": \"write\": expected a level, got a number",
        ),
        (
            r#"{"s": {"read": "owner", "read": "anyone", "write": "owner"}}"#,
            "namespace \"s\": \"read\" is given twice",
        ),
        (
            r#"{"s": {"read": "Anyone", "write": "owner"}}"#,
            "unknown level \"Anyone\"",
        ),
    ];
    for (json, fragment) in cases {
        let msg = Rules::parse(json).unwrap_err().to_string();
        assert!(msg.contains(fragment), "{json}: {msg:?} lacks {fragment:?}");
    }
}
