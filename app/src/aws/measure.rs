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

use super::setup::setup;
use super::simulate::sim_config;
use crate::driver::{Control, ReadingSink, SimDriver};
use crate::esm::{EventSourceMapping, Mapping, MappingConfig};
use crate::functions::Functions;
use crate::stream::MemorySource;
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use merge::{Closing, Provisional};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use traffic_aws::kinesis::{KinesisSink, PutReport};
use traffic_aws::setup::Resources;
use traffic_aws::{AwsClients, KinesisSource, MetricsSnapshot};
use traffic_core::City;
use traffic_core::city::Intersection;
use traffic_core::window::WindowKey;
use traffic_core::{IntersectionId, LightIndex, Reading};
use traffic_functions::{BatchHandler, Config};
use traffic_ports::{
    LampStore, ManualClock, MemoryCheckpoints, PortResult, Ports, ProposalUpdate, RecordSource,
    Registry, SourceShards, TimingChange, TimingUpdate,
};
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

/// The price table shared with `infra/cost.py`.
pub const PRICES_JSON: &str = include_str!("../../../infra/prices.json");

/// Prices, $ per unit.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Prices {
    /// What the prices are (region, date).
    pub date: String,
    /// A provisioned shard-hour.
    pub kinesis_shard_hour: f64,
    /// A 25 KB PUT payload unit (one per reading).
    pub kinesis_put_unit: f64,
    /// A GB-second of an arm64 function.
    pub lambda_gb_s_arm: f64,
    /// A function invocation.
    pub lambda_request: f64,
    /// An on-demand write request unit.
    pub ddb_wru: f64,
    /// An on-demand read request unit.
    pub ddb_rru: f64,
    /// How Lambda's billed seconds are estimated.
    pub lambda_duration: LambdaDuration,
}

impl Prices {
    /// The shared table.
    pub fn shared() -> anyhow::Result<Self> {
        Ok(serde_json::from_str(PRICES_JSON)?)
    }
}

/// How Lambda's billed seconds are estimated (the price table's `lambda_duration`, which
/// `infra/cost.py` reads too): a handler's run time against an emulator is mostly the
/// emulator's round trips, which AWS answers in milliseconds, so it is not what is priced.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct LambdaDuration {
    /// An `ingest` or `fault` invocation's time besides folding its readings, s.
    pub batch_s: f64,
    /// Readings folded per second on a whole vCPU.
    pub fold_readings_per_vcpu_s: f64,
    /// A function's memory, MB, per vCPU it gets.
    pub mb_per_vcpu: f64,
    /// A merge run's time besides moving its items, s.
    pub merge_run_s: f64,
    /// Bytes of items a merge run reads and writes per second.
    pub merge_bytes_per_s: f64,
}

impl LambdaDuration {
    /// The seconds Lambda would bill for what function `name` (at `mb` MB) did in a run of
    /// `readings` readings.
    pub fn billed_seconds(&self, name: &str, u: &FunctionUsage, readings: u64, mb: u64) -> f64 {
        let calls = u.invocations as f64;
        if u.invocations == 0 {
            0.0
        } else if name == "merge" {
            let bytes = u.read_units * 4096.0 + u.write_units * 1024.0;
            calls * self.merge_run_s + bytes / self.merge_bytes_per_s
        } else {
            let vcpu = (mb as f64 / self.mb_per_vcpu).min(1.0);
            calls * self.batch_s + readings as f64 / self.fold_readings_per_vcpu_s / vcpu
        }
    }
}

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
        match s {
            "kinesis" => Ok(Self::Kinesis),
            "memory" => Ok(Self::Memory),
            _ => Err(format!("{s:?}: the stream is `kinesis` or `memory`")),
        }
    }
}

/// Readings into a stream in memory, arriving at the end of their simulated minute; repair
/// orders from the lamp store.
struct MemoryReadings {
    source: Arc<MemorySource>,
    lamps: Arc<dyn LampStore>,
}

#[async_trait]
impl ReadingSink for MemoryReadings {
    async fn repair_orders(&mut self) -> anyhow::Result<Vec<(IntersectionId, LightIndex)>> {
        Ok(self.lamps.take_repairs().await?)
    }

