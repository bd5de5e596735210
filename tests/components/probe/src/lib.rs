//! Test component: exercises one host feature per route, so the host's behaviour can be
//! checked end to end independently of the product components.
//!
//! - `GET /probe/headers` → the request headers as a JSON object, as the component
//!   receives them: a name with one value maps to it, a name with several to the array of
//!   them in order (spin-sdk's `Request` would keep only the last one).
//! - `GET|PUT|DELETE /probe/kv/:store/:key` → key-value round trip; open errors → 403/404
//!   with the error variant as the body.
//! - `GET /probe/keys/:store` → every key, as a JSON array.
//! - `GET /probe/cas/:store/:key?start=S&meddle=M` → a `wasi:keyvalue` compare-and-swap with
//!   another writer in between: the key is set to `S` (or deleted when `S` is empty), a `cas`
//!   reads it, the Spin store API writes `M` (unless `M` is empty), and the swap writes
//!   `new`. Answers `swap=<ok|cas-failed> value=<final value or -> incremented=<n>`, `n`
//!   being `increment(key + "#n", 2)` twice.
//! - `GET /probe/incr/:store/:key?by=N` → `wasi:keyvalue` `increment(key, N)`: the new
//!   count, or 500 with the error.
//! - `PUT /probe/batch/:store` (body: `key=value` lines) → `wasi:keyvalue/batch` `set-many`;
//!   `DELETE /probe/batch/:store?keys=a,b` → `delete-many`; `GET /probe/batch/:store?keys=a,b`
//!   → `get-many`, as a JSON array of `[key, value or null]` in the order answered. A label
//!   not granted → 403 `access-denied`; a store error → 500 with the error.
//! - `GET /probe/var/:name` → a component variable, or 404/400 with the error.
//! - `GET /probe/outbound?url=U` → outbound GET; 502 with the error when it fails.
//! - `GET /probe/env/:name` → an environment variable.
//! - `GET /probe/print?msg=M` → writes M to stdout and stderr.
//! - `GET /probe/trap` → traps.

use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{IncomingRequest, IntoResponse, Method, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::key_value::{Error as KvError, Store};

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    if req
        .path_with_query()
        .as_deref()
        .unwrap_or("")
        .starts_with("/probe/headers")
    {
        return headers(&req);
    }
    let req = match Request::try_from_incoming_request(req).await {
        Ok(r) => r,
        Err(e) => return Response::new(400, format!("{e:?}")),
    };
    let mut router = Router::new();
    router.get("/probe/kv/:store/:key", kv);
    router.put("/probe/kv/:store/:key", kv);
    router.delete("/probe/kv/:store/:key", kv);
    router.get("/probe/keys/:store", keys);
    router.get("/probe/cas/:store/:key", cas);
    router.get("/probe/incr/:store/:key", incr);
    router.get("/probe/batch/:store", batch);
    router.put("/probe/batch/:store", batch);
    router.delete("/probe/batch/:store", batch);
    router.get("/probe/var/:name", var);
    router.get_async("/probe/outbound", outbound);
    router.get("/probe/env/:name", env);
    router.get("/probe/print", print);
    router.get("/probe/trap", trap);
    router.handle(req)
}

fn text(status: u16, body: impl Into<String>) -> anyhow::Result<Response> {
    Ok(Response::new(status, body.into()))
}

fn headers(req: &IncomingRequest) -> Response {
    let mut map = serde_json::Map::new();
    for (name, value) in req.headers().entries() {
        let value = serde_json::Value::String(String::from_utf8_lossy(&value).into_owned());
        match map.get_mut(&name) {
            None => {
                map.insert(name, value);
            }
            Some(serde_json::Value::Array(values)) => values.push(value),
            Some(first) => *first = serde_json::Value::Array(vec![first.take(), value]),
        }
    }
    Response::new(200, serde_json::Value::Object(map).to_string())
}

fn open(store: &str) -> Result<Store, Response> {
    Store::open(store).map_err(|e| match e {
        KvError::AccessDenied => Response::new(403, "access-denied"),
        KvError::NoSuchStore => Response::new(404, "no-such-store"),
        other => Response::new(500, format!("{other:?}")),
    })
}

fn kv(req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let (Some(name), Some(key)) = (params.get("store"), params.get("key")) else {
        return text(400, "missing store or key");
    };
    let store = match open(name) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    match req.method() {
        Method::Put => {
            store.set(key, req.body())?;
            text(204, "")
        }
        Method::Delete => {
            store.delete(key)?;
            text(204, "")
        }
        _ => match store.get(key)? {
            Some(v) => Ok(Response::new(200, v)),
            None => text(404, "not found"),
        },
    }
}

fn keys(_: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let store = match open(params.get("store").unwrap_or("default")) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let mut keys = store.get_keys()?;
    keys.sort();
    text(200, serde_json::to_string(&keys)?)
}

