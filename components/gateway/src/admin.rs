//! The `/admin/*` routes: `cache_core::admin` behind a method check, the configuration and
//! the bearer token.
//!
//! Each route takes every method and checks it itself: the gateway's catch-all route would
//! otherwise answer a wrong method with `404` instead of `405` and `Allow`. The routes, what
//! they do and their statuses are documented in `cache_core::admin`. Admin errors are not
//! counted in `/metrics`.

use cache_core::admin;
use cache_core::config::CacheConfig;
use cache_core::serve::{Reply, RequestError};
use spin_adapters::db::HttpDb;
use spin_adapters::env::{self, WallClock};
use spin_adapters::{config, kv::SpinKv};
use spin_sdk::http::{Method, Params, Request, Response, Router};

use crate::respond;

/// Adds the `/admin/*` routes to the gateway router.
pub fn register(router: &mut Router) {
    router.any("/admin/flush", |req: Request, _: Params| {
        handle(&req, (Method::Post, "POST"), flush)
    });
    router.any("/admin/stats", |req: Request, _: Params| {
        handle(&req, (Method::Get, "GET"), |_| {
            admin::stats(&mut store()?, env::now())
        })
    });
    router.any("/admin/dlq", |req: Request, _: Params| {
        handle(&req, (Method::Get, "GET"), |_| {
            admin::dead_letters(&mut store()?)
        })
    });
    router.any("/admin/dlq/:stamp/retry", |req: Request, p: Params| {
        let stamp = p.get("stamp").unwrap_or_default();
        handle(&req, (Method::Post, "POST"), |_| {
            admin::retry(&mut store()?, stamp)
        })
    });
    router.any("/admin/dlq/:stamp", |req: Request, p: Params| {
        let stamp = p.get("stamp").unwrap_or_default();
        handle(&req, (Method::Delete, "DELETE"), |_| {
            admin::discard(&mut store()?, stamp)
        })
    });
}

/// Checks the method, loads the configuration, checks the token, runs `route`, and renders
/// the result.
fn handle(
    req: &Request,
    (method, allow): (Method, &'static str),
    route: impl FnOnce(&CacheConfig) -> Result<Reply, RequestError>,
) -> anyhow::Result<Response> {
    let result = if *req.method() == method {
        config::load()
            .map_err(RequestError::Config)
            .and_then(|cfg| {
                let auth = req.header("authorization").and_then(|v| v.as_str());
                admin::authorize(auth, cfg.admin_token.as_deref())?;
                route(&cfg)
            })
    } else {
        Err(RequestError::MethodNotAllowed(allow))
    };
    Ok(respond::http(result.unwrap_or_else(|e| e.reply())))
}

fn store() -> Result<SpinKv, RequestError> {
    SpinKv::open_configured().map_err(RequestError::StoreUnavailable)
}

fn flush(cfg: &CacheConfig) -> Result<Reply, RequestError> {
    let mut db = HttpDb::from_config(cfg).map_err(|e| RequestError::DbConfig(e.to_string()))?;
    let mut store = store()?;
    let owner = format!("admin-{:016x}", env::random_u64());
    let rand = env::random_u64();
    admin::flush(&mut store, &mut db, &mut WallClock, rand, &owner, cfg)
}
