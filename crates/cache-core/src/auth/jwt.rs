//! Bearer JWTs verified at the edge: the caller's principal without an origin call.
//!
//! A token is an issuer's signed statement: "this caller is `sub`, for audience `aud`, until
//! `exp`". The gateway checks the signature against the issuer's public keys (a JWKS document,
//! RFC 7517, held in the `jwt_jwks` variable) and the claims against the instant it passes in,
//! and takes `sub` as the principal. Nothing is asked of the DB API, so a cached read stays one
//! store `get`.
//!
//! # What is accepted, and why so little
//!
//! JWT vulnerabilities are mostly a verifier accepting more than it should. The classic two
//! are `alg: none` (no signature at all) and algorithm confusion: an `HS256` token "signed"
//! with the bytes of the issuer's RSA public key as the HMAC secret, which anyone can compute
//! because the key is public. So:
//!
//! - Three algorithms only: `HS256`, `RS256` and `ES256`. `none` is refused by name
//!   ([`JwtError::NoneAlgorithm`]); anything else is [`JwtError::UnsupportedAlgorithm`].
//! - The key decides the algorithm, not the token. Every key of the set has exactly one
//!   algorithm, fixed when the set is parsed (its `alg`, or the one its `kty` allows), and the
//!   token's `alg` must be that one ([`JwtError::AlgorithmMismatch`]). An RSA or EC key is never
//!   used as an HMAC secret; HMAC secrets come only from `oct` keys.
//! - The token's `kid`, when it has one, selects among the keys with that `kid` only
//!   ([`JwtError::UnknownKey`] if there is none); a token without `kid` is tried against every
//!   key of its algorithm, at most [`MAX_KEYS`].
//! - The signature is checked before any claim is read.
//! - A header with `crit` is refused: it names extensions this verifier does not implement
//!   (RFC 7515, 4.1.11).
//!
//! # Claims
//!
//! Time is the caller's `now`, never a clock read here, with a leeway for the skew between the
//! issuer's clock and the host's, clamped to [`MAX_LEEWAY`]:
//!
//! - `exp` is required, since a token that never expires cannot be revoked by waiting. The token
//!   is valid while `now < exp + leeway`.
//! - `nbf`, when present: valid from `nbf - leeway` on.
//! - `iss` and `aud`, when configured: `iss` must equal the issuer; `aud`, a string or an array,
//!   must contain the audience. Without a configured audience any `aud` is accepted, so a
//!   deployment whose issuer also serves other applications should configure one.
//! - `sub` is the principal: required, non-empty, at most [`MAX_PRINCIPAL_BYTES`] bytes (the
//!   bound the DB API contract puts on principals) and free of control characters, since it
//!   ends up in ownership checks, headers and logs.
//!
//! Every [`JwtError`] is a `401` to the client; the variants exist for logs and tests.
//!
//! # Cost
//!
//! [`JwtVerifier::new`] parses and checks the key set once per configuration load. A
//! verification reads at most [`MAX_TOKEN_BYTES`] and checks one signature per candidate key
//! (one, when the token has a `kid`). The signature arithmetic is `jsonwebtoken`'s, on its
//! RustCrypto backend (pure Rust, so it builds for `wasm32-wasip1`); the crate's own time checks
//! read the system clock, so they are switched off and done here against `now`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use thiserror::Error;

use crate::contract::MAX_PRINCIPAL_BYTES;
use crate::time::UnixMillis;

mod jwks;

use jwks::KeySet;

/// The largest leeway for clock skew. Skew between synchronised clocks is seconds; a larger
/// allowance would only extend the life of expired (possibly stolen) tokens.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// The longest token read. Issuers' tokens are well under 2 KiB, and servers commonly cap a
/// whole header at 8 KiB; the bound keeps a hostile header from being decoded and parsed at
/// any length.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The most usable keys a key set may hold. A token without `kid` is tried against every key
/// of its algorithm, so this bounds the signature checks one request can cause. Issuers
/// publish two or three keys (the current one and those rotating in or out).
pub const MAX_KEYS: usize = 16;

