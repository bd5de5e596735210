//! The browser side in a real browser: the client module, the demo and the dashboard in
//! Debian's headless Chromium, driven by playwright-core (`tests/browser/scenarios.mjs`).
//! Each test starts the reference DB API (auth on, its demo users) and the gateway with the
//! shared fixtures, runs one scenario against them over loopback, then checks the DB API
//! after a flush. Chromium (`apt-get install chromium`) and the npm packages (`npm ci` in
//! `tests/browser`) must be installed; `.ci/run` installs both, and a test without them
//! fails saying what to install.

use std::path::PathBuf;
use std::process::Command;

use db_api::auth::DEMO_USERS;
use serde_json::{json, Value};

use crate::gateway_support::*;
use crate::support::*;

const AUTH_KEY: &str = "e2e-auth-key-browser-0123";
const ADMIN: &str = "e2e-admin-token-browser";

fn alice_token() -> &'static str {
    DEMO_USERS
        .iter()
        .find(|(name, _)| *name == "alice")
        .map(|(_, t)| *t)
        .expect("alice is a demo user")
}

fn browser_dir() -> PathBuf {
    repo_root().join("tests").join("browser")
}

/// Where screenshots go.
fn artifacts() -> PathBuf {
    repo_root().join("target").join("browser-artifacts")
}

/// Fails with what to install when the browser or the driver is missing.
fn require_tools() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's Chromium (apt-get install chromium), or set \
         CHROMIUM to a Chromium binary; .ci/run installs it"
    );
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (Node.js and \
         npm from Debian's packages); .ci/run does"
    );
    chromium
}

async fn gateway(tag: &str, db: &Db) -> Gw {
    gateway_with(tag, db, &[]).await
}

async fn gateway_with(tag: &str, db: &Db, extra: &[(&str, &str)]) -> Gw {
    Gw::start_with_auth(tag, db, AUTH_KEY, ADMIN, extra).await
}

/// Runs `scenario` against `gw` and returns its `RESULT` object.
async fn scenario(name: &str, gw: &Gw) -> Value {
    let chromium = require_tools();
    let base = gw.url("").trim_end_matches('/').to_owned();
    let name = name.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(browser_dir())
            .arg("scenarios.mjs")
            .arg(&name)
            .arg(&base)
            .arg(artifacts())
            .env("TOKEN_ALICE", alice_token())
            .env("ADMIN_TOKEN", ADMIN)
            .env("CHROMIUM", chromium)
            .output()
            .map(|o| (name, o))
    })
    .await
    .expect("join")
    .expect("cannot run node: install Node.js (apt-get install nodejs npm)");
    let (name, out) = out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("scenario {name} printed no RESULT:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).expect("RESULT is JSON")
}

