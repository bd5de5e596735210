//! The results table: every figure next to the baseline measured in the same run.
//!
//! Absolute times drift between machines and between runs on a shared machine; a ratio
//! against a baseline taken minutes apart on the same machine is what carries over. Each
//! row therefore holds the value, its baseline, the ratio and the target.

use std::fmt::Write as _;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Figure number and name, e.g. `1 hit path`.
    pub figure: &'static str,
    /// What is measured.
    pub measure: String,
    /// The measured value, formatted with its unit.
    pub value: String,
    /// The baseline, formatted with its unit, and what it is.
    pub baseline: String,
    /// value / baseline (or the figure's natural ratio), when one is meaningful.
    pub ratio: Option<f64>,
    /// The target from the issue, or `-`.
    pub target: String,
    /// Whether the target is met; `None` when there is no target.
    pub met: Option<bool>,
}

impl Row {
    /// A row without a target.
    pub fn info(
        figure: &'static str,
        measure: impl Into<String>,
        value: impl Into<String>,
        baseline: impl Into<String>,
        ratio: Option<f64>,
    ) -> Row {
        Row {
            figure,
            measure: measure.into(),
            value: value.into(),
            baseline: baseline.into(),
            ratio,
            target: "-".into(),
            met: None,
        }
    }

    /// Adds a target and whether it is met.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

/// Formats milliseconds.
pub fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// Formats a ratio.
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "∞".into()
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else if r >= 0.01 || r == 0.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.4}×")
    }
}

/// `a / b`, infinite when `b` is zero.
pub fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::INFINITY
    } else {
        a / b
    }
}

/// Context printed above the table.
pub struct Header {
    /// When the run started (UTC, as `date` prints it or seconds since the epoch).
    pub when: String,
    /// Machine description.
    pub machine: String,
    /// The command that produced the table.
    pub command: String,
    /// Notes (mode, load settings).
    pub notes: Vec<String>,
}

/// Renders the Markdown document.
pub fn markdown(header: &Header, rows: &[Row], missing: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# cache-sync benchmark results\n");
    let _ = writeln!(s, "- Run: {}", header.when);
    let _ = writeln!(s, "- Machine: {}", header.machine);
    let _ = writeln!(s, "- Command: `{}`", header.command);
    for n in &header.notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(
        s,
        "\n| figure | measure | value | baseline (same run) | ratio | target | met |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.measure,
            r.value,
            r.baseline,
            r.ratio.map(ratio).unwrap_or_else(|| "-".into()),
            r.target,
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            }
        );
    }
    if !missing.is_empty() {
        let _ = writeln!(s, "\nNot measured in this run:\n");
        for m in missing {
            let _ = writeln!(s, "- {m}");
        }
    }
    s
}
