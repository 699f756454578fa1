//! `traffic replay`: a file of readings through the same handlers, then every result.
//!
//! The readings go, in file order, to an in-process stream split over shards by intersection
//! id; each shard's records are delivered to `ingest` and `fault` in batches; at the end the
//! merge closes every window. The output is one JSON document (see `docs/contracts.md`).

use crate::engine::Engine;
use crate::stream::{StreamRecord, partition_key_of, shard_for, shard_id};
use anyhow::Context;
use chrono::Utc;
use merge::{Closing, Provisional};
use serde::{Deserialize, Serialize};
use std::path::Path;
use traffic_core::pane::Counters;
use traffic_core::query::WindowResult;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::webster::PhaseTiming;
use traffic_core::{City, EngineConfig, Intersection};
use traffic_embedded::EmbeddedStore;
use traffic_functions::wiring::Ports;

/// Options of a replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Shards of the in-process stream.
    pub shards: usize,
    /// Records per batch handed to the functions.
    pub batch_size: usize,
}

/// One intersection's timings in the output.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct TimingOut {
    /// The intersection.
    pub intersection_id: String,
    /// Cycle, s.
    pub cycle_s: f64,
    /// Per phase.
    pub phases: Vec<PhaseTiming>,
    /// The window the timings were computed from.
    pub retimed_from: String,
}

impl TimingOut {
    /// The timings the merge wrote for `x` (the cycle with a yellow of `yellow_s`), if it
    /// retimed it.
    pub fn of(x: &Intersection, yellow_s: f64) -> Option<Self> {
        let from = x.retimed_from.clone()?;
        let first = x.phases.first()?;
        Some(Self {
            intersection_id: x.id.to_string(),
            cycle_s: first.green_s + yellow_s + first.red_s,
            phases: x
                .phases
                .iter()
                .map(|p| PhaseTiming {
                    lights: p.lights.clone(),
                    green_s: p.green_s,
                    red_s: p.red_s,
                })
                .collect(),
            retimed_from: from,
        })
    }
}

/// One alarm in the output.
#[derive(Debug, Serialize, PartialEq)]
pub struct AlarmOut {
    /// The intersection.
    pub intersection_id: String,
    /// The light.
    pub light: usize,
    /// The lamp's colour.
    pub lamp: String,
    /// Event time of the first broken reading.
    pub ts: String,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
}

/// The replay's output document.
#[derive(Debug, Serialize, PartialEq)]
pub struct ReplayOutput {
    /// Results per window, by length then start.
    pub windows: Vec<WindowResult>,
    /// New timings of the intersections Webster's method retimed.
    pub timings: Vec<TimingOut>,
    /// Alarms raised, by time.
    pub alarms: Vec<AlarmOut>,
    /// Records rejected (malformed, invalid, unknown intersection or light).
    pub rejected: u64,
    /// Readings dropped as late.
    pub late: u64,
    /// Readings counted once more than once.
    pub duplicates: u64,
}

/// Replays `readings` (one record per line) against `city`.
pub async fn replay(
    cfg: EngineConfig,
    city_path: &Path,
    readings_path: &Path,
    opts: &ReplayOptions,
) -> anyhow::Result<ReplayOutput> {
    let city_text = std::fs::read_to_string(city_path)
        .with_context(|| format!("reading {}", city_path.display()))?;
    let city = City::parse(&city_text).with_context(|| format!("in {}", city_path.display()))?;
    let data = std::fs::read(readings_path)
        .with_context(|| format!("reading {}", readings_path.display()))?;
    let dir = tempfile::tempdir().context("creating a temporary store")?;
    let store = EmbeddedStore::open_relaxed(dir.path().join("replay.redb"))?;
    let ports = Ports::embedded(store.clone());
    store.put_intersections(&city.intersections)?;
    let engine = Engine::new(cfg, Provisional::None, ports);

    let shards = opts.shards.max(1);
    let mut streams: Vec<Vec<StreamRecord>> = vec![Vec::new(); shards];
    let now = Utc::now();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key = partition_key_of(line);
        let s = shard_for(&key, shards);
        let seq = streams[s].len() as u128 + 1;
        streams[s].push(StreamRecord {
            seq,
            partition_key: key,
            data: line.to_vec(),
            arrival: now,
        });
    }
    // Shards are independent consumers: deliver them batch by batch, round robin.
    let batch = opts.batch_size.max(1);
    let longest = streams.iter().map(Vec::len).max().unwrap_or(0);
    for start in (0..longest).step_by(batch) {
        for (i, records) in streams.iter().enumerate() {
            if start < records.len() {
                let end = (start + batch).min(records.len());
                engine.deliver(&shard_id(i), &records[start..end]).await?;
            }
        }
    }
    engine.merge(Closing::All).await?;
    collect(&engine).await
}

/// Reads the results, timings, alarms and counters out of the engine's store.
pub async fn collect(engine: &Engine) -> anyhow::Result<ReplayOutput> {
    let ports = &engine.ports;
    let mut windows = ports.results.results().await?;
    windows.sort_by_key(|w| w.key.map(|k| (k.length, k.start_ms)));
    let yellow = engine.cfg.webster.yellow_s;
    let mut timings: Vec<TimingOut> = ports
        .registry
        .intersections()
        .await?
        .into_iter()
        .filter_map(|x| TimingOut::of(&x, yellow))
        .collect();
    timings.sort_by(|a, b| a.intersection_id.cmp(&b.intersection_id));
    let alarms = ports
        .lamps
        .alarms()
        .await?
        .into_iter()
        .map(|r| AlarmOut {
            intersection_id: r.alarm.intersection_id.to_string(),
            light: r.alarm.light.get(),
            lamp: r.alarm.lamp.as_str().to_owned(),
            ts: format_rfc3339_ms(r.alarm.ts_ms),
            lat: r.alarm.position.map(|p| p.lat),
            lon: r.alarm.position.map(|p| p.lon),
        })
        .collect();
    let mut counters = Counters::default();
    for m in ports.state.shard_metas().await? {
        counters.add(&m.counters);
    }
    Ok(ReplayOutput {
        windows,
        timings,
        alarms,
        rejected: counters.rejected,
        late: counters.late,
        duplicates: counters.duplicates,
    })
}
