//! Demand that saturated approaches do not hide: what each light's approach asked for over the
//! control window, estimated from what the readings carry.
//!
//! A detector at the stop line counts the vehicles *served*. Below capacity that is the demand;
//! at capacity it is not: the green ends with vehicles still queued, and the count is the
//! capacity the timings gave, whatever arrived. Webster's method on served counts then keeps a
//! starved phase starved (its count is low because its green is short).
//!
//! The estimator, per light, from the timings in force during the window (the intersection's
//! stored phases) and the vehicles it counted:
//!
//! - effective green `e` = the green of each phase serving the light + yellow − lost time per
//!   phase (Webster's relation between displayed and effective green), at least 1 s; cycle `C`
//!   of the stored phases;
//! - capacity `c = s · e / C` (veh/h; `s` the approach's saturation flow), served flow
//!   `q = vehicles · 3600 / window_s`, degree of saturation `x = q / c` (SCATS's measure of how
//!   much of the green the approach used; above 1 when an actuated controller extended the
//!   green past the plan's);
//! - `x < saturated_x`: the demand is the served flow;
//! - `x ≥ saturated_x`: the approach was at capacity, and the demand is at least what it
//!   served; it is estimated as `q · (1 + overflow)`. A stop-line count cannot say by how much
//!   demand exceeds capacity (only a queue detector upstream could); a fixed overflow makes
//!   the retiming give a saturated phase more green each window, until it no longer runs at
//!   capacity (the feedback SCATS applies to its degree of saturation).
//!
//! The cycle then follows from a target degree of saturation instead of Webster's delay
//! optimum: every phase at `target_x` needs `C = L / (1 − Y / target_x)` (`L` the lost time,
//! `Y` the sum of the phases' flow ratios), clamped as Webster's.
//!
//! What the readings carry that this does not use: mean speeds (the rollup keeps one speed sum
//! per intersection, not per light, and a stop-line speed tells queue discharge from free
//! arrival but not the queue left at the end of green) and the counts' change within the
//! window (a saturated approach's count is flat at capacity whatever the demand does).
//!
//! **Measured, and off by default.** The SUMO bridge compares every estimate with what truly
//! arrived (each run's `demand_error`; `simulator/sumo/README.md`, "Demand"). On the RESCO
//! networks, under `adaptive` and under the fixed-time `webster` loop, the served counts were
//! within 1-2 % of the arrivals (weighted absolute error 2-7 %), and the few lights judged at
//! capacity had not been hiding demand (an actuated controller had extended their greens past
//! the plan's, which is what raised their `x`): the overflow put their estimate 22-24 % above
//! the arrivals and cost ingolstadt7 2 % of delay under `adaptive`. So `DEMAND_ESTIMATE`
//! defaults to `off`, and each run keeps measuring.
//!
//! Laws: the demand is never below the served flow, equals it when the estimator is off or the
//! light is below `saturated_x`, and does not fall when the served count rises.

use crate::city::{Intersection, cycle_s};
use crate::ids::{IntersectionId, LightIndex};
use crate::webster::{CycleRule, Timing, WebsterConfig, retime_flows};
use crate::window::WindowKey;
use serde::{Deserialize, Serialize};

/// How demand is estimated (one default for every intersection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemandConfig {
    /// Whether demand is estimated (`DEMAND_ESTIMATE`, `on`/`off`, default off: measured, the
    /// served counts were the better estimate, see the module's documentation); off, the
    /// retiming reads the served counts and sizes the cycle by Webster's formula.
    pub estimate: bool,
    /// Degree of saturation at or above which a light counts as at capacity
    /// (`DEMAND_SATURATED_X`).
    pub saturated_x: f64,
    /// The demand of a light at capacity, above what it served, as a fraction
    /// (`DEMAND_OVERFLOW`).
    pub overflow: f64,
    /// The degree of saturation the cycle is sized for (`DEMAND_TARGET_X`).
    pub target_x: f64,
}

impl Default for DemandConfig {
    fn default() -> Self {
        Self {
            estimate: false,
            saturated_x: 0.9,
            overflow: 0.25,
            target_x: 0.9,
        }
    }
}

