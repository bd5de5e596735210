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
    /// How far a missed target is missed, e.g. `1.85× over`.
    pub shortfall: Option<String>,
    /// The label of the row in the README summary; rows with a target are always there.
    pub headline: Option<String>,
    /// The summary's result text, when the default (value, baseline, ratio) reads badly.
    pub summary: Option<String>,
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
            shortfall: None,
            headline: None,
            summary: None,
        }
    }

    /// Adds a target and whether it is met (a yes/no target: no distance to report).
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    /// Adds the target `value ≤ limit`; when missed, says by what factor.
    pub fn at_most(self, target: impl Into<String>, value: f64, limit: f64) -> Row {
        let met = value <= limit;
        let mut row = self.target(target, met);
        if !met {
            row.shortfall = Some(format!("{} over", ratio(div(value, limit))));
        }
        row
    }

    /// Adds the target `value ≥ limit`; when missed, says by what factor.
    pub fn at_least(self, target: impl Into<String>, value: f64, limit: f64) -> Row {
        let met = value >= limit;
        let mut row = self.target(target, met);
        if !met {
            row.shortfall = Some(format!("{} short", ratio(div(limit, value))));
        }
        row
    }

    /// Adds the target `share ≥ limit` for shares in `[0, 1]`; when missed, says by how
    /// many percentage points.
    pub fn at_least_share(self, target: impl Into<String>, share: f64, limit: f64) -> Row {
        let met = share >= limit;
        let mut row = self.target(target, met);
        if !met {
            row.shortfall = Some(format!(
                "{:.1} percentage points short",
                (limit - share) * 100.0
            ));
        }
        row
    }

    /// Shows the row in the README summary as `label`.
    pub fn headline(mut self, label: impl Into<String>) -> Row {
        self.headline = Some(label.into());
        self
    }

    /// Shows the row in the README summary as `label`, with `result` as its result.
    pub fn headline_as(mut self, label: impl Into<String>, result: impl Into<String>) -> Row {
        self.headline = Some(label.into());
        self.summary = Some(result.into());
        self
    }

    /// The verdict column: `met`, `**missed** (…)` or `-`.
    pub fn verdict(&self) -> String {
        match (self.met, &self.shortfall) {
            (Some(true), _) => "met".into(),
            (Some(false), Some(by)) => format!("**missed**: {by}"),
            (Some(false), None) => "**missed**".into(),
            (None, _) => "-".into(),
        }
    }
}

