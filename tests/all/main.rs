//! End-to-end tests over TCP: the real components on the embedded host.
//!
//! Build the components first (`cargo xtask test` does). Each module covers one area.

mod support;

mod app;
mod host_cron;
mod host_http;
mod host_kv;
mod host_outbound;
mod host_variables;
mod tidy;
