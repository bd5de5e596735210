//! Deterministic key choice: a small seeded generator and a Zipf sampler.
//!
//! Real read traffic is skewed (a few keys are hot, most are cold); Zipf with s = 1.0 is the
//! usual model. Seeded so that two runs drive the same key sequence and only the system
//! under test varies.

/// xorshift64*: fast, seeded, good enough to pick keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks `0..n`: rank `k` has weight `1 / (k + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks (at least one) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// Probability of rank `k` (0 for ranks outside the distribution).
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf.first().copied().unwrap_or(0.0),
            k if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// Expected number of distinct ranks among `draws` independent draws:
    /// the sum over ranks of `1 - (1 - p)^draws`.
    pub fn expected_distinct(&self, draws: u64) -> f64 {
        let n = draws as f64;
        (0..self.cdf.len())
            .map(|k| {
                let p = self.probability(k);
                // (1 - p)^n, computed as exp(n·ln(1 - p)) to stay accurate for tiny p.
                1.0 - (n * (-p).ln_1p()).exp()
            })
            .sum()
    }

    /// A rank drawn with `rng`.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_zero_is_the_most_frequent() {
        let z = Zipf::new(100, 1.0);
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 100];
        for _ in 0..10_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[50]);
    }

    #[test]
    fn expected_distinct_matches_the_closed_forms() {
        // One rank: every draw hits it.
        assert!((Zipf::new(1, 1.0).expected_distinct(5) - 1.0).abs() < 1e-9);
        // s = 0 is uniform: n (1 - (1 - 1/n)^d).
        let uniform = Zipf::new(100, 0.0).expected_distinct(100);
        let closed = 100.0 * (1.0 - 0.99f64.powi(100));
        assert!((uniform - closed).abs() < 1e-6, "{uniform} vs {closed}");
        // Zipf(1.0) over 10k ranks, 100k draws: about 8.56k distinct ranks.
        let z = Zipf::new(10_000, 1.0).expected_distinct(100_000);
        assert!((8_500.0..8_620.0).contains(&z), "{z}");
        assert_eq!(Zipf::new(10, 1.0).expected_distinct(0), 0.0);
    }

    #[test]
    fn sampled_distinct_count_is_near_the_expectation() {
        let z = Zipf::new(10_000, 1.0);
        let mut rng = Rng::new(42);
        let mut seen = vec![false; 10_000];
        for _ in 0..100_000 {
            seen[z.sample(&mut rng)] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count() as f64;
        let expected = z.expected_distinct(100_000);
        assert!(
            (distinct - expected).abs() < 0.02 * expected,
            "{distinct} vs {expected}"
        );
    }
}
