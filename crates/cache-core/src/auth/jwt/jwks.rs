//! The issuer's keys: a JWKS document (RFC 7517) parsed once into verification keys.
//!
//! The set is parsed and checked when the configuration loads, so a bad key fails the load with
//! a message naming the key, instead of failing every request with a `401`. Each kept key gets
//! its one algorithm here (see the parent module for why the key, not the token, decides).
//!
//! Strength checks, so that a weak key is refused rather than trusted:
//! - RSA moduli of 2048 to 4096 bits: RFC 7518 (3.3) requires at least 2048, and the RSA
//!   implementation refuses more than 4096 when verifying, so such a key could never verify.
//! - HMAC secrets of at least 32 bytes, the size of the SHA-256 output (RFC 7518, 3.2).
//! - EC points on P-256.
//!
//! Key material is never echoed in an error, only the key's index and `kid`.

use std::fmt;

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use jsonwebtoken::{DecodingKey, DecodingKeyKind};
use serde_json::{Map, Value};

use super::{Alg, JwtConfigError, JwtError, MAX_KEYS};

/// Smallest RSA modulus accepted, in bits (RFC 7518, 3.3).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: the most the RSA verifier accepts.
const MAX_RSA_BITS: usize = 4096;
/// Shortest HMAC secret accepted: the SHA-256 output size (RFC 7518, 3.2).
const MIN_HMAC_BYTES: usize = 32;

/// Key values are base64url; RFC 7515 says unpadded, and padding is tolerated since it changes
/// nothing about the key.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The usable keys of a set.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct KeySet {
    keys: Vec<Key>,
}

/// One verification key, with the only algorithm it verifies.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Alg,
    key: DecodingKey,
}

