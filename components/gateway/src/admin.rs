//! The `/admin/*` routes: operating the flush from outside.
//!
//! Fermyon Cloud, Akamai and SpinKube run no cron trigger, so the flush must also be reachable
//! over HTTP; and an operator needs to see the buffer and the dead-letter queue. Every route
//! requires `Authorization: Bearer {admin_token}`; with `admin_token` unset they answer `403`
//! (see [`auth`]).
//!
//! | Route | Does |
//! |---|---|
//! | `POST /admin/flush` | `cache_core::tick::tick`: the flush run, then the sweep — what the cron tick does; answers the report |
//! | `GET /admin/stats` | buffered writes and bytes, oldest buffered age, sealed batches, DLQ depth, last flush outcome and time, next retry time |
//! | `GET /admin/dlq` | the dead letters, oldest write first |
//! | `POST /admin/dlq/{stamp}/retry` | puts the write back into the buffer with its original stamp (`409` if only raw text survived) |
//! | `DELETE /admin/dlq/{stamp}` | drops the dead letter for good |
//!
//! A completed flush answers `200` whatever its outcome (`delivered`, `idle`, `retrying`,
//! `backing_off`, `lease_busy`: the body says which); a store failure answers `503`.
//! Errors are JSON `{"error", "message"}`; [`AdminError::status`] is the one mapping to
//! statuses.

mod auth;
mod view;

use cache_core::config::{CacheConfig, ConfigError};
use cache_core::dlq::{self, Discarded, DlqError, Retried};
use cache_core::stamp::Stamp;
use cache_core::state;
use cache_core::store::StoreError;
use cache_core::tick::{self, TickError};
use serde_json::{json, Value};
use spin_adapters::config;
use spin_adapters::db::HttpDb;
use spin_adapters::env::{self, WallClock};
use spin_adapters::kv::SpinKv;
use spin_sdk::http::{Method, Params, Request, Response, Router};

use self::auth::Denied;

/// Adds the `/admin/*` routes to the gateway router.
///
/// Each route takes every method and checks it itself: the gateway's catch-all route would
/// otherwise answer a wrong method with `404` instead of `405` and `Allow`.
pub fn register(router: &mut Router) {
    router.any("/admin/flush", |req: Request, _: Params| {
        handle(&req, (Method::Post, "POST"), run_flush)
    });
    router.any("/admin/stats", |req: Request, _: Params| {
        handle(&req, (Method::Get, "GET"), |_| stats())
    });
    router.any("/admin/dlq", |req: Request, _: Params| {
        handle(&req, (Method::Get, "GET"), |_| list_dlq())
    });
    router.any("/admin/dlq/:stamp/retry", |req: Request, p: Params| {
        handle(&req, (Method::Post, "POST"), |_| retry(p.get("stamp")))
    });
    router.any("/admin/dlq/:stamp", |req: Request, p: Params| {
        handle(&req, (Method::Delete, "DELETE"), |_| {
            discard(p.get("stamp"))
        })
    });
}

/// Why an admin request failed.
#[derive(Debug)]
enum AdminError {
    Config(ConfigError),
    DbConfig(String),
    Denied(Denied),
    Store(StoreError),
    Record(String),
    BadStamp(String),
    NotFound(String),
    NothingToResend(String),
    MethodNotAllowed(&'static str),
}

impl AdminError {
    /// The one place where admin errors become statuses and codes.
    fn status(&self) -> (u16, &'static str) {
        match self {
            AdminError::Config(_) | AdminError::DbConfig(_) => (500, "config_invalid"),
            AdminError::Denied(Denied::Disabled) => (403, "admin_disabled"),
            AdminError::Denied(Denied::BadToken) => (401, "unauthorized"),
            AdminError::Store(_) => (503, "store_unavailable"),
            AdminError::Record(_) => (500, "record_unreadable"),
            AdminError::BadStamp(_) => (400, "bad_stamp"),
            AdminError::NotFound(_) => (404, "not_found"),
            AdminError::NothingToResend(_) => (409, "nothing_to_resend"),
            AdminError::MethodNotAllowed(_) => (405, "method_not_allowed"),
        }
    }

