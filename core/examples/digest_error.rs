//! Measures the t-digest median's error against the exact median (`docs/medians.md`).
//!
//! `cargo run --release -p traffic-core --example digest_error`
use traffic_core::digest::{VehicleDigest, exact_median, rank_error};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn poisson(&mut self, mean: f64) -> f64 {
        let l = (-mean).exp();
        let mut k = 0.0;
        let mut p = 1.0;
        loop {
            p *= self.next();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }
}

fn main() {
    println!("| data | n | size | worst rank error | worst value error | mean value error |");
    println!("|---|---|---|---|---|---|");
    for size in [100usize, 200, 400] {
        for (name, n, parts) in [
            ("uniform continuous 0..1000", 20_000usize, 1usize),
            ("skewed (exponential, integer)", 20_000, 1),
            ("poisson counts, 4 shards x 96 panes merged", 23_040, 384),
            ("poisson counts, one 15-min pane", 60, 1),
        ] {
            let mut worst_rank: f64 = 0.0;
            let mut worst_val: f64 = 0.0;
            let mut sum_val = 0.0;
            let trials = 200;
            for t in 0..trials {
                let mut rng = Rng(0x9e3779b97f4a7c15 ^ (t as u64 * 7919 + size as u64));
                let mean = 3.0 + rng.next() * 30.0;
                let values: Vec<f64> = (0..n)
                    .map(|_| match name.as_bytes()[0] {
                        b'u' => rng.next() * 1000.0,
                        b's' => (-(1.0 - rng.next()).ln() * 8.0).floor(),
                        _ => rng.poisson(mean),
                    })
                    .collect();
                let chunk = n.div_ceil(parts);
                let digests: Vec<VehicleDigest> = values
                    .chunks(chunk)
                    .map(|c| {
                        let mut d = VehicleDigest::new(size);
                        for v in c {
                            d.push(*v);
                        }
                        d.flush();
                        d
                    })
                    .collect();
                let est = VehicleDigest::merge_all(&digests)
                    .median()
                    .unwrap_or(f64::NAN);
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                let exact = exact_median(&values).unwrap_or(f64::NAN);
                worst_rank = worst_rank.max(rank_error(&sorted, est));
                worst_val = worst_val.max((est - exact).abs());
                sum_val += (est - exact).abs();
            }
            println!(
                "| {name} | {n} | {size} | {:.4} | {:.3} | {:.4} |",
                worst_rank,
                worst_val,
                sum_val / trials as f64
            );
        }
    }
}
