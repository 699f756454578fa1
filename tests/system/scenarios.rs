//! Fault scenarios through `traffic replay` (the same handlers, stream and merge as every other
//! mode), each against the fault-free run of the same readings: what the fault should change,
//! and nothing else. Each test prints its row of a table of the fault scenarios
//! (`cargo nextest run -p traffic --test system --no-capture scenarios:: 2>&1 | grep '^| '`).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traffic_app::local::{LocalOptions, RunSettings, Speedup, StatusMode, TimingControl, run};
use traffic_app::replay::{ReplayOptions, ReplayOutput, replay};
use traffic_app::stop::Stop;
use traffic_core::EngineConfig;
use traffic_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use traffic_sim::{CityConfig, generate_city};

const START: &str = "2026-01-05T07:00:00Z";
const INTERSECTIONS: usize = 30;
const SEED: u64 = 11;
const HOUR: i64 = 3_600_000;

/// A city of 30 intersections and 2.5 hours of its readings (one per light per minute),
/// recorded by `traffic local` under fixed timings.
struct Recording {
    _dir: tempfile::TempDir,
    city: PathBuf,
    lines: Vec<Value>,
}

async fn recording() -> Recording {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("readings.jsonl");
    let summary = run(
        EngineConfig::default(),
        LocalOptions {
            alarms: Default::default(),
            data_dir: dir.path().join("data"),
            settings: RunSettings {
                intersections: INTERSECTIONS,
                shards: 3,
                seed: SEED,
                start_ms: parse_rfc3339_ms(START).unwrap_or_default(),
                failure_probability: 0.0,
                control: TimingControl::Fixed,
            },
            speedup: Speedup::Max,
            duration_ms: Some(5 * HOUR / 2),
            batch_size: 1000,
            merge_every: 15,
            provisional: merge::Provisional::None,
            record: Some(file.clone()),
            status: StatusMode::Off,
            listen: None,
            api_token: None,
        },
        Stop::never(),
    )
    .await
    .unwrap_or_else(|e| panic!("traffic local: {e:#}"));
    assert!(summary.completed);
    let city = generate_city(&CityConfig {
        intersections: INTERSECTIONS,
        seed: SEED,
        ..CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let city_path = dir.path().join("city.json");
    std::fs::write(&city_path, serde_json::to_vec(&city).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect::<Vec<Value>>();
    assert_eq!(lines.len(), INTERSECTIONS * 4 * 150);
    Recording {
        _dir: dir,
        city: city_path,
        lines,
    }
}

fn ts_of(line: &Value) -> i64 {
    line["ts"]
        .as_str()
        .and_then(parse_rfc3339_ms)
        .unwrap_or_else(|| panic!("no ts in {line}"))
}

fn with_ts(line: &Value, ts_ms: i64) -> Value {
    let mut l = line.clone();
    l["ts"] = Value::String(format_rfc3339_ms(ts_ms));
    l
}

/// Each line with an `arrival` field `delay_ms` after its own stamp.
fn with_arrivals(lines: &[Value], delay_ms: i64) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["arrival"] = Value::String(format_rfc3339_ms(ts_of(&l) + delay_ms));
            l
        })
        .collect()
}