    async fn put(
        &mut self,
        readings: &[Reading],
        _sim: &Simulator,
        _repairs: &[(IntersectionId, LightIndex)],
    ) -> anyhow::Result<PutReport> {
        for r in readings {
            let arrival = r.ts_ms - r.ts_ms.rem_euclid(60_000) + 60_000;
            self.source.put(
                r.intersection_id.as_str().to_owned(),
                r.to_json().into_bytes(),
                arrival,
            );
        }
        Ok(PutReport {
            records: readings.len(),
            ..PutReport::default()
        })
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

/// A batch handler that counts its invocations and the time they took.
struct Timed {
    inner: Arc<dyn BatchHandler>,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Timed {
    fn new(inner: Arc<dyn BatchHandler>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        })
    }
}

#[async_trait]
impl BatchHandler for Timed {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let t = Instant::now();
        let r = self.inner.handle(event).await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}

/// The simulator's view of the registry: the intersections (their timings) read again only
/// after a merge run, which is when retimings land. The simulator is not the system (its
/// reads are not counted), and re-reading a thousand intersections every simulated minute is
/// what made the emulator slowest.
struct TimingsAfterMerges {
    inner: Arc<dyn Registry>,
    cached: tokio::sync::Mutex<Option<Vec<Intersection>>>,
}

impl TimingsAfterMerges {
    async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

#[async_trait]
impl Registry for TimingsAfterMerges {
    async fn intersections(&self) -> PortResult<Vec<Intersection>> {
        let mut c = self.cached.lock().await;
        if let Some(xs) = c.as_ref() {
            return Ok(xs.clone());
        }
        let xs = self.inner.intersections().await?;
        *c = Some(xs.clone());
        Ok(xs)
    }
    async fn intersections_page(
        &self,
        after: Option<&IntersectionId>,
        limit: usize,
    ) -> PortResult<(Vec<Intersection>, Option<IntersectionId>)> {
        self.inner.intersections_page(after, limit).await
    }
    async fn intersection(&self, id: &IntersectionId) -> PortResult<Option<Intersection>> {
        self.inner.intersection(id).await
    }
    async fn create_intersection(&self, x: &Intersection) -> PortResult<()> {
        self.inner.create_intersection(x).await
    }
    async fn put_intersection(&self, x: &Intersection) -> PortResult<()> {
        self.inner.put_intersection(x).await
    }
    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool> {
        self.inner.delete_intersection(id).await
    }
    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, String)>> {
        self.inner.intersection_versioned(id).await
    }
    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &str,
    ) -> PortResult<String> {
        self.inner.replace_intersection_if(x, expected).await
    }
    async fn delete_intersection_if(&self, id: &IntersectionId, expected: &str) -> PortResult<()> {
        self.inner.delete_intersection_if(id, expected).await
    }
    async fn intersections_versioned(&self) -> PortResult<Vec<(Intersection, String)>> {
        self.inner.intersections_versioned().await
    }
    async fn set_timings(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>> {
        self.inner.set_timings(timings, from).await
    }
    async fn set_proposals(&self, proposals: &[ProposalUpdate]) -> PortResult<Vec<IntersectionId>> {
        self.inner.set_proposals(proposals).await
    }
    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>> {
        self.inner.timing_history(id).await
    }
    async fn replace_intersection_recording(
        &self,
        x: &Intersection,
        expected: &str,
        change: &TimingChange,
    ) -> PortResult<String> {
        self.inner
            .replace_intersection_recording(x, expected, change)
            .await
    }
    async fn record_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        self.inner.record_timing_change(id, change).await
    }
}

/// What one function did and cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FunctionUsage {
    /// Invocations (batches, or merge runs).
    pub invocations: u64,
    /// Seconds spent in them here, against the emulator (not priced: see `billed_seconds`).
    pub seconds: f64,
    /// Seconds Lambda would bill for them, estimated by [`LambdaDuration`] (priced).
    pub billed_seconds: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Read capacity units.
    pub read_units: f64,
    /// Write requests.
    pub write_requests: u64,
    /// Read requests.
    pub read_requests: u64,
    /// Units and requests by `<table>:<operation>`.
    pub by_operation: BTreeMap<String, traffic_aws::metrics::OperationUsage>,
}

impl FunctionUsage {
    fn of(m: &MetricsSnapshot, invocations: u64, seconds: f64) -> Self {
        Self {
            invocations,
            seconds,
            billed_seconds: 0.0,
            write_units: m.write_capacity_units,
            read_units: m.read_capacity_units,
            write_requests: m.write_requests,
            read_requests: m.read_requests,
            by_operation: m.units_by_operation.clone(),
        }
    }
}

