//! The merge's computation for one run, without I/O: closed panes compacted into rollups,
//! longer windows built from the rollups of shorter ones as those close, provisional results
//! for open windows.
//!
//! Every configured length but the shortest (the pane) has a *base*: the longest shorter length
//! that divides it (1 h is built from 15-minute panes, 24 h from hours; with `15m,45m,1h` the
//! hour is built from panes). A window of length `L` is kept as a *prefix* rollup: the sum of
//! its base sub-windows that have closed, up to `through_ms`. When the closed mark passes a
//! sub-window's end, its complete rollup is added to the prefix (once: sub-windows before the
//! prefix's `through_ms` are already in it), and when it passes the window's own end the prefix
//! is the window's complete rollup, which feeds the next length in turn. An open window's
//! provisional rollup is its prefix plus the provisional rollups of its open sub-windows, down
//! to the open panes' deltas.
//!
//! The law (tested below): however the runs are spaced, every window's final result is the
//! result of compacting all of its readings at once.

use crate::delta::Delta;
use crate::rollup::{CompactionCounts, Rollup};
use crate::window::{WindowKey, WindowLength};
use std::collections::{BTreeMap, BTreeSet};

/// The configured lengths and what each is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Levels {
    lengths: Vec<WindowLength>,
}

impl Levels {
    /// The levels of `lengths` (ascending, each a multiple of the first, as
    /// [`crate::EngineConfig`] guarantees).
    pub fn new(lengths: &[WindowLength]) -> Self {
        let mut lengths = lengths.to_vec();
        lengths.sort();
        lengths.dedup();
        Self { lengths }
    }

    /// The pane length.
    pub fn pane(&self) -> Option<WindowLength> {
        self.lengths.first().copied()
    }

    /// The lengths, ascending.
    pub fn lengths(&self) -> &[WindowLength] {
        &self.lengths
    }

    /// The length windows of `len` are built from (`None` for the pane length).
    pub fn base_of(&self, len: WindowLength) -> Option<WindowLength> {
        self.lengths
            .iter()
            .copied()
            .filter(|l| *l < len && len.ms() % l.ms() == 0)
            .max()
    }
}

/// What one run starts from.
#[derive(Clone, Debug, Default)]
pub struct RunInput {
    /// Panes ending at or before this were compacted by earlier runs (their windows are final
    /// as far as they reach).
    pub compacted_ms: Option<i64>,
    /// The closed mark of this run: windows ending at or before it become final.
    pub closed_ms: i64,
    /// The listed deltas of every pane not yet compacted that has some, by pane start, each
    /// pane's deltas in delivery order.
    pub panes: BTreeMap<i64, Vec<Delta>>,
    /// The stored prefix rollups of the windows (of the lengths above the pane) that hold or
    /// will hold these panes, or that end between `compacted_ms` and `closed_ms`.
    pub prefixes: BTreeMap<WindowKey, Rollup>,
    /// Lengths whose open windows get a provisional result.
    pub provisional: BTreeSet<WindowLength>,
    /// Minimum interval between two readings of a light, ms.
    pub min_interval_ms: i64,
    /// Digest size.
    pub digest_size: usize,
}

/// What one run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOutput {
    /// Windows that became final in this run, with their complete rollups, by window.
    pub finals: BTreeMap<WindowKey, Rollup>,
    /// Open windows' provisional rollups, by window.
    pub provisional: BTreeMap<WindowKey, Rollup>,
    /// Prefix rollups to store (new or extended in this run; complete ones included, so that
    /// a run that dies before it records its progress finds them again).
    pub prefixes: Vec<Rollup>,
    /// What compaction dropped from the panes compacted in this run.
    pub counts: CompactionCounts,
}

impl RunOutput {
    /// The newest window of `len` built in this run (final or provisional), for the map.
    pub fn newest(&self, len: WindowLength) -> Option<(&WindowKey, &Rollup, bool)> {
        let f = self.finals.iter().rev().find(|(w, _)| w.length == len);
        let p = self.provisional.iter().rev().find(|(w, _)| w.length == len);
        match (f, p) {
            (Some(f), Some(p)) if p.0 > f.0 => Some((p.0, p.1, false)),
            (Some(f), _) => Some((f.0, f.1, true)),
            (None, Some(p)) => Some((p.0, p.1, false)),
            (None, None) => None,
        }
    }
}

