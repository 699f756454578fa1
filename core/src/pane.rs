//! The per-shard state that `ingest` keeps, and the fold of a batch of records into it.
//!
//! State is kept per *pane*: a window of the shortest configured length. Longer windows are
//! unions of panes. A shard's state is one small [`ShardMeta`] (the last sequence number
//! applied, the greatest event time accepted — the source of its watermark —, the counters,
//! and which deltas it has written to panes not yet compacted) and, per commit and pane
//! touched, one append-only [`Delta`] with the readings the commit accepted. Nothing is
//! rewritten: a commit writes what its batch adds.
//!
//! A batch is applied all or nothing. Its deltas carry the shard's next commit number (the
//! same on a retry, so a retried commit rewrites the same keys) and the meta that lists them is
//! written last, on the condition that the stored meta still has the sequence number the batch
//! was folded against and that the merge's closed mark ([`MergeMarks`]) has not moved: a delta
//! is part of the state only once a meta lists it. A retried batch finds its records at or
//! below `applied_through` and skips them, so redelivery changes nothing.
//!
//! Each record is, in order: skipped if already applied; *future* if its event time is more
//! than `max_clock_skew` after its arrival in the stream; *late* if its pane is closed (by the
//! shard's own watermark, or finalised by the merge); otherwise accepted into a delta.
//! A duplicate (same intersection, light and instant) within the batch is counted here; one
//! whose twin came in an earlier batch is resolved when the merge compacts the pane
//! (`crate::rollup`).

use crate::config::EngineConfig;
use crate::delta::{ArrivalSum, Delta, DeltaKey, DeltaReading};
use crate::hash::FastHash;
use crate::ids::IntersectionId;
use crate::reading::Reading;
use crate::rollup::CompactionCounts;
use crate::sequence::SequenceNumber;
use crate::window::{WindowKey, watermark};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Counters of what happened to records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Readings folded into the state (by `ingest`; compaction later takes duplicates and
    /// too-frequent readings out of this count, see [`Counters::settle`]).
    pub accepted: u64,
    /// Records that were malformed, invalid, for an unknown intersection or light, under a
    /// partition key that is not their intersection, or too frequent.
    pub rejected: u64,
    /// Readings whose pane was already closed.
    pub late: u64,
    /// Readings seen before (same intersection, light and instant).
    pub duplicates: u64,
    /// Readings stamped more than the allowed clock skew after their arrival.
    #[serde(default)]
    pub future: u64,
}

counts!(
    Counters {
        accepted,
        rejected,
        late,
        duplicates,
        future
    },
    records
);

impl Counters {
    /// The counters once compaction has resolved duplicates and too-frequent readings among
    /// the accepted ones.
    pub fn settle(&self, compaction: &CompactionCounts) -> Counters {
        let dropped = compaction.duplicates + compaction.too_frequent;
        Counters {
            accepted: self.accepted.saturating_sub(dropped),
            rejected: self.rejected + compaction.too_frequent,
            duplicates: self.duplicates + compaction.duplicates,
            ..*self
        }
    }
}

/// The merge's progress, which `ingest` reads with its meta.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeMarks {
    /// Windows ending at or before this instant are final: their readings are late. The merge
    /// moves it forward before it reads the panes it finalises, and every commit is
    /// conditional on it, so no reading is accepted into a pane after the merge read it.
    pub closed_ms: Option<i64>,
    /// Panes ending at or before this instant are compacted.
    pub compacted_ms: Option<i64>,
}

/// What the merge keeps between runs: its marks, and since when each shard found current
/// with its stream has been so (`crate::lineage::idle_shards`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeState {
    /// The marks `ingest` reads.
    pub marks: MergeMarks,
    /// Shard → when the merge first found it current, caught up or nearly
    /// (`crate::lineage::ShardActivity::current`; processing time, epoch ms).
    pub caught_up_since: BTreeMap<crate::ShardId, i64>,
    /// What compaction has dropped so far (duplicates, too frequent readings).
    #[serde(default)]
    pub compaction: CompactionCounts,
    /// What the latency measurement remembers between runs ([`crate::latency`]).
    #[serde(default)]
    pub latency: crate::latency::LatencyState,
}

