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
//! # Layout
//! - [`api`]: the route table; item requests into `cache_core::serve`, the DB API as the
//!   core's `Origin`, and the `/admin/*` routes over `cache_core::admin`.
//! - [`respond`]: the core's replies as HTTP responses.
//! - [`metrics`]: counters and `GET /metrics`.
//! - [`deferred`]: work run after the response is sent.

use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{IncomingRequest, OutgoingResponse, Request, ResponseOutparam};
use spin_sdk::http_component;

mod api;
mod deferred;
mod metrics;
mod respond;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let response = match Request::try_from_incoming_request(req).await {
        Ok(req) => api::router().handle_async(req).await,
        Err(e) => respond::error(&cache_core::serve::RequestError::BadRequest(format!(
            "unreadable request: {e}"
        ))),
    };
    let status = *response.status();
    let body = response.body().to_vec();
    match OutgoingResponse::try_from(response) {
        Ok(outgoing) => {
            if let Err(e) = out.set_with_body(outgoing, body).await {
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
