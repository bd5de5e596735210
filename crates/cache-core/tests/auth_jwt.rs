//! Bearer JWT verification (`cache_core::auth::jwt`) with tokens signed here by the fixture keys
//! in `tests/fixtures/jwt`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cache_core::auth::jwt::{
    JwtConfigError, JwtError, JwtVerifier, MAX_KEYS, MAX_LEEWAY, MAX_TOKEN_BYTES,
};
use cache_core::UnixMillis;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};

const NOW_S: u64 = 1_700_000_000;
const NOW: UnixMillis = UnixMillis(NOW_S * 1000);
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "cache-sync";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn jwks() -> String {
    String::from_utf8(fixture("jwks.json")).unwrap()
}

/// The fixture key set, checking the issuer and the audience, with a 60 s leeway.
fn verifier() -> JwtVerifier {
    JwtVerifier::new(
        &jwks(),
        Some(ISSUER.to_owned()),
        Some(AUDIENCE.to_owned()),
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Claims that pass every check of `verifier()` at `NOW`.
fn claims() -> Value {
    json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": NOW_S, "exp": NOW_S + 600})
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn signing_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(&fixture("hmac-secret.txt"))
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap(),
        _ => EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap(),
    }
}

fn kid_of(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "hs-1",
        Algorithm::ES256 => "ec-1",
        _ => "rsa-1",
    }
}

