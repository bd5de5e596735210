//! Write stamps: a total order over writes from many instances, without coordination.
//!
//! Spin KV has no compare-and-swap, so writes cannot be ordered by a shared counter. Instead
//! every write gets a [`Stamp`] = (Unix millis, per-instance sequence, per-instance random
//! 64-bit id). Two writes are ordered by millis, then sequence, then instance id; ties are
//! impossible unless two instances draw the same random id. Last writer wins by stamp.
//!
//! # Text form
//!
//! 32 lowercase hex digits: 12 for millis, 4 for the sequence, 16 for the instance id.
//! Fixed width makes lexicographic order equal stamp order, so the `w:{stamp}` keys of the
//! write buffer sort oldest first.
//!
//! # Version for the DB API
//!
//! The DB API keeps the highest `u64` version per key. [`Stamp::version`] packs
//! `millis << 20 | min(seq, 255) << 12 | instance >> 52` (millis is capped at 2^44 − 1, the
//! year 2527). It is monotone in stamp order (`a < b` ⇒ `version(a) ≤ version(b)`), and strictly
//! increasing for the writes of one instance, because [`StampGen`] never hands out a sequence
//! above 255 within one millisecond (it moves to the next millisecond instead). Two writes of
//! different instances in the same millisecond and sequence share a version only if their
//! ids agree in the top 12 bits (1 in 4096); such writes are concurrent anyway, and the DB
//! keeps whichever it saw first.

use std::fmt;

use thiserror::Error;

use crate::contract::VERSION_TIME_SHIFT;
use crate::time::UnixMillis;

/// Length of a stamp's text form.
pub const STAMP_HEX_LEN: usize = crate::contract::WRITE_ID_LEN;

/// Largest millis a stamp holds (2^44 − 1); later instants are clamped.
pub const MAX_STAMP_MILLIS: u64 = (1 << 44) - 1;

/// Highest sequence number that still counts in the version.
const MAX_VERSION_SEQ: u16 = 0xff;

/// Why a stamp's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StampError {
    /// Not exactly 32 lowercase hex digits.
    #[error("stamp must be {STAMP_HEX_LEN} lowercase hex digits")]
    Format,
    /// The millis part exceeds the representable range.
    #[error("stamp millis out of range")]
    Range,
}

/// The identity and order of one write. Ordered by (millis, seq, instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    millis: u64,
    seq: u16,
    instance: u64,
}

impl Stamp {
    /// A stamp from its parts; millis above [`MAX_STAMP_MILLIS`] are clamped.
    #[must_use]
    pub fn new(millis: UnixMillis, seq: u16, instance: u64) -> Stamp {
        Stamp {
            millis: millis.0.min(MAX_STAMP_MILLIS),
            seq,
            instance,
        }
    }

    /// When the write was stamped.
    #[must_use]
    pub fn millis(&self) -> UnixMillis {
        UnixMillis(self.millis)
    }

    /// The per-instance sequence number.
    #[must_use]
    pub fn seq(&self) -> u16 {
        self.seq
    }

    /// The random id of the instance that stamped the write.
    #[must_use]
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The per-key version sent to the DB API (see the module docs).
    #[must_use]
    pub fn version(&self) -> u64 {
        let seq = u64::from(self.seq.min(MAX_VERSION_SEQ));
        (self.millis.min(MAX_STAMP_MILLIS) << VERSION_TIME_SHIFT)
            | (seq << 12)
            | (self.instance >> 52)
    }

    /// Parses the 32-digit text form.
    pub fn parse(s: &str) -> Result<Stamp, StampError> {
        let ok = s.len() == STAMP_HEX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(StampError::Format);
        }
        let part = |from: usize, to: usize| {
            s.get(from..to)
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or(StampError::Format)
        };
        let millis = part(0, 12)?;
        let seq = u16::try_from(part(12, 16)?).map_err(|_| StampError::Format)?;
        let instance = part(16, 32)?;
        if millis > MAX_STAMP_MILLIS {
            return Err(StampError::Range);
        }
        Ok(Stamp {
            millis,
            seq,
            instance,
        })
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:012x}{:04x}{:016x}",
            self.millis, self.seq, self.instance
        )
    }
}

