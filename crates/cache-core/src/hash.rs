//! A tiny, dependency-free, stable hash (FNV-1a, 64 bit).
//!
//! Used where the core needs a deterministic fingerprint that must never change between
//! releases: the envelope's payload checksum and the sealed batch id. It is not
//! cryptographic; it only has to detect accidental corruption and make ids collision-unlikely.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An incremental FNV-1a 64-bit hasher.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// A hasher with the standard offset basis.
    #[must_use]
    pub fn new() -> Self {
        Fnv64(OFFSET_BASIS)
    }

    /// A hasher whose state is first mixed with `seed`, for an independent second hash.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        let mut h = Fnv64::new();
        h.write(&seed.to_be_bytes());
        h
    }

    /// Mixes `bytes` into the state.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    /// The current hash value.
    #[must_use]
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64::new()
    }
}

/// FNV-1a 64 of `bytes`.
#[must_use]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_fnv1a_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