/// A delta a shard wrote to a pane not yet compacted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeltaRef {
    /// The pane.
    pub pane_start_ms: i64,
    /// The commit that wrote it.
    pub commit: u64,
    /// Its parts.
    pub parts: u32,
}

/// The per-shard metadata item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// The shard.
    pub shard_id: crate::ShardId,
    /// The last record applied (all records up to it are in the state).
    pub applied_through: Option<SequenceNumber>,
    /// The shard's event-time frontier, the source of its watermark: the greatest event time
    /// accepted, each reading's bounded by its arrival in the stream (when known), epoch ms. A
    /// reading stamped ahead of its arrival is accepted (within the skew) but advances the
    /// frontier only to its arrival, so no clock running fast closes others' panes early.
    pub max_event_ms: Option<i64>,
    /// Latest arrival in the stream of a record applied, whatever became of it, epoch ms
    /// (processing time): how far its consumer has read.
    #[serde(default)]
    pub last_arrival_ms: Option<i64>,
    /// What happened to the records.
    pub counters: Counters,
    /// Commits that wrote deltas.
    #[serde(default)]
    pub commits: u64,
    /// The deltas of panes not yet compacted (those of compacted panes are dropped).
    #[serde(default)]
    pub deltas: Vec<DeltaRef>,
    /// Latest arrival in the stream of a reading *accepted*, epoch ms (processing time): a
    /// shard is idle when this is old, however much it rejects (`crate::lineage`). Last, so
    /// that a meta stored before it existed reads back ([`crate::stored`]).
    #[serde(default)]
    pub last_accepted_ms: Option<i64>,
}

impl ShardMeta {
    /// The meta of shard `shard_id` before its first commit.
    pub fn new(shard_id: &crate::ShardId) -> Self {
        Self {
            shard_id: shard_id.clone(),
            ..Self::default()
        }
    }

    /// The shard's watermark under `allowed_lateness_ms`.
    pub fn watermark(&self, allowed_lateness_ms: i64) -> Option<i64> {
        watermark(self.max_event_ms, allowed_lateness_ms)
    }

    /// The keys of the deltas it lists for the pane starting at `pane_start_ms`.
    pub fn delta_keys(&self, pane_start_ms: i64) -> impl Iterator<Item = DeltaKey> + '_ {
        self.deltas
            .iter()
            .filter(move |d| d.pane_start_ms == pane_start_ms)
            .flat_map(move |d| {
                (0..d.parts).map(move |part| DeltaKey {
                    pane_start_ms,
                    shard_id: self.shard_id.clone(),
                    commit: d.commit,
                    part,
                })
            })
    }
}

/// What the fold did with one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Folded into the state.
    Accepted,
    /// Its pane was closed: counted and dropped.
    Late,
    /// The same intersection, light and instant as a reading accepted earlier in the batch:
    /// counted and dropped (a twin in an earlier batch is found when the pane is compacted).
    Duplicate,
    /// Stamped too far after its arrival: counted and dropped.
    Future,
    /// Invalid: counted and dropped.
    Rejected,
    /// At or below the shard's `applied_through`: a redelivery, skipped without a count.
    AlreadyApplied,
}

/// The writes that make a batch durable.
#[derive(Clone, Debug, PartialEq)]
pub struct Commit {
    /// The `applied_through` the stored meta must still have.
    pub expected: Option<SequenceNumber>,
    /// The commit count the stored meta must still have (0 for none): a redrive
    /// (`crate::redrive`) moves it without moving `applied_through`.
    pub expected_commits: u64,
    /// The merge's closed mark the batch was folded against (it must not have moved).
    pub closed_ms: Option<i64>,
    /// The new meta (listing the deltas).
    pub meta: ShardMeta,
    /// The deltas, each within the part size: written first, unconditionally (a retry writes
    /// the same keys), and part of the state once the meta is.
    pub deltas: Vec<Delta>,
}

