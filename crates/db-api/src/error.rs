//! Errors and their HTTP form.
//!
//! Every failure a client can see is an [`ApiError`] and leaves as a JSON body
//! `{"error": "<code>", "message": "..."}` with a status that tells the client what to do:
//! 4xx means "do not retry this as is", 5xx/429 means "retry later with the same batch id".
//! Keeping the mapping in one place keeps the codes stable for the clients' tests.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A storage failure, from either backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// SQLite reported an error (the cause is the source).
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error (the cause is the source).
    #[error("postgres")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database holds something this server cannot read back (e.g. a corrupt stored answer).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database file or its directory could not be prepared.
    #[error("{0}")]
    Io(String),
    /// The blocking storage task could not run to completion.
    #[error("storage task failed: {0}")]
    Task(String),
    /// The database asked the transaction to be retried (deadlock, serialization failure).
    #[error("transient database conflict: {0}")]
    Transient(String),
    /// A stored batch id was reused with a different body.
    #[error("batch id {0:?} was already used with a different body")]
    IdempotencyMismatch(String),
    /// An item write's `If-Match`/`If-None-Match` do not hold for the item as stored; nothing
    /// was applied or remembered.
    #[error("{0} is not in the state If-Match/If-None-Match ask for")]
    PreconditionFailed(String),
}

/// An error answer of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body is not valid JSON or not the expected shape.
    #[error("{0}")]
    BadJson(String),
    /// The request is well-formed JSON but breaks a rule of the contract.
    #[error("{0}")]
    BadRequest(String),
    /// The `Idempotency-Key` was used before with a different body.
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// Missing or wrong bearer token (the `--token` check, with auth off).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Auth on: the access needs a signed-in user and the request has no credential.
    #[error("{0}")]
    SignInRequired(String),
    /// Auth on: the credential names no one (unknown, revoked, malformed, a JWT that does
    /// not verify).
    #[error("{0}")]
    InvalidToken(String),
    /// Auth on: the caller may not make this access.
    #[error("{0}")]
    Forbidden(String),
    /// No such item or route.
    #[error("{0}")]
    NotFound(String),
    /// An item write lost a race with another write of the same item.
    #[error("{0}")]
    Conflict(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A batch must be sent as `application/json`.
    #[error("expected content-type application/json")]
    UnsupportedMediaType,
    /// A storage failure; the client may retry.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An injected server error with this status (fault injection).
    #[error("injected server error {0}")]
    Injected(StatusCode),
    /// The server is marked down (fault injection).
    #[error("the database is down (injected fault)")]
    Down,
    /// The request was held past the injected timeout.
    #[error("the request timed out (injected fault)")]
    Timeout,
    /// Throttled (fault injection): retry after this many seconds.
    #[error("too many requests; retry after {0} s (injected fault)")]
    Throttled(u64),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub error: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::IdempotencyMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized | ApiError::SignInRequired(_) | ApiError::InvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Backend(BackendError::IdempotencyMismatch(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Backend(BackendError::Transient(_)) | ApiError::Down => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Backend(BackendError::PreconditionFailed(_)) => {
                StatusCode::PRECONDITION_FAILED
            }
            ApiError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Injected(status) => *status,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable code in the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadJson(_) => "bad_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::IdempotencyMismatch(_)
            | ApiError::Backend(BackendError::IdempotencyMismatch(_)) => "idempotency_key_reused",
            ApiError::Unauthorized | ApiError::SignInRequired(_) => "unauthorized",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Backend(BackendError::Transient(_)) => "transient",
            ApiError::Backend(BackendError::PreconditionFailed(_)) => "precondition_failed",
            ApiError::Backend(_) => "storage_error",
            ApiError::Injected(_) => "injected_error",
            ApiError::Down => "down",
            ApiError::Timeout => "timeout",
            ApiError::Throttled(_) => "throttled",
        }
    }
}

/// An error and its sources on one line: `outer: inner: innermost`, without repeats.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if matches!(self, ApiError::Backend(_)) {
            eprintln!("db-api: {status}: {}", chain(&self));
        }
        let body = ErrorBody {
            error: self.code(),
            message: chain(&self),
        };
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            ApiError::Throttled(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::Backend(BackendError::Transient(_)) | ApiError::Down => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            ApiError::Unauthorized | ApiError::SignInRequired(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::InvalidToken(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::Forbidden(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
                );
            }
            _ => {}
        }
        response
    }
}
