//! The flush machinery: delivering the write buffer to the DB API, and housekeeping.
//!
//! [`tick`] is what the cron component and `POST /admin/flush` run: one [`flush`] run, then one
//! [`sweep`]. The run is told top-down in [`flush`]; the rest are its parts.

pub(crate) mod backoff;
pub mod batch;
pub mod batch_id;
mod bulk_read;
pub mod dlq;
pub mod flush;
pub mod lease;
pub mod rewrite_window;
pub mod settle;
pub mod state;
pub mod sweep;
pub mod tick;
