//! The traffic model's formulas, as pure functions: the time-of-day demand profile, effective
//! green, the BPR speed curve and Webster's uniform delay. [`crate::Simulator`] combines them;
//! the crate documentation explains how.

use serde::{Deserialize, Serialize};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// BPR coefficient α (Bureau of Public Roads, *Traffic Assignment Manual*, 1964).
pub const BPR_ALPHA: f64 = 0.15;
/// BPR exponent β.
pub const BPR_BETA: i32 = 4;

/// How demand varies with the time of day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemandProfile {
    /// A working day in UTC: quiet night, morning peak near 08:00, evening peak near 17:30.
    #[default]
    Daily,
    /// The same demand at every hour (factor 1); for experiments and tests.
    Constant,
}

impl DemandProfile {
    /// The demand factor at epoch milliseconds `ts_ms` (peaks near 1).
    pub fn factor(self, ts_ms: i64) -> f64 {
        match self {
            DemandProfile::Daily => daily_factor(ts_ms),
            DemandProfile::Constant => 1.0,
        }
    }
}

/// The working-day profile at `ts_ms` (UTC):
///
/// `f(h) = 0.06 + 0.56·day(h) + 0.40·N(h; 8.0, 0.9) + 0.36·N(h; 17.5, 1.2)`
///
/// with `h` the hour of day, `N(h; μ, σ) = exp(−(h−μ)²/2σ²)` and
/// `day(h) = σ((h − 6.5)/0.6) · σ((21.5 − h)/0.9)` a smooth step (σ the logistic function) that
/// is ~0 at night and ~1 from 07:30 to 20:30. Values: 0.06 at 03:00, 0.98 at 08:00, 0.62 at
/// noon, 0.97 at 17:30. The shape is this crate's own stylised curve, with peaks where urban
/// count stations usually show them.
pub fn daily_factor(ts_ms: i64) -> f64 {
    let h = ts_ms.rem_euclid(DAY_MS) as f64 / 3_600_000.0;
    let day = logistic((h - 6.5) / 0.6) * logistic((21.5 - h) / 0.9);
    0.06 + 0.56 * day + 0.40 * bump(h, 8.0, 0.9) + 0.36 * bump(h, 17.5, 1.2)
}

fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn bump(h: f64, mu: f64, sigma: f64) -> f64 {
    let z = (h - mu) / sigma;
    (-0.5 * z * z).exp()
}

/// A light's signal timing as the model uses it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    /// Cycle length `C = G + Y + R`, s.
    pub cycle_s: f64,
    /// Effective green `g = G + Y − l` (displayed green plus yellow minus lost time), clamped
    /// to `0..=C`; 0 when the light has no green at all.
    pub effective_green_s: f64,
}

impl Split {
    /// The split of a light with displayed green `green_s` and red `red_s`, given the yellow
    /// and the lost time per phase. With the defaults (yellow 4 s, lost time 4 s, as in the
    /// core's Webster) effective green equals displayed green.
    pub fn new(green_s: f64, red_s: f64, yellow_s: f64, lost_s: f64) -> Self {
        let cycle_s = (green_s + yellow_s + red_s).max(0.0);
        let effective_green_s = if green_s > 0.0 {
            (green_s + yellow_s - lost_s).clamp(0.0, cycle_s)
        } else {
            0.0
        };
        Self {
            cycle_s,
            effective_green_s,
        }
    }

    /// Green ratio `λ = g / C` (0 for an empty cycle).
    pub fn green_ratio(&self) -> f64 {
        if self.cycle_s > 0.0 {
            self.effective_green_s / self.cycle_s
        } else {
            0.0
        }
    }
}

/// Capacity of a light over `period_s` seconds: `s · (g/C) · T / 3600` vehicles.
pub fn capacity(saturation_veh_h: f64, green_ratio: f64, period_s: f64) -> f64 {
    saturation_veh_h * green_ratio * period_s / 3600.0
}

/// Degree of saturation `x = demand / capacity` (0 without demand, infinite without capacity).
pub fn degree_of_saturation(demand: f64, capacity: f64) -> f64 {
    if demand <= 0.0 {
        0.0
    } else if capacity <= 0.0 {
        f64::INFINITY
    } else {
        demand / capacity
    }
}

