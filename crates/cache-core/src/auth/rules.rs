//! Per-namespace access rules: what a caller may read and write.
//!
//! Access is decided per namespace because namespaces are what differ in sensitivity: sessions
//! are private to their owner, profiles readable by any signed-in user, a public namespace
//! readable by anyone. The rules are one JSON object in a configuration variable:
//!
//! ```json
//! {
//!   "sessions": {"read": "owner",     "write": "owner"},
//!   "profiles": {"read": "signed-in", "write": "owner"},
//!   "public":   {"read": "anyone",    "write": "signed-in"},
//!   "*":        {"read": "nobody",    "write": "nobody"}
//! }
//! ```
//!
//! Each access (`read`: `GET`; `write`: `PUT`, `PATCH`, `DELETE`) has one [`Level`]:
//! `anyone`, `signed-in` (any verified principal), `owner` (the principal owns the key) or
//! `nobody`. Ownership is a naming convention, so that it needs no lookup: the key is the
//! principal itself or starts with `{principal}:` (`alice` owns `alice` and `alice:cart`, not
//! `alice2`). Principals are the issuer's subjects; where an issuer's subjects themselves
//! contain `:`, one subject can be a prefix of another's keys, so such deployments should use
//! `signed-in` plus their own key scheme, or an issuer whose subjects have no `:`.
//!
//! Secure defaults: a namespace that is not listed falls to the `"*"` entry, and without one
//! to `nobody`; both accesses must be spelled out; and anonymous access is granted by an
//! explicit `anyone` only, never by a default. A caller without a principal is told `401` when
//! signing in could help (`signed-in`, `owner`), `403` otherwise.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use thiserror::Error;

use crate::contract::Access;
use crate::key::{ItemKey, Namespace};

/// The entry for every namespace not listed by name.
pub const REST: &str = "*";

/// Who may make one kind of access to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Everyone, signed in or not.
    Anyone,
    /// Any caller with a verified principal.
    SignedIn,
    /// A caller whose principal owns the key: the key is the principal or starts with
    /// `{principal}:`.
    Owner,
    /// No one.
    Nobody,
}

impl Level {
    /// The name used in the rules: `anyone`, `signed-in`, `owner` or `nobody`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Anyone => "anyone",
            Level::SignedIn => "signed-in",
            Level::Owner => "owner",
            Level::Nobody => "nobody",
        }
    }

    fn parse(name: &str) -> Option<Level> {
        [Level::Anyone, Level::SignedIn, Level::Owner, Level::Nobody]
            .into_iter()
            .find(|l| l.as_str() == name)
    }
}

/// The levels of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    read: Level,
    write: Level,
}

/// What [`Rules::decide`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleDecision {
    /// The access is granted.
    Allow,
    /// A signed-in caller is needed and there is none: `401`.
    Unauthenticated,
    /// The caller may not make this access, signed in or not: `403`.
    Forbidden,
}

/// Why the rules were refused; the message names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RulesError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// The document is not an object.
    #[error("expected an object of namespace → {{\"read\": level, \"write\": level}}, got {0}")]
    NotAnObject(&'static str),
    /// A name is neither a valid namespace nor `*`.
    #[error("{name:?} is not a namespace: {reason}")]
    BadNamespace {
        /// The name as written.
        name: String,
        /// Why the namespace rules refuse it.
        reason: String,
    },
    /// A namespace is listed twice.
    #[error("namespace {0:?} is listed twice")]
    Duplicate(String),
    /// A namespace's entry is wrong.
    #[error("namespace {namespace:?}: {reason}")]
    BadEntry {
        /// The namespace as written.
        namespace: String,
        /// What is wrong with its entry.
        reason: String,
    },
}

/// Parsed rules: an entry per listed namespace, and the one for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    named: BTreeMap<Namespace, Entry>,
    rest: Entry,
}