/// Largest encoded delta part, bytes (a quarter of DynamoDB's 400 KB item).
pub const MAX_DELTA_PART_BYTES: usize = 100 * 1024;

/// The readings a batch accepted into one pane, as the fold gathers them: by intersection
/// in a hash map (one lookup a reading, where a [`Delta`]'s ordered map takes a dozen string
/// comparisons), ordered once at commit.
#[derive(Debug)]
struct PaneFold {
    pane: WindowKey,
    readings: HashMap<IntersectionId, Vec<DeltaReading>, FastHash>,
    /// When they arrived (the delta's [`Arrivals`]).
    ///
    /// [`Arrivals`]: crate::delta::Arrivals
    arrivals: ArrivalSum,
    len: usize,
}

impl PaneFold {
    fn new(pane: WindowKey) -> Self {
        Self {
            pane,
            readings: HashMap::default(),
            arrivals: ArrivalSum::default(),
            len: 0,
        }
    }

    /// Adds a reading of `r`'s intersection, unless one of the same light and instant is
    /// there already (then it returns false).
    fn add(&mut self, r: &Reading, speed_milli: u64) -> bool {
        let new = DeltaReading {
            light: r.light,
            ts_ms: r.ts_ms,
            vehicles: r.vehicles,
            speed_milli,
        };
        match self.readings.get_mut(&r.intersection_id) {
            Some(rs) => {
                if rs.iter().any(|o| o.light == r.light && o.ts_ms == r.ts_ms) {
                    return false;
                }
                rs.push(new);
            }
            None => {
                self.readings.insert(r.intersection_id.clone(), vec![new]);
            }
        }
        self.len += 1;
        true
    }

    /// The delta it makes under `key`: intersections in order, each one's readings in
    /// delivery order.
    fn into_delta(self, key: DeltaKey) -> Delta {
        let mut by_id: Vec<(IntersectionId, Vec<DeltaReading>)> =
            self.readings.into_iter().collect();
        by_id.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Delta {
            key,
            pane: self.pane,
            // Built in bulk from sorted entries.
            readings: by_id.into_iter().collect(),
            arrivals: self.arrivals.finish(),
        }
    }
}

/// Folds a shard's records, in order, into deltas.
#[derive(Debug)]
pub struct BatchFold<'c> {
    cfg: &'c EngineConfig,
    meta: ShardMeta,
    expected: Option<SequenceNumber>,
    expected_commits: u64,
    marks: MergeMarks,
    /// What the batch accepted, by pane start.
    panes: BTreeMap<i64, PaneFold>,
}

impl<'c> BatchFold<'c> {
    /// Starts a fold from the stored meta (or none, for a new shard) and the merge's marks.
    pub fn new(
        cfg: &'c EngineConfig,
        shard_id: &crate::ShardId,
        meta: Option<ShardMeta>,
        marks: MergeMarks,
    ) -> Self {
        let meta = meta.unwrap_or_else(|| ShardMeta::new(shard_id));
        Self {
            cfg,
            expected: meta.applied_through.clone(),
            expected_commits: meta.commits,
            meta,
            marks,
            panes: BTreeMap::new(),
        }
    }

    /// The meta as folded so far.
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// Readings accepted since the fold started.
    pub fn pending(&self) -> usize {
        self.panes.values().map(|p| p.len).sum()
    }

    fn applied(&self, seq: &SequenceNumber) -> bool {
        self.meta.applied_through.as_ref().is_some_and(|a| seq <= a)
    }

    fn arrived(&mut self, seq: &SequenceNumber, arrival_ms: Option<i64>) {
        match &mut self.meta.applied_through {
            Some(a) => a.clone_from(seq),
            None => self.meta.applied_through = Some(seq.clone()),
        }
        if let Some(a) = arrival_ms {
            self.meta.last_arrival_ms = Some(self.meta.last_arrival_ms.map_or(a, |m| m.max(a)));
        }
    }

