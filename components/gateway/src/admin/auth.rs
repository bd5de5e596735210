//! Bearer-token check for the admin routes.
//!
//! The admin routes can flush, replay and delete data, so they are closed unless the secret
//! variable `admin_token` is set: an unset token disables them (`403`) rather than leaving
//! them open. The token is compared in constant time so its prefix cannot be probed.

use spin_sdk::http::Request;

/// Why a request may not use the admin routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// `admin_token` is not configured.
    Disabled,
    /// The `Authorization: Bearer` header is missing or wrong.
    BadToken,
}

/// Checks `req` against the configured token.
pub fn check(req: &Request, configured: Option<&str>) -> Result<(), Denied> {
    let Some(expected) = configured.filter(|t| !t.is_empty()) else {
        return Err(Denied::Disabled);
    };
    let given = req
        .header("authorization")
        .and_then(|v| v.as_str())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(Denied::BadToken)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Denied::BadToken)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}
