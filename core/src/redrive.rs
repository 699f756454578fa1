//! The redrive of a batch that `ingest` gave up on: its records, read again from the stream,
//! folded into the shard's state *beside* the live fold of [`crate::pane`].
//!
//! The live fold skips every record at or below the shard's `applied_through` (a redelivery)
//! and calls a reading late once the shard's own watermark has passed its pane. Both are wrong
//! for a failed batch: the shard moved past it without applying it, so its sequence numbers are
//! below the checkpoint and its panes are behind the watermark. A [`RedriveFold`] therefore
//! ignores the checkpoint (and never moves it, nor the watermark, nor the last arrival: the
//! live stream's progress is not the redrive's) and calls a reading *final* only when the
//! merge has finalised its window (the merge's closed mark: past it nothing can count).
//!
//! Why that is exactly once in effect:
//!
//! - a failed batch was never committed (`ingest` commits a shard's records all or nothing and
//!   reports a failure only when the commit did not happen), so its readings are not in the
//!   state; should an ambiguous commit have landed after all, the pane's compaction drops a
//!   reading whose twin (same intersection, light and instant) is already there, as it does for
//!   a producer's duplicates, so no result counts a reading twice;
//! - the redrive's deltas are keyed by the failure record ([`redrive_id`]: a retried redrive
//!   writes the same keys, never a key the live fold uses), and its meta is written on the
//!   condition that neither the checkpoint nor the shard's commit count moved (the live fold
//!   and the redrive both bump the count, so neither overwrites the other's meta);
//! - the meta write and the failure record's [`RedriveMark`] are one atomic write: a second
//!   redrive of the same failure record finds the mark and counts every record a duplicate,
//!   writing nothing.

use crate::config::EngineConfig;
use crate::delta::{Delta, DeltaKey, DeltaReading};
use crate::pane::{Commit, DeltaRef, MAX_DELTA_PART_BYTES, MergeMarks, ShardMeta};
use crate::reading::Reading;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::delta::REDRIVE_COMMIT_BIT;

/// The id of a failure record (its shard and sequence range): the commit number of its deltas,
/// always with [`REDRIVE_COMMIT_BIT`] set. FNV-1a, fixed here so that it never changes between
/// builds.
pub fn redrive_id(shard_id: &crate::ShardId, start: &str, end: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in shard_id
        .as_str()
        .bytes()
        .chain([0])
        .chain(start.bytes())
        .chain([0])
        .chain(end.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | REDRIVE_COMMIT_BIT
}

/// What became of the records of a redriven batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveCounts {
    /// Folded into the state now.
    pub applied: u64,
    /// Already counted: the same reading earlier in the batch, or the whole failure record
    /// redriven before.
    pub duplicate: u64,
    /// Their window is final (the merge closed it): they can no longer count.
    pub final_: u64,
    /// Invalid, for an unknown intersection or light, or under another partition key.
    pub rejected: u64,
    /// Stamped more than the allowed clock skew after their arrival.
    pub future: u64,
    /// In the failure record's range but no longer in the stream (past its retention).
    pub missing: u64,
}

counts!(
    RedriveCounts {
        applied,
        duplicate,
        final_,
        rejected,
        future,
        missing
    },
    records
);

impl RedriveCounts {
    /// The same records, every one of them now a duplicate (a failure record redriven again).
    pub fn as_duplicates(&self) -> RedriveCounts {
        RedriveCounts {
            duplicate: self.records() - self.missing,
            missing: self.missing,
            ..RedriveCounts::default()
        }
    }
}

/// The record that a failure record was redriven, stored with the redrive's meta in one write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveMark {
    /// The shard.
    pub shard_id: crate::ShardId,
    /// [`redrive_id`] of the failure record.
    pub id: u64,
    /// What the redrive did.
    pub counts: RedriveCounts,
}

/// What a fold did with one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedriveOutcome {
    /// Folded into the state.
    Applied,
    /// The same intersection, light and instant as a reading earlier in the batch.
    Duplicate,
    /// Its window is final.
    Final,
    /// Stamped too far after its arrival.
    Future,
    /// Invalid.
    Rejected,
}

