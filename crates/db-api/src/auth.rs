//! Who may read and write what, when the server runs with `--auth on`.
//!
//! # Principals
//!
//! - The **service**: the bearer token of `--token`, the cache's own identity. It sends the
//!   batches and may read and write everything; it is never an end user.
//! - **Users**: a name and a bearer token each (`--user NAME:TOKEN`, `--users FILE`, or the
//!   demo users [`DEMO_USERS`] when none is given). With the test routes on, a JWT from the
//!   test issuer ([`crate::jwt`]) whose `sub` names a user is that user's credential too. A
//!   user's credentials can be revoked at run time (`POST /_auth/revoke`): a revoked user is
//!   refused like an unknown token, and writes made on its behalf are refused.
//! - **Anonymous**: a request without `Authorization`.
//!
//! Tokens are compared as SHA-256 digests, every configured token on every request, so the
//! time taken says nothing about which token (or how much of one) matched.
//!
//! # Access rules
//!
//! Each namespace has a [`Rule`] for reads and one for writes: `anyone`, `signed-in` (any
//! user), `owner` (the user owns the key: the key is the user's name or starts with
//! `{name}:`) or `nobody`. The service passes every rule. Namespaces without rules of their
//! own take the `*` entry, by default `owner` for both ([`Acl::DEFAULT_RULES`]): a user
//! reaches only its own keys and anonymous callers nothing.
//!
//! # Refusals
//!
//! RFC 6750: a request whose credential is not valid (unknown, revoked, malformed, an expired
//! or foreign JWT) is `401` with `WWW-Authenticate: Bearer error="invalid_token"`; one without
//! a credential where a user is needed is `401` with `WWW-Authenticate: Bearer`; a caller
//! whose credential is valid but not enough (or any caller, for a `nobody` rule) is `403` with
//! `WWW-Authenticate: Bearer error="insufficient_scope"`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use axum::http::{header, HeaderMap};
use cache_sync_contract::wire::Access;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::jwt::{Jwt, JwtSettings};
use crate::validate;

/// The principal of an anonymous caller, as `/v1/authorize` names it.
pub const ANONYMOUS: &str = "anonymous";
/// The principal of the service token, as `/v1/authorize` names it.
pub const SERVICE: &str = "service";

/// The users seeded when none is configured: name and bearer token. Demo credentials,
/// printed at start-up and in the README; configure real users for anything else.
pub const DEMO_USERS: &[(&str, &str)] = &[
    ("alice", "demo-token-for-alice"),
    ("bob", "demo-token-for-bob"),
];

/// Shortest user token accepted, in bytes.
pub const MIN_USER_TOKEN_BYTES: usize = 16;
/// Longest user token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Who a request is made by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// The service token (`--token`).
    Service,
    /// A user, by name.
    User(String),
}

impl Caller {
    /// The principal name: `anonymous`, `service` or the user's name.
    #[must_use]
    pub fn principal(&self) -> &str {
        match self {
            Caller::Anonymous => ANONYMOUS,
            Caller::Service => SERVICE,
            Caller::User(name) => name,
        }
    }
}

/// Who passes an access rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Every caller, anonymous ones included.
    Anyone,
    /// Any signed-in user.
    SignedIn,
    /// The user owning the key: the key is the user's name or starts with `{name}:`.
    Owner,
    /// No user (the service still passes).
    Nobody,
}

impl Rule {
    /// Whether `caller` passes this rule for `key`.
    #[must_use]
    pub fn allows(self, caller: &Caller, key: &str) -> bool {
        match (self, caller) {
            (_, Caller::Service) | (Rule::Anyone, _) | (Rule::SignedIn, Caller::User(_)) => true,
            (Rule::Owner, Caller::User(name)) => owns(name, key),
            _ => false,
        }
    }

    /// The rule's name in the ACL file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Anyone => "anyone",
            Rule::SignedIn => "signed-in",
            Rule::Owner => "owner",
            Rule::Nobody => "nobody",
        }
    }
}

/// Whether `user` owns `key`: the key is the name, or starts with `{name}:`.
#[must_use]
pub fn owns(user: &str, key: &str) -> bool {
    key.strip_prefix(user)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// The rules of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRules {
    /// Who may read (`GET /v1/items/...`).
    pub read: Rule,
    /// Who may write (a batch write made on someone's behalf).
    pub write: Rule,
}

impl NamespaceRules {
    /// The rule for `op`.
    #[must_use]
    pub fn rule(&self, op: Access) -> Rule {
        match op {
            Access::Read => self.read,
            Access::Write => self.write,
        }
    }
}

