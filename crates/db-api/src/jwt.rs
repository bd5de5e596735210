//! A JWT issuer for tests: `POST /_jwt` signs tokens, `GET /_jwks` publishes the keys.
//!
//! A cache in front of an API that takes JWTs must verify them against the issuer's JWKS
//! (RFC 7517) and forward them; tests need an issuer that signs on demand, with any subject,
//! lifetime (an expired token included), audience, issuer and algorithm. This is one, and
//! test-only like every `_` route:
//!
//! - **HS256** signs with the shared secret of `--jwt-secret` (a development default when
//!   not given, [`DEV_JWT_SECRET`]); `GET /_jwks` publishes it as an `oct` key, which no
//!   real issuer would do, so that a test can verify HS256 tokens from the JWKS alone.
//! - **RS256** (RSA 2048) and **ES256** (P-256) sign with keys generated when first needed
//!   and kept for the life of the process: no private key is stored anywhere, and a restart
//!   rotates them (new `kid`s).
//!
//! Every key's `kid` is its RFC 7638 thumbprint. Tokens carry `sub`, `iss`, `aud`, `iat` and
//! `exp`. While the test routes are served, the API also takes these tokens as bearer
//! credentials ([`Jwt::verify`]): signed by one of the keys above, `iss` and `aud` equal to
//! `--jwt-issuer` and `--jwt-audience`, not expired (no leeway), `sub` naming a user.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use cache_sync_contract::wire::MAX_PRINCIPAL_BYTES;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The HS256 secret when `--jwt-secret` is not given. Public: development and tests only.
pub const DEV_JWT_SECRET: &str = "cache-sync-dev-jwt-secret-for-tests-only";
/// `iss` of issued tokens, and the issuer required of presented ones, by default.
pub const DEFAULT_ISSUER: &str = "cache-sync-db-api";
/// `aud` of issued tokens, and the audience required of presented ones, by default.
pub const DEFAULT_AUDIENCE: &str = "cache-sync";
/// Lifetime of an issued token when the request names none.
pub const DEFAULT_TTL_SECS: i64 = 300;
/// Longest lifetime (and, negated, the furthest past expiry) a request may ask for.
pub const MAX_TTL_SECS: i64 = 10 * 365 * 24 * 60 * 60;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest `iss` or `aud` accepted.
pub const MAX_CLAIM_BYTES: usize = 256;

/// The issuer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The HS256 secret.
    pub secret: String,
    /// `iss` of issued tokens; presented tokens must carry it.
    pub issuer: String,
    /// `aud` of issued tokens; presented tokens must carry it.
    pub audience: String,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            secret: DEV_JWT_SECRET.into(),
            issuer: DEFAULT_ISSUER.into(),
            audience: DEFAULT_AUDIENCE.into(),
        }
    }
}

/// A signing algorithm the issuer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SigningAlg {
    /// HMAC-SHA256 with the shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA 2048.
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl SigningAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::HS256 => Algorithm::HS256,
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::ES256 => Algorithm::ES256,
        }
    }
}

/// The body of `POST /_jwt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The subject (a user name, for a token the API itself accepts).
    pub sub: String,
    /// Lifetime in seconds; negative for a token already expired. Default 300.
    #[serde(default)]
    pub ttl_secs: Option<i64>,
    /// `aud`; default `--jwt-audience`.
    #[serde(default)]
    pub aud: Option<String>,
    /// `iss`; default `--jwt-issuer`.
    #[serde(default)]
    pub iss: Option<String>,
    /// Signing algorithm; default RS256.
    #[serde(default)]
    pub alg: Option<SigningAlg>,
}

/// The answer of `POST /_jwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The compact JWS.
    pub token: String,
    /// Its algorithm.
    pub alg: SigningAlg,
    /// The `kid` of its key (also in its header).
    pub kid: String,
    /// Its `exp`, Unix seconds.
    pub exp: u64,
}

#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Debug, Deserialize)]
struct Subject {
    sub: String,
}

struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    kid: String,
}

impl SigningKey {
    fn new(encoding: EncodingKey, alg: Algorithm) -> Result<Self, String> {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| e.to_string())?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        Ok(Self {
            encoding,
            decoding,
            jwk,
            kid,
        })
    }
}

struct AsymmetricKeys {
    rsa: SigningKey,
    ec: SigningKey,
}

/// The RSA and P-256 keys of this process, generated once.
static ASYMMETRIC: OnceLock<Result<AsymmetricKeys, String>> = OnceLock::new();

