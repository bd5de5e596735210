//! Links the component with a 256 KiB shadow stack instead of Rust's 1 MiB default.
//!
//! Hosts that pool instances (Spin, and the embedded host, keep the first 2 MiB of a linear
//! memory resident and reset it after each request) pay for every page an instance has
//! touched. The stack sits at the bottom of the memory and the data and heap above it, so a
//! smaller stack keeps more of what a request touches inside that window: a hit costs
//! about 10% less host CPU (perf, 2026-12-01). The deepest recursion is over a document
//! nested as deep as serde_json reads (128 levels): reading, filling, serving and comparing
//! one 124 levels deep needs more than 64 KiB and less than 128 KiB (the end-to-end test
//! `documents_nested_to_the_limits_are_read_compared_and_written` fails at 64 KiB), so
//! 256 KiB leaves twice that.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("wasm") {
        println!("cargo:rustc-link-arg=-zstack-size=262144");
    }
}