impl DemandConfig {
    /// Checks that the parameters make sense.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.saturated_x > 0.0 && self.saturated_x.is_finite()) {
            return Err("DEMAND_SATURATED_X must be a positive number".into());
        }
        if !(self.overflow >= 0.0 && self.overflow <= 10.0) {
            return Err("DEMAND_OVERFLOW must be in [0, 10]".into());
        }
        if !(self.target_x > 0.0 && self.target_x < 1.0) {
            return Err("DEMAND_TARGET_X must be between 0 and 1".into());
        }
        Ok(())
    }
}

/// One light's estimate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LightDemand {
    /// The light.
    pub light: LightIndex,
    /// Flow served (counted at the stop line), veh/h.
    pub served_veh_h: f64,
    /// Degree of saturation under the timings in force: served flow over capacity.
    pub saturation_x: f64,
    /// Estimated demand, veh/h.
    pub demand_veh_h: f64,
}

/// One intersection's estimates over one control window, as the merge reports them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntersectionDemand {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// The control window (`15m@2026-01-05T08:15:00Z`).
    #[serde(with = "crate::window::key_as_text")]
    pub window: WindowKey,
    /// Per light.
    pub lights: Vec<LightDemand>,
}

/// New timings for `x` from the `vehicles` its lights counted over `window_s` seconds, the
/// phases `blind` (none of their lights heard) counted as
/// [`crate::webster::retime_heard`] counts them: with the estimator on, from each light's
/// estimated demand with the cycle sized for `cfg.target_x`; off, Webster's method on the
/// served counts. Also the estimates.
pub fn retime(
    x: &Intersection,
    vehicles: &[u64; 4],
    window_s: f64,
    webster: &WebsterConfig,
    cfg: &DemandConfig,
    blind: &[usize],
) -> (Timing, Vec<LightDemand>) {
    let demand = estimate(x, vehicles, window_s, webster, cfg);
    let timing = if cfg.estimate {
        let rule = CycleRule::TargetSaturation(cfg.target_x);
        retime_flows(x, &flows(&demand), webster, rule, blind)
    } else {
        crate::webster::retime_heard(x, vehicles, window_s, webster, blind)
    };
    (timing, demand)
}

/// Each of `x`'s lights' demand over a window of `window_s` seconds in which it counted
/// `vehicles` (by light index), under the timings `x` has stored.
pub fn estimate(
    x: &Intersection,
    vehicles: &[u64; 4],
    window_s: f64,
    webster: &WebsterConfig,
    cfg: &DemandConfig,
) -> Vec<LightDemand> {
    let cycle = cycle_s(&x.phases, webster.yellow_s);
    x.lights
        .iter()
        .map(|l| {
            let n = vehicles.get(l.light.get()).copied().unwrap_or(0);
            let served = n as f64 * 3600.0 / window_s.max(1.0);
            let effective: f64 = x
                .phases
                .iter()
                .filter(|p| p.lights.contains(&l.light))
                .map(|p| (p.green_s + webster.yellow_s - webster.lost_time_per_phase_s).max(1.0))
                .sum();
            let capacity = if cycle > 0.0 && effective > 0.0 {
                l.saturation_veh_h * (effective / cycle).min(1.0)
            } else {
                l.saturation_veh_h
            };
            let saturation_x = served / capacity;
            let demand = if cfg.estimate && saturation_x >= cfg.saturated_x {
                served * (1.0 + cfg.overflow)
            } else {
                served
            };
            LightDemand {
                light: l.light,
                served_veh_h: served,
                saturation_x,
                demand_veh_h: demand,
            }
        })
        .collect()
}