/// A token signed with the fixture key for `alg`, with `kid` in its header.
fn sign_with(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn sign(alg: Algorithm, claims: &Value) -> String {
    sign_with(alg, Some(kid_of(alg)), &signing_key(alg), claims)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token assembled by hand: any header, any claims, any signature.
fn hand_made(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn check(v: &JwtVerifier, token: &str, expected: Result<&str, JwtError>) {
    assert_eq!(
        v.verify(token, NOW),
        expected.map(str::to_owned),
        "token {token:?}"
    );
}

#[test]
fn tokens_of_the_three_algorithms_give_their_subject() {
    let v = verifier();
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        check(&v, &sign(alg, &claims()), Ok("alice"));
        // Without `kid`, every key of the token's algorithm is tried.
        let no_kid = sign_with(alg, None, &signing_key(alg), &claims());
        check(&v, &no_kid, Ok("alice"));
    }
}

#[test]
fn expiry_and_not_before_are_checked_against_now_with_the_leeway() {
    let v = verifier();
    let cases: &[(Value, Result<&str, JwtError>)] = &[
        (json!({"exp": NOW_S + 1}), Ok("alice")),
        (json!({"exp": NOW_S - 59}), Ok("alice")),
        (json!({"exp": NOW_S - 60}), Err(JwtError::Expired)),
        (json!({"exp": NOW_S - 3600}), Err(JwtError::Expired)),
        (json!({"exp": (NOW_S + 10) as f64 + 0.5}), Ok("alice")),
        (json!({"nbf": NOW_S}), Ok("alice")),
        (json!({"nbf": NOW_S + 60}), Ok("alice")),
        (json!({"nbf": NOW_S + 61}), Err(JwtError::NotYetValid)),
        (json!({"nbf": NOW_S + 3600}), Err(JwtError::NotYetValid)),
        (
            json!({"exp": null}),
            Err(JwtError::Malformed("no exp claim")),
        ),
        (
            json!({"exp": -5}),
            Err(JwtError::Malformed("exp is not a NumericDate")),
        ),
        (
            json!({"nbf": -1.5}),
            Err(JwtError::Malformed("nbf is not a NumericDate")),
        ),
        (
            json!({"exp": "tomorrow"}),
            Err(JwtError::Malformed("a part is not the JSON expected")),
        ),
    ];
    for (changes, expected) in cases {
        let token = sign(Algorithm::HS256, &with(changes.clone()));
        check(&v, &token, expected.clone());
    }
}

#[test]
fn the_leeway_is_clamped_and_zero_means_none() {
    let lenient = JwtVerifier::new(&jwks(), None, None, Duration::from_secs(24 * 3600)).unwrap();
    assert_eq!(lenient.leeway(), MAX_LEEWAY);
    let expired = sign(Algorithm::RS256, &with(json!({"exp": NOW_S - 301})));
    check(&lenient, &expired, Err(JwtError::Expired));
    let recent = sign(Algorithm::RS256, &with(json!({"exp": NOW_S - 299})));
    check(&lenient, &recent, Ok("alice"));

    let strict = JwtVerifier::new(&jwks(), None, None, Duration::ZERO).unwrap();
    let at_exp = sign(Algorithm::RS256, &with(json!({"exp": NOW_S})));
    check(&strict, &at_exp, Err(JwtError::Expired));
    let just_after = UnixMillis(NOW.0 - 1);
    assert_eq!(strict.verify(&at_exp, just_after), Ok("alice".to_owned()));
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let v = verifier();
    let cases: &[(Value, Result<&str, JwtError>)] = &[
        (
            json!({"iss": "https://other.test"}),
            Err(JwtError::WrongIssuer),
        ),
        (json!({"iss": null}), Err(JwtError::WrongIssuer)),
        (json!({"aud": "another-app"}), Err(JwtError::WrongAudience)),
        (json!({"aud": null}), Err(JwtError::WrongAudience)),
        (json!({"aud": ["a", AUDIENCE, "b"]}), Ok("alice")),
        (json!({"aud": ["a", "b"]}), Err(JwtError::WrongAudience)),
        (json!({"aud": []}), Err(JwtError::WrongAudience)),
    ];
    for (changes, expected) in cases {
        let token = sign(Algorithm::ES256, &with(changes.clone()));
        check(&v, &token, expected.clone());
    }
    // Unconfigured, neither is checked.
    let open = JwtVerifier::new(&jwks(), None, None, Duration::from_secs(60)).unwrap();
    let token = sign(
        Algorithm::ES256,
        &with(json!({"iss": "https://other.test", "aud": "another-app"})),
    );
    check(&open, &token, Ok("alice"));
}

#[test]
fn the_subject_must_be_a_bounded_printable_string() {
    let v = verifier();
    let longest = "a".repeat(256);
    let cases: &[(Value, Result<&str, JwtError>)] = &[
        (json!({"sub": longest}), Ok(longest.as_str())),
        (
            json!({"sub": "a".repeat(257)}),
            Err(JwtError::InvalidSubject),
        ),
        (json!({"sub": ""}), Err(JwtError::InvalidSubject)),
        (json!({"sub": null}), Err(JwtError::InvalidSubject)),
        (json!({"sub": "ali\nce"}), Err(JwtError::InvalidSubject)),
        (json!({"sub": "auth0|5f7c"}), Ok("auth0|5f7c")),
    ];
    for (changes, expected) in cases {
        let token = sign(Algorithm::HS256, &with(changes.clone()));
        check(&v, &token, expected.clone());
    }
}

#[test]
fn forged_and_tampered_signatures_are_refused() {
    let v = verifier();
    // Signed by a key the set does not hold, under the set's kid.
    let other = EncodingKey::from_rsa_pem(&fixture("rsa-other-private.pem")).unwrap();
    let forged = sign_with(Algorithm::RS256, Some("rsa-1"), &other, &claims());
    check(&v, &forged, Err(JwtError::BadSignature));
    let forged = sign_with(Algorithm::RS256, None, &other, &claims());
    check(&v, &forged, Err(JwtError::BadSignature));
    // Another HMAC secret.
    let guessed = EncodingKey::from_secret(b"a guessed secret that is long enough!");
    let forged = sign_with(Algorithm::HS256, Some("hs-1"), &guessed, &claims());
    check(&v, &forged, Err(JwtError::BadSignature));

    // A genuine token with its claims swapped for another subject's.
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let genuine = sign(alg, &claims());
        let parts: Vec<&str> = genuine.split('.').collect();
        let mallory = b64(with(json!({"sub": "mallory"})).to_string().as_bytes());
        let tampered = format!("{}.{mallory}.{}", parts[0], parts[2]);
        check(&v, &tampered, Err(JwtError::BadSignature));
        // And the signature cut short, or emptied.
        let cut = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() / 2]
        );
        assert!(v.verify(&cut, NOW).is_err(), "{alg:?}");
        let empty = format!("{}.{}.", parts[0], parts[1]);
        check(&v, &empty, Err(JwtError::BadSignature));
    }
}

