//! `traffic replay` on the sample files, against results worked out by hand
//! (`samples/README.md` shows the arithmetic).

use std::path::{Path, PathBuf};
use traffic_app::replay::{ReplayOptions, ReplayOutput, replay};
use traffic_core::EngineConfig;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

async fn run(readings: &Path, shards: usize, batch_size: usize) -> ReplayOutput {
    replay(
        EngineConfig::default(),
        &samples().join("city.json"),
        readings,
        &ReplayOptions {
            shards,
            batch_size,
            alarms: Default::default(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("replay: {e:#}"))
}

fn top(out: &ReplayOutput, i: usize) -> Vec<(String, f64)> {
    out.windows[i]
        .top
        .iter()
        .map(|e| {
            (
                e.intersection_id.to_string(),
                (e.mean_speed_kmh * 1e6).round() / 1e6,
            )
        })
        .collect()
}

fn above(out: &ReplayOutput, i: usize) -> Vec<(String, f64)> {
    out.windows[i]
        .above_median
        .iter()
        .map(|e| (e.intersection_id.to_string(), e.median_vehicles))
        .collect()
}

fn s(v: &[(&str, f64)]) -> Vec<(String, f64)> {
    v.iter().map(|(a, b)| (a.to_string(), *b)).collect()
}

#[tokio::test]
async fn the_sample_replay_gives_the_results_worked_out_by_hand() {
    let out = run(&samples().join("readings.jsonl"), 4, 100).await;
    let windows: Vec<(String, String, String, u64)> = out
        .windows
        .iter()
        .map(|w| (w.length(), w.start(), w.end(), w.readings))
        .collect();
    let windows: Vec<(&str, &str, &str, u64)> = windows
        .iter()
        .map(|(l, s, e, n)| (l.as_str(), s.as_str(), e.as_str(), *n))
        .collect();
    assert_eq!(
        windows,
        vec![
            ("15m", "2026-01-05T08:00:00Z", "2026-01-05T08:15:00Z", 6),
            ("15m", "2026-01-05T08:15:00Z", "2026-01-05T08:30:00Z", 3),
            ("1h", "2026-01-05T08:00:00Z", "2026-01-05T09:00:00Z", 9),
            ("24h", "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", 9),
        ]
    );
    assert!(out.windows.iter().all(|w| w.closed));

    // 08:00–08:15. I-0001: (10·40 + 30·60)/40 = 55. I-0002: only the reading with vehicles
    // counts, 50. I-0003: (5·70 + 5·30)/10 = 50, after I-0002 on the tie.
    assert_eq!(
        top(&out, 0),
        s(&[("I-0001", 55.0), ("I-0002", 50.0), ("I-0003", 50.0)])
    );
    // Counts 10,30 | 20,0 | 5,5: medians 20, 10, 5; all six sorted 0,5,5,10,20,30 → 7.5.
    assert_eq!(out.windows[0].global_median_vehicles, 7.5);
    assert_eq!(above(&out, 0), s(&[("I-0001", 20.0), ("I-0002", 10.0)]));

    // 08:15–08:30 (the 08:14 reading came after the watermark passed 08:15: late).
    // I-0001: (8·45 + 6·30)/14 = 38.571429; I-0003: 20. Counts 8,6 | 2: global median 6.
    assert_eq!(top(&out, 1), s(&[("I-0001", 38.571429), ("I-0003", 20.0)]));
    assert_eq!(out.windows[1].global_median_vehicles, 6.0);
    assert_eq!(above(&out, 1), s(&[("I-0001", 7.0)]));

    // The hour and the day hold the same nine readings. I-0001: 2740/54 = 50.740741;
    // I-0003: 540/12 = 45. Medians: I-0001 of 6,8,10,30 = 9; I-0002 10; I-0003 of 2,5,5 = 5;
    // all nine 0,2,5,5,6,8,10,20,30 → 6.
    for i in [2, 3] {
        assert_eq!(
            top(&out, i),
            s(&[("I-0001", 50.740741), ("I-0002", 50.0), ("I-0003", 45.0)])
        );
        assert_eq!(out.windows[i].global_median_vehicles, 6.0);
        assert_eq!(above(&out, i), s(&[("I-0002", 10.0), ("I-0001", 9.0)]));
    }

    // Webster on 08:15–08:30: I-0001 lights 0 and 2 counted 8 and 6 → y = 32/1800 and 0;
    // C = 17/(1 − 0.0178) = 17.3 → 30 s; the idle phase gets the minimum 5 s, the other
    // 22 − 5 = 17 s; reds 30 − 17 − 4 = 9 and 30 − 5 − 4 = 21. I-0003 likewise; I-0002 had no
    // readings then and keeps its timings.
    let timings: Vec<_> = out
        .timings
        .iter()
        .map(|t| {
            let p: Vec<_> = t.phases.iter().map(|p| (p.green_s, p.red_s)).collect();
            (t.intersection_id.as_str(), t.cycle_s, p)
        })
        .collect();
    assert_eq!(
        timings,
        vec![
            ("I-0001", 30.0, vec![(17.0, 9.0), (5.0, 21.0)]),
            ("I-0003", 30.0, vec![(17.0, 9.0), (5.0, 21.0)]),
        ]
    );

    // One alarm: I-0003's green lamp, first broken at 08:02, still broken at 08:16:30.
    let alarms: Vec<_> = out
        .alarms
        .iter()
        .map(|a| {
            (
                a.intersection_id.as_str(),
                a.light,
                a.lamp.as_str(),
                a.ts.as_str(),
                a.lat,
                a.lon,
            )
        })
        .collect();
    assert_eq!(
        alarms,
        vec![(
            "I-0003",
            0,
            "green",
            "2026-01-05T08:02:00Z",
            Some(41.87),
            Some(12.62)
        )]
    );

    // A malformed line and an unknown intersection; one late; one duplicate.
    assert_eq!((out.rejected, out.late, out.duplicates), (2, 1, 1));
}

#[tokio::test]
async fn shards_and_batch_sizes_do_not_change_the_results() {
    let file = samples().join("readings.jsonl");
    let reference = run(&file, 4, 100).await;
    for (shards, batch) in [(1, 1), (1, 100), (2, 3), (8, 2)] {
        assert_eq!(
            run(&file, shards, batch).await,
            reference,
            "{shards} shards, batches of {batch}"
        );
    }
}

#[tokio::test]
async fn replaying_every_line_twice_changes_no_result() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(samples().join("readings.jsonl")).unwrap_or_default();
    let doubled = dir.path().join("doubled.jsonl");
    std::fs::write(&doubled, format!("{text}{text}")).unwrap_or_else(|e| panic!("{e}"));
    let once = run(&samples().join("readings.jsonl"), 4, 5).await;
    let twice = run(&doubled, 4, 5).await;
    assert_eq!(twice.windows, once.windows);
    assert_eq!(twice.timings, once.timings);
    assert_eq!(twice.alarms, once.alarms);
}

#[tokio::test]
async fn no_line_of_the_file_can_crash_the_replay() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let nasty = dir.path().join("nasty.jsonl");
    let mut bytes: Vec<u8> = Vec::new();
    for line in [
        &b"\xff\xfe\x00garbage"[..],
        b"{}",
        b"[1,2,3]",
        b"null",
        br#"{"intersection_id":"I-0001","light":9,"ts":"2026-01-05T08:00:00Z","vehicles":1,"mean_speed_kmh":1,"lamps":{"red":"ok","yellow":"ok","green":"ok"}}"#,
        br#"{"intersection_id":"I-0001","light":0,"ts":"2026-01-05T08:00:00Z","vehicles":1e99,"mean_speed_kmh":1,"lamps":{"red":"ok","yellow":"ok","green":"ok"}}"#,
        br#"{"intersection_id":"I-0001","light":0,"ts":"2026-01-05T08:00:00Z","vehicles":3,"mean_speed_kmh":NaN,"lamps":{"red":"ok","yellow":"ok","green":"ok"}}"#,
        br#"{"intersection_id":"I-0001","light":0,"ts":"+275760-09-13T00:00:00Z","vehicles":3,"mean_speed_kmh":3,"lamps":{"red":"ok","yellow":"ok","green":"ok"}}"#,
        br#"{"intersection_id":"I-0001","light":0,"ts":"2026-01-05T08:00:00Z","vehicles":3,"mean_speed_kmh":30,"lamps":{"red":"ok","yellow":"ok","green":"ok"}}"#,
    ] {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(&nasty, bytes).unwrap_or_else(|e| panic!("{e}"));
    let out = run(&nasty, 2, 3).await;
    assert_eq!(out.rejected, 8);
    assert_eq!(
        out.windows.iter().map(|w| w.readings).collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
}

#[test]
fn the_command_prints_one_json_document() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_traffic"))
        .args(["replay", "--city"])
        .arg(samples().join("city.json"))
        .arg(samples().join("readings.jsonl"))
        .output()
        .unwrap_or_else(|e| panic!("running traffic: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}"));
    assert_eq!(doc["windows"].as_array().map(Vec::len), Some(4));
    assert_eq!(doc["rejected"], 2);
}

/// A red lamp of I-0001's light 0 broken at 08:00, ok at 08:01, broken again at 08:03.
fn flapping_lamp(dir: &Path) -> PathBuf {
    let line = |ts: &str, red: &str| {
        format!(
            r#"{{"intersection_id":"I-0001","light":0,"ts":"2026-01-05T08:{ts}:00Z","vehicles":10,"mean_speed_kmh":40,"lamps":{{"red":"{red}","yellow":"ok","green":"ok"}}}}"#
        )
    };
    let path = dir.join("flapping.jsonl");
    let text = [line("00", "broken"), line("01", "ok"), line("03", "broken")].join("\n");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

async fn held_down_under(hold_down: Option<&str>) -> Vec<bool> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = traffic_functions::Config::from_lookup(|k| {
        (k == "ALARM_HOLD_DOWN")
            .then(|| hold_down.map(str::to_owned))
            .flatten()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let out = replay(
        EngineConfig::default(),
        &samples().join("city.json"),
        &flapping_lamp(dir.path()),
        &ReplayOptions {
            shards: 1,
            // One reading a batch: `fault` folds a lamp's flaps within one batch into one
            // alarm, so the second failure is an alarm of its own only in a later batch.
            batch_size: 1,
            alarms: config.alarms,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("replay: {e:#}"));
    out.alarms.iter().map(|a| a.held_down).collect()
}

#[tokio::test]
async fn a_replay_holds_down_a_flapping_lamp_by_the_configured_hold_down() {
    // The default hold-down (10 minutes) keeps the lamp's second alarm from paging ...
    assert_eq!(held_down_under(None).await, vec![false, true]);
    // ... a hold-down of one minute, shorter than the three between the two, does not.
    assert_eq!(held_down_under(Some("1m")).await, vec![false, false]);
}
