//! The HTTP gateway component: the cache's front door.
//!
//! Reads are served from the Spin key-value store with TTL, stale-while-revalidate,
//! stale-if-error and negative caching, filling misses from the main DB API; writes update
//! the cache at once (read-your-writes) and are recorded in the durable write buffer that the
//! flush component delivers. Every rule lives in `cache-core` (`cache_core::serve` tells the
//! story of one request); this crate parses HTTP into typed requests, performs the I/O and
//! maps the core's replies to HTTP.
//!
//! # Why a streaming handler
//!
//! A Spin component instance lives for one request and has no background tasks. To refresh
//! a stale entry "without a later client paying for it", the handler is the native
//! `wasi:http` form (request + response outparam): it sends the complete response first,
//! closes the body, and only then runs the deferred work queued while handling (see
//! [`deferred`]): revalidating stale entries and adding this request's metrics to the store.
//! The client has its whole answer before the origin is asked.
//!
//! # The client address
//!
//! Rate limits count anonymous callers and every admin request per client address, which
//! Spin passes in the `spin-client-addr` request header. Spin (`crates/trigger-http`,
//! `prepare_request_headers`) appends its own headers after the client's: a client that
//! sends `spin-client-addr` itself reaches the component with two values, its own first and
//! Spin's last. [`client_addr`] takes the last, so a client cannot choose the address it is
//! counted under.
//!
//! # Layout
//! - [`api`]: the route table; item requests into `cache_core::serve`, the DB API as the
//!   core's `Origin`, and the `/admin/*` routes over `cache_core::admin`.
//! - [`head`]: what an item route reads of a request; an item read taken straight from
//!   `wasi:http`, without spin-sdk's conversion.
//! - [`respond`]: the core's replies as HTTP responses.
//! - [`metrics`]: counters and `GET /metrics`.
//! - [`deferred`]: work run after the response is sent.
//! - [`settings`]: the request's configuration, read once.
//! - [`pages`]: the demo and dashboard pages and their assets, compiled in.

use futures::SinkExt;
use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{IncomingRequest, OutgoingResponse, Request, ResponseOutparam};
use spin_sdk::http_component;

mod api;
mod deferred;
mod head;
mod metrics;
mod pages;
mod respond;
mod settings;

/// Bodies up to this size are written, and the body finished, before the response is handed
/// to the host, so the host can send head and body in one write.
const ONE_WRITE_BYTES: usize = 32 * 1024;

/// Sends the response. Handing the head over first and writing the body after makes the host
/// send them in two writes; on a connection without `TCP_NODELAY` (Spin never sets it) the
/// second then waits for the client's delayed ACK, 20–40 ms on every keep-alive request. A
/// small body therefore goes into the body stream first (the host buffers it); a larger one
/// is streamed after the head, where that cost is small beside its transfer.
async fn send(
    out: ResponseOutparam,
    response: OutgoingResponse,
    body: Vec<u8>,
) -> Result<(), String> {
    if body.len() > ONE_WRITE_BYTES {
        return out
            .set_with_body(response, body)
            .await
            .map_err(|e| e.to_string());
    }
    let mut sink = response.take_body();
    let sent = if body.is_empty() {
        Ok(())
    } else {
        sink.send(body).await
    };
    drop(sink);
    out.set(response);
    sent.map_err(|e| e.to_string())
}

/// The header Spin reports the client's address in (`ip:port`).
pub const CLIENT_ADDR: &str = "spin-client-addr";

/// The client address Spin itself reported: the last `spin-client-addr` value (the module
/// docs say why). spin-sdk's `Request` keeps one value per header name, so the handler puts
/// this one there explicitly rather than relying on which value the conversion keeps.
fn client_addr(req: &IncomingRequest) -> Option<String> {
    let values = req.headers().get(CLIENT_ADDR);
    values
        .last()
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    settings::begin();
    // A read's head answers a header named twice with its last value: for
    // `spin-client-addr`, Spin's own.
    let response = if let Some(head) = head::ReadHead::of(&req) {
        api::read(&head)
    } else {
        let client = client_addr(&req);
        match Request::try_from_incoming_request(req).await {
            Ok(mut req) => {
                if let Some(addr) = client {
                    req.set_header(CLIENT_ADDR, addr);
                }
                api::handle(req).await
            }
            Err(e) => respond::error(&cache_core::serve::RequestError::BadRequest(format!(
                "unreadable request: {e}"
            ))),
        }
    };
    let status = *response.status();
    let body = response.body().to_vec();
    match OutgoingResponse::try_from(response) {
        Ok(outgoing) => {
            if let Err(e) = send(out, outgoing, body).await {
                eprintln!("gateway: could not send the response body: {e}");
            }
        }
        Err(e) => {
            eprintln!("gateway: could not build the response ({status}): {e}");
            return;
        }
    }
    deferred::run_all().await;
}
