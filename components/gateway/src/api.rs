//! The route table, and the glue from HTTP requests to `cache_core::serve` (items) and
//! `cache_core::admin` (`/admin/*`).
//!
//! Item routes take every method and dispatch here, so an unsupported method gets a JSON
//! 405 with `Allow` rather than the router's bare default; an item path in its exact form
//! is answered without building the route table ([`handle`]). The configuration is read once
//! per request ([`settings`]); an invalid variable is a 500 naming it.
//! What belongs to HTTP stays here: the exact path, the method, the headers, the media type
//! and `Content-Length` of a write, and who the caller is for the rate limits (for now the
//! client address Spin reports, [`client_key`]). Everything after that is the core's.

use cache_core::admin;
use cache_core::config::CacheConfig;
use cache_core::counters;
use cache_core::key::CacheKey;
use cache_core::limit;
use cache_core::rollout;
use cache_core::serve::invalidate;
use cache_core::serve::origin::{
    AuthorizeCall, ItemAnswer, ItemRead, ItemWrite, Origin, Unanswered,
};
use cache_core::serve::{self, watch, GetRequest, Op, Reply, RequestError, WriteRequest};
use cache_core::store::KvStore;
use spin_adapters::db::HttpDb;
use spin_adapters::env::{self, WallClock};
use spin_adapters::kv::Stores;
use spin_sdk::http::{Method, Params, Request, Response, Router};

use crate::head::{ItemHttp, ReadHead};
use crate::{deferred, metrics, pages, respond, settings, CLIENT_ADDR};

const ITEM_METHODS: &str = "GET, PUT, PATCH, DELETE";

/// Answers a request. An item path in its exact form, `/v1/{ns}/{key}` with two non-empty
/// segments, is one the route table gives to [`item`] with those segments as `ns` and `key`
/// (no other route matches it, and the table's own match captures each segment up to the
/// next `/`), so it goes there directly: building the table parses every route pattern, on
/// every request, about 5% of a cache hit's instructions. Any other path goes through the
/// table.
pub async fn handle(req: Request) -> Response {
    match item_path(req.path()) {
        Some((ns, raw_key)) => item_response(&req, ns, raw_key),
        None => router().handle_async(req).await,
    }
}

/// Answers a read of an item taken straight from `wasi:http` ([`ReadHead`]), as [`handle`]
/// answers the same request converted.
pub fn read(head: &ReadHead) -> Response {
    match item_path(head.path()) {
        Some((ns, raw_key)) => item_response(head, ns, raw_key),
        None => respond::error(&RequestError::NoRoute),
    }
}

/// `ns` and the raw key of an exact item path.
pub(crate) fn item_path(path: &str) -> Option<(&str, &str)> {
    let (ns, raw_key) = path.strip_prefix("/v1/")?.split_once('/')?;
    (!ns.is_empty() && !raw_key.is_empty() && !raw_key.contains('/')).then_some((ns, raw_key))
}

/// The gateway's routes.
pub fn router() -> Router {
    let mut router = Router::new();
    router.any("/healthz", healthz);
    router.any("/metrics", |req: Request, params: Params| {
        match req.method() {
            Method::Get => metrics::handle(req, params),
            _ => Ok(respond::error(&RequestError::MethodNotAllowed("GET"))),
        }
    });
    router.any_async("/v1/:ns/:key", item);
    router.any(invalidate::INVALIDATE_PATH, announced);
    admin_routes(&mut router);
    pages::routes(&mut router);
    router.any("/*", |_: Request, _: Params| {
        Ok::<_, anyhow::Error>(respond::error(&RequestError::NoRoute))
    });
    router
}

