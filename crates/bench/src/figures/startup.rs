//! Figure 8, start-up: from spawning the host to the first request the gateway serves,
//! against the same measure for the reference DB API (a plain native server).
//!
//! The host compiles every component with Cranelift at start, so this is mostly compile
//! time; per-component compile and instantiate times are not visible from outside the host.

use std::time::Duration;

use crate::report::{div, ms, Row};

const FIG: &str = "8 start-up";

/// Rows from measured start-up times.
pub fn rows(hosts: &[Duration], db_api: Duration) -> Vec<Row> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = d.as_secs_f64() * 1000.0;
            let b = db_api.as_secs_f64() * 1000.0;
            Row::info(
                FIG,
                format!("host spawn → first served request (start {})", i + 1),
                ms(v),
                format!("{} (db-api spawn → first answer)", ms(b)),
                Some(div(v, b)),
            )
        })
        .collect()
}
