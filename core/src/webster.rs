//! Webster's method for fixed-time signal settings (F. V. Webster, "Traffic signal settings",
//! Road Research Technical Paper No. 39, HMSO, London, 1958).
//!
//! From the vehicles each light counted over the control window:
//!
//! - flow of a light `q = vehicles · 3600 / window_s` (veh/h);
//! - flow ratio of a phase `y_i = max over its lights of q / s` (`s`: saturation flow, veh/h);
//! - `Y = Σ y_i`; lost time `L = lost_time_per_phase · phases`;
//! - optimum cycle `C = (1.5 L + 5) / (1 − Y)`, clamped to `[min_cycle, max_cycle]`, and
//!   `C = max_cycle` when `Y ≥ saturated_y`;
//! - effective green `g_i = (C − L) · y_i / Y` (equal split when `Y = 0`), at least
//!   `min_green`: phases below it are fixed at it and the rest shared again in proportion;
//! - displayed green `G_i = g_i + lost_time_per_phase − yellow`, so that `Σ (G_i + yellow) = C`;
//!   red `R_i = C − G_i − yellow`.
//!
//! When `C − L` cannot give every phase its minimum green, the cycle is lengthened to
//! `L + phases · min_green` (possible only with many phases).
//!
//! **Blind phases.** The counts are what the readings say: a light whose detector sent
//! nothing counts 0, like a light without traffic. A phase's flow ratio is its busiest
//! light's, so one heard light carries its phase; but a phase none of whose lights was heard
//! ([`crate::control::blind_phases`]) would get the minimum green for a silence. So
//! [`retime_heard`] counts a blind phase as loaded as the busiest heard phase: its `y_i` is
//! the largest heard `y_i`, and the cycle is the one the intersection needs were it that
//! loaded. It is never cut for a silence (its green is the longest of the intersection's),
//! at the price of a little green for the heard phases when it is in fact lighter. (An
//! intersection whose phases are all blind is not retimed at all: the merge leaves it as it
//! is.)

use crate::city::{Intersection, Phase};
use crate::ids::LightIndex;
use serde::{Deserialize, Serialize};

/// Parameters of Webster's method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebsterConfig {
    /// Lost time per phase, s.
    pub lost_time_per_phase_s: f64,
    /// Yellow time per phase, s.
    pub yellow_s: f64,
    /// Shortest cycle, s.
    pub min_cycle_s: f64,
    /// Longest cycle, s (also the cycle of a saturated intersection).
    pub max_cycle_s: f64,
    /// Total flow ratio at or above which the intersection counts as saturated.
    pub saturated_y: f64,
    /// Shortest effective green, s.
    pub min_green_s: f64,
    /// Smallest change worth applying, s: an adaptive intersection keeps its timings when no
    /// phase's green or red would move by this much ([`crate::control::decide`]). A quarter's
    /// counts are noisy, and a controller changing plan loses part of a cycle to the
    /// transition; `0` applies every proposal.
    pub min_change_s: f64,
}

impl Default for WebsterConfig {
    fn default() -> Self {
        Self {
            lost_time_per_phase_s: 4.0,
            yellow_s: 4.0,
            min_cycle_s: 30.0,
            max_cycle_s: 120.0,
            saturated_y: 0.9,
            min_green_s: 5.0,
            min_change_s: 3.0,
        }
    }
}

impl WebsterConfig {
    /// Checks that the parameters make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_cycle_s <= 0.0 || self.min_cycle_s > self.max_cycle_s {
            return Err("cycle bounds need 0 < min_cycle <= max_cycle".into());
        }
        if !(self.saturated_y > 0.0 && self.saturated_y < 1.0) {
            return Err("saturated_y must be between 0 and 1".into());
        }
        if self.yellow_s > self.lost_time_per_phase_s + self.min_green_s {
            return Err("yellow must not exceed lost time plus minimum green".into());
        }
        Ok(())
    }
}

/// The timing of one phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// The phase's lights.
    pub lights: Vec<LightIndex>,
    /// Displayed green, s.
    pub green_s: f64,
    /// Red, s.
    pub red_s: f64,
}

