//! Query 1: the intersections with the highest vehicle-weighted mean speed.
//!
//! An intersection's mean speed over a window is `Σ vehicles·speed / Σ vehicles` over its
//! readings; readings with no vehicles add nothing, and an intersection with no vehicles is not
//! ranked. Speeds are summed in fixed point (thousandths of a km/h) as integers, so merging
//! partial rankings is exactly associative and commutative: any merge order gives the same
//! top-k, bit for bit. Means are compared by exact cross-multiplication, ties broken by id.

use crate::ids::IntersectionId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Number of intersections in the ranking the system reports.
pub const TOP_K: usize = 10;

/// The integer sums behind a vehicle-weighted mean speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeedSum {
    /// Σ vehicles.
    pub vehicles: u64,
    /// Σ vehicles × speed in thousandths of a km/h.
    pub weighted_milli: u64,
}

impl SpeedSum {
    /// Adds one reading's vehicles at its mean speed (milli-km/h).
    pub fn add(&mut self, vehicles: u32, speed_milli: u64) {
        self.vehicles += u64::from(vehicles);
        self.weighted_milli += u64::from(vehicles) * speed_milli;
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &SpeedSum) {
        self.vehicles += other.vehicles;
        self.weighted_milli += other.weighted_milli;
    }

    /// The mean speed in km/h; `None` when no vehicles were seen.
    pub fn mean_kmh(&self) -> Option<f64> {
        (self.vehicles > 0).then(|| self.weighted_milli as f64 / self.vehicles as f64 / 1000.0)
    }

    /// Compares two means exactly (`a/b` against `c/d` as `a·d` against `c·b`).
    pub fn cmp_mean(&self, other: &SpeedSum) -> Ordering {
        let l = u128::from(self.weighted_milli) * u128::from(other.vehicles);
        let r = u128::from(other.weighted_milli) * u128::from(self.vehicles);
        l.cmp(&r)
    }
}

/// One entry of a ranking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankEntry {
    /// The intersection.
    pub intersection_id: IntersectionId,
    /// Its vehicle-weighted mean speed, km/h.
    pub mean_speed_kmh: f64,
}

/// A partial ranking: the speed sums of the intersections one shard (or one merge) has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRanking {
    sums: BTreeMap<IntersectionId, SpeedSum>,
}

impl PartialRanking {
    /// An empty ranking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the sums of one intersection.
    pub fn add(&mut self, id: &IntersectionId, sum: &SpeedSum) {
        match self.sums.get_mut(id) {
            Some(s) => s.merge(sum),
            None => {
                self.sums.insert(id.clone(), *sum);
            }
        }
    }

    /// Merges another partial ranking into this one.
    pub fn merge_from(&mut self, other: &PartialRanking) {
        for (id, s) in &other.sums {
            self.add(id, s);
        }
    }

    /// A new ranking that is the merge of `self` and `other`; neither input changes.
    pub fn merged(&self, other: &PartialRanking) -> PartialRanking {
        let mut out = self.clone();
        out.merge_from(other);
        out
    }

    /// The `k` intersections with the highest mean speed, fastest first, ties by id ascending.
    pub fn top_k(&self, k: usize) -> Vec<RankEntry> {
        let mut ranked: Vec<(&IntersectionId, &SpeedSum)> =
            self.sums.iter().filter(|(_, s)| s.vehicles > 0).collect();
        ranked.sort_by(|a, b| b.1.cmp_mean(a.1).then_with(|| a.0.cmp(b.0)));
        ranked
            .into_iter()
            .take(k)
            .filter_map(|(id, s)| {
                s.mean_kmh().map(|m| RankEntry {
                    intersection_id: id.clone(),
                    mean_speed_kmh: m,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::id;
    use proptest::prelude::*;

    #[test]
    fn the_mean_is_weighted_by_vehicles_and_empty_intersections_are_not_ranked() {
        let mut r = PartialRanking::new();
        let mut a = SpeedSum::default();
        a.add(10, 40_000);
        a.add(30, 60_000);
        r.add(&id("A"), &a);
        r.add(&id("B"), &SpeedSum::default());
        let top = r.top_k(10);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].mean_speed_kmh, 55.0);
    }

    #[test]
    fn ties_go_to_the_smaller_id() {
        let mut r = PartialRanking::new();
        let mut s = SpeedSum::default();
        s.add(2, 50_000);
        r.add(&id("B"), &s);
        r.add(&id("A"), &s);
        let ids: Vec<_> = r.top_k(2).into_iter().map(|e| e.intersection_id).collect();
        assert_eq!(ids, vec![id("A"), id("B")]);
    }

    fn partials() -> impl Strategy<Value = Vec<Vec<(u8, u32, u64)>>> {
        prop::collection::vec(
            prop::collection::vec((0u8..40, 0u32..50, 0u64..150_000), 0..30),
            1..6,
        )
    }

    fn build(readings: &[(u8, u32, u64)]) -> PartialRanking {
        let mut r = PartialRanking::new();
        for (i, v, s) in readings {
            let mut sum = SpeedSum::default();
            sum.add(*v, *s);
            r.add(&id(&format!("I-{i:03}")), &sum);
        }
        r
    }

    proptest! {
        #[test]
        fn merging_partials_in_any_order_gives_the_same_top_10(parts in partials(), seed in any::<u64>()) {
            let built: Vec<PartialRanking> = parts.iter().map(|p| build(p)).collect();
            let forward = built.iter().fold(PartialRanking::new(), |acc, p| acc.merged(p));
            let mut order: Vec<usize> = (0..built.len()).collect();
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let shuffled = order.iter().fold(PartialRanking::new(), |acc, &i| acc.merged(&built[i]));
            // Tree-shaped merge: pairs first.
            let tree = built.chunks(2)
                .map(|c| c.iter().fold(PartialRanking::new(), |a, p| a.merged(p)))
                .fold(PartialRanking::new(), |a, p| p.merged(&a));
            let all: Vec<_> = parts.concat();
            let single = build(&all);
            prop_assert_eq!(forward.top_k(TOP_K), single.top_k(TOP_K));
            prop_assert_eq!(shuffled.top_k(TOP_K), single.top_k(TOP_K));
            prop_assert_eq!(tree.top_k(TOP_K), single.top_k(TOP_K));
        }

        #[test]
        fn the_top_k_is_sorted_fastest_first(parts in partials()) {
            let top = build(&parts.concat()).top_k(TOP_K);
            prop_assert!(top.len() <= TOP_K);
            for w in top.windows(2) {
                prop_assert!(w[0].mean_speed_kmh > w[1].mean_speed_kmh
                    || (w[0].mean_speed_kmh == w[1].mean_speed_kmh && w[0].intersection_id < w[1].intersection_id));
            }
        }
    }
}
