//! Host-side bindings generated from WIT.
//!
//! - `spin`: `fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`, the
//!   interfaces spin-sdk 5.x imports (vendored from the spin-sdk crate into `wit/`).
//!   Generated with `async | trappable`: the host functions await backends (Redis) and
//!   a host failure becomes a trap rather than a guest-visible error.
//! - `wasi_kv`: `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch`
//!   @0.2.0-draft2 (vendored the same way), which spin-sdk 5.x reaches through
//!   `spin_sdk::wit::wasi::keyvalue`. `batch` is served as Spin serves it, its backends'
//!   quirks included (see `crate::kv`).
//! - `cron3` / `cron2`: the two generations of the cron trigger's world, kept in the
//!   repository's top-level `wit/` (shared with the flush component).

/// `fermyon:spin@2.0.0` key-value and variables.
#[allow(missing_docs, reason = "generated code")]
pub mod spin {
    wasmtime::component::bindgen!({
        path: "wit/spin@2.0.0",
        interfaces: "
            import fermyon:spin/key-value@2.0.0;
            import fermyon:spin/variables@2.0.0;
        ",
        imports: { default: async | trappable },
        with: { "fermyon:spin/key-value.store": crate::state::KvHandle },
    });
}

/// `wasi:keyvalue@0.2.0-draft2` store, atomics and batch.
#[allow(missing_docs, reason = "generated code")]
pub mod wasi_kv {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue@0.2.0-draft2",
        interfaces: "
            import wasi:keyvalue/store@0.2.0-draft2;
            import wasi:keyvalue/atomics@0.2.0-draft2;
            import wasi:keyvalue/batch@0.2.0-draft2;
        ",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::state::WasiBucket,
            "wasi:keyvalue/atomics.cas": crate::kv::KvCas,
        },
    });
}

/// `spin:cron@3.0.0`: async `handle-cron-event` export.
#[allow(missing_docs, reason = "generated code")]
pub mod cron3 {
    wasmtime::component::bindgen!({
        path: "../../wit/cron@3.0.0",
        world: "spin-cron",
        exports: { default: async | store },
    });
}

/// `fermyon:spin-cron@2.0.0`: sync `handle-cron-event` export.
#[allow(missing_docs, reason = "generated code")]
pub mod cron2 {
    wasmtime::component::bindgen!({
        path: "../../wit/cron@2.0.0",
        world: "spin-cron",
        exports: { default: async },
    });
}

pub use spin::fermyon::spin::key_value;
pub use spin::fermyon::spin::variables;
pub use wasi_kv::wasi::keyvalue::{
    atomics as wasi_atomics, batch as wasi_batch, store as wasi_store,
};
