//! A catalogue of malformed and hostile requests against one running gateway.
//!
//! Every request in [`catalogue`] must get its clear 4xx: the gateway's JSON
//! `{"error", "message"}` body, or, where hyper refuses the request before any component
//! runs, the host's own empty answer (Spin's HTTP server is hyper with the same defaults, so
//! `spin up` answers those the same way: 431 past 100 headers or ~408 KiB of head). A routed
//! request without a usable authority gets no answer at all, as from Spin, whose trigger
//! fails such a request and hyper then drops the connection. None may answer 5xx (a trap is
//! an empty 500), and none may change anything: before the catalogue the store holds cached
//! entries (one deflated), a negative entry, buffered writes with their dirty entries and a
//! dead letter, and the DB API holds seeded rows; after every request the whole key-value
//! store and the DB API's rows and counters must be exactly as before.
//!
//! Requests go over raw TCP, byte for byte as written here: no client normalizes dot
//! segments, adds headers or fixes framing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway_support::*;

const ADMIN: &str = "hostile-admin-token";
/// `max_value_bytes` of the app under attack.
const MAX_VALUE: usize = 8 * 1024;
/// A dead letter holding only the raw text of an unreadable record (retry answers 409).
const RAW_ONLY_STAMP: &str = "018bcfe568000000000000000000000d";
/// A well-formed stamp no record has.
const ABSENT_STAMP: &str = "018bcfe568000000000000000000000e";

/// One request of the catalogue and the answer it must get.
struct Case {
    name: String,
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Send `Content-Length` (off: no framing header at all).
    length: bool,
    /// The `Host` header: the server's address, this value, or none (`Some(None)`).
    host: Option<Option<Vec<u8>>>,
    status: u16,
    /// The gateway's error code; `None` for the host's own empty answer.
    error: Option<&'static str>,
}

fn req(name: impl Into<String>, method: &str, target: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        method: method.to_owned(),
        target: target.into(),
        headers: Vec::new(),
        body: Vec::new(),
        length: true,
        host: None,
        status: 0,
        error: None,
    }
}

impl Case {
    fn h(mut self, name: &str, value: impl Into<Vec<u8>>) -> Case {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Case {
        self.h("content-type", "application/json").body(body)
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = body.into();
        self
    }

    fn admin(self) -> Case {
        self.h("authorization", format!("Bearer {ADMIN}"))
    }

    fn no_length(mut self) -> Case {
        self.length = false;
        self
    }

    fn is(mut self, status: u16, error: &'static str) -> Case {
        self.status = status;
        self.error = Some(error);
        self
    }

    fn host_header(mut self, value: Option<&str>) -> Case {
        self.host = Some(value.map(|v| v.as_bytes().to_vec()));
        self
    }

    /// The request is refused without an answer: the connection closes.
    fn unanswered(mut self) -> Case {
        self.status = 0;
        self.error = None;
        self
    }

    fn by_host(mut self, status: u16) -> Case {
        self.status = status;
        self.error = None;
        self
    }

    fn bytes(&self, authority: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        let host = match &self.host {
            None => Some(authority.as_bytes()),
            Some(custom) => custom.as_deref(),
        };
        if let Some(host) = host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"connection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if self.length {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// An answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `bytes` on a fresh connection and reads the answer until the server closes it;
/// `None` when it closes without answering. The request is written while the answer is
/// read: hyper may answer (and close) before reading everything, as it does for oversized
/// headers.
async fn exchange(authority: &str, bytes: Vec<u8>) -> Result<Option<Answer>, String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        // Kept open: hyper closes a connection whose client half-closes.
        wr
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut raw)).await;
    let _ = writer.await;
    match read {
        Err(_) => return Err("no answer within 10 s".into()),
        Ok(Err(e)) if raw.is_empty() => return Err(format!("read: {e}")),
        Ok(_) if raw.is_empty() => return Ok(None),
        Ok(_) => {}
    }
    parse(&raw).map(Some)
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// The whole key-value store, raw. Metrics counters (`m:tally:*`) are left out: every
/// response, error responses included, adds to them after it is sent (that is what
/// `/metrics` reports as errors by kind), so a hostile request legitimately changes them.
/// No other key may change on a refused request.
fn kv_snapshot(gw: &Gw) -> BTreeMap<String, Vec<u8>> {
    let conn = gw.kv_file();
    let mut stmt = conn
        .prepare("SELECT key, value FROM spin_key_value WHERE store = 'default'")
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })
    .expect("query")
    .map(|r| r.expect("row"))
    .filter(|(k, _)| !k.starts_with("m:tally:"))
    .collect()
}

