//! `traffic aws-measure`: what a simulated city costs on AWS, measured through the real
//! adapters and the one event source mapping against `AWS_ENDPOINT_URL` (an emulator, or
//! AWS), with the deployed template's default settings, in simulated time.
//!
//! Each simulated minute the simulator puts one reading per light into the stream; then the
//! mapping drains every shard: with `IngestBatchingWindowSeconds` 60 a shard's minute of
//! readings is one `ingest` batch (of at most `IngestBatchSize`), and with
//! `FaultBatchingWindowSeconds` 10 `fault` gets a batch per ten seconds' worth (a sixth of the
//! minute, at most `FaultBatchSize`), as a city's readings spread over the minute make the
//! service cut them. Every `MergeSchedule` (5 simulated minutes) the merge runs, with
//! `ProvisionalResults` `all`. The run is deterministic: the same city, seed and minutes put
//! the same readings and make the same calls.
//!
//! The stream is the emulator's Kinesis stream (the default), or, with
//! [`StreamKind::Memory`], a stream held in memory with Kinesis' partitioning and each
//! record's arrival set to the end of its simulated minute (deterministic, and fast: moto's
//! `PutRecords` costs time in proportion to the shard's length, so a 30-minute run of 1,000
//! intersections spends most of its time there). Kinesis bills shard-hours and PUT units,
//! not calls, so the measured bill is the same either way; DynamoDB is always the emulator's.
//!
//! Each function has its own DynamoDB store, so each one's capacity units are counted apart
//! (computed from the items by DynamoDB's sizing rules: `traffic_aws::capacity`); the
//! simulator's own reads of the registry (what `traffic simulate` costs, not the system) and
//! the setup are not counted. Prices come from `infra/prices.json`, the table `infra/cost.py`
//! reads too. The last line printed is one JSON object (see [`Measurement`]).
//!
//! This file holds the options and the run ([`aws_measure`]); `measure/harness.rs` the pieces
//! the run wires in besides the real adapters (the stream in memory, the timed handlers, the
//! simulator's cached registry), `measure/report.rs` the measurement, `measure/prices.rs` the
//! price table and the functions' duration model.

mod harness;
mod prices;
mod report;

use super::setup::setup;
use super::simulate::sim_config;
use crate::driver::{SimDriver, StreamReadings, TimingControl};
use crate::esm::{EventSourceMapping, Mapping, MappingConfig};
use crate::functions::Functions;
use crate::stream::MemorySource;
use harness::{MinuteArrivals, Timed};
use merge::{CloseUpTo, Provisional};
pub use prices::{LambdaDuration, PRICES_JSON, Prices};
pub use report::{FunctionUsage, Measurement, TableUsage, is_read_operation};
use report::{by_table, per_thousand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use traffic_aws::kinesis::KinesisSink;
use traffic_aws::setup::Resources;
use traffic_aws::{AwsClients, KinesisSource};
use traffic_core::City;
use traffic_functions::Config;
use traffic_functions::config::by_name;
use traffic_ports::{ManualClock, MemoryCheckpoints, Ports, RecordSource, SourceShards};
use traffic_sim::Simulator;

/// The template's defaults that shape the bill (`infra/template.yaml`'s parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateDefaults {
    /// `IngestBatchSize`.
    pub ingest_batch_size: usize,
    /// `IngestBatchingWindowSeconds`.
    pub ingest_window_s: u64,
    /// `FaultBatchSize`.
    pub fault_batch_size: usize,
    /// `FaultBatchingWindowSeconds`.
    pub fault_window_s: u64,
    /// `MergeSchedule`, minutes.
    pub merge_every_min: u64,
    /// `StreamShardCount`.
    pub shards: i32,
    /// Memory of `ingest`, `fault` and `merge`, MB (for Lambda's GB-seconds).
    pub memory_mb: [u64; 3],
}

/// The defaults of `infra/template.yaml` (checked against it by `tests/infra`).
pub const TEMPLATE: TemplateDefaults = TemplateDefaults {
    ingest_batch_size: 10_000,
    ingest_window_s: 60,
    fault_batch_size: 1_000,
    fault_window_s: 10,
    merge_every_min: 5,
    shards: 1,
    memory_mb: [512, 256, 2048],
};

/// Where the readings go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// A Kinesis stream at `AWS_ENDPOINT_URL`.
    #[default]
    Kinesis,
    /// A stream in memory, partitioned as Kinesis does.
    Memory,
}

impl std::str::FromStr for StreamKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let names = [("kinesis", Self::Kinesis), ("memory", Self::Memory)];
        by_name(s, &names).ok_or_else(|| format!("{s:?}: the stream is `kinesis` or `memory`"))
    }
}

