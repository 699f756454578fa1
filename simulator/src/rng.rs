//! The simulator's own seeded pseudo-random numbers: xoshiro256** seeded through SplitMix64,
//! uniform variates, and Poisson variates.
//!
//! - SplitMix64 (G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number
//!   generators", OOPSLA 2014) expands a 64-bit seed into the generator's state.
//! - xoshiro256** (D. Blackman, S. Vigna, "Scrambled linear pseudorandom number generators",
//!   ACM TOMS 47(4), 2021) draws the numbers; its 256-bit state is plain data, so it is saved
//!   with the rest of the simulator and a resumed run continues the very same sequence.
//! - Poisson variates: inversion by sequential search (Knuth, TAOCP vol. 2, 3.4.1) below a mean
//!   of 30, one uniform per variate; above it, Hörmann's transformed rejection "PTRS"
//!   (W. Hörmann, "The transformed rejection method for generating Poisson random variables",
//!   Insurance: Mathematics and Economics 12, 1993), which is exact and O(1).

use serde::{Deserialize, Serialize};

/// Below this mean, Poisson variates are drawn by inversion; at or above it, by PTRS.
const INVERSION_LIMIT: f64 = 30.0;

/// One step of SplitMix64: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A xoshiro256** generator. Its state is serialisable, so a saved generator resumes its
/// sequence exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is four SplitMix64 outputs of `seed` (never all zero).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        let mut rng = Self { s };
        if !rng.is_valid() {
            // Four consecutive SplitMix64 outputs are never all zero in practice; keep the
            // generator usable even so.
            rng.s[0] = 0x9E37_79B9_7F4A_7C15;
        }
        rng
    }

    /// Whether the state can generate (xoshiro's all-zero state only ever yields zeros).
    pub fn is_valid(&self) -> bool {
        self.s.iter().any(|&w| w != 0)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
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

    /// A uniform variate in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform variate in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2⁻³²).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// A Poisson variate of mean `lambda` (0 for a mean that is not positive or not finite),
    /// saturated at `u32::MAX`.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if !(lambda.is_finite() && lambda > 0.0) {
            0
        } else if lambda < INVERSION_LIMIT {
            self.poisson_inversion(lambda)
        } else {
            self.poisson_ptrs(lambda)
        }
    }

    /// Inversion by sequential search: the smallest `k` with `u < F(k)`.
    fn poisson_inversion(&mut self, lambda: f64) -> u32 {
        let u = self.uniform();
        let mut p = (-lambda).exp();
        let mut f = p;
        let mut k = 0u32;
        // F(k) can stall just below 1 through rounding; 1000 is far beyond any mean < 30.
        while u >= f && k < 1000 {
            k += 1;
            p *= lambda / f64::from(k);
            f += p;
        }
        k
    }

    /// Hörmann's PTRS (transformed rejection with squeeze), as in his 1993 paper.
    fn poisson_ptrs(&mut self, lambda: f64) -> u32 {
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let v_r = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= v_r {
                return saturate(k);
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
            let rhs = -lambda + k * loglam - ln_factorial(k);
            if lhs <= rhs {
                return saturate(k);
            }
        }
    }
}

fn saturate(k: f64) -> u32 {
    if k >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        k.max(0.0) as u32
    }
}

/// `ln(k!)` for a whole `k ≥ 0`: a table below 10, Stirling's series above (error < 1e-12).
fn ln_factorial(k: f64) -> f64 {
    const TABLE: [f64; 10] = [
        0.0,
        0.0,
        std::f64::consts::LN_2,
        1.791_759_469_228_055,
        3.178_053_830_347_945_8,
        4.787_491_742_782_046,
        6.579_251_212_010_101,
        8.525_161_361_065_415,
        10.604_602_902_745_25,
        12.801_827_480_081_469,
    ];
    if k < 10.0 {
        return TABLE[k.max(0.0) as usize];
    }
    let k2 = k * k;
    k * k.ln() - k + 0.5 * (std::f64::consts::TAU * k).ln() + 1.0 / (12.0 * k)
        - 1.0 / (360.0 * k * k2)
        + 1.0 / (1260.0 * k2 * k2 * k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_its_reference_output() {
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn xoshiro256_starstar_matches_its_reference_output() {
        // State 1, 2, 3, 4: outputs of the reference C implementation.
        let mut r = Rng { s: [1, 2, 3, 4] };
        let out: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(out, vec![11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
        let a: Vec<u64> = {
            let mut r = Rng::seed_from_u64(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::seed_from_u64(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::seed_from_u64(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniforms_stay_in_the_unit_interval_and_below_stays_below() {
        let mut r = Rng::seed_from_u64(1);
        for _ in 0..10_000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
        }
    }

    #[test]
    fn poisson_variates_have_the_right_mean_and_variance() {
        let mut r = Rng::seed_from_u64(42);
        for lambda in [0.3, 4.0, 15.0, 29.9, 30.0, 75.0, 600.0] {
            let n = 100_000;
            let xs: Vec<f64> = (0..n).map(|_| f64::from(r.poisson(lambda))).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // Standard error of the mean is sqrt(lambda / n); allow 5 of them.
            let tol = 5.0 * (lambda / n as f64).sqrt();
            assert!((mean - lambda).abs() < tol, "lambda {lambda}: mean {mean}");
            assert!(
                (var / lambda - 1.0).abs() < 0.03,
                "lambda {lambda}: variance {var}"
            );
        }
        assert_eq!(r.poisson(0.0), 0);
        assert_eq!(r.poisson(f64::NAN), 0);
    }

    #[test]
    fn ln_factorial_is_accurate_on_both_sides_of_the_table() {
        let mut exact = 0.0f64;
        for k in 1..=170u32 {
            exact += f64::from(k).ln();
            let got = ln_factorial(f64::from(k));
            assert!((got - exact).abs() < 1e-9 * exact.max(1.0), "k {k}");
        }
    }
}
