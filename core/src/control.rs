//! Control modes: what the merge does with the
//! timings Webster proposes for one intersection.
//!
//! - `adaptive` (the default): the proposal, brought within the intersection's
//!   [`TimingLimits`] ([`within_limits`]), replaces the timings, unless no phase's green or red
//!   would move by the configured smallest change ([`Decision::Steady`]: nothing is written);
//! - `fixed`: the timings are kept as they are;
//! - `manual`: the operator's plan is kept; the proposal is recorded beside it, with the
//!   inputs it was computed from ([`Proposal`]), for the operator to compare.
//!
//! **Silent detectors.** A dead detector sends nothing, and Webster would count its light no
//! vehicles: a phase whose lights all sent nothing would fall to the minimum green for a
//! silence, not for a lack of traffic. A phase none of whose lights was heard by detector
//! health ([`crate::silence`]: a reading in the last `TRAFFIC_SILENCE_AFTER` before the closed
//! mark) is *blind* ([`blind_phases`]); Webster counts a blind phase as loaded as the busiest
//! heard phase ([`crate::webster::retime_heard`]), so no phase loses green for a silence, and
//! an intersection whose phases are all blind is not retimed, like one without readings. A
//! phase with one of its lights heard is retimed as always: its flow ratio is the largest of
//! its lights', so the heard light carries it.
//!
//! An intersection in `adaptive` mode without limits stores no `control` member at all, so the
//! JSON of an intersection from before control modes reads and writes back unchanged, and its
//! retiming is exactly Webster's.

use crate::city::Intersection;
use crate::ids::LightIndex;
use crate::safe_timing::within_limits;
use crate::signal::Phase;
pub use crate::signal::{Control, ControlMode, LightFlow, Proposal};
use crate::webster::Timing;
use crate::window::WindowKey;

/// A proposal is made here, from an intersection ([`crate::city`], above the plain
/// [`crate::signal`] types).
impl Proposal {
    /// The proposal `timing` for `x` (its phases: `phases`), from `vehicles` counted per light
    /// over `window`.
    pub fn of(
        x: &Intersection,
        vehicles: &[u64; 4],
        window: WindowKey,
        timing: &Timing,
        phases: Vec<Phase>,
    ) -> Self {
        let window_s = window.length.seconds();
        Self {
            from: window,
            window_s,
            flows: x
                .lights
                .iter()
                .map(|l| {
                    let n = vehicles.get(l.light.get()).copied().unwrap_or(0);
                    LightFlow {
                        light: l.light,
                        vehicles: n,
                        flow_veh_h: n as f64 * 3600.0 / window_s,
                        saturation_veh_h: l.saturation_veh_h,
                    }
                })
                .collect(),
            flow_ratio: timing.flow_ratio,
            cycle_s: timing.cycle_s,
            phases,
        }
    }
}

/// The phases of `x` (indices, in order) none of whose lights is `heard`: detectors that
/// sent nothing, whose counts of zero say nothing of the traffic.
pub fn blind_phases(x: &Intersection, heard: impl Fn(LightIndex) -> bool) -> Vec<usize> {
    x.phases
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.lights.iter().any(|l| heard(*l)))
        .map(|(i, _)| i)
        .collect()
}

/// What the merge does with Webster's proposal for one intersection.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Store these phases (adaptive); `limited` when a limit changed the proposal.
    Apply {
        /// The phases to store.
        phases: Vec<Phase>,
        /// Whether the limits changed Webster's proposal.
        limited: bool,
    },
    /// Keep the timings in force (fixed).
    Keep,
    /// Keep the timings in force (adaptive): the proposal, within the limits, moves no phase's
    /// green or red by the smallest change worth applying.
    Steady,
    /// Keep the timings, and record the proposal beside them (manual).
    Propose(Vec<Phase>),
}

