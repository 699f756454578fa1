//! Coordination: intersections close enough for their platoons to interact share one cycle,
//! and each one's busiest phase starts its green one travel time after its neighbour's, so a
//! platoon released by one green arrives at the next one on green (a "green wave").
//!
//! From every intersection's plan ([`crate::plan`]), its position and the vehicles counted
//! at it in the control window:
//!
//! - **groups**: two intersections are neighbours when they are less than
//!   `max_distance_m` apart (default 400 m; straight line between their positions). A group
//!   is a set joined by neighbours (single linkage: a corridor of signals 300 m apart is one
//!   group however long). The rule is the distance form of the traffic engineers' coupling
//!   rule: platoons disperse with distance (Robertson's platoon dispersion), and beyond a
//!   few hundred metres, at urban speeds, arrivals at the next signal are random enough that
//!   an offset no longer matters; the US MUTCD asks for coordination within half a mile
//!   (800 m) along major routes, the coupling index (two-way volume over distance) for less
//!   where volumes are low. An intersection without neighbours is untouched;
//! - **cycle**: the group's cycle is its members' longest (each member's Webster cycle; the
//!   one that needs the longest is served, the others get more green than they need rather
//!   than less); each member's greens (and maximum greens) are stretched in proportion to
//!   fill it, its yellows and minimum greens kept;
//! - **offsets**: the group's member with the most counted vehicles is the root (offset 0);
//!   the others hang on the tree of shortest neighbour links from it (Prim's), and each
//!   one's offset is its parent's plus the travel time between them at
//!   `progression_speed_kmh` (default 40 km/h: platoons in a 50 km/h street, as a
//!   progression is usually designed a little below the limit), modulo the cycle. The
//!   progression runs outward from the busiest intersection along the chain of nearest
//!   neighbours, so on a corridor it is the corridor itself;
//! - **coordinated phase**: each member's phase with the longest green (Webster's greens are
//!   in proportion to the flow ratios: the busiest direction); its green starts at the offset.
//!
//! Offsets are against the Unix epoch (see [`Plan::offset_s`]): a group needs no common
//! start, only one clock.
//!
//! Laws (property tests below): a group's members share one cycle, the longest of theirs;
//! offsets lie in `[0, cycle)`; an intersection alone keeps its plan; each stretched plan
//! keeps `min ≤ green ≤ max` and its greens + yellows sum to the cycle.

use crate::plan::Plan;
use crate::reading::Position;
use serde::{Deserialize, Serialize};

/// How intersections are coordinated (one default for every network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinationConfig {
    /// Whether plans are coordinated at all.
    pub enabled: bool,
    /// Intersections closer than this are neighbours, m.
    pub max_distance_m: f64,
    /// The speed of a platoon between neighbours, km/h.
    pub progression_speed_kmh: f64,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_distance_m: 400.0,
            progression_speed_kmh: 40.0,
        }
    }
}

impl CoordinationConfig {
    /// The defaults with the variables `lookup` gives: `PLAN_COORDINATION` (`on` or `off`),
    /// `PLAN_COORDINATION_DISTANCE_M` and `PLAN_PROGRESSION_SPEED_KMH` (positive numbers).
    /// The error names the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = Self::default();
        if let Some(v) = lookup("PLAN_COORDINATION") {
            c.enabled = match v.trim() {
                "on" => true,
                "off" => false,
                _ => return Err(format!("PLAN_COORDINATION must be on or off, got {v:?}")),
            };
        }
        let num = |name: &str| -> Result<Option<f64>, String> {
            lookup(name)
                .map(|v| match v.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
                    _ => Err(format!("{name} must be a positive number, got {v:?}")),
                })
                .transpose()
        };
        if let Some(x) = num("PLAN_COORDINATION_DISTANCE_M")? {
            c.max_distance_m = x;
        }
        if let Some(x) = num("PLAN_PROGRESSION_SPEED_KMH")? {
            c.progression_speed_kmh = x;
        }
        Ok(c)
    }
}

/// One intersection as coordination sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Where it is.
    pub position: Position,
    /// Its own plan ([`crate::plan::plan`]).
    pub plan: Plan,
    /// Vehicles counted at it in the control window (all lights).
    pub vehicles: f64,
}

