//! Arrival times for readings that carry none: a shard's event-time frontier.
//!
//! A reading is rejected as *future* when it is stamped more than the allowed clock skew after
//! it arrived in the stream (Kinesis' `approximateArrivalTimestamp`, the local stream's append
//! time; Azure Stream Analytics' early-arrival policy, Flink's bounded out-of-orderness). A
//! file given to `traffic replay` has no arrival times unless its lines carry them, so replay
//! estimates one for each record from the stream around it, with this rule:
//!
//! > Within a shard, take the records from `back` before a record to `ahead` after it. Each
//! > intersection of the city among them *claims* the greatest event time of its readings there
//! > (any reading, believable or not): one vote per intersection. The record's estimated
//! > arrival is the greatest time that at least half of the votes have reached.
//!
//! So one sensor whose clock runs ahead (even many of its readings) is one vote and cannot move
//! the frontier, while a real city-wide jump (every sensor silent for hours, then all resuming
//! together) moves it as soon as the intersections after the jump outvote those before it:
//! with `back` half a round of intersections and `ahead` a whole one (replay uses the number of
//! intersections of the shard, in records), the readings after the jump are all accepted. An
//! intersection that stopped reporting falls out of the window and stops voting. A shard of a
//! single intersection cannot tell the two apart and follows its one sensor.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A Fenwick tree of counts over `n` ordered slots: add, and select by rank.
struct Counts {
    tree: Vec<i64>,
}

impl Counts {
    fn new(n: usize) -> Self {
        Self {
            tree: vec![0; n + 1],
        }
    }

    fn add(&mut self, slot: usize, by: i64) {
        let mut i = slot + 1;
        while i < self.tree.len() {
            self.tree[i] += by;
            i += i & i.wrapping_neg();
        }
    }

    /// The slot holding the `rank`-th item (0-based) in slot order.
    fn select(&self, mut rank: i64) -> usize {
        let mut pos = 0;
        let mut step = (self.tree.len() - 1).next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next < self.tree.len() && self.tree[next] <= rank {
                pos = next;
                rank -= self.tree[next];
            }
            step >>= 1;
        }
        pos
    }
}

/// The claims in a window: each intersection's claims (as time slots) and, counted by slot,
/// one vote per intersection (its greatest claim).
struct Votes<K> {
    counts: Counts,
    voters: i64,
    claims: HashMap<K, BTreeMap<usize, u32>>,
}

impl<K: Eq + Hash + Clone> Votes<K> {
    /// Adds (or removes) a claim of `k` at time slot `slot`.
    fn change(&mut self, k: &K, slot: usize, add: bool) {
        let entry = self.claims.entry(k.clone()).or_default();
        let before = entry.last_key_value().map(|(s, _)| *s);
        if add {
            *entry.entry(slot).or_insert(0) += 1;
        } else if let Some(n) = entry.get_mut(&slot) {
            *n -= 1;
            if *n == 0 {
                entry.remove(&slot);
            }
        }
        let after = entry.last_key_value().map(|(s, _)| *s);
        if entry.is_empty() {
            self.claims.remove(k);
        }
        if before != after {
            if let Some(b) = before {
                self.counts.add(b, -1);
                self.voters -= 1;
            }
            if let Some(a) = after {
                self.counts.add(a, 1);
                self.voters += 1;
            }
        }
    }
}

