//! Plans for actuated controllers: what the merge's timings become for a controller that
//! extends its greens while its detectors see traffic.
//!
//! A plan gives, per phase, a minimum green, the green a fixed-time controller runs (Webster's,
//! as the merge wrote it) and a maximum green; and the cycle (greens + yellows, what a
//! fixed-time controller runs) and, where the intersection is coordinated with its neighbours
//! ([`crate::coordination`]), the offset and the coordinated phase (`None` from [`plan`]: an
//! intersection alone is not coordinated).
//!
//! From Webster's displayed green `G` of a phase and the intersection's limits:
//!
//! - the green is `G`, raised to the phase's minimum green where the limits set one above it
//!   (so the plan never breaks a limit; the merge already applies them, so this is only a
//!   guard);
//! - the minimum is `max(G × min_green_factor, min_green_s, limit)` (defaults 0.4 and 5 s,
//!   netconvert's `--tls.min-dur`; a pedestrian's minimum green where the limits give one),
//!   at most the green: the controller may end the phase once its detectors see a gap, but
//!   not before 40 % of Webster's share, so that a phase whose detectors gap out early (a
//!   platoon with gaps, a lane its detector hardly sees) still gets most of what its counted
//!   flow needs;
//! - the maximum is `G × max_green_factor` (default 3), at least the green: the longest the
//!   controller may extend it, so that actuation absorbs the demand's variation within and
//!   between cycles (a window's counts give no cheap measure of it: the spread is a
//!   constant) while a phase cannot hold the junction for the whole cycle.
//!
//! Both bounds drawn from a factor are rounded to a tenth of a second, the precision a
//! controller takes, so that a plan read back from a store equals the one computed.
//!
//! The factors were chosen on measured delay over six networks (the SUMO bridge's README,
//! its frontier table), one value for all: 0.4 keeps the gain a minimum gives where detectors
//! gap out early (cologne8) and costs the synthetic grids, whose detectors see every vehicle,
//! under 1 % against SUMO's own actuated control (0.5 cost them up to 3.5 %).
//!
//! Laws: `min ≤ green ≤ max` per phase, the minimum at least the limit's, and every phase's
//! green + yellow summed is the cycle.

use crate::city::Intersection;
use crate::signal::{Phase, TimingLimits};
pub use crate::signal::{PhasePlan, Plan};
use serde::{Deserialize, Serialize};

/// How plans are drawn from timings (one default for every intersection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanConfig {
    /// Shortest minimum green, s (a phase's limit may raise it).
    pub min_green_s: f64,
    /// The minimum green as a fraction of Webster's green (at least `min_green_s`).
    pub min_green_factor: f64,
    /// The maximum green as a multiple of Webster's green.
    pub max_green_factor: f64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            min_green_s: 5.0,
            min_green_factor: 0.4,
            max_green_factor: 3.0,
        }
    }
}

impl PlanConfig {
    /// The defaults with the variables `lookup` gives: `PLAN_MIN_GREEN_S` (a number of
    /// seconds, 0 to 3600), `PLAN_MIN_GREEN_FACTOR` (0 to 1) and `PLAN_MAX_GREEN_FACTOR`
    /// (1 to 100: every number of a plan stays finite). The error names the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = Self::default();
        let num = |name: &str, min: f64, max: f64| -> Result<Option<f64>, String> {
            lookup(name)
                .map(|v| match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= min && x <= max => Ok(x),
                    _ => Err(format!(
                        "{name} must be a number in [{min}, {max}], got {v:?}"
                    )),
                })
                .transpose()
        };
        if let Some(x) = num("PLAN_MIN_GREEN_S", 0.0, crate::city::MAX_PHASE_TIME_S)? {
            c.min_green_s = x;
        }
        if let Some(x) = num("PLAN_MIN_GREEN_FACTOR", 0.0, 1.0)? {
            c.min_green_factor = x;
        }
        if let Some(x) = num("PLAN_MAX_GREEN_FACTOR", 1.0, 100.0)? {
            c.max_green_factor = x;
        }
        Ok(c)
    }
}

/// The plan of an intersection whose phases carry Webster's greens (`phases`, as the merge
/// wrote them), with a yellow of `yellow_s` per phase, within `limits`.
pub fn plan(
    phases: &[Phase],
    yellow_s: f64,
    limits: Option<&TimingLimits>,
    cfg: &PlanConfig,
) -> Plan {
    let phases: Vec<PhasePlan> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let limit = limits
                .and_then(|l| l.min_green_s.get(i).copied().flatten())
                .unwrap_or(0.0);
            let green = p.green_s.max(limit).max(0.0);
            let min_green_s = tenth(green * cfg.min_green_factor)
                .max(cfg.min_green_s)
                .max(limit)
                .min(green);
            let max_green_s = tenth(green * cfg.max_green_factor).max(green);
            PhasePlan {
                min_green_s,
                green_s: green,
                max_green_s,
            }
        })
        .collect();
    Plan {
        cycle_s: phases.iter().map(|p| p.green_s + yellow_s).sum(),
        offset_s: None,
        coordinated_phase: None,
        phases,
    }
}

/// The plan intersection `x` runs: the one stored with its timings (the merge's, [`plan`] of
/// the timings it wrote), or, where none is stored or the stored one no longer fits the
/// phases (another number of them), the one [`plan`] draws from its phases and limits now
/// (a fixed-time or manual intersection runs its own greens).
pub fn plan_of(x: &Intersection, yellow_s: f64, cfg: &PlanConfig) -> Plan {
    match &x.plan {
        Some(p) if p.phases.len() == x.phases.len() => p.clone(),
        _ => plan(&x.phases, yellow_s, x.control.limits.as_ref(), cfg),
    }
}