/// What differs between two snapshots, for the failure message.
fn kv_diff(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> String {
    let mut out = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => out.push(format!("added {k}")),
            Some(old) if old != v => out.push(format!("changed {k}")),
            Some(_) => {}
        }
    }
    out.extend(
        before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .map(|k| format!("removed {k}")),
    );
    out.join(", ")
}

const DB_KEYS: &[(&str, &str)] = &[
    ("users", "alice"),
    ("users", "bob"),
    ("users", "carol"),
    ("users", "dave"),
    ("users", "ghost"),
    ("docs", "big"),
];

/// The DB API's counters, row counts and the rows of every key the catalogue names.
async fn db_snapshot(db: &Db) -> String {
    let backend = db.state.backend.clone();
    let mut rows = Vec::new();
    for (ns, key) in DB_KEYS {
        let row = backend.get_item(ns, key).await.map(|item| {
            item.map(|i| {
                let value = i.value.unwrap_or_default();
                (
                    i.version,
                    value.len(),
                    cache_core::hash::fnv1a64(value.as_bytes()),
                )
            })
        });
        rows.push(format!("{ns}/{key}={row:?}"));
    }
    // Reads and authorization calls ask the DB API questions (a write with If-Match checks
    // the caller may read the key); they change nothing in it.
    let mut stats = db.stats();
    stats.authorize_calls = 0;
    stats.authorize_denied = 0;
    stats.item_reads = 0;
    stats.item_hits = 0;
    stats.item_misses = 0;
    format!("{:?} {:?} {}", stats, backend.stats().await, rows.join(" "))
}

