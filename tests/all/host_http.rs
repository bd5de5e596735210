//! HTTP trigger: routing precedence, Spin's request headers, well-known routes,
//! static responses, traps, component logs.

use crate::support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "routing"
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/items/:id/probe/..."
component = "probe-two"
[[trigger.http]]
route = "/static"
static_response = { status_code = 418, body = "teapot", headers = { x-kind = "static" } }
[component.probe]
source = "{probe}"
[component.probe-two]
source = "{probe}"
"#;

#[tokio::test]
async fn spin_headers_describe_the_matched_route() {
    let dir = TempDir::new("headers");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/probe/headers?q=1")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let h: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let expect = [
        (
            "spin-full-url",
            format!("http://{}/probe/headers?q=1", app.addr),
        ),
        ("spin-path-info", "/headers".to_string()),
        ("spin-matched-route", "/probe/...".to_string()),
        ("spin-raw-component-route", "/probe/...".to_string()),
        ("spin-component-route", "/probe".to_string()),
        ("spin-base-path", "/".to_string()),
    ];
    for (name, want) in expect {
        assert_eq!(h[name].as_str(), Some(want.as_str()), "{name} in {h}");
    }
    let client = h["spin-client-addr"].as_str().expect("client addr");
    assert!(client.starts_with("127.0.0.1:"), "{client}");
}

#[tokio::test]
async fn route_parameters_become_path_match_headers() {
    let dir = TempDir::new("params");
    let manifest = APP.replace("/items/:id/probe/...", "/probe/:probe_section/...");
    let app = start(options(&write_manifest(dir.path(), &manifest)), false).await;
    // Both `/probe/...` and `/probe/:probe_section/...` match `/probe/headers`; Spin's
    // matcher prefers the parameter route, which is more specific at the second segment.
    let r = get(&app.url("/probe/headers")).await;
    let h: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(
        h["spin-matched-route"].as_str(),
        Some("/probe/:probe_section/..."),
        "{h}"
    );
    assert_eq!(
        h["spin-path-match-probe-section"].as_str(),
        Some("headers"),
        "{h}"
    );
    assert_eq!(
        h["spin-component-route"].as_str(),
        Some("/probe/:probe_section"),
        "{h}"
    );
    assert_eq!(h["spin-path-info"].as_str(), Some(""), "{h}");
}

#[tokio::test]
async fn unmatched_well_known_and_static_routes() {
    let dir = TempDir::new("static");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/nothing/here")).await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
    let r = get(&app.url("/.well-known/spin/health")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    let r = get(&app.url("/.well-known/spin/info")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"routing\""), "{}", r.body);
    let r = get(&app.url("/.well-known/spin/other")).await;
    assert_eq!(r.status, 404);
    let r = get(&app.url("/static")).await;
    assert_eq!((r.status, r.body.as_str()), (418, "teapot"));
    assert_eq!(
        r.headers.get("x-kind").and_then(|v| v.to_str().ok()),
        Some("static")
    );
}

