//! The gateway built for hosts without `wasi:keyvalue/atomics` (Fermyon Cloud, Akamai
//! Functions: `--no-default-features`, what `spin.cloud.toml` builds). A component importing
//! an interface its host lacks does not load there, so that build must import none of
//! `wasi:keyvalue`; it still buffers and flushes, with the read-compare-write fallback for the
//! lease record, and the DB API's write ids keep every write applied once.

use std::path::Path;

use serde_json::json;

use crate::flush_support::*;
use crate::support::*;

/// The module names a core wasm module imports from.
fn imported_modules(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).expect("read component");
    let mut modules = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::ImportSection(reader) = payload.expect("valid wasm") {
            for import in reader.into_imports() {
                modules.push(import.expect("valid import").module.to_owned());
            }
        }
    }
    modules.sort();
    modules.dedup();
    modules
}

#[test]
fn only_the_default_build_imports_wasi_keyvalue() {
    let wasi_kv = |m: &String| m.starts_with("wasi:keyvalue/");
    let default: Vec<String> = imported_modules(&wasm("gateway"))
        .into_iter()
        .filter(wasi_kv)
        .collect();
    assert_eq!(
        default,
        [
            "wasi:keyvalue/atomics@0.2.0-draft2",
            "wasi:keyvalue/batch@0.2.0-draft2",
            "wasi:keyvalue/store@0.2.0-draft2"
        ]
    );
    let portable = imported_modules(&wasm("gateway_no_atomics"));
    assert!(!portable.iter().any(wasi_kv), "{portable:?}");
    assert!(
        portable.iter().any(|m| m == "fermyon:spin/key-value@2.0.0"),
        "{portable:?}"
    );
}

#[tokio::test]
async fn the_gateway_without_atomics_buffers_and_flushes() {
    let db = Db::start().await;
    let dir = TempDir::new("flush-no-atomics");
    let manifest = write_manifest(
        dir.path(),
        &manifest(None).replace("{gateway}", "{gateway_no_atomics}"),
    );
    let vars = flags(&db.url());
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = start(with_flags(options(&manifest), &refs), false).await;
    for (key, n) in [("a", 1), ("b", 2), ("a", 3)] {
        let r = send(
            "PUT",
            &app.url(&format!("/v1/users/{key}")),
            &[("content-type", "application/json")],
            &json!(n).to_string(),
        )
        .await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    let r = admin(&app, "POST", "/admin/flush").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(r#""outcome":"delivered""#), "{}", r.body);
    assert_eq!(db.item("users", "a").await, Some(json!(3)));
    assert_eq!(db.item("users", "b").await, Some(json!(2)));
    assert!(keys(&app, "w:").await.is_empty());
    assert!(keys(&app, "b:").await.is_empty());
    let r = admin(&app, "POST", "/admin/flush").await;
    assert!(r.body.contains(r#""outcome":"idle""#), "{}", r.body);
}