fn deep(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Every admin route, as (method, target).
fn admin_routes() -> Vec<(&'static str, String)> {
    vec![
        ("POST", "/admin/flush".to_owned()),
        ("GET", "/admin/stats".to_owned()),
        ("GET", "/admin/dlq".to_owned()),
        ("POST", format!("/admin/dlq/{RAW_ONLY_STAMP}/retry")),
        ("DELETE", format!("/admin/dlq/{RAW_ONLY_STAMP}")),
    ]
}

fn catalogue() -> Vec<Case> {
    let big_header = "x".repeat(64 * 1024);
    let over = format!("\"{}\"", "x".repeat(MAX_VALUE + 10));
    let huge = format!("\"{}\"", "y".repeat(1536 * 1024));
    let mut cases = vec![
        // Bad keys.
        req("uppercase namespace", "GET", "/v1/Users/alice").is(400, "bad_key"),
        req("uppercase namespace, put", "PUT", "/v1/Users/alice")
            .json("{}")
            .is(400, "bad_key"),
        req(
            "namespace too long",
            "GET",
            format!("/v1/{}/alice", "n".repeat(65)),
        )
        .is(400, "bad_key"),
        req(
            "key too long",
            "GET",
            format!("/v1/users/{}", "k".repeat(201)),
        )
        .is(400, "bad_key"),
        req(
            "key too long, put",
            "PUT",
            format!("/v1/users/{}", "k".repeat(201)),
        )
        .json("1")
        .is(400, "bad_key"),
        req(
            "kv key too long",
            "GET",
            format!("/v1/{}/{}", "n".repeat(64), "k".repeat(190)),
        )
        .is(400, "bad_key"),
        req("NUL in key", "GET", "/v1/users/a%00b").is(400, "bad_key"),
        req("LF in key, delete", "DELETE", "/v1/users/a%0Ab").is(400, "bad_key"),
        req("DEL in key, patch", "PATCH", "/v1/users/a%7Fb")
            .h("content-type", "application/merge-patch+json")
            .body("{}")
            .is(400, "bad_key"),
        req("C1 control in key", "PUT", "/v1/users/a%C2%85b")
            .json("1")
            .is(400, "bad_key"),
        req("bad percent-escape", "GET", "/v1/users/%zz").is(400, "bad_key"),
        req("truncated percent-escape", "GET", "/v1/users/abc%4").is(400, "bad_key"),
        req("lone percent sign", "PUT", "/v1/users/abc%")
            .json("1")
            .is(400, "bad_key"),
        req("invalid UTF-8 in key", "GET", "/v1/users/%C3%28").is(400, "bad_key"),
        req("overlong UTF-8 slash in key", "GET", "/v1/users/%C0%AF").is(400, "bad_key"),
        req("percent-encoded namespace", "GET", "/v1/us%65rs/alice").is(400, "bad_key"),
        req("encoded slash in namespace", "GET", "/v1/us%2Fers/alice").is(400, "bad_key"),
        req("empty namespace", "GET", "/v1//alice").is(400, "bad_key"),
        // Path tricks.
        req("dot-dot key", "GET", "/v1/users/..").is(400, "bad_key"),
        req("encoded dot-dot key", "GET", "/v1/users/%2e%2e").is(400, "bad_key"),
        req("encoded dot-dot key, put", "PUT", "/v1/users/%2E%2E")
            .json("1")
            .is(400, "bad_key"),
        req("dot key", "DELETE", "/v1/users/.").is(400, "bad_key"),
        req("encoded dot key", "PUT", "/v1/users/%2e")
            .json("1")
            .is(400, "bad_key"),
        req("dot-dot namespace", "GET", "/v1/%2e%2e/alice").is(400, "bad_key"),
        req(
            "dot-dot climbing to admin",
            "GET",
            "/v1/users/../../admin/stats",
        )
        .admin()
        .is(404, "not_found"),
        req("dot-dot climbing to flush", "POST", "/v1/../admin/flush")
            .admin()
            .is(404, "not_found"),
        req(
            "encoded slashes climbing to flush",
            "POST",
            "/v1/users/a%2F..%2F..%2Fadmin%2Fflush",
        )
        .admin()
        .is(405, "method_not_allowed"),
        req("empty key", "GET", "/v1/users/").is(404, "not_found"),
        req("double slash before key", "GET", "/v1/users//alice").is(404, "not_found"),
        req("double slash at the start", "GET", "//v1/users/alice").is(404, "not_found"),
        req("trailing slash", "GET", "/v1/users/alice/").is(404, "not_found"),
        req("extra segment", "GET", "/v1/users/alice/extra").is(404, "not_found"),
        req("extra segment, put", "PUT", "/v1/users/alice/extra")
            .json("1")
            .is(404, "not_found"),
        req("bare /v1/", "GET", "/v1/").is(404, "not_found"),
        req("namespace only", "GET", "/v1/users").is(404, "not_found"),
        req("namespace only, put", "PUT", "/v1/users")
            .json("1")
            .is(404, "not_found"),
        // Huge headers.
        req("64 KiB header on a bad key", "GET", "/v1/Users/alice")
            .h("x-junk", big_header.clone())
            .is(400, "bad_key"),
        req("64 KiB bearer token", "GET", "/admin/stats")
            .h("authorization", format!("Bearer {big_header}"))
            .is(401, "unauthorized"),
        req("64 KiB If-Match", "PUT", "/v1/users/alice")
            .h("if-match", format!("\"{big_header}\""))
            .json("1")
            .is(412, "precondition_failed"),
        req("1 MiB header", "GET", "/v1/users/alice")
            .h("x-junk", "z".repeat(1024 * 1024))
            .by_host(431),
        // Huge bodies.
        req("value over max_value_bytes", "PUT", "/v1/users/alice")
            .json(over.clone())
            .is(413, "too_large"),
        req("patch over max_value_bytes", "PATCH", "/v1/users/alice")
            .h("content-type", "application/merge-patch+json")
            .body(over.clone())
            .is(413, "too_large"),
        req("1.5 MiB value", "PUT", "/v1/users/new")
            .json(huge)
            .is(413, "too_large"),
        req("oversized non-JSON body", "PUT", "/v1/users/alice")
            .h("content-type", "text/plain")
            .body(over)
            .is(415, "unsupported_media_type"),
        // Invalid JSON.
        req("unterminated object", "PUT", "/v1/users/alice")
            .json("{not json")
            .is(400, "bad_json"),
        req("empty body", "PUT", "/v1/users/alice")
            .json("")
            .is(400, "bad_json"),
        req("trailing garbage", "PUT", "/v1/users/alice")
            .json("1 2")
            .is(400, "bad_json"),
        req("lone surrogate", "PUT", "/v1/users/alice")
            .json(r#""\ud800""#)
            .is(400, "bad_json"),
        req("NaN", "PUT", "/v1/users/alice")
            .json("NaN")
            .is(400, "bad_json"),
        req("invalid UTF-8 body", "PUT", "/v1/users/alice")
            .json(vec![b'"', 0xff, 0xfe, b'"'])
            .is(400, "bad_json"),
        req("nesting past the parser's limit", "PUT", "/v1/users/alice")
            .json(deep(1000))
            .is(400, "bad_json"),
        req("write without Content-Length", "PUT", "/v1/users/alice")
            .h("content-type", "application/json")
            .no_length()
            .is(411, "length_required"),
        req("unparsable Content-Length", "PUT", "/v1/users/alice")
            .h("content-type", "application/json")
            .h("content-length", "abc")
            .no_length()
            .by_host(400),
        // Merge patches.
        req("patch as text/plain", "PATCH", "/v1/users/alice")
            .h("content-type", "text/plain")
            .body("{}")
            .is(415, "unsupported_media_type"),
        req("patch without content type", "PATCH", "/v1/users/alice")
            .body("{}")
            .is(415, "unsupported_media_type"),
        req(
            "JSON Patch sent as a merge patch",
            "PATCH",
            "/v1/users/alice",
        )
        .h("content-type", "application/json-patch+json")
        .body(r#"[{"op":"remove","path":"/name"}]"#)
        .is(415, "unsupported_media_type"),
        req("truncated merge patch", "PATCH", "/v1/users/alice")
            .h("content-type", "application/merge-patch+json")
            .body(r#"{"plan":"#)
            .is(400, "bad_json"),
        req("merge patch nested too deep", "PATCH", "/v1/users/alice")
            .h("content-type", "application/merge-patch+json")
            .body(deep(1000))
            .is(400, "bad_json"),
        // Wrong content types on PUT.
        req("put as text/plain", "PUT", "/v1/users/alice")
            .h("content-type", "text/plain")
            .body("1")
            .is(415, "unsupported_media_type"),
        req("put as XML", "PUT", "/v1/users/alice")
            .h("content-type", "application/xml")
            .body("<a/>")
            .is(415, "unsupported_media_type"),
        req("put as a form", "PUT", "/v1/users/alice")
            .h("content-type", "application/x-www-form-urlencoded")
            .body("a=1")
            .is(415, "unsupported_media_type"),
        req("put as multipart", "PUT", "/v1/users/alice")
            .h("content-type", "multipart/form-data; boundary=x")
            .body("--x--")
            .is(415, "unsupported_media_type"),
        req("put as application/jsonp", "PUT", "/v1/users/alice")
            .h("content-type", "application/jsonp")
            .body("1")
            .is(415, "unsupported_media_type"),
        req(
            "content type with non-ASCII bytes",
            "PUT",
            "/v1/users/alice",
        )
        .h("content-type", b"application/json\xff".to_vec())
        .body("1")
        // As on Spin: a header value that is not UTF-8 is the host's empty 500, before
        // the gateway runs.
        .by_host(500),
        req("put without content type", "PUT", "/v1/users/alice")
            .body("1")
            .is(415, "unsupported_media_type"),
        // Wrong methods.
        req("POST on an item", "POST", "/v1/users/alice")
            .json("1")
            .is(405, "method_not_allowed"),
        req("OPTIONS on an item", "OPTIONS", "/v1/users/alice").is(405, "method_not_allowed"),
        req("TRACE on an item", "TRACE", "/v1/users/alice").is(405, "method_not_allowed"),
        req("unknown method on an item", "PROPFIND", "/v1/users/alice")
            .is(405, "method_not_allowed"),
        req("GET /admin/flush", "GET", "/admin/flush")
            .admin()
            .is(405, "method_not_allowed"),
        req("PUT /admin/stats", "PUT", "/admin/stats")
            .admin()
            .is(405, "method_not_allowed"),
        req("DELETE /admin/dlq", "DELETE", "/admin/dlq")
            .admin()
            .is(405, "method_not_allowed"),
        req(
            "GET a dead letter",
            "GET",
            format!("/admin/dlq/{RAW_ONLY_STAMP}"),
        )
        .admin()
        .is(405, "method_not_allowed"),
        req(
            "GET a dead letter's retry",
            "GET",
            format!("/admin/dlq/{RAW_ONLY_STAMP}/retry"),
        )
        .admin()
        .is(405, "method_not_allowed"),
        req("wrong method before credentials", "GET", "/admin/flush").is(405, "method_not_allowed"),
        req("PUT /metrics", "PUT", "/metrics")
            .json("1")
            .is(405, "method_not_allowed"),
        req("DELETE /healthz", "DELETE", "/healthz").is(405, "method_not_allowed"),
        // Conditional requests.
        req("If-Match another version", "PUT", "/v1/users/alice")
            .h("if-match", "\"v999\"")
            .json("1")
            .is(412, "precondition_failed"),
        req("If-Match not an entity tag", "PUT", "/v1/users/alice")
            .h("if-match", "not-an-etag")
            .json("1")
            .is(412, "precondition_failed"),
        req("If-Match empty", "DELETE", "/v1/users/alice")
            .h("if-match", "")
            .is(412, "precondition_failed"),
        req(
            "If-Match weak tag (strong comparison)",
            "DELETE",
            "/v1/users/alice",
        )
        .h("if-match", "W/\"v3\"")
        .is(412, "precondition_failed"),
        req(
            "If-Match tag with junk after it",
            "PATCH",
            "/v1/users/alice",
        )
        .h("if-match", "\"v3\"x")
        .h("content-type", "application/merge-patch+json")
        .body("{}")
        .is(412, "precondition_failed"),
        req("If-Match * on a deleted key", "DELETE", "/v1/users/bob")
            .h("if-match", "*")
            .is(412, "precondition_failed"),
        req("If-Match * on a cached 404", "PUT", "/v1/users/ghost")
            .h("if-match", "*")
            .json("1")
            .is(412, "precondition_failed"),
        req(
            "If-Match an origin tag on a buffered write",
            "DELETE",
            "/v1/users/dave",
        )
        .h("if-match", "\"v1\"")
        .is(412, "precondition_failed"),
        req(
            "If-None-Match * on an existing key",
            "PUT",
            "/v1/users/alice",
        )
        .h("if-none-match", "*")
        .json("1")
        .is(412, "precondition_failed"),
        req("If-None-Match the current tag", "DELETE", "/v1/users/alice")
            .h("if-none-match", "\"v3\"")
            .is(412, "precondition_failed"),
        // Dead-letter stamps.
        req("stamp not hex", "POST", "/admin/dlq/nothex/retry")
            .admin()
            .is(400, "bad_stamp"),
        req(
            "stamp too short",
            "POST",
            format!("/admin/dlq/{}/retry", &ABSENT_STAMP[1..]),
        )
        .admin()
        .is(400, "bad_stamp"),
        req(
            "stamp too long",
            "DELETE",
            format!("/admin/dlq/{ABSENT_STAMP}0"),
        )
        .admin()
        .is(400, "bad_stamp"),
        req(
            "stamp in uppercase",
            "DELETE",
            format!("/admin/dlq/{}", RAW_ONLY_STAMP.to_ascii_uppercase()),
        )
        .admin()
        .is(400, "bad_stamp"),
        req(
            "stamp with NUL",
            "DELETE",
            format!("/admin/dlq/{}%00", &ABSENT_STAMP[..31]),
        )
        .admin()
        .is(400, "bad_stamp"),
        req("stamp dot-dot", "DELETE", "/admin/dlq/%2e%2e")
            .admin()
            .is(400, "bad_stamp"),
        req(
            "absent dead letter, delete",
            "DELETE",
            format!("/admin/dlq/{ABSENT_STAMP}"),
        )
        .admin()
        .is(404, "not_found"),
        req(
            "absent dead letter, retry",
            "POST",
            format!("/admin/dlq/{ABSENT_STAMP}/retry"),
        )
        .admin()
        .is(404, "not_found"),
        req(
            "retry of a raw-only dead letter",
            "POST",
            format!("/admin/dlq/{RAW_ONLY_STAMP}/retry"),
        )
        .admin()
        .is(409, "nothing_to_resend"),
        req("dead-letter route without a stamp", "DELETE", "/admin/dlq/")
            .admin()
            .is(405, "method_not_allowed"),
        req(
            "dead-letter retry with extra segment",
            "POST",
            format!("/admin/dlq/{RAW_ONLY_STAMP}/retry/now"),
        )
        .admin()
        .is(404, "not_found"),
        // Query strings.
        req("query on a bad key", "GET", "/v1/Users/alice?x=%zz").is(400, "bad_key"),
        req(
            "query naming the flush",
            "POST",
            "/v1/users/alice?/../../admin/flush",
        )
        .admin()
        .json("1")
        .is(405, "method_not_allowed"),
        req(
            "query on a refused write",
            "PUT",
            "/v1/users/alice?content-type=application/json",
        )
        .h("content-type", "text/plain")
        .body("1")
        .is(415, "unsupported_media_type"),
        req(
            "admin token in the query",
            "GET",
            format!("/admin/stats?token={ADMIN}"),
        )
        .is(401, "unauthorized"),
        // Request lines and headers no client library would send.
        // A routed request without a usable authority: Spin's HTTP trigger fails it
        // (`set_req_uri`) and hyper closes the connection without answering.
        req("Host header that is no authority", "PUT", "/v1/users/alice")
            .host_header(Some("bad host"))
            .json("1")
            .unanswered(),
        req("no Host header", "DELETE", "/v1/users/alice")
            .host_header(None)
            .unanswered(),
        req(
            "absolute target for another authority",
            "POST",
            "http://elsewhere:1/admin/flush",
        )
        .admin()
        .unanswered(),
        // Too many headers: hyper's limit is 100.
        (0..120)
            .fold(req("120 headers", "GET", "/v1/users/alice"), |c, i| {
                c.h(&format!("x-h{i}"), "1")
            })
            .by_host(431),
    ];
    // Every admin route refuses every bad credential.
    for (method, target) in admin_routes() {
        let bad: [(&str, Option<String>); 8] = [
            ("no token", None),
            ("wrong token", Some("Bearer wrong".into())),
            ("lowercase scheme, wrong token", Some("bearer wrong".into())),
            (
                "token prefix",
                Some(format!("Bearer {}", &ADMIN[..ADMIN.len() - 1])),
            ),
            ("token plus suffix", Some(format!("Bearer {ADMIN}x"))),
            ("scheme only", Some("Bearer".into())),
            ("basic scheme", Some(format!("Basic {ADMIN}"))),
            ("token without scheme", Some(ADMIN.into())),
        ];
        for (what, auth) in bad {
            let mut c = req(format!("{method} {target}: {what}"), method, target.clone());
            if let Some(auth) = auth {
                c = c.h("authorization", auth);
            }
            cases.push(c.is(401, "unauthorized"));
        }
    }
    cases
}

/// Seeds the DB API and the store: cached entries (one deflated), a negative entry,
/// buffered writes (put, patch, delete) with their dirty entries, and a raw-only dead letter.
async fn seed(db: &Db, gw: &Gw) {
    db.seed("users", "alice", json!({"name": "Alice", "plan": "pro"}), 3)
        .await;
    db.seed("users", "bob", json!({"name": "Bob"}), 4).await;
    db.seed("users", "carol", json!({"name": "Carol"}), 5).await;
    db.seed("docs", "big", json!("abcdefgh".repeat(700)), 1)
        .await;
    for path in ["/v1/users/alice", "/v1/users/bob", "/v1/docs/big"] {
        let r = gw.get(path).await;
        assert_eq!((r.status, header(&r, "x-cache")), (200, "MISS"), "{r:?}");
    }
    let r = gw.get("/v1/users/ghost").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        gw.put("/v1/users/dave", r#"{"name":"Dave"}"#).await.status,
        202
    );
    let r = gw
        .send(
            "PATCH",
            "/v1/users/carol",
            &[("content-type", "application/merge-patch+json")],
            r#"{"plan":"free"}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        gw.send("DELETE", "/v1/users/bob", &[], "").await.status,
        202
    );
    let letter = json!({
        "v": 1, "stamp": RAW_ONLY_STAMP, "raw": "{garbage", "reason": "corrupt",
        "attempts": 0, "dead_at": 1,
    });
    gw.put_raw(&format!("d:{RAW_ONLY_STAMP}"), &letter.to_string())
        .await;
    // Let the seeding requests' work after their responses finish.
    wait(300).await;
}

#[tokio::test]
async fn hostile_requests_get_clear_4xx_and_change_nothing() {
    let db = Db::start().await;
    let gw = Gw::start(
        "hostile",
        &db,
        &[
            ("admin_token", ADMIN),
            ("max_value_bytes", "8KiB"),
            ("compress_min_bytes", "1024"),
        ],
    )
    .await;
    seed(&db, &gw).await;
    let mut kv = kv_snapshot(&gw);
    for key in [
        "c:users:alice",
        "c:users:bob",
        "c:users:carol",
        "c:users:dave",
        "c:users:ghost",
        "c:docs:big",
    ] {
        assert!(kv.contains_key(key), "{key} not seeded: {:?}", kv.keys());
    }
    assert_eq!(kv.keys().filter(|k| k.starts_with("w:")).count(), 3);
    let mut dbs = db_snapshot(&db).await;
    let authority = gw
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();

    let cases = catalogue();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    let mut statuses = BTreeMap::<u16, usize>::new();
    for case in &cases {
        let answer = exchange(&authority, case.bytes(&authority)).await;
        let problem = match &answer {
            Err(e) => Some(e.clone()),
            Ok(None) => {
                *statuses.entry(0).or_default() += 1;
                (case.status != 0).then(|| "closed without an answer".to_owned())
            }
            Ok(Some(a)) => {
                *statuses.entry(a.status).or_default() += 1;
                check_answer(case, a)
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", case.name));
        }
        let now = kv_snapshot(&gw);
        if now != kv {
            failures.push(format!(
                "{}: store changed: {}",
                case.name,
                kv_diff(&kv, &now)
            ));
            kv = now;
        }
        let now_db = db_snapshot(&db).await;
        if now_db != dbs {
            failures.push(format!("{}: DB API changed: {now_db}", case.name));
            dbs = now_db;
        }
    }
    // Work a handler runs after its response must not change anything either.
    wait(300).await;
    let after = kv_snapshot(&gw);
    if after != kv {
        failures.push(format!("after the catalogue: {}", kv_diff(&kv, &after)));
    }
    let log = std::fs::read_to_string(gw.dir.path().join(".spin/logs/gateway_stderr.txt"))
        .unwrap_or_default();
    if log.contains("panicked") {
        failures.push(format!("the gateway panicked: {log}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} hostile requests, statuses {statuses:?}", cases.len());

    // The seeded state still works: hits are served and the buffer flushes intact.
    let r = gw.get("/v1/users/alice").await;
    assert_eq!((r.status, header(&r, "x-cache")), (200, "HIT"), "{r:?}");
    assert_eq!(json(&r), json!({"name": "Alice", "plan": "pro"}));
    let r = gw
        .send(
            "POST",
            "/admin/flush",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(json(&r)["items"]["applied"], 3, "{r:?}");
    assert_eq!(
        db.item("users", "dave").await,
        Some(json!({"name": "Dave"}))
    );
    assert_eq!(
        db.item("users", "carol").await,
        Some(json!({"name": "Carol", "plan": "free"}))
    );
    assert_eq!(db.item("users", "bob").await, None);
}

fn check_answer(case: &Case, a: &Answer) -> Option<String> {
    let body = String::from_utf8_lossy(&a.body);
    if a.status >= 500 && !(case.error.is_none() && case.status == a.status) {
        return Some(format!("server error {} {body:?}", a.status));
    }
    if a.status != case.status {
        return Some(format!(
            "expected {}, got {} {body:?}",
            case.status, a.status
        ));
    }
    let Some(code) = case.error else {
        return (!a.body.is_empty()).then(|| format!("host answer with a body: {body:?}"));
    };
    if a.header("content-type") != Some("application/json") {
        return Some(format!("content-type {:?}", a.header("content-type")));
    }
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&a.body) else {
        return Some(format!("body is not JSON: {body:?}"));
    };
    if parsed["error"] != code {
        return Some(format!("expected error {code}, got {parsed}"));
    }
    if parsed["message"].as_str().is_none_or(str::is_empty) {
        return Some(format!("no message: {parsed}"));
    }
    if a.status == 405 && a.header("allow").is_none_or(str::is_empty) {
        return Some("405 without Allow".into());
    }
    if a.status == 401 && a.header("www-authenticate") != Some("Bearer") {
        return Some(format!(
            "401 with WWW-Authenticate {:?}",
            a.header("www-authenticate")
        ));
    }
    None
}