/// New timings for one intersection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Cycle length, s.
    pub cycle_s: f64,
    /// Per phase, in the intersection's phase order.
    pub phases: Vec<PhaseTiming>,
    /// Total flow ratio Y.
    pub flow_ratio: f64,
}

/// How the cycle is sized from the total flow ratio `Y`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CycleRule {
    /// Webster's delay optimum, `C = (1.5 L + 5) / (1 − Y)`.
    Webster,
    /// Every phase at this degree of saturation, `C = L / (1 − Y / x)` (SCATS's aim;
    /// [`crate::demand`]).
    TargetSaturation(f64),
}

/// Computes Webster timings for `x` from the vehicles each light counted over `window_s`
/// seconds (`vehicles[l]` for light `l`), every phase heard.
pub fn retime(x: &Intersection, vehicles: &[u64; 4], window_s: f64, cfg: &WebsterConfig) -> Timing {
    retime_heard(x, vehicles, window_s, cfg, &[])
}

/// [`retime`], with the phases `blind` (indices: none of their lights heard) counted as loaded
/// as the busiest heard phase (the module's "Blind phases").
pub fn retime_heard(
    x: &Intersection,
    vehicles: &[u64; 4],
    window_s: f64,
    cfg: &WebsterConfig,
    blind: &[usize],
) -> Timing {
    let flows = vehicles.map(|v| v as f64 * 3600.0 / window_s);
    retime_flows(x, &flows, cfg, CycleRule::Webster, blind)
}

/// Computes timings for `x` from each light's flow, veh/h (`flows[l]` for light `l`), with the
/// cycle sized by `rule` and the phases `blind` counted as [`retime_heard`] counts them.
pub fn retime_flows(
    x: &Intersection,
    flows: &[f64; 4],
    cfg: &WebsterConfig,
    rule: CycleRule,
    blind: &[usize],
) -> Timing {
    let n = x.phases.len().max(1);
    let mut ys: Vec<f64> = x
        .phases
        .iter()
        .map(|p| {
            p.lights
                .iter()
                .filter_map(|l| {
                    let s = x.saturation(*l)?;
                    Some(flows[l.get()] / s)
                })
                .fold(0.0, f64::max)
        })
        .collect();
    let busiest_heard = ys
        .iter()
        .enumerate()
        .filter(|(i, _)| !blind.contains(i))
        .map(|(_, y)| *y)
        .fold(0.0, f64::max);
    for &i in blind {
        if let Some(y) = ys.get_mut(i) {
            *y = busiest_heard;
        }
    }
    let y_total: f64 = ys.iter().sum();
    let lost = cfg.lost_time_per_phase_s * n as f64;
    let mut cycle = match rule {
        _ if y_total >= cfg.saturated_y => cfg.max_cycle_s,
        CycleRule::Webster => (1.5 * lost + 5.0) / (1.0 - y_total),
        CycleRule::TargetSaturation(x) if y_total < x => lost / (1.0 - y_total / x),
        CycleRule::TargetSaturation(_) => cfg.max_cycle_s,
    }
    .clamp(cfg.min_cycle_s, cfg.max_cycle_s);
    cycle = cycle.max(lost + n as f64 * cfg.min_green_s);
    let greens = split_green(cycle - lost, &ys, cfg.min_green_s);
    let phases = x
        .phases
        .iter()
        .zip(greens)
        .map(|(p, g)| {
            let green = g + cfg.lost_time_per_phase_s - cfg.yellow_s;
            PhaseTiming {
                lights: p.lights.clone(),
                green_s: green,
                // Zero for a single phase, whose green and yellow fill the cycle: never the
                // rounding error below it, which no intersection accepts as a red time.
                red_s: (cycle - green - cfg.yellow_s).max(0.0),
            }
        })
        .collect();
    Timing {
        cycle_s: cycle,
        phases,
        flow_ratio: y_total,
    }
}

