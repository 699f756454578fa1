//! Rollups: every intersection's totals over one window, and the compaction that builds a
//! pane's rollup from its deltas.
//!
//! A closed pane is compacted once: its deltas (every shard's, in delivery order) are read,
//! each light's readings are put in time order, and a reading is kept only if it is at least
//! `min_reading_interval` after the light's previous kept reading; a reading at the same
//! instant as a kept one is a *duplicate* (the first delivered is kept), one closer than the
//! interval is *too frequent* (rejected). The kept readings are summed per intersection into
//! [`Totals`]: speed sums and vehicles exactly (integers), vehicle counts in an exact digest
//! ([`crate::digest`]). Totals merge exactly, in any order, so a longer window's rollup is the
//! sum of its sub-windows' rollups, built as they close (`through_ms` says how far), and the
//! results of any window are a pure function of its readings.

use crate::delta::{Delta, DeltaReading};
use crate::digest::VehicleDigest;
use crate::ids::{IntersectionId, LIGHTS_PER_INTERSECTION};
use crate::query::{IntersectionState, MedianEntry, NetworkState, WindowResult};
use crate::ranking::{PartialRanking, SpeedSum};
use crate::time::format_rfc3339_ms;
use crate::window::WindowKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One intersection's totals over a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Speed sums (query 1).
    pub speed: SpeedSum,
    /// Vehicles per light (Webster's flows).
    pub vehicles: [u64; LIGHTS_PER_INTERSECTION],
    /// Readings.
    pub readings: u64,
    /// Vehicle counts of its readings (query 2).
    pub digest: VehicleDigest,
}

impl Totals {
    /// Empty totals with a digest of size `digest_size`.
    pub fn new(digest_size: usize) -> Self {
        Self {
            speed: SpeedSum::default(),
            vehicles: [0; LIGHTS_PER_INTERSECTION],
            readings: 0,
            digest: VehicleDigest::new(digest_size),
        }
    }

    /// Adds one reading.
    pub fn add_reading(&mut self, r: &DeltaReading) {
        if r.vehicles > 0 {
            self.speed.add(r.vehicles, r.speed_milli);
        }
        self.vehicles[r.light.get()] += u64::from(r.vehicles);
        self.readings += 1;
        self.digest.push(f64::from(r.vehicles));
    }

    /// Adds other totals.
    pub fn add(&mut self, o: &Totals) {
        self.speed.merge(&o.speed);
        for (v, w) in self.vehicles.iter_mut().zip(&o.vehicles) {
            *v += w;
        }
        self.readings += o.readings;
        self.digest.merge_from_all([&o.digest]);
    }
}

/// What compaction dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionCounts {
    /// Readings at the same instant as a kept reading of the same light.
    pub duplicates: u64,
    /// Readings closer than the minimum interval to a kept reading of the same light.
    pub too_frequent: u64,
}

counts!(CompactionCounts {
    duplicates,
    too_frequent
});

/// Every intersection's totals over one window (or over the part of it up to `through_ms`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// The window.
    pub window: WindowKey,
    /// The readings included are those before this instant (the window's end once complete).
    pub through_ms: i64,
    /// Totals by intersection.
    pub intersections: BTreeMap<IntersectionId, Totals>,
    /// What compaction dropped from the readings included.
    pub counts: CompactionCounts,
}

impl Rollup {
    /// An empty rollup of `window`, including nothing yet.
    pub fn new(window: WindowKey) -> Self {
        Self {
            window,
            through_ms: window.start_ms,
            intersections: BTreeMap::new(),
            counts: CompactionCounts::default(),
        }
    }

    /// Whether it includes all of its window.
    pub fn is_complete(&self) -> bool {
        self.through_ms >= self.window.end_ms()
    }