fn cas(req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    use spin_sdk::wit::wasi::keyvalue::{atomics, store as wasi_store};
    let (Some(name), Some(key)) = (params.get("store"), params.get("key")) else {
        return text(400, "missing store or key");
    };
    let query = req.query();
    let arg = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_owned()
    };
    let (start, meddle) = (arg("start"), arg("meddle"));
    let store = match open(name) {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    if start.is_empty() {
        store.delete(key)?;
    } else {
        store.set(key, start.as_bytes())?;
    }
    let bucket = wasi_store::open(name).map_err(|e| anyhow::anyhow!("open: {e:?}"))?;
    let cas = atomics::Cas::new(&bucket, key).map_err(|e| anyhow::anyhow!("cas: {e:?}"))?;
    cas.current()
        .map_err(|e| anyhow::anyhow!("current: {e:?}"))?;
    if !meddle.is_empty() {
        store.set(key, meddle.as_bytes())?;
    }
    let swap = match atomics::swap(cas, b"new") {
        Ok(()) => "ok",
        Err(atomics::CasError::CasFailed(_)) => "cas-failed",
        Err(atomics::CasError::StoreError(e)) => return text(500, format!("swap: {e:?}")),
    };
    let value = store
        .get(key)?
        .map_or("-".to_owned(), |v| String::from_utf8_lossy(&v).into_owned());
    let counter = format!("{key}#n");
    store.delete(&counter)?;
    let mut n = 0;
    for _ in 0..2 {
        n = atomics::increment(&bucket, &counter, 2)
            .map_err(|e| anyhow::anyhow!("increment: {e:?}"))?;
    }
    store.delete(&counter)?;
    text(200, format!("swap={swap} value={value} incremented={n}"))
}

fn incr(req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    use spin_sdk::wit::wasi::keyvalue::{atomics, store as wasi_store};
    let (Some(name), Some(key)) = (params.get("store"), params.get("key")) else {
        return text(400, "missing store or key");
    };
    let by: i64 = req
        .query()
        .strip_prefix("by=")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let bucket = wasi_store::open(name).map_err(|e| anyhow::anyhow!("open: {e:?}"))?;
    match atomics::increment(&bucket, key, by) {
        Ok(n) => text(200, n.to_string()),
        Err(e) => text(500, format!("increment: {e:?}")),
    }
}

fn batch(req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    use spin_sdk::wit::wasi::keyvalue::{batch, store as wasi_store};
    let name = params.get("store").unwrap_or("default");
    let keys: Vec<String> = req
        .query()
        .split('&')
        .find_map(|kv| kv.strip_prefix("keys="))
        .filter(|keys| !keys.is_empty())
        .map(|keys| keys.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let bucket = match wasi_store::open(name) {
        Ok(b) => b,
        Err(wasi_store::Error::AccessDenied) => return text(403, "access-denied"),
        Err(e) => return text(500, format!("open: {e:?}")),
    };
    match req.method() {
        Method::Put => {
            let body = String::from_utf8_lossy(req.body()).into_owned();
            let pairs: Vec<(String, Vec<u8>)> = body
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
                .collect();
            match batch::set_many(&bucket, &pairs) {
                Ok(()) => text(204, ""),
                Err(e) => text(500, format!("set-many: {e:?}")),
            }
        }
        Method::Delete => match batch::delete_many(&bucket, &keys) {
            Ok(()) => text(204, ""),
            Err(e) => text(500, format!("delete-many: {e:?}")),
        },
        _ => match batch::get_many(&bucket, &keys) {
            Ok(found) => {
                let found: Vec<(String, Option<String>)> = found
                    .into_iter()
                    .map(|(k, v)| (k, v.map(|v| String::from_utf8_lossy(&v).into_owned())))
                    .collect();
                text(200, serde_json::to_string(&found)?)
            }
            Err(e) => text(500, format!("get-many: {e:?}")),
        },
    }
}

fn var(_: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    match spin_sdk::variables::get(params.get("name").unwrap_or("")) {
        Ok(v) => text(200, v),
        Err(spin_sdk::variables::Error::Undefined(m)) => text(404, format!("undefined: {m}")),
        Err(spin_sdk::variables::Error::InvalidName(m)) => text(400, format!("invalid-name: {m}")),
        Err(e) => text(500, format!("{e:?}")),
    }
}

async fn outbound(req: Request, _: Params) -> anyhow::Result<impl IntoResponse> {
    let url = req
        .query()
        .split('&')
        .find_map(|kv| kv.strip_prefix("url="))
        .map(|u| u.replace("%3A", ":").replace("%2F", "/"))
        .unwrap_or_default();
    let out = Request::get(url).build();
    match spin_sdk::http::send::<_, Response>(out).await {
        Ok(resp) => text(
            200,
            format!("{} {}", resp.status(), String::from_utf8_lossy(resp.body())),
        ),
        Err(e) => text(502, format!("{e:?}")),
    }
}

fn env(_: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    match std::env::var(params.get("name").unwrap_or("")) {
        Ok(v) => text(200, v),
        Err(_) => text(404, "unset"),
    }
}

fn print(req: Request, _: Params) -> anyhow::Result<impl IntoResponse> {
    let msg = req.query().strip_prefix("msg=").unwrap_or("").to_string();
    println!("stdout: {msg}");
    eprintln!("stderr: {msg}");
    text(200, "printed")
}

fn trap(_: Request, _: Params) -> anyhow::Result<Response> {
    std::process::abort()
}
