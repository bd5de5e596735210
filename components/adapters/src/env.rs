//! The clock and randomness the core takes as arguments.
//!
//! The core never reads a clock or draws random numbers itself; the components pass these in.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use cache_core::time::{Clock, UnixMillis};

/// The wall clock as Unix milliseconds (0 if the clock reads before the epoch).
#[must_use]
pub fn now() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    UnixMillis(ms)
}

/// A random number. `RandomState` is seeded from the host's random source (WASI `random_get`)
/// once per instance and advanced per call, so successive calls differ; the wall clock is
/// mixed in as well. Not for cryptography: stamps and lease owners only need uniqueness.
#[must_use]
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(now().0);
    h.finish()
}

/// The wall clock as cache-core's [`Clock`]; sleeping blocks the instance, which serves only
/// this request.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&mut self) -> UnixMillis {
        now()
    }

    fn sleep(&mut self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}
