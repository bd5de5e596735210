//! The HTTP gateway component: the cache's front door.
//!
//! This first cut is the thin end of the read and write paths: `GET /healthz` (a KV
//! round trip), `PUT /v1/:ns/:key` storing a JSON value in the `default` store, and
//! `GET /v1/:ns/:key` answering from the store or, on a miss, from the main DB API
//! (`db_api_url`), storing what it fetched.

use spin_sdk::http::{IntoResponse, Method, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

mod admin;

#[http_component]
fn handle(req: Request) -> Response {
    let mut router = Router::new();
    router.get("/healthz", healthz);
    router.get_async("/v1/:ns/:key", get_item);
    router.put("/v1/:ns/:key", put_item);
    admin::register(&mut router);
    router.any("/*", |_: Request, _: Params| {
        Ok::<_, anyhow::Error>(error(404, "not_found", "no such route"))
    });
    router.handle(req)
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": message });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn json(status: u16, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .build()
}

fn kv_key(params: &Params) -> Option<String> {
    Some(format!("c:{}:{}", params.get("ns")?, params.get("key")?))
}

fn healthz(_: Request, _: Params) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default()?;
    store.set("health:probe", b"ok")?;
    let ok = store.get("health:probe")?.as_deref() == Some(b"ok".as_slice());
    Ok(if ok {
        json(200, br#"{"status":"ok"}"#.to_vec())
    } else {
        error(503, "kv_unavailable", "key-value round trip failed")
    })
}

fn put_item(req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let Some(key) = kv_key(&params) else {
        return Ok(error(400, "bad_key", "missing namespace or key"));
    };
    if serde_json::from_slice::<serde_json::Value>(req.body()).is_err() {
        return Ok(error(400, "bad_json", "body is not valid JSON"));
    }
    Store::open_default()?.set(&key, req.body())?;
    Ok(json(202, br#"{"status":"accepted"}"#.to_vec()))
}

async fn get_item(_: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let (Some(ns), Some(item)) = (params.get("ns"), params.get("key")) else {
        return Ok(error(400, "bad_key", "missing namespace or key"));
    };
    let key = format!("c:{ns}:{item}");
    let store = Store::open_default()?;
    if let Some(value) = store.get(&key)? {
        return Ok(json(200, value));
    }
    let base = spin_sdk::variables::get("db_api_url")?;
    let url = format!("{}/v1/items/{ns}/{item}", base.trim_end_matches('/'));
    let origin: Response = match spin_sdk::http::send(Request::new(Method::Get, url)).await {
        Ok(r) => r,
        Err(_) => return Ok(error(502, "origin_unreachable", "the DB API could not be reached")),
    };
    match *origin.status() {
        200 => {
            store.set(&key, origin.body())?;
            Ok(json(200, origin.body().to_vec()))
        }
        404 => Ok(error(404, "not_found", "no such item")),
        _ => Ok(error(502, "origin_error", "the DB API answered with an error")),
    }
}
