//! The per-shard partial state that `ingest` keeps, and the fold of a batch of readings into it.
//!
//! State is kept per *pane*: a window of the shortest configured length. Longer windows are
//! unions of panes, so one reading updates one pane, whatever the number of window lengths,
//! and the merge builds every window from its panes. A shard's state is:
//!
//! - one [`ShardMeta`]: the last sequence number applied, the greatest event time seen (the
//!   watermark's source) and the counters;
//! - [`PaneItem`]s keyed by (pane start, shard, bucket): the intersections of one bucket with
//!   their per-light vehicle counts and seen timestamps, speed sums and vehicle digests.
//!
//! A batch is applied all or nothing: the meta and the items it touched are committed together,
//! on the condition that the stored meta still has the sequence number the batch was folded
//! against. A retried batch finds its records at or below `applied_through` and skips them, so
//! redelivery changes nothing. A reading already seen (same intersection, light and ts) is
//! counted as a duplicate and not folded again.

use crate::config::EngineConfig;
use crate::digest::VehicleDigest;
use crate::ids::{IntersectionId, LIGHTS_PER_INTERSECTION};
use crate::ranking::SpeedSum;
use crate::reading::Reading;
use crate::sequence::SequenceNumber;
use crate::window::{WindowKey, WindowLength, watermark};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Counters a shard keeps of what it did with its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Readings folded into the state.
    pub accepted: u64,
    /// Records that were malformed, invalid, or for an unknown intersection or light.
    pub rejected: u64,
    /// Readings whose pane the watermark had already closed.
    pub late: u64,
    /// Readings seen before (same intersection, light and ts).
    pub duplicates: u64,
}

impl Counters {
    /// Adds another shard's counters.
    pub fn add(&mut self, o: &Counters) {
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.late += o.late;
        self.duplicates += o.duplicates;
    }
}

/// The per-shard metadata item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// The shard.
    pub shard_id: String,
    /// The last record applied (all records up to it are in the state).
    pub applied_through: Option<SequenceNumber>,
    /// Greatest event time accepted, epoch ms.
    pub max_event_ms: Option<i64>,
    /// What happened to the records.
    pub counters: Counters,
}

impl ShardMeta {
    /// The shard's watermark under `allowed_lateness_ms`.
    pub fn watermark(&self, allowed_lateness_ms: i64) -> Option<i64> {
        watermark(self.max_event_ms, allowed_lateness_ms)
    }
}

/// Where a pane item lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PaneKey {
    /// Pane start, epoch ms.
    pub start_ms: i64,
    /// The shard.
    pub shard_id: String,
    /// Bucket of the intersections in it.
    pub bucket: u32,
}

/// One light's part of a pane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LightPane {
    /// Vehicles counted.
    pub vehicles: u64,
    /// Timestamps seen, as ms after the pane start, ascending (for duplicate detection).
    pub seen: Vec<u32>,
}

/// One intersection's part of a pane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntersectionPane {
    /// Per light, indexed by light.
    pub lights: [LightPane; LIGHTS_PER_INTERSECTION],
    /// Speed sums (query 1).
    pub speed: SpeedSum,
    /// Digest of the readings' vehicle counts (query 2).
    pub digest: VehicleDigest,
}

impl IntersectionPane {
    /// Readings folded in.
    pub fn readings(&self) -> u64 {
        self.lights.iter().map(|l| l.seen.len() as u64).sum()
    }

    /// Vehicles per light.
    pub fn vehicles(&self) -> [u64; LIGHTS_PER_INTERSECTION] {
        std::array::from_fn(|i| self.lights[i].vehicles)
    }
}

/// One stored item of partial state: a bucket of one shard's intersections in one pane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaneItem {
    /// Where it lives.
    pub key: PaneKey,
    /// Pane length, ms.
    pub length_ms: i64,
    /// The intersections, by id.
    pub intersections: BTreeMap<IntersectionId, IntersectionPane>,
}

impl PaneItem {
    /// The pane as a window.
    pub fn window(&self) -> Option<WindowKey> {
        WindowLength::from_ms(self.length_ms).map(|l| l.window_of(self.key.start_ms))
    }
}

/// The bucket of an intersection among `buckets`: FNV-1a of its id, so that it is the same
/// on every machine and in every release.
pub fn bucket_of(id: &IntersectionId, buckets: u32) -> u32 {
    (crate::hash::fnv1a64(id.as_str().as_bytes()) % u64::from(buckets.max(1))) as u32
}

/// What the fold did with one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Folded into the state.
    Accepted,
    /// Its pane was closed: counted and dropped.
    Late,
    /// Seen before: counted and dropped.
    Duplicate,
    /// Invalid: counted and dropped.
    Rejected,
    /// At or below the shard's `applied_through`: a redelivery, skipped without a count.
    AlreadyApplied,
}

