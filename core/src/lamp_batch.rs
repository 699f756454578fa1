//! A batch of readings applied to the lamp states of their lights, as `fault` applies it: what
//! each lamp did over the whole batch, so that the store is asked about a lamp at most once per
//! batch however often it flapped.
//!
//! Two rules bound the work:
//!
//! - *too frequent*, as for `ingest` (`docs/contracts.md`): a reading closer than
//!   `TRAFFIC_MIN_READING_INTERVAL` after its light's previous kept reading is dropped (the
//!   previous kept reading of a light is the last one kept in this batch, or, for its first,
//!   the reading that set the stored state: `LightLamps::as_of_ms`);
//! - *one transition's worth per lamp*: the kept readings of a lamp fold into a [`LampRun`]
//!   (its first and last failure, its last repair, whether it ends broken), which raises at
//!   most one alarm (the failure still standing at the end of the batch, or, when the lamp
//!   ended ok, its first failure) and resolves at most once (the open alarms up to its last
//!   repair). A lamp that flaps a thousand times in a batch costs what a lamp that failed once
//!   costs; the flaps in between are counted, not recorded.
//!
//! Readings no newer than their light's state are stale ([`transition`]) and change nothing.

use crate::ids::{IntersectionId, LightIndex};
use crate::lamps::{LightLamps, transition};
use crate::reading::{LampColour, Position, Reading};
use std::collections::BTreeMap;

/// A light: its intersection and index.
pub type LightKey = (IntersectionId, LightIndex);

/// What one batch did to one lamp.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LampRun {
    /// Times it went from ok to broken.
    pub failures: u32,
    /// Times it went from broken to ok.
    pub repairs: u32,
    /// The first failure: event time and the reading's own position.
    pub first_failed: Option<(i64, Option<Position>)>,
    /// The last failure.
    pub last_failed: Option<(i64, Option<Position>)>,
    /// The event time of the last repair.
    pub last_repaired_ms: Option<i64>,
    /// Whether it is broken after the batch.
    pub broken_at_end: bool,
}

impl LampRun {
    /// The one failure the batch raises an alarm for, if any: the one still standing at the
    /// end (the lamp ends broken), or else the first (a lamp that failed and recovered within
    /// the batch: alarmed once, then resolved by [`LampRun::resolve_through_ms`]).
    pub fn alarm(&self) -> Option<(i64, Option<Position>)> {
        if self.broken_at_end {
            self.last_failed
        } else {
            self.first_failed
        }
    }

    /// Open alarms of the lamp stamped at or before this are resolved (it reported ok then).
    pub fn resolve_through_ms(&self) -> Option<i64> {
        self.last_repaired_ms
    }
}

/// What a batch did to the lights it read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchLamps {
    /// The state of every light the batch had a reading of, after it.
    pub states: BTreeMap<LightKey, LightLamps>,
    /// Per lamp that failed or was repaired in the batch, what it did.
    pub runs: BTreeMap<(LightKey, LampColour), LampRun>,
    /// Readings dropped as too frequent.
    pub too_frequent: u64,
    /// Readings no newer than their light's state (duplicates, replays, out of order).
    pub stale: u64,
}