/// Mean speed by the BPR volume-delay function: travel time grows as `t0·(1 + α·x^β)`, so the
/// speed is `v_f / (1 + 0.15·x⁴)`, never below `min_kmh`.
pub fn bpr_speed_kmh(free_flow_kmh: f64, x: f64, min_kmh: f64) -> f64 {
    let slowdown = 1.0 + BPR_ALPHA * x.max(0.0).powi(BPR_BETA);
    (free_flow_kmh / slowdown).max(min_kmh)
}

/// Webster's (1958) uniform delay per vehicle, the first term of his delay formula:
/// `d1 = 0.5·C·(1 − λ)² / (1 − min(x, 1)·λ)` seconds, `λ = g/C`.
pub fn webster_uniform_delay_s(cycle_s: f64, green_ratio: f64, x: f64) -> f64 {
    let lambda = green_ratio.clamp(0.0, 1.0);
    let denom = 1.0 - x.clamp(0.0, 1.0) * lambda;
    if denom <= 1e-12 {
        // Only when λ = 1 (never red): no uniform delay.
        return 0.0;
    }
    0.5 * cycle_s.max(0.0) * (1.0 - lambda).powi(2) / denom
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn the_daily_profile_peaks_in_the_morning_and_evening_and_is_quiet_at_night() {
        let at = |h: f64| daily_factor((h * H as f64) as i64);
        assert!(at(3.0) < 0.1, "{}", at(3.0));
        assert!(at(8.0) > 0.95, "{}", at(8.0));
        assert!(at(17.5) > 0.95, "{}", at(17.5));
        assert!(at(12.0) > 0.5 && at(12.0) < 0.75, "{}", at(12.0));
        assert!(at(8.0) > at(6.0) && at(8.0) > at(10.0));
        assert!(at(17.5) > at(15.0) && at(17.5) > at(20.0));
        // Every day is the same, also before 1970.
        assert_eq!(daily_factor(8 * H), daily_factor(8 * H + 10 * DAY_MS));
        assert_eq!(daily_factor(8 * H), daily_factor(8 * H - 3 * DAY_MS));
    }

    #[test]
    fn speeds_fall_as_saturation_rises() {
        let mut last = f64::INFINITY;
        for i in 0..=40 {
            let v = bpr_speed_kmh(50.0, f64::from(i) * 0.1, 5.0);
            assert!(v <= last);
            last = v;
        }
        assert_eq!(bpr_speed_kmh(50.0, 0.0, 5.0), 50.0);
        assert!((bpr_speed_kmh(50.0, 1.0, 5.0) - 50.0 / 1.15).abs() < 1e-12);
        assert_eq!(bpr_speed_kmh(50.0, 10.0, 5.0), 5.0);
        assert_eq!(bpr_speed_kmh(50.0, f64::INFINITY, 5.0), 5.0);
    }

    #[test]
    fn webster_uniform_delay_matches_a_worked_example() {
        // C = 60 s, g = 27 s (λ = 0.45), x = 0.8: d1 = 30·0.3025/0.64 = 14.18 s.
        let d = webster_uniform_delay_s(60.0, 0.45, 0.8);
        assert!((d - 14.1796875).abs() < 1e-9, "{d}");
        // Oversaturated approaches use x = 1.
        assert_eq!(
            webster_uniform_delay_s(60.0, 0.45, 3.0),
            webster_uniform_delay_s(60.0, 0.45, 1.0)
        );
        assert_eq!(webster_uniform_delay_s(60.0, 1.0, 1.0), 0.0);
    }

    #[test]
    fn effective_green_is_displayed_green_plus_yellow_minus_lost_time() {
        let s = Split::new(30.0, 34.0, 4.0, 4.0);
        assert_eq!(s.cycle_s, 68.0);
        assert_eq!(s.effective_green_s, 30.0);
        let s = Split::new(30.0, 34.0, 3.0, 5.0);
        assert_eq!(s.effective_green_s, 28.0);
        assert_eq!(Split::new(0.0, 60.0, 4.0, 2.0).green_ratio(), 0.0);
    }
}
