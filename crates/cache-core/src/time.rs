//! Instants as plain Unix milliseconds.
//!
//! The core never reads a clock: every function that depends on time takes a [`UnixMillis`]
//! from the caller. Keeping instants as a small newtype (instead of `SystemTime`) makes them
//! cheap to store in the envelope, trivially comparable, and safe to do arithmetic on: all
//! operations saturate instead of overflowing on hostile stored values.

use std::time::Duration;

/// An instant: milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The instant `d` after `self`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_add(duration_millis(d)))
    }

    /// The time elapsed from `earlier` to `self`; zero if `earlier` is later.
    #[must_use]
    pub fn saturating_since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The time from `self` until `later`; zero if `later` has passed.
    #[must_use]
    pub fn until(self, later: UnixMillis) -> Duration {
        later.saturating_since(self)
    }
}

/// The clock as the request paths see it: the caller's wall clock, and a way to wait.
///
/// Only the fill lease's waiters need time to pass within one call (they poll the store for
/// an entry another request is filling); everything else takes a [`UnixMillis`] argument.
/// Tests implement it with a clock that moves only when slept on.
pub trait Clock {
    /// The current instant.
    fn now(&mut self) -> UnixMillis;
    /// Waits for `d`.
    fn sleep(&mut self, d: Duration);
}

/// `d` in whole milliseconds, saturating at `u64::MAX`.
#[must_use]
pub fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A clock that moves only when slept on (or set), and can act on each sleep: for tests of
/// anything that waits, with no real waiting.
#[derive(Default)]
pub struct TestClock {
    /// The current instant.
    pub now: UnixMillis,
    /// How long it has been slept on in total.
    pub slept: Duration,
    /// Called with the new instant after each sleep (a test's concurrent party acting).
    #[allow(clippy::type_complexity, reason = "a test hook")]
    pub on_sleep: Option<Box<dyn FnMut(UnixMillis)>>,
}

impl TestClock {
    /// A clock standing at `now`.
    #[must_use]
    pub fn at(now: UnixMillis) -> TestClock {
        TestClock {
            now,
            ..TestClock::default()
        }
    }
}

impl Clock for TestClock {
    fn now(&mut self) -> UnixMillis {
        self.now
    }

    fn sleep(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        self.slept += d;
        if let Some(hook) = &mut self.on_sleep {
            hook(self.now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        let end = UnixMillis(u64::MAX - 1);
        assert_eq!(
            end.saturating_add(Duration::from_secs(10)),
            UnixMillis(u64::MAX)
        );
        assert_eq!(
            UnixMillis(5).saturating_since(UnixMillis(10)),
            Duration::ZERO
        );
        assert_eq!(
            UnixMillis(10).until(UnixMillis(15)),
            Duration::from_millis(5)
        );
        assert_eq!(duration_millis(Duration::MAX), u64::MAX);
    }
}