/// Why a token was refused. Each is a `401` to the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    /// The token is not a well-formed signed JWT, or a claim this verifier reads has the
    /// wrong type or is missing (`exp`).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token declares `alg: none`, an unsigned token.
    #[error("unsigned tokens (alg none) are refused")]
    NoneAlgorithm,
    /// The token's algorithm is not `HS256`, `RS256` or `ES256`.
    #[error("unsupported algorithm (HS256, RS256 and ES256 are accepted)")]
    UnsupportedAlgorithm,
    /// No key of the set has the token's `kid`, or (without `kid`) the token's algorithm.
    #[error("no key of the key set matches the token")]
    UnknownKey,
    /// The key named by the token's `kid` is for another algorithm than the token's `alg`.
    #[error("the token's algorithm is not its key's")]
    AlgorithmMismatch,
    /// No candidate key verifies the signature.
    #[error("bad signature")]
    BadSignature,
    /// `exp`, plus the leeway, has passed.
    #[error("token expired")]
    Expired,
    /// `nbf`, minus the leeway, is still to come.
    #[error("token not yet valid")]
    NotYetValid,
    /// An issuer is configured and the token's `iss` is missing or another.
    #[error("wrong issuer")]
    WrongIssuer,
    /// An audience is configured and the token's `aud` is missing or does not contain it.
    #[error("wrong audience")]
    WrongAudience,
    /// `sub` is missing, empty, longer than [`MAX_PRINCIPAL_BYTES`] or has a control character.
    #[error("missing or invalid subject")]
    InvalidSubject,
}

/// Why a key set or verifier configuration was refused. Key material is never echoed: an
/// `oct` key is a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtConfigError {
    /// The document is not JSON, or not an object with a `keys` array.
    #[error("not a JWKS document: {0}")]
    NotAKeySet(String),
    /// One key is malformed, too weak, or inconsistent (an `alg` its `kty` cannot have).
    #[error("{key}: {reason}")]
    Key {
        /// Which key: its index in `keys`, and its `kid` if it has one.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// No key of the set can verify `HS256`, `RS256` or `ES256` signatures.
    #[error("no key for HS256, RS256 or ES256 signatures")]
    NoUsableKey,
    /// More than [`MAX_KEYS`] usable keys.
    #[error("{0} usable keys; at most {MAX_KEYS} are accepted")]
    TooManyKeys(usize),
    /// The configured issuer is empty; `None` means "not checked".
    #[error("the issuer is empty")]
    EmptyIssuer,
    /// The configured audience is empty; `None` means "not checked".
    #[error("the audience is empty")]
    EmptyAudience,
}

/// A parsed key set with the claims it checks: built once, used for many tokens. Its `Debug`
/// shows key ids and algorithms, never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtVerifier {
    keys: KeySet,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
}

impl JwtVerifier {
    /// Parses the JWKS document `jwks_json` and keeps the claims to check; `leeway` is clamped
    /// to [`MAX_LEEWAY`].
    ///
    /// Keys that are not for signatures (`use` other than `sig`, `key_ops` without `verify`)
    /// or are for other algorithms (an `alg` outside the three, an EC curve other than P-256,
    /// `OKP` keys) are skipped, so an issuer's whole published set can be given as it is.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError`] when the document does not parse, a key is malformed or too weak
    /// (RSA moduli of 2048 to 4096 bits, HMAC secrets of at least 32 bytes, EC points on
    /// P-256), no usable key remains or more than [`MAX_KEYS`] do, or the issuer or audience is
    /// empty.
    pub fn new(
        jwks_json: &str,
        issuer: Option<String>,
        audience: Option<String>,
        leeway: Duration,
    ) -> Result<JwtVerifier, JwtConfigError> {
        if issuer.as_deref() == Some("") {
            return Err(JwtConfigError::EmptyIssuer);
        }
        if audience.as_deref() == Some("") {
            return Err(JwtConfigError::EmptyAudience);
        }
        Ok(JwtVerifier {
            keys: KeySet::parse(jwks_json)?,
            issuer,
            audience,
            leeway: leeway.min(MAX_LEEWAY),
        })
    }