/// Access rules per namespace, and the rules of every other namespace.
///
/// As JSON (`--acl FILE`), an object from namespace to rules, where `*` names the rules of
/// unlisted namespaces (default: [`Acl::DEFAULT_RULES`]):
///
/// ```json
/// {"sessions": {"read": "owner", "write": "owner"}, "*": {"read": "owner", "write": "nobody"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    namespaces: BTreeMap<String, NamespaceRules>,
    other: NamespaceRules,
}

impl Acl {
    /// The rules of a namespace the ACL does not list, unless it says otherwise: only the
    /// owner of a key reads or writes it.
    pub const DEFAULT_RULES: NamespaceRules = NamespaceRules {
        read: Rule::Owner,
        write: Rule::Owner,
    };

    /// The demo ACL: `sessions` owner only; `profiles` read by signed-in users, written by
    /// the owner; `public` read by anyone, written by signed-in users; others owner only.
    #[must_use]
    pub fn demo() -> Self {
        let rules = |read, write| NamespaceRules { read, write };
        Self {
            namespaces: BTreeMap::from([
                ("sessions".to_owned(), rules(Rule::Owner, Rule::Owner)),
                ("profiles".to_owned(), rules(Rule::SignedIn, Rule::Owner)),
                ("public".to_owned(), rules(Rule::Anyone, Rule::SignedIn)),
            ]),
            other: Self::DEFAULT_RULES,
        }
    }

    /// An ACL from its JSON text (see the type's documentation); the error is the reason.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut map: BTreeMap<String, NamespaceRules> =
            serde_json::from_str(text).map_err(|e| format!("invalid ACL: {e}"))?;
        let other = map.remove("*").unwrap_or(Self::DEFAULT_RULES);
        for ns in map.keys() {
            validate::namespace(ns).map_err(|e| format!("invalid ACL namespace {ns:?}: {e}"))?;
        }
        Ok(Self {
            namespaces: map,
            other,
        })
    }

    /// The rules of `ns`.
    #[must_use]
    pub fn rules(&self, ns: &str) -> NamespaceRules {
        self.namespaces.get(ns).copied().unwrap_or(self.other)
    }

    /// The ACL as its JSON form (with the `*` entry).
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let mut map: BTreeMap<&str, NamespaceRules> = self
            .namespaces
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        map.insert("*", self.other);
        serde_json::to_value(map).unwrap_or_default()
    }

    /// One line: `ns read/write; …; * read/write`.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .namespaces
            .iter()
            .map(|(ns, r)| format!("{ns} {}/{}", r.read.as_str(), r.write.as_str()))
            .collect();
        parts.push(format!(
            "* {}/{}",
            self.other.read.as_str(),
            self.other.write.as_str()
        ));
        parts.join("; ")
    }
}

impl Default for Acl {
    fn default() -> Self {
        Self::demo()
    }
}

/// The authentication and authorization part of the settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Enforce users and ACLs. Off: `/v1` is guarded by the `--token` check alone (when a
    /// token is set), as before users existed; every item is readable by anyone.
    pub enabled: bool,
    /// User name → bearer token.
    pub users: BTreeMap<String, String>,
    /// The access rules.
    pub acl: Acl,
    /// The test JWT issuer (its routes are test routes), whose tokens are also credentials
    /// while the test routes are served.
    pub jwt: JwtSettings,
}

impl AuthSettings {
    /// Auth on, with the demo users and the demo ACL.
    #[must_use]
    pub fn on() -> Self {
        Self {
            enabled: true,
            ..Self::default()
        }
    }

    /// The demo users, as a map.
    #[must_use]
    pub fn demo_users() -> BTreeMap<String, String> {
        DEMO_USERS
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    /// Whether the users are exactly the demo users.
    #[must_use]
    pub fn has_demo_users(&self) -> bool {
        self.users == Self::demo_users()
    }
}

impl Default for AuthSettings {
    /// Auth off, with the demo users and the demo ACL ready for `enabled = true`.
    fn default() -> Self {
        Self {
            enabled: false,
            users: Self::demo_users(),
            acl: Acl::demo(),
            jwt: JwtSettings::default(),
        }
    }
}

/// Checks a user name: the namespace rule (1–64 of `[a-z0-9_-]`, so never containing the
/// owner separator `:`), and not a reserved principal.
pub fn user_name(name: &str) -> Result<(), String> {
    if name == ANONYMOUS || name == SERVICE {
        return Err(format!("user name {name:?} is reserved"));
    }
    validate::namespace(name)
        .map_err(|_| format!("user name {name:?} must be 1 to 64 of a-z, 0-9, '_' and '-'"))
}

/// Checks a user token: RFC 6750's `b64token` characters, [`MIN_USER_TOKEN_BYTES`] to
/// [`MAX_TOKEN_BYTES`] long.
pub fn user_token(token: &str) -> Result<(), String> {
    if !(MIN_USER_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&token.len()) {
        return Err(format!(
            "a user token must be {MIN_USER_TOKEN_BYTES} to {MAX_TOKEN_BYTES} bytes"
        ));
    }
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("a user token may hold only A-Z a-z 0-9 - . _ ~ + / (and trailing =)".into())
    }
}

