//! Benchmarks of the ingest path and of the merge at city scale (10,000 intersections).
//!
//! `cargo bench --bench engine` prints, per benchmark, the time and the throughput; the
//! `baseline` group is plain serde_json decoding of the same records into an owned struct,
//! measured in the same run so that ratios compare like with like. Before the benchmarks it
//! prints the size of the largest delta part of a full pane and of its rollup.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use traffic_core::delta::Delta;
use traffic_core::pane::{BatchFold, MergeMarks};
use traffic_core::rollup::Rollup;
use traffic_core::sequence::SequenceNumber;
use traffic_core::{EngineConfig, Reading};

const INTERSECTIONS: usize = 10_000;
const SHARDS: usize = 4;
const START_MS: i64 = 1_767_600_000_000;

/// A reading line shaped like the contract's example (about 177 bytes).
fn line(i: usize, light: usize, minute: i64, salt: u64) -> String {
    let v = (salt % 37) as u32;
    let speed = 20.0 + (salt % 400) as f64 / 10.0;
    let ts = traffic_core::time::format_rfc3339_ms(START_MS + minute * 60_000 + 5_000);
    let green = if salt.is_multiple_of(997) {
        "broken"
    } else {
        "ok"
    };
    format!(
        r#"{{"intersection_id":"I-{i:05}","light":{light},"ts":"{ts}","vehicles":{v},"mean_speed_kmh":{speed:.1},"lamps":{{"red":"ok","yellow":"ok","green":"{green}"}},"lat":41.8531,"lon":12.6042}}"#
    )
}

fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One shard's records for `minutes` minutes: every light of the shard's intersections once a
/// minute (intersections are dealt to shards round robin, as hashing spreads them).
fn shard_lines(shard: usize, minutes: i64) -> Vec<String> {
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ shard as u64;
    let mut out = Vec::new();
    for m in 0..minutes {
        for i in (shard..INTERSECTIONS).step_by(SHARDS) {
            for l in 0..4 {
                out.push(line(i, l, m, rng(&mut x)));
            }
        }
    }
    out
}

/// The deltas of one full 15-minute pane of one shard, committed a minute at a time.
fn full_pane(cfg: &EngineConfig, shard: usize) -> Vec<Delta> {
    let shard_id = format!("shardId-{shard:012}");
    let mut meta = None;
    let mut out = Vec::new();
    let lines = shard_lines(shard, 15);
    for (m, minute) in lines.chunks(lines.len() / 15).enumerate() {
        let mut fold = BatchFold::new(cfg, &shard_id, meta.take(), MergeMarks::default());
        for (n, l) in minute.iter().enumerate() {
            if let Ok(r) = Reading::parse(l.as_bytes()) {
                let seq = SequenceNumber::from_u128((m * minute.len() + n) as u128 + 1);
                fold.apply(&seq, &r, None);
            }
        }
        let c = fold.commit();
        meta = Some(c.meta);
        out.extend(c.deltas);
    }
    out
}

