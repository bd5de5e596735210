//! SVG plot of the hit-path latency distributions (figure 1), next to the Markdown table.
//!
//! One line per series over the percentiles p50…p99.9, latency on a log axis, so the floor,
//! the cache hit and the direct DB API (with and without 20 ms) read side by side.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::load::Outcome;

const PERCENTILES: [f64; 6] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
const COLORS: [RGBColor; 6] = [BLACK, BLUE, RED, MAGENTA, GREEN, CYAN];

/// Writes `path` (SVG) with one latency-percentile line per run.
pub fn latency_percentiles(path: &Path, title: &str, runs: &[(String, Outcome)]) -> Result<()> {
    let max = runs
        .iter()
        .map(|(_, o)| o.pct_ms(99.9))
        .fold(1.0f64, f64::max)
        * 1.5;
    let min = runs
        .iter()
        .map(|(_, o)| o.pct_ms(50.0))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, 1.0)
        / 1.5;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..PERCENTILES.len() - 1, (min..max).log_scale())
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_labels(PERCENTILES.len())
        .x_label_formatter(&|i| format!("p{}", PERCENTILES.get(*i).copied().unwrap_or(0.0)))
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    for (i, (label, o)) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                PERCENTILES
                    .iter()
                    .enumerate()
                    .map(|(x, q)| (x, o.pct_ms(*q).max(min))),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}
