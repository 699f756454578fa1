//! `traffic replay`: a file of readings through the same handlers, then every result.
//!
//! The readings go, in file order, to a stream in memory split over shards by intersection id
//! ([`MemorySource`]); the event source mapping drains every shard to `ingest` and `fault` in
//! batches; at the end the merge closes every window. The output is one JSON document (see
//! `docs/contracts.md`).

use crate::esm::{EventSourceMapping, MappingConfig};
use crate::functions::Functions;
use crate::stream::{MemorySource, partition_key_of, shard_for};
use anyhow::Context;
use merge::{CloseUpTo, Provisional};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use traffic_core::city::cycle_s;
use traffic_core::frontier::estimate_arrivals;
use traffic_core::pane::Counters;
use traffic_core::query::WindowResult;
use traffic_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
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
    /// How `fault` and `merge` handle alarms (the configuration's `ALARM_*`).
    pub alarms: traffic_core::alarm::AlarmPolicy,
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
    /// Recorded but not published: its lamp's previous alarm was published less than the
    /// hold-down (`ALARM_HOLD_DOWN`) before. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_down: bool,
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
    /// Readings stamped more than the allowed clock skew after their arrival.
    pub future: u64,
    /// Readings in the results.
    pub accepted: u64,
    /// Records put into the stream, counted where they are put (a replay: the file's
    /// non-blank lines). Counted apart from the counters, which must add up to it:
    /// `accepted + rejected + late + duplicates + future`. ([`collect`], which sees only the
    /// store, gives the counters' sum.)
    pub records: u64,
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
    let functions = Functions::from_ports(cfg, Provisional::None, &opts.alarms, store.ports());

    let shards = opts.shards.max(1);
    let source = Arc::new(MemorySource::new(shards));
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let ids: std::collections::HashSet<&str> =
        city.intersections.iter().map(|x| x.id.as_str()).collect();
    let mut put = 0u64;
    for (line, (key, arrival_ms)) in lines.iter().zip(arrivals(&lines, shards, &ids)) {
        source.put(key, line.to_vec(), arrival_ms.unwrap_or(0));
        put += 1;
    }
    let batch = opts.batch_size.max(1);
    EventSourceMapping::new(
        source,
        Arc::new(MemoryCheckpoints::default()),
        functions.mappings(|name| MappingConfig::in_process(name, batch)),
    )
    .drain()
    .await?;
    functions.merge(CloseUpTo::All).await?;
    let mut out = collect(&functions).await?;
    out.records = put;
    Ok(out)
}

/// The partition key of each line and when it arrived in the stream: the line's own `arrival`
/// field (RFC 3339) when it has one, else its shard's event-time frontier around it
/// (`traffic_core::frontier`: the records from half as many before it as the shard has
/// intersections to as many after it; only the readings of intersections in `city` vote);
/// `None` when nothing tells.
pub fn arrivals(
    lines: &[&[u8]],
    shards: usize,
    city: &std::collections::HashSet<&str>,
) -> Vec<(String, Option<i64>)> {
    #[derive(serde::Deserialize)]
    struct Times<'a> {
        #[serde(borrow, default)]
        ts: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        arrival: Option<std::borrow::Cow<'a, str>>,
    }
    let parsed: Vec<(String, Option<i64>, Option<i64>)> = lines
        .iter()
        .map(|l| {
            let t: Option<Times<'_>> = serde_json::from_slice(l).ok();
            let ts = t
                .as_ref()
                .and_then(|t| t.ts.as_deref())
                .and_then(parse_rfc3339_ms);
            let arrival = t
                .as_ref()
                .and_then(|t| t.arrival.as_deref())
                .and_then(parse_rfc3339_ms);
            (partition_key_of(l), ts, arrival)
        })
        .collect();
    let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); shards.max(1)];
    for (i, (key, _, _)) in parsed.iter().enumerate() {
        by_shard[shard_for(key, shards)].push(i);
    }
    let mut estimate: Vec<Option<i64>> = vec![None; parsed.len()];
    for records in by_shard {
        let claims: Vec<(Option<&str>, Option<i64>)> = records
            .iter()
            .map(|&i| {
                let key = parsed[i].0.as_str();
                (city.contains(key).then_some(key), parsed[i].1)
            })
            .collect();
        let distinct: std::collections::HashSet<&str> = claims.iter().filter_map(|c| c.0).collect();
        let k = distinct.len();
        let est = estimate_arrivals(&claims, k.div_ceil(2), k);
        for (&i, e) in records.iter().zip(est) {
            estimate[i] = e;
        }
    }
    parsed
        .into_iter()
        .zip(estimate)
        .map(|((key, _, arrival), e)| (key, arrival.or(e)))
        .collect()
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
            held_down: r.held_down,
        })
        .collect();
    let mut counters = Counters::default();
    for m in ports.state.shard_metas().await? {
        counters.add(&m.counters);
    }
    let counters = counters.settle(&ports.state.merge_state().await?.compaction);
    Ok(ReplayOutput {
        windows,
        timings,
        alarms,
        rejected: counters.rejected,
        late: counters.late,
        duplicates: counters.duplicates,
        future: counters.future,
        accepted: counters.accepted,
        records: counters.records(),
    })
}