/// The measurement: its last line of output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// Intersections of the city.
    pub intersections: usize,
    /// Readings put.
    pub readings: u64,
    /// Write capacity units, all functions.
    pub write_units: f64,
    /// Read capacity units, all functions.
    pub read_units: f64,
    /// Write requests.
    pub write_requests: u64,
    /// Read requests.
    pub read_requests: u64,
    /// Per 1,000 readings.
    pub write_units_per_1000_readings: f64,
    /// Per 1,000 readings.
    pub read_units_per_1000_readings: f64,
    /// Everything per million readings: DynamoDB as measured, Kinesis (shard-hours at the
    /// city's rate, a PUT unit a reading), Lambda (requests as counted; GB-seconds from each
    /// function's `billed_seconds` at the template's memory). The same arithmetic as
    /// `infra/cost.py`, which prints the README's table from these runs.
    pub usd_per_million_readings: f64,
    /// Its parts.
    pub usd_by_item: BTreeMap<String, f64>,
    /// Simulated minutes.
    pub minutes: u64,
    /// Shards of the stream.
    pub shards: i32,
    /// Where the readings went.
    pub stream: StreamKind,
    /// The settings used.
    pub settings: TemplateDefaults,
    /// Windows the merge closed.
    pub windows_closed: usize,
    /// Per function.
    pub by_function: BTreeMap<String, FunctionUsage>,
    /// Per `<function>:<table>`, per 1,000 readings: what each part of the system costs
    /// (`ingest:state` and `merge:state` are the delta state and its merge).
    pub per_1000_readings_by_table: BTreeMap<String, TableUsage>,
    /// Wall time of the run, s.
    pub wall_seconds: f64,
    /// What the prices are.
    pub prices: String,
}

/// Capacity units per 1,000 readings of one function on one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TableUsage {
    /// Write capacity units.
    pub write_units: f64,
    /// Read capacity units.
    pub read_units: f64,
}

/// Whether a DynamoDB operation reads (its units are read units).
pub fn is_read_operation(operation: &str) -> bool {
    matches!(
        operation,
        "GetItem" | "BatchGetItem" | "Query" | "Scan" | "TransactGetItems"
    )
}

impl Measurement {
    /// Write and read units per 1,000 readings of the given `<function>:<table>` parts.
    pub fn units_per_1000_readings_of(&self, parts: &[&str]) -> TableUsage {
        let mut sum = TableUsage::default();
        for p in parts {
            if let Some(u) = self.per_1000_readings_by_table.get(*p) {
                sum.write_units += u.write_units;
                sum.read_units += u.read_units;
            }
        }
        sum
    }
}

fn by_table(
    by_function: &BTreeMap<String, FunctionUsage>,
    readings: u64,
) -> BTreeMap<String, TableUsage> {
    let mut out: BTreeMap<String, TableUsage> = BTreeMap::new();
    for (function, usage) in by_function {
        for (op, u) in &usage.by_operation {
            let (table, operation) = op.split_once(':').unwrap_or(("?", op.as_str()));
            let e = out.entry(format!("{function}:{table}")).or_default();
            if is_read_operation(operation) {
                e.read_units += per_thousand(u.units, readings);
            } else {
                e.write_units += per_thousand(u.units, readings);
            }
        }
    }
    out
}