#[test]
fn keys_are_chosen_by_kid_and_the_key_fixes_the_algorithm() {
    let v = verifier();
    let unknown = sign_with(
        Algorithm::RS256,
        Some("rsa-9"),
        &signing_key(Algorithm::RS256),
        &claims(),
    );
    check(&v, &unknown, Err(JwtError::UnknownKey));
    // An RS256 token naming the EC key.
    let crossed = sign_with(
        Algorithm::RS256,
        Some("ec-1"),
        &signing_key(Algorithm::RS256),
        &claims(),
    );
    check(&v, &crossed, Err(JwtError::AlgorithmMismatch));
    // A set without an HMAC key has no key for an HS256 token without kid.
    let rsa_only = json!({"keys": [serde_json::from_str::<Value>(&jwks()).unwrap()["keys"][0]]});
    let rsa_only = JwtVerifier::new(&rsa_only.to_string(), None, None, Duration::ZERO).unwrap();
    let hs = sign_with(
        Algorithm::HS256,
        None,
        &signing_key(Algorithm::HS256),
        &claims(),
    );
    check(&rsa_only, &hs, Err(JwtError::UnknownKey));
}

#[test]
fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    // The confusion attack: the RSA public key is public, so anyone can compute an HMAC with
    // its bytes; a verifier that let the token pick HS256 for the RSA key would accept it.
    let public_pem = fixture("rsa-public.pem");
    let public_key = EncodingKey::from_secret(&public_pem);
    let v = verifier();
    for kid in [Some("rsa-1"), None] {
        let token = sign_with(Algorithm::HS256, kid, &public_key, &claims());
        assert!(v.verify(&token, NOW).is_err(), "kid {kid:?}");
    }
    let named = sign_with(Algorithm::HS256, Some("rsa-1"), &public_key, &claims());
    check(&v, &named, Err(JwtError::AlgorithmMismatch));
    // The key's JWK values as the secret fare no better.
    let n = serde_json::from_str::<Value>(&jwks()).unwrap()["keys"][0]["n"].clone();
    let n_key = EncodingKey::from_secret(n.as_str().unwrap().as_bytes());
    let token = sign_with(Algorithm::HS256, None, &n_key, &claims());
    check(&v, &token, Err(JwtError::BadSignature));
}

#[test]
fn unsigned_and_unsupported_algorithms_are_refused() {
    let v = verifier();
    for none in ["none", "None", "NONE"] {
        for kid in [json!(null), json!("rsa-1"), json!("hs-1")] {
            let token = hand_made(
                &json!({"alg": none, "typ": "JWT", "kid": kid}),
                &claims(),
                b"",
            );
            check(&v, &token, Err(JwtError::NoneAlgorithm));
        }
    }
    for alg in [Algorithm::HS384, Algorithm::RS384, Algorithm::PS256] {
        check(
            &v,
            &sign(alg, &claims()),
            Err(JwtError::UnsupportedAlgorithm),
        );
    }
    let token = hand_made(&json!({"alg": "EdDSA"}), &claims(), b"sig");
    check(&v, &token, Err(JwtError::UnsupportedAlgorithm));
}

#[test]
fn a_critical_header_extension_is_refused() {
    let v = verifier();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs-1".to_owned());
    let mut header = serde_json::to_value(&header).unwrap();
    header["crit"] = json!(["exp"]);
    // Signed properly, so only the header is wrong.
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &signing_key(Algorithm::HS256),
        Algorithm::HS256,
    )
    .unwrap();
    let token = format!("{signing_input}.{signature}");
    check(
        &v,
        &token,
        Err(JwtError::Malformed(
            "critical header extensions are not supported",
        )),
    );
}

#[test]
fn malformed_tokens_are_errors_not_panics() {
    let v = verifier();
    let genuine = sign(Algorithm::HS256, &claims());
    let huge = format!("{genuine}{}", "A".repeat(MAX_TOKEN_BYTES));
    let padded = format!("{genuine}==");
    let cases = [
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "e30.e30.e30",
        "bnVsbA.bnVsbA.",
        "W10.W10.",
        "eyJhbGciOjF9.e30.",
        "ü.ü.ü",
        huge.as_str(),
        padded.as_str(),
        "Bearer abc",
    ];
    for token in cases {
        assert!(v.verify(token, NOW).is_err(), "{token:?}");
    }
    // The payload of a genuine token is not JSON.
    let parts: Vec<&str> = genuine.split('.').collect();
    let not_json = format!("{}.{}.{}", parts[0], b64(b"not json"), parts[2]);
    assert!(v.verify(&not_json, NOW).is_err());
}

