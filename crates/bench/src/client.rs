//! A small HTTP client for set-up and control requests (seeding, counters, flushes).
//!
//! Measured traffic goes through [`crate::load`], which owns its connections; this client is
//! for the requests around it, where a pooled client and a timeout are all that is needed.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Longest a control request may take (a 100k-row seed included).
const TIMEOUT: Duration = Duration::from_secs(120);

/// An answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).context("answer is not JSON")
    }
}

/// Pooled HTTP/1 client.
#[derive(Clone)]
pub struct Http {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    /// A new client.
    pub fn new() -> Http {
        Http {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends one request.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body))
            .with_context(|| format!("bad request {method} {url}"))?;
        let resp = tokio::time::timeout(TIMEOUT, self.inner.request(req))
            .await
            .map_err(|_| anyhow!("{method} {url}: no answer within {TIMEOUT:?}"))?
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{method} {url}: body"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Reply> {
        self.send("GET", url, &[], Bytes::new()).await
    }

    /// `POST url` with a JSON body; fails unless the answer is 2xx.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let r = self
            .send("POST", url, &all, Bytes::from(body.to_string()))
            .await?;
        if !(200..300).contains(&r.status) {
            bail!(
                "POST {url}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        if r.body.is_empty() {
            return Ok(Value::Null);
        }
        r.json()
    }
}

/// The DB API's test routes.
pub struct DbControl<'a> {
    /// The client.
    pub http: &'a Http,
    /// The DB API's base URL.
    pub url: &'a str,
}

impl DbControl<'_> {
    /// `GET /_stats` counter `name`.
    pub async fn counter(&self, name: &str) -> Result<u64> {
        let r = self.http.get(&format!("{}/_stats", self.url)).await?;
        let v = r.json()?;
        v.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("/_stats has no counter {name}"))
    }

    /// Adds `count` generated rows `{prefix}{i}` of `value_bytes` to `ns`.
    pub async fn seed(&self, ns: &str, prefix: &str, count: u64, value_bytes: usize) -> Result<()> {
        let body = serde_json::json!({
            "ns": ns, "count": count, "value_bytes": value_bytes, "key_prefix": prefix,
        });
        self.http
            .post_json(&format!("{}/_seed", self.url), &[], &body)
            .await?;
        Ok(())
    }

    /// Sets the added read latency of `/v1` item reads.
    pub async fn read_latency(&self, ms: u64) -> Result<()> {
        let body = serde_json::json!({"read_latency_ms": ms});
        self.http
            .post_json(&format!("{}/_faults", self.url), &[], &body)
            .await?;
        Ok(())
    }
}
