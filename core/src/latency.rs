//! Latency from a reading's arrival in the stream to the first result that includes it, per
//! window length, and to the retiming it caused.
//!
//! Each delta says when its commit's readings arrived ([`Arrivals`]: first, last, mean). A
//! merge run observes the deltas it read and what it wrote:
//!
//! - a window length that gets **provisional** results includes a reading in the first run
//!   that reads its delta: the delta is *new* when its commit is past the last commit of its
//!   shard that an earlier run read ([`LatencyState::seen_commits`]);
//! - a length without provisional results includes it when its window **closes**: the arrivals
//!   of each pane are added to the open windows containing it when the pane is compacted
//!   (once: the run that closes the pane) and taken when the window closes
//!   ([`LatencyState::pending`]);
//! - the **retiming** of the control window closed in a run is caused by that pane's readings,
//!   all read in that run (the pane is compacted then).
//!
//! A delta's readings count with their commit's mean arrival (the sum of latencies is exact
//! for the readings that had an arrival time); the largest latency is from its first arrival.
//! The state is part of the merge's progress, so a run redone after a crash observes the same
//! deltas again from the same state and counts nothing twice in it.

use crate::delta::Delta;
use crate::window::{WindowKey, WindowLength};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Arrivals summed over several deltas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalTotals {
    /// Readings counted.
    pub readings: u64,
    /// Sum of their arrivals, epoch ms (means × readings).
    pub sum_ms: i128,
    /// The earliest arrival, epoch ms (`i64::MAX` when nothing is counted).
    pub first_ms: i64,
}

impl ArrivalTotals {
    /// Nothing counted.
    pub const EMPTY: Self = Self {
        readings: 0,
        sum_ms: 0,
        first_ms: i64::MAX,
    };

    /// The arrivals of one delta, if it has them.
    pub fn of(d: &Delta) -> Option<Self> {
        let a = d.arrivals?;
        let n = d.len() as u64;
        (n > 0).then(|| Self {
            readings: n,
            sum_ms: i128::from(a.mean_ms) * i128::from(n),
            first_ms: a.first_ms,
        })
    }

    /// Adds other arrivals.
    pub fn add(&mut self, o: &Self) {
        if o.readings == 0 {
            return;
        }
        if self.readings == 0 {
            *self = *o;
            return;
        }
        self.readings += o.readings;
        self.sum_ms += o.sum_ms;
        self.first_ms = self.first_ms.min(o.first_ms);
    }

    /// The latencies of these readings seen at `now_ms`.
    pub fn at(&self, now_ms: i64) -> Latency {
        if self.readings == 0 {
            return Latency::default();
        }
        let sum = i128::from(now_ms) * i128::from(self.readings) - self.sum_ms;
        Latency {
            readings: self.readings,
            sum_ms: u64::try_from(sum.max(0)).unwrap_or(u64::MAX),
            max_ms: u64::try_from(now_ms.saturating_sub(self.first_ms).max(0)).unwrap_or(0),
        }
    }
}

/// Latencies of some readings: how many, their sum and the largest, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Readings.
    pub readings: u64,
    /// Sum of their latencies, ms.
    pub sum_ms: u64,
    /// The largest, ms.
    pub max_ms: u64,
}

impl Latency {
    /// The mean, ms (0 without readings).
    pub fn mean_ms(&self) -> f64 {
        crate::mean::mean(self.sum_ms as f64, self.readings)
    }
}

/// What the merge remembers between runs to measure latencies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyState {
    /// Shard → the last commit whose deltas a run has read.
    pub seen_commits: BTreeMap<crate::ShardId, u64>,
    /// Open windows of lengths without provisional results → the arrivals of the readings in
    /// their panes compacted so far.
    pub pending: BTreeMap<WindowKey, ArrivalTotals>,
}

/// What the measurement needs of a delta the run read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenDelta {
    /// Its pane's start, epoch ms.
    pub pane_start_ms: i64,
    /// The shard that wrote it.
    pub shard_id: crate::ShardId,
    /// Its commit.
    pub commit: u64,
    /// When its readings arrived, if it says.
    pub arrivals: Option<ArrivalTotals>,
}

