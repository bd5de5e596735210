//! The HTTP trigger: accept connections, route, run one fresh instance per request.
//!
//! Behaviour follows `spin up` (Spin's `crates/trigger-http`): each connection is served
//! as HTTP/1.1 or, when it opens with the HTTP/2 preface, as HTTP/2 (h2c with prior
//! knowledge); accepted sockets keep the operating system's default, so Nagle's
//! algorithm stays on unless [`ServeOptions::tcp_nodelay`] asks otherwise.
//! `/.well-known/spin/health` answers `OK` and `/.well-known/spin/info` Spin's JSON
//! description (name, and version when set), an unmatched path is an empty 404. A
//! component sees the client's headers, then Spin's `spin-*` headers appended after them
//! (full URL, path info, matched route, base path, raw component route, component route,
//! client address, `:name` captures): a client that sends `spin-client-addr` itself
//! leaves two values, its own first. A request with a header value that is not UTF-8 is
//! an empty 500 before the component runs, and a component that traps or returns no
//! response yields an empty 500. A routed request without a usable authority (no `Host`
//! and no authority in the target, a `Host` that is not an authority, or one that
//! contradicts the request target) is not answered: Spin's server fails the request and
//! hyper closes the connection (HTTP/2: resets the stream).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::app::{App, Entry, HttpTarget};
use crate::routes::{RouteMatch, WELL_KNOWN_PREFIX};
use crate::state::HostState;

/// Serving options.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Print one line per request to stderr.
    pub log_requests: bool,
    /// Set `TCP_NODELAY` on accepted connections. Spin never does (the default here too),
    /// so a response written in several small pieces can wait for the client's delayed
    /// ACK on a keep-alive connection; `true` sends each piece at once.
    pub tcp_nodelay: bool,
}

fn full(body: impl Into<Bytes>) -> HyperOutgoingBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn empty(status: StatusCode) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// Socket options for an accepted connection: `TCP_NODELAY` only when asked for (Spin's
/// server sets none).
fn apply_socket_options(
    stream: &tokio::net::TcpStream,
    options: &ServeOptions,
) -> std::io::Result<()> {
    if options.tcp_nodelay {
        stream.set_nodelay(true)?;
    }
    Ok(())
}

/// Accepts connections on `listener` until `shutdown` completes.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client_addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                app.logger.host(&format!("accept failed: {e}"));
                continue;
            }
        };
        if let Err(e) = apply_socket_options(&stream, &options) {
            app.logger.host(&format!("cannot set TCP_NODELAY: {e}"));
        }
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { handle(app, req, client_addr, options).await }
            });
            // HTTP/1.1 (keep-alive on) or HTTP/2 with prior knowledge, as Spin's server.
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Handles one request end to end. An error means the request is refused unanswered (hyper
/// then closes the connection), as Spin does for a request without a usable authority.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    client_addr: SocketAddr,
    options: ServeOptions,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (response, target) = route_and_run(&app, req, client_addr).await;
    let status = match &response {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) => {
            app.logger
                .host(&format!("Error processing request for {path}: {e:#}"));
            "refused".to_string()
        }
    };
    if options.log_requests {
        app.logger.host(&format!(
            "{method} {path} -> {status} [{target}] {:.1}ms",
            started.elapsed().as_secs_f64() * 1000.0
        ));
    }
    response
}

/// The request's authority as Spin's HTTP trigger determines it: the `Host` header or the
/// request target's authority, which must agree when both are present.
fn authority(req: &Request<Incoming>) -> anyhow::Result<Authority> {
    let header = req
        .headers()
        .get(http::header::HOST)
        .map(|h| -> anyhow::Result<Authority> {
            let text = h.to_str().context("'Host' header is not valid UTF-8")?;
            text.parse()
                .context("'Host' header contains an invalid authority")
        })
        .transpose()?;
    match (header, req.uri().authority().cloned()) {
        (None, None) => anyhow::bail!("no 'Host' header present in request"),
        (Some(a), None) | (None, Some(a)) => Ok(a),
        (Some(a), Some(b)) if a == b => Ok(a),
        (Some(_), Some(_)) => {
            anyhow::bail!("authority in 'Host' header does not match authority in URI")
        }
    }
}

