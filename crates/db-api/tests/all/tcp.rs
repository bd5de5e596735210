//! End to end over loopback TCP: the real server loop, a minimal HTTP/1.1 client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use db_api::backend::sqlite::SqliteBackend;
use db_api::{AppState, Settings};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::put;

/// Sends one request with `Connection: close` and returns (status, raw headers, body).
/// `None` when the connection ends without a complete status line.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_owned(), body.to_owned()))
}

#[tokio::test]
async fn serves_over_tcp_and_shuts_down_promptly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = SqliteBackend::open(":memory:").unwrap();
    let state = AppState::new(Arc::new(backend), Settings::default()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(db_api::run(listener, state, async {
        let _ = stopped.await;
    }));

    let (status, _, body) = http(addr, "GET", "/healthz", &[], "").await.unwrap();
    assert_eq!(status, 200, "{body}");

    let batch =
        json!({"batch_id": "t1", "writes": [put("ns", "a key/é", json!({"v": 1}), 2)]}).to_string();
    let json_headers = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "t1"),
    ];
    let (status, _, body) = http(addr, "POST", "/v1/batch", &json_headers, &batch)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"results": [{"status": "applied"}]})
    );
    let (status, head, body) = http(addr, "POST", "/v1/batch", &json_headers, &batch)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("idempotent-replayed: true"),
        "{head}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["results"][0]["status"],
        "applied"
    );

    let (status, head, body) = http(addr, "GET", "/v1/items/ns/a%20key%2F%C3%A9", &[], "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(head.to_ascii_lowercase().contains("etag: \"v2\""), "{head}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"v": 1})
    );

    // "close" drops the connection without a complete answer.
    let faults = json!({"down": "close"}).to_string();
    let (status, _, _) = http(
        addr,
        "POST",
        "/_faults",
        &[("Content-Type", "application/json")],
        &faults,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let answer = http(addr, "GET", "/v1/items/ns/x", &[], "").await;
    assert!(
        answer.as_ref().is_none_or(|(_, _, body)| body.is_empty()),
        "{answer:?}"
    );

    // A request held by an injected timeout does not delay shutdown.
    let faults = json!({"timeout": {"next": 1}, "hold_ms": 60_000}).to_string();
    http(
        addr,
        "POST",
        "/_faults",
        &[("Content-Type", "application/json")],
        &faults,
    )
    .await
    .unwrap();
    let held = tokio::spawn(http(addr, "GET", "/v1/items/ns/x", &[], ""));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "server did not stop: {result:?}"
    );
    let held = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.map(|(s, _, _)| s), Some(504));
}
