//! Arrival times for readings that carry none: a shard's event-time frontier.
//!
//! A reading is rejected as *future* when it is stamped more than the allowed clock skew after
//! it arrived in the stream (Kinesis' `approximateArrivalTimestamp`, the local stream's append
//! time; Azure Stream Analytics' early-arrival policy, Flink's bounded out-of-orderness). A
//! file given to `traffic replay` has no arrival times unless its lines carry them, so replay
//! estimates one for each record from the stream around it, with this rule:
//!
//! > Within a shard, each intersection *claims* the greatest event time of its readings so far
//! > (any reading, believable or not). A record's estimated arrival is the shard's frontier:
//! > the lower median of its intersections' claims, taken over the records up to `lookahead`
//! > records after it.
//!
//! So one sensor whose clock runs ahead (even many of its readings) is one vote and cannot move
//! the frontier, while a real city-wide jump (every sensor silent for hours, then all resuming
//! together) moves it as soon as half of the shard's intersections have resumed: with a
//! lookahead of one round of readings (every light of every intersection once), the readings
//! after the jump are all accepted. A shard of a single intersection cannot tell the two apart
//! and follows its one sensor.

use std::collections::HashMap;
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

/// Estimated arrival times for the records of one shard, in stream order. Each record is its
/// intersection (any key) and its event time when it has one (a record that does not parse
/// claims nothing). The estimate is `None` only when no record in reach claims anything.
pub fn estimate_arrivals<K: Eq + Hash + Clone>(
    records: &[(K, Option<i64>)],
    lookahead: usize,
) -> Vec<Option<i64>> {
    // Slots: the distinct event times, ascending.
    let mut times: Vec<i64> = records.iter().filter_map(|(_, t)| *t).collect();
    times.sort_unstable();
    times.dedup();
    let slot = |t: i64| times.partition_point(|x| *x < t);
    let mut counts = Counts::new(times.len());
    let mut claims: HashMap<K, i64> = HashMap::new();
    let mut voters: i64 = 0;
    let mut out = Vec::with_capacity(records.len());
    let mut seen = 0usize;
    for i in 0..records.len() {
        // Take in every record up to `lookahead` after this one.
        let reach = i.saturating_add(lookahead).min(records.len() - 1);
        while seen <= reach {
            let (k, t) = &records[seen];
            seen += 1;
            let Some(t) = *t else { continue };
            match claims.get_mut(k) {
                Some(c) if *c >= t => {}
                Some(c) => {
                    counts.add(slot(*c), -1);
                    counts.add(slot(t), 1);
                    *c = t;
                }
                None => {
                    counts.add(slot(t), 1);
                    claims.insert(k.clone(), t);
                    voters += 1;
                }
            }
        }
        out.push((voters > 0).then(|| times[counts.select((voters - 1) / 2)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    /// `n` intersections reporting every minute from `from` for `minutes`, one record each.
    fn rounds(n: u32, from: i64, minutes: i64) -> Vec<(u32, Option<i64>)> {
        (0..minutes)
            .flat_map(|m| (0..n).map(move |i| (i, Some(from + m * MIN))))
            .collect()
    }

    #[test]
    fn one_sensor_far_ahead_cannot_move_the_frontier() {
        let mut rs = rounds(8, 0, 30);
        rs.insert(100, (3, Some(2_000 * 86_400_000)));
        rs.insert(150, (5, Some(6 * 60 * MIN)));
        let est = estimate_arrivals(&rs, 8);
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
        let est = estimate_arrivals(&rs, 8);
        for (i, (r, e)) in rs.iter().zip(&est).enumerate().skip(jump) {
            let (t, a) = (r.1.unwrap_or_default(), e.unwrap_or_default());
            assert!(t <= a, "record {i} at {t} estimated to arrive at {a}");
        }
    }

    #[test]
    fn records_that_claim_nothing_get_an_estimate_from_the_others() {
        let rs = vec![(0u32, None), (1, Some(5 * MIN)), (2, None)];
        assert_eq!(
            estimate_arrivals(&rs, 0),
            vec![None, Some(5 * MIN), Some(5 * MIN)]
        );
        assert_eq!(estimate_arrivals::<u32>(&[], 4), Vec::<Option<i64>>::new());
    }

    proptest! {
        #[test]
        fn the_estimate_is_the_lower_median_of_the_claims_in_reach(
            rs in prop::collection::vec((0u8..6, prop::option::of(0i64..1000)), 1..80),
            lookahead in 0usize..10,
        ) {
            let est = estimate_arrivals(&rs, lookahead);
            for (i, e) in est.iter().enumerate() {
                let reach = (i + lookahead).min(rs.len() - 1);
                let mut claims: HashMap<u8, i64> = HashMap::new();
                for (k, t) in &rs[..=reach] {
                    if let Some(t) = t {
                        let c = claims.entry(*k).or_insert(*t);
                        *c = (*c).max(*t);
                    }
                }
                let mut v: Vec<i64> = claims.into_values().collect();
                v.sort_unstable();
                let expect = (!v.is_empty()).then(|| v[(v.len() - 1) / 2]);
                prop_assert_eq!(*e, expect);
            }
        }
    }
}
