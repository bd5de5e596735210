//! Turning `wasm32-wasip1` core modules into components, as Spin does when it loads them.
//!
//! spin-sdk 5.x built for `wasm32-wasip1` produces a core module whose custom sections
//! carry the component type (from wit-bindgen). Spin adapts such modules with the WASI
//! preview1 reactor adapter; this host does the same with the adapter that matches its
//! wasmtime version, so the imports line up with what `wasmtime-wasi` provides. A file
//! that already is a component is used as it is.

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

/// What a `.wasm` file holds, judged from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module (needs adapting).
    Module,
    /// A component.
    Component,
}

/// Classifies bytes by the wasm preamble (magic plus version/layer).
///
/// # Errors
/// A message when the bytes are not wasm at all.
pub fn classify(bytes: &[u8]) -> Result<WasmKind, String> {
    match bytes.get(0..8) {
        Some([0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Ok(WasmKind::Module),
        Some([0x00, b'a', b's', b'm', _, _, 0x01, 0x00]) => Ok(WasmKind::Component),
        _ => Err("not a WebAssembly module or component (bad header)".to_string()),
    }
}

/// Returns a component for `bytes`: the bytes themselves when they already are one,
/// otherwise the module adapted with the WASI preview1 reactor adapter.
///
/// # Errors
/// A message when the bytes are not wasm or the module cannot be adapted (for example
/// a module built without wit-bindgen's component-type sections).
pub fn componentize_if_necessary(bytes: &[u8]) -> Result<Vec<u8>, String> {
    match classify(bytes)? {
        WasmKind::Component => Ok(bytes.to_vec()),
        WasmKind::Module => wit_component::ComponentEncoder::default()
            .validate(true)
            .module(bytes)
            .and_then(|encoder| {
                encoder.adapter(
                    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )
            })
            .and_then(|mut encoder| encoder.encode())
            .map_err(|e| format!("cannot adapt core module to a component: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_classified() {
        let module = [0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00];
        let component = [0x00, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00];
        assert_eq!(classify(&module), Ok(WasmKind::Module));
        assert_eq!(classify(&component), Ok(WasmKind::Component));
        assert!(classify(b"not wasm at all").is_err());
        assert!(classify(b"").is_err());
    }

    #[test]
    fn garbage_module_is_an_error_not_a_panic() {
        let mut bytes = vec![0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00];
        bytes.extend_from_slice(&[0xff; 16]);
        assert!(componentize_if_necessary(&bytes).is_err());
    }
}