/// What `traffic aws-measure` runs.
#[derive(Clone, Debug)]
pub struct MeasureOptions {
    /// Where the readings go.
    pub stream: StreamKind,
    /// The resources (created if missing; use fresh names: the run expects empty tables).
    pub resources: Resources,
    /// The city.
    pub city: City,
    /// Seed of the traffic.
    pub seed: u64,
    /// Simulated minutes.
    pub minutes: u64,
    /// First simulated instant, epoch ms (default: enough minutes before now that no reading
    /// is stamped after its arrival in the stream).
    pub start_ms: Option<i64>,
    /// The endpoint of the functions' and the simulator's clients when it is not the
    /// environment's (`AWS_ENDPOINT_URL`): a metering proxy in front of the emulator, which
    /// then sees the system's calls and not the setup's.
    pub functions_endpoint: Option<String>,
}

/// Records of a shard per batch of `fault`: a ten-second window's worth of a minute's
/// readings, at most its batch size.
fn fault_batch(readings_per_minute: usize, shards: usize) -> usize {
    let per_shard = readings_per_minute.div_ceil(shards.max(1));
    let windows = (60 / TEMPLATE.fault_window_s.max(1)) as usize;
    per_shard
        .div_ceil(windows.max(1))
        .clamp(1, TEMPLATE.fault_batch_size)
}

