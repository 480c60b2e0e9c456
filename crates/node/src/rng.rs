//! A small seeded random generator (xoshiro256**), so every choice the node
//! makes can be replayed from its seed in a simulator.

/// A deterministic pseudo-random generator, seeded by the caller.
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

impl Rng {
    /// A generator whose whole sequence follows from `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            // splitmix64 spreads any seed, zero included, over the state.
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A number in `0..n` (`0` when `n` is 0), without modulo bias worth
    /// measuring (Lemire's multiply-shift).
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "the product of two u64 values is below 2^128"
    )]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of `len` elements.
    pub fn index(&mut self, len: usize) -> usize {
        // usize fits in u64 on every supported target, and the result is < len.
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i.saturating_add(1));
            items.swap(i, j);
        }
    }

    /// An exponentially distributed delay with the given mean, for Poisson
    /// timers, capped at eight times the mean.
    pub fn exponential(&mut self, mean: std::time::Duration) -> std::time::Duration {
        let u = self.unit();
        let factor = (-(1.0 - u).ln()).min(8.0);
        mean.mul_f64(factor)
    }
}