/// Applies `readings`, in order, to the lamp states `stored` (a light missing there is all ok
/// and never seen), dropping readings closer than `min_interval_ms` to their light's previous
/// kept one.
pub fn apply_batch<'r>(
    stored: &BTreeMap<LightKey, LightLamps>,
    readings: impl IntoIterator<Item = &'r Reading>,
    min_interval_ms: i64,
) -> BatchLamps {
    let mut out = BatchLamps::default();
    for r in readings {
        let key = (r.intersection_id.clone(), r.light);
        let prev = out
            .states
            .get(&key)
            .or_else(|| stored.get(&key))
            .copied()
            .unwrap_or_default();
        if let Some(last) = prev.as_of_ms
            && r.ts_ms > last
            && r.ts_ms - last < min_interval_ms
        {
            out.too_frequent += 1;
            continue;
        }
        let t = transition(&prev, r);
        if t.stale {
            out.stale += 1;
            continue;
        }
        for lamp in t.failed {
            let run = out.runs.entry((key.clone(), lamp)).or_default();
            run.failures += 1;
            run.first_failed.get_or_insert((r.ts_ms, r.position));
            run.last_failed = Some((r.ts_ms, r.position));
            run.broken_at_end = true;
        }
        for lamp in t.repaired {
            let run = out.runs.entry((key.clone(), lamp)).or_default();
            run.repairs += 1;
            run.last_repaired_ms = Some(r.ts_ms);
            run.broken_at_end = false;
        }
        // Kept, even when it changes nothing: the next reading is judged against it.
        out.states.insert(key, t.state);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{LampState, Lamps};
    use proptest::prelude::*;

    fn id(i: u8) -> IntersectionId {
        IntersectionId::parse(&format!("I-{i}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn light(l: u8) -> LightIndex {
        LightIndex::new(i64::from(l)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reading(i: u8, l: u8, ts_ms: i64, red: bool) -> Reading {
        Reading {
            intersection_id: id(i),
            light: light(l),
            ts_ms,
            vehicles: 1,
            mean_speed_kmh: 30.0,
            lamps: Lamps {
                red: if red {
                    LampState::Broken
                } else {
                    LampState::Ok
                },
                ..Lamps::default()
            },
            position: None,
        }
    }

    #[test]
    fn a_lamp_flapping_thousands_of_times_raises_one_alarm_and_resolves_once() {
        // 300 readings a second for 20 s, broken and ok in turn, ending broken.
        let readings: Vec<Reading> = (0..=6000)
            .map(|i| reading(1, 0, 1_000 + i * 10 / 3, i % 2 == 0))
            .collect();
        let none = apply_batch(&BTreeMap::new(), &readings, 0);
        let run = none.runs[&((id(1), light(0)), LampColour::Red)];
        assert!(run.failures > 2000, "{run:?}");
        assert!(run.broken_at_end);
        assert_eq!(run.alarm().map(|a| a.0), Some(readings[6000].ts_ms));

        let thinned = apply_batch(&BTreeMap::new(), &readings, 5_000);
        // One reading kept every 5 s: at 1 s, 6 s, 11 s, 16 s, 21 s.
        assert_eq!(thinned.too_frequent, 6001 - 5);
        let run = thinned.runs[&((id(1), light(0)), LampColour::Red)];
        assert_eq!(run.alarm().map(|a| a.0), Some(1_000));
    }

    #[test]
    fn a_reading_too_soon_after_the_stored_state_is_too_frequent() {
        let stored = BTreeMap::from([(
            (id(1), light(0)),
            LightLamps {
                lamps: Lamps::default(),
                as_of_ms: Some(10_000),
            },
        )]);
        let b = apply_batch(
            &stored,
            &[reading(1, 0, 14_999, true), reading(1, 0, 15_000, true)],
            5_000,
        );
        assert_eq!((b.too_frequent, b.stale), (1, 0));
        assert_eq!(
            b.runs[&((id(1), light(0)), LampColour::Red)]
                .alarm()
                .map(|a| a.0),
            Some(15_000)
        );
    }

    proptest! {
        /// Without a minimum interval the batch ends in the states a reading-by-reading fold
        /// ends in, and each lamp's run agrees with that fold's transitions: at most one alarm,
        /// the last failure when the lamp ends broken, the first otherwise.
        #[test]
        fn a_batch_ends_where_the_readings_one_by_one_end_with_at_most_one_alarm_per_lamp(
            batch in prop::collection::vec((0u8..3, 0u8..2, 0i64..60, any::<bool>()), 0..80),
        ) {
            let readings: Vec<Reading> =
                batch.iter().map(|(i, l, t, red)| reading(*i, *l, *t * 1000, *red)).collect();
            let b = apply_batch(&BTreeMap::new(), &readings, 0);
            let mut states: BTreeMap<LightKey, LightLamps> = BTreeMap::new();
            let mut failed: BTreeMap<LightKey, Vec<i64>> = BTreeMap::new();
            for r in &readings {
                let key = (r.intersection_id.clone(), r.light);
                let t = transition(&states.get(&key).copied().unwrap_or_default(), r);
                if !t.failed.is_empty() {
                    failed.entry(key.clone()).or_default().push(r.ts_ms);
                }
                states.insert(key, t.state);
            }
            prop_assert_eq!(&b.states, &states);
            for (key, times) in &failed {
                let run = b.runs[&(key.clone(), LampColour::Red)];
                prop_assert_eq!(run.failures as usize, times.len());
                let expected = if states[key].lamps.red == LampState::Broken {
                    times.last()
                } else {
                    times.first()
                };
                prop_assert_eq!(run.alarm().map(|a| a.0), expected.copied());
            }
            prop_assert!(b.runs.values().all(|r| r.failures + r.repairs > 0));
        }

        /// The readings kept of a light are at least the minimum interval apart.
        #[test]
        fn kept_readings_of_a_light_are_at_least_the_minimum_interval_apart(
            gaps in prop::collection::vec(1i64..4000, 1..200),
            min in 0i64..6000,
        ) {
            let mut t = 0;
            let readings: Vec<Reading> = gaps.iter().enumerate().map(|(i, g)| {
                t += g;
                reading(1, 0, t, i % 2 == 0)
            }).collect();
            let all = apply_batch(&BTreeMap::new(), &readings, 0);
            let b = apply_batch(&BTreeMap::new(), &readings, min);
            // Kept again, one by one: none closer than `min` to the one before.
            let mut last: Option<i64> = None;
            let mut kept = 0u64;
            for r in &readings {
                if last.is_none_or(|l| r.ts_ms - l >= min) {
                    last = Some(r.ts_ms);
                    kept += 1;
                }
            }
            prop_assert_eq!(b.too_frequent, readings.len() as u64 - kept);
            prop_assert_eq!(all.too_frequent, 0);
        }
    }
}