async fn replay_lines(rec: &Recording, lines: &[Value]) -> ReplayOutput {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path: &Path = &dir.path().join("readings.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    replay(
        EngineConfig::default(),
        &rec.city,
        path,
        &ReplayOptions {
            alarms: Default::default(),
            shards: 3,
            batch_size: 100,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("replay: {e:#}"))
}

/// Windows whose results differ between two runs (present in one only, or different), and
/// intersections whose timings differ.
fn changed(a: &ReplayOutput, b: &ReplayOutput) -> (usize, usize) {
    fn by_key(o: &ReplayOutput) -> BTreeMap<(String, i64), &traffic_core::query::WindowResult> {
        o.windows
            .iter()
            .map(|w| ((w.length(), w.window.start_ms), w))
            .collect()
    }
    let (wa, wb) = (by_key(a), by_key(b));
    let windows = wa
        .keys()
        .chain(wb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| wa.get(*k) != wb.get(*k))
        .count();
    let ta: BTreeMap<_, _> = a.timings.iter().map(|t| (&t.intersection_id, t)).collect();
    let tb: BTreeMap<_, _> = b.timings.iter().map(|t| (&t.intersection_id, t)).collect();
    let timings = ta
        .keys()
        .chain(tb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| ta.get(*k) != tb.get(*k))
        .count();
    (windows, timings)
}

/// Prints the scenario's row and checks that the counters add up to the records delivered,
/// counted here from the lines the test put into the stream (not from the counters).
fn row(
    scenario: &str,
    delivered: &[Value],
    out: &ReplayOutput,
    against: &ReplayOutput,
    test: &str,
) -> (usize, usize) {
    let (windows, timings) = changed(out, against);
    println!(
        "| {scenario} | {} | {} | {} | {} | {} | {} | {windows} windows, {timings} timings | `{test}` |",
        out.records, out.accepted, out.late, out.future, out.rejected, out.duplicates
    );
    let delivered = delivered.len() as u64;
    assert_eq!(
        out.accepted + out.rejected + out.late + out.duplicates + out.future,
        delivered,
        "the counters add up to the records put into the stream"
    );
    assert_eq!(
        out.records, delivered,
        "the replay's own count of records put"
    );
    (windows, timings)
}

/// Three readings whose sensors' clocks ran ahead (2099, a day, six hours), at a quarter, a
/// half and three quarters of the file.
fn with_clocks_ahead(lines: &[Value]) -> Vec<Value> {
    let mut out = lines.to_vec();
    let n = lines.len();
    let ahead = [
        parse_rfc3339_ms("2099-01-01T00:00:00Z").unwrap_or_default() - ts_of(&lines[n * 3 / 4]),
        24 * HOUR,
        6 * HOUR,
    ];
    for (at, by) in [n * 3 / 4, n / 2, n / 4].into_iter().zip(ahead) {
        // Inserted after its light's own reading: a second reading of that light.
        let l = with_ts(&lines[at], ts_of(&lines[at]) + by);
        out.insert(at + 1, l);
    }
    out
}

#[tokio::test]
async fn sensors_with_clocks_ahead_are_future_and_change_nothing_else_without_arrival_times() {
    let rec = recording().await;
    let clean = replay_lines(&rec, &rec.lines).await;
    assert_eq!(clean.accepted, clean.records);
    let lines = with_clocks_ahead(&rec.lines);
    let out = replay_lines(&rec, &lines).await;
    let changed = row(
        "3 clocks ahead (2099, +1 d, +6 h), no arrival times",
        &lines,
        &out,
        &clean,
        "sensors_with_clocks_ahead_are_future_and_change_nothing_else_without_arrival_times",
    );
    assert_eq!(out.future, 3);
    assert_eq!((out.late, out.rejected, out.duplicates), (0, 0, 0));
    assert_eq!(changed, (0, 0));
}

#[tokio::test]
async fn sensors_with_clocks_ahead_are_future_by_their_records_arrival_times() {
    let rec = recording().await;
    let clean = replay_lines(&rec, &with_arrivals(&rec.lines, 2_000)).await;
    let lines = with_arrivals(&rec.lines, 2_000);
    let mut faulty = with_clocks_ahead(&rec.lines);
    // Each record arrives where it sits in the file: the outliers with their neighbours.
    for (i, l) in faulty.iter_mut().enumerate() {
        let arrival = lines[i.min(lines.len() - 1)]["arrival"].clone();
        l["arrival"] = arrival;
    }
    let out = replay_lines(&rec, &faulty).await;
    let changed = row(
        "3 clocks ahead, arrival times given",
        &faulty,
        &out,
        &clean,
        "sensors_with_clocks_ahead_are_future_by_their_records_arrival_times",
    );
    assert_eq!(out.future, 3);
    assert_eq!((out.late, out.rejected), (0, 0));
    assert_eq!(changed, (0, 0));
    // No window starts after the newest arrival plus the skew.
    let newest = lines.iter().map(|l| ts_of(l) + 2_000).max().unwrap_or(0);
    let skew = EngineConfig::default().max_clock_skew_ms;
    assert!(
        out.windows
            .iter()
            .all(|w| w.window.start_ms <= newest + skew)
    );
}

#[tokio::test]
async fn a_city_wide_jump_is_accepted_whole_without_arrival_times() {
    // Every sensor silent for three hours after the first hour, then all resume together.
    let rec = recording().await;
    let start = parse_rfc3339_ms(START).unwrap_or_default();
    let jumped: Vec<Value> = rec
        .lines
        .iter()
        .map(|l| {
            let ts = ts_of(l);
            if ts > start + HOUR {
                with_ts(l, ts + 3 * HOUR)
            } else {
                l.clone()
            }
        })
        .collect();
    // The truth: the same readings with the times they arrived.
    let truth = replay_lines(&rec, &with_arrivals(&jumped, 2_000)).await;
    assert_eq!(truth.accepted, truth.records);
    let out = replay_lines(&rec, &jumped).await;
    let changed = row(
        "city-wide jump (all silent 3 h, then all resume), no arrival times",
        &jumped,
        &out,
        &truth,
        "a_city_wide_jump_is_accepted_whole_without_arrival_times",
    );
    assert_eq!((out.future, out.late, out.rejected), (0, 0, 0));
    assert_eq!(changed, (0, 0));
}

#[tokio::test]
async fn a_sensor_at_30_hz_is_rejected_as_too_frequent_and_blocks_nothing() {
    let rec = recording().await;
    let clean = replay_lines(&rec, &rec.lines).await;
    let mut lines = rec.lines.clone();
    // Thirty readings in the second after one light's reading, in the middle of the file.
    let at = lines.len() / 2;
    let base = lines[at].clone();
    for k in (1..=30).rev() {
        let mut l = with_ts(&base, ts_of(&base) + 33 * k);
        l["vehicles"] = Value::from(k);
        lines.insert(at + 1, l);
    }
    let out = replay_lines(&rec, &lines).await;
    let changed = row(
        "one sensor at 30 Hz for a second",
        &lines,
        &out,
        &clean,
        "a_sensor_at_30_hz_is_rejected_as_too_frequent_and_blocks_nothing",
    );
    assert_eq!(out.rejected, 30, "too frequent");
    assert_eq!((out.future, out.late), (0, 0));
    assert_eq!(changed, (0, 0));
}

#[tokio::test]
async fn readings_arriving_after_their_pane_closed_are_late_and_counted() {
    // A tenth of one intersection's first-hour readings held back and delivered at the end.
    let rec = recording().await;
    let start = parse_rfc3339_ms(START).unwrap_or_default();
    let victim = rec.lines[0]["intersection_id"].clone();
    let (held, mut lines): (Vec<Value>, Vec<Value>) = rec.lines.iter().cloned().partition(|l| {
        l["intersection_id"] == victim && ts_of(l) <= start + HOUR && ts_of(l) % 600_000 == 0
    });
    assert!(!held.is_empty());
    let without = replay_lines(&rec, &lines).await;
    lines.extend(held.iter().cloned());
    let out = replay_lines(&rec, &lines).await;
    let changed = row(
        "one intersection's readings delivered 1.5 h late",
        &lines,
        &out,
        &without,
        "readings_arriving_after_their_pane_closed_are_late_and_counted",
    );
    assert_eq!(out.late, held.len() as u64);
    assert_eq!(out.accepted, without.accepted);
    assert_eq!(changed, (0, 0), "late readings change no result");
}