proptest! {
    #[test]
    fn arbitrary_text_never_verifies_nor_panics(token in ".{0,300}") {
        prop_assert!(verifier().verify(&token, NOW).is_err());
    }

    #[test]
    fn arbitrary_parts_never_verify_nor_panic(
        header in proptest::collection::vec(any::<u8>(), 0..80),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        signature in proptest::collection::vec(any::<u8>(), 0..300),
        kid in proptest::option::of("(rsa-1|ec-1|hs-1|x)"),
        alg in "(HS256|RS256|ES256|none|[A-Z]{2}[0-9]{3})",
    ) {
        let v = verifier();
        let raw = format!("{}.{}.{}", b64(&header), b64(&payload), b64(&signature));
        prop_assert!(v.verify(&raw, NOW).is_err());
        let header = json!({"alg": alg, "kid": kid});
        let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(&payload), b64(&signature));
        prop_assert!(v.verify(&token, NOW).is_err());
        let token = hand_made(&header, &claims(), &signature);
        prop_assert!(v.verify(&token, NOW).is_err());
    }
}

fn set(keys: Value) -> String {
    json!({ "keys": keys }).to_string()
}

fn config_error(jwks: &str) -> JwtConfigError {
    JwtVerifier::new(jwks, None, None, Duration::ZERO).unwrap_err()
}

#[test]
fn bad_key_sets_are_refused_naming_the_key() {
    let fixture: Value = serde_json::from_str(&jwks()).unwrap();
    let rsa = fixture["keys"][0].clone();
    let ec = fixture["keys"][1].clone();
    let mut short_rsa = rsa.clone();
    short_rsa["n"] = json!(b64(&[0xff; 128]));
    let mut even_e = rsa.clone();
    even_e["e"] = json!(b64(&[1, 0, 0]));
    let mut off_curve = ec.clone();
    off_curve["y"] = json!(b64(&[1; 32]));
    let mut mislabelled = ec.clone();
    mislabelled["alg"] = json!("RS256");
    let cases: &[(String, &str)] = &[
        ("not json".to_owned(), "not a JWKS document: not JSON"),
        ("[]".to_owned(), "a \"keys\" array"),
        (json!({"keys": {}}).to_string(), "a \"keys\" array"),
        (set(json!([])), "no key for HS256, RS256 or ES256"),
        (set(json!(["rsa"])), "key 0: not a JSON object"),
        (set(json!([{"kid": "x"}])), "key 0 (kid \"x\"): no \"kty\""),
        (
            set(json!([rsa, short_rsa])),
            "key 1 (kid \"rsa-1\"): RSA modulus of 1024 bits",
        ),
        (set(json!([even_e])), "RSA exponent"),
        (
            set(json!([off_curve])),
            "key 0 (kid \"ec-1\"): the point is not on P-256",
        ),
        (
            set(json!([mislabelled])),
            "alg RS256 does not fit kty \"EC\"",
        ),
        (
            set(json!([{"kty": "RSA", "n": "!!", "e": "AQAB"}])),
            "\"n\" is not base64url",
        ),
        (
            set(json!([{"kty": "RSA", "kid": 7}])),
            "\"kid\" is not a string",
        ),
        (
            set(json!([{"kty": "EC", "alg": "ES256", "crv": "P-384", "x": "", "y": ""}])),
            "P-256",
        ),
        (
            set(json!([{"kty": "oct", "k": b64(b"short secret")}])),
            "HS256 secret of 12 bytes",
        ),
    ];
    for (doc, fragment) in cases {
        let msg = config_error(doc).to_string();
        assert!(msg.contains(fragment), "{doc}: {msg:?} lacks {fragment:?}");
    }
}