/// Formats milliseconds (as seconds from 10 s up).
pub fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 10_000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.1} s", v / 1000.0)
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
    /// How long the run took, formatted.
    pub duration: String,
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
    let _ = writeln!(s, "- Total run time: {}", header.duration);
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
            match (r.met, &r.shortfall) {
                (Some(true), _) => "yes".to_owned(),
                (Some(false), Some(by)) => format!("**no** ({by})"),
                (Some(false), None) => "**no**".to_owned(),
                (None, _) => "-".to_owned(),
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

/// The README's benchmark summary: one line for the run, then every row with a target or a
/// headline, with whether its target is met and by how much it is missed.
pub fn summary(header: &Header, rows: &[Row], missing: &[String], results: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Latest run: {} on {}; command `{}`, run time {} after the build. Every figure with its baseline is in [`{results}`]({results}).\n",
        header.when, header.machine, header.command, header.duration
    );
    let _ = writeln!(s, "| figure | result | target | verdict |");
    let _ = writeln!(s, "| --- | --- | --- | --- |");
    for r in rows
        .iter()
        .filter(|r| r.met.is_some() || r.headline.is_some())
    {
        let label = r.headline.as_deref().unwrap_or(&r.measure);
        let result = match (&r.summary, r.ratio) {
            (Some(text), _) => text.clone(),
            (None, Some(x)) if r.baseline != "-" => {
                format!("{} vs {}: {}", r.value, r.baseline, ratio(x))
            }
            (None, _) => r.value.clone(),
        };
        let _ = writeln!(
            s,
            "| {}: {} | {} | {} | {} |",
            r.figure,
            label,
            result,
            r.target,
            r.verdict()
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

/// Where the generated summary starts in the README.
pub const README_BEGIN: &str = "<!-- bench:begin -->";
/// Where it ends.
pub const README_END: &str = "<!-- bench:end -->";

/// `text` with everything between the [`README_BEGIN`] and [`README_END`] lines replaced by
/// `body`; `None` when the markers are missing, repeated or out of order.
pub fn replace_marked(text: &str, body: &str) -> Option<String> {
    let begin = text.find(README_BEGIN)?;
    if text[begin + README_BEGIN.len()..].contains(README_BEGIN) {
        return None;
    }
    let after_begin = begin + README_BEGIN.len();
    let end = after_begin + text[after_begin..].find(README_END)?;
    if text[end + README_END.len()..].contains(README_END) {
        return None;
    }
    let body = body.trim_end_matches('\n');
    Some(format!(
        "{}\n{body}\n{}",
        &text[..after_begin],
        &text[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortfalls_say_by_how_much() {
        let over = Row::info("1 x", "m", "v", "b", None).at_most("≤ 1.5×", 3.0, 1.5);
        assert_eq!(over.verdict(), "**missed**: 2.00× over");
        let short = Row::info("1 x", "m", "v", "b", None).at_least("≥ 20×", 8.0, 20.0);
        assert_eq!(short.verdict(), "**missed**: 2.50× short");
        let pts = Row::info("1 x", "m", "v", "b", None).at_least_share("≥ 90 %", 0.879, 0.9);
        assert_eq!(pts.verdict(), "**missed**: 2.1 percentage points short");
        let ok = Row::info("1 x", "m", "v", "b", None).at_least("≥ 20×", 21.0, 20.0);
        assert_eq!(ok.verdict(), "met");
        assert_eq!(Row::info("1 x", "m", "v", "b", None).verdict(), "-");
    }

    #[test]
    fn the_marked_region_is_replaced_and_nothing_else() {
        let text = format!("# T\n\nbefore\n{README_BEGIN}\nold\ntable\n{README_END}\nafter\n");
        let new = replace_marked(&text, "new\n").expect("markers present");
        assert_eq!(
            new,
            format!("# T\n\nbefore\n{README_BEGIN}\nnew\n{README_END}\nafter\n")
        );
        assert_eq!(replace_marked(&new, "new\n").as_deref(), Some(new.as_str()));
        assert!(replace_marked("no markers", "x").is_none());
        assert!(replace_marked(&format!("{README_END}\n{README_BEGIN}"), "x").is_none());
        assert!(replace_marked(&format!("{text}{README_BEGIN}"), "x").is_none());
    }

    #[test]
    fn the_summary_lists_targets_and_headlines_only() {
        let header = Header {
            when: "2026-01-01 00:00 UTC".into(),
            machine: "test CPU".into(),
            command: "cargo xtask bench".into(),
            duration: "100 s".into(),
            notes: Vec::new(),
        };
        let rows = vec![
            Row::info("1 hit path", "plain", "1 ms", "2 ms", Some(0.5)),
            Row::info("1 hit path", "with target", "3 ms", "1 ms", Some(3.0)).at_most(
                "≤ 1.5×",
                3.0,
                1.5,
            ),
            Row::info("8 start-up", "compile", "9 ms", "-", None).headline("compile time"),
        ];
        let s = summary(
            &header,
            &rows,
            &["figure 9: failed".into()],
            "docs/bench/results.md",
        );
        assert!(!s.contains("plain"));
        assert!(s.contains(
            "| 1 hit path: with target | 3 ms vs 1 ms: 3.00× | ≤ 1.5× | **missed**: 2.00× over |"
        ));
        assert!(s.contains("| 8 start-up: compile time | 9 ms | - | - |"));
        assert!(s.contains("figure 9: failed"));
        assert!(s.contains("cargo xtask bench"));
    }
}