    /// Counts a record that could not be used.
    pub fn reject(&mut self, seq: &SequenceNumber, arrival_ms: Option<i64>) -> Outcome {
        if self.applied(seq) {
            return Outcome::AlreadyApplied;
        }
        self.arrived(seq, arrival_ms);
        self.meta.counters.rejected += 1;
        Outcome::Rejected
    }

    /// Folds one valid reading that arrived in the stream at `arrival_ms` (when known).
    pub fn apply(&mut self, seq: &SequenceNumber, r: &Reading, arrival_ms: Option<i64>) -> Outcome {
        if self.applied(seq) {
            return Outcome::AlreadyApplied;
        }
        self.arrived(seq, arrival_ms);
        if self.cfg.is_future(r.ts_ms, arrival_ms) {
            self.meta.counters.future += 1;
            return Outcome::Future;
        }
        let pane = self.cfg.pane().window_of(r.ts_ms);
        let closed_by_shard = self
            .meta
            .watermark(self.cfg.allowed_lateness_ms)
            .is_some_and(|w| pane.closed_by(w));
        let finalised = self.marks.closed_ms.is_some_and(|c| pane.closed_by(c));
        if closed_by_shard || finalised {
            self.meta.counters.late += 1;
            return Outcome::Late;
        }
        let folded = self
            .panes
            .entry(pane.start_ms)
            .or_insert_with(|| PaneFold::new(pane));
        if !folded.add(r, r.speed_milli()) {
            self.meta.counters.duplicates += 1;
            return Outcome::Duplicate;
        }
        if let Some(a) = arrival_ms {
            folded.arrivals.add(a);
            self.meta.last_accepted_ms = Some(self.meta.last_accepted_ms.map_or(a, |m| m.max(a)));
        }
        self.meta.counters.accepted += 1;
        // A reading moves the watermark no further than its arrival: a clock running ahead
        // (within the skew, so accepted) must not close anybody else's panes early.
        let frontier = arrival_ms.map_or(r.ts_ms, |a| r.ts_ms.min(a));
        self.meta.max_event_ms = Some(self.meta.max_event_ms.map_or(frontier, |m| m.max(frontier)));
        Outcome::Accepted
    }

    /// Whether anything changed since the fold started.
    pub fn dirty(&self) -> bool {
        self.expected != self.meta.applied_through
    }