/// Shares `total` effective green in proportion to `ys` (equally when all are zero), giving
/// each share at least `min`.
fn split_green(total: f64, ys: &[f64], min: f64) -> Vec<f64> {
    let n = ys.len();
    let y_sum: f64 = ys.iter().sum();
    let weights: Vec<f64> = if y_sum > 0.0 {
        ys.to_vec()
    } else {
        vec![1.0; n]
    };
    let mut fixed = vec![false; n];
    loop {
        let free_weight: f64 = (0..n).filter(|&i| !fixed[i]).map(|i| weights[i]).sum();
        let left = total - min * fixed.iter().filter(|f| **f).count() as f64;
        let shares: Vec<f64> = (0..n)
            .map(|i| {
                if fixed[i] {
                    min
                } else if free_weight > 0.0 {
                    left * weights[i] / free_weight
                } else {
                    left / (n - fixed.iter().filter(|f| **f).count()) as f64
                }
            })
            .collect();
        let newly: Vec<usize> = (0..n).filter(|&i| !fixed[i] && shares[i] < min).collect();
        if newly.is_empty() {
            return shares;
        }
        for i in newly {
            fixed[i] = true;
        }
    }
}

/// Applies `t` to a copy of the intersection's phases.
pub fn apply(phases: &[Phase], t: &Timing) -> Vec<Phase> {
    phases
        .iter()
        .zip(&t.phases)
        .map(|(p, pt)| Phase {
            green_s: pt.green_s,
            red_s: pt.red_s,
            ..p.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::City;
    use proptest::prelude::*;

    fn crossing(sat: [f64; 4], phases: &[&[u8]]) -> Intersection {
        let lights: Vec<String> = sat
            .iter()
            .enumerate()
            .map(|(i, s)| format!(r#"{{"light":{i},"saturation_veh_h":{s}}}"#))
            .collect();
        let phases: Vec<String> = phases
            .iter()
            .map(|ls| {
                let l: Vec<String> = ls.iter().map(|x| x.to_string()).collect();
                format!(r#"{{"lights":[{}],"green_s":30,"red_s":34}}"#, l.join(","))
            })
            .collect();
        let json = format!(
            r#"{{"intersections":[{{"id":"X","lat":0,"lon":0,"lights":[{}],"phases":[{}]}}]}}"#,
            lights.join(","),
            phases.join(",")
        );
        City::parse(&json)
            .map(|c| c.intersections[0].clone())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_target_saturation_sizes_the_cycle_for_it() {
        // Y = 0.3 as below, L = 8 s: C = 8 / (1 − 0.3 / 0.9) = 12 s → 30 s (clamped); at
        // Y = 0.6: 8 / (1 − 0.6 / 0.9) = 24 s → 30 s; at Y = 0.8: 8 / (1 − 0.8 / 0.9) = 72 s,
        // where Webster's gives (12 + 5) / 0.2 = 85 s.
        let x = crossing([1800.0; 4], &[&[0, 2], &[1, 3]]);
        let cfg = WebsterConfig::default();
        let target = CycleRule::TargetSaturation(0.9);
        for (flows, rule, cycle_s) in [
            ([720.0, 720.0, 0.0, 0.0], target, 72.0),
            ([720.0, 720.0, 0.0, 0.0], CycleRule::Webster, 85.0),
            ([360.0, 180.0, 0.0, 0.0], target, 30.0),
        ] {
            let t = retime_flows(&x, &flows, &cfg, rule, &[]);
            assert!(
                (t.cycle_s - cycle_s).abs() < 1e-9,
                "{rule:?}: {}",
                t.cycle_s
            );
        }
    }

    #[test]
    fn a_hand_worked_two_phase_crossing() {
        // Over 900 s: lights 0,2 count 90 and 45 vehicles, lights 1,3 count 45 and 30.
        // q = 360, 180, 180, 120 veh/h; s = 1800: y1 = 0.2, y2 = 0.1, Y = 0.3, L = 8 s.
        // C = (1.5·8 + 5) / 0.7 = 24.29 → 30 s (clamped). g = 22 · 2/3, 22 · 1/3.
        let x = crossing([1800.0; 4], &[&[0, 2], &[1, 3]]);
        let t = retime(&x, &[90, 45, 45, 30], 900.0, &WebsterConfig::default());
        assert!((t.flow_ratio - 0.3).abs() < 1e-12);
        assert_eq!(t.cycle_s, 30.0);
        assert!((t.phases[0].green_s - 22.0 * 2.0 / 3.0).abs() < 1e-9);
        assert!((t.phases[1].green_s - 22.0 / 3.0).abs() < 1e-9);
        assert!((t.phases[0].red_s - (30.0 - 22.0 * 2.0 / 3.0 - 4.0)).abs() < 1e-9);
    }

    #[test]
    fn an_unclamped_cycle_follows_the_formula() {
        // y = 0.4 and 0.3: Y = 0.7, C = 17 / 0.3 = 56.67 s.
        let x = crossing([1800.0; 4], &[&[0, 2], &[1, 3]]);
        let t = retime(&x, &[180, 135, 0, 0], 900.0, &WebsterConfig::default());
        assert!((t.cycle_s - 17.0 / 0.3).abs() < 1e-9);
        assert!((t.phases[0].green_s - (17.0 / 0.3 - 8.0) * 4.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_saturated_intersection_gets_the_longest_cycle_and_no_flow_an_equal_split() {
        let x = crossing([1800.0; 4], &[&[0, 2], &[1, 3]]);
        let t = retime(&x, &[400, 0, 0, 100], 900.0, &WebsterConfig::default());
        assert_eq!(t.cycle_s, 120.0);
        let t = retime(&x, &[0, 0, 0, 0], 900.0, &WebsterConfig::default());
        assert_eq!(t.cycle_s, 30.0);
        assert_eq!(t.phases[0].green_s, t.phases[1].green_s);
    }

    #[test]
    fn a_light_phase_still_gets_the_minimum_green() {
        let x = crossing([1800.0; 4], &[&[0, 2], &[1, 3]]);
        let t = retime(&x, &[300, 1, 0, 0], 900.0, &WebsterConfig::default());
        assert!((t.phases[1].green_s - 5.0).abs() < 1e-9, "{t:?}");
    }

    /// Vehicles counted on each light of a crossing of two or three phases, its lights of
    /// any saturation flow.
    fn counted_crossing() -> impl Strategy<Value = ([u64; 4], Intersection)> {
        (
            prop::array::uniform4(0u64..2000),
            prop::array::uniform4(600.0f64..2400.0),
            any::<bool>(),
        )
            .prop_map(|(v, sat, three)| {
                let phases: &[&[u8]] = if three {
                    &[&[0], &[1, 3], &[2]]
                } else {
                    &[&[0, 2], &[1, 3]]
                };
                (v, crossing(sat, phases))
            })
    }

    /// The greens plus their yellows fill the cycle, and no green is under the minimum.
    fn check_cycle(t: &Timing, cfg: &WebsterConfig) -> Result<(), TestCaseError> {
        let sum: f64 = t.phases.iter().map(|p| p.green_s + cfg.yellow_s).sum();
        prop_assert!((sum - t.cycle_s).abs() < 1e-9, "{} vs {}", sum, t.cycle_s);
        for p in &t.phases {
            prop_assert!(p.green_s >= cfg.min_green_s - 1e-9);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn splits_plus_yellows_sum_to_the_cycle(
            (v, x) in counted_crossing(),
            window in 60.0f64..3600.0,
            target in any::<bool>(),
        ) {
            let cfg = WebsterConfig::default();
            let t = if target {
                let flows = v.map(|n| n as f64 * 3600.0 / window);
                retime_flows(&x, &flows, &cfg, CycleRule::TargetSaturation(0.9), &[])
            } else {
                retime(&x, &v, window, &cfg)
            };
            check_cycle(&t, &cfg)?;
            prop_assert!(t.cycle_s >= cfg.min_cycle_s && t.cycle_s <= cfg.max_cycle_s);
            for p in &t.phases {
                prop_assert!((p.green_s + cfg.yellow_s + p.red_s - t.cycle_s).abs() < 1e-9);
            }
        }

        #[test]
        fn no_phase_is_given_a_negative_red_and_the_result_is_a_valid_intersection(
            v in prop::array::uniform4(0u64..2000),
            sat in prop::array::uniform4(600.0f64..2400.0),
            shape in 0usize..3,
            window in 60.0f64..3600.0,
        ) {
            let shapes: [&[&[u8]]; 3] = [&[&[0, 1, 2, 3]], &[&[0], &[1, 2, 3]], &[&[0, 2], &[1, 3]]];
            let mut x = crossing(sat, shapes[shape]);
            let cfg = WebsterConfig::default();
            let t = retime(&x, &v, window, &cfg);
            for (phase, timing) in x.phases.iter_mut().zip(&t.phases) {
                prop_assert!(timing.red_s >= 0.0, "{:?}", timing);
                phase.green_s = timing.green_s;
                phase.red_s = timing.red_s;
            }
            prop_assert!(x.validate("").is_ok(), "{:?}", x.validate(""));
        }

        #[test]
        fn any_valid_intersection_gets_finite_timings(
            v in prop::array::uniform4(0u64..1_000_000),
            sat in prop::array::uniform4(prop_oneof![Just(1.0f64), 1.0f64..1e308]),
            window in 1.0f64..86_400.0,
        ) {
            let x = crossing(sat, &[&[0, 2], &[1, 3]]);
            prop_assert!(x.validate("").is_ok(), "{:?}", x.validate(""));
            let t = retime(&x, &v, window, &WebsterConfig::default());
            prop_assert!(t.cycle_s.is_finite());
            for p in &t.phases {
                prop_assert!(p.green_s.is_finite() && p.red_s.is_finite(), "{:?}", t);
            }
        }
    }

    #[test]
    fn a_blind_phase_counts_as_busy_as_the_busiest_heard_phase() {
        // Lights 0 and 2 dead: Webster alone cuts their phase to the minimum green.
        let x = crossing([1800.0; 4], &[&[0, 2], &[1, 3]]);
        let cfg = WebsterConfig::default();
        let cut = retime(&x, &[0, 90, 0, 60], 900.0, &cfg);
        assert!(
            (cut.phases[0].green_s - cfg.min_green_s).abs() < 1e-9,
            "{cut:?}"
        );
        let t = retime_heard(&x, &[0, 90, 0, 60], 900.0, &cfg, &[0]);
        assert!(
            (t.phases[0].green_s - t.phases[1].green_s).abs() < 1e-9,
            "{t:?}"
        );
        assert!((t.flow_ratio - 0.4).abs() < 1e-12, "{t:?}");
        // Nothing blind: Webster's own.
        assert_eq!(
            retime_heard(&x, &[50, 90, 10, 60], 900.0, &cfg, &[]),
            retime(&x, &[50, 90, 10, 60], 900.0, &cfg)
        );
    }

    proptest! {
        #[test]
        fn a_blind_phase_gets_the_longest_green_whatever_its_dead_lights_counted_and_the_cycle_holds(
            (v, x) in counted_crossing(),
            blind_mask in 0u8..8,
            window in 60.0f64..3600.0,
        ) {
            let blind: Vec<usize> = (0..x.phases.len()).filter(|i| blind_mask & (1 << i) != 0).collect();
            let cfg = WebsterConfig::default();
            // What the dead lights counted does not matter: they sent nothing.
            let mut dead = v;
            for &i in &blind {
                for l in &x.phases[i].lights {
                    dead[l.get()] = 0;
                }
            }
            let t = retime_heard(&x, &v, window, &cfg, &blind);
            prop_assert_eq!(&t, &retime_heard(&x, &dead, window, &cfg, &blind));
            let longest = t.phases.iter().map(|p| p.green_s).fold(0.0, f64::max);
            for &i in &blind {
                prop_assert!(t.phases[i].green_s >= longest - 1e-9, "phase {}: {:?}", i, t);
            }
            check_cycle(&t, &cfg)?;
        }
    }
}
