//! The merge's outputs as rows of the archive's tables, one set per closed window: what a
//! traffic engineer queries weeks later, after the results store has let the window go.
//!
//! | table | one row per |
//! |---|---|
//! | `windows` | closed window: readings, intersections, the global median, what compaction dropped |
//! | `window_intersections` | intersection with readings in the window: readings, vehicles (all lights and per light), mean speed, median |
//! | `window_rankings` | place in the window's top-k by mean speed (`top`) or in the above-median list (`above_median`) |
//! | `window_plans` | phase of each intersection's plan in force after the merge's retiming round from a control window |
//!
//! Every row comes from the window's final rollup and its result, which do not depend on how
//! the merge runs were spaced (the law of `merge_run::run`): a redone merge builds the same
//! rows, in the same order, and the adapters write them under the same names.

use crate::city::Intersection;
use crate::ids::{IntersectionId, LIGHTS_PER_INTERSECTION};
use crate::plan::{Plan, PlanConfig, plan_of};
use crate::query::WindowResult;
use crate::rollup::Rollup;
use crate::signal::ControlMode;
use crate::window::WindowKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A closed window's row of `windows`.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Readings in the window (after compaction).
    pub readings: u64,
    /// Intersections with readings.
    pub intersections: u64,
    /// Median of all readings' vehicle counts (query 2's threshold).
    pub global_median_vehicles: f64,
    /// Readings compaction dropped as delivered twice.
    pub duplicates: u64,
    /// Readings compaction dropped as closer than the minimum interval to the one before.
    pub too_frequent: u64,
}

/// One intersection's row of `window_intersections`.
#[derive(Clone, Debug, PartialEq)]
pub struct IntersectionRow {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// Its figures over the window.
    pub figures: Figures,
}

/// An intersection's figures over one window (JSON: the API's history of an intersection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Its readings in the window.
    pub readings: u64,
    /// Vehicles that crossed, all lights.
    pub vehicles: u64,
    /// Vehicles per light, light 0 first.
    pub light_vehicles: [u64; LIGHTS_PER_INTERSECTION],
    /// Vehicle-weighted mean speed, km/h; `None` when no vehicle crossed.
    pub mean_speed_kmh: Option<f64>,
    /// Median of its readings' vehicle counts (the t-digest's estimate).
    pub median_vehicles: Option<f64>,
}

/// Which list a [`RankingRow`] places an intersection in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranking {
    /// Query 1: the fastest by mean speed; the value is the mean speed, km/h.
    Top,
    /// Query 2: median vehicle count above the global one; the value is the median.
    AboveMedian,
}

impl Ranking {
    /// As the `ranking` column holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Ranking::Top => "top",
            Ranking::AboveMedian => "above_median",
        }
    }
}

/// One place of one ranking: a row of `window_rankings`.
#[derive(Clone, Debug, PartialEq)]
pub struct RankingRow {
    /// The list.
    pub ranking: Ranking,
    /// 1 for the first.
    pub place: u32,
    /// The intersection in that place.
    pub intersection_id: IntersectionId,
    /// Its mean speed (km/h) in `top`, its median vehicle count in `above_median`.
    pub value: f64,
}

/// Every row one closed window adds to the archive.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowTables {
    /// The window.
    pub window: WindowKey,
    /// Its row of `windows`.
    pub summary: WindowRow,
    /// Its rows of `window_intersections`, by intersection id.
    pub intersections: Vec<IntersectionRow>,
    /// Its rows of `window_rankings`: `top` in place order, then `above_median`.
    pub rankings: Vec<RankingRow>,
}

impl WindowTables {
    /// The rows of the window `rollup` covers, whose result is `result` (`rollup.finish`).
    pub fn of(rollup: &Rollup, result: &WindowResult) -> Self {
        let intersections = rollup
            .intersections
            .iter()
            .map(|(id, t)| IntersectionRow {
                intersection_id: id.clone(),
                figures: Figures {
                    readings: t.readings,
                    vehicles: t.vehicles.iter().sum(),
                    light_vehicles: t.vehicles,
                    mean_speed_kmh: t.speed.mean_kmh(),
                    median_vehicles: t.digest.median(),
                },
            })
            .collect();
        let top = result
            .top
            .iter()
            .map(|e| (Ranking::Top, &e.intersection_id, e.mean_speed_kmh));
        let above = result
            .above_median
            .iter()
            .map(|e| (Ranking::AboveMedian, &e.intersection_id, e.median_vehicles));
        let mut rankings = Vec::with_capacity(result.top.len() + result.above_median.len());
        for list in [top.collect::<Vec<_>>(), above.collect()] {
            rankings.extend(
                list.into_iter()
                    .zip(1..)
                    .map(|((ranking, id, value), place)| RankingRow {
                        ranking,
                        place,
                        intersection_id: id.clone(),
                        value,
                    }),
            );
        }
        Self {
            window: rollup.window,
            summary: WindowRow {
                readings: result.readings,
                intersections: rollup.intersections.len() as u64,
                global_median_vehicles: result.global_median_vehicles,
                duplicates: rollup.counts.duplicates,
                too_frequent: rollup.counts.too_frequent,
            },
            intersections,
            rankings,
        }
    }

