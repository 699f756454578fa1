//! `traffic replay` of a city in which one intersection's clock runs 4 minutes fast:
//! 30 intersections, 2.5 hours, a reading a minute of each light (18,000 readings),
//! each line's `arrival` 2 s after its true time. The fast clock is inside the 5-minute skew,
//! so its readings are accepted; no reading of any other intersection may be late.
//!
//! Prints the figures: `cargo test -p traffic --test system clock_drift:: -- --nocapture`.

use std::io::Write;
use traffic_app::replay::{ReplayOptions, replay};
use traffic_core::EngineConfig;
use traffic_core::time::format_rfc3339_ms;

const MIN: i64 = 60_000;
/// 2026-01-05T07:00:00Z.
const T0: i64 = 1_767_596_400_000;

/// Writes the city and its readings (`fast_ms`: how far ahead the first intersection's clock
/// runs; `arrival`: whether lines say when they arrived, else replay estimates it) into `dir`;
/// the paths and the number of readings.
fn city_and_readings(
    dir: &std::path::Path,
    fast_ms: i64,
    arrival: bool,
) -> (std::path::PathBuf, std::path::PathBuf, usize) {
    let city = traffic_sim::generate_city(&traffic_sim::CityConfig {
        intersections: 30,
        seed: 7,
        ..traffic_sim::CityConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let city_path = dir.join("city.json");
    std::fs::write(
        &city_path,
        serde_json::to_vec(&city).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let readings_path = dir.join("readings.jsonl");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&readings_path).unwrap_or_else(|e| panic!("{e}")),
    );
    let mut n = 0;
    for m in 0..150 {
        for (i, x) in city.intersections.iter().enumerate() {
            let t = T0 + m * MIN + i as i64 * 1_000;
            let stamped = if i == 0 { t + fast_ms } else { t };
            for l in &x.lights {
                let arrived = if arrival {
                    format!(r#","arrival":"{}""#, format_rfc3339_ms(t + 2_000))
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    r#"{{"intersection_id":"{}","light":{},"ts":"{}"{arrived},"vehicles":{},"mean_speed_kmh":{},"lamps":{{"red":"ok","yellow":"ok","green":"ok"}}}}"#,
                    x.id,
                    l.light.get(),
                    format_rfc3339_ms(stamped),
                    (m + i as i64 + l.light.get() as i64) % 23,
                    20 + (m + i as i64) % 40
                )
                .unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    out.flush().unwrap_or_else(|e| panic!("{e}"));
    (city_path, readings_path, n)
}

#[tokio::test]
async fn a_clock_four_minutes_fast_makes_no_other_intersections_reading_late_in_a_replay() {
    let mut figures = Vec::new();
    for (arrival, shards) in [(true, 1), (true, 4), (false, 1), (false, 4)] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (city, readings, n) = city_and_readings(dir.path(), 4 * MIN, arrival);
        assert_eq!(n, 18_000);
        let out = replay(
            EngineConfig::default(),
            &city,
            &readings,
            &ReplayOptions {
                alarms: Default::default(),
                shards,
                batch_size: 100,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("replay: {e:#}"));
        // The fast intersection's readings are ahead of everything: none of them can be late,
        // so every late reading is another intersection's.
        println!(
            "clock 4 min fast, {shards} shard(s), arrival {}: {} of {} readings late, {} accepted, {} future",
            if arrival { "in the lines" } else { "estimated" },
            out.late,
            out.records,
            out.accepted,
            out.future
        );
        figures.push((arrival, shards, out.late, out.accepted, out.future));
    }
    assert_eq!(
        figures,
        [
            (true, 1, 0, 18_000, 0),
            (true, 4, 0, 18_000, 0),
            (false, 1, 0, 18_000, 0),
            (false, 4, 0, 18_000, 0)
        ],
        "(arrival in the lines, shards, late, accepted, future)"
    );
}
