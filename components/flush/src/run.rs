//! One flush run, independent of which cron generation called it.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::key_value::Store;

/// Records the run and checks the DB API's health endpoint.
pub fn on_tick(timestamp: u64) -> anyhow::Result<()> {
    let store = Store::open_default()?;
    let runs = store
        .get("flush:runs")?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    store.set("flush:runs", (runs + 1).to_string().as_bytes())?;
    store.set("flush:last-run", timestamp.to_string().as_bytes())?;
    let base = spin_sdk::variables::get("db_api_url")?;
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let status = spin_sdk::http::run(async move {
        spin_sdk::http::send::<_, Response>(Request::new(Method::Get, url))
            .await
            .map(|r| *r.status())
    });
    let outcome = match status {
        Ok(s) => format!("db_api {s}"),
        Err(e) => format!("db_api unreachable: {e}"),
    };
    store.set("flush:last-outcome", outcome.as_bytes())?;
    Ok(())
}
