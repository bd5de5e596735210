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
//!
//! Every request takes the value apart again (an instance serves one request), so this is
//! on a cache hit's path: [`Settings`] keeps each value at its variable's place in
//! [`var::ALL`] rather than in a map, and finds a name where the previous one was found
//! next, since the configuration is read in nearly the template's order. A map cost a cache
//! hit more instructions than the rest of the configuration's reading.

use std::cell::Cell;

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

/// The settings a composed value holds, borrowed from it: each at its variable's place in
/// [`var::ALL`], `None` where the value held no pair for it.
#[derive(Debug)]
pub struct Settings<'a> {
    values: Vec<Option<&'a str>>,
    /// Where the next lookup looks first: after the variable found last.
    next: Cell<usize>,
}

impl<'a> Settings<'a> {
    /// The value held for `name` (possibly empty); `None` when the composed value has no
    /// pair for it, or it is no variable.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let place = place(name, self.next.get())?;
        self.next.set(place + 1);
        self.values[place]
    }

    /// How many variables it holds a pair for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
    }

    /// Whether it holds no pair at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `name`'s place in [`var::ALL`], looked for at `hint` first; `None` when it is no
/// variable.
fn place(name: &str, hint: usize) -> Option<usize> {
    match var::ALL.get(hint) {
        Some(expected) if *expected == name => Some(hint),
        _ => var::ALL.iter().position(|v| *v == name),
    }
}

/// The settings a composed value holds; `None` when it does not come apart into known,
/// distinct names.
///
/// Spin composes the template in order, so the `i`-th pair is normally the `i`-th
/// variable: that is checked first, and only a pair out of place is looked for among all
/// of them. The separator and `=` are ASCII, so every cut falls between characters.
#[must_use]
pub fn parse(text: &str) -> Option<Settings<'_>> {
    let separator = SEPARATOR as u8;
    let mut values = vec![None; var::ALL.len()];
    let mut rest = Some(text);
    let mut index = 0;
    while let Some(text) = rest {
        let (pair, after) = match text.bytes().position(|b| b == separator) {
            Some(at) => (text.get(..at)?, text.get(at + 1..)),
            None => (text, None),
        };
        let eq = pair.bytes().position(|b| b == b'=')?;
        let (name, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        let place = place(name, index)?;
        if values[place].replace(value).is_some() {
            return None;
        }
        index += 1;
        rest = after;
    }
    Some(Settings {
        values,
        next: Cell::new(0),
    })
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
        assert_eq!(
            got.get(var::AUTH_RULES),
            Some(r#"{"a": {"read": "anyone"}}"#)
        );
        assert_eq!(got.get(var::ADMIN_TOKEN), Some("a=b=c"));
        assert_eq!(got.get(var::TTL), Some(""));
        assert_eq!(got.get(var::KV_STORE), Some("<kv_store>"));
        // Looked up out of order, and a name that is no variable.
        assert_eq!(got.get(var::DB_API_URL), Some("<db_api_url>"));
        assert_eq!(got.get(var::ROLLOUT_OVERRIDES), Some("<rollout_overrides>"));
        assert_eq!(got.get("nope"), None);
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
        assert!(parse(&text).is_none());
        // ...or into a pair of a name that is no variable, or one named twice.
        let text = compose(|v| {
            if v == var::TTL {
                "1s\u{1f}nope=1".into()
            } else {
                "1".into()
            }
        });
        assert!(parse(&text).is_none());
        let text = compose(|v| {
            if v == var::TTL {
                "1s\u{1f}ttl=2s".into()
            } else {
                "1".into()
            }
        });
        assert!(parse(&text).is_none());
        // An older template's shorter list parses; the components read the rest one by one.
        assert_eq!(parse("ttl=5s").map(|m| m.len()), Some(1));
    }
}