/// `traffic aws-measure`; prints progress to stderr and returns the measurement.
pub async fn aws_measure(config: &Config, opts: MeasureOptions) -> anyhow::Result<Measurement> {
    let wall = Instant::now();
    let clients = AwsClients::from_env().await?;
    let (created, _) = setup(&clients, &opts.resources, &opts.city, &config.engine).await?;
    let names = created.names.clone();
    // One store per function, so that each one's units are counted apart; and clients of its
    // own, named `traffic-<function>` in their user agent, so that a metering proxy in front
    // of the emulator counts each function apart too (`tests/capacity/ddb_meter.py`).
    let mut ports = Vec::new();
    for function in ["ingest", "fault", "merge", "simulator"] {
        let named = AwsClients::named(
            &format!("traffic-{function}"),
            opts.functions_endpoint.as_deref(),
        )
        .await?;
        ports.push(config.aws_ports_on(&named, names.clone()));
    }
    let [pi, pf, pm, ps]: [_; 4] = ports
        .try_into()
        .unwrap_or_else(|_| unreachable!("four functions"));
    let now = chrono::Utc::now().timestamp_millis();
    let start_ms = opts.start_ms.unwrap_or_else(|| {
        // Whole hours before now, so that every reading is stamped before it arrives and the
        // windows close at the same points of every run.
        let back = now - (opts.minutes as i64 + 90) * 60_000;
        back - back.rem_euclid(3_600_000)
    });
    // Processing time: Kinesis' arrival times are the wall clock's; the stream in memory's
    // are simulated, and so is the functions' clock then (idleness, expiry, the lease).
    let clock = Arc::new(ManualClock::at(start_ms));
    let with_clock = |p: Ports| match opts.stream {
        StreamKind::Kinesis => p,
        StreamKind::Memory => p.with_clock(clock.clone()),
    };
    let engine = config.engine.clone();
    let ingest = Functions::from_ports(
        engine.clone(),
        Provisional::All,
        &config.alarms,
        with_clock(pi.ports.clone()),
    );
    let fault = Functions::from_ports(
        engine.clone(),
        Provisional::All,
        &config.alarms,
        with_clock(pf.ports.clone()),
    );
    let memory = Arc::new(MemorySource::new(opts.resources.shards.max(1) as usize));
    let merge_ports = match opts.stream {
        StreamKind::Kinesis => pm.ports.clone(),
        StreamKind::Memory => with_clock(
            pm.ports
                .clone()
                .with_stream(Arc::new(SourceShards(memory.clone()))),
        ),
    };
    let merge = Functions::from_ports(
        engine.clone(),
        Provisional::All,
        &config.alarms,
        merge_ports,
    );

    let shards = opts.resources.shards.max(1) as usize;
    let readings_per_minute: usize = opts.city.intersections.iter().map(|x| x.lights.len()).sum();
    let ingest_h = Timed::new(ingest.ingest.clone());
    let fault_h = Timed::new(fault.fault.clone());
    let source: Arc<dyn RecordSource> = match opts.stream {
        StreamKind::Kinesis => {
            Arc::new(KinesisSource::new(&clients, &opts.resources.stream).await?)
        }
        StreamKind::Memory => memory.clone(),
    };
    let esm = EventSourceMapping::new(
        source.clone(),
        Arc::new(MemoryCheckpoints::default()),
        vec![
            Mapping {
                config: MappingConfig::in_process("ingest", TEMPLATE.ingest_batch_size),
                handler: ingest_h.clone(),
            },
            Mapping {
                config: MappingConfig::in_process(
                    "fault",
                    fault_batch(readings_per_minute, shards),
                ),
                handler: fault_h.clone(),
            },
        ],
    );

    let sim = sim_config(
        opts.seed,
        Some(start_ms),
        0.0002,
        &config.engine.webster,
        None,
        1.0,
    );
    let mut driver = match opts.stream {
        StreamKind::Kinesis => SimDriver::new(
            &opts.city,
            sim,
            KinesisSink::new(clients.kinesis.clone(), &opts.resources.stream),
            ps.ports.registry.clone(),
            ps.ports.lamps.clone(),
        )?,
        StreamKind::Memory => SimDriver::with_sink(
            opts.city.clone(),
            Simulator::new(&opts.city, sim)?,
            TimingControl::Webster,
            ps.ports.registry.clone(),
            Box::new(StreamReadings::new(
                MinuteArrivals(memory.clone()),
                ps.ports.lamps.clone(),
            )),
        ),
    }
    .reading_timings_once();

    let mut readings = 0u64;
    let mut merge_runs = 0u64;
    let mut merge_nanos = 0u128;
    let mut windows_closed = 0usize;
    for minute in 1..=opts.minutes {
        // The minute's readings arrive at its end.
        clock.set(start_ms + minute as i64 * 60_000);
        let step = driver.step().await?;
        readings += step.readings.len() as u64;
        esm.drain().await?;
        if minute % TEMPLATE.merge_every_min == 0 {
            let t = Instant::now();
            let report = merge.merge(CloseUpTo::Watermark).await?;
            merge_nanos += t.elapsed().as_nanos();
            merge_runs += 1;
            windows_closed += report.closed.len();
            driver.forget_timings();
        }
        eprintln!(
            "aws-measure: minute {minute}/{}: {readings} readings, {:.0} s",
            opts.minutes,
            wall.elapsed().as_secs_f64()
        );
    }

    let secs = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / 1e9;
    let mut by_function: BTreeMap<String, FunctionUsage> = [
        (
            "ingest",
            &pi,
            ingest_h.calls.load(Ordering::Relaxed),
            secs(&ingest_h.nanos),
        ),
        (
            "fault",
            &pf,
            fault_h.calls.load(Ordering::Relaxed),
            secs(&fault_h.nanos),
        ),
        ("merge", &pm, merge_runs, merge_nanos as f64 / 1e9),
    ]
    .into_iter()
    .map(|(name, p, calls, seconds)| {
        let usage = FunctionUsage::of(&p.store.metrics().snapshot(), calls, seconds);
        (name.to_owned(), usage)
    })
    .collect();
    let prices = Prices::shared()?;
    let sum = |f: fn(&FunctionUsage) -> f64| by_function.values().map(f).sum::<f64>();
    let write_units = sum(|u| u.write_units);
    let read_units = sum(|u| u.read_units);
    let write_requests = by_function.values().map(|u| u.write_requests).sum();
    let read_requests = by_function.values().map(|u| u.read_requests).sum();

    // Per million readings.
    let per_million = |x: f64| traffic_core::mean::mean(x * 1e6, readings);
    let mut usd = BTreeMap::new();
    let hours_per_million = 1e6 / (readings_per_minute.max(1) as f64 * 60.0);
    usd.insert(
        "kinesis shards".to_owned(),
        opts.resources.shards as f64 * hours_per_million * prices.kinesis_shard_hour,
    );
    usd.insert(
        "kinesis put units".to_owned(),
        1e6 * prices.kinesis_put_unit,
    );
    usd.insert(
        "dynamodb writes".to_owned(),
        per_million(write_units) * prices.ddb_wru,
    );
    usd.insert(
        "dynamodb reads".to_owned(),
        per_million(read_units) * prices.ddb_rru,
    );
    for (name, mb) in ["ingest", "fault", "merge"].iter().zip(TEMPLATE.memory_mb) {
        if let Some(u) = by_function.get_mut(*name) {
            u.billed_seconds = prices.lambda_duration.billed_seconds(name, u, readings, mb);
            let gb_s = u.billed_seconds * mb as f64 / 1024.0;
            usd.insert(
                format!("lambda {name}"),
                per_million(
                    u.invocations as f64 * prices.lambda_request + gb_s * prices.lambda_gb_s_arm,
                ),
            );
        }
    }
    let total: f64 = usd.values().sum();
    Ok(Measurement {
        intersections: opts.city.intersections.len(),
        readings,
        write_units,
        read_units,
        write_requests,
        read_requests,
        write_units_per_1000_readings: per_thousand(write_units, readings),
        read_units_per_1000_readings: per_thousand(read_units, readings),
        usd_per_million_readings: total,
        usd_by_item: usd,
        minutes: opts.minutes,
        shards: opts.resources.shards,
        stream: opts.stream,
        settings: TEMPLATE,
        windows_closed,
        per_1000_readings_by_table: by_table(&by_function, readings),
        by_function,
        wall_seconds: wall.elapsed().as_secs_f64(),
        prices: prices.date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_gets_a_batch_per_ten_seconds_of_a_shards_readings() {
        // 1,000 intersections of 4 lights on 2 shards: 2,000 a shard a minute, 334 per 10 s.
        assert_eq!(fault_batch(4_000, 2), 334);
        // 10,000 on 2 shards: 3,334 per 10 s, cut at the batch size.
        assert_eq!(fault_batch(40_000, 2), 1_000);
    }
}
