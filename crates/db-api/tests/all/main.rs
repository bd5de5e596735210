//! Tests of the DB API: in-process requests against `app()` (fast, most of the suite), one
//! end-to-end run over loopback TCP, and the PostgreSQL backend when a database is given.

mod auth;
mod contract;
mod faults;
mod http;
mod item_writes;
mod postgres;
mod support;
mod tcp;
mod write_ids;