    /// Verifies `token` (the bearer credential, without the `Bearer ` scheme) at `now` and
    /// returns its principal, the `sub` claim.
    ///
    /// # Errors
    ///
    /// [`JwtError`], one variant per reason; all of them mean `401`. Never panics, whatever
    /// the input.
    pub fn verify(&self, token: &str, now: UnixMillis) -> Result<String, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed(
                "longer than the largest token accepted",
            ));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        };
        let header: Header =
            decode_part(header).ok_or(JwtError::Malformed("the header is not base64url JSON"))?;
        let alg = Alg::of_token(&header.alg)?;
        if header.crit.is_some() {
            return Err(JwtError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        let candidates = self.keys.candidates(header.kid.as_deref(), alg)?;
        let claims = check_signature(token, alg, &candidates)?;
        self.check_claims(claims, now)
    }

    /// The issuer `iss` must equal, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The audience `aud` must contain, if any.
    #[must_use]
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The leeway for clock skew, after clamping.
    #[must_use]
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The claims of a token whose signature is verified.
    fn check_claims(&self, claims: Claims, now: UnixMillis) -> Result<String, JwtError> {
        let exp = claims
            .exp
            .as_ref()
            .ok_or(JwtError::Malformed("no exp claim"))?;
        let exp = numeric_date(exp).ok_or(JwtError::Malformed("exp is not a NumericDate"))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = &claims.nbf {
            let nbf = numeric_date(nbf).ok_or(JwtError::Malformed("nbf is not a NumericDate"))?;
            if now.saturating_add(self.leeway) < nbf {
                return Err(JwtError::NotYetValid);
            }
        }
        if let Some(expected) = &self.issuer {
            if claims.iss.as_ref() != Some(expected) {
                return Err(JwtError::WrongIssuer);
            }
        }
        if let Some(expected) = &self.audience {
            let listed = match &claims.aud {
                Some(Audience::One(aud)) => aud == expected,
                Some(Audience::Many(auds)) => auds.contains(expected),
                None => false,
            };
            if !listed {
                return Err(JwtError::WrongAudience);
            }
        }
        match claims.sub {
            Some(sub)
                if !sub.is_empty()
                    && sub.len() <= MAX_PRINCIPAL_BYTES
                    && !sub.chars().any(char::is_control) =>
            {
                Ok(sub)
            }
            _ => Err(JwtError::InvalidSubject),
        }
    }
}

/// The three algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    /// The algorithm of a JWS `alg` name, if it is one of the three.
    fn from_name(name: &str) -> Option<Alg> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    /// A token's `alg`, with `none` told apart from the merely unsupported.
    fn of_token(name: &str) -> Result<Alg, JwtError> {
        Alg::from_name(name).ok_or(if name.eq_ignore_ascii_case("none") {
            JwtError::NoneAlgorithm
        } else {
            JwtError::UnsupportedAlgorithm
        })
    }

    fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Alg::Hs256 => Algorithm::HS256,
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }
}

/// The header fields read here; `jsonwebtoken` reads the header again to verify.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The claims read here; others are ignored.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    sub: Option<String>,
}

/// `aud` is a string or an array of strings (RFC 7519, 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A base64url (unpadded) JSON part of the token.
fn decode_part<T: DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A NumericDate (seconds since the epoch, possibly fractional) as an instant.
fn numeric_date(n: &serde_json::Number) -> Option<UnixMillis> {
    if let Some(secs) = n.as_u64() {
        return Some(UnixMillis(secs.saturating_mul(1000)));
    }
    let secs = n.as_f64()?;
    // `as` saturates at u64::MAX; negative and non-finite dates are refused before it.
    (secs.is_finite() && secs >= 0.0).then_some(UnixMillis((secs * 1000.0) as u64))
}

/// Verifies the signature with each candidate key in turn and returns the claims of the first
/// that verifies.
fn check_signature(token: &str, alg: Alg, candidates: &[&DecodingKey]) -> Result<Claims, JwtError> {
    let mut validation = Validation::new(alg.jsonwebtoken());
    // The crate checks only the signature and that the header's `alg` is this one: the
    // claims are checked in `check_claims`, against the caller's `now` (the crate's time
    // checks read the system clock).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    for key in candidates {
        match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => {}
                ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                    return Err(JwtError::Malformed("a part is not base64url"));
                }
                ErrorKind::Json(_) => {
                    return Err(JwtError::Malformed("a part is not the JSON expected"));
                }
                // A key the crate cannot use for this algorithm: never the case for the keys
                // of a parsed set, and in any case not a signature that verifies.
                _ => {}
            },
        }
    }
    Err(JwtError::BadSignature)
}