/// `x` to the nearest tenth of a second.
fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::phases;
    use proptest::prelude::*;

    #[test]
    fn a_two_phase_plan_by_hand() {
        let p = plan(
            &phases(&[30.0, 8.0], 3.0),
            3.0,
            None,
            &PlanConfig::default(),
        );
        assert_eq!(p.cycle_s, 44.0);
        assert_eq!(p.offset_s, None);
        assert_eq!(
            p.phases[0],
            PhasePlan {
                min_green_s: 12.0,
                green_s: 30.0,
                max_green_s: 90.0
            }
        );
        // 40 % of 8 s is below the shortest minimum: 5 s
        assert_eq!(p.phases[1].min_green_s, 5.0);
        assert_eq!(p.phases[1].max_green_s, 24.0);
    }

    #[test]
    fn a_pedestrian_minimum_green_is_the_phase_minimum() {
        let limits = TimingLimits {
            min_green_s: vec![None, Some(20.0)],
            ..TimingLimits::default()
        };
        let p = plan(
            &phases(&[30.0, 12.0], 3.0),
            3.0,
            Some(&limits),
            &PlanConfig::default(),
        );
        assert_eq!(p.phases[1].min_green_s, 20.0);
        assert_eq!(p.phases[1].green_s, 20.0);
        assert_eq!(p.cycle_s, 56.0);
    }

    #[test]
    fn an_intersection_runs_its_stored_plan_or_one_drawn_from_its_phases() {
        let mut x: Intersection = serde_json::from_value(serde_json::json!({
            "id": "I-0001", "lat": 41.85, "lon": 12.6,
            "lights": [{"light": 0, "saturation_veh_h": 1800}, {"light": 1, "saturation_veh_h": 1800}],
            "phases": [{"lights": [0], "green_s": 30, "red_s": 11}, {"lights": [1], "green_s": 8, "red_s": 33}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = PlanConfig::default();
        let drawn = plan(&x.phases, 3.0, None, &cfg);
        assert_eq!(plan_of(&x, 3.0, &cfg), drawn, "none stored: drawn");
        let stored = Plan {
            offset_s: Some(7.0),
            ..drawn.clone()
        };
        x.plan = Some(stored.clone());
        assert_eq!(plan_of(&x, 3.0, &cfg), stored, "stored: as stored");
        x.plan = Some(Plan {
            phases: vec![],
            ..stored
        });
        assert_eq!(plan_of(&x, 3.0, &cfg), drawn, "stored but unfit: drawn");
    }

    #[test]
    fn the_variables_set_the_config_and_nonsense_is_refused() {
        let c = PlanConfig::from_lookup(|k| (k == "PLAN_MAX_GREEN_FACTOR").then(|| "1.5".into()));
        assert_eq!(c.map(|c| c.max_green_factor), Ok(1.5));
        assert!(PlanConfig::from_lookup(|_| Some("0.5".into())).is_err());
        assert_eq!(PlanConfig::from_lookup(|_| None), Ok(PlanConfig::default()));
        // Bounded so that every number of a plan stays finite.
        let e = PlanConfig::from_lookup(|k| (k == "PLAN_MAX_GREEN_FACTOR").then(|| "1e308".into()));
        assert!(e.is_err_and(|e| e.contains("PLAN_MAX_GREEN_FACTOR")));
    }

    proptest! {
        #[test]
        fn min_green_max_are_ordered_within_the_limits_and_sum_to_the_cycle(
            greens in proptest::collection::vec(0.0_f64..120.0, 1..5),
            mins in proptest::collection::vec(proptest::option::of(0.0_f64..60.0), 6),
            yellow in 0.0_f64..6.0,
            min_green in 0.0_f64..20.0,
            min_factor in 0.0_f64..1.0,
            factor in 1.0_f64..4.0,
        ) {
            let n = greens.len();
            let limits = TimingLimits {
                min_green_s: mins[..n].to_vec(),
                ..TimingLimits::default()
            };
            let cfg = PlanConfig {
                min_green_s: min_green,
                min_green_factor: min_factor,
                max_green_factor: factor,
            };
            let p = plan(&phases(&greens, yellow), yellow, Some(&limits), &cfg);
            prop_assert_eq!(p.phases.len(), n);
            let mut sum = 0.0;
            for (i, ph) in p.phases.iter().enumerate() {
                prop_assert!(ph.min_green_s <= ph.green_s && ph.green_s <= ph.max_green_s, "{:?}", ph);
                if let Some(m) = mins[i] {
                    prop_assert!(ph.min_green_s >= m, "phase {}: {} < {}", i, ph.min_green_s, m);
                }
                prop_assert!(ph.green_s >= greens[i]);
                sum += ph.green_s + yellow;
            }
            prop_assert!((sum - p.cycle_s).abs() < 1e-9);
        }

        #[test]
        fn without_limits_the_greens_are_websters(
            greens in proptest::collection::vec(0.0_f64..120.0, 1..5),
        ) {
            let p = plan(&phases(&greens, 4.0), 4.0, None, &PlanConfig::default());
            for (ph, g) in p.phases.iter().zip(&greens) {
                prop_assert_eq!(ph.green_s, *g);
            }
        }
    }
}