type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

fn digests_equal(a: &TokenDigest, b: &TokenDigest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an access is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A user is needed and the caller is anonymous: `401`.
    SignInRequired(String),
    /// The caller may not: `403`.
    Forbidden(String),
}

impl From<Denial> for ApiError {
    fn from(d: Denial) -> Self {
        match d {
            Denial::SignInRequired(m) => ApiError::SignInRequired(m),
            Denial::Forbidden(m) => ApiError::Forbidden(m),
        }
    }
}

/// The live authentication state: token digests, revocations, the ACL, the JWT verifier.
pub struct Authenticator {
    enabled: bool,
    service: Option<TokenDigest>,
    users: Vec<(String, TokenDigest)>,
    revoked: Mutex<HashSet<String>>,
    acl: Acl,
    jwt: Option<Jwt>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.enabled)
            .field("users", &self.user_names())
            .field("acl", &self.acl)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator of `settings`, with `service_token` as the service's credential and
    /// JWTs from the test issuer accepted when `accept_jwts`. The error is the reason the
    /// settings are refused.
    pub fn new(
        settings: &AuthSettings,
        service_token: Option<&str>,
        accept_jwts: bool,
    ) -> Result<Self, String> {
        let mut seen: Vec<TokenDigest> = Vec::new();
        if let Some(t) = service_token {
            seen.push(digest(t));
        }
        let mut users = Vec::with_capacity(settings.users.len());
        for (name, token) in &settings.users {
            user_name(name)?;
            user_token(token).map_err(|e| format!("user {name}: {e}"))?;
            let d = digest(token);
            if seen.iter().any(|s| digests_equal(s, &d)) {
                return Err(format!(
                    "user {name}: its token is the service token's or another user's"
                ));
            }
            seen.push(d);
            users.push((name.clone(), d));
        }
        let jwt = if accept_jwts {
            Some(Jwt::new(settings.jwt.clone())?)
        } else {
            None
        };
        Ok(Self {
            enabled: settings.enabled,
            service: service_token.map(digest),
            users,
            revoked: Mutex::new(HashSet::new()),
            acl: settings.acl.clone(),
            jwt,
        })
    }

    /// Whether users and ACLs are enforced.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The ACL.
    #[must_use]
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// The configured user names, in order.
    #[must_use]
    pub fn user_names(&self) -> Vec<String> {
        self.users.iter().map(|(n, _)| n.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_user(&self, name: &str) -> bool {
        self.users.iter().any(|(n, _)| n == name)
    }

    /// Whether `name`'s credentials are revoked.
    #[must_use]
    pub fn is_revoked(&self, name: &str) -> bool {
        self.lock().contains(name)
    }

    /// Revokes (`true`) or restores (`false`) a user's credentials; the error names an
    /// unknown user.
    pub fn set_revoked(&self, name: &str, revoked: bool) -> Result<(), String> {
        if !self.is_user(name) {
            return Err(format!("no user {name:?}"));
        }
        let mut set = self.lock();
        if revoked {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
        Ok(())
    }

    /// Restores every revoked user.
    pub fn clear_revocations(&self) {
        self.lock().clear();
    }

    /// Who sent `headers`: anonymous without `Authorization`, else the service or the user
    /// its bearer token names. A credential that names no one (unknown, revoked, not a bearer
    /// token, a JWT that does not verify) is `401 invalid_token`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let token = value.to_str().ok().and_then(bearer_token).ok_or_else(|| {
            ApiError::InvalidToken("expected Authorization: Bearer <token>".into())
        })?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::InvalidToken(
                "the bearer token is too long".into(),
            ));
        }
        let d = digest(token);
        // Every digest is compared, whichever matches.
        let mut service = false;
        let mut user: Option<&str> = None;
        if let Some(s) = &self.service {
            service = digests_equal(s, &d);
        }
        for (name, ud) in &self.users {
            if digests_equal(ud, &d) {
                user = Some(name);
            }
        }
        if service {
            return Ok(Caller::Service);
        }
        let name = match (user, &self.jwt) {
            (Some(name), _) => name.to_owned(),
            (None, Some(jwt)) if token.split('.').count() == 3 => jwt
                .verify(token)
                .map_err(|e| ApiError::InvalidToken(format!("the JWT is not valid: {e}")))?,
            (None, _) => return Err(ApiError::InvalidToken("unknown bearer token".into())),
        };
        if !self.is_user(&name) {
            return Err(ApiError::InvalidToken(format!(
                "the JWT's subject {name:?} is not a user"
            )));
        }
        if self.is_revoked(&name) {
            return Err(ApiError::InvalidToken(format!(
                "the credentials of {name} have been revoked"
            )));
        }
        Ok(Caller::User(name))
    }

    /// Whether `caller` may make `op` on `ns/key` under the ACL.
    pub fn check(&self, caller: &Caller, ns: &str, key: &str, op: Access) -> Result<(), Denial> {
        let rule = self.acl.rules(ns).rule(op);
        if rule.allows(caller, key) {
            return Ok(());
        }
        let what = format!("{} {ns}/{key}", op.as_str());
        Err(match (caller, rule) {
            (Caller::Anonymous, Rule::SignedIn | Rule::Owner) => {
                Denial::SignInRequired(format!("{what} needs a signed-in user"))
            }
            (_, Rule::Nobody) => Denial::Forbidden(format!("nobody may {what}")),
            (_, _) => Denial::Forbidden(format!(
                "{} may not {what} ({} only)",
                caller.principal(),
                rule.as_str()
            )),
        })
    }

    /// Whether a write made on behalf of `principal` (a name `/v1/authorize` answered) is
    /// allowed now: `service` always, `anonymous` as an anonymous caller, a user while known
    /// and not revoked, anyone else never.
    #[must_use]
    pub fn principal_may(&self, principal: &str, ns: &str, key: &str, op: Access) -> bool {
        let caller = match principal {
            SERVICE => Caller::Service,
            ANONYMOUS => Caller::Anonymous,
            name if self.is_user(name) && !self.is_revoked(name) => Caller::User(name.to_owned()),
            _ => return false,
        };
        self.check(&caller, ns, key, op).is_ok()
    }

    /// Whether an answer for `ns` may be stored by shared caches: its items are readable
    /// by anyone (always, with auth off).
    #[must_use]
    pub fn is_public(&self, ns: &str) -> bool {
        !self.enabled || self.acl.rules(ns).read == Rule::Anyone
    }

    /// The test JWT issuer, when JWTs are accepted.
    #[must_use]
    pub fn jwt(&self) -> Option<&Jwt> {
        self.jwt.as_ref()
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_the_name_or_its_colon_prefix() {
        assert!(owns("alice", "alice"));
        assert!(owns("alice", "alice:web"));
        assert!(owns("alice", "alice:"));
        assert!(!owns("alice", "alice2"));
        assert!(!owns("alice", "alicex:1"));
        assert!(!owns("alice", "bob:alice"));
        assert!(!owns("alice", "ali"));
    }

    #[test]
    fn acl_files_parse_and_default_to_owner_only() {
        let acl = Acl::from_json(r#"{"docs": {"read": "anyone", "write": "nobody"}}"#).unwrap();
        assert_eq!(acl.rules("docs").read, Rule::Anyone);
        assert_eq!(acl.rules("other"), Acl::DEFAULT_RULES);
        let acl = Acl::from_json(r#"{"*": {"read": "signed-in", "write": "nobody"}}"#).unwrap();
        assert_eq!(acl.rules("x").write, Rule::Nobody);
        for bad in [
            r#"{"Docs": {"read": "anyone", "write": "owner"}}"#,
            r#"{"docs": {"read": "everyone", "write": "owner"}}"#,
            r#"{"docs": {"read": "anyone"}}"#,
            r#"{"docs": {"read": "anyone", "write": "owner", "delete": "owner"}}"#,
            "[]",
            "{",
        ] {
            assert!(Acl::from_json(bad).is_err(), "{bad}");
        }
        let round = Acl::from_json(&Acl::demo().to_json().to_string()).unwrap();
        assert_eq!(round, Acl::demo());
    }

    #[test]
    fn users_and_tokens_are_checked() {
        let mut settings = AuthSettings::on();
        Authenticator::new(&settings, Some("svc"), false).unwrap();
        assert!(Authenticator::new(&settings, Some("demo-token-for-alice"), false).is_err());
        for (name, token) in [
            ("anonymous", "a-long-enough-token"),
            ("service", "a-long-enough-token"),
            ("Carol", "a-long-enough-token"),
            ("carol:x", "a-long-enough-token"),
            ("carol", "short"),
            ("carol", "a token with spaces"),
            ("carol", "demo-token-for-bob"),
        ] {
            settings.users = AuthSettings::demo_users();
            settings.users.insert(name.into(), token.into());
            assert!(
                Authenticator::new(&settings, None, false).is_err(),
                "{name} {token}"
            );
        }
    }

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }
}
