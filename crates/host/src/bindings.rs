//! Host-side bindings generated from WIT.
//!
//! - `spin`: `fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`, the
//!   interfaces spin-sdk 5.x imports (vendored from the spin-sdk crate into `wit/`).
//!   Generated with `async | trappable`: the host functions await backends (Redis) and
//!   a host failure becomes a trap rather than a guest-visible error.
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