impl SeenDelta {
    /// What `d` says.
    pub fn of(d: &Delta) -> Self {
        Self {
            pane_start_ms: d.key.pane_start_ms,
            shard_id: d.key.shard_id.clone(),
            commit: d.key.commit,
            arrivals: ArrivalTotals::of(d),
        }
    }
}

/// What one run did, as far as latencies go.
pub struct RunSeen<'a> {
    /// Every delta the run read.
    pub deltas: &'a [SeenDelta],
    /// The panes it compacted (closed in this run).
    pub compacted: &'a BTreeSet<i64>,
    /// The windows given their final result in this run.
    pub finals: &'a BTreeSet<WindowKey>,
    /// Every window length, the pane length first.
    pub lengths: &'a [WindowLength],
    /// The lengths given provisional results.
    pub provisional: &'a BTreeSet<WindowLength>,
    /// The control window retimed in this run, if any.
    pub retimed: Option<WindowKey>,
    /// When the results and timings were written, epoch ms.
    pub now_ms: i64,
}

/// The latencies one run measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunLatencies {
    /// Per window length: from arrival to the first result that includes a reading.
    pub to_result: BTreeMap<WindowLength, Latency>,
    /// From arrival to the retiming the readings caused.
    pub to_retiming: Latency,
}

/// Observes one run from `state`; returns the next state and the latencies measured.
pub fn observe(state: &LatencyState, run: &RunSeen<'_>) -> (LatencyState, RunLatencies) {
    let mut next = state.clone();
    let mut first = BTreeMap::<WindowLength, ArrivalTotals>::new();
    let mut retiming = ArrivalTotals::EMPTY;
    for d in run.deltas {
        let pane = d.pane_start_ms;
        let compacted = run.compacted.contains(&pane);
        let seen = state.seen_commits.get(&d.shard_id);
        let is_new = seen.is_none_or(|&c| d.commit > c);
        // A redrive's delta (`crate::redrive`) has no arrivals and a commit number of its own,
        // above every live one: it must not hide the live commits that follow.
        if d.commit & crate::delta::REDRIVE_COMMIT_BIT == 0 {
            let last = next.seen_commits.entry(d.shard_id.clone()).or_insert(0);
            *last = (*last).max(d.commit);
        }
        let Some(a) = d.arrivals else {
            continue;
        };
        for &len in run.lengths {
            if run.provisional.contains(&len) {
                if is_new {
                    first.entry(len).or_insert(ArrivalTotals::EMPTY).add(&a);
                }
            } else if compacted {
                next.pending
                    .entry(len.window_of(pane))
                    .or_insert(ArrivalTotals::EMPTY)
                    .add(&a);
            }
        }
        if compacted && run.retimed.is_some_and(|w| w.start_ms == pane) {
            retiming.add(&a);
        }
    }
    for w in run.finals {
        if run.provisional.contains(&w.length) {
            continue;
        }
        if let Some(a) = next.pending.remove(w) {
            first
                .entry(w.length)
                .or_insert(ArrivalTotals::EMPTY)
                .add(&a);
        }
    }
    let out = RunLatencies {
        to_result: first
            .into_iter()
            .map(|(len, a)| (len, a.at(run.now_ms)))
            .filter(|(_, l)| l.readings > 0)
            .collect(),
        to_retiming: retiming.at(run.now_ms),
    };
    (next, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{Arrivals, DeltaKey, DeltaReading};
    use crate::ids::{IntersectionId, LightIndex};

    const T0: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z
    const M15: i64 = 15 * 60_000;

    fn lengths() -> Vec<WindowLength> {
        ["15m", "1h"]
            .iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{e:?}")))
            .collect()
    }

    /// A delta of `n` readings in the pane starting at `pane`, from `shard`'s `commit`, that
    /// arrived from `first` to `last` with mean `mean`.
    fn delta(pane: i64, shard: &str, commit: u64, n: usize, arr: (i64, i64, i64)) -> Delta {
        let len = lengths()[0];
        let mut d = Delta::new(
            DeltaKey {
                pane_start_ms: pane,
                shard_id: shard.into(),
                commit,
                part: 0,
            },
            len.window_of(pane),
        );
        let id = IntersectionId::parse("I-1").unwrap_or_else(|e| panic!("{e:?}"));
        for i in 0..n {
            d.readings
                .entry(id.clone())
                .or_default()
                .push(DeltaReading {
                    light: LightIndex::new(0).unwrap_or_else(|e| panic!("{e:?}")),
                    ts_ms: pane + i as i64 * 1_000,
                    vehicles: 1,
                    speed_milli: 40_000,
                });
        }
        d.arrivals = Some(Arrivals {
            first_ms: arr.0,
            mean_ms: arr.1,
            last_ms: arr.2,
        });
        d
    }

    fn seen(deltas: &BTreeMap<i64, Vec<Delta>>) -> Vec<SeenDelta> {
        deltas.values().flatten().map(SeenDelta::of).collect()
    }

    fn run<'a>(
        deltas: &'a [SeenDelta],
        compacted: &'a BTreeSet<i64>,
        finals: &'a BTreeSet<WindowKey>,
        lengths: &'a [WindowLength],
        provisional: &'a BTreeSet<WindowLength>,
        now_ms: i64,
    ) -> RunSeen<'a> {
        RunSeen {
            deltas,
            compacted,
            finals,
            lengths,
            provisional,
            retimed: None,
            now_ms,
        }
    }

    #[test]
    fn with_provisional_results_a_reading_counts_once_in_the_first_run_that_reads_it() {
        let lens = lengths();
        let prov: BTreeSet<_> = lens.iter().copied().collect();
        let none = BTreeSet::new();
        let finals = BTreeSet::new();
        // Run 1 reads commit 1 (2 readings arrived at T0+10 s and +20 s, mean +15 s).
        let mut deltas = BTreeMap::from([(
            T0,
            vec![delta(
                T0,
                "s",
                1,
                2,
                (T0 + 10_000, T0 + 15_000, T0 + 20_000),
            )],
        )]);
        let ds = seen(&deltas);
        let (s1, l1) = observe(
            &LatencyState::default(),
            &run(&ds, &none, &finals, &lens, &prov, T0 + 60_000),
        );
        let want = Latency {
            readings: 2,
            sum_ms: 2 * 45_000,
            max_ms: 50_000,
        };
        assert_eq!(l1.to_result.get(&lens[0]), Some(&want));
        assert_eq!(l1.to_result.get(&lens[1]), Some(&want));
        // Run 2 reads commit 1 again and commit 2: only commit 2 counts.
        deltas.entry(T0).or_default().push(delta(
            T0,
            "s",
            2,
            1,
            (T0 + 70_000, T0 + 70_000, T0 + 70_000),
        ));
        let ds = seen(&deltas);
        let (_, l2) = observe(&s1, &run(&ds, &none, &finals, &lens, &prov, T0 + 120_000));
        assert_eq!(
            l2.to_result.get(&lens[0]),
            Some(&Latency {
                readings: 1,
                sum_ms: 50_000,
                max_ms: 50_000
            })
        );
    }

    #[test]
    fn without_provisional_results_a_reading_counts_when_its_window_closes() {
        let lens = lengths();
        let prov = BTreeSet::new();
        let mut state = LatencyState::default();
        // Four panes of 15 minutes, each compacted in its own run, the hour closing with the
        // last: every reading arrived 5 s into its pane, the hour closes 2 min after its end.
        let hour = lens[1].window_of(T0);
        let mut total = Latency::default();
        for i in 0..4 {
            let pane = T0 + i * M15;
            let deltas = BTreeMap::from([(
                pane,
                vec![delta(
                    pane,
                    "s",
                    i as u64 + 1,
                    3,
                    (pane + 5_000, pane + 5_000, pane + 5_000),
                )],
            )]);
            let compacted = BTreeSet::from([pane]);
            let mut finals = BTreeSet::from([lens[0].window_of(pane)]);
            if i == 3 {
                finals.insert(hour);
            }
            let now = pane + M15 + 120_000;
            let ds = seen(&deltas);
            let (next, l) = observe(&state, &run(&ds, &compacted, &finals, &lens, &prov, now));
            state = next;
            // The pane's own 15-minute window: 15 min + 2 min - 5 s after arrival.
            assert_eq!(
                l.to_result.get(&lens[0]),
                Some(&Latency {
                    readings: 3,
                    sum_ms: 3 * (M15 + 115_000) as u64,
                    max_ms: (M15 + 115_000) as u64
                })
            );
            if let Some(h) = l.to_result.get(&lens[1]) {
                total = *h;
            }
        }
        assert_eq!(total.readings, 12);
        assert_eq!(total.max_ms, (4 * M15 + 115_000) as u64);
        assert_eq!(total.mean_ms(), (2.5 * M15 as f64) + 115_000.0);
        assert_eq!(
            Latency::default().mean_ms(),
            0.0,
            "no readings, a mean of 0"
        );
        assert!(state.pending.is_empty(), "closed windows are forgotten");
    }

    #[test]
    fn the_retiming_counts_the_readings_of_the_window_it_came_from() {
        let lens = lengths();
        let prov: BTreeSet<_> = lens.iter().copied().collect();
        let (a, b) = (T0, T0 + M15);
        let deltas = BTreeMap::from([
            (
                a,
                vec![delta(a, "s", 1, 2, (a + 1_000, a + 2_000, a + 3_000))],
            ),
            (
                b,
                vec![delta(b, "s", 2, 5, (b + 1_000, b + 1_000, b + 1_000))],
            ),
        ]);
        let compacted = BTreeSet::from([a, b]);
        let ds = seen(&deltas);
        let finals = BTreeSet::from([lens[0].window_of(a), lens[0].window_of(b)]);
        let mut r = run(&ds, &compacted, &finals, &lens, &prov, b + M15);
        r.retimed = Some(lens[0].window_of(b));
        let (_, l) = observe(&LatencyState::default(), &r);
        assert_eq!(
            l.to_retiming,
            Latency {
                readings: 5,
                sum_ms: 5 * (M15 - 1_000) as u64,
                max_ms: (M15 - 1_000) as u64
            }
        );
    }

    #[test]
    fn a_run_redone_from_the_same_state_measures_the_same() {
        let lens = lengths();
        let prov = BTreeSet::from([lens[0]]);
        let deltas = BTreeMap::from([(T0, vec![delta(T0, "s", 4, 2, (T0, T0, T0))])]);
        let compacted = BTreeSet::from([T0]);
        let ds = seen(&deltas);
        let finals = BTreeSet::from([lens[0].window_of(T0)]);
        let r = run(&ds, &compacted, &finals, &lens, &prov, T0 + M15);
        let state = LatencyState::default();
        assert_eq!(observe(&state, &r), observe(&state, &r));
        let (next, _) = observe(&state, &r);
        assert_eq!(next.seen_commits.get("s"), Some(&4));
        assert_eq!(next.pending.len(), 1, "the hour waits for its close");
    }

    #[test]
    fn a_redriven_delta_does_not_hide_the_live_commits_after_it() {
        let lens = lengths();
        let prov: BTreeSet<_> = lens.iter().copied().collect();
        let mut redriven = delta(
            T0,
            "s",
            crate::redrive::redrive_id(&"s".into(), "1", "2"),
            2,
            (T0, T0, T0),
        );
        redriven.arrivals = None;
        let ds = seen(&BTreeMap::from([(
            T0,
            vec![delta(T0, "s", 3, 2, (T0, T0, T0)), redriven],
        )]));
        let (next, _) = observe(
            &LatencyState::default(),
            &run(&ds, &BTreeSet::new(), &BTreeSet::new(), &lens, &prov, T0),
        );
        assert_eq!(next.seen_commits.get("s"), Some(&3));
    }

    #[test]
    fn deltas_without_arrival_times_count_nothing() {
        let lens = lengths();
        let prov: BTreeSet<_> = lens.iter().copied().collect();
        let mut d = delta(T0, "s", 1, 2, (T0, T0, T0));
        d.arrivals = None;
        let ds = seen(&BTreeMap::from([(T0, vec![d])]));
        let (next, l) = observe(
            &LatencyState::default(),
            &run(&ds, &BTreeSet::new(), &BTreeSet::new(), &lens, &prov, T0),
        );
        assert!(l.to_result.is_empty());
        assert_eq!(next.seen_commits.get("s"), Some(&1));
    }
}