/// Folds the records of one failure record into one shard's state.
#[derive(Debug)]
pub struct RedriveFold<'c> {
    cfg: &'c EngineConfig,
    meta: ShardMeta,
    expected_commits: u64,
    marks: MergeMarks,
    id: u64,
    panes: BTreeMap<i64, Delta>,
    counts: RedriveCounts,
}

impl<'c> RedriveFold<'c> {
    /// Starts a fold of failure record `id` from the stored meta (none for a shard never
    /// committed) and the merge's marks.
    pub fn new(
        cfg: &'c EngineConfig,
        shard_id: &crate::ShardId,
        meta: Option<ShardMeta>,
        marks: MergeMarks,
        id: u64,
    ) -> Self {
        let meta = meta.unwrap_or_else(|| ShardMeta::new(shard_id));
        Self {
            cfg,
            expected_commits: meta.commits,
            meta,
            marks,
            id: id | REDRIVE_COMMIT_BIT,
            panes: BTreeMap::new(),
            counts: RedriveCounts::default(),
        }
    }

    /// Counts a record that could not be used.
    pub fn reject(&mut self) -> RedriveOutcome {
        self.meta.counters.rejected += 1;
        self.counts.rejected += 1;
        RedriveOutcome::Rejected
    }

    /// Folds one valid reading that arrived in the stream at `arrival_ms` (when known).
    pub fn apply(&mut self, r: &Reading, arrival_ms: Option<i64>) -> RedriveOutcome {
        if self.cfg.is_future(r.ts_ms, arrival_ms) {
            self.meta.counters.future += 1;
            self.counts.future += 1;
            return RedriveOutcome::Future;
        }
        let pane = self.cfg.pane().window_of(r.ts_ms);
        if self.marks.closed_ms.is_some_and(|c| pane.closed_by(c)) {
            self.meta.counters.late += 1;
            self.counts.final_ += 1;
            return RedriveOutcome::Final;
        }
        let shard_id = &self.meta.shard_id;
        let id = self.id;
        let delta = self.panes.entry(pane.start_ms).or_insert_with(|| {
            let key = DeltaKey {
                pane_start_ms: pane.start_ms,
                shard_id: shard_id.clone(),
                commit: id,
                part: 0,
            };
            Delta::new(key, pane)
        });
        if delta.has(&r.intersection_id, r.light, r.ts_ms) {
            self.meta.counters.duplicates += 1;
            self.counts.duplicate += 1;
            return RedriveOutcome::Duplicate;
        }
        delta.push(&r.intersection_id, DeltaReading::of(r));
        self.meta.counters.accepted += 1;
        self.counts.applied += 1;
        RedriveOutcome::Applied
    }

    /// What the fold did so far.
    pub fn counts(&self) -> RedriveCounts {
        self.counts
    }