#[test]
fn keys_for_other_uses_and_algorithms_are_skipped() {
    let fixture: Value = serde_json::from_str(&jwks()).unwrap();
    let rsa = fixture["keys"][0].clone();
    let mut enc = rsa.clone();
    enc["use"] = json!("enc");
    let mut oaep = rsa.clone();
    oaep["alg"] = json!("RSA-OAEP");
    let mut rs384 = rsa.clone();
    rs384["alg"] = json!("RS384");
    let mut wrap_only = rsa.clone();
    wrap_only["key_ops"] = json!(["wrapKey"]);
    let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[9; 32])});
    let p384 = json!({"kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[1; 48])});
    let skipped = json!([enc, oaep, rs384, wrap_only, okp, p384]);
    assert_eq!(
        config_error(&set(skipped.clone())),
        JwtConfigError::NoUsableKey
    );
    // Beside a usable key they are no obstacle, and never chosen.
    let mut keys = skipped.as_array().unwrap().clone();
    let mut verifying = rsa.clone();
    verifying["kid"] = json!("rsa-2");
    keys.push(verifying);
    let v = JwtVerifier::new(&set(Value::Array(keys)), None, None, Duration::ZERO).unwrap();
    let key = signing_key(Algorithm::RS256);
    let token = sign_with(Algorithm::RS256, Some("rsa-2"), &key, &claims());
    assert_eq!(v.verify(&token, NOW), Ok("alice".to_owned()));
    let token = sign_with(Algorithm::RS256, Some("rsa-1"), &key, &claims());
    assert_eq!(v.verify(&token, NOW), Err(JwtError::UnknownKey));
    let token = sign_with(Algorithm::RS256, None, &key, &claims());
    assert_eq!(v.verify(&token, NOW), Ok("alice".to_owned()));
}

#[test]
fn keys_without_alg_take_the_one_their_type_allows() {
    let fixture: Value = serde_json::from_str(&jwks()).unwrap();
    let mut keys = fixture["keys"].as_array().unwrap().clone();
    for key in &mut keys {
        key.as_object_mut().unwrap().remove("alg");
        key.as_object_mut().unwrap().remove("use");
    }
    let v = JwtVerifier::new(&set(Value::Array(keys)), None, None, Duration::ZERO).unwrap();
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        assert_eq!(v.verify(&sign(alg, &claims()), NOW), Ok("alice".to_owned()));
    }
}

#[test]
fn key_count_issuer_and_audience_are_bounded() {
    let many: Vec<Value> = (0..=MAX_KEYS)
        .map(|i| json!({"kty": "oct", "kid": format!("k{i}"), "k": b64(&[i as u8; 32])}))
        .collect();
    assert_eq!(
        config_error(&set(Value::Array(many))),
        JwtConfigError::TooManyKeys(MAX_KEYS + 1)
    );
    let empty = |iss: &str, aud: &str| {
        JwtVerifier::new(
            &jwks(),
            Some(iss.to_owned()),
            Some(aud.to_owned()),
            Duration::ZERO,
        )
        .unwrap_err()
    };
    assert_eq!(empty("", "a"), JwtConfigError::EmptyIssuer);
    assert_eq!(empty("i", ""), JwtConfigError::EmptyAudience);
}

#[test]
fn secrets_appear_in_no_error_and_no_debug_output() {
    let secret = b64(b"an HMAC secret that must not leak!!");
    let short = b64(b"leaky");
    let docs = [
        set(json!([{"kty": "oct", "k": short}])),
        format!("{{\"keys\": [{{\"kty\": \"oct\", \"k\": \"{secret}\"}}"),
        json!({"keys": secret}).to_string(),
        set(json!([{"kty": "oct", "k": [secret]}])),
    ];
    for doc in &docs {
        let msg = config_error(doc).to_string();
        assert!(!msg.contains(&secret) && !msg.contains(&short), "{msg}");
    }
    let v = JwtVerifier::new(
        &set(json!([{"kty": "oct", "kid": "s", "k": secret}])),
        None,
        None,
        Duration::ZERO,
    )
    .unwrap();
    let debug = format!("{v:?}");
    assert!(
        !debug.contains(&secret) && debug.contains("\"s\""),
        "{debug}"
    );
    assert!(!format!("{verifier:?}", verifier = verifier()).contains("AQAB"));
}
