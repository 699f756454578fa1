//! Benchmarks of the ingest path and of the merge at city scale (10,000 intersections).
//!
//! `cargo bench -p traffic-core --bench engine` prints, per benchmark, the time and the throughput; the
//! `baseline` group is plain serde_json decoding of the same records into an owned struct,
//! measured in the same run so that ratios compare like with like. Before the benchmarks it
//! prints the sizes of the state's items: a commit's delta, a pane's and a day's rollup at
//! 10,000 and 100,000 intersections, and the shard meta.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use traffic_core::ShardId;
use traffic_core::delta::Delta;
use traffic_core::merge_run::{Levels, RunInput, run};
use traffic_core::pane::{BatchFold, MergeMarks};
use traffic_core::rollup::Rollup;
use traffic_core::sequence::SequenceNumber;
use traffic_core::window::WindowKey;
use traffic_core::{EngineConfig, Reading};

const INTERSECTIONS: usize = 10_000;
const SHARDS: usize = 4;
/// 2026-01-05T00:00:00Z: a day's windows start here.
const START_MS: i64 = 1_767_571_200_000;

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
        r#"{{"intersection_id":"I-{i:06}","light":{light},"ts":"{ts}","vehicles":{v},"mean_speed_kmh":{speed:.1},"lamps":{{"red":"ok","yellow":"ok","green":"{green}"}},"lat":41.8531,"lon":12.6042}}"#
    )
}

fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One shard's records for minutes `from..to` of a city of `n` intersections: every light of
/// the shard's intersections once a minute (intersections are dealt to shards round robin, as
/// hashing spreads them).
fn shard_lines(n: usize, shard: usize, from: i64, to: i64) -> Vec<String> {
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ shard as u64 ^ (from as u64) << 20;
    let mut out = Vec::new();
    for m in from..to {
        for i in (shard..n).step_by(SHARDS) {
            for l in 0..4 {
                out.push(line(i, l, m, rng(&mut x)));
            }
        }
    }
    out
}

/// The deltas one shard's batch of `lines` writes (one commit).
fn fold(cfg: &EngineConfig, shard: usize, lines: &[String]) -> Vec<Delta> {
    let shard_id = format!("shardId-{shard:012}");
    let mut f = BatchFold::new(
        cfg,
        &ShardId::from(shard_id.as_str()),
        None,
        MergeMarks::default(),
    );
    for (n, l) in lines.iter().enumerate() {
        if let Ok(r) = Reading::parse(l.as_bytes()) {
            f.apply(&SequenceNumber::from_u64(n as u64 + 1), &r, None);
        }
    }
    f.commit().deltas
}

/// The rollup of a full 15-minute pane of a city of `n` intersections starting at `minute`.
fn pane_rollup(cfg: &EngineConfig, n: usize, minute: i64) -> Rollup {
    let pane = cfg.pane().window_of(START_MS + minute * 60_000);
    let deltas: Vec<Delta> = (0..SHARDS)
        .flat_map(|s| fold(cfg, s, &shard_lines(n, s, minute, minute + 15)))
        .collect();
    Rollup::compact(pane, &deltas, cfg.min_reading_interval_ms, cfg.digest_size)
}

fn postcard_len<T: serde::Serialize>(v: &T) -> usize {
    postcard::to_allocvec(v).map(|b| b.len()).unwrap_or(0)
}

/// Prints the sizes of the state's items.
fn sizes(cfg: &EngineConfig) {
    for n in [INTERSECTIONS, 100_000] {
        // A batch: one minute of one shard (the template's 60 s batching window).
        let batch = shard_lines(n, 0, 0, 1);
        let deltas = fold(cfg, 0, &batch);
        let bytes: usize = deltas.iter().map(|d| d.encode().len()).sum();
        let largest = deltas.iter().map(|d| d.encode().len()).max().unwrap_or(0);
        eprintln!(
            "delta: a minute of one of {SHARDS} shards at {n} intersections ({} readings) is {} parts, {bytes} bytes ({:.2} bytes a reading), largest part {largest} bytes",
            batch.len(),
            deltas.len(),
            bytes as f64 / batch.len() as f64,
        );
        let pane = pane_rollup(cfg, n, 0);
        let mut day = Rollup::new(cfg.longest().window_of(START_MS));
        for _ in 0..24 {
            // Every hour of the day holds the same readings' totals as four such panes.
            for _ in 0..4 {
                day.add(&pane);
            }
        }
        eprintln!(
            "rollup at {n} intersections: a pane {} bytes, a day {} bytes ({:.0} bytes an intersection): {} parts of at most 200 KB",
            postcard_len(&pane),
            postcard_len(&day),
            postcard_len(&day) as f64 / n as f64,
            postcard_len(&day).div_ceil(200 * 1024),
        );
    }
    let mut f = BatchFold::new(
        cfg,
        &ShardId::from("shardId-000000000000"),
        None,
        MergeMarks::default(),
    );
    for (n, l) in shard_lines(INTERSECTIONS, 0, 0, 1).iter().enumerate() {
        if let Ok(r) = Reading::parse(l.as_bytes()) {
            f.apply(
                &SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
                    .unwrap_or_else(|_| SequenceNumber::from_u64(n as u64)),
                &r,
                None,
            );
        }
    }
    let meta = f.commit().meta;
    eprintln!(
        "shard meta: {} bytes with {} delta references",
        postcard_len(&meta),
        meta.deltas.len()
    );
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
    sizes(&cfg);
    // A Kinesis batch at its largest: 10,000 records of one shard (2,500 intersections).
    let lines: Vec<String> = shard_lines(INTERSECTIONS, 0, 0, 1)
        .into_iter()
        .cycle()
        .take(10_000)
        .collect();
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
        "decode, validate, fold a batch into deltas, commit, encode the deltas",
        |b| {
            b.iter(|| {
                let deltas = fold(&cfg, 0, &lines);
                let encoded: usize = deltas.iter().map(|d| d.encode().len()).sum();
                black_box(encoded)
            })
        },
    );
    // The same batch at the end of a pane: a commit folds against the shard's small meta
    // alone, whatever the pane holds already, so this is the fold above at minute 14.
    let minute15: Vec<String> = shard_lines(INTERSECTIONS, 0, 14, 15);
    g.throughput(Throughput::Elements(minute15.len() as u64));
    g.bench_function("the 15th minute of a pane: fold into deltas, encode", |b| {
        b.iter(|| {
            let deltas = fold(&cfg, 0, &minute15);
            let encoded: usize = deltas.iter().map(|d| d.encode().len()).sum();
            black_box(encoded)
        })
    });
    g.finish();
}

