//! End-to-end tests over TCP: the real components on the embedded host.
//!
//! Build the components first (`cargo xtask test` does). Each module covers one area.

mod support;

mod app;
mod browser;
mod db_fixture;
mod flush_admin;
mod flush_delivery;
mod flush_dlq;
mod flush_faults;
mod flush_gateway;
mod flush_no_atomics;
mod flush_split_store;
mod flush_support;
mod gateway_auth;
mod gateway_errors;
mod gateway_evict;
mod gateway_invalidate;
mod gateway_limit;
mod gateway_read;
mod gateway_rollout;
mod gateway_stampede;
mod gateway_support;
mod gateway_sync;
mod gateway_write;
mod host_cron;
mod host_http;
mod host_kv;
mod host_outbound;
mod host_variables;
mod ledger;
mod reliability_contention;
mod reliability_corrupt;
mod reliability_flaky;
mod reliability_hostile;
mod reliability_kill;
mod reliability_mode_switch;
mod reliability_outage;
mod reliability_shared_store;
mod reliability_support;
mod tidy;
