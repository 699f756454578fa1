//! `traffic replay`: a file of readings through the same handlers, then every result.
//!
//! The readings go, in file order, to a stream in memory split over shards by intersection id
//! ([`MemorySource`]); the event source mapping drains every shard to `ingest` and `fault` in
//! batches; at the end the merge closes every window. The output is one JSON document (see
//! `docs/contracts.md`).

use crate::esm::{EventSourceMapping, MappingConfig};
use crate::functions::Functions;
use crate::stream::{MemorySource, partition_key_of};
use anyhow::Context;
use chrono::Utc;
use merge::{Closing, Provisional};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use traffic_core::city::cycle_s;
use traffic_core::pane::Counters;
use traffic_core::query::WindowResult;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::webster::PhaseTiming;
use traffic_core::{City, EngineConfig, Intersection};
use traffic_embedded::EmbeddedStore;
use traffic_ports::MemoryCheckpoints;

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
        x.phases.first()?;
        Some(Self {
            intersection_id: x.id.to_string(),
            cycle_s: cycle_s(&x.phases, yellow_s),
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
    store.put_intersections(&city.intersections)?;
    let functions = Functions::from_ports(cfg, Provisional::None, store.ports());

    let source = Arc::new(MemorySource::new(opts.shards.max(1)));
    let now = Utc::now().timestamp_millis();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        source.put(partition_key_of(line), line.to_vec(), now);
    }
    let batch = opts.batch_size.max(1);
    EventSourceMapping::new(
        source,
        Arc::new(MemoryCheckpoints::default()),
        functions.mappings(|name| MappingConfig::in_process(name, batch)),
    )
    .drain()
    .await?;
    functions.merge(Closing::All).await?;
    collect(&functions).await
}

/// Reads the results, timings, alarms and counters out of the functions' ports.
pub async fn collect(functions: &Functions) -> anyhow::Result<ReplayOutput> {
    let ports = &functions.ports;
    let mut windows = ports.results.results().await?;
    windows.sort_by_key(|w| w.window);
    let yellow = functions.cfg.webster.yellow_s;
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
