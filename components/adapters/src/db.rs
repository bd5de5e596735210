//! `HttpDb`: cache-core's `DbApi` over outbound HTTP, with a timeout.
//!
//! A batch is one `POST {db_api_url}/v1/batch` carrying `Idempotency-Key: {batch_id}` and, when
//! `db_api_token` is set, `Authorization: Bearer {token}`. The answer is classified by
//! [`parse_batch_answer`], so every rule about what is retryable lives in the core.
//!
//! **Why not `spin_sdk::http::send`.** It has no timeout: a DB API that accepts the connection
//! and never answers would hold the flush until the platform kills it, and the lease and the
//! backoff would never be recorded. The request is therefore made with the raw WASI
//! `outgoing-handler` and `request-options` (connect, first-byte and between-bytes timeouts,
//! all set to `flush_timeout`), which the host hands to its HTTP client. A timeout is a
//! retryable failure: the batch stays sealed and is resent with the same id, so a DB API that
//! applied it after all answers the resend from its idempotency table.
//!
//! The gateway's item reads go through [`HttpDb::get`] (cache-core's `Origin`) for the same
//! reason, bounded by `origin_timeout`: a read that waits on a silent DB API is answered `504`
//! (or stale, within `stale_if_error`) instead of hanging the client. A timeout is told apart
//! by WASI's error code, not by its message.

use std::time::Duration;

use cache_core::config::CacheConfig;
use cache_core::contract::{BatchRequest, BatchResponse, BATCH_PATH, IDEMPOTENCY_KEY_HEADER};
use cache_core::db::{parse_batch_answer, DbApi, SendError};
use cache_core::serve::origin::{
    AuthorizeCall, ItemAnswer, ItemRead, ItemWrite, Origin, Unanswered,
};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};

/// Bytes written to the request body stream per call (the WASI limit for blocking writes).
const WRITE_CHUNK: usize = 4096;

/// The DB API reached over outbound HTTP.
#[derive(Debug, Clone)]
pub struct HttpDb {
    scheme: Scheme,
    authority: String,
    base_path: String,
    token: Option<String>,
    timeout: Duration,
}

/// Why an `HttpDb` cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfigError(pub String);

impl std::fmt::Display for DbConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbConfigError {}

impl HttpDb {
    /// The DB API of `cfg`, with its `flush_timeout`.
    pub fn from_config(cfg: &CacheConfig) -> Result<HttpDb, DbConfigError> {
        HttpDb::new(&cfg.db_api_url, cfg.db_api_token.clone(), cfg.flush_timeout)
    }

    /// The DB API at `url` (`http://` or `https://`, optionally with a base path).
    pub fn new(
        url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<HttpDb, DbConfigError> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(DbConfigError(format!(
                "db_api_url must start with http:// or https://, got {url:?}"
            )));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(DbConfigError(format!("db_api_url has no host: {url:?}")));
        }
        let path = path.trim_end_matches('/');
        Ok(HttpDb {
            scheme,
            authority: authority.to_owned(),
            base_path: if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            },
            token: token.filter(|t| !t.is_empty()),
            timeout,
        })
    }

    fn headers(&self, batch_id: &str, len: usize) -> Result<Fields, SendError> {
        let mut list = vec![
            ("content-type".to_owned(), b"application/json".to_vec()),
            ("content-length".to_owned(), len.to_string().into_bytes()),
            (
                IDEMPOTENCY_KEY_HEADER.to_ascii_lowercase(),
                batch_id.as_bytes().to_vec(),
            ),
        ];
        if let Some(token) = &self.token {
            list.push((
                "authorization".to_owned(),
                format!("Bearer {token}").into_bytes(),
            ));
        }
        Fields::from_list(&list).map_err(|e| SendError::Permanent {
            reason: format!("invalid request header: {e:?}"),
        })
    }

    /// A request for `{base_path}{path}` on the DB API; the error names a target the WASI
    /// types refuse.
    fn request(
        &self,
        method: Method,
        path: &str,
        headers: Fields,
    ) -> Result<OutgoingRequest, String> {
        let request = OutgoingRequest::new(headers);
        let path = format!("{}{path}", self.base_path);
        let set = request.set_method(&method).is_ok()
            && request.set_scheme(Some(&self.scheme)).is_ok()
            && request.set_authority(Some(&self.authority)).is_ok()
            && request.set_path_with_query(Some(&path)).is_ok();
        if set {
            Ok(request)
        } else {
            Err(format!("invalid request target {}{path}", self.authority))
        }
    }

    fn options(&self) -> RequestOptions {
        let nanos = u64::try_from(self.timeout.as_nanos()).unwrap_or(u64::MAX);
        let options = RequestOptions::new();
        // A host that does not support a timeout refuses to set it; the request still goes.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        options
    }

    /// Sends `body` and returns the status, `Retry-After` and body of the answer.
    fn post(
        &self,
        batch_id: &str,
        body: &[u8],
    ) -> Result<(u16, Option<String>, Vec<u8>), SendError> {
        let request = self
            .request(
                Method::Post,
                BATCH_PATH,
                self.headers(batch_id, body.len())?,
            )
            .map_err(|reason| SendError::Permanent { reason })?;
        let outgoing = request
            .body()
            .map_err(|()| SendError::retryable("request body unavailable"))?;
        let future = outgoing_handler::handle(request, Some(self.options()))
            .map_err(|e| SendError::retryable(format!("request failed: {e:?}")))?;
        // A failed write usually means the request failed (refused, reset, timed out); the
        // response future then names the real cause, so it is consulted first.
        let written = write_body(outgoing, body);
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(response))) => written.and_then(|()| read_answer(response)),
            Some(Ok(Err(e))) => Err(SendError::retryable(format!("request failed: {e:?}"))),
            Some(Err(())) | None => Err(SendError::retryable("response unavailable")),
        }
    }
}

