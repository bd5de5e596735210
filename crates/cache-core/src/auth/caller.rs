//! Who is asking: the caller's credential, and the keyed digests that stand for it in KV.
//!
//! The cache never stores a credential. Where it must remember something per caller (an
//! entry kept for that caller alone, an access decision), the KV key holds an HMAC-SHA256
//! digest of the credential under the secret `auth_key`: without the key, nothing in the
//! store reveals a credential or lets anyone test a guess against it. Without an `auth_key`
//! no digest exists, and nothing per caller is stored at all.
//!
//! Digests are domain-separated (`scope` and `grant` never collide) and every part is length
//! prefixed, so no two different inputs hash the same bytes. They are cut to 128 bits: 32 hex
//! digits keep KV keys short, and 2^-128 is far below any other failure this cache has.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::CacheConfig;
use crate::contract::Access;
use crate::key::{CacheKey, Scope};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    authorization: Option<String>,
    subject: Option<String>,
}

impl Caller {
    /// A caller that sent no credentials.
    #[must_use]
    pub fn anonymous() -> Caller {
        Caller::default()
    }

    /// A caller that sent this `Authorization` header (`None` or blank: anonymous).
    #[must_use]
    pub fn from_header(authorization: Option<&str>) -> Caller {
        Caller {
            authorization: authorization
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
            subject: None,
        }
    }

    /// The same caller, known to the cache as `subject` (a verified JWT's `sub`).
    #[must_use]
    pub fn verified_as(mut self, subject: String) -> Caller {
        self.subject = Some(subject);
        self
    }

    /// The `Authorization` header to forward to the DB API on this caller's behalf.
    #[must_use]
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// The verified subject, in JWT mode.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// Whether the request carried credentials (RFC 9111 §3.5 applies to its answers).
    #[must_use]
    pub fn is_credentialed(&self) -> bool {
        self.authorization.is_some()
    }

    /// What the caller's digests are made of: the verified subject when there is one (a
    /// subject outlives its tokens), else the credential; `None` for an anonymous caller.
    fn identity(&self) -> Option<(&'static str, &str)> {
        match (&self.subject, &self.authorization) {
            (Some(sub), _) => Some(("sub", sub.as_str())),
            (None, Some(auth)) => Some(("credential", auth.as_str())),
            (None, None) => None,
        }
    }

    /// The scope of this caller's own entries; `None` for an anonymous caller or without an
    /// `auth_key`.
    #[must_use]
    pub fn scope(&self, cfg: &CacheConfig) -> Option<Scope> {
        let (kind, identity) = self.identity()?;
        let digest = digest(cfg, &["scope", kind, identity])?;
        Scope::parse(&digest).ok()
    }

    /// `key`'s entry kept for this caller alone, when the caller has a [`Caller::scope`].
    #[must_use]
    pub fn own_entry(&self, cfg: &CacheConfig, key: &CacheKey) -> Option<CacheKey> {
        let scope = self.scope(cfg)?;
        CacheKey::new(key.ns().clone(), key.key().clone(), Some(scope)).ok()
    }

    /// The caller's identity for the rate limits (`p:` and a keyed digest of its subject or
    /// credential); `None` for an anonymous caller or without an `auth_key`, when the client
    /// address stands for it.
    #[must_use]
    pub fn rate_key(&self, cfg: &CacheConfig) -> Option<String> {
        let (kind, identity) = self.identity()?;
        digest(cfg, &["rate", kind, identity]).map(|d| format!("p:{d}"))
    }

    /// What stands for this caller's principal in its rollout bucket
    /// ([`crate::rollout::bucket`]): a keyed digest of its subject or credential under
    /// `auth_key`, or without one a plain SHA-256 of it (never stored: it is reduced to a
    /// bucket number on the spot); `None` for an anonymous caller.
    #[must_use]
    pub fn rollout_digest(&self, cfg: &CacheConfig) -> Option<String> {
        let (kind, identity) = self.identity()?;
        let parts = ["rollout", kind, identity];
        digest(cfg, &parts).or_else(|| Some(plain_digest(&parts.map(str::as_bytes))))
    }

    /// The digest naming this caller's decision about `access` to `key`; `None` without an
    /// `auth_key`. An anonymous caller has one too: its decisions are kept like any other.
    #[must_use]
    pub fn grant_digest(
        &self,
        cfg: &CacheConfig,
        key: &CacheKey,
        access: Access,
    ) -> Option<String> {
        let (kind, identity) = self.identity().unwrap_or(("anonymous", ""));
        digest(
            cfg,
            &[
                "grant",
                kind,
                identity,
                key.ns().as_str(),
                key.key().as_str(),
                access.as_str(),
            ],
        )
    }
}