/// Hands out strictly increasing stamps for one long-lived writer (the tests' simulated
/// gateways and fuzz inputs; a Spin request makes one write and stamps it directly).
///
/// Create one per writer with a random id. If the clock goes
/// backwards the generator keeps its last millis; after 256 stamps in one millisecond it
/// moves on to the next millisecond, so versions stay strictly increasing.
#[derive(Debug, Clone)]
pub struct StampGen {
    instance: u64,
    last: Option<Stamp>,
}

impl StampGen {
    /// A generator for an instance with random id `instance`.
    #[must_use]
    pub fn new(instance: u64) -> StampGen {
        StampGen {
            instance,
            last: None,
        }
    }

    /// The next stamp at time `now`.
    pub fn next(&mut self, now: UnixMillis) -> Stamp {
        let now = now.0.min(MAX_STAMP_MILLIS);
        let stamp = match self.last {
            Some(last) if now <= last.millis => {
                if last.seq < MAX_VERSION_SEQ {
                    Stamp::new(UnixMillis(last.millis), last.seq + 1, self.instance)
                } else if last.millis < MAX_STAMP_MILLIS {
                    Stamp::new(UnixMillis(last.millis + 1), 0, self.instance)
                } else {
                    Stamp::new(
                        UnixMillis(last.millis),
                        last.seq.saturating_add(1),
                        self.instance,
                    )
                }
            }
            _ => Stamp::new(UnixMillis(now), 0, self.instance),
        };
        self.last = Some(stamp);
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_form_is_fixed_width_lowercase_hex() {
        let s = Stamp::new(UnixMillis(0x0123_4567_89ab), 7, 0xdead_beef_0000_0001);
        assert_eq!(s.to_string(), "0123456789ab0007deadbeef00000001");
        assert_eq!(Stamp::parse(&s.to_string()), Ok(s));
        for bad in [
            "",
            "123456789ABC0007deadbeef00000001",
            "123456789abc0007deadbeef0000001",
            "g23456789abc0007deadbeef00000001",
        ] {
            assert_eq!(Stamp::parse(bad), Err(StampError::Format), "{bad:?}");
        }
        assert_eq!(
            Stamp::parse("fffffffffff000000000000000000000"),
            Err(StampError::Range)
        );
    }

    #[test]
    fn generator_is_strictly_increasing_even_when_the_clock_stalls_or_goes_back() {
        let mut gen = StampGen::new(42);
        let mut prev = gen.next(UnixMillis(1_000));
        for now in [1_000, 999, 1_000, 500].iter().cycle().take(1_000) {
            let next = gen.next(UnixMillis(*now));
            assert!(next > prev, "{next} after {prev}");
            assert!(
                next.version() > prev.version(),
                "version of {next} after {prev}"
            );
            prev = next;
        }
    }

    #[test]
    fn version_keeps_millis_in_the_high_bits() {
        let s = Stamp::new(UnixMillis(1_700_000_000_000), 3, u64::MAX);
        assert_eq!(s.version() >> 20, 1_700_000_000_000);
        assert_eq!(
            Stamp::new(UnixMillis(u64::MAX), 0, 0).millis(),
            UnixMillis(MAX_STAMP_MILLIS)
        );
    }

    fn stamp() -> impl Strategy<Value = Stamp> {
        (0..=MAX_STAMP_MILLIS, any::<u16>(), any::<u64>())
            .prop_map(|(m, s, i)| Stamp::new(UnixMillis(m), s, i))
    }

    proptest! {
        #[test]
        fn text_order_equals_stamp_order_and_version_is_monotone(a in stamp(), b in stamp()) {
            prop_assert_eq!(a.to_string().cmp(&b.to_string()), a.cmp(&b));
            prop_assert_eq!(Stamp::parse(&a.to_string()), Ok(a));
            if a < b {
                prop_assert!(a.version() <= b.version());
            }
        }
    }
}