async fn flush(gw: &Gw) {
    let auth = format!("Bearer {ADMIN}");
    let r = gw
        .send("POST", "/admin/flush", &[("authorization", &auth)], "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_offline_edits_survive_a_reload_and_drain_in_order() {
    let db = Db::start_with_auth().await;
    let gw = gateway("browser-offline", &db).await;
    let result = scenario("offline-queue", &gw).await;
    assert_eq!(result["last"]["name"], "Alice three");
    flush(&gw).await;
    assert_eq!(gw.buffered_count(), 0);
    assert_eq!(
        db.item("profiles", "alice").await,
        Some(result["last"].clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_write_whose_answer_was_lost_is_applied_once() {
    let db = Db::start_with_auth().await;
    let gw = gateway("browser-lost", &db).await;
    let result = scenario("lost-response", &gw).await;
    assert_eq!(result["last"]["name"], "Alice once");
    assert_eq!(
        gw.buffered_count(),
        1,
        "one buffer record for the write and its retry"
    );
    flush(&gw).await;
    assert_eq!(
        db.item("profiles", "alice").await,
        Some(json!({"name": "Alice once", "bio": ""}))
    );
    let stats = db.stats();
    assert_eq!(stats.writes_applied, 1);
    assert_eq!(stats.writes_applied_twice, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_a_second_tab_is_seen_live_and_a_conflict_is_surfaced() {
    let db = Db::start_with_auth().await;
    db.seed("profiles", "alice", json!({"name": "Seeded", "bio": ""}), 1)
        .await;
    let gw = gateway("browser-tabs", &db).await;
    let result = scenario("two-tabs", &gw).await;
    let live_ms = result["live_ms"].as_u64().expect("live_ms");
    eprintln!("the first tab showed the second tab's change {live_ms} ms after it was made");
    assert!(
        live_ms < 4_000,
        "the first tab saw the change after {live_ms} ms"
    );
    flush(&gw).await;
    assert_eq!(result["last"]["name"], "Changed behind the draft");
    assert_eq!(
        db.item("profiles", "alice").await,
        Some(json!({"name": "Changed behind the draft"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_the_dashboard_plots_the_history() {
    let db = Db::start_with_auth().await;
    // Every hit counted (not one in 16), so a few reads show in the hit rate.
    let gw = gateway_with("browser-dashboard", &db, &[("metrics_hit_sample", "1")]).await;
    let result = scenario("dashboard", &gw).await;
    assert!(result["points"].as_u64() >= Some(1), "{result}");
    assert!(artifacts().join("dashboard.png").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_both_pages_have_no_serious_accessibility_violation() {
    let db = Db::start_with_auth().await;
    let gw = gateway("browser-axe", &db).await;
    let result = scenario("accessibility", &gw).await;
    assert!(
        result["demo"].is_array() && result["dashboard"].is_array(),
        "{result}"
    );
}

#[tokio::test]
async fn the_vendored_uplot_is_the_pinned_npm_build() {
    // The gateway compiles in uPlot's own dist files, so `cargo xtask up` needs no npm; they
    // must be the files of the version pinned in tests/browser/package.json.
    let package: Value = serde_json::from_str(
        &std::fs::read_to_string(browser_dir().join("package.json")).expect("package.json"),
    )
    .expect("package.json is JSON");
    let pinned = package["devDependencies"]["uplot"]
        .as_str()
        .expect("uplot pinned");
    let vendor = repo_root().join("components/gateway/assets/vendor");
    let header = std::fs::read_to_string(vendor.join("uPlot.iife.min.js")).expect("vendored");
    assert!(std::fs::read_to_string(vendor.join("uPlot.LICENSE"))
        .expect("the licence is kept")
        .contains("MIT License"));
    let installed = browser_dir().join("node_modules/uplot");
    assert!(
        installed.join("package.json").exists(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser; .ci/run does"
    );
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(installed.join("package.json")).expect("uplot package.json"),
    )
    .expect("JSON");
    assert_eq!(meta["version"].as_str(), Some(pinned));
    for (vendored, dist) in [
        ("uPlot.iife.min.js", "dist/uPlot.iife.min.js"),
        ("uPlot.min.css", "dist/uPlot.min.css"),
        ("uPlot.LICENSE", "LICENSE"),
    ] {
        assert_eq!(
            std::fs::read(vendor.join(vendored)).expect("vendored file"),
            std::fs::read(installed.join(dist)).expect("npm file"),
            "{vendored} differs from uplot@{pinned}'s {dist}: copy it again"
        );
    }
    assert!(!header.is_empty());
}

#[test]
fn the_client_module_is_small() {
    // Minified with esbuild and gzipped; the README reports the figure.
    require_tools();
    let out = Command::new("node")
        .current_dir(browser_dir())
        .arg("size.mjs")
        .output()
        .expect("cannot run node: install Node.js (apt-get install nodejs npm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    eprintln!("client size: {size}");
    let gz = size["minified_gzip_bytes"].as_u64().expect("a size");
    assert!(gz > 1_000 && gz < 6_000, "{size}");
}
