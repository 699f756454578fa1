//! Writes a shard's records to the archive as Firehose writes them to S3: the readings as
//! Parquet (Snappy) with the Glue table's columns, one object per day of the readings' own
//! `ts` (its first ten characters, as the template's dynamic partitioning takes them); a
//! record that is not a reading as a line of JSON under `errors/`, by the day it arrived.
//!
//! A file is written under a temporary name and renamed, so a crash leaves either the whole
//! file or none; a range of records written again gets the same name and the same content.

use crate::layout::{ERRORS, READINGS, file};
use crate::{ArchiveResult, io};
use duckdb::{Connection, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traffic_core::reading::{LampState, Reading};
use traffic_core::time::format_rfc3339_ms;

/// One record of a shard, as the stream holds it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Its sequence number in the shard.
    pub seq: u64,
    /// Its payload (a reading's JSON, or not).
    pub data: &'a [u8],
    /// When it reached the stream, epoch ms.
    pub arrival_ms: i64,
}

/// What [`write_shard`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The files, readings first.
    pub files: Vec<PathBuf>,
    /// Readings archived.
    pub readings: usize,
    /// Records that were not readings, archived under `errors/`.
    pub errors: usize,
}

/// Archives `records` of `shard` (in order, none before what was archived already) under
/// `dir`: a Parquet file of readings per day, a JSON-lines file of the others per arrival day.
pub fn write_shard(dir: &Path, shard: &str, records: &[Record<'_>]) -> ArchiveResult<Written> {
    let mut days: BTreeMap<String, Vec<(u64, Reading)>> = BTreeMap::new();
    let mut errors: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for r in records {
        match Reading::parse(r.data) {
            Ok(reading) => days
                .entry(written_day(r.data).unwrap_or_else(|| day_of(reading.ts_ms)))
                .or_default()
                .push((r.seq, reading)),
            Err(e) => errors.entry(day_of(r.arrival_ms)).or_default().push((
                r.seq,
                serde_json::json!({
                    "errorMessage": e.to_string(),
                    "arrivalTimestamp": r.arrival_ms,
                    "sequenceNumber": r.seq.to_string(),
                    "rawData": String::from_utf8_lossy(r.data),
                })
                .to_string(),
            )),
        }
    }
    let mut out = Written::default();
    for (dt, rows) in &days {
        let (first, last) = span(rows.iter().map(|(s, _)| *s));
        let path = file(&dir.join(READINGS), dt, shard, first, last, "parquet");
        write_parquet(&path, rows.iter().map(|(_, r)| r))?;
        out.readings += rows.len();
        out.files.push(path);
    }
    for (dt, lines) in &errors {
        let (first, last) = span(lines.iter().map(|(s, _)| *s));
        let path = file(&dir.join(ERRORS), dt, shard, first, last, "jsonl");
        let mut text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        if text.is_empty() {
            text.push('\n');
        }
        write_atomically(&path, |tmp| {
            std::fs::write(tmp, text.as_bytes()).map_err(io(format!("writing {}", tmp.display())))
        })?;
        out.errors += lines.len();
        out.files.push(path);
    }
    Ok(out)
}

fn span(seqs: impl Iterator<Item = u64>) -> (u64, u64) {
    seqs.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)))
}

/// The day a reading's JSON writes in its `ts`: its first ten characters, as Firehose's
/// `{dt: .ts[0:10]}` takes them.
fn written_day(data: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let ts = v.get("ts")?.as_str()?;
    ts.get(..10).map(str::to_owned)
}

/// The UTC day of an instant (`2026-01-05`).
fn day_of(ms: i64) -> String {
    format_rfc3339_ms(ms).chars().take(10).collect()
}

fn lamp(s: LampState) -> &'static str {
    match s {
        LampState::Ok => "ok",
        LampState::Broken => "broken",
    }
}

/// The readings as one Parquet file with the Glue table's columns (`ts` a UTC timestamp,
/// `lamps` a struct of three strings).
pub fn write_parquet<'r>(
    path: &Path,
    readings: impl Iterator<Item = &'r Reading>,
) -> ArchiveResult<()> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(
        "CREATE TABLE staging (intersection_id VARCHAR, light INTEGER, ts_ms BIGINT, \
         vehicles INTEGER, mean_speed_kmh DOUBLE, red VARCHAR, yellow VARCHAR, green VARCHAR, \
         lat DOUBLE, lon DOUBLE)",
    )?;
    {
        let mut app = conn.appender("staging")?;
        for r in readings {
            app.append_row(params![
                r.intersection_id.as_str(),
                r.light.get() as i32,
                r.ts_ms,
                r.vehicles as i32,
                r.mean_speed_kmh,
                lamp(r.lamps.red),
                lamp(r.lamps.yellow),
                lamp(r.lamps.green),
                r.position.map(|p| p.lat),
                r.position.map(|p| p.lon),
            ])?;
        }
        app.flush()?;
    }
    write_atomically(path, |tmp| {
        let target = tmp.to_string_lossy().replace('\'', "''");
        conn.execute_batch(&format!(
            "COPY (SELECT intersection_id, light, epoch_ms(ts_ms) AS ts, vehicles, mean_speed_kmh, \
             {{'red': red, 'yellow': yellow, 'green': green}} AS lamps, lat, lon FROM staging) \
             TO '{target}' (FORMAT PARQUET, COMPRESSION SNAPPY)"
        ))?;
        Ok(())
    })
}

/// Writes `path` through `write` to a temporary file beside it, then renames it into place.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> ArchiveResult<()>,
) -> ArchiveResult<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming {}", tmp.display())))
}
