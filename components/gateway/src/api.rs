//! The route table, and the glue from HTTP requests to the read and write paths.
//!
//! Item routes take every method and dispatch here, so an unsupported method gets a JSON
//! 405 with `Allow` rather than the router's bare default. The configuration is read per
//! request (a Spin instance lives for one request); an invalid variable is a 500 naming it.

use cache_core::key::CacheKey;
use cache_core::store::KvStore;
use spin_adapters::{config, kv::SpinKv};
use spin_sdk::http::{Method, Params, Request, Response, Router};

use crate::respond::{self, Error, Result};
use crate::write::Op;
use crate::{admin, metrics, read, write};

const ITEM_METHODS: &str = "GET, PUT, PATCH, DELETE";

/// The gateway's routes.
pub fn router() -> Router {
    let mut router = Router::new();
    router.any("/healthz", healthz);
    router.any("/metrics", |req: Request, params: Params| {
        match req.method() {
            Method::Get => metrics::handle(req, params),
            _ => Ok(respond::error(&Error::MethodNotAllowed("GET"))),
        }
    });
    router.any_async("/v1/:ns/:key", item);
    admin::register(&mut router);
    router.any("/*", |_: Request, _: Params| {
        Ok::<_, anyhow::Error>(respond::error(&Error::NoRoute))
    });
    router
}

fn healthz(req: Request, _: Params) -> anyhow::Result<Response> {
    if *req.method() != Method::Get {
        return Ok(respond::error(&Error::MethodNotAllowed("GET")));
    }
    let check = || -> Result<()> {
        config::load()?;
        let mut kv = SpinKv::open_configured()?;
        kv.set("m:health", b"ok")?;
        match kv.get("m:health")?.as_deref() {
            Some(b"ok") => Ok(()),
            _ => Err(Error::Internal("key-value round trip failed".into())),
        }
    };
    Ok(match check() {
        Ok(()) => respond::json(200, r#"{"status":"ok"}"#),
        Err(e) => respond::error(&e),
    })
}

async fn item(req: Request, params: Params) -> anyhow::Result<Response> {
    Ok(match item_inner(&req, &params).await {
        Ok(resp) => resp,
        Err(e) => respond::error(&e),
    })
}

async fn item_inner(req: &Request, params: &Params) -> Result<Response> {
    let ns = params.get("ns").unwrap_or("");
    let raw_key = params.get("key").unwrap_or("");
    // The router ignores leading and trailing slashes, so `/v1/ns/a/` would address the key
    // `a`, while a client that forgot to encode the key `a/` meant that one. Only the exact
    // form names an item.
    if req.path() != format!("/v1/{ns}/{raw_key}") {
        return Err(Error::NoRoute);
    }
    let op = match req.method() {
        Method::Get => None,
        Method::Put => Some(Op::Put),
        Method::Patch => Some(Op::Patch),
        Method::Delete => Some(Op::Delete),
        _ => return Err(Error::MethodNotAllowed(ITEM_METHODS)),
    };
    let key = CacheKey::from_path(ns, raw_key)?;
    let cfg = config::load()?;
    let auth = req.header("authorization").and_then(|v| v.as_str());
    match op {
        None => {
            let inm = req.header("if-none-match").and_then(|v| v.as_str());
            read::get(&cfg, &key, auth, inm).await
        }
        Some(op) => write::write(&cfg, &key, op, req, auth).await,
    }
}
