//! The start-up measurement hooks on real components: [`App::load`] records per-component
//! load times and [`App::instantiate`] instantiates a loaded HTTP or cron component in a
//! fresh store.
//!
//! Needs the components built by `cargo xtask build-wasm` (which `cargo xtask test` runs
//! first); says "skipped" when they are not there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cache_sync_host::{App, AppOptions, InstantiateError};
use cache_sync_testkit::Manifest;

fn wasm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip1/wasm-release")
}

#[tokio::test]
async fn load_times_are_recorded_and_components_instantiate() {
    let wasm = wasm_dir();
    let (probe, flush) = (wasm.join("probe.wasm"), wasm.join("flush.wasm"));
    if !probe.exists() || !flush.exists() {
        eprintln!(
            "skipped: {} has no probe.wasm / flush.wasm (run `cargo xtask build-wasm`)",
            wasm.display()
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("cache-sync-load-times-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("spin.toml");
    let path = |p: &Path| p.display().to_string().replace('\\', "/");
    std::fs::write(
        &manifest,
        Manifest::new("load-times")
            .default("db_api_url", "http://127.0.0.1:9")
            .probe(&path(&probe))
            .flush(&path(&flush), "0 0 0 1 1 *", "http://127.0.0.1:9")
            .render(),
    )
    .expect("write manifest");
    let mut options = AppOptions::new(&manifest);
    options.state_dir = Some(PathBuf::new());
    options.echo_component_output = false;
    let app = App::load(&options).expect("the app loads");
    for id in ["probe", "flush"] {
        let t = app.components[id].load_times;
        assert!(t.compile > Duration::ZERO, "{id}: {t:?}");
        // Both are wasm32-wasip1 modules: reading and adapting them takes measurable time.
        assert!(t.componentize > Duration::ZERO, "{id}: {t:?}");
        // Every request instantiates afresh; so can a measurement, repeatedly.
        for _ in 0..3 {
            app.instantiate(id).await.expect("instantiates");
        }
    }
    assert!(matches!(
        app.instantiate("gateway").await,
        Err(InstantiateError::UnknownComponent(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