impl Caller {
    /// The digest naming this caller's `Idempotency-Key` `idem` for writes of `key`: keyed
    /// under `auth_key` like every per-caller digest. Without an `auth_key` an anonymous
    /// caller's is a plain SHA-256 (no credential goes into it) and a credentialed caller
    /// has none: nothing is kept per caller then.
    #[must_use]
    pub fn idempotency_digest(
        &self,
        cfg: &CacheConfig,
        key: &CacheKey,
        idem: &str,
    ) -> Option<String> {
        let (kind, identity) = self.identity().unwrap_or(("anonymous", ""));
        let parts = [
            "idem",
            kind,
            identity,
            key.ns().as_str(),
            key.key().as_str(),
            idem,
        ];
        match (digest(cfg, &parts), self.identity()) {
            (Some(d), _) => Some(d),
            (None, None) => Some(plain_digest(&parts.map(str::as_bytes))),
            (None, Some(_)) => None,
        }
    }
}

/// HMAC-SHA256 of the length-prefixed `parts` under `auth_key`, as 32 lowercase hex digits.
fn digest(cfg: &CacheConfig, parts: &[&str]) -> Option<String> {
    let key = cfg.auth_key.as_ref()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()?;
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    Some(hex16(&mac.finalize().into_bytes()))
}

/// SHA-256 of the length-prefixed `parts`, as 32 lowercase hex digits: for what holds no
/// credential.
pub(crate) fn plain_digest(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex16(&hash.finalize())
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::var;

    fn cfg(auth_key: Option<&str>) -> CacheConfig {
        CacheConfig::from_lookup(|name| match name {
            var::DB_API_URL => Some("http://db".into()),
            var::AUTH_KEY => auth_key.map(str::to_owned),
            _ => None,
        })
        .unwrap()
    }

    fn key(k: &str) -> CacheKey {
        CacheKey::from_path("sessions", k).unwrap()
    }

    #[test]
    fn scopes_are_keyed_digests_distinct_per_caller_and_per_key_secret() {
        let c1 = cfg(Some("0123456789abcdef-one"));
        let c2 = cfg(Some("0123456789abcdef-two"));
        let alice = Caller::from_header(Some("Bearer alice-token"));
        let bob = Caller::from_header(Some("Bearer bob-token"));
        let a1 = alice.scope(&c1).unwrap();
        assert_eq!(a1.as_str().len(), 32);
        assert_eq!(alice.scope(&c1), Some(a1.clone()));
        assert_ne!(bob.scope(&c1), Some(a1.clone()));
        assert_ne!(alice.scope(&c2), Some(a1.clone()));
        assert!(!a1.as_str().contains("alice"));
        assert_eq!(Caller::anonymous().scope(&c1), None);
        assert_eq!(Caller::from_header(Some("  ")).scope(&c1), None);
        assert_eq!(alice.scope(&cfg(None)), None);
        let own = alice.own_entry(&c1, &key("a")).unwrap();
        assert_eq!(own.kv_key(), format!("c:sessions#{}:a", a1.as_str()));
    }

    #[test]
    fn a_verified_subject_is_its_own_identity_across_tokens() {
        let c = cfg(Some("0123456789abcdef"));
        let t1 = Caller::from_header(Some("Bearer t1")).verified_as("alice".into());
        let t2 = Caller::from_header(Some("Bearer t2")).verified_as("alice".into());
        assert_eq!(t1.scope(&c), t2.scope(&c));
        assert_ne!(
            t1.scope(&c),
            Caller::from_header(Some("Bearer t1")).scope(&c)
        );
    }

    #[test]
    fn grant_digests_separate_caller_item_and_access() {
        let c = cfg(Some("0123456789abcdef"));
        let alice = Caller::from_header(Some("Bearer a"));
        let d = |caller: &Caller, k: &str, access| caller.grant_digest(&c, &key(k), access);
        let base = d(&alice, "k", Access::Read).unwrap();
        assert_ne!(d(&alice, "k", Access::Write).unwrap(), base);
        assert_ne!(d(&alice, "k2", Access::Read).unwrap(), base);
        assert_ne!(d(&Caller::anonymous(), "k", Access::Read).unwrap(), base);
        assert_ne!(alice.scope(&c).unwrap().as_str(), base);
        assert_eq!(
            alice.grant_digest(&cfg(None), &key("k"), Access::Read),
            None
        );
    }
}