fn per_thousand(n: f64, readings: u64) -> f64 {
    if readings == 0 {
        0.0
    } else {
        n * 1000.0 / readings as f64
    }
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
    let timings = Arc::new(TimingsAfterMerges {
        inner: ps.ports.registry.clone(),
        cached: tokio::sync::Mutex::new(None),
    });
    let mut driver = match opts.stream {
        StreamKind::Kinesis => SimDriver::new(
            &opts.city,
            sim,
            KinesisSink::new(clients.kinesis.clone(), &opts.resources.stream),
            timings.clone(),
            ps.ports.lamps.clone(),
        )?,
        StreamKind::Memory => SimDriver::with_sink(
            opts.city.clone(),
            Simulator::new(&opts.city, sim)?,
            Control::Webster,
            timings.clone(),
            Box::new(MemoryReadings {
                source: memory.clone(),
                lamps: ps.ports.lamps.clone(),
            }),
        ),
    };

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
            let report = merge.merge(Closing::Watermark).await?;
            merge_nanos += t.elapsed().as_nanos();
            merge_runs += 1;
            windows_closed += report.closed.len();
            timings.forget().await;
        }
        eprintln!(
            "aws-measure: minute {minute}/{}: {readings} readings, {:.0} s",
            opts.minutes,
            wall.elapsed().as_secs_f64()
        );
    }

    let secs = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / 1e9;
    let mut by_function = BTreeMap::new();
    by_function.insert(
        "ingest".to_owned(),
        FunctionUsage::of(
            &pi.store.metrics().snapshot(),
            ingest_h.calls.load(Ordering::Relaxed),
            secs(&ingest_h.nanos),
        ),
    );
    by_function.insert(
        "fault".to_owned(),
        FunctionUsage::of(
            &pf.store.metrics().snapshot(),
            fault_h.calls.load(Ordering::Relaxed),
            secs(&fault_h.nanos),
        ),
    );
    by_function.insert(
        "merge".to_owned(),
        FunctionUsage::of(
            &pm.store.metrics().snapshot(),
            merge_runs,
            merge_nanos as f64 / 1e9,
        ),
    );
    let prices = Prices::shared()?;
    let sum = |f: fn(&FunctionUsage) -> f64| by_function.values().map(f).sum::<f64>();
    let write_units = sum(|u| u.write_units);
    let read_units = sum(|u| u.read_units);
    let write_requests = by_function.values().map(|u| u.write_requests).sum();
    let read_requests = by_function.values().map(|u| u.read_requests).sum();

    // Per million readings.
    let per_million = |x: f64| {
        if readings == 0 {
            0.0
        } else {
            x * 1e6 / readings as f64
        }
    };
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
    fn lambda_is_priced_by_the_shared_duration_model() {
        let d = Prices::shared()
            .unwrap_or_else(|e| panic!("{e}"))
            .lambda_duration;
        let u = |invocations, read_units, write_units| FunctionUsage {
            invocations,
            read_units,
            write_units,
            ..FunctionUsage::default()
        };
        // 30 batches of 120,000 readings at 512 MB (0.29 of a vCPU): 4.5 s + 0.41 s.
        let ingest = d.billed_seconds("ingest", &u(30, 0.0, 0.0), 120_000, 512);
        assert!(
            (ingest - (4.5 + 0.12 * 1769.0 / 512.0)).abs() < 1e-9,
            "{ingest}"
        );
        // A merge: 1 s a run, and its items at 50 MB/s (4 KB a read unit, 1 KB a write unit).
        let merge = d.billed_seconds("merge", &u(6, 1000.0, 2000.0), 120_000, 2048);
        assert!(
            (merge - (6.0 + (4_096_000.0 + 2_048_000.0) / 5e7)).abs() < 1e-9,
            "{merge}"
        );
        assert_eq!(
            d.billed_seconds("fault", &u(0, 0.0, 0.0), 120_000, 256),
            0.0
        );
    }

    #[test]
    fn the_shared_price_table_parses() {
        let p = Prices::shared().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.ddb_wru, 0.625e-6);
        assert_eq!(p.ddb_rru, 0.125e-6);
    }

    #[test]
    fn units_are_summed_per_function_and_table_and_told_read_from_write() {
        let mut ingest = FunctionUsage::default();
        for (op, units) in [
            ("state:BatchWriteItem", 8.0),
            ("state:TransactWriteItems", 4.0),
            ("state:BatchGetItem", 2.0),
            ("results:UpdateItem", 1.0),
        ] {
            ingest.by_operation.insert(
                op.to_owned(),
                traffic_aws::metrics::OperationUsage { requests: 1, units },
            );
        }
        let t = by_table(&BTreeMap::from([("ingest".to_owned(), ingest)]), 2_000);
        assert_eq!(
            t["ingest:state"],
            TableUsage {
                write_units: 6.0,
                read_units: 1.0
            }
        );
        assert_eq!(
            t["ingest:results"],
            TableUsage {
                write_units: 0.5,
                read_units: 0.0
            }
        );
    }

    #[test]
    fn fault_gets_a_batch_per_ten_seconds_of_a_shards_readings() {
        // 1,000 intersections of 4 lights on 2 shards: 2,000 a shard a minute, 334 per 10 s.
        assert_eq!(fault_batch(4_000, 2), 334);
        // 10,000 on 2 shards: 3,334 per 10 s, cut at the batch size.
        assert_eq!(fault_batch(40_000, 2), 1_000);
    }
}