/// The flows (veh/h, by light index) Webster's method reads from `demand`.
pub fn flows(demand: &[LightDemand]) -> [f64; 4] {
    let mut out = [0.0; 4];
    for d in demand {
        if let Some(slot) = out.get_mut(d.light.get()) {
            *slot = d.demand_veh_h;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::City;
    use proptest::prelude::*;

    /// Two phases of 30 s green (4 s yellow each: a 68 s cycle), lights 0 and 2 in the first.
    fn crossing() -> Intersection {
        let json = r#"{"intersections":[{"id":"X","lat":0,"lon":0,
          "lights":[{"light":0,"saturation_veh_h":1800},{"light":1,"saturation_veh_h":1800},
                    {"light":2,"saturation_veh_h":1800},{"light":3,"saturation_veh_h":1800}],
          "phases":[{"lights":[0,2],"green_s":30,"red_s":34},{"lights":[1,3],"green_s":30,"red_s":34}]}]}"#;
        City::parse(json)
            .map(|c| c.intersections[0].clone())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_light_at_capacity_is_estimated_above_what_it_served() {
        // Effective green 30 + 4 − 4 = 30 s of 68: capacity 1800 · 30/68 = 794 veh/h, i.e.
        // 198.5 vehicles in 15 minutes. Light 0 served 190 (x = 0.957), light 1 served 100.
        let x = crossing();
        let on = DemandConfig {
            estimate: true,
            ..DemandConfig::default()
        };
        let d = estimate(&x, &[190, 100, 0, 0], 900.0, &WebsterConfig::default(), &on);
        assert!((d[0].served_veh_h - 760.0).abs() < 1e-9);
        assert!((d[0].saturation_x - 760.0 / (1800.0 * 30.0 / 68.0)).abs() < 1e-9);
        assert!((d[0].demand_veh_h - 760.0 * 1.25).abs() < 1e-9);
        assert!((d[1].demand_veh_h - 400.0).abs() < 1e-9);
        assert_eq!(d[2].demand_veh_h, 0.0);
        let f = flows(&d);
        assert_eq!(f[1], 400.0);
    }

    #[test]
    fn off_the_demand_is_the_served_flow() {
        let cfg = DemandConfig {
            estimate: false,
            ..DemandConfig::default()
        };
        let d = estimate(
            &crossing(),
            &[190, 100, 0, 0],
            900.0,
            &WebsterConfig::default(),
            &cfg,
        );
        assert_eq!(d[0].demand_veh_h, d[0].served_veh_h);
    }

    #[test]
    fn nonsense_parameters_are_refused() {
        for bad in [
            DemandConfig {
                target_x: 1.0,
                ..DemandConfig::default()
            },
            DemandConfig {
                overflow: -0.1,
                ..DemandConfig::default()
            },
            DemandConfig {
                saturated_x: 0.0,
                ..DemandConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(DemandConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_saturated_phase_gets_more_green_than_webster_on_its_count_gives_it() {
        let x = crossing();
        let w = WebsterConfig::default();
        let on = DemandConfig {
            estimate: true,
            ..DemandConfig::default()
        };
        let off = DemandConfig::default();
        let (t_on, _) = retime(&x, &[190, 100, 0, 0], 900.0, &w, &on, &[]);
        let (t_off, d) = retime(&x, &[190, 100, 0, 0], 900.0, &w, &off, &[]);
        assert_eq!(
            t_off,
            crate::webster::retime(&x, &[190, 100, 0, 0], 900.0, &w)
        );
        assert_eq!(d[0].demand_veh_h, d[0].served_veh_h);
        let share = |t: &Timing| t.phases[0].green_s / (t.phases[0].green_s + t.phases[1].green_s);
        assert!(share(&t_on) > share(&t_off), "{t_on:?} {t_off:?}");
    }

    proptest! {
        #[test]
        fn demand_is_at_least_served_and_grows_with_it(
            counts in proptest::array::uniform4(0u64..600),
            more in 0u64..100,
            light in 0usize..4,
            on in any::<bool>(),
        ) {
            let cfg = DemandConfig { estimate: on, ..DemandConfig::default() };
            let w = WebsterConfig::default();
            let x = crossing();
            let d = estimate(&x, &counts, 900.0, &w, &cfg);
            for l in &d {
                prop_assert!(l.demand_veh_h >= l.served_veh_h);
                if !on || l.saturation_x < cfg.saturated_x {
                    prop_assert_eq!(l.demand_veh_h, l.served_veh_h);
                }
            }
            let mut higher = counts;
            higher[light] += more;
            let e = estimate(&x, &higher, 900.0, &w, &cfg);
            prop_assert!(e[light].demand_veh_h >= d[light].demand_veh_h);
        }
    }
}