    /// The UTC day (`2026-01-05`) the window starts on: the partition its rows go in.
    pub fn day(&self) -> String {
        crate::time::format_rfc3339_ms(self.window.start_ms)[..10].to_owned()
    }
}

/// One phase of one intersection's plan in force after a retiming round: a row of
/// `window_plans`, the split monitor's data (each phase's green over time) and, where
/// `retimed`, a plan change the merge made.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRow {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// How its timings are set.
    pub mode: ControlMode,
    /// Whether the merge retimed it from this control window (its plan changed by Webster).
    pub retimed: bool,
    /// The phase's index in the intersection's phases.
    pub phase: u32,
    /// The plan's cycle, s.
    pub cycle_s: f64,
    /// The plan's offset, s, when coordinated.
    pub offset_s: Option<f64>,
    /// The phase's shortest, fixed-time and longest green, s.
    pub min_green_s: f64,
    /// See `min_green_s`.
    pub green_s: f64,
    /// See `min_green_s`.
    pub max_green_s: f64,
}

/// Every intersection's plan after the merge's retiming round from one control window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowPlans {
    /// The control window the round retimed from.
    pub window: WindowKey,
    /// A row per phase of every intersection, by intersection id then phase.
    pub rows: Vec<PlanRow>,
}

impl WindowPlans {
    /// The plans in force after the round from `window` that read `listed` and retimed the
    /// intersections of `retimed` (their new plans): the others run the plan of their timings
    /// as read. A redone round finds the intersections retimed before the crash already
    /// retimed from `window`, with the plans stored then, so it gives the same rows.
    pub fn of(
        window: WindowKey,
        listed: &[Intersection],
        retimed: &BTreeMap<IntersectionId, Plan>,
        yellow_s: f64,
        cfg: &PlanConfig,
    ) -> Self {
        let mut sorted: Vec<&Intersection> = listed.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut rows = Vec::new();
        for x in sorted {
            let new = retimed.get(&x.id);
            let plan = new.cloned().unwrap_or_else(|| plan_of(x, yellow_s, cfg));
            rows.extend(plan.phases.iter().zip(0..).map(|(p, phase)| PlanRow {
                intersection_id: x.id.clone(),
                mode: x.control.mode,
                retimed: new.is_some(),
                phase,
                cycle_s: plan.cycle_s,
                offset_s: plan.offset_s,
                min_green_s: p.min_green_s,
                green_s: p.green_s,
                max_green_s: p.max_green_s,
            }));
        }
        Self { window, rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::DeltaReading;
    use crate::ids::LightIndex;
    use crate::rollup::Totals;
    use crate::window::WindowLength;

    const T0: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z

    fn reading(light: i64, vehicles: u32, kmh: u64) -> DeltaReading {
        DeltaReading {
            light: LightIndex::new(light).unwrap_or_else(|e| panic!("{e}")),
            ts_ms: T0,
            vehicles,
            speed_milli: kmh * 1000,
        }
    }

    fn rollup() -> Rollup {
        let window = WindowKey {
            length: WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m")),
            start_ms: T0,
        };
        let mut r = Rollup::new(window);
        for (id, readings) in [
            ("I-0001", vec![reading(0, 4, 30), reading(1, 6, 40)]),
            (
                "I-0002",
                vec![reading(2, 1, 60), reading(2, 1, 60), reading(3, 1, 60)],
            ),
            ("I-0003", vec![reading(0, 0, 0)]),
        ] {
            let mut t = Totals::new(100);
            for x in &readings {
                t.add_reading(x);
            }
            r.intersections.insert(
                IntersectionId::parse(id).unwrap_or_else(|e| panic!("{e}")),
                t,
            );
        }
        r.counts.duplicates = 2;
        r
    }

    #[test]
    fn a_window_gives_one_summary_a_row_per_intersection_and_a_row_per_place() {
        let r = rollup();
        let result = r.finish(true, 10);
        let t = WindowTables::of(&r, &result);
        assert_eq!(t.day(), "2026-01-05");
        assert_eq!(
            t.summary,
            WindowRow {
                readings: 6,
                intersections: 3,
                global_median_vehicles: result.global_median_vehicles,
                duplicates: 2,
                too_frequent: 0,
            }
        );
        assert_eq!(t.intersections[0].intersection_id.as_str(), "I-0001");
        let first = &t.intersections[0].figures;
        assert_eq!((first.readings, first.vehicles), (2, 10));
        assert_eq!(first.light_vehicles, [4, 6, 0, 0]);
        assert_eq!(first.mean_speed_kmh, Some(36.0));
        assert_eq!(t.intersections[1].figures.light_vehicles, [0, 0, 2, 1]);
        // No vehicle crossed: no mean speed, a median of zero.
        let none = &t.intersections[2].figures;
        assert_eq!(
            (none.mean_speed_kmh, none.median_vehicles),
            (None, Some(0.0))
        );
        // The ranking rows are the result's lists, numbered from 1.
        let top: Vec<_> = t
            .rankings
            .iter()
            .filter(|x| x.ranking == Ranking::Top)
            .collect();
        assert_eq!(top.len(), result.top.len());
        for (row, entry) in top.iter().zip(&result.top) {
            assert_eq!(row.intersection_id, entry.intersection_id);
            assert_eq!(row.value, entry.mean_speed_kmh);
        }
        assert_eq!(top.iter().map(|x| x.place).collect::<Vec<_>>(), [1, 2]);
        let above: Vec<_> = t
            .rankings
            .iter()
            .filter(|x| x.ranking == Ranking::AboveMedian)
            .collect();
        assert_eq!(above.len(), result.above_median.len());
        assert_eq!(
            above.first().map(|x| x.place),
            result.above_median.first().map(|_| 1)
        );
    }

    fn two_crossings() -> Vec<Intersection> {
        let x = |id: &str, green: f64| {
            format!(
                r#"{{"id":"{id}","lat":41.85,"lon":12.60,
                  "lights":[{{"light":0,"saturation_veh_h":1800}},{{"light":1,"saturation_veh_h":1800}}],
                  "phases":[{{"lights":[0],"green_s":{green},"red_s":30}},{{"lights":[1],"green_s":26,"red_s":{red}}}]}}"#,
                red = green + 4.0
            )
        };
        let json = format!(
            r#"{{"intersections":[{},{}]}}"#,
            x("I-0002", 20.0),
            x("I-0001", 26.0)
        );
        crate::City::parse(&json)
            .unwrap_or_else(|e| panic!("{e}"))
            .intersections
    }

