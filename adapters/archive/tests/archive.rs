//! The archive written and read back: the writer's files, the readings table over them, the
//! named queries on DuckDB and the answer's formats.

use serde_json::{Value, json};
use std::path::Path;
use traffic_archive::layout::{archived_up_to, readings_files};
use traffic_archive::named::NamedQuery;
use traffic_archive::query::Archive;
use traffic_archive::writer::{Record, write_shard};

const SHARD: &str = "shardId-000000000000";
/// 2026-01-05T23:50:00Z: ten minutes before midnight, so the readings span two days.
const T0: i64 = 1_767_657_000_000;

fn reading(x: &str, light: u8, minute: i64, vehicles: u32, speed: f64, green: &str) -> String {
    let ts = traffic_core::time::format_rfc3339_ms(T0 + minute * 60_000);
    format!(
        r#"{{"intersection_id":"{x}","light":{light},"ts":"{ts}","vehicles":{vehicles},"mean_speed_kmh":{speed},"lamps":{{"red":"ok","yellow":"ok","green":"{green}"}}}}"#
    )
}

/// Twenty minutes of two intersections' light 0, one record a minute each, and one record
/// that is not a reading.
fn records() -> Vec<String> {
    let mut out = Vec::new();
    for minute in 0..20 {
        out.push(reading("I-0001", 0, minute, 10 + minute as u32, 40.0, "ok"));
        let green = if (5..12).contains(&minute) {
            "broken"
        } else {
            "ok"
        };
        out.push(reading("I-0002", 0, minute, 3, 20.5, green));
    }
    out.insert(7, "{not json".to_owned());
    out
}

fn write(dir: &Path, data: &[String]) -> anyhow::Result<traffic_archive::writer::Written> {
    let records: Vec<Record<'_>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| Record {
            seq: i as u64 + 1,
            data: d.as_bytes(),
            arrival_ms: T0 + 60_000,
        })
        .collect();
    Ok(write_shard(dir, SHARD, &records)?)
}

#[test]
fn readings_are_archived_a_file_a_day_and_a_record_that_is_not_one_under_errors()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write(dir.path(), &records())?;
    assert_eq!((written.readings, written.errors), (40, 1));
    let files = readings_files(dir.path())?;
    let days: Vec<String> = files
        .iter()
        .filter_map(|f| {
            f.parent()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(days, ["dt=2026-01-05", "dt=2026-01-06"]);
    assert_eq!(archived_up_to(dir.path())?.get(SHARD), Some(&41));
    let error = std::fs::read_to_string(
        written
            .files
            .last()
            .ok_or_else(|| anyhow::anyhow!("no error file"))?,
    )?;
    let line: Value = serde_json::from_str(error.trim())?;
    assert_eq!(line["rawData"], "{not json");
    assert_eq!(line["sequenceNumber"], "8");

    let archive = Archive::open(dir.path())?;
    let a = archive.query(
        "SELECT dt, count(*) AS n, min(ts) AS first FROM readings GROUP BY dt ORDER BY dt",
        &[],
    )?;
    assert_eq!(
        a.rows,
        [
            vec![
                json!("2026-01-05"),
                json!(20),
                json!("2026-01-05 23:50:00.000")
            ],
            vec![
                json!("2026-01-06"),
                json!(20),
                json!("2026-01-06 00:00:00.000")
            ]
        ]
    );
    let a = archive.query(
        "SELECT intersection_id, light, vehicles, mean_speed_kmh, lamps.green AS green, lat \
         FROM readings WHERE intersection_id = ? ORDER BY ts LIMIT 1",
        &["I-0001".to_owned()],
    )?;
    assert_eq!(
        a.columns,
        [
            "intersection_id",
            "light",
            "vehicles",
            "mean_speed_kmh",
            "green",
            "lat"
        ]
    );
    assert_eq!(
        a.rows[0],
        [
            json!("I-0001"),
            json!(0),
            json!(10),
            json!(40.0),
            json!("ok"),
            Value::Null
        ]
    );
    Ok(())
}

#[test]
fn a_range_written_again_is_the_same_file_byte_for_byte() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let first = write(dir.path(), &records())?;
    let bytes: Vec<Vec<u8>> = first
        .files
        .iter()
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    let again = write(dir.path(), &records())?;
    assert_eq!(again.files, first.files);
    let bytes_again: Vec<Vec<u8>> = again
        .files
        .iter()
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    assert_eq!(bytes_again, bytes);
    assert_eq!(readings_files(dir.path())?.len(), 2);
    Ok(())
}

#[test]
fn the_named_queries_answer_over_the_local_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), &records())?;
    let archive = Archive::open(dir.path())?;
    let volumes = NamedQuery::get("volumes-by-15-minutes")?;
    let params = ["I-0001", "2026-01-05", "2026-01-06"].map(str::to_owned);
    let a = archive.query(volumes.sql, &params)?;
    // 23:45 holds minutes 0-4, 00:00 minutes 10-19... and 5-9.
    let counts: Vec<(Value, Value, Value)> = a
        .rows
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(
        counts,
        [
            (
                json!("2026-01-05 23:45:00.000"),
                json!(10),
                json!(10 + 11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19)
            ),
            (
                json!("2026-01-06 00:00:00.000"),
                json!(10),
                json!((20..30).sum::<i32>())
            ),
        ]
    );
    let failures = NamedQuery::get("lamp-failures")?;
    let a = archive.query(
        failures.sql,
        &["2026-01-05".to_owned(), "2026-01-06".to_owned()],
    )?;
    assert_eq!(a.rows.len(), 1);
    assert_eq!(a.rows[0][0], "I-0002");
    assert_eq!(a.rows[0][3], "2026-01-05 23:55:00.000");
    assert_eq!(a.rows[0][4], "2026-01-06 00:02:00.000");
    assert_eq!(a.rows[0][5], json!(420));
    Ok(())
}

#[test]
fn an_empty_archive_has_the_tables_and_no_rows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Archive::open(dir.path())?.query("SELECT count(*) AS n FROM readings", &[])?;
    assert_eq!(a.rows, [vec![json!(0)]]);
    let e = Archive::open(dir.path())?.query("SELECT nope FROM readings", &[]);
    assert!(e.is_err());
    Ok(())
}

#[test]
fn an_answer_prints_as_csv_json_and_a_table() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Archive::open(dir.path())?.query(
        "SELECT 'a,b' AS s, 1.5 AS x, NULL AS nothing UNION ALL SELECT 'say \"hi\"', 10, NULL",
        &[],
    )?;
    assert_eq!(
        a.csv(),
        "s,x,nothing\r\n\"a,b\",1.5,\r\n\"say \"\"hi\"\"\",10.0,\r\n"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&a.json())?,
        json!([{"s": "a,b", "x": 1.5, "nothing": null}, {"s": "say \"hi\"", "x": 10.0, "nothing": null}])
    );
    assert!(
        a.json()
            .starts_with(r#"[{"s":"a,b","x":1.5,"nothing":null}"#),
        "{}",
        a.json()
    );
    assert_eq!(
        a.table(),
        "s            x  nothing\n--------  ----  -------\na,b        1.5\nsay \"hi\"  10.0\n(2 rows)\n"
    );
    Ok(())
}