/// The writes that make a batch (or part of it) durable.
#[derive(Clone, Debug, PartialEq)]
pub struct Commit<'f> {
    /// The `applied_through` the stored meta must still have.
    pub expected: Option<SequenceNumber>,
    /// The new meta.
    pub meta: ShardMeta,
    /// The pane items that changed (borrowed from the fold: a commit is written, then
    /// dropped, before the fold goes on).
    pub items: Vec<&'f PaneItem>,
}

/// Folds a shard's records, in order, into its state.
#[derive(Debug)]
pub struct BatchFold<'c> {
    cfg: &'c EngineConfig,
    meta: ShardMeta,
    expected: Option<SequenceNumber>,
    /// Items by (pane start, bucket): the shard is the fold's own.
    items: BTreeMap<(i64, u32), PaneItem>,
    touched: BTreeSet<(i64, u32)>,
}

impl<'c> BatchFold<'c> {
    /// The pane key `r` belongs to in `shard_id`.
    pub fn key_of(cfg: &EngineConfig, shard_id: &str, r: &Reading) -> PaneKey {
        PaneKey {
            start_ms: cfg.pane().window_of(r.ts_ms).start_ms,
            shard_id: shard_id.to_owned(),
            bucket: bucket_of(&r.intersection_id, cfg.state_buckets),
        }
    }

    /// Starts a fold from the stored meta (or none, for a new shard) and the stored items the
    /// batch's readings belong to (missing items start empty).
    pub fn new(
        cfg: &'c EngineConfig,
        shard_id: &str,
        meta: Option<ShardMeta>,
        loaded: Vec<PaneItem>,
    ) -> Self {
        let meta = meta.unwrap_or_else(|| ShardMeta {
            shard_id: shard_id.to_owned(),
            ..ShardMeta::default()
        });
        Self {
            cfg,
            expected: meta.applied_through.clone(),
            meta,
            items: loaded
                .into_iter()
                .map(|i| ((i.key.start_ms, i.key.bucket), i))
                .collect(),
            touched: BTreeSet::new(),
        }
    }

    /// The meta as folded so far.
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// Items changed since the last commit.
    pub fn touched(&self) -> usize {
        self.touched.len()
    }

    /// Whether folding `r` would change an item not yet changed since the last commit
    /// (so the caller can commit first when it must bound a commit's size).
    pub fn needs_new_item(&self, r: &Reading) -> bool {
        !self.touched.contains(&self.slot_of(r))
    }

    fn slot_of(&self, r: &Reading) -> (i64, u32) {
        (
            self.cfg.pane().window_of(r.ts_ms).start_ms,
            bucket_of(&r.intersection_id, self.cfg.state_buckets),
        )
    }

    fn applied(&self, seq: &SequenceNumber) -> bool {
        self.meta.applied_through.as_ref().is_some_and(|a| seq <= a)
    }

    /// Counts a record that could not be used.
    pub fn reject(&mut self, seq: &SequenceNumber) -> Outcome {
        if self.applied(seq) {
            return Outcome::AlreadyApplied;
        }
        self.meta.counters.rejected += 1;
        self.meta.applied_through = Some(seq.clone());
        Outcome::Rejected
    }

    /// Folds one valid reading.
    pub fn apply(&mut self, seq: &SequenceNumber, r: &Reading) -> Outcome {
        if self.applied(seq) {
            return Outcome::AlreadyApplied;
        }
        self.meta.applied_through = Some(seq.clone());
        let pane = self.cfg.pane().window_of(r.ts_ms);
        if self
            .meta
            .watermark(self.cfg.allowed_lateness_ms)
            .is_some_and(|w| pane.closed_by(w))
        {
            self.meta.counters.late += 1;
            return Outcome::Late;
        }
        let slot = self.slot_of(r);
        let digest_size = self.cfg.digest_size;
        let shard_id = &self.meta.shard_id;
        let item = self.items.entry(slot).or_insert_with(|| PaneItem {
            key: PaneKey {
                start_ms: slot.0,
                shard_id: shard_id.clone(),
                bucket: slot.1,
            },
            length_ms: pane.length.ms(),
            intersections: BTreeMap::new(),
        });
        if !item.intersections.contains_key(&r.intersection_id) {
            item.intersections.insert(
                r.intersection_id.clone(),
                IntersectionPane {
                    digest: VehicleDigest::new(digest_size),
                    ..IntersectionPane::default()
                },
            );
        }
        let Some(x) = item.intersections.get_mut(&r.intersection_id) else {
            return Outcome::Rejected;
        };
        let light = &mut x.lights[r.light.get()];
        let offset = (r.ts_ms - pane.start_ms) as u32;
        let Err(at) = light.seen.binary_search(&offset) else {
            self.meta.counters.duplicates += 1;
            return Outcome::Duplicate;
        };
        light.seen.insert(at, offset);
        light.vehicles += u64::from(r.vehicles);
        if r.vehicles > 0 {
            x.speed.add(r.vehicles, r.speed_milli());
        }
        x.digest.push(f64::from(r.vehicles));
        self.meta.counters.accepted += 1;
        self.meta.max_event_ms = Some(self.meta.max_event_ms.map_or(r.ts_ms, |m| m.max(r.ts_ms)));
        self.touched.insert(slot);
        Outcome::Accepted
    }

