//! Every variable in one lookup: the `cache_settings` component variable.
//!
//! Each Spin variable lookup is a host call, and a request reads the whole configuration:
//! 41 calls, most of what the configuration costs a cache hit (wasmtime's lifting, lowering
//! and task bookkeeping per call, not the lookup itself). Spin's component variables are
//! templates over the application's variables, and a template may hold any number of them
//! ([`template`]), so the manifest hands each component one variable whose value Spin
//! composes from all of them: `name=value` pairs separated by U+001F (the ASCII unit
//! separator, which no setting has a reason to hold). Users still set each variable as
//! before (`SPIN_VARIABLE_TTL`, `spin cloud variables set`); only the wiring in the
//! manifest changes.
//!
//! [`parse`] takes the composed value apart. A value that does not come apart cleanly (a
//! setting holding the separator, or a manifest from another version) is refused as a whole,
//! and the components then read each variable on its own, as before: slower, never wrong.
//! A variable the template leaves out is read on its own too, so a manifest written for an
//! older list still works.

use std::collections::BTreeMap;

use super::var;

/// The component variable holding every setting.
pub const VARIABLE: &str = "cache_settings";

/// Separates one `name=value` pair from the next.
pub const SEPARATOR: char = '\u{1f}';

/// The component variable's template: every variable of [`var::ALL`] as `name={{ name }}`,
/// separated by [`SEPARATOR`].
#[must_use]
pub fn template() -> String {
    var::ALL
        .iter()
        .map(|v| format!("{v}={{{{ {v} }}}}"))
        .collect::<Vec<_>>()
        .join(&SEPARATOR.to_string())
}

/// The settings a composed value holds, by name, borrowed from it; `None` when it does not
/// come apart into known, distinct names.
///
/// Spin composes the template in order, so the `i`-th pair is normally the `i`-th
/// variable: that is checked first, and only a pair out of place is looked for among all
/// of them (a request parses this once, and a hit is short).
#[must_use]
pub fn parse(text: &str) -> Option<BTreeMap<&'static str, &str>> {
    let mut out = BTreeMap::new();
    for (i, pair) in text.split(SEPARATOR).enumerate() {
        let (name, value) = pair.split_once('=')?;
        let name = match var::ALL.get(i) {
            Some(expected) if *expected == name => *expected,
            _ => *var::ALL.iter().find(|v| **v == name)?,
        };
        if out.insert(name, value).is_some() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Spin makes of the template, given each variable's value.
    fn compose(value: impl Fn(&str) -> String) -> String {
        var::ALL
            .iter()
            .map(|v| format!("{v}={}", value(v)))
            .collect::<Vec<_>>()
            .join(&SEPARATOR.to_string())
    }

    #[test]
    fn a_composed_value_comes_apart_into_every_variable() {
        let t = template();
        assert!(t.starts_with("db_api_url={{ db_api_url }}\u{1f}db_api_token={{ db_api_token }}"));
        assert_eq!(t.matches("{{").count(), var::ALL.len());
        // Values may hold `=`, JSON, spaces, or nothing at all.
        let text = compose(|v| match v {
            var::AUTH_RULES => r#"{"a": {"read": "anyone"}}"#.to_owned(),
            var::ADMIN_TOKEN => "a=b=c".to_owned(),
            var::TTL => String::new(),
            other => format!("<{other}>"),
        });
        let got = parse(&text).unwrap();
        assert_eq!(got.len(), var::ALL.len());
        assert_eq!(got[var::AUTH_RULES], r#"{"a": {"read": "anyone"}}"#);
        assert_eq!(got[var::ADMIN_TOKEN], "a=b=c");
        assert_eq!(got[var::TTL], "");
        assert_eq!(got[var::KV_STORE], "<kv_store>");
    }

    #[test]
    fn a_value_that_does_not_come_apart_is_refused_whole() {
        // A setting holding the separator splits into a piece that is no pair...
        let text = compose(|v| {
            if v == var::ADMIN_TOKEN {
                "x\u{1f}y".into()
            } else {
                "1".into()
            }
        });
        assert_eq!(parse(&text), None);
        // ...or into a pair of a name that is no variable, or one named twice.
        let text = compose(|v| {
            if v == var::TTL {
                "1s\u{1f}nope=1".into()
            } else {
                "1".into()
            }
        });
        assert_eq!(parse(&text), None);
        let text = compose(|v| {
            if v == var::TTL {
                "1s\u{1f}ttl=2s".into()
            } else {
                "1".into()
            }
        });
        assert_eq!(parse(&text), None);
        // An older template's shorter list parses; the components read the rest one by one.
        assert_eq!(parse("ttl=5s").map(|m| m.len()), Some(1));
    }
}
