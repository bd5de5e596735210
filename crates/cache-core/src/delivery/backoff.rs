//! Retry delays for failed batches: capped exponential backoff with jitter.
//!
//! Delay for the n-th consecutive failure: `d = min(max, base · 2^(n−1))`, then "equal jitter"
//! — a random point in `[d/2, d]` drawn from the caller's random number — so that instances
//! retrying together spread out but never retry much sooner than planned. A server's
//! `Retry-After` is a floor: the delay is never shorter than it, even above `max`.

use std::time::Duration;

use crate::time::duration_millis;

/// The delay before retrying after the `failures`-th consecutive failure (1-based).
#[must_use]
pub fn retry_delay(
    failures: u32,
    base: Duration,
    max: Duration,
    rand: u64,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = failures.saturating_sub(1).min(63);
    let base_ms = duration_millis(base);
    let max_ms = duration_millis(max);
    let full = base_ms.saturating_mul(1u64 << exponent).min(max_ms);
    let half = full / 2;
    let jitter = rand % (full - half + 1);
    let delay = Duration::from_millis(half + jitter);
    delay.max(retry_after.unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    fn check(failures: u32, rand: u64, retry_after: Option<u64>, expected_ms: u64) {
        let got = retry_delay(
            failures,
            BASE,
            MAX,
            rand,
            retry_after.map(Duration::from_secs),
        );
        assert_eq!(
            got,
            Duration::from_millis(expected_ms),
            "failure {failures}, rand {rand}"
        );
    }

    #[test]
    fn delay_doubles_with_jitter_and_is_capped() {
        let cases = [
            (1, 0, None, 500),
            (1, 500, None, 1_000),
            (1, 501, None, 500),
            (2, 0, None, 1_000),
            (3, 0, None, 2_000),
            (10, 0, None, 150_000),
            (10, u64::MAX, None, 150_000 + u64::MAX % 150_001),
            (u32::MAX, 0, None, 150_000),
            (0, 0, None, 500),
        ];
        for (failures, rand, ra, expected) in cases {
            check(failures, rand, ra, expected);
        }
    }

    #[test]
    fn retry_after_is_a_floor_even_above_the_cap() {
        check(1, 0, Some(30), 30_000);
        check(12, 0, Some(600), 600_000);
        check(12, 0, Some(1), 150_000);
    }
}