    /// The writes: the deltas (their arrivals left unknown: a redriven reading says nothing
    /// about the live latency), the meta listing them with the counters moved and one more
    /// commit, its checkpoint and watermark untouched, and the mark to store with it; `missing`
    /// records of the range were no longer in the stream.
    pub fn commit(self, missing: u64) -> (Commit, RedriveMark) {
        let mut meta = self.meta;
        let compacted = self.marks.compacted_ms;
        let pane_len = self.cfg.pane().ms();
        meta.deltas
            .retain(|d| compacted.is_none_or(|c| d.pane_start_ms + pane_len > c));
        meta.commits += 1;
        let mut deltas = Vec::new();
        for (start, delta) in self.panes {
            let parts = delta.split(MAX_DELTA_PART_BYTES);
            meta.deltas.push(DeltaRef {
                pane_start_ms: start,
                commit: self.id,
                parts: parts.len() as u32,
            });
            deltas.extend(parts);
        }
        let mark = RedriveMark {
            shard_id: meta.shard_id.clone(),
            id: self.id,
            counts: RedriveCounts {
                missing,
                ..self.counts
            },
        };
        let commit = Commit {
            expected: meta.applied_through.clone(),
            expected_commits: self.expected_commits,
            closed_ms: self.marks.closed_ms,
            meta,
            deltas,
        };
        (commit, mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pane::BatchFold;
    use crate::rollup::Rollup;
    use crate::sequence::SequenceNumber;
    use crate::testing::{T0, reading};
    use proptest::prelude::*;

    /// The live fold of `batch` (sequence numbers from `first`) over `meta`, committed.
    fn live(cfg: &EngineConfig, meta: Option<ShardMeta>, first: u128, batch: &[Reading]) -> Commit {
        let mut f = BatchFold::new(cfg, &"s".into(), meta, MergeMarks::default());
        for (i, r) in batch.iter().enumerate() {
            f.apply(&SequenceNumber::from_u128(first + i as u128), r, None);
        }
        f.commit()
    }

    /// The rollups of every pane the meta lists.
    fn rollups(cfg: &EngineConfig, meta: &ShardMeta, deltas: &[Delta]) -> Vec<Rollup> {
        let panes: std::collections::BTreeSet<i64> =
            meta.deltas.iter().map(|d| d.pane_start_ms).collect();
        panes
            .into_iter()
            .map(|p| {
                let listed: Vec<&Delta> = meta
                    .delta_keys(p)
                    .filter_map(|k| deltas.iter().find(|d| d.key == k))
                    .collect();
                Rollup::compact(
                    cfg.pane().window_of(p),
                    listed,
                    cfg.min_reading_interval_ms,
                    cfg.digest_size,
                )
            })
            .collect()
    }

    #[test]
    fn a_redriven_batch_below_the_checkpoint_and_behind_the_watermark_is_applied() {
        let cfg = EngineConfig::default();
        // Batch 1 (seq 1-2) failed; batch 2 (seq 3-4) moved the checkpoint and the watermark
        // past it (its readings 20 minutes later).
        let failed = [reading(1, 0, 10, 4), reading(2, 0, 20, 6)];
        let c2 = live(
            &cfg,
            None,
            3,
            &[reading(1, 0, 1210, 1), reading(2, 0, 1220, 1)],
        );
        let meta = c2.meta.clone();
        // The live fold skips the redelivered records.
        let again = live(&cfg, Some(meta.clone()), 1, &failed);
        assert!(again.deltas.is_empty());
        assert_eq!(again.meta.counters, meta.counters);
        let id = redrive_id(&"s".into(), "1", "2");
        let mut f = RedriveFold::new(
            &cfg,
            &"s".into(),
            Some(meta.clone()),
            MergeMarks::default(),
            id,
        );
        for r in &failed {
            assert_eq!(f.apply(r, None), RedriveOutcome::Applied);
        }
        let (c, mark) = f.commit(0);
        assert_eq!(mark.counts.applied, 2);
        assert_eq!(c.meta.applied_through, meta.applied_through);
        assert_eq!(c.expected, meta.applied_through);
        assert_eq!(c.meta.max_event_ms, meta.max_event_ms);
        assert_eq!(c.expected_commits, meta.commits);
        assert_eq!(c.meta.commits, meta.commits + 1);
        assert!(c.deltas.iter().all(|d| d.key.commit == id));
        assert_eq!(c.meta.counters.accepted, meta.counters.accepted + 2);
        // The redriven pane's rollup holds both readings.
        let mut all = c2.deltas.clone();
        all.extend(c.deltas.clone());
        let rs = rollups(&cfg, &c.meta, &all);
        let first = rs
            .iter()
            .find(|r| r.window.start_ms == T0)
            .unwrap_or_else(|| panic!("no rollup of the redriven pane"));
        assert_eq!(first.intersections.len(), 2);
    }

    #[test]
    fn a_redriven_reading_whose_window_the_merge_finalised_is_final_and_nothing_else() {
        let cfg = EngineConfig::default();
        let marks = MergeMarks {
            closed_ms: Some(T0 + 900_000),
            compacted_ms: Some(T0 + 900_000),
        };
        let mut f = RedriveFold::new(
            &cfg,
            &"s".into(),
            None,
            marks,
            redrive_id(&"s".into(), "1", "3"),
        );
        assert_eq!(f.apply(&reading(1, 0, 10, 4), None), RedriveOutcome::Final);
        assert_eq!(
            f.apply(&reading(1, 0, 910, 4), None),
            RedriveOutcome::Applied
        );
        assert_eq!(
            f.apply(&reading(1, 0, 910, 4), None),
            RedriveOutcome::Duplicate
        );
        assert_eq!(f.reject(), RedriveOutcome::Rejected);
        assert_eq!(
            f.apply(&reading(1, 0, 90_000, 4), Some(T0)),
            RedriveOutcome::Future
        );
        let (c, mark) = f.commit(2);
        assert_eq!(
            mark.counts,
            RedriveCounts {
                applied: 1,
                duplicate: 1,
                final_: 1,
                rejected: 1,
                future: 1,
                missing: 2,
            }
        );
        assert_eq!(mark.counts.records(), 7);
        assert_eq!(c.deltas.len(), 1);
        assert_eq!(c.closed_ms, Some(T0 + 900_000));
        assert_eq!(c.meta.counters.late, 1);
        assert_eq!(c.meta.counters.records(), 5);
    }

    #[test]
    fn a_failure_record_redriven_again_counts_only_duplicates() {
        let counts = RedriveCounts {
            applied: 3,
            duplicate: 1,
            final_: 2,
            rejected: 1,
            future: 0,
            missing: 4,
        };
        assert_eq!(
            counts.as_duplicates(),
            RedriveCounts {
                duplicate: 7,
                missing: 4,
                ..RedriveCounts::default()
            }
        );
    }

    proptest! {
        #[test]
        fn redrive_ids_always_carry_the_redrive_bit_and_differ_by_range(
            shard in "[a-z0-9-]{1,20}",
            a in 1u128..u128::MAX / 2,
            n in 1u128..10_000,
        ) {
            let (s, e) = (a.to_string(), (a + n).to_string());
            let shard = crate::ShardId::new(shard);
            let id = redrive_id(&shard, &s, &e);
            prop_assert!(id & REDRIVE_COMMIT_BIT != 0);
            prop_assert_eq!(id, redrive_id(&shard, &s, &e));
            prop_assert_ne!(id, redrive_id(&shard, &s, &(a + n + 1).to_string()));
        }

        #[test]
        fn a_failed_batch_redriven_gives_the_results_of_a_run_without_the_failure(
            rs in prop::collection::vec((0u8..5, 0u8..4, 0i64..30), 2..80),
            cut in 0usize..80,
            len in 1usize..40,
        ) {
            let cfg = EngineConfig::default();
            // In time order, so that the live fold calls nothing late in either run; a light's
            // readings a minute apart (none too frequent), a producer's duplicates identical.
            let mut rs: Vec<Reading> = rs
                .into_iter()
                .map(|(i, l, t)| reading(i, l, t * 60, u32::from(i) + u32::from(l) + t as u32))
                .collect();
            rs.sort_by_key(|r| r.ts_ms);
            let cut = cut.min(rs.len() - 1);
            let end = (cut + len).min(rs.len());
            // Without the failure: three batches.
            let a = live(&cfg, None, 1, &rs[..cut]);
            let b = live(&cfg, Some(a.meta.clone()), 1 + cut as u128, &rs[cut..end]);
            let c = live(&cfg, Some(b.meta.clone()), 1 + end as u128, &rs[end..]);
            let clean: Vec<Delta> = [&a, &b, &c].iter().flat_map(|x| x.deltas.clone()).collect();
            // With it: the middle batch given up on, the shard moved on past it, then the
            // middle batch redriven.
            let a2 = live(&cfg, None, 1, &rs[..cut]);
            let c2 = live(&cfg, Some(a2.meta.clone()), 1 + end as u128, &rs[end..]);
            let mut f = RedriveFold::new(&cfg, &"s".into(), Some(c2.meta.clone()), MergeMarks::default(), 7);
            for r in &rs[cut..end] {
                f.apply(r, None);
            }
            let (d, _) = f.commit(0);
            let redriven: Vec<Delta> = [&a2, &c2, &d].iter().flat_map(|x| x.deltas.clone()).collect();
            let totals = |rs: Vec<Rollup>| rs.into_iter().map(|r| (r.window, r.intersections)).collect::<Vec<_>>();
            prop_assert_eq!(
                totals(rollups(&cfg, &c.meta, &clean)),
                totals(rollups(&cfg, &d.meta, &redriven))
            );
            prop_assert_eq!(c.meta.counters, d.meta.counters);
        }
    }
}