/// `POST /hooks/invalidate`: the DB API's signed announcement of changed items
/// ([`invalidate::announced`]).
fn announced(req: Request, _: Params) -> anyhow::Result<Response> {
    if *req.method() != Method::Post {
        return Ok(respond::error(&RequestError::MethodNotAllowed("POST")));
    }
    let reply = settings::get()
        .map_err(RequestError::Config)
        .and_then(|cfg| {
            let mut store = Stores::open(&cfg).map_err(RequestError::StoreUnavailable)?;
            let signature = req
                .header(invalidate::SIGNATURE_HEADER)
                .and_then(|v| v.as_str());
            invalidate::announced(
                &mut store,
                &mut WallClock,
                &cfg,
                &client_key(&req),
                signature,
                req.body(),
            )
        })
        .unwrap_or_else(|e| e.reply());
    Ok(respond::http(reply))
}

fn healthz(req: Request, _: Params) -> anyhow::Result<Response> {
    if *req.method() != Method::Get {
        return Ok(respond::error(&RequestError::MethodNotAllowed("GET")));
    }
    let check = || -> Result<(), RequestError> {
        let cfg = settings::get()?;
        let mut kv = Stores::open(&cfg)?;
        kv.set("m:health", b"ok")?;
        match kv.get("m:health")?.as_deref() {
            Some(b"ok") => Ok(()),
            _ => Err(RequestError::Internal("key-value round trip failed".into())),
        }
    };
    Ok(match check() {
        Ok(()) => respond::json(200, r#"{"status":"ok"}"#),
        Err(e) => respond::error(&e),
    })
}

async fn item(req: Request, params: Params) -> anyhow::Result<Response> {
    let ns = params.get("ns").unwrap_or("");
    let raw_key = params.get("key").unwrap_or("");
    Ok(item_response(&req, ns, raw_key))
}

fn item_response(req: &impl ItemHttp, ns: &str, raw_key: &str) -> Response {
    match item_inner(req, ns, raw_key) {
        Ok(resp) => resp,
        Err(e) => respond::error(&e),
    }
}

fn item_inner(req: &impl ItemHttp, ns: &str, raw_key: &str) -> Result<Response, RequestError> {
    // The router ignores leading and trailing slashes, so `/v1/ns/a/` would address the key
    // `a`, while a client that forgot to encode the key `a/` meant that one. Only the exact
    // form names an item.
    if req.path() != format!("/v1/{ns}/{raw_key}") {
        return Err(RequestError::NoRoute);
    }
    let method = req.method().clone();
    if !matches!(
        method,
        Method::Get | Method::Put | Method::Patch | Method::Delete
    ) {
        return Err(RequestError::MethodNotAllowed(ITEM_METHODS));
    }
    let key = CacheKey::from_path(ns, raw_key)?;
    let cfg = settings::get()?;
    let header = |name: &str| req.header(name).map(str::to_owned);
    let authorization = header("authorization");
    let rate_key = client_key(req);
    let rand = env::random_u64();
    let outcome = if method == Method::Get {
        let wait = long_poll_wait(req.query())?;
        let mut kv = Stores::open(&cfg)?;
        let get = GetRequest {
            key,
            authorization,
            if_none_match: header("if-none-match"),
            rate_key,
        };
        watch::get_waiting(
            &mut kv,
            &mut DbOrigin(&cfg),
            &mut WallClock,
            rand,
            &cfg,
            &get,
            wait,
        )
    } else {
        let write = WriteRequest {
            key,
            op: write_op(&method, req)?,
            if_match: header("if-match"),
            if_none_match: header("if-none-match"),
            authorization,
            rate_key,
            idempotency_key: header("idempotency-key"),
        };
        let mut kv = Stores::open(&cfg)?;
        serve::write(
            &mut kv,
            &mut DbOrigin(&cfg),
            &mut WallClock,
            rand,
            &cfg,
            &write,
        )
    };
    metrics::record(&outcome.events, cfg.metrics_hit_sample);
    deferred::defer(outcome.deferred);
    Ok(respond::reply(outcome.reply))
}

/// The long-poll wait a read's query asks for (`wait=N`, seconds; none: zero). Any other
/// parameter is refused, so that a misspelt one is not silently ignored.
fn long_poll_wait(query: &str) -> Result<std::time::Duration, RequestError> {
    let mut wait = std::time::Duration::ZERO;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("wait", value)) => wait = watch::parse_wait(value)?,
            _ => {
                return Err(RequestError::BadRequest(format!(
                    "unknown query parameter {pair:?} (an item read takes only wait=N)"
                )))
            }
        }
    }
    Ok(wait)
}