    #[test]
    fn the_plans_after_a_round_are_the_new_ones_where_it_retimed_and_the_read_ones_elsewhere() {
        let listed = two_crossings();
        let cfg = PlanConfig::default();
        let window = rollup().window;
        // I-0002 retimed to the plan of other greens.
        let mut other = listed[0].clone();
        other.phases[0].green_s = 32.0;
        other.phases[0].red_s = 30.0;
        let new = plan_of(&other, 4.0, &cfg);
        let retimed = BTreeMap::from([(listed[0].id.clone(), new.clone())]);
        let p = WindowPlans::of(window, &listed, &retimed, 4.0, &cfg);
        // By id, then phase.
        let keys: Vec<(&str, u32, bool)> = p
            .rows
            .iter()
            .map(|r| (r.intersection_id.as_str(), r.phase, r.retimed))
            .collect();
        assert_eq!(
            keys,
            [
                ("I-0001", 0, false),
                ("I-0001", 1, false),
                ("I-0002", 0, true),
                ("I-0002", 1, true)
            ]
        );
        let kept = plan_of(&listed[1], 4.0, &cfg);
        assert_eq!(p.rows[0].green_s, kept.phases[0].green_s);
        assert_eq!(
            (p.rows[2].green_s, p.rows[2].cycle_s),
            (new.phases[0].green_s, new.cycle_s)
        );
        assert_eq!(p.rows[2].mode, ControlMode::Adaptive);
    }
}
