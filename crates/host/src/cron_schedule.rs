//! Cron expressions as the Spin cron trigger reads them.
//!
//! The trigger plugin parses with croner (through tokio-cron-scheduler) requiring the
//! seconds field and ANDing day-of-month with day-of-week, in UTC: exactly six fields
//! (`sec min hour dom month dow`), or a nickname such as `@hourly`. A five-field
//! expression is an error, as it is under `spin up`; croner's own messages are kept.

use chrono::{DateTime, Utc};
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    expression: String,
}

impl CronSchedule {
    /// Parses a six-field expression (or a nickname).
    ///
    /// # Errors
    /// A one-line message when the expression is not valid.
    pub fn parse(expression: &str) -> Result<CronSchedule, String> {
        let cron = Cron::new(expression)
            .with_seconds_required()
            .with_dom_and_dow()
            .parse()
            .map_err(|e| e.to_string())?;
        Ok(CronSchedule {
            cron,
            expression: expression.to_string(),
        })
    }

    /// The first firing time strictly after `after`, if any.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn next_firing_times() {
        let rows = [
            (
                "*/2 * * * * *",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:02Z",
            ),
            (
                "0 * * * * *",
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:01:00Z",
            ),
            (
                "0 */5 * * * *",
                "2026-01-01T00:03:10Z",
                "2026-01-01T00:05:00Z",
            ),
            (
                "30 0 12 * * *",
                "2026-01-01T12:00:30Z",
                "2026-01-02T12:00:30Z",
            ),
            (
                "0 0 0 1 * *",
                "2026-01-15T00:00:00Z",
                "2026-02-01T00:00:00Z",
            ),
            ("@hourly", "2026-06-01T00:10:00Z", "2026-06-01T01:00:00Z"),
            (
                "0 0 0 * * MON",
                "2026-11-24T10:00:00Z",
                "2026-11-30T00:00:00Z",
            ),
        ];
        for (expr, from, want) in rows {
            let schedule = CronSchedule::parse(expr).expect(expr);
            assert_eq!(
                schedule.next_after(at(from)),
                Some(at(want)),
                "{expr} after {from}"
            );
        }
    }

    #[test]
    fn invalid_expressions_are_rejected() {
        for expr in [
            "*/5 * * * *",
            "",
            "* * * * * * * *",
            "61 * * * * *",
            "a b c d e f",
        ] {
            let err = CronSchedule::parse(expr).expect_err(expr);
            assert!(!err.contains('\n'));
        }
    }
}