fn merge(c: &mut Criterion) {
    let cfg = EngineConfig::default();
    let levels = Levels::new(cfg.windows());
    let pane = pane_rollup(&cfg, INTERSECTIONS, 0);
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    g.throughput(Throughput::Elements(INTERSECTIONS as u64));

    // Compaction of a closed pane: all four shards' deltas of 15 minutes.
    let window15 = cfg.pane().window_of(START_MS);
    let deltas: Vec<Delta> = (0..SHARDS)
        .flat_map(|s| fold(&cfg, s, &shard_lines(INTERSECTIONS, s, 0, 15)))
        .collect();
    g.bench_function(
        BenchmarkId::new("compact a 15m pane's deltas", INTERSECTIONS),
        |b| {
            b.iter(|| {
                black_box(Rollup::compact(
                    window15,
                    &deltas,
                    cfg.min_reading_interval_ms,
                    cfg.digest_size,
                ))
            })
        },
    );

    // One scheduled run at 23:50 with provisional results of every length: the open day is
    // its day-so-far prefix (23 hours), the open hour's prefix (two panes) and the open pane's
    // deltas (five minutes); all three windows' results are computed.
    let at = |h: i64, q: i64| -> Rollup {
        let mut r = pane.clone();
        r.window.start_ms = START_MS + h * 3_600_000 + q * 900_000;
        r.through_ms = r.window.end_ms();
        r
    };
    let mut day_prefix = Rollup::new(cfg.longest().window_of(START_MS));
    for h in 0..23 {
        for q in 0..4 {
            day_prefix.add(&at(h, q));
        }
    }
    day_prefix.through_ms = START_MS + 23 * 3_600_000;
    let hour = cfg.windows()[1].window_of(START_MS + 23 * 3_600_000);
    let mut hour_prefix = Rollup::new(hour);
    hour_prefix.add(&at(23, 0));
    hour_prefix.add(&at(23, 1));
    let open_pane_start = START_MS + 23 * 3_600_000 + 2 * 900_000;
    let open: Vec<Delta> = (0..SHARDS)
        .flat_map(|s| {
            let m0 = (open_pane_start - START_MS) / 60_000;
            fold(&cfg, s, &shard_lines(INTERSECTIONS, s, m0, m0 + 5))
        })
        .collect();
    let prefixes: BTreeMap<WindowKey, Rollup> = [
        (day_prefix.window, day_prefix.clone()),
        (hour, hour_prefix.clone()),
    ]
    .into_iter()
    .collect();
    g.bench_function(
        BenchmarkId::new(
            "a run: 15m, 1h and 24h results from rollups and open deltas",
            INTERSECTIONS,
        ),
        |b| {
            b.iter(|| {
                let out = run(
                    &levels,
                    RunInput {
                        compacted_ms: Some(open_pane_start),
                        closed_ms: open_pane_start,
                        panes: BTreeMap::from([(open_pane_start, open.clone())]),
                        prefixes: prefixes.clone(),
                        provisional: cfg.windows().iter().copied().collect(),
                        min_interval_ms: cfg.min_reading_interval_ms,
                        digest_size: cfg.digest_size,
                    },
                );
                let results: Vec<_> = out
                    .provisional
                    .values()
                    .map(|r| r.finish(false, cfg.top_k))
                    .collect();
                black_box(results)
            })
        },
    );
    g.finish();
}

criterion_group!(benches, ingest, merge);
criterion_main!(benches);