    /// The writes for everything folded since the last commit. The fold goes on from there:
    /// the next commit expects the meta this one writes.
    pub fn commit(&mut self) -> Commit<'_> {
        let touched = std::mem::take(&mut self.touched);
        let c = Commit {
            expected: self.expected.clone(),
            meta: self.meta.clone(),
            items: touched.iter().filter_map(|k| self.items.get(k)).collect(),
        };
        self.expected = self.meta.applied_through.clone();
        c
    }

    /// Whether anything changed since the last commit (the meta included).
    pub fn dirty(&self) -> bool {
        self.expected != self.meta.applied_through
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Lamps;
    use crate::{IntersectionId, LightIndex};
    use proptest::prelude::*;

    fn reading(i: u8, light: u8, ts_s: i64, vehicles: u32) -> Reading {
        Reading {
            intersection_id: IntersectionId::parse(&format!("I-{i}"))
                .unwrap_or_else(|e| panic!("{e}")),
            light: LightIndex::new(i64::from(light)).unwrap_or_else(|e| panic!("{e}")),
            ts_ms: 1_767_600_000_000 + ts_s * 1000,
            vehicles,
            mean_speed_kmh: 20.0 + f64::from(vehicles),
            lamps: Lamps::default(),
            position: None,
        }
    }

    /// A tiny store: one shard's meta and items, committed like the real adapters do.
    #[derive(Default, Clone, PartialEq, Debug)]
    struct Store {
        meta: Option<ShardMeta>,
        items: BTreeMap<PaneKey, PaneItem>,
    }

    impl Store {
        fn commit(&mut self, c: Commit<'_>) -> bool {
            if self.meta.as_ref().and_then(|m| m.applied_through.clone()) != c.expected {
                return false;
            }
            self.meta = Some(c.meta);
            for i in c.items {
                self.items.insert(i.key.clone(), i.clone());
            }
            true
        }

        /// Folds a batch; `crash_before_commit` drops the result as a failed invocation would.
        fn run(
            &mut self,
            cfg: &EngineConfig,
            batch: &[(u128, Reading)],
            crash_before_commit: bool,
        ) {
            let loaded: Vec<PaneItem> = self.items.values().cloned().collect();
            let mut fold = BatchFold::new(cfg, "s", self.meta.clone(), loaded);
            for (seq, r) in batch {
                fold.apply(&SequenceNumber::from_u128(*seq), r);
            }
            let c = fold.commit();
            if !crash_before_commit {
                assert!(self.commit(c));
            }
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
            // in the stream), and every batch delivered twice, some first attempts crashing.
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
            let strip = |s: &Store| s.items.clone();
            prop_assert_eq!(strip(&once), strip(&twice));
            let (a, b) = (once.meta.map(|m| m.counters), twice.meta.map(|m| m.counters));
            prop_assert_eq!(a.map(|c| c.accepted), b.map(|c| c.accepted));
            // A duplicate of a late reading cannot be recognised (its pane is closed), so it
            // counts as late again; it changes no result either way.
            prop_assert!(a.map(|c| c.late) <= b.map(|c| c.late));
        }
    }

    #[test]
    fn a_reading_in_a_closed_pane_is_late() {
        let cfg = EngineConfig::default();
        let mut fold = BatchFold::new(&cfg, "s", None, vec![]);
        assert_eq!(
            fold.apply(&SequenceNumber::from_u128(1), &reading(1, 0, 1100, 3)),
            Outcome::Accepted
        );
        // Watermark 1100 s − 120 s = 980 s ≥ 900 s, the end of the first pane.
        assert_eq!(
            fold.apply(&SequenceNumber::from_u128(2), &reading(1, 1, 899, 3)),
            Outcome::Late
        );
        assert_eq!(
            fold.apply(&SequenceNumber::from_u128(3), &reading(1, 1, 901, 3)),
            Outcome::Accepted
        );
        assert_eq!(
            fold.apply(&SequenceNumber::from_u128(3), &reading(1, 1, 950, 3)),
            Outcome::AlreadyApplied
        );
        assert_eq!(fold.meta().counters.late, 1);
    }
}
