//! Safe timings: the limits an operator sets on an
//! intersection, applied to the greens Webster proposes before they reach the field.
//!
//! In order: each green moves at most `max_green_change` (a fraction) from the current one;
//! each phase keeps at least its minimum green (a pedestrian crossing's); the cycle (greens +
//! yellows) is brought down to `max_cycle_s` by taking time only from what the greens have
//! above those floors. Minimum greens win over the maximum cycle (safety first), so the cycle
//! exceeds it only when the minimums and yellows alone do. Every phase's green + yellow + red
//! is the cycle. No limits set: the proposal unchanged (today's behaviour).

use crate::signal::Phase;
pub use crate::signal::TimingLimits;

/// The proposed phases within `limits`, given the `current` ones (the change limit applies
/// only when both have the same phases). Reds are recomputed so that every phase's
/// green + `yellow_s` + red is the cycle.
pub fn within_limits(
    current: &[Phase],
    proposed: &[Phase],
    yellow_s: f64,
    limits: &TimingLimits,
) -> Vec<Phase> {
    if limits.is_empty() {
        return proposed.to_vec();
    }
    let same = current.len() == proposed.len()
        && current
            .iter()
            .zip(proposed)
            .all(|(c, p)| c.lights == p.lights);
    let n = proposed.len();
    let mut lower = vec![0.0_f64; n];
    let mut green: Vec<f64> = proposed.iter().map(|p| p.green_s).collect();
    for i in 0..n {
        let mut lo = 0.0_f64;
        let mut hi = f64::INFINITY;
        if let (true, Some(f)) = (same, limits.max_green_change) {
            let c = current[i].green_s;
            lo = c * (1.0 - f);
            hi = c * (1.0 + f);
        }
        if let Some(Some(m)) = limits.min_green_s.get(i) {
            lo = lo.max(*m);
            hi = hi.max(*m);
        }
        green[i] = green[i].clamp(lo, hi);
        lower[i] = lo;
    }
    if let Some(max) = limits.max_cycle_s {
        let cycle: f64 = green.iter().map(|g| g + yellow_s).sum();
        let floor: f64 = lower.iter().map(|l| l + yellow_s).sum();
        if cycle > max {
            // Take the excess from the slack above the floors, in proportion.
            let target = max.max(floor);
            let slack = cycle - floor;
            let keep = if slack > 0.0 {
                (target - floor) / slack
            } else {
                0.0
            };
            for i in 0..n {
                green[i] = lower[i] + (green[i] - lower[i]) * keep;
            }
        }
    }
    let cycle: f64 = green.iter().map(|g| g + yellow_s).sum();
    proposed
        .iter()
        .zip(green)
        .map(|(p, g)| Phase {
            green_s: g,
            red_s: cycle - g - yellow_s,
            ..p.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::phases;
    use proptest::prelude::*;

    #[test]
    fn no_limits_leave_the_proposal_as_it_is() {
        let p = phases(&[21.3, 40.7], 4.0);
        assert_eq!(
            within_limits(
                &phases(&[30.0, 30.0], 4.0),
                &p,
                4.0,
                &TimingLimits::default()
            ),
            p
        );
    }

    #[test]
    fn a_minimum_green_longer_than_any_green_is_refused_naming_its_phase() {
        let limits = |m: f64| TimingLimits {
            min_green_s: vec![None, Some(m)],
            ..TimingLimits::default()
        };
        assert!(limits(3600.0).validate(2, "").is_ok());
        let e = limits(9.75e307).validate(2, "limits.").err();
        assert!(e.is_some_and(|e| e.field == "limits.min_green_s[1]"));
    }

    #[test]
    fn a_pedestrian_minimum_green_holds_even_against_the_maximum_cycle() {
        let limits = TimingLimits {
            min_green_s: vec![Some(25.0), None],
            max_cycle_s: Some(40.0),
            max_green_change: None,
        };
        let out = within_limits(&[], &phases(&[10.0, 50.0], 4.0), 4.0, &limits);
        assert_eq!(out[0].green_s, 25.0);
        assert!((out[1].green_s - 7.0).abs() < 1e-9, "{out:?}");
    }

    proptest! {
        #[test]
        fn limits_are_respected_and_every_phase_sums_to_the_cycle(
            current in proptest::collection::vec(5.0_f64..90.0, 2..5),
            factors in proptest::collection::vec(0.2_f64..3.0, 4),
            mins in proptest::collection::vec(proptest::option::of(5.0_f64..40.0), 4),
            max_cycle in proptest::option::of(40.0_f64..180.0),
            change in proptest::option::of(0.05_f64..0.5),
        ) {
            let yellow = 4.0;
            let n = current.len();
            let proposed: Vec<f64> = current.iter().zip(&factors).map(|(c, f)| c * f).collect();
            let limits = TimingLimits {
                min_green_s: mins[..n].to_vec(),
                max_cycle_s: max_cycle,
                max_green_change: change,
            };
            let cur = phases(&current, yellow);
            let out = within_limits(&cur, &phases(&proposed, yellow), yellow, &limits);
            let cycle = out[0].green_s + yellow + out[0].red_s;
            let mut floor = 0.0;
            for (i, p) in out.iter().enumerate() {
                prop_assert!((p.green_s + yellow + p.red_s - cycle).abs() < 1e-6);
                let mut lo = 0.0_f64;
                if let Some(f) = change {
                    lo = current[i] * (1.0 - f);
                    let hi = (current[i] * (1.0 + f)).max(mins[i].unwrap_or(0.0));
                    prop_assert!(p.green_s <= hi + 1e-6, "phase {i}: {} > {hi}", p.green_s);
                }
                if let Some(m) = mins[i] {
                    lo = lo.max(m);
                }
                prop_assert!(p.green_s >= lo - 1e-6, "phase {i}: {} < {lo}", p.green_s);
                floor += lo + yellow;
            }
            if let Some(max) = max_cycle {
                prop_assert!(cycle <= max.max(floor) + 1e-6, "cycle {cycle} > {max} (floor {floor})");
            }
        }
    }
}