/// Encoded bytes of a commit's deltas.
fn encoded(deltas: &[Delta]) -> usize {
    deltas.iter().map(|d| d.encode().len()).sum()
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct PlainLamps {
    red: String,
    yellow: String,
    green: String,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct PlainReading {
    intersection_id: String,
    light: u8,
    ts: String,
    vehicles: u32,
    mean_speed_kmh: f64,
    lamps: PlainLamps,
    lat: Option<f64>,
    lon: Option<f64>,
}

fn ingest(c: &mut Criterion) {
    let cfg = EngineConfig::default();
    // A Kinesis batch at its largest: 10,000 records of one shard (2,500 intersections).
    let lines: Vec<String> = shard_lines(0, 1).into_iter().cycle().take(10_000).collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    eprintln!(
        "record size: {:.0} bytes on average",
        bytes as f64 / lines.len() as f64
    );
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("baseline: serde_json into an owned struct", |b| {
        b.iter(|| {
            for l in &lines {
                let r: Result<PlainReading, _> = serde_json::from_str(l);
                black_box(r.ok());
            }
        })
    });
    g.bench_function("decode and validate", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(Reading::parse(l.as_bytes()).ok());
            }
        })
    });
    g.bench_function(
        "decode, validate, fold and commit a batch, encode the deltas",
        |b| {
            b.iter(|| {
                let mut fold =
                    BatchFold::new(&cfg, "shardId-000000000000", None, MergeMarks::default());
                for (n, l) in lines.iter().enumerate() {
                    if let Ok(r) = Reading::parse(l.as_bytes()) {
                        fold.apply(&SequenceNumber::from_u128(n as u128 + 1), &r, None);
                    }
                }
                black_box(encoded(&fold.commit().deltas))
            })
        },
    );
    // The same, on a shard whose pane already holds 14 minutes (its meta lists their deltas).
    let loaded = {
        let mut fold = BatchFold::new(&cfg, "shardId-000000000000", None, MergeMarks::default());
        for (n, l) in shard_lines(0, 14).iter().enumerate() {
            if let Ok(r) = Reading::parse(l.as_bytes()) {
                fold.apply(&SequenceNumber::from_u128(n as u128 + 1), &r, None);
            }
        }
        fold.commit().meta
    };
    let minute15: Vec<String> = shard_lines(0, 15).split_off(14 * 2_500 * 4);
    g.throughput(Throughput::Elements(minute15.len() as u64));
    g.bench_function(
        "fold a minute into a 14-minute pane, then encode the deltas",
        |b| {
            b.iter(|| {
                let mut fold = BatchFold::new(
                    &cfg,
                    "shardId-000000000000",
                    Some(loaded.clone()),
                    MergeMarks::default(),
                );
                let base = 1_000_000u128;
                for (n, l) in minute15.iter().enumerate() {
                    if let Ok(r) = Reading::parse(l.as_bytes()) {
                        fold.apply(&SequenceNumber::from_u128(base + n as u128), &r, None);
                    }
                }
                black_box(encoded(&fold.commit().deltas))
            })
        },
    );
    g.finish();
}

fn merge(c: &mut Criterion) {
    let cfg = EngineConfig::default();
    let pane: Vec<Delta> = (0..SHARDS).flat_map(|s| full_pane(&cfg, s)).collect();
    let sizes: Vec<usize> = pane.iter().map(|d| d.encode().len()).collect();
    let largest = sizes.iter().max().copied().unwrap_or(0);
    let window15 = cfg.pane().window_of(START_MS);
    let compact = || {
        Rollup::compact(
            window15,
            &pane,
            cfg.min_reading_interval_ms,
            cfg.digest_size,
        )
    };
    let rollup = compact();
    eprintln!(
        "state: a full 15-minute pane of {INTERSECTIONS} intersections on {SHARDS} shards is {} deltas, {} bytes in all; largest delta part {} bytes ({:.1} % of DynamoDB's 400 KB); its rollup {} bytes (postcard)",
        pane.len(),
        sizes.iter().sum::<usize>(),
        largest,
        largest as f64 / 4096.0,
        postcard::to_allocvec(&rollup).map(|v| v.len()).unwrap_or(0)
    );
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    g.throughput(Throughput::Elements(INTERSECTIONS as u64));
    g.bench_function(
        BenchmarkId::new("15m window: compact the deltas", INTERSECTIONS),
        |b| b.iter(|| black_box(compact().finish(true, cfg.top_k))),
    );
    // An hour from its four quarters' rollups.
    let hour = cfg.windows()[1].window_of(START_MS);
    g.bench_function(
        BenchmarkId::new("1h window from four rollups", INTERSECTIONS),
        |b| {
            b.iter(|| {
                let mut acc = Rollup::new(hour);
                for _ in 0..4 {
                    acc.add(&rollup);
                }
                black_box(acc.finish(true, cfg.top_k))
            })
        },
    );
    g.finish();
}

criterion_group!(benches, ingest, merge);
criterion_main!(benches);