impl KeySet {
    /// Parses a JWKS document, keeping the keys usable for the three algorithms.
    pub(super) fn parse(json: &str) -> Result<KeySet, JwtConfigError> {
        let doc: Value = serde_json::from_str(json).map_err(|e| {
            // The line and column only: serde's message can quote a value, and an `oct` key
            // is a secret.
            JwtConfigError::NotAKeySet(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let listed = doc.get("keys").and_then(Value::as_array).ok_or_else(|| {
            JwtConfigError::NotAKeySet("expected an object with a \"keys\" array".to_owned())
        })?;
        let mut keys = Vec::new();
        for (index, jwk) in listed.iter().enumerate() {
            let parsed = parse_key(jwk).map_err(|reason| JwtConfigError::Key {
                key: describe(index, jwk),
                reason,
            })?;
            keys.extend(parsed);
        }
        if keys.is_empty() {
            return Err(JwtConfigError::NoUsableKey);
        }
        if keys.len() > MAX_KEYS {
            return Err(JwtConfigError::TooManyKeys(keys.len()));
        }
        Ok(KeySet { keys })
    }

    /// The keys to try for a token with this `kid` and algorithm.
    pub(super) fn candidates(
        &self,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<Vec<&DecodingKey>, JwtError> {
        let fitting = |k: &&Key| k.alg == alg;
        let Some(kid) = kid else {
            let keys: Vec<_> = self.keys.iter().filter(fitting).map(|k| &k.key).collect();
            return if keys.is_empty() {
                Err(JwtError::UnknownKey)
            } else {
                Ok(keys)
            };
        };
        let named: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect();
        if named.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        let keys: Vec<_> = named.into_iter().filter(fitting).map(|k| &k.key).collect();
        if keys.is_empty() {
            Err(JwtError::AlgorithmMismatch)
        } else {
            Ok(keys)
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg.name())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.kid == other.kid && self.alg == other.alg && same_key(&self.key, &other.key)
    }
}

impl Eq for Key {}

fn same_key(a: &DecodingKey, b: &DecodingKey) -> bool {
    a.family() == b.family()
        && match (a.kind(), b.kind()) {
            (DecodingKeyKind::SecretOrDer(a), DecodingKeyKind::SecretOrDer(b)) => a == b,
            (
                DecodingKeyKind::RsaModulusExponent { n, e },
                DecodingKeyKind::RsaModulusExponent { n: n2, e: e2 },
            ) => n == n2 && e == e2,
            _ => false,
        }
}

/// `key 2` or `key 2 (kid "abc")`, for errors.
fn describe(index: usize, jwk: &Value) -> String {
    match jwk.get("kid").and_then(Value::as_str) {
        Some(kid) => format!("key {index} (kid {kid:?})"),
        None => format!("key {index}"),
    }
}

/// One JWK: `Ok(None)` when it is not for verifying one of the three algorithms.
fn parse_key(jwk: &Value) -> Result<Option<Key>, String> {
    let jwk = jwk.as_object().ok_or("not a JSON object")?;
    let kty = text(jwk, "kty")?.ok_or("no \"kty\"")?;
    let kid = text(jwk, "kid")?.map(str::to_owned);
    if text(jwk, "use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or("\"key_ops\" is not an array")?;
        if !ops.iter().any(|op| op == "verify") {
            return Ok(None);
        }
    }
    let alg = match text(jwk, "alg")? {
        Some(name) => match Alg::from_name(name) {
            Some(alg) => alg,
            None => return Ok(None),
        },
        None => match kty {
            "RSA" => Alg::Rs256,
            "oct" => Alg::Hs256,
            "EC" if text(jwk, "crv")? == Some("P-256") => Alg::Es256,
            _ => return Ok(None),
        },
    };
    let key = match (alg, kty) {
        (Alg::Rs256, "RSA") => rsa_key(jwk)?,
        (Alg::Es256, "EC") => ec_key(jwk)?,
        (Alg::Hs256, "oct") => hmac_key(jwk)?,
        (alg, kty) => return Err(format!("alg {} does not fit kty {kty:?}", alg.name())),
    };
    Ok(Some(Key { kid, alg, key }))
}

fn rsa_key(jwk: &Map<String, Value>) -> Result<DecodingKey, String> {
    let n = bytes(jwk, "n")?;
    let e = bytes(jwk, "e")?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = n.first().map_or(0, |top| {
        (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    });
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
        ));
    }
    let exponent = if e.len() <= 4 {
        e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b))
    } else {
        u64::MAX
    };
    if exponent < 3 || exponent % 2 == 0 || exponent > u64::from(u32::MAX) {
        return Err("RSA exponent must be an odd number from 3 to 2^32 - 1".to_owned());
    }
    Ok(DecodingKey::from_rsa_raw_components(n, e))
}

fn ec_key(jwk: &Map<String, Value>) -> Result<DecodingKey, String> {
    if text(jwk, "crv")? != Some("P-256") {
        return Err("ES256 needs crv \"P-256\"".to_owned());
    }
    let x = bytes(jwk, "x")?;
    let y = bytes(jwk, "y")?;
    if x.len() != 32 || y.len() != 32 {
        return Err("P-256 coordinates are 32 bytes each".to_owned());
    }
    // The uncompressed SEC1 point, which is what the crate keeps for an EC key (its
    // `from_ec_components` builds the same bytes from base64 text).
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    if p256::PublicKey::from_sec1_bytes(&point).is_err() {
        return Err("the point is not on P-256".to_owned());
    }
    Ok(DecodingKey::from_ec_der(&point))
}

fn hmac_key(jwk: &Map<String, Value>) -> Result<DecodingKey, String> {
    let k = bytes(jwk, "k")?;
    if k.len() < MIN_HMAC_BYTES {
        return Err(format!(
            "HS256 secret of {} bytes; at least {MIN_HMAC_BYTES} are needed",
            k.len()
        ));
    }
    Ok(DecodingKey::from_secret(&k))
}

fn text<'a>(jwk: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{field:?} is not a string")),
    }
}

fn bytes(jwk: &Map<String, Value>, field: &str) -> Result<Vec<u8>, String> {
    let value = text(jwk, field)?.ok_or_else(|| format!("no {field:?}"))?;
    KEY_B64
        .decode(value)
        .map_err(|_| format!("{field:?} is not base64url"))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}