/// Why a `GET` got no complete answer: a timeout when WASI's error code is one of the
/// timeouts, never by reading the message.
fn failed(reason: String) -> Unanswered {
    Unanswered::Failed(reason)
}

fn code_error(context: &str, e: &ErrorCode) -> Unanswered {
    let reason = format!("{context}: {e:?}");
    match e {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => Unanswered::TimedOut(reason),
        _ => Unanswered::Failed(reason),
    }
}

/// Largest answer body read by [`HttpDb::get`] (a stored value is at most 1 MiB).
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

impl HttpDb {
    /// `{method} {db_api_url}{path}` with `headers` and `body`, within the timeout.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<ItemAnswer, Unanswered> {
        let mut list: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        if !body.is_empty() {
            list.push((
                "content-length".to_owned(),
                body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&list)
            .map_err(|e| failed(format!("invalid request header: {e:?}")))?;
        let request = self.request(method, path, fields).map_err(failed)?;
        let outgoing = request
            .body()
            .map_err(|()| failed("request body unavailable".into()))?;
        let future = outgoing_handler::handle(request, Some(self.options()))
            .map_err(|e| code_error("request failed", &e))?;
        let written = if body.is_empty() {
            OutgoingBody::finish(outgoing, None)
                .map_err(|e| code_error("finishing the request failed", &e))
        } else {
            write_body(outgoing, body).map_err(|e| failed(format!("{e:?}")))
        };
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(code_error("request failed", &e)),
            Some(Err(())) | None => return Err(failed("response unavailable".into())),
        };
        written?;
        let status = response.status();
        let header = |name: &str| {
            let values: Vec<String> = response
                .headers()
                .get(name)
                .into_iter()
                .filter_map(|v| String::from_utf8(v).ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let etag = response
            .headers()
            .get("etag")
            .into_iter()
            .next()
            .and_then(|v| String::from_utf8(v).ok());
        let cache_control = header("cache-control");
        let vary = header("vary");
        let www_authenticate = header("www-authenticate");
        let idempotent_replayed =
            header("idempotent-replayed").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let body = read_all(response)?;
        Ok(ItemAnswer {
            status,
            etag,
            cache_control,
            vary,
            www_authenticate,
            idempotent_replayed,
            body,
        })
    }
}

/// Item reads and authorization calls for the request paths (`cache_core::serve`), bounded
/// by this client's timeout. They carry the caller's credentials, never this client's token.
impl Origin for HttpDb {
    fn get_item(&mut self, read: &ItemRead) -> Result<ItemAnswer, Unanswered> {
        self.call(Method::Get, &read.path, &read.headers(), &[])
    }

    fn authorize(&mut self, call: &AuthorizeCall) -> Result<ItemAnswer, Unanswered> {
        self.call(Method::Post, call.path, &call.headers(), &call.body)
    }

    fn write_item(&mut self, write: &ItemWrite) -> Result<ItemAnswer, Unanswered> {
        let method = if write.method == "DELETE" {
            Method::Delete
        } else {
            Method::Put
        };
        self.call(method, &write.path, &write.headers(), &write.body)
    }
}

/// Reads a whole answer body with blocking reads (each bounded by the between-bytes
/// timeout).
fn read_all(response: IncomingResponse) -> Result<Vec<u8>, Unanswered> {
    let body = response
        .consume()
        .map_err(|()| failed("answer body unavailable".into()))?;
    let stream = body
        .stream()
        .map_err(|()| failed("answer body stream unavailable".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                out.extend_from_slice(&chunk);
                if out.len() > MAX_ANSWER_BYTES {
                    return Err(failed(format!(
                        "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
            }
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => {
                return Err(failed(format!("reading the answer failed: {e:?}")));
            }
        }
    }
    drop(stream);
    Ok(out)
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), SendError> {
    let stream = outgoing
        .write()
        .map_err(|()| SendError::retryable("request body stream unavailable"))?;
    for chunk in body.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| SendError::retryable(format!("writing the request failed: {e:?}")))?;
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None)
        .map_err(|e| SendError::retryable(format!("finishing the request failed: {e:?}")))
}

fn read_answer(response: IncomingResponse) -> Result<(u16, Option<String>, Vec<u8>), SendError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok());
    // The read is bounded in time by the between-bytes timeout; a batch answer is small.
    let body = spin_sdk::http::run(response.into_body()).map_err(|e| {
        SendError::retryable(format!(
            "reading the answer failed (status {status}): {e:?}"
        ))
    })?;
    Ok((status, retry_after, body))
}

impl DbApi for HttpDb {
    fn send_batch(&mut self, batch: &BatchRequest) -> Result<BatchResponse, SendError> {
        let body = serde_json::to_vec(batch).map_err(|e| SendError::Permanent {
            reason: format!("batch does not serialize: {e}"),
        })?;
        let (status, retry_after, answer) = self.post(&batch.batch_id, &body)?;
        parse_batch_answer(status, retry_after.as_deref(), &answer)
    }
}