#[tokio::test]
async fn a_trap_is_an_empty_500_and_the_host_keeps_serving() {
    let dir = TempDir::new("trap");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/probe/trap")).await;
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    let r = get(&app.url("/probe/headers")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn component_output_goes_to_log_files() {
    let dir = TempDir::new("logs");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/probe/print?msg=marker-7")).await;
    assert_eq!(r.status, 200);
    let logs = dir.path().join(".spin/logs");
    let ok = eventually(std::time::Duration::from_secs(5), async || {
        let out = std::fs::read_to_string(logs.join("probe_stdout.txt")).unwrap_or_default();
        let err = std::fs::read_to_string(logs.join("probe_stderr.txt")).unwrap_or_default();
        out.contains("stdout: marker-7") && err.contains("stderr: marker-7")
    })
    .await;
    assert!(ok, "component output should reach {}", logs.display());
}

#[tokio::test]
async fn concurrent_requests_get_separate_instances() {
    let dir = TempDir::new("concurrency");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let url = app.url("/probe/headers");
        tasks.push(tokio::spawn(async move { get(&url).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
}

/// Sends `request` as raw bytes on a fresh connection and returns everything the host
/// answers until it closes the connection (at most 10 s).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream.write_all(request).await.expect("writes");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the host closes the connection within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer (chunked or not).
fn json_body(answer: &str) -> serde_json::Value {
    let (head, mut rest) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let mut body = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Bounded by the answer's length: each chunk consumes its size line.
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            body.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
    } else {
        body.push_str(rest);
    }
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn client_supplied_spin_headers_are_kept_and_spin_appends_its_own() {
    let dir = TempDir::new("spoof");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = send(
        "GET",
        &app.url("/probe/headers"),
        &[
            ("spin-client-addr", "203.0.113.7:1234"),
            ("spin-full-url", "http://spoofed.example/"),
            ("spin-path-info", "/spoofed"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let h: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    // As on Spin: the client's value first, then the host's.
    let addr = h["spin-client-addr"].as_array().expect("two values");
    assert_eq!(addr.len(), 2, "{h}");
    assert_eq!(addr[0], "203.0.113.7:1234");
    assert!(
        addr[1]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{h}"
    );
    assert_eq!(
        h["spin-full-url"],
        serde_json::json!([
            "http://spoofed.example/",
            format!("http://{}/probe/headers", app.addr)
        ])
    );
    assert_eq!(
        h["spin-path-info"],
        serde_json::json!(["/spoofed", "/headers"])
    );
    assert_eq!(
        h["spin-matched-route"], "/probe/...",
        "one value when not sent: {h}"
    );
}

#[tokio::test]
async fn a_header_value_that_is_not_utf8_is_a_500_before_the_component_runs() {
    let dir = TempDir::new("non-utf8");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let mut request =
        b"GET /probe/print?msg=ran-anyway HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".to_vec();
    request.extend_from_slice(&[0xff, 0xfe]);
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let answer = raw(app.addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "empty body: {answer}");
    // The same route with a valid value runs the component; the invalid one never did.
    let r = get(&app.url("/probe/print?msg=valid")).await;
    assert_eq!(r.status, 200);
    let out = dir.path().join(".spin/logs/probe_stdout.txt");
    let ok = eventually(std::time::Duration::from_secs(5), async || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("stdout: valid"))
    })
    .await;
    assert!(ok, "the valid request is logged");
    let logged = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(!logged.contains("ran-anyway"), "{logged}");
    // A static route does not look at header values, as on Spin.
    let mut request = b"GET /static HTTP/1.1\r\nHost: x\r\nX-Raw: ".to_vec();
    request.extend_from_slice(&[0xff]);
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    assert!(raw(app.addr, &request).await.starts_with("HTTP/1.1 418"));
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let dir = TempDir::new("h2c");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    for path in ["/probe/headers?h2=1", "/static"] {
        let req = http::Request::builder()
            .uri(app.url(path))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp =
            tokio::time::timeout(std::time::Duration::from_secs(10), sender.send_request(req))
                .await
                .expect("answer within 10 s")
                .expect("answer");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let status = resp.status().as_u16();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        if path == "/static" {
            assert_eq!((status, body.as_str()), (418, "teapot"));
            continue;
        }
        assert_eq!(status, 200, "{body}");
        let h: serde_json::Value = serde_json::from_str(&body).expect("json");
        // HTTP/2 has no `Host` header: Spin then builds the full URL on `localhost`.
        assert_eq!(
            h["spin-full-url"], "http://localhost/probe/headers?h2=1",
            "{h}"
        );
        assert_eq!(h["spin-path-info"], "/headers", "{h}");
    }
}

#[tokio::test]
async fn absolute_form_targets_give_spins_full_url() {
    let dir = TempDir::new("absolute");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let answer = raw(
        app.addr,
        b"GET http://example.test:8080/probe/headers?a=1 HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    let h = json_body(&answer);
    assert_eq!(
        h["spin-full-url"], "http://example.test:8080/probe/headers?a=1",
        "{h}"
    );
    // Without `Host`, Spin takes the authority from the target but writes `localhost`.
    let answer = raw(
        app.addr,
        b"GET http://example.test:8080/probe/headers HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    let h = json_body(&answer);
    assert_eq!(h["spin-full-url"], "http://localhost/probe/headers", "{h}");
    // A `Host` that contradicts the target is refused unanswered.
    let answer = raw(
        app.addr,
        b"GET http://example.test/probe/headers HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
}

#[tokio::test]
async fn spin_info_is_spins_json() {
    let dir = TempDir::new("info");
    let app = start(options(&write_manifest(dir.path(), APP)), false).await;
    let r = get(&app.url("/.well-known/spin/info")).await;
    assert_eq!(r.body, "{\n  \"name\": \"routing\"\n}");
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let versioned = APP.replace(
        "name = \"routing\"",
        "name = \"routing\"\nversion = \"1.2.3\"",
    );
    let dir = TempDir::new("info-version");
    let app = start(options(&write_manifest(dir.path(), &versioned)), false).await;
    let r = get(&app.url("/.well-known/spin/info")).await;
    assert_eq!(
        r.body,
        "{\n  \"name\": \"routing\",\n  \"version\": \"1.2.3\"\n}"
    );
}