/// The plans of `members` (in their order), coordinated by `cfg`: the single call the
/// callers make, whoever draws the plans.
pub fn coordinate(members: &[Member], cfg: &CoordinationConfig) -> Vec<Plan> {
    let mut out: Vec<Plan> = members.iter().map(|m| m.plan.clone()).collect();
    if !cfg.enabled {
        return out;
    }
    let speed_ms = cfg.progression_speed_kmh / 3.6;
    for group in groups(members, cfg.max_distance_m) {
        if group.len() < 2 {
            continue;
        }
        let cycle = group
            .iter()
            .map(|&i| members[i].plan.cycle_s)
            .fold(0.0, f64::max);
        if cycle.is_nan() || cycle <= 0.0 {
            continue;
        }
        for (i, travel_s) in progression(members, &group, cfg.max_distance_m, speed_ms) {
            let mut p = stretch(&members[i].plan, cycle);
            let offset = travel_s.rem_euclid(cycle);
            p.offset_s = Some(if offset < cycle { offset } else { 0.0 });
            p.coordinated_phase = busiest_phase(&p);
            out[i] = p;
        }
    }
    out
}

/// The groups of neighbours (indices into `members`, each group ascending, groups by their
/// first member).
fn groups(members: &[Member], max_distance_m: f64) -> Vec<Vec<usize>> {
    let n = members.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for a in 0..n {
        for b in a + 1..n {
            if distance(members, a, b) < max_distance_m {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
    }
    let mut by_root: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        let r = root(&mut parent, i);
        by_root[r].push(i);
    }
    by_root.into_iter().filter(|g| !g.is_empty()).collect()
}

fn distance(members: &[Member], a: usize, b: usize) -> f64 {
    members[a].position.distance_m(&members[b].position)
}

/// Each member of `group` with its travel time from the group's root (the member with the
/// most vehicles; the first on a tie) along the tree of shortest neighbour links.
fn progression(
    members: &[Member],
    group: &[usize],
    max_distance_m: f64,
    speed_ms: f64,
) -> Vec<(usize, f64)> {
    let mut root = group[0];
    for &i in group {
        if members[i].vehicles > members[root].vehicles {
            root = i;
        }
    }
    // Prim's: the cheapest link from the tree to a member outside it, one member at a time.
    let mut done = vec![(root, 0.0)];
    let mut left: Vec<usize> = group.iter().copied().filter(|&i| i != root).collect();
    while !left.is_empty() {
        let mut best: Option<(usize, f64, f64)> = None; // (index in left, distance, travel)
        for (k, &v) in left.iter().enumerate() {
            for &(u, t) in &done {
                let d = distance(members, u, v);
                if d < max_distance_m && best.is_none_or(|(_, bd, _)| d < bd) {
                    best = Some((k, d, t + d / speed_ms));
                }
            }
        }
        // The group is joined by neighbour links, so one always exists; a member that somehow
        // had none (a position that is not a number) starts its own progression.
        let (k, t) = best.map_or((0, 0.0), |(k, _, t)| (k, t));
        done.push((left.remove(k), t));
    }
    done
}

/// `plan` stretched to `cycle` (at least its own): its greens and maximum greens grow in
/// proportion, its yellows and minimum greens stay.
fn stretch(plan: &Plan, cycle: f64) -> Plan {
    let greens: f64 = plan.phases.iter().map(|p| p.green_s).sum();
    let lost = (plan.cycle_s - greens).max(0.0);
    let target = (cycle - lost).max(greens);
    let n = plan.phases.len().max(1) as f64;
    let mut p = plan.clone();
    for ph in &mut p.phases {
        let green = if greens > 0.0 {
            ph.green_s * target / greens
        } else {
            target / n
        };
        let factor = if ph.green_s > 0.0 {
            green / ph.green_s
        } else {
            1.0
        };
        ph.max_green_s = (ph.max_green_s * factor).max(green);
        ph.green_s = green;
        ph.min_green_s = ph.min_green_s.min(green);
    }
    p.cycle_s = p.phases.iter().map(|ph| ph.green_s).sum::<f64>() + lost;
    p
}

/// The phase with the longest green (the first on a tie).
fn busiest_phase(plan: &Plan) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, ph) in plan.phases.iter().enumerate() {
        if best.is_none_or(|b| ph.green_s > plan.phases[b].green_s) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PhasePlan;
    use proptest::prelude::*;

    /// The defaults, switched on.
    fn on() -> CoordinationConfig {
        CoordinationConfig {
            enabled: true,
            ..CoordinationConfig::default()
        }
    }

    /// Metres per degree of latitude on the sphere of [`Position::distance_m`].
    const M_PER_DEG: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

    fn plan_of(greens: &[f64], yellow: f64) -> Plan {
        Plan {
            cycle_s: greens.iter().map(|g| g + yellow).sum(),
            offset_s: None,
            coordinated_phase: None,
            phases: greens
                .iter()
                .map(|&g| PhasePlan {
                    min_green_s: (g / 2.0).min(g),
                    green_s: g,
                    max_green_s: 3.0 * g,
                })
                .collect(),
        }
    }

    /// A member `north_m` metres north of 41.85 N 12.60 E.
    fn member(north_m: f64, greens: &[f64], vehicles: f64) -> Member {
        Member {
            position: Position {
                lat: 41.85 + north_m / M_PER_DEG,
                lon: 12.60,
            },
            plan: plan_of(greens, 4.0),
            vehicles,
        }
    }

    #[test]
    fn a_corridor_shares_the_longest_cycle_and_its_offsets_follow_the_travel_time_from_the_busiest()
    {
        // Three signals 200 m apart on a north-south street; the middle one is the busiest.
        let members = [
            member(0.0, &[20.0, 12.0], 100.0),
            member(200.0, &[30.0, 22.0], 500.0),
            member(400.0, &[10.0, 10.0], 50.0),
        ];
        let plans = coordinate(&members, &on());
        // The longest cycle is the middle one's: 30 + 22 + 2 × 4 = 60 s.
        for p in &plans {
            assert!((p.cycle_s - 60.0).abs() < 1e-9, "{p:?}");
        }
        // 200 m at 40 km/h: 18 s from the middle one, both ways.
        let offsets: Vec<f64> = plans.iter().map(|p| p.offset_s.unwrap_or(-1.0)).collect();
        assert_eq!(offsets[1], 0.0);
        assert!((offsets[0] - 18.0).abs() < 1e-6, "{offsets:?}");
        assert!((offsets[2] - 18.0).abs() < 1e-6, "{offsets:?}");
        // The first one's greens 20 and 12 fill 60 - 8 = 52 s in proportion: 32.5 and 19.5.
        assert!((plans[0].phases[0].green_s - 32.5).abs() < 1e-9);
        assert!((plans[0].phases[1].green_s - 19.5).abs() < 1e-9);
        assert_eq!(plans[0].phases[0].min_green_s, 10.0);
        assert!((plans[0].phases[0].max_green_s - 97.5).abs() < 1e-9);
        assert!(plans.iter().all(|p| p.coordinated_phase == Some(0)));
    }

    #[test]
    fn a_chain_adds_up_travel_times_and_wraps_them_into_the_cycle() {
        // Four signals 300 m apart (each neighbour of the next only), the first the busiest:
        // 27 s per link at 40 km/h, so 0, 27, 54 and 81 - 60 = 21 s in a 60 s cycle.
        let members: Vec<Member> = (0..4)
            .map(|k| member(300.0 * k as f64, &[30.0, 22.0], 100.0 - k as f64))
            .collect();
        let plans = coordinate(&members, &on());
        let offsets: Vec<f64> = plans.iter().map(|p| p.offset_s.unwrap_or(-1.0)).collect();
        for (o, want) in offsets.iter().zip([0.0, 27.0, 54.0, 21.0]) {
            assert!((o - want).abs() < 1e-6, "{offsets:?}");
        }
    }

    #[test]
    fn signals_farther_apart_than_the_distance_are_left_alone() {
        let members = [
            member(0.0, &[20.0, 12.0], 100.0),
            member(600.0, &[30.0, 22.0], 500.0),
        ];
        let plans = coordinate(&members, &on());
        assert_eq!(plans[0], members[0].plan);
        assert_eq!(plans[1], members[1].plan);
    }

    #[test]
    fn by_default_it_is_off_and_changes_no_plan() {
        let members = [
            member(0.0, &[20.0, 12.0], 100.0),
            member(100.0, &[30.0, 22.0], 500.0),
        ];
        let plans = coordinate(&members, &CoordinationConfig::default());
        assert_eq!(
            plans,
            vec![members[0].plan.clone(), members[1].plan.clone()]
        );
    }

    #[test]
    fn the_variables_set_the_config_and_nonsense_is_refused() {
        let c = CoordinationConfig::from_lookup(|k| {
            (k == "PLAN_COORDINATION").then(|| "on".to_owned())
        });
        assert_eq!(c.map(|c| c.enabled), Ok(true));
        let c = CoordinationConfig::from_lookup(|k| {
            (k == "PLAN_PROGRESSION_SPEED_KMH").then(|| "30".to_owned())
        });
        assert_eq!(c.map(|c| c.progression_speed_kmh), Ok(30.0));
        for (k, v) in [
            ("PLAN_COORDINATION", "yes"),
            ("PLAN_COORDINATION_DISTANCE_M", "0"),
            ("PLAN_PROGRESSION_SPEED_KMH", "fast"),
        ] {
            let e = CoordinationConfig::from_lookup(|x| (x == k).then(|| v.to_owned()));
            assert!(e.as_ref().is_err_and(|e| e.contains(k)), "{k}: {e:?}");
        }
        assert_eq!(
            CoordinationConfig::from_lookup(|_| None),
            Ok(CoordinationConfig::default())
        );
    }

    fn members_strategy() -> impl Strategy<Value = Vec<Member>> {
        proptest::collection::vec(
            (
                0.0_f64..2000.0,
                0.0_f64..2000.0,
                proptest::collection::vec(0.0_f64..90.0, 1..5),
                0.0_f64..2000.0,
            ),
            1..9,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(n, e, greens, vehicles)| Member {
                    position: Position {
                        lat: 41.85 + n / M_PER_DEG,
                        lon: 12.60 + e / (M_PER_DEG * 41.85_f64.to_radians().cos()),
                    },
                    plan: plan_of(&greens, 3.0),
                    vehicles,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn groups_share_their_longest_cycle_offsets_lie_in_it_and_loners_are_untouched(
            members in members_strategy(),
        ) {
            let cfg = on();
            let plans = coordinate(&members, &cfg);
            prop_assert_eq!(plans.len(), members.len());
            for group in groups(&members, cfg.max_distance_m) {
                if group.len() == 1 {
                    prop_assert_eq!(&plans[group[0]], &members[group[0]].plan);
                    continue;
                }
                let longest = group.iter().map(|&i| members[i].plan.cycle_s).fold(0.0, f64::max);
                for &i in &group {
                    let p = &plans[i];
                    prop_assert!((p.cycle_s - longest).abs() < 1e-6, "{} vs {}", p.cycle_s, longest);
                    let o = p.offset_s.unwrap_or(-1.0);
                    prop_assert!(o >= 0.0 && o < p.cycle_s, "offset {}", o);
                    prop_assert!(p.coordinated_phase.is_some_and(|k| k < p.phases.len()));
                    let mut sum = 0.0;
                    for ph in &p.phases {
                        prop_assert!(ph.min_green_s <= ph.green_s && ph.green_s <= ph.max_green_s, "{:?}", ph);
                        sum += ph.green_s + 3.0;
                    }
                    prop_assert!((sum - p.cycle_s).abs() < 1e-6);
                }
            }
        }

        #[test]
        fn every_member_of_a_group_has_a_neighbour_in_it(members in members_strategy()) {
            let d = CoordinationConfig::default().max_distance_m;
            for group in groups(&members, d) {
                if group.len() < 2 { continue; }
                for &i in &group {
                    prop_assert!(group.iter().any(|&j| j != i && distance(&members, i, j) < d));
                }
            }
        }
    }
}
