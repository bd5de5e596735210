//! Figure 8, start-up: from spawning the host to the first request the gateway serves
//! (against the same measure for the reference DB API, a plain native server), and what
//! each component costs to compile and to instantiate, against the probe (the minimal
//! component) in the same run.
//!
//! Compile and instantiate times are measured in this process through the host library:
//! [`App::load`] loads the application (the gateway, the probe and the flush component) as
//! the host does at start and records each component's load times, and
//! [`App::instantiate`] creates a fresh store and instance as every request does. Medians
//! over [`LOADS`] loads and [`INSTANCES`] instantiations per component per load.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cache_sync_host::{App, AppOptions};

use crate::report::{div, ms, Row};

const FIG: &str = "8 start-up";
/// Loads of the whole application (each compiles every component).
const LOADS: usize = 3;
/// Instantiations of each component per load.
const INSTANCES: usize = 25;
/// The components, the baseline (the minimal one) last.
const COMPONENTS: [&str; 3] = ["gateway", "flush", "probe"];

/// Rows from measured host start-up times.
pub fn rows(hosts: &[Duration], db_api: Duration) -> Vec<Row> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = d.as_secs_f64() * 1000.0;
            let b = db_api.as_secs_f64() * 1000.0;
            let row = Row::info(
                FIG,
                format!("host spawn → first served request (start {})", i + 1),
                ms(v),
                format!("{} (db-api spawn → first answer)", ms(b)),
                Some(div(v, b)),
            );
            if i == 0 {
                row.headline("host start to first served request")
            } else {
                row
            }
        })
        .collect()
}

/// Per-component times, in milliseconds, one sample per load or instantiation.
#[derive(Default)]
struct Samples {
    componentize: Vec<f64>,
    compile: Vec<f64>,
    link: Vec<f64>,
    instantiate: Vec<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Formats a time that may be well under a millisecond.
fn short(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0} µs", v * 1000.0)
    } else {
        ms(v)
    }
}

/// Loads `manifest` (which must hold every one of [`COMPONENTS`]) and measures each
/// component.
pub async fn components(manifest: &Path, quick: bool) -> Result<Vec<Row>> {
    let loads = if quick { 1 } else { LOADS };
    let mut samples: Vec<Samples> = COMPONENTS.iter().map(|_| Samples::default()).collect();
    for _ in 0..loads {
        let mut options = AppOptions::new(manifest);
        // No state directory: an in-memory store, no log files; nothing is served.
        options.state_dir = Some(Default::default());
        options.echo_component_output = false;
        let app = tokio::task::spawn_blocking(move || App::load(&options))
            .await
            .context("load task")?
            .context("loading the application in process")?;
        for (id, s) in COMPONENTS.iter().zip(&mut samples) {
            let loaded = app
                .components
                .get(*id)
                .with_context(|| format!("the application has no component '{id}'"))?;
            let t = loaded.load_times;
            s.componentize.push(millis(t.componentize));
            s.compile.push(millis(t.compile));
            s.link.push(millis(t.link));
            for _ in 0..INSTANCES {
                let start = Instant::now();
                app.instantiate(id).await?;
                s.instantiate.push(millis(start.elapsed()));
            }
        }
    }
    let medians: Vec<[f64; 4]> = samples
        .iter_mut()
        .map(|s| {
            [
                median(&mut s.componentize),
                median(&mut s.compile),
                median(&mut s.link),
                median(&mut s.instantiate),
            ]
        })
        .collect();
    // The probe, last in COMPONENTS.
    let base = medians.last().copied().unwrap_or([f64::NAN; 4]);
    let mut rows = Vec::new();
    let compile_summary = COMPONENTS
        .iter()
        .zip(&medians)
        .map(|(id, m)| format!("{id} {}", ms(m[1])))
        .collect::<Vec<_>>()
        .join(", ");
    let instantiate_summary = COMPONENTS
        .iter()
        .zip(&medians)
        .map(|(id, m)| format!("{id} {}", short(m[3])))
        .collect::<Vec<_>>()
        .join(", ");
    for (id, m) in COMPONENTS.iter().zip(&medians) {
        let is_base = *id == "probe";
        let vs = |v: f64, b: f64, what: &str| {
            if is_base {
                (format!("{} (the baseline itself)", short(b)), None)
            } else {
                (format!("{} (probe {what})", short(b)), Some(div(v, b)))
            }
        };
        let (b, r) = vs(m[1], base[1], "compile");
        let mut row = Row::info(
            FIG,
            format!("{id}: compile (wasmtime Component::new, Cranelift), median of {loads}"),
            ms(m[1]),
            b,
            r,
        );
        if *id == "gateway" {
            row = row.headline_as(
                "per-component compile time (median; the probe is the minimal component)",
                compile_summary.clone(),
            );
        }
        rows.push(row);
        let (b, r) = vs(m[3], base[3], "instantiate");
        let mut row = Row::info(
            FIG,
            format!(
                "{id}: instantiate in a fresh store (as each request), median of {}",
                loads * INSTANCES
            ),
            short(m[3]),
            b,
            r,
        );
        if *id == "gateway" {
            row = row.headline_as(
                "per-component instantiate time (median, fresh store)",
                instantiate_summary.clone(),
            );
        }
        rows.push(row);
        let (b, r) = vs(m[0] + m[2], base[0] + base[2], "read, adapt and link");
        rows.push(Row::info(
            FIG,
            format!("{id}: read and adapt to a component, then link, median of {loads}"),
            format!("{} + {}", short(m[0]), short(m[2])),
            b,
            r,
        ));
    }
    Ok(rows)
}
