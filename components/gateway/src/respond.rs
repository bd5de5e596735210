//! Replies to HTTP: every response the item, health and metrics routes send.
//!
//! Statuses, codes and bodies are decided in `cache_core::serve` ([`Reply`], and
//! [`RequestError::reply`], the one table from errors to statuses); this module only builds
//! the HTTP response, counts error codes for `/metrics` and logs server-side failures.

use cache_core::serve::{Reply, RequestError};
use spin_sdk::http::Response;

use crate::metrics;

/// The HTTP response for `reply`; an error is counted for `/metrics`, and logged when it is
/// the server's.
pub fn reply(reply: Reply) -> Response {
    if let Some((code, message)) = &reply.error {
        metrics::count_error(code);
        if reply.status >= 500 {
            eprintln!("gateway: {} {code}: {message}", reply.status);
        }
    }
    http(reply)
}

/// The HTTP response for `reply`, as it is.
pub fn http(reply: Reply) -> Response {
    let mut b = Response::builder();
    b.status(reply.status);
    for (name, value) in reply.headers {
        b.header(name, value);
    }
    b.body(reply.body).build()
}

/// The error response for `e`.
pub fn error(e: &RequestError) -> Response {
    reply(e.reply())
}

/// A JSON response.
pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
    reply(Reply::json(status, body))
}
