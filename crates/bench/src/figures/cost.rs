//! Figure 9, cost: the DB API work per million client requests, recomputed from figures 3
//! and 4 of this run.
//!
//! Assumptions: reads follow figure 3's mix (Zipf s = 1.0 over 10k keys, TTL 60 s), from
//! a cold start and in the warm pass that follows it; writes follow figure 4's (hot-key skew, one flush a minute); the DB is billed per
//! request and per row written; the cache's own KV and compute are not included.

use crate::figures::offload::Offload;
use crate::figures::writes::Batching;
use crate::report::{div, Row};

const FIG: &str = "9 cost";
const MILLION: f64 = 1_000_000.0;

/// Rows from the other figures' ratios.
pub fn rows(reads: Option<&Offload>, writes: Option<&Batching>) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(r) = reads {
        for (pass, per) in [
            ("cold start", r.reads_per_origin_read),
            ("warm pass", r.warm_reads_per_origin_read),
        ] {
            let db_reads = div(MILLION, per);
            rows.push(Row::info(
                FIG,
                format!(
                    "DB reads per 1M client reads (from figure 3, {pass}, {} requests)",
                    r.requests
                ),
                format!("{db_reads:.0} ({:.0} avoided)", MILLION - db_reads),
                "1000000 (no cache)",
                Some(div(db_reads, MILLION)),
            ));
        }
    }
    if let Some(w) = writes {
        let requests = div(MILLION, w.writes_per_request);
        let rows_written = div(MILLION, w.writes_per_row);
        rows.push(Row::info(
            FIG,
            "DB write requests per 1M client writes (from figure 4)",
            format!("{requests:.0} ({:.0} avoided)", MILLION - requests),
            "1000000 (write-through)",
            Some(div(requests, MILLION)),
        ));
        rows.push(Row::info(
            FIG,
            "DB rows written per 1M client writes (from figure 4)",
            format!("{rows_written:.0} ({:.0} avoided)", MILLION - rows_written),
            "1000000 (write-through)",
            Some(div(rows_written, MILLION)),
        ));
    }
    rows
}