/// The decision for `x`, given Webster's `proposed` phases (its phases with new greens and
/// reds), the controller's yellow, s, and the smallest change worth applying, s (`0`: every
/// proposal applies).
pub fn decide(
    x: &Intersection,
    proposed: Vec<Phase>,
    yellow_s: f64,
    min_change_s: f64,
) -> Decision {
    match x.control.mode {
        ControlMode::Adaptive => {
            let (phases, limited) = match &x.control.limits {
                None => (proposed, false),
                Some(limits) => {
                    let phases = within_limits(&x.phases, &proposed, yellow_s, limits);
                    let limited = phases != proposed;
                    (phases, limited)
                }
            };
            if largest_change_s(&x.phases, &phases) < min_change_s {
                Decision::Steady
            } else {
                Decision::Apply { phases, limited }
            }
        }
        ControlMode::Fixed => Decision::Keep,
        ControlMode::Manual => Decision::Propose(proposed),
    }
}

/// The largest move of a green or a red from `current` to `next`, s (infinite when they do not
/// have the same phases).
pub fn largest_change_s(current: &[Phase], next: &[Phase]) -> f64 {
    if current.len() != next.len() || current.iter().zip(next).any(|(a, b)| a.lights != b.lights) {
        return f64::INFINITY;
    }
    current
        .iter()
        .zip(next)
        .map(|(a, b)| (a.green_s - b.green_s).abs().max((a.red_s - b.red_s).abs()))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::City;
    use crate::safe_timing::TimingLimits;
    use crate::webster::{WebsterConfig, apply, retime};
    use proptest::prelude::*;

    fn crossing(green: f64) -> Intersection {
        let json = format!(
            r#"{{"intersections":[{{"id":"I-0001","lat":41.85,"lon":12.60,
              "lights":[{{"light":0,"saturation_veh_h":1800}},{{"light":1,"saturation_veh_h":1800}},
                        {{"light":2,"saturation_veh_h":1800}},{{"light":3,"saturation_veh_h":1800}}],
              "phases":[{{"lights":[0,2],"green_s":{green},"red_s":{red}}},
                        {{"lights":[1,3],"green_s":{green},"red_s":{red}}}]}}]}}"#,
            red = green + 4.0
        );
        City::parse(&json)
            .unwrap_or_else(|e| panic!("{e}"))
            .intersections
            .remove(0)
    }

    fn proposal_for(x: &Intersection, vehicles: [u64; 4]) -> Vec<Phase> {
        apply(
            &x.phases,
            &retime(x, &vehicles, 900.0, &WebsterConfig::default()),
        )
    }

    #[test]
    fn an_adaptive_intersection_without_limits_takes_websters_proposal_unchanged() {
        let x = crossing(30.0);
        let p = proposal_for(&x, [300, 20, 280, 10]);
        assert_eq!(
            decide(&x, p.clone(), 4.0, 0.0),
            Decision::Apply {
                phases: p,
                limited: false
            }
        );
    }

    #[test]
    fn a_fixed_intersection_keeps_its_timings_and_a_manual_one_records_the_proposal() {
        let mut x = crossing(30.0);
        let p = proposal_for(&x, [300, 20, 280, 10]);
        x.control.mode = ControlMode::Fixed;
        assert_eq!(decide(&x, p.clone(), 4.0, 0.0), Decision::Keep);
        x.control.mode = ControlMode::Manual;
        assert_eq!(decide(&x, p.clone(), 4.0, 0.0), Decision::Propose(p));
    }

    #[test]
    fn an_adaptive_intersection_with_a_change_limit_moves_each_green_at_most_that_much() {
        let mut x = crossing(30.0);
        x.control.limits = Some(TimingLimits {
            max_green_change: Some(0.2),
            ..TimingLimits::default()
        });
        let p = proposal_for(&x, [300, 20, 280, 10]);
        let Decision::Apply { phases, limited } = decide(&x, p, 4.0, 0.0) else {
            panic!("adaptive applies");
        };
        assert!(limited);
        assert!((phases[0].green_s - 36.0).abs() < 1e-9, "{phases:?}");
        assert!((phases[1].green_s - 24.0).abs() < 1e-9, "{phases:?}");
    }

    #[test]
    fn a_default_control_is_not_written_and_an_intersection_without_one_reads_as_adaptive() {
        let x = crossing(30.0);
        let json = serde_json::to_string(&x).unwrap_or_default();
        assert!(!json.contains("control"), "{json}");
        assert!(!json.contains("proposal"), "{json}");
        assert_eq!(x.control, Control::default());
        let manual: Control =
            serde_json::from_str(r#"{"mode":"manual","limits":{"max_cycle_s":90}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(manual.mode, ControlMode::Manual);
        assert_eq!(
            serde_json::to_string(&manual).unwrap_or_default(),
            r#"{"mode":"manual","limits":{"max_cycle_s":90.0}}"#
        );
    }

    #[test]
    fn an_unknown_mode_or_limit_does_not_decode() {
        assert!(serde_json::from_str::<Control>(r#"{"mode":"auto"}"#).is_err());
        assert!(serde_json::from_str::<Control>(r#"{"mode":"fixed","extra":1}"#).is_err());
        assert!(
            serde_json::from_str::<Control>(r#"{"mode":"fixed","limits":{"max_green":1}}"#)
                .is_err()
        );
    }

    #[test]
    fn limits_that_make_no_sense_are_named() {
        let field = |l: TimingLimits| l.validate(2, "limits.").err().map(|e| e.field);
        let with = |f: fn(&mut TimingLimits)| {
            let mut l = TimingLimits::default();
            f(&mut l);
            l
        };
        assert_eq!(
            field(with(|l| l.min_green_s = vec![Some(-1.0)])).as_deref(),
            Some("limits.min_green_s[0]")
        );
        assert_eq!(
            field(with(|l| l.min_green_s = vec![None, None, Some(5.0)])).as_deref(),
            Some("limits.min_green_s")
        );
        assert_eq!(
            field(with(|l| l.max_cycle_s = Some(f64::NAN))).as_deref(),
            Some("limits.max_cycle_s")
        );
        assert_eq!(
            field(with(|l| l.max_green_change = Some(0.0))).as_deref(),
            Some("limits.max_green_change")
        );
        assert_eq!(
            field(with(|l| l.max_green_change = Some(1.5))).as_deref(),
            Some("limits.max_green_change")
        );
        assert_eq!(field(with(|l| l.max_green_change = Some(1.0))), None);
    }

    proptest! {
        #[test]
        fn through_the_decision_limits_hold_and_every_phase_sums_to_one_cycle(
            green in 8.0_f64..60.0,
            vehicles in proptest::array::uniform4(0_u64..400),
            mins in proptest::collection::vec(proptest::option::of(5.0_f64..40.0), 0..3),
            max_cycle in proptest::option::of(40.0_f64..180.0),
            change in proptest::option::of(0.05_f64..1.0),
            mode in 0_u8..3,
        ) {
            let yellow = WebsterConfig::default().yellow_s;
            let mut x = crossing(green);
            x.control = Control {
                mode: [ControlMode::Adaptive, ControlMode::Fixed, ControlMode::Manual][mode as usize],
                limits: Some(TimingLimits {
                    min_green_s: mins.clone(),
                    max_cycle_s: max_cycle,
                    max_green_change: change,
                }),
            };
            let proposed = proposal_for(&x, vehicles);
            match decide(&x, proposed.clone(), yellow, 0.0) {
                Decision::Apply { phases, .. } => {
                    prop_assert_eq!(x.control.mode, ControlMode::Adaptive);
                    let cycle = phases[0].green_s + yellow + phases[0].red_s;
                    let mut floor = 0.0;
                    for (i, p) in phases.iter().enumerate() {
                        prop_assert!((p.green_s + yellow + p.red_s - cycle).abs() < 1e-6);
                        let min = mins.get(i).copied().flatten();
                        let mut lo = min.unwrap_or(0.0);
                        if let Some(f) = change {
                            lo = lo.max(green * (1.0 - f));
                            let hi = (green * (1.0 + f)).max(min.unwrap_or(0.0));
                            prop_assert!(p.green_s <= hi + 1e-6, "phase {}: {} > {}", i, p.green_s, hi);
                        }
                        prop_assert!(p.green_s >= lo - 1e-6, "phase {}: {} < {}", i, p.green_s, lo);
                        floor += lo + yellow;
                    }
                    if let Some(max) = max_cycle {
                        prop_assert!(cycle <= max.max(floor) + 1e-6);
                    }
                }
                Decision::Keep => prop_assert_eq!(x.control.mode, ControlMode::Fixed),
                Decision::Steady => prop_assert!(false, "no smallest change: every proposal applies"),
                Decision::Propose(p) => {
                    prop_assert_eq!(x.control.mode, ControlMode::Manual);
                    prop_assert_eq!(p, proposed);
                }
            }
        }

        #[test]
        fn an_adaptive_intersection_keeps_its_timings_exactly_when_no_green_or_red_moves_by_the_smallest_change(
            green in 8.0_f64..60.0,
            vehicles in proptest::array::uniform4(0_u64..400),
            change in proptest::option::of(0.05_f64..1.0),
            min_change in 0.0_f64..10.0,
        ) {
            let mut x = crossing(green);
            x.control.limits = change.map(|f| TimingLimits {
                max_green_change: Some(f),
                ..TimingLimits::default()
            });
            let proposed = proposal_for(&x, vehicles);
            let Decision::Apply { phases: would, .. } = decide(&x, proposed.clone(), 4.0, 0.0) else {
                return Err(TestCaseError::fail("adaptive applies without a smallest change"));
            };
            let moved = x.phases.iter().zip(&would).any(|(a, b)| {
                (a.green_s - b.green_s).abs() >= min_change || (a.red_s - b.red_s).abs() >= min_change
            });
            match decide(&x, proposed, 4.0, min_change) {
                Decision::Steady => prop_assert!(!moved, "kept although a phase moved: {:?}", would),
                Decision::Apply { phases, .. } => {
                    prop_assert!(moved);
                    prop_assert_eq!(phases, would);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn a_proposal_within_the_smallest_change_is_steady_and_one_beyond_it_applies() {
        let x = crossing(30.0);
        let mut p = x.phases.clone();
        p[0].green_s += 2.9;
        p[0].red_s -= 2.9;
        p[1].green_s -= 2.9;
        p[1].red_s += 2.9;
        assert_eq!(decide(&x, p.clone(), 4.0, 3.0), Decision::Steady);
        p[0].green_s += 0.1;
        p[0].red_s -= 0.1;
        assert!(matches!(
            decide(&x, p.clone(), 4.0, 3.0),
            Decision::Apply { .. }
        ));
        assert!(matches!(
            decide(&x, x.phases.clone(), 4.0, 0.0),
            Decision::Apply { .. }
        ));
        let mut other = x.phases.clone();
        other[0].lights.reverse();
        assert_eq!(largest_change_s(&x.phases, &other), f64::INFINITY);
    }

    #[test]
    fn a_phase_whose_lights_all_sent_nothing_is_blind_and_one_with_a_heard_light_is_not() {
        let x = crossing(30.0);
        let heard_all_but =
            |silent: &'static [usize]| move |l: LightIndex| !silent.contains(&l.get());
        assert!(blind_phases(&x, heard_all_but(&[])).is_empty());
        assert!(blind_phases(&x, heard_all_but(&[0])).is_empty());
        assert_eq!(blind_phases(&x, heard_all_but(&[0, 2])), [0]);
        assert_eq!(blind_phases(&x, heard_all_but(&[0, 1, 2, 3])), [0, 1]);
    }
}