/// The caller's rate key: its address as Spin reported it (the handler has put Spin's own
/// value in place of any the client sent).
fn client_key(req: &impl ItemHttp) -> String {
    limit::client_key(req.header(CLIENT_ADDR))
}

/// The write a `PUT`, `PATCH` or `DELETE` asks for, after the HTTP checks of its body: the
/// declared media type, and a `Content-Length` (or chunked transfer) for a body.
fn write_op(method: &Method, req: &impl ItemHttp) -> Result<Op, RequestError> {
    let content_type = req.header("content-type").unwrap_or("");
    let op = match method {
        Method::Put if is_json(content_type) => Op::Put(Vec::new()),
        Method::Put => return Err(RequestError::UnsupportedMediaType("application/json")),
        Method::Patch if is_merge_patch(content_type) => Op::Patch(Vec::new()),
        Method::Patch => {
            return Err(RequestError::UnsupportedMediaType(
                "application/merge-patch+json or application/json",
            ))
        }
        _ => return Ok(Op::Delete),
    };
    let declared = req
        .header("content-length")
        .map(|v| v.trim().parse::<u64>());
    let chunked = req.header("transfer-encoding").is_some();
    match declared {
        None if !chunked && req.body().is_empty() => return Err(RequestError::LengthRequired),
        Some(Err(_)) => {
            return Err(RequestError::BadRequest("invalid Content-Length".into()));
        }
        _ => {}
    }
    let body = req.body().to_vec();
    Ok(match op {
        Op::Put(_) => Op::Put(body),
        _ => Op::Patch(body),
    })
}

/// `application/json` or any `+json` type, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A `PATCH` body is an RFC 7386 merge patch: `application/merge-patch+json`, or plain
/// `application/json`. Other `+json` types are other patch formats (a JSON Patch,
/// `application/json-patch+json`, is a list of operations); applying one as a merge patch
/// would replace the value with the operations, so they are refused.
fn is_merge_patch(content_type: &str) -> bool {
    matches!(
        essence(content_type).as_str(),
        "application/merge-patch+json" | "application/json"
    )
}

/// The media type without parameters, lowercased.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The DB API's item and authorization endpoints for the request paths: one `HttpDb` call
/// each, bounded by `origin_timeout` and sent without the flush's token (the core sends the
/// caller's `Authorization`); item reads are counted and timed for `/metrics`.
pub struct DbOrigin<'a>(pub &'a CacheConfig);

impl DbOrigin<'_> {
    fn db(&self) -> Result<HttpDb, Unanswered> {
        HttpDb::new(&self.0.db_api_url, None, self.0.origin_timeout)
            .map_err(|e| Unanswered::Failed(e.to_string()))
    }
}

impl Origin for DbOrigin<'_> {
    fn get_item(&mut self, read: &ItemRead) -> Result<ItemAnswer, Unanswered> {
        let mut db = self.db()?;
        let started = env::now();
        let result = db.get_item(read);
        metrics::inc(counters::ORIGIN_FETCHES);
        metrics::add(
            counters::ORIGIN_FETCH_MS,
            env::now().0.saturating_sub(started.0),
        );
        result
    }

    fn authorize(&mut self, call: &AuthorizeCall) -> Result<ItemAnswer, Unanswered> {
        self.db()?.authorize(call)
    }

    fn write_item(&mut self, write: &ItemWrite) -> Result<ItemAnswer, Unanswered> {
        self.db()?.write_item(write)
    }
}