impl Rules {
    /// Parses the rules' JSON.
    ///
    /// # Errors
    ///
    /// [`RulesError`] naming the bad part: not JSON, not an object, a name that is not a
    /// namespace, a namespace listed twice, an entry that is not `{"read": …, "write": …}`
    /// with both present and nothing else, or an unknown level.
    pub fn parse(json: &str) -> Result<Rules, RulesError> {
        let doc: Node = serde_json::from_str(json).map_err(|e| RulesError::Json(e.to_string()))?;
        let Node::Object(entries) = doc else {
            return Err(RulesError::NotAnObject(doc.kind()));
        };
        let mut named = BTreeMap::new();
        let mut rest = None;
        for (name, node) in entries {
            let ns = if name == REST {
                None
            } else {
                let ns = Namespace::parse(&name).map_err(|e| RulesError::BadNamespace {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
                Some(ns)
            };
            let entry = parse_entry(node).map_err(|reason| RulesError::BadEntry {
                namespace: name.clone(),
                reason,
            })?;
            let duplicate = match ns {
                Some(ns) => named.insert(ns, entry).is_some(),
                None => rest.replace(entry).is_some(),
            };
            if duplicate {
                return Err(RulesError::Duplicate(name));
            }
        }
        Ok(Rules {
            named,
            rest: rest.unwrap_or(Entry {
                read: Level::Nobody,
                write: Level::Nobody,
            }),
        })
    }

    /// The level `ns` requires for `access`.
    #[must_use]
    pub fn level(&self, ns: &Namespace, access: Access) -> Level {
        let entry = self.named.get(ns).unwrap_or(&self.rest);
        match access {
            Access::Read => entry.read,
            Access::Write => entry.write,
        }
    }

    /// Decides whether the caller `principal` (`None`: not signed in) may make `access` to
    /// `key` in `ns`. An empty principal counts as none.
    #[must_use]
    pub fn decide(
        &self,
        principal: Option<&str>,
        ns: &Namespace,
        key: &ItemKey,
        access: Access,
    ) -> RuleDecision {
        let principal = principal.filter(|p| !p.is_empty());
        match (self.level(ns, access), principal) {
            (Level::Anyone, _) => RuleDecision::Allow,
            (Level::Nobody, _) => RuleDecision::Forbidden,
            (Level::SignedIn | Level::Owner, None) => RuleDecision::Unauthenticated,
            (Level::SignedIn, Some(_)) => RuleDecision::Allow,
            (Level::Owner, Some(p)) if owns(p, key) => RuleDecision::Allow,
            (Level::Owner, Some(_)) => RuleDecision::Forbidden,
        }
    }
}

/// Whether `principal` owns `key`: the key is the principal, or starts with `{principal}:`.
fn owns(principal: &str, key: &ItemKey) -> bool {
    key.as_str()
        .strip_prefix(principal)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

fn parse_entry(node: Node) -> Result<Entry, String> {
    let Node::Object(fields) = node else {
        return Err(format!(
            "expected {{\"read\": level, \"write\": level}}, got {}",
            node.kind()
        ));
    };
    let (mut read, mut write) = (None, None);
    for (field, value) in fields {
        let slot = match field.as_str() {
            "read" => &mut read,
            "write" => &mut write,
            _ => {
                return Err(format!(
                    "unknown field {field:?} (expected \"read\" and \"write\")"
                ))
            }
        };
        let level = match value {
            Node::Text(name) => Level::parse(&name).ok_or_else(|| {
                format!(
                    "{field:?}: unknown level {name:?} (expected anyone, signed-in, owner or nobody)"
                )
            })?,
            other => return Err(format!("{field:?}: expected a level, got {}", other.kind())),
        };
        if slot.replace(level).is_some() {
            return Err(format!("{field:?} is given twice"));
        }
    }
    match (read, write) {
        (Some(read), Some(write)) => Ok(Entry { read, write }),
        (None, _) => Err("no \"read\" level".to_owned()),
        (_, None) => Err("no \"write\" level".to_owned()),
    }
}

/// The JSON of the rules as far as they are read: objects keep their keys in order with
/// duplicates (which a map would silently collapse), strings their text, anything else only
/// its kind, for messages.
enum Node {
    Object(Vec<(String, Node)>),
    Text(String),
    Other(&'static str),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Object(_) => "an object",
            Node::Text(_) => "a string",
            Node::Other(kind) => kind,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push((key, value));
        }
        Ok(Node::Object(entries))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Text(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Node::Other("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Other("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Other("null"))
    }
}