fn generate() -> Result<AsymmetricKeys, String> {
    use p256::pkcs8::EncodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let mut rng = rand::rngs::OsRng;
    let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| format!("RSA key: {e}"))?;
    let der = rsa.to_pkcs1_der().map_err(|e| format!("RSA key: {e}"))?;
    let rsa = SigningKey::new(EncodingKey::from_rsa_der(der.as_bytes()), Algorithm::RS256)?;
    let ec = p256::SecretKey::random(&mut rng);
    let der = ec.to_pkcs8_der().map_err(|e| format!("P-256 key: {e}"))?;
    let ec = SigningKey::new(EncodingKey::from_ec_der(der.as_bytes()), Algorithm::ES256)?;
    Ok(AsymmetricKeys { rsa, ec })
}

/// The asymmetric keys, generated on the blocking pool the first time.
async fn asymmetric() -> Result<&'static AsymmetricKeys, String> {
    if let Some(keys) = ASYMMETRIC.get() {
        return keys.as_ref().map_err(Clone::clone);
    }
    tokio::task::spawn_blocking(|| {
        ASYMMETRIC
            .get_or_init(generate)
            .as_ref()
            .map_err(Clone::clone)
    })
    .await
    .map_err(|e| format!("key generation failed: {e}"))?
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn claim(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_CLAIM_BYTES || value.chars().any(char::is_control) {
        return Err(format!(
            "{name} must be 1 to {MAX_CLAIM_BYTES} bytes without control characters"
        ));
    }
    Ok(())
}

/// The test issuer.
pub struct Jwt {
    settings: JwtSettings,
    hmac: SigningKey,
}

impl Jwt {
    /// The issuer of `settings`; the error is why they are refused.
    pub fn new(settings: JwtSettings) -> Result<Self, String> {
        if settings.secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the JWT secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        claim("the JWT issuer", &settings.issuer)?;
        claim("the JWT audience", &settings.audience)?;
        let hmac = SigningKey::new(
            EncodingKey::from_secret(settings.secret.as_bytes()),
            Algorithm::HS256,
        )?;
        Ok(Self { settings, hmac })
    }

    /// Signs a token as `request` asks; the error is why the request is refused (or, for
    /// the asymmetric keys, why they could not be made).
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, String> {
        if request.sub.is_empty()
            || request.sub.len() > MAX_PRINCIPAL_BYTES
            || request.sub.chars().any(char::is_control)
        {
            return Err(format!(
                "sub must be 1 to {MAX_PRINCIPAL_BYTES} bytes without control characters"
            ));
        }
        let ttl = request.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if !(-MAX_TTL_SECS..=MAX_TTL_SECS).contains(&ttl) {
            return Err(format!(
                "ttl_secs must be between -{MAX_TTL_SECS} and {MAX_TTL_SECS}"
            ));
        }
        let iss = request.iss.as_deref().unwrap_or(&self.settings.issuer);
        let aud = request.aud.as_deref().unwrap_or(&self.settings.audience);
        claim("iss", iss)?;
        claim("aud", aud)?;
        let alg = request.alg.unwrap_or_default();
        let key = match alg {
            SigningAlg::HS256 => &self.hmac,
            SigningAlg::RS256 => &asymmetric().await?.rsa,
            SigningAlg::ES256 => &asymmetric().await?.ec,
        };
        let iat = now_secs();
        let exp = iat.saturating_add_signed(ttl);
        let mut header = Header::new(alg.algorithm());
        header.kid = Some(key.kid.clone());
        let claims = Claims {
            sub: &request.sub,
            iss,
            aud,
            iat,
            exp,
        };
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(Issued {
            token,
            alg,
            kid: key.kid.clone(),
            exp,
        })
    }

    /// The JWKS: the RSA and P-256 public keys and the HS256 secret as an `oct` key.
    pub async fn jwks(&self) -> Result<JwkSet, String> {
        let keys = asymmetric().await?;
        Ok(JwkSet {
            keys: vec![
                keys.rsa.jwk.clone(),
                keys.ec.jwk.clone(),
                self.hmac.jwk.clone(),
            ],
        })
    }

    /// The `sub` of a token this issuer signed, if it is valid now for the configured
    /// issuer and audience; the error is why not.
    pub fn verify(&self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let key = match header.alg {
            Algorithm::HS256 => &self.hmac,
            Algorithm::RS256 | Algorithm::ES256 => {
                let keys = ASYMMETRIC
                    .get()
                    .and_then(|k| k.as_ref().ok())
                    .ok_or("no such signing key")?;
                if header.alg == Algorithm::RS256 {
                    &keys.rsa
                } else {
                    &keys.ec
                }
            }
            other => return Err(format!("algorithm {other:?} is not accepted")),
        };
        if header.kid.as_deref().is_some_and(|kid| kid != key.kid) {
            return Err("unknown kid".into());
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Subject>(token, &key.decoding, &validation)
            .map_err(|e| e.to_string())?;
        Ok(data.claims.sub)
    }
}