/// The `/admin/*` routes: `cache_core::admin` behind a method check, the configuration, the
/// admin budget of the client address and the bearer token ([`admin::guarded`]). Each route
/// takes every method and checks it itself: the catch-all route would otherwise answer a
/// wrong method with `404` instead of `405` and `Allow`. Admin errors are not counted in
/// `/metrics`.
fn admin_routes(router: &mut Router) {
    router.any("/admin/flush", |req: Request, _: Params| {
        admin_route(&req, (Method::Post, "POST"), admin_flush)
    });
    router.any("/admin/stats", |req: Request, _: Params| {
        admin_route(&req, (Method::Get, "GET"), |_, store| {
            admin::stats(store, env::now(), req.query())
        })
    });
    router.any("/admin/purge", |req: Request, _: Params| {
        admin_route(&req, (Method::Post, "POST"), |cfg, store| {
            invalidate::purge(store, &mut WallClock, cfg, req.body())
        })
    });
    router.any("/admin/rollout", |req: Request, _: Params| {
        // Two methods: the one checked is the request's if it is POST, else GET.
        let post = *req.method() == Method::Post;
        let method = if post { Method::Post } else { Method::Get };
        admin_route(&req, (method, "GET, POST"), |cfg, store| {
            if post {
                rollout::change::apply(store, cfg, env::now(), req.body())
            } else {
                rollout::change::report(store, cfg, env::now())
            }
        })
    });
    router.any("/admin/shadow", |req: Request, _: Params| {
        admin_route(&req, (Method::Get, "GET"), |cfg, store| {
            rollout::evidence::report(store, cfg, env::now())
        })
    });
    router.any("/admin/history", |req: Request, _: Params| {
        admin_route(&req, (Method::Get, "GET"), |_, store| admin::history(store))
    });
    router.any("/admin/dlq", |req: Request, _: Params| {
        admin_route(&req, (Method::Get, "GET"), |_, store| {
            admin::dead_letters(store, req.query())
        })
    });
    router.any("/admin/dlq/:stamp/retry", |req: Request, p: Params| {
        let stamp = p.get("stamp").unwrap_or_default();
        admin_route(&req, (Method::Post, "POST"), |_, store| {
            admin::retry(store, stamp)
        })
    });
    router.any("/admin/dlq/:stamp", |req: Request, p: Params| {
        let stamp = p.get("stamp").unwrap_or_default();
        admin_route(&req, (Method::Delete, "DELETE"), |_, store| {
            admin::discard(store, stamp)
        })
    });
}

/// Checks the method, loads the configuration, opens the store, then hands the rest to
/// [`admin::guarded`] (rate limit, token, `route`), and renders the reply.
fn admin_route(
    req: &Request,
    (method, allow): (Method, &'static str),
    route: impl FnOnce(&CacheConfig, &mut Stores) -> Result<Reply, RequestError>,
) -> anyhow::Result<Response> {
    let reply = if *req.method() == method {
        let guarded = |cfg: std::rc::Rc<CacheConfig>| -> Result<Reply, RequestError> {
            let mut store = admin_store(&cfg)?;
            let auth = req.header("authorization").and_then(|v| v.as_str());
            Ok(admin::guarded(
                &mut store,
                env::now(),
                &cfg,
                &client_key(req),
                auth,
                |store| route(&cfg, store),
            ))
        };
        settings::get()
            .map_err(RequestError::Config)
            .and_then(guarded)
            .unwrap_or_else(|e| e.reply())
    } else {
        RequestError::MethodNotAllowed(allow).reply()
    };
    Ok(respond::http(reply))
}

fn admin_store(cfg: &CacheConfig) -> Result<Stores, RequestError> {
    Stores::open(cfg).map_err(RequestError::StoreUnavailable)
}

fn admin_flush(cfg: &CacheConfig, store: &mut Stores) -> Result<Reply, RequestError> {
    let mut db = HttpDb::from_config(cfg).map_err(|e| RequestError::DbConfig(e.to_string()))?;
    let owner = format!("admin-{:016x}", env::random_u64());
    let rand = env::random_u64();
    admin::flush(store, &mut db, &mut WallClock, rand, &owner, cfg)
}