/// How far one run closes: up to `target`, unless more than `max_panes` of `panes` (the
/// starts of the panes not yet compacted that hold deltas, in any order) would close by it;
/// then up to the end of the `max_panes`-th of them (at least one), and the second value is
/// true: the run stops short and the next runs go on from there. However the runs are spaced,
/// every window's final result is the same (the law of [`run`]), so a merge behind by days
/// catches up in bounded steps.
pub fn bounded_close(
    target: i64,
    panes: &[i64],
    pane: WindowLength,
    max_panes: usize,
) -> (i64, bool) {
    let mut closing: Vec<i64> = panes
        .iter()
        .map(|p| pane.window_of(*p).end_ms())
        .filter(|end| *end <= target)
        .collect();
    closing.sort_unstable();
    closing.dedup();
    match closing.get(max_panes.max(1) - 1) {
        Some(end) if closing.len() > max_panes.max(1) => (*end, true),
        _ => (target, false),
    }
}

/// Runs the merge's computation (see the module documentation).
pub fn run(levels: &Levels, input: RunInput) -> RunOutput {
    let mut out = RunOutput::default();
    let Some(pane_len) = levels.pane() else {
        return out;
    };
    let closed = input.closed_ms;
    let before = input.compacted_ms.unwrap_or(i64::MIN);
    let fresh = |w: &WindowKey| w.end_ms() > before && w.end_ms() <= closed;

    // Complete rollups of this run, every length, and the prefixes touched.
    let mut complete: BTreeMap<WindowKey, Rollup> = BTreeMap::new();
    let mut prefixes = input.prefixes;
    let mut touched: BTreeSet<WindowKey> = BTreeSet::new();

    // 1. Closed panes, compacted.
    let mut open_panes: BTreeMap<WindowKey, Rollup> = BTreeMap::new();
    for (start, deltas) in &input.panes {
        let pane = pane_len.window_of(*start);
        let r = Rollup::compact(pane, deltas, input.min_interval_ms, input.digest_size);
        if pane.end_ms() <= closed {
            out.counts.add(&r.counts);
            if fresh(&pane) && !r.intersections.is_empty() {
                complete.insert(pane, r);
            }
        } else if !r.intersections.is_empty() {
            open_panes.insert(pane, r);
        }
    }

    // 2. Up the lengths: closed sub-windows into prefixes, closed prefixes complete.
    for &len in &levels.lengths()[1..] {
        let Some(base) = levels.base_of(len) else {
            continue;
        };
        let subs: Vec<WindowKey> = complete
            .keys()
            .filter(|w| w.length == base)
            .copied()
            .collect();
        for sub in subs {
            let w = len.window_of(sub.start_ms);
            let p = prefixes.entry(w).or_insert_with(|| Rollup::new(w));
            if p.through_ms <= sub.start_ms
                && let Some(r) = complete.get(&sub)
            {
                p.add(r);
                p.through_ms = sub.end_ms();
                touched.insert(w);
            }
        }
        let closing: Vec<WindowKey> = prefixes
            .keys()
            .filter(|w| w.length == len && fresh(w))
            .copied()
            .collect();
        for w in closing {
            if let Some(p) = prefixes.get_mut(&w) {
                if p.through_ms < w.end_ms() {
                    p.through_ms = w.end_ms();
                    touched.insert(w);
                }
                if !p.intersections.is_empty() {
                    complete.insert(w, p.clone());
                }
            }
        }
    }

    // 3. Provisional rollups of open windows, shortest first so longer ones reuse them.
    let mut built: BTreeMap<WindowKey, Rollup> = open_panes;
    for &len in &levels.lengths()[1..] {
        let Some(base) = levels.base_of(len) else {
            continue;
        };
        let mut open: BTreeSet<WindowKey> = prefixes
            .keys()
            .filter(|w| w.length == len && w.end_ms() > closed)
            .copied()
            .collect();
        open.extend(
            built
                .keys()
                .filter(|w| w.length == base)
                .map(|w| len.window_of(w.start_ms)),
        );
        for w in open {
            let mut r = prefixes.get(&w).cloned().unwrap_or_else(|| Rollup::new(w));
            for (sub, sr) in built.range(base.window_of(w.start_ms)..) {
                if sub.length != base || sub.start_ms >= w.end_ms() {
                    break;
                }
                if sub.start_ms >= r.through_ms {
                    r.add(sr);
                }
            }
            r.through_ms = r.through_ms.max(closed.min(w.end_ms()));
            if !r.intersections.is_empty() {
                built.insert(w, r);
            }
        }
    }
    out.provisional = built
        .into_iter()
        .filter(|(w, _)| input.provisional.contains(&w.length))
        .collect();
    out.finals = complete.into_iter().filter(|(w, _)| fresh(w)).collect();
    out.prefixes = touched
        .into_iter()
        .filter_map(|w| prefixes.remove(&w))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{DeltaKey, DeltaReading};
    use crate::ids::{IntersectionId, LightIndex};
    use proptest::prelude::*;

    const T0: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z
    const MIN: i64 = 60_000;

    fn len(ms: i64) -> WindowLength {
        WindowLength::from_ms(ms).unwrap_or_else(|| panic!("length"))
    }

    fn levels() -> Levels {
        Levels::new(&[len(15 * MIN), len(60 * MIN), len(24 * 60 * MIN)])
    }

    /// Deltas by pane from (intersection, light, minute, vehicles) rows, one delta per row.
    fn deltas(rows: &[(u8, u8, i64, u32)]) -> BTreeMap<i64, Vec<Delta>> {
        let pane = len(15 * MIN);
        let mut out: BTreeMap<i64, Vec<Delta>> = BTreeMap::new();
        for (n, (i, l, m, v)) in rows.iter().enumerate() {
            let w = pane.window_of(T0 + m * MIN);
            let mut d = Delta::new(
                DeltaKey {
                    pane_start_ms: w.start_ms,
                    shard_id: "s".into(),
                    commit: n as u64,
                    part: 0,
                },
                w,
            );
            d.push(
                &IntersectionId::parse(&format!("I-{i}")).unwrap_or_else(|e| panic!("{e}")),
                DeltaReading {
                    light: LightIndex::new(i64::from(*l)).unwrap_or_else(|e| panic!("{e}")),
                    ts_ms: T0 + m * MIN,
                    vehicles: *v,
                    speed_milli: 30_000 + u64::from(*v) * 100,
                },
            );
            out.entry(w.start_ms).or_default().push(d);
        }
        out
    }

    /// Every window's result computed from all of its readings at once.
    fn one_shot(levels: &Levels, panes: &BTreeMap<i64, Vec<Delta>>) -> BTreeMap<WindowKey, Rollup> {
        let mut out = BTreeMap::new();
        for &l in levels.lengths() {
            let windows: BTreeSet<WindowKey> = panes.keys().map(|p| l.window_of(*p)).collect();
            for w in windows {
                let ds: Vec<&Delta> = panes
                    .range(w.start_ms..w.end_ms())
                    .flat_map(|(_, v)| v)
                    .collect();
                // Compact pane by pane (the interval rule is per pane), then add up.
                let mut r = Rollup::new(w);
                for (p, v) in panes.range(w.start_ms..w.end_ms()) {
                    r.add(&Rollup::compact(len(15 * MIN).window_of(*p), v, 5_000, 200));
                }
                r.through_ms = w.end_ms();
                if !ds.is_empty() && !r.intersections.is_empty() {
                    out.insert(w, r);
                }
            }
        }
        out
    }

    /// Runs the merge at each closed mark in `marks`, as the handler does: stored prefixes and
    /// uncompacted panes carried from run to run.
    fn runs(
        levels: &Levels,
        all: &BTreeMap<i64, Vec<Delta>>,
        marks: &[i64],
    ) -> BTreeMap<WindowKey, Rollup> {
        let mut stored: BTreeMap<WindowKey, Rollup> = BTreeMap::new();
        let mut compacted: Option<i64> = None;
        let mut finals = BTreeMap::new();
        for &closed in marks {
            let panes: BTreeMap<i64, Vec<Delta>> = all
                .iter()
                .filter(|(p, _)| compacted.is_none_or(|c| **p + 15 * MIN > c))
                .map(|(p, v)| (*p, v.clone()))
                .collect();
            let out = run(
                levels,
                RunInput {
                    compacted_ms: compacted,
                    closed_ms: closed,
                    panes,
                    prefixes: stored.clone(),
                    provisional: levels.lengths().iter().copied().collect(),
                    min_interval_ms: 5_000,
                    digest_size: 200,
                },
            );
            for p in out.prefixes {
                stored.insert(p.window, p);
            }
            finals.extend(out.finals);
            compacted = Some(closed);
        }
        finals
    }

    #[test]
    fn a_day_closed_in_one_run_or_quarter_by_quarter_gives_the_same_windows() {
        let rows: Vec<(u8, u8, i64, u32)> = (0..24 * 60)
            .step_by(7)
            .map(|m| ((m % 5) as u8, (m % 4) as u8, m, (m % 31) as u32))
            .collect();
        let all = deltas(&rows);
        let expect = one_shot(&levels(), &all);
        let end = T0 + 24 * 60 * MIN;
        assert_eq!(runs(&levels(), &all, &[end]), expect);
        let quarters: Vec<i64> = (1..=96).map(|q| T0 + q * 15 * MIN).collect();
        assert_eq!(runs(&levels(), &all, &quarters), expect);
        assert_eq!(
            expect.keys().filter(|w| w.length == len(60 * MIN)).count(),
            24
        );
    }

    #[test]
    fn an_open_window_is_its_closed_part_plus_its_open_panes() {
        let all = deltas(&[(1, 0, 5, 10), (1, 0, 20, 30), (2, 1, 50, 7)]);
        // Closed through 08:30 of the first hour: the first two panes final, the hour open.
        let out = run(
            &levels(),
            RunInput {
                closed_ms: T0 + 30 * MIN,
                panes: all.clone(),
                provisional: levels().lengths().iter().copied().collect(),
                min_interval_ms: 5_000,
                digest_size: 200,
                ..RunInput::default()
            },
        );
        let hour = len(60 * MIN).window_of(T0);
        assert_eq!(out.finals.len(), 2);
        assert_eq!(out.provisional[&hour].readings(), 3);
        assert_eq!(out.provisional[&hour].through_ms, T0 + 60 * MIN);
        // The stored prefix holds only the closed part.
        let prefix = out.prefixes.iter().find(|p| p.window == hour);
        assert_eq!(prefix.map(Rollup::readings), Some(2));
        assert_eq!(prefix.map(|p| p.through_ms), Some(T0 + 30 * MIN));
        let (w, _, closed) = out
            .newest(len(15 * MIN))
            .unwrap_or_else(|| panic!("a pane"));
        assert_eq!((w.start_ms, closed), (T0 + 45 * MIN, false));
    }

    #[test]
    fn a_run_closes_at_most_its_share_of_panes_and_the_rest_is_left_to_the_next() {
        let pane = len(15 * MIN);
        let panes: Vec<i64> = (0..10).map(|q| T0 + q * 15 * MIN).collect();
        // Ten panes could close; three a run: up to the end of the third.
        assert_eq!(
            bounded_close(T0 + 10 * 15 * MIN + 7, &panes, pane, 3),
            (T0 + 45 * MIN, true)
        );
        // Three left: the target itself.
        assert_eq!(
            bounded_close(T0 + 10 * 15 * MIN, &panes[7..], pane, 3),
            (T0 + 10 * 15 * MIN, false)
        );
        // Panes that stay open do not count; nor do empty stretches.
        assert_eq!(
            bounded_close(T0 + 20 * MIN, &panes, pane, 1),
            (T0 + 20 * MIN, false)
        );
        assert_eq!(bounded_close(T0, &[], pane, 0), (T0, false));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn a_stalled_merge_caught_up_in_bounded_steps_gives_the_one_shot_results(
            rows in prop::collection::vec((0u8..4, 0u8..4, 0i64..3 * 24 * 60, 0u32..30), 1..150),
            max_panes in 1usize..12,
        ) {
            let all = deltas(&rows);
            let expect = one_shot(&levels(), &all);
            let target = T0 + 4 * 24 * 60 * MIN;
            let (mut marks, mut compacted) = (Vec::new(), None::<i64>);
            loop {
                let open: Vec<i64> = all
                    .keys()
                    .copied()
                    .filter(|p| compacted.is_none_or(|c| *p + 15 * MIN > c))
                    .collect();
                let (mark, short) = bounded_close(target, &open, len(15 * MIN), max_panes);
                let closing = open.iter().filter(|p| **p + 15 * MIN <= mark).count();
                prop_assert!(closing <= max_panes);
                marks.push(mark);
                compacted = Some(mark);
                if !short {
                    break;
                }
            }
            let got = runs(&levels(), &all, &marks);
            prop_assert_eq!(got.keys().collect::<Vec<_>>(), expect.keys().collect::<Vec<_>>());
            for (w, r) in &expect {
                prop_assert_eq!(got[w].finish(true, 10), r.finish(true, 10), "window {:?}", w);
            }
        }
    }

    #[test]
    fn lengths_are_built_from_the_longest_shorter_length_that_divides_them() {
        let l = Levels::new(&[
            len(15 * MIN),
            len(45 * MIN),
            len(60 * MIN),
            len(24 * 60 * MIN),
        ]);
        assert_eq!(l.base_of(len(45 * MIN)), Some(len(15 * MIN)));
        assert_eq!(l.base_of(len(60 * MIN)), Some(len(15 * MIN)));
        assert_eq!(l.base_of(len(24 * 60 * MIN)), Some(len(60 * MIN)));
        assert_eq!(l.base_of(len(15 * MIN)), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn however_the_runs_are_spaced_every_final_result_is_the_one_shot_result(
            rows in prop::collection::vec((0u8..4, 0u8..4, 0i64..3 * 24 * 60, 0u32..30), 1..150),
            cuts in prop::collection::vec(1i64..3 * 24 * 4 + 1, 0..12),
        ) {
            let all = deltas(&rows);
            let expect = one_shot(&levels(), &all);
            let mut marks: Vec<i64> = cuts.iter().map(|q| T0 + q * 15 * MIN).collect();
            marks.push(T0 + 4 * 24 * 60 * MIN);
            marks.sort_unstable();
            marks.dedup();
            let got = runs(&levels(), &all, &marks);
            prop_assert_eq!(got.keys().collect::<Vec<_>>(), expect.keys().collect::<Vec<_>>());
            for (w, r) in &expect {
                prop_assert_eq!(got[w].finish(true, 10), r.finish(true, 10), "window {:?}", w);
            }
        }
    }
}
