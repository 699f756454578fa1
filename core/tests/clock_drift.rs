//! A clock a few minutes fast changes nobody else's results.
//!
//! A city of intersections reporting every minute, sharded by intersection, folded batch by
//! batch into each shard's state ([`BatchFold`]) with the merge's closed mark moved between
//! batches to the global watermark ([`global_watermark`]), as `ingest` and `merge` do. One
//! intersection's clock runs up to the allowed skew ahead of its arrivals, the others drift a
//! little either way; every reading arrives a few seconds after its true time.
//!
//! The law: no reading stamped within the allowed lateness of its own arrival is late.

use proptest::prelude::*;
use std::collections::BTreeSet;
use traffic_core::lineage::{ShardInfo, global_watermark};
use traffic_core::pane::{BatchFold, MergeMarks, Outcome, ShardMeta};
use traffic_core::reading::Lamps;
use traffic_core::{EngineConfig, IntersectionId, LightIndex, Reading, SequenceNumber};

const T0: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z, a pane start
const MIN: i64 = 60_000;

/// One record of the stream: which shard, the reading, when it arrived.
struct Record {
    shard: usize,
    reading: Reading,
    arrival_ms: i64,
}

/// `n` intersections reporting each minute for `minutes`: intersection 0's clock `fast_ms`
/// ahead, intersection `i`'s `drift_ms[i]` off (the first entry unused), each reading arriving
/// `delay_ms` (cycled) after its true time; in arrival order.
fn city(
    n: usize,
    minutes: i64,
    shards: usize,
    fast_ms: i64,
    drift_ms: &[i64],
    delay_ms: &[i64],
) -> Vec<Record> {
    let mut out = Vec::new();
    let mut k = 0;
    for m in 0..minutes {
        for i in 0..n {
            let t = T0 + m * MIN + (i as i64) * 1_000;
            let drift = if i == 0 {
                fast_ms
            } else {
                drift_ms[i % drift_ms.len()]
            };
            k += 1;
            let id = IntersectionId::parse(&format!("I-{i:02}")).unwrap_or_else(|e| panic!("{e}"));
            out.push(Record {
                shard: i % shards,
                reading: Reading {
                    intersection_id: id,
                    light: LightIndex::new(m % 4).unwrap_or_else(|e| panic!("{e}")),
                    ts_ms: t + drift,
                    vehicles: 3,
                    mean_speed_kmh: 30.0,
                    lamps: Lamps::default(),
                    position: None,
                },
                arrival_ms: t + delay_ms[k % delay_ms.len()],
            });
        }
    }
    out.sort_by_key(|r| r.arrival_ms);
    out
}

/// Runs the stream in batches of `batch` records (each shard's share folded and committed),
/// the merge moving its closed mark after each; the outcome of every record, in stream order.
fn run(cfg: &EngineConfig, records: &[Record], shards: usize, batch: usize) -> Vec<Outcome> {
    let list: Vec<ShardInfo> = (0..shards)
        .map(|s| ShardInfo {
            id: format!("s{s}").into(),
            parent: None,
            adjacent_parent: None,
            closed: false,
        })
        .collect();
    let mut metas: Vec<Option<ShardMeta>> = vec![None; shards];
    let mut marks = MergeMarks::default();
    let mut outcomes = vec![Outcome::Rejected; records.len()];
    let mut seq = 0u128;
    let indexed: Vec<(usize, &Record)> = records.iter().enumerate().collect();
    for chunk in indexed.chunks(batch) {
        for (s, meta) in metas.iter_mut().enumerate() {
            let mut fold = BatchFold::new(cfg, &format!("s{s}").into(), meta.clone(), marks);
            for (i, r) in chunk.iter().filter(|(_, r)| r.shard == s) {
                seq += 1;
                outcomes[*i] = fold.apply(
                    &SequenceNumber::from_u128(seq),
                    &r.reading,
                    Some(r.arrival_ms),
                );
            }
            *meta = Some(fold.commit().meta);
        }
        let known: Vec<ShardMeta> = metas.iter().flatten().cloned().collect();
        let w = global_watermark(
            &known,
            Some(&list),
            &BTreeSet::new(),
            cfg.allowed_lateness_ms,
        );
        marks.closed_ms = marks.closed_ms.max(w);
    }
    outcomes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_reading_stamped_within_the_lateness_of_its_arrival_is_late_whatever_one_clock_does(
        fast_s in 0i64..=300,
        drift_s in prop::collection::vec(-60i64..=60, 1..6),
        delay_s in prop::collection::vec(0i64..=10, 1..8),
        shards in 1usize..=4,
        batch in 1usize..40,
    ) {
        let cfg = EngineConfig::default();
        let drift: Vec<i64> = drift_s.iter().map(|s| s * 1000).collect();
        let delay: Vec<i64> = delay_s.iter().map(|s| s * 1000).collect();
        let records = city(12, 40, shards, fast_s * 1000, &drift, &delay);
        let outcomes = run(&cfg, &records, shards, batch);
        for (r, o) in records.iter().zip(&outcomes) {
            let ts = r.reading.ts_ms;
            // Within the skew of its arrival (so not future) and within the lateness of it.
            prop_assert!(ts <= r.arrival_ms + cfg.max_clock_skew_ms);
            if ts >= r.arrival_ms - cfg.allowed_lateness_ms {
                prop_assert_ne!(
                    *o,
                    Outcome::Late,
                    "{} stamped {} s after its arrival, fast clock {} s, {} shards",
                    r.reading.intersection_id,
                    (ts - r.arrival_ms) / 1000,
                    fast_s,
                    shards
                );
            }
        }
    }
}

#[test]
fn a_clock_four_minutes_fast_makes_no_other_intersections_reading_late() {
    let cfg = EngineConfig::default();
    for shards in [1, 4] {
        let records = city(12, 60, shards, 4 * MIN, &[0], &[2_000]);
        let outcomes = run(&cfg, &records, shards, 10);
        let late = outcomes.iter().filter(|o| **o == Outcome::Late).count();
        assert_eq!(late, 0, "{shards} shards: {late} readings late");
        assert!(outcomes.iter().all(|o| *o == Outcome::Accepted));
    }
}