async fn route_and_run(
    app: &Arc<App>,
    req: Request<Incoming>,
    client_addr: SocketAddr,
) -> (anyhow::Result<Response<HyperOutgoingBody>>, String) {
    let path = req.uri().path().to_string();
    if let Some(well_known) = path.strip_prefix(WELL_KNOWN_PREFIX) {
        let response = match well_known {
            "health" => Response::new(full("OK")),
            "info" => {
                let mut r = Response::new(full(app_info(app)));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            _ => empty(StatusCode::NOT_FOUND),
        };
        return (Ok(response), "spin".into());
    }
    let Some(route) = app.router.route(&path) else {
        return (Ok(empty(StatusCode::NOT_FOUND)), "no route".into());
    };
    let authority = match authority(&req) {
        Ok(a) => a,
        Err(e) => return (Err(e), "refused".into()),
    };
    let (response, target) = match app.http_targets.get(route.trigger) {
        Some(HttpTarget::Static(sr)) => (static_response(sr), "static".into()),
        Some(HttpTarget::Component(id)) => {
            let response = match run_component(app, id, req, &route, &authority, client_addr).await
            {
                Ok(r) => r,
                Err(e) => {
                    app.logger.host(&format!(
                        "Error processing request for component '{id}': {e:#}"
                    ));
                    empty(StatusCode::INTERNAL_SERVER_ERROR)
                }
            };
            (response, id.clone())
        }
        None => (empty(StatusCode::INTERNAL_SERVER_ERROR), "?".into()),
    };
    (Ok(response), target)
}

/// Spin's `/.well-known/spin/info` body: pretty-printed JSON with the application's name
/// and, when the manifest sets a non-empty one, its version.
fn app_info(app: &App) -> String {
    #[derive(serde::Serialize)]
    struct AppInfo<'a> {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
    }
    let application = &app.manifest.application;
    let info = AppInfo {
        name: &application.name,
        version: application.version.as_deref().filter(|v| !v.is_empty()),
    };
    serde_json::to_string_pretty(&info).unwrap_or_default()
}

fn static_response(sr: &crate::manifest::StaticResponse) -> Response<HyperOutgoingBody> {
    let mut response = match &sr.body {
        Some(body) => Response::new(full(body.clone())),
        None => empty(StatusCode::OK),
    };
    *response.status_mut() = sr
        .status_code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    for (k, v) in &sr.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

/// Spin's request headers for a matched route.
pub fn spin_headers(
    full_url: &str,
    route: &RouteMatch,
    client_addr: SocketAddr,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("spin-path-info".to_string(), route.path_info.clone()),
        ("spin-full-url".to_string(), full_url.to_string()),
        ("spin-matched-route".to_string(), route.based_route.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        (
            "spin-raw-component-route".to_string(),
            route.raw_route.clone(),
        ),
        (
            "spin-component-route".to_string(),
            route.component_route().to_string(),
        ),
        ("spin-client-addr".to_string(), client_addr.to_string()),
    ];
    for (name, value) in &route.captures {
        // Spin derives header names from `SPIN_PATH_MATCH_<NAME>`: `_` becomes `-`.
        let name = name.to_ascii_lowercase().replace('_', "-");
        headers.push((format!("spin-path-match-{name}"), value.clone()));
    }
    headers
}

async fn run_component(
    app: &Arc<App>,
    id: &str,
    mut req: Request<Incoming>,
    route: &RouteMatch,
    authority: &Authority,
    client_addr: SocketAddr,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let component = app
        .components
        .get(id)
        .ok_or_else(|| anyhow::anyhow!("unknown component '{id}'"))?;
    let Entry::Http(pre) = &component.entry else {
        anyhow::bail!("component '{id}' is not an HTTP component");
    };
    // As Spin: every header value must be UTF-8, or the request fails before the
    // component is instantiated (an empty 500).
    for (name, value) in req.headers() {
        if std::str::from_utf8(value.as_bytes()).is_err() {
            anyhow::bail!("header '{name}' has a value that is not valid UTF-8");
        }
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    // Spin builds `spin-full-url` from the `Host` header's text, or `localhost` when the
    // request has none (an HTTP/2 request, or an absolute-form target without `Host`);
    // the component's request URI keeps the authority determined above.
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let full_url = format!("http://{host}{path_and_query}");
    for (name, value) in spin_headers(&full_url, route, client_addr) {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            req.headers_mut().append(n, v);
        }
    }
    *req.uri_mut() = format!("http://{authority}{path_and_query}").parse()?;

    let mut store = Store::new(&app.engine, HostState::new(component.context.clone()));
    let req = req.map(|body| body.map_err(wasmtime_wasi_http::Error::from));
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let outparam = store.data_mut().http().new_response_outparam(tx)?;
    let proxy = pre.instantiate_async(&mut store).await?;
    let task = tokio::spawn(async move {
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, outparam)
            .await
    });
    match rx.await {
        Ok(response) => {
            let logger = app.logger.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => logger.host(&format!(
                        "Component '{id}' failed after its response started: {e:#}"
                    )),
                    Err(e) => logger.host(&format!("Component '{id}' task failed: {e}")),
                }
            });
            response.map_err(|code| anyhow::anyhow!("guest failed to produce a response: {code:?}"))
        }
        Err(_) => {
            task.await??;
            anyhow::bail!("guest failed to produce a response prior to returning")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_nodelay_is_set_only_when_asked_for() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        for nodelay in [false, true] {
            let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (accepted, _) = listener.accept().await.expect("accept");
            let options = ServeOptions {
                tcp_nodelay: nodelay,
                ..ServeOptions::default()
            };
            apply_socket_options(&accepted, &options).expect("applies");
            assert_eq!(accepted.nodelay().expect("reads the option"), nodelay);
        }
    }
}