    /// Compacts the deltas of `pane` (every shard's, each shard's in commit and part order)
    /// into the pane's rollup.
    pub fn compact<'d>(
        pane: WindowKey,
        deltas: impl IntoIterator<Item = &'d Delta>,
        min_interval_ms: i64,
        digest_size: usize,
    ) -> Self {
        // Per intersection and light: readings in delivery order.
        let mut by_light: BTreeMap<&IntersectionId, [Vec<DeltaReading>; LIGHTS_PER_INTERSECTION]> =
            BTreeMap::new();
        for d in deltas {
            if d.pane != pane {
                continue;
            }
            for (id, rs) in &d.readings {
                let lights = by_light.entry(id).or_default();
                for r in rs {
                    lights[r.light.get()].push(*r);
                }
            }
        }
        let mut out = Rollup::new(pane);
        out.through_ms = pane.end_ms();
        for (id, lights) in by_light {
            let mut t = Totals::new(digest_size);
            for mut rs in lights {
                // Stable: among readings at the same instant, the first delivered comes first.
                rs.sort_by_key(|r| r.ts_ms);
                let mut last: Option<i64> = None;
                for r in &rs {
                    match last {
                        Some(l) if r.ts_ms == l => out.counts.duplicates += 1,
                        Some(l) if r.ts_ms - l < min_interval_ms => out.counts.too_frequent += 1,
                        _ => {
                            t.add_reading(r);
                            last = Some(r.ts_ms);
                        }
                    }
                }
            }
            if t.readings > 0 {
                out.intersections.insert(id.clone(), t);
            }
        }
        out
    }

    /// Adds a rollup of a sub-window (or of the same window): totals and counts summed,
    /// `through_ms` the later of the two.
    pub fn add(&mut self, o: &Rollup) {
        for (id, t) in &o.intersections {
            match self.intersections.get_mut(id) {
                Some(mine) => mine.add(t),
                None => {
                    self.intersections.insert(id.clone(), t.clone());
                }
            }
        }
        self.counts.add(&o.counts);
        self.through_ms = self.through_ms.max(o.through_ms);
    }

    /// Readings included.
    pub fn readings(&self) -> u64 {
        self.intersections.values().map(|t| t.readings).sum()
    }

    /// The window's results (queries 1 and 2); `top_k` entries in the ranking.
    pub fn finish(&self, closed: bool, top_k: usize) -> WindowResult {
        let mut ranking = PartialRanking::new();
        let mut medians = Vec::with_capacity(self.intersections.len());
        let mut readings = 0;
        for (id, t) in &self.intersections {
            ranking.add(id, &t.speed);
            readings += t.readings;
            if let Some(m) = t.digest.median() {
                medians.push((id, m));
            }
        }
        let global = VehicleDigest::merge_all(self.intersections.values().map(|t| &t.digest))
            .median()
            .unwrap_or(0.0);
        let mut above: Vec<MedianEntry> = medians
            .into_iter()
            .filter(|(_, m)| *m > global)
            .map(|(id, m)| MedianEntry {
                intersection_id: id.clone(),
                median_vehicles: m,
            })
            .collect();
        above.sort_by(|a, b| {
            b.median_vehicles
                .total_cmp(&a.median_vehicles)
                .then_with(|| a.intersection_id.cmp(&b.intersection_id))
        });
        WindowResult {
            window: self.window,
            closed,
            readings,
            top: ranking.top_k(top_k),
            global_median_vehicles: global,
            above_median: above,
        }
    }

    /// Every intersection's mean speed and traffic over the window, by id.
    pub fn network(&self, closed: bool) -> NetworkState {
        NetworkState {
            length: self.window.length.to_string(),
            start: format_rfc3339_ms(self.window.start_ms),
            end: format_rfc3339_ms(self.window.end_ms()),
            closed,
            intersections: self
                .intersections
                .iter()
                .map(|(id, t)| IntersectionState {
                    intersection_id: id.clone(),
                    mean_speed_kmh: t.speed.mean_kmh(),
                    vehicles: t.vehicles.iter().sum(),
                    readings: t.readings,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::DeltaKey;
    use crate::testing::{id, light};
    use crate::window::WindowLength;
    use proptest::prelude::*;

    const T0: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z

    fn pane() -> WindowKey {
        WindowLength::from_ms(900_000)
            .unwrap_or_else(|| panic!("15m"))
            .window_of(T0)
    }

    fn reading(light: i64, s: i64, vehicles: u32, speed: u64) -> DeltaReading {
        DeltaReading {
            light: self::light(light),
            ts_ms: T0 + s * 1000,
            vehicles,
            speed_milli: speed * 1000,
        }
    }

    fn delta(shard: &str, commit: u64, rows: &[(&str, DeltaReading)]) -> Delta {
        let mut d = Delta::new(
            DeltaKey {
                pane_start_ms: T0,
                shard_id: shard.into(),
                commit,
                part: 0,
            },
            pane(),
        );
        for (x, r) in rows {
            d.push(&id(x), *r);
        }
        d
    }

    #[test]
    fn a_duplicate_in_a_later_delta_counts_once_and_the_first_delivered_wins() {
        let a = delta("s", 1, &[("I-1", reading(0, 60, 10, 40))]);
        // The same light and instant again, with other values (a faulty producer), later.
        let b = delta("s", 2, &[("I-1", reading(0, 60, 99, 10))]);
        let r = Rollup::compact(pane(), [&a, &b], 5_000, 200);
        let t = &r.intersections[&id("I-1")];
        assert_eq!((t.readings, t.vehicles[0]), (1, 10));
        assert_eq!(r.counts.duplicates, 1);
    }

    #[test]
    fn readings_closer_than_the_minimum_interval_are_too_frequent() {
        // 0 s, 2 s, 4 s, 5 s, 9 s, 10 s of one light with a 5 s minimum: 0, 5 and 10 kept.
        let rows: Vec<(&str, DeltaReading)> = [0, 2, 4, 5, 9, 10]
            .iter()
            .map(|s| ("I-1", reading(1, *s, 1, 30)))
            .collect();
        let r = Rollup::compact(pane(), [&delta("s", 1, &rows)], 5_000, 200);
        assert_eq!(r.intersections[&id("I-1")].readings, 3);
        assert_eq!(r.counts.too_frequent, 3);
    }

    #[test]
    fn the_hand_worked_window_of_the_replay_tests() {
        // Counts 10,30 | 20,0 | 5,5: medians 20, 10, 5; all six sorted 0,5,5,10,20,30 → 7.5.
        let d = delta(
            "s",
            1,
            &[
                ("I-0001", reading(0, 60, 10, 40)),
                ("I-0001", reading(1, 60, 30, 60)),
                ("I-0002", reading(0, 60, 20, 50)),
                ("I-0002", reading(2, 60, 0, 0)),
                ("I-0003", reading(0, 60, 5, 20)),
                ("I-0003", reading(1, 60, 5, 30)),
            ],
        );
        let result = Rollup::compact(pane(), [&d], 5_000, 200).finish(true, 10);
        assert_eq!(result.global_median_vehicles, 7.5);
        let above: Vec<&str> = result
            .above_median
            .iter()
            .map(|e| e.intersection_id.as_str())
            .collect();
        assert_eq!(above, ["I-0001", "I-0002"]);
        // (10 × 40 + 30 × 60) / 40 = 55 km/h first.
        assert_eq!(result.top[0].mean_speed_kmh, 55.0);
    }

    fn readings() -> impl Strategy<Value = Vec<(u8, u8, i64, u32, u64)>> {
        prop::collection::vec((0u8..6, 0u8..4, 0i64..900, 0u32..40, 0u64..80), 1..200)
    }

    proptest! {
        #[test]
        fn a_window_is_the_same_whatever_the_deltas_and_the_rollup_tree(
            rows in readings(),
            cut in 0usize..200,
            dup_every in 1usize..9,
        ) {
            // All readings in one delta, or cut in two deltas with some readings repeated in
            // the second: the same pane rollup.
            let all: Vec<(String, DeltaReading)> = rows
                .iter()
                .map(|(i, l, s, v, k)| (format!("I-{i}"), reading(i64::from(*l), *s, *v, *k)))
                .collect();
            let one = delta("s", 1, &all.iter().map(|(x, r)| (x.as_str(), *r)).collect::<Vec<_>>());
            let k = cut.min(all.len());
            let first: Vec<(&str, DeltaReading)> = all[..k].iter().map(|(x, r)| (x.as_str(), *r)).collect();
            let mut second: Vec<(&str, DeltaReading)> = all[k..].iter().map(|(x, r)| (x.as_str(), *r)).collect();
            second.extend(all[..k].iter().step_by(dup_every).map(|(x, r)| (x.as_str(), *r)));
            let (a, b) = (delta("s", 1, &first), delta("s", 2, &second));
            let whole = Rollup::compact(pane(), [&one], 5_000, 200);
            let split = Rollup::compact(pane(), [&a, &b], 5_000, 200);
            prop_assert_eq!(&whole.intersections, &split.intersections);
            prop_assert_eq!(whole.finish(true, 10), split.finish(true, 10));

            // A 1-hour window from pane rollups in any grouping gives the same result.
            let hour = WindowLength::from_ms(3_600_000).unwrap_or_else(|| panic!("1h")).window_of(T0);
            let mut shifted = whole.clone();
            shifted.window.start_ms += 900_000;
            shifted.through_ms += 900_000;
            let mut ab = Rollup::new(hour);
            ab.add(&whole);
            ab.add(&shifted);
            let mut ba = Rollup::new(hour);
            ba.add(&shifted);
            ba.add(&whole);
            prop_assert_eq!(ab.finish(false, 10), ba.finish(false, 10));
        }
    }
}