/// Estimated arrival times for the records of one shard, in stream order (see the module
/// documentation). Each record is its intersection (any key; `None` for a record that does not
/// vote: not a reading of an intersection of the city) and its event time when it has one. The
/// estimate is `None` only when no record in reach claims anything.
pub fn estimate_arrivals<K: Eq + Hash + Clone>(
    records: &[(Option<K>, Option<i64>)],
    back: usize,
    ahead: usize,
) -> Vec<Option<i64>> {
    // Slots: the distinct event times, ascending.
    let mut times: Vec<i64> = records
        .iter()
        .filter(|(k, _)| k.is_some())
        .filter_map(|(_, t)| *t)
        .collect();
    times.sort_unstable();
    times.dedup();
    let slot = |t: i64| times.partition_point(|x| *x < t);
    let mut window = Votes {
        counts: Counts::new(times.len()),
        voters: 0,
        claims: HashMap::new(),
    };
    let n = records.len();
    let mut out = Vec::with_capacity(n);
    let (mut lo, mut hi) = (0usize, 0usize); // the window is records[lo..hi]
    for i in 0..n {
        let want_hi = i.saturating_add(ahead).saturating_add(1).min(n);
        while hi < want_hi {
            if let (Some(k), Some(t)) = &records[hi] {
                window.change(k, slot(*t), true);
            }
            hi += 1;
        }
        let want_lo = i.saturating_sub(back);
        while lo < want_lo {
            if let (Some(k), Some(t)) = &records[lo] {
                window.change(k, slot(*t), false);
            }
            lo += 1;
        }
        out.push((window.voters > 0).then(|| times[window.counts.select(window.voters / 2)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    /// `n` intersections reporting every minute from `from` for `minutes`, one record each.
    fn rounds(n: u32, from: i64, minutes: i64) -> Vec<(Option<u32>, Option<i64>)> {
        (0..minutes)
            .flat_map(|m| (0..n).map(move |i| (Some(i), Some(from + m * MIN))))
            .collect()
    }

    #[test]
    fn one_sensor_far_ahead_cannot_move_the_frontier() {
        let mut rs = rounds(8, 0, 30);
        rs.insert(100, (Some(3), Some(2_000 * 86_400_000)));
        rs.insert(150, (Some(5), Some(6 * 60 * MIN)));
        let est = estimate_arrivals(&rs, 4, 8);
        assert!(est[100].is_some_and(|a| a < 30 * MIN));
        assert!(est[150].is_some_and(|a| a < 30 * MIN));
        // Ordinary readings are estimated at most a round ahead of themselves.
        for (r, e) in rs.iter().zip(&est) {
            if let (Some(t), Some(a)) = (r.1, e)
                && t < 30 * MIN
            {
                assert!(*a <= t + MIN, "{t} estimated at {a}");
            }
        }
    }

    #[test]
    fn a_city_wide_jump_moves_the_frontier_with_its_first_readings() {
        let mut rs = rounds(8, 0, 10);
        let jump = rs.len();
        rs.extend(rounds(8, 6 * 60 * MIN, 10));
        let est = estimate_arrivals(&rs, 4, 8);
        for (i, (r, e)) in rs.iter().zip(&est).enumerate().skip(jump) {
            let (t, a) = (r.1.unwrap_or_default(), e.unwrap_or_default());
            assert!(t <= a, "record {i} at {t} estimated to arrive at {a}");
        }
    }

    #[test]
    fn records_that_claim_nothing_get_an_estimate_from_the_others() {
        let rs = vec![
            (Some(0u32), None),
            (Some(1), Some(5 * MIN)),
            (None, Some(9 * MIN)),
        ];
        assert_eq!(
            estimate_arrivals(&rs, 1, 0),
            vec![None, Some(5 * MIN), Some(5 * MIN)]
        );
        assert_eq!(
            estimate_arrivals::<u32>(&[], 2, 4),
            Vec::<Option<i64>>::new()
        );
    }

    #[test]
    fn intersections_that_stopped_reporting_stop_voting() {
        // Two intersections report at 08:00, then stop; two others go on to 08:20.
        let mut rs: Vec<(Option<u32>, Option<i64>)> = (0..4).map(|i| (Some(i), Some(0))).collect();
        rs.extend((1..=20).flat_map(|m| [(Some(2), Some(m * MIN)), (Some(3), Some(m * MIN))]));
        let est = estimate_arrivals(&rs, 2, 4);
        for (r, e) in rs.iter().zip(&est).skip(8) {
            let (t, a) = (r.1.unwrap_or_default(), e.unwrap_or_default());
            assert!(t <= a + 5 * MIN, "{t} estimated at {a}");
        }
    }

    proptest! {
        #[test]
        fn the_estimate_is_the_time_half_the_claims_in_reach_have_reached(
            rs in prop::collection::vec((prop::option::of(0u8..6), prop::option::of(0i64..1000)), 1..80),
            back in 0usize..10,
            ahead in 0usize..10,
        ) {
            let est = estimate_arrivals(&rs, back, ahead);
            for (i, e) in est.iter().enumerate() {
                let reach = (i + ahead).min(rs.len() - 1);
                let mut claims: HashMap<u8, i64> = HashMap::new();
                for (k, t) in &rs[i.saturating_sub(back)..=reach] {
                    if let (Some(k), Some(t)) = (k, t) {
                        let c = claims.entry(*k).or_insert(*t);
                        *c = (*c).max(*t);
                    }
                }
                let mut v: Vec<i64> = claims.into_values().collect();
                v.sort_unstable();
                let expect = (!v.is_empty()).then(|| v[v.len() / 2]);
                prop_assert_eq!(*e, expect);
            }
        }
    }
}