    /// The writes for everything folded: the deltas (split into parts) and the meta listing
    /// them, without the deltas of panes the merge has compacted.
    pub fn commit(self) -> Commit {
        let mut meta = self.meta;
        let compacted = self.marks.compacted_ms;
        let pane_len = self.cfg.pane().ms();
        meta.deltas
            .retain(|d| compacted.is_none_or(|c| d.pane_start_ms + pane_len > c));
        let mut deltas = Vec::new();
        if !self.panes.is_empty() {
            meta.commits += 1;
        }
        for (start, folded) in self.panes {
            let key = DeltaKey {
                pane_start_ms: start,
                shard_id: meta.shard_id.clone(),
                commit: meta.commits,
                part: 0,
            };
            let parts = folded.into_delta(key).split(MAX_DELTA_PART_BYTES);
            meta.deltas.push(DeltaRef {
                pane_start_ms: start,
                commit: meta.commits,
                parts: parts.len() as u32,
            });
            deltas.extend(parts);
        }
        Commit {
            expected: self.expected,
            expected_commits: self.expected_commits,
            closed_ms: self.marks.closed_ms,
            meta,
            deltas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WindowKey;
    use crate::rollup::Rollup;
    use crate::testing::{T0, reading};
    use proptest::prelude::*;

    fn seq(n: u128) -> SequenceNumber {
        SequenceNumber::from_u128(n)
    }

    /// Applies each `(sequence number, reading, outcome)` in turn, all arriving at `arrival`,
    /// holding each to its outcome.
    fn apply_each(fold: &mut BatchFold, arrival: Option<i64>, steps: &[(u128, Reading, Outcome)]) {
        for (n, r, want) in steps {
            assert_eq!(fold.apply(&seq(*n), r, arrival), *want, "record {n}");
        }
    }

    /// A tiny store: one shard's meta and deltas, committed like the real adapters do.
    #[derive(Default, Clone, PartialEq, Debug)]
    struct Store {
        meta: Option<ShardMeta>,
        deltas: BTreeMap<DeltaKey, Delta>,
    }

    impl Store {
        fn commit(&mut self, c: Commit) -> bool {
            // Deltas first, unconditionally; then the meta, conditionally.
            for d in c.deltas {
                self.deltas.insert(d.key.clone(), d);
            }
            if self.meta.as_ref().and_then(|m| m.applied_through.clone()) != c.expected {
                return false;
            }
            self.meta = Some(c.meta);
            true
        }

        /// Folds a batch; `crash_before_meta` writes the deltas and then dies, as an
        /// invocation that fails between its two writes.
        fn run(&mut self, cfg: &EngineConfig, batch: &[(u128, Reading)], crash_before_meta: bool) {
            let mut fold =
                BatchFold::new(cfg, &"s".into(), self.meta.clone(), MergeMarks::default());
            for (n, r) in batch {
                fold.apply(&seq(*n), r, None);
            }
            let c = fold.commit();
            if crash_before_meta {
                for d in c.deltas {
                    self.deltas.insert(d.key.clone(), d);
                }
            } else {
                assert!(self.commit(c));
            }
        }

        /// The pane rollups, from the deltas the meta lists.
        fn rollups(&self, cfg: &EngineConfig) -> Vec<Rollup> {
            let Some(meta) = &self.meta else {
                return vec![];
            };
            let panes: std::collections::BTreeSet<i64> =
                meta.deltas.iter().map(|d| d.pane_start_ms).collect();
            panes
                .into_iter()
                .map(|p| {
                    let pane: WindowKey = cfg.pane().window_of(p);
                    let listed: Vec<&Delta> = meta
                        .delta_keys(p)
                        .filter_map(|k| self.deltas.get(&k))
                        .collect();
                    Rollup::compact(pane, listed, cfg.min_reading_interval_ms, cfg.digest_size)
                })
                .collect()
        }
    }

    fn readings() -> impl Strategy<Value = Vec<Reading>> {
        prop::collection::vec((0u8..5, 0u8..4, 0i64..3600, 0u32..40), 1..120).prop_map(|v| {
            v.into_iter()
                .map(|(i, l, t, n)| reading(i, l, t, n))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn duplicates_and_retried_batches_change_nothing(
            rs in readings(),
            dup_every in 2usize..7,
            batch in 1usize..20,
            crash_every in 2usize..5,
        ) {
            let cfg = EngineConfig::default();
            let clean: Vec<(u128, Reading)> =
                rs.iter().cloned().enumerate().map(|(i, r)| (i as u128 + 1, r)).collect();
            let mut once = Store::default();
            for b in clean.chunks(batch) {
                once.run(&cfg, b, false);
            }
            // The same readings with every `dup_every`-th one put twice by the producer (later
            // in the stream), and every batch delivered three times, some first attempts
            // dying between their deltas and their meta.
            let mut noisy = Vec::new();
            for (i, r) in rs.iter().enumerate() {
                noisy.push(r.clone());
                if i % dup_every == 0 {
                    noisy.push(r.clone());
                }
            }
            let noisy: Vec<(u128, Reading)> =
                noisy.into_iter().enumerate().map(|(i, r)| (i as u128 + 1, r)).collect();
            let mut twice = Store::default();
            for (n, b) in noisy.chunks(batch).enumerate() {
                twice.run(&cfg, b, n % crash_every == 0);
                twice.run(&cfg, b, false);
                twice.run(&cfg, b, false);
            }
            let (a, b) = (once.rollups(&cfg), twice.rollups(&cfg));
            let totals = |rs: &[Rollup]| rs.iter().map(|r| (r.window, r.intersections.clone())).collect::<Vec<_>>();
            prop_assert_eq!(totals(&a), totals(&b));
            let settle = |s: &Store, rs: &[Rollup]| {
                let mut c = CompactionCounts::default();
                for r in rs {
                    c.add(&r.counts);
                }
                s.meta.as_ref().map(|m| m.counters.settle(&c))
            };
            let (ca, cb) = (settle(&once, &a), settle(&twice, &b));
            prop_assert_eq!(ca.map(|c| c.accepted), cb.map(|c| c.accepted));
            // Every record is counted once.
            prop_assert_eq!(cb.map(|c| c.records()), Some(noisy.len() as u64));
            // A duplicate of a late reading cannot be recognised (its pane is closed), so it
            // counts as late again; it changes no result either way.
            prop_assert!(ca.map(|c| c.late) <= cb.map(|c| c.late));
        }
    }

    proptest! {
        #[test]
        fn the_fold_writes_the_deltas_of_its_readings_pushed_one_by_one(
            rs in readings(),
            dup_every in 2usize..7,
            arrival_lag_s in prop::option::of(0i64..400),
        ) {
            // The model: each accepted reading pushed into its pane's delta, as the fold was
            // first written, a reading already there being the duplicate.
            let cfg = EngineConfig::default();
            let mut fold = BatchFold::new(&cfg, &"s".into(), None, MergeMarks::default());
            let mut model: BTreeMap<i64, (Delta, ArrivalSum)> = BTreeMap::new();
            let mut n = 0u128;
            for (i, r) in rs.iter().enumerate() {
                let times = if i % dup_every == 0 { 2 } else { 1 };
                for _ in 0..times {
                    n += 1;
                    let arrival = arrival_lag_s.map(|l| r.ts_ms + l * 1000 - 100_000);
                    let pane = cfg.pane().window_of(r.ts_ms);
                    let there = model
                        .get(&pane.start_ms)
                        .is_some_and(|(d, _)| d.has(&r.intersection_id, r.light, r.ts_ms));
                    match fold.apply(&seq(n), r, arrival) {
                        Outcome::Accepted => {
                            prop_assert!(!there);
                            let (d, a) = model.entry(pane.start_ms).or_insert_with(|| {
                                let key = DeltaKey {
                                    pane_start_ms: pane.start_ms,
                                    shard_id: "s".into(),
                                    commit: 1,
                                    part: 0,
                                };
                                (Delta::new(key, pane), ArrivalSum::default())
                            });
                            d.push(
                                &r.intersection_id,
                                DeltaReading::of(r),
                            );
                            if let Some(x) = arrival {
                                a.add(x);
                            }
                        }
                        Outcome::Duplicate => prop_assert!(there),
                        _ => {}
                    }
                }
            }
            let want: Vec<Delta> = model
                .into_values()
                .flat_map(|(mut d, a)| {
                    d.arrivals = a.finish();
                    d.split(MAX_DELTA_PART_BYTES)
                })
                .collect();
            let got = fold.commit().deltas;
            prop_assert_eq!(
                got.iter().map(Delta::encode).collect::<Vec<_>>(),
                want.iter().map(Delta::encode).collect::<Vec<_>>()
            );
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn each_delta_says_when_its_readings_arrived() {
        let cfg = EngineConfig::default();
        let mut fold = BatchFold::new(&cfg, &"s".into(), None, MergeMarks::default());
        // Two readings of one pane arriving 3 and 5 s after their time, one of the next
        // pane arriving 1 s after, and one without an arrival time (not counted).
        fold.apply(&seq(1), &reading(1, 0, 10, 1), Some(T0 + 13_000));
        fold.apply(&seq(2), &reading(1, 1, 20, 1), Some(T0 + 25_000));
        fold.apply(&seq(3), &reading(2, 0, 905, 1), Some(T0 + 906_000));
        fold.apply(&seq(4), &reading(3, 0, 30, 1), None);
        let c = fold.commit();
        let arrivals: Vec<_> = c.deltas.iter().map(|d| d.arrivals).collect();
        assert_eq!(
            arrivals,
            [
                Some(crate::delta::Arrivals {
                    first_ms: T0 + 13_000,
                    last_ms: T0 + 25_000,
                    mean_ms: T0 + 19_000,
                }),
                Some(crate::delta::Arrivals {
                    first_ms: T0 + 906_000,
                    last_ms: T0 + 906_000,
                    mean_ms: T0 + 906_000,
                }),
            ]
        );
    }

    #[test]
    fn a_reading_in_a_closed_pane_is_late() {
        let cfg = EngineConfig::default();
        let mut fold = BatchFold::new(&cfg, &"s".into(), None, MergeMarks::default());
        apply_each(
            &mut fold,
            None,
            &[
                (1, reading(1, 0, 1100, 3), Outcome::Accepted),
                // Watermark 1100 s − 120 s = 980 s ≥ 900 s, the end of the first pane.
                (2, reading(1, 1, 899, 3), Outcome::Late),
                (3, reading(1, 1, 901, 3), Outcome::Accepted),
                (3, reading(1, 1, 950, 3), Outcome::AlreadyApplied),
            ],
        );
        assert_eq!(fold.meta().counters.late, 1);
    }

    #[test]
    fn a_reading_in_a_pane_the_merge_finalised_is_late_even_if_its_shard_lags() {
        let cfg = EngineConfig::default();
        let marks = MergeMarks {
            closed_ms: Some(T0 + 900_000),
            compacted_ms: None,
        };
        let mut fold = BatchFold::new(&cfg, &"s".into(), None, marks);
        apply_each(
            &mut fold,
            None,
            &[
                (1, reading(1, 0, 100, 3), Outcome::Late),
                (2, reading(1, 0, 900, 3), Outcome::Accepted),
            ],
        );
        assert_eq!(fold.commit().closed_ms, Some(T0 + 900_000));
    }

    #[test]
    fn a_reading_stamped_after_its_arrival_plus_the_skew_is_future_and_moves_nothing() {
        let cfg = EngineConfig::default();
        let mut fold = BatchFold::new(&cfg, &"s".into(), None, MergeMarks::default());
        let arrival = Some(T0 + 60_000);
        apply_each(
            &mut fold,
            arrival,
            &[
                (1, reading(1, 0, 60, 3), Outcome::Accepted),
                // Five minutes of skew are allowed; a day is not.
                (2, reading(1, 1, 60 + 300, 3), Outcome::Accepted),
                (3, reading(2, 1, 86_400, 3), Outcome::Future),
            ],
        );
        // The reading stamped 300 s after its arrival moves the frontier only to its arrival.
        assert_eq!(fold.meta().max_event_ms, Some(T0 + 60_000));
        assert_eq!(fold.meta().counters.future, 1);
        // The pane of the future reading got nothing.
        let c = fold.commit();
        assert_eq!(c.deltas.len(), 1);
        assert_eq!(c.meta.last_arrival_ms, arrival);
    }

    #[test]
    fn a_retried_commit_writes_the_same_keys_and_the_meta_drops_compacted_panes() {
        let cfg = EngineConfig::default();
        let batch = [reading(1, 0, 10, 1), reading(1, 0, 910, 2)];
        let fold_once = |meta: Option<ShardMeta>, marks| {
            let mut f = BatchFold::new(&cfg, &"s".into(), meta, marks);
            for (i, r) in batch.iter().enumerate() {
                f.apply(&seq(i as u128 + 1), r, None);
            }
            f.commit()
        };
        let a = fold_once(None, MergeMarks::default());
        let b = fold_once(None, MergeMarks::default());
        let keys = |c: &Commit| c.deltas.iter().map(|d| d.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a.meta.deltas.len(), 2);
        // The next commit, once the merge compacted the first pane, lists only the second.
        let mut f = BatchFold::new(
            &cfg,
            &"s".into(),
            Some(a.meta),
            MergeMarks {
                closed_ms: Some(T0 + 900_000),
                compacted_ms: Some(T0 + 900_000),
            },
        );
        f.apply(&seq(3), &reading(1, 1, 920, 1), None);
        let c = f.commit();
        assert_eq!(
            c.meta
                .deltas
                .iter()
                .map(|d| (d.pane_start_ms, d.commit))
                .collect::<Vec<_>>(),
            [(T0 + 900_000, 1), (T0 + 900_000, 2)]
        );
    }
}