    fn message(&self) -> String {
        match self {
            AdminError::Config(e) => e.to_string(),
            AdminError::DbConfig(m) => m.clone(),
            AdminError::Denied(Denied::Disabled) => {
                "admin routes are disabled: set the admin_token variable".to_owned()
            }
            AdminError::Denied(Denied::BadToken) => {
                "missing or wrong Authorization: Bearer token".to_owned()
            }
            AdminError::Store(e) => e.to_string(),
            AdminError::Record(m)
            | AdminError::BadStamp(m)
            | AdminError::NotFound(m)
            | AdminError::NothingToResend(m) => m.clone(),
            AdminError::MethodNotAllowed(allow) => format!("allowed methods: {allow}"),
        }
    }

    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let mut builder = Response::builder();
        builder
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store");
        if status == 401 {
            builder.header("www-authenticate", "Bearer");
        }
        if let AdminError::MethodNotAllowed(allow) = &self {
            builder.header("allow", *allow);
        }
        builder
            .body(json!({ "error": code, "message": self.message() }).to_string())
            .build()
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}

impl From<DlqError> for AdminError {
    fn from(e: DlqError) -> Self {
        match e {
            DlqError::Store(e) => AdminError::Store(e),
            DlqError::Record(e) => AdminError::Record(e.to_string()),
        }
    }
}

/// Checks the method, loads the configuration, checks the token, runs `route`, and renders
/// the result.
fn handle(
    req: &Request,
    (method, allow): (Method, &'static str),
    route: impl FnOnce(&CacheConfig) -> Result<(u16, Value), AdminError>,
) -> anyhow::Result<Response> {
    if *req.method() != method {
        return Ok(AdminError::MethodNotAllowed(allow).into_response());
    }
    let result = config::load().map_err(AdminError::Config).and_then(|cfg| {
        auth::check(req, cfg.admin_token.as_deref()).map_err(AdminError::Denied)?;
        route(&cfg)
    });
    Ok(match result {
        Ok((status, body)) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(body.to_string())
            .build(),
        Err(e) => e.into_response(),
    })
}

fn run_flush(cfg: &CacheConfig) -> Result<(u16, Value), AdminError> {
    let mut db = HttpDb::from_config(cfg).map_err(|e| AdminError::DbConfig(e.to_string()))?;
    let mut store = SpinKv::open_configured()?;
    let owner = format!("admin-{:016x}", env::random_u64());
    let rand = env::random_u64();
    match tick::tick(&mut store, &mut db, &mut WallClock, rand, &owner, cfg) {
        Ok(report) => Ok((200, view::flush(&report.flush, Some(&report.sweep)))),
        Err(TickError::Flush(e)) => Err(AdminError::Store(StoreError::Other(e))),
        Err(TickError::Sweep(e)) => Err(AdminError::Store(e)),
    }
}

fn stats() -> Result<(u16, Value), AdminError> {
    let mut store = SpinKv::open_configured()?;
    let stats = state::stats(&mut store, env::now())?;
    Ok((200, view::stats(&stats)))
}

fn list_dlq() -> Result<(u16, Value), AdminError> {
    let mut store = SpinKv::open_configured()?;
    Ok((200, view::dead_letters(&dlq::list(&mut store)?)))
}

fn stamp(raw: Option<&str>) -> Result<Stamp, AdminError> {
    let raw = raw.unwrap_or_default();
    Stamp::parse(raw).map_err(|e| AdminError::BadStamp(format!("{raw:?}: {e}")))
}

fn retry(raw: Option<&str>) -> Result<(u16, Value), AdminError> {
    let stamp = stamp(raw)?;
    let mut store = SpinKv::open_configured()?;
    match dlq::retry(&mut store, stamp)? {
        Retried::Requeued => Ok((
            200,
            json!({ "stamp": stamp.to_string(), "status": "requeued" }),
        )),
        Retried::NotFound => Err(AdminError::NotFound(format!("no dead letter {stamp}"))),
        Retried::NothingToResend => Err(AdminError::NothingToResend(format!(
            "dead letter {stamp} holds only an unreadable record; discard it instead"
        ))),
    }
}

fn discard(raw: Option<&str>) -> Result<(u16, Value), AdminError> {
    let stamp = stamp(raw)?;
    let mut store = SpinKv::open_configured()?;
    match dlq::discard(&mut store, stamp)? {
        Discarded::Removed => Ok((
            200,
            json!({ "stamp": stamp.to_string(), "status": "discarded" }),
        )),
        Discarded::NotFound => Err(AdminError::NotFound(format!("no dead letter {stamp}"))),
    }
}
