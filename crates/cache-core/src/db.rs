//! The main DB API as the flush sees it: one call, and a classification of its failures.
//!
//! The flush component implements [`DbApi`] with an outgoing HTTP request and can use
//! [`parse_batch_answer`] to turn the raw status, `Retry-After` header and body into the
//! outcome the flush expects. Tests implement it with a scripted fake.

use std::time::Duration;

use thiserror::Error;

use crate::contract::{BatchRequest, BatchResponse};

/// Why a batch was not answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// Try again later with the same batch id (429, 5xx, timeout, network, garbage answer).
    #[error("retryable: {reason}")]
    Retryable {
        /// What went wrong.
        reason: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Sending it again will not help (other 4xx); its writes are dead-lettered.
    #[error("permanent: {reason}")]
    Permanent {
        /// What went wrong.
        reason: String,
    },
}

impl SendError {
    /// A retryable error without `Retry-After`.
    pub fn retryable(reason: impl Into<String>) -> SendError {
        SendError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Sends sealed batches to the DB API.
pub trait DbApi {
    /// `POST /v1/batch` with `Idempotency-Key: {batch.batch_id}`.
    fn send_batch(&mut self, batch: &BatchRequest) -> Result<BatchResponse, SendError>;
}

/// Classifies an HTTP answer to `POST /v1/batch`.
///
/// 2xx with a parsable body is an answer; 2xx with garbage, 408, 425, 429 and 5xx are
/// retryable; so are 401 and 403 (a configuration problem, not a data problem: the writes
/// must wait for a fixed token, not be dead-lettered). Other statuses are permanent.
/// `Retry-After` is honoured in its delta-seconds form.
pub fn parse_batch_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<BatchResponse, SendError> {
    let retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => serde_json::from_slice(body).map_err(|e| SendError::Retryable {
            reason: format!("unparsable batch answer: {e}"),
            retry_after,
        }),
        401 | 403 | 408 | 425 | 429 | 500..=599 => Err(SendError::Retryable {
            reason: format!("http status {status}"),
            retry_after,
        }),
        _ => Err(SendError::Permanent {
            reason: format!("http status {status}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, retry_after: Option<&str>, body: &str, expected: &str) {
        let got = match parse_batch_answer(status, retry_after, body.as_bytes()) {
            Ok(r) => format!("ok {}", r.results.len()),
            Err(SendError::Retryable { retry_after, .. }) => format!("retry {retry_after:?}"),
            Err(SendError::Permanent { .. }) => "permanent".to_owned(),
        };
        assert_eq!(got, expected, "{status} {retry_after:?} {body:?}");
    }

    #[test]
    fn answers_are_classified_by_status_and_body() {
        let ok = r#"{"results":[{"status":"applied"}]}"#;
        let cases = [
            (200, None, ok, "ok 1"),
            (200, None, "<html>", "retry None"),
            (429, Some("7"), "", "retry Some(7s)"),
            (503, Some("Wed, 21 Oct 2015 07:28:00 GMT"), "", "retry None"),
            (500, None, "", "retry None"),
            (401, None, "", "retry None"),
            (400, None, "", "permanent"),
            (413, None, "", "permanent"),
            (302, None, "", "permanent"),
        ];
        for (status, ra, body, expected) in cases {
            check(status, ra, body, expected);
        }
    }
}
