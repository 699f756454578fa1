//! `traffic local`: the whole system in one process, on an embedded durable store.
//!
//! Each simulated period, in lock step:
//!
//! 1. the simulator reads the timings in force (the registry's, or the initial ones under fixed
//!    control) and the operator's repair orders, and produces one reading per light;
//! 2. the readings are appended to the durable embedded log (partitioned over shards by the
//!    MD5 of the intersection id, as Kinesis does) *in the same transaction* as the
//!    simulator's new state, so a crash never loses or repeats a period ([`SimDriver`] with
//!    an [`EmbeddedSink`]);
//! 3. the event source mapping drains every shard's new records to `ingest` and `fault` in
//!    batches (in order, partial batch responses honoured), each mapping's checkpoint
//!    advancing durably ([`EventSourceMapping::drain`] over an [`EmbeddedLog`]);
//! 4. the merge runs (every `merge_every` periods), which retimes the intersections;
//! 5. the archive ([`archive`]), a third consumer of the log as Firehose is of the stream on
//!    AWS, writes the readings as Parquet under `<data dir>/archive`, and the merge writes
//!    each closed window's outputs there (`traffic_tables`): the tables `traffic query` reads.
//!
//! Killed at any point and started again on the same data directory, it delivers what was
//! appended but not checkpointed (ingest skips what it already applied), runs the merge, and
//! goes on: no reading is counted twice or lost, and because every step is in lock step the
//! results are those of an uninterrupted run.

pub use crate::driver::TimingControl;
use crate::driver::{EmbeddedSink, SIM_BLOB, SimDriver};
use crate::esm::{EventSourceMapping, MappingConfig};
use crate::functions::{CONSUMERS, Functions};
use crate::stop::Stop;
use anyhow::{Context, bail};
use archive::{ARCHIVE_CONSUMER, Archiver};
use merge::{CloseUpTo, Provisional};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use traffic_core::EngineConfig;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::time::format_rfc3339_ms;
use traffic_embedded::{EmbeddedLog, EmbeddedStore};
use traffic_ports::{ManualClock, SourceShards};
use traffic_sim::{CityConfig, SimConfig, Simulator, generate_city};
use traffic_tables::dir::DirArchive;

pub mod archive;
mod status;

pub use status::{Ranked, ShownWindow, Status, StatusMode, peak_rss_mib, terminal_width};

/// Blob key of the run's settings (fixed at the first start of a data directory).
const RUN_BLOB: &str = "run";
/// Blob key of the city as first generated (the fixed timings).
const CITY_BLOB: &str = "initial-city";

/// How fast simulated time runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speedup {
    /// Simulated seconds per wall second.
    Factor(f64),
    /// As fast as the machine goes.
    Max,
}

impl std::str::FromStr for Speedup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Speedup::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Speedup::Factor(x)),
            _ => Err(
                "not a speed-up: a positive number (simulated seconds per wall second) or max"
                    .to_owned(),
            ),
        }
    }
}

impl std::fmt::Display for Speedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speedup::Factor(x) => write!(f, "{x}"),
            Speedup::Max => f.write_str("max"),
        }
    }
}

impl Speedup {
    /// Simulated seconds per wall second; `max` is infinite (no pause between periods).
    pub fn factor(self) -> f64 {
        match self {
            Speedup::Factor(x) => x,
            Speedup::Max => f64::INFINITY,
        }
    }
}

/// The settings fixed when a data directory is first used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Intersections of the generated city.
    pub intersections: usize,
    /// Shards of the stream.
    pub shards: usize,
    /// Seed of the city and the traffic.
    pub seed: u64,
    /// First simulated instant, epoch ms.
    pub start_ms: i64,
    /// Probability that a reading breaks a lamp.
    pub failure_probability: f64,
    /// Fixed or Webster control.
    pub control: TimingControl,
}

/// Options of `traffic local`.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Settings used when the data directory is new.
    pub settings: RunSettings,
    /// Simulated time per wall time.
    pub speedup: Speedup,
    /// Stop when the simulated clock reaches start + this (ms); `None` runs until Ctrl-C.
    pub duration_ms: Option<i64>,
    /// Records per batch handed to the functions.
    pub batch_size: usize,
    /// Merge every this many periods.
    pub merge_every: u64,
    /// Which open windows the merge reports.
    pub provisional: Provisional,
    /// Append every reading produced to this file (JSON lines).
    pub record: Option<PathBuf>,
    /// Live status.
    pub status: StatusMode,
    /// Serve the HTTP API and the dashboard here.
    pub listen: Option<std::net::SocketAddr>,
    /// Bearer token required by the API's mutating requests.
    pub api_token: Option<String>,
    /// How the functions and the API handle alarms (the configuration's `ALARM_*`).
    pub alarms: AlarmPolicy,
}

/// What a run did, printed at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Simulated clock at the end.
    pub simulated_until: String,
    /// Readings produced in this process.
    pub readings: u64,
    /// Wall time, s.
    pub wall_s: f64,
    /// Readings produced and processed per wall second.
    pub readings_per_s: f64,
    /// Peak resident memory, MiB (Linux).
    pub peak_rss_mib: Option<f64>,
    /// The traffic model's mean delay per vehicle since the first start, s.
    pub mean_delay_s_per_vehicle: f64,
    /// Windows with final results.
    pub windows_closed: usize,
    /// Alarms raised.
    pub alarms: usize,
    /// Readings this process wrote to the archive (`<data dir>/archive`).
    pub archived_readings: usize,
    /// Whether the run reached its duration (rather than being stopped).
    pub completed: bool,
}

/// A running local system.
struct Local {
    store: EmbeddedStore,
    clock: Arc<ManualClock>,
    functions: Arc<Functions>,
    esm: EventSourceMapping,
    archiver: Archiver,
    driver: SimDriver,
    settings: RunSettings,
    opts: LocalOptions,
}

/// Runs the local system until `stop` is set or the duration is reached.
pub async fn run(cfg: EngineConfig, opts: LocalOptions, stop: Stop) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let store = EmbeddedStore::open_relaxed(opts.data_dir.join("traffic.redb"))?;
    // Everything runs on the simulated clock: the stream's arrival times, the functions'
    // statistics, the merge's idle shards and lease (set after every period).
    let clock = Arc::new(ManualClock::at(opts.settings.start_ms));
    let consumers = [CONSUMERS[0], CONSUMERS[1], ARCHIVE_CONSUMER];
    let log = Arc::new(EmbeddedLog::new(
        store.clone(),
        opts.settings.shards,
        &consumers,
    ));
    let settings = match store.blob(RUN_BLOB)? {
        Some(b) => {
            let stored: RunSettings = serde_json::from_slice(&b).context("stored run settings")?;
            if stored != opts.settings {
                tracing::warn!(
                    ?stored,
                    "resuming with the data directory's settings; the command line's differ"
                );
            }
            stored
        }
        None => opts.settings.clone(),
    };
    let initial = match store.blob(CITY_BLOB)? {
        Some(b) => serde_json::from_slice(&b).context("stored city")?,
        None => {
            let city = generate_city(&CityConfig {
                intersections: settings.intersections,
                seed: settings.seed,
                ..CityConfig::default()
            })?;
            store.put_intersections(&city.intersections)?;
            store.set_blob(CITY_BLOB, &serde_json::to_vec(&city)?)?;
            store.set_blob(RUN_BLOB, &serde_json::to_vec(&settings)?)?;
            city
        }
    };
    let sim = match store.blob(SIM_BLOB)? {
        Some(b) => serde_json::from_slice(&b).context("stored simulator state")?,
        None => Simulator::new(
            &initial,
            SimConfig {
                seed: settings.seed,
                start_ms: settings.start_ms,
                lamp_failure_probability: settings.failure_probability,
                // The field's yellow and lost time are those Webster's method assumes.
                yellow_s: cfg.webster.yellow_s,
                lost_time_per_phase_s: cfg.webster.lost_time_per_phase_s,
                ..SimConfig::default()
            },
        )?,
    };
    clock.set(sim.now_ms());
    let log = if settings.shards == opts.settings.shards {
        log
    } else {
        Arc::new(EmbeddedLog::new(store.clone(), settings.shards, &consumers))
    };
    // The merge archives each closed window's outputs beside the raw readings, where the API
    // reads an intersection's history.
    let outputs = Arc::new(DirArchive::new(archive::dir(&opts.data_dir)));
    let ports = store
        .ports()
        .with_clock(clock.clone())
        .with_stream(Arc::new(SourceShards(log.clone())))
        .with_archive(outputs.clone());
    if let Some(addr) = opts.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        // The API's writes commit durably: a 2xx answer survives a crash (the runner's own
        // commits stay relaxed and are redone after one).
        let state = api::ApiState {
            ports: store
                .durable()
                .ports()
                .with_clock(clock.clone())
                .with_stream(Arc::new(SourceShards(log.clone())))
                .with_archive(outputs),
            cfg: cfg.clone(),
            token: opts.api_token.clone(),
            alarms: opts.alarms.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, api::router(state)).await {
                tracing::error!(error = %e, "the HTTP API stopped");
            }
        });
        tracing::info!(%addr, "serving the API and the dashboard");
    }
    let functions = Arc::new(
        Functions::from_ports(cfg, opts.provisional, &opts.alarms, ports.clone())
            .with_merge_holder("traffic-local"),
    );
    let archiver = Archiver::open(
        archive::dir(&opts.data_dir),
        (*log).clone(),
        settings.shards,
    )
    .await?;
    let batch = opts.batch_size.max(1);
    let esm = EventSourceMapping::new(
        log.clone(),
        log,
        functions.mappings(|name| MappingConfig::in_process(name, batch)),
    );
    let mut driver = SimDriver::with_sink(
        initial,
        sim,
        settings.control,
        ports.registry.clone(),
        Box::new(EmbeddedSink::new(store.clone(), settings.shards)),
    );
    if let Some(p) = &opts.record {
        driver = driver.record_to(p)?;
    }
    let mut local = Local {
        store,
        clock,
        functions,
        esm,
        archiver,
        driver,
        settings,
        opts,
    };
    local.run(stop).await
}

impl Local {
    async fn run(&mut self, mut stop: Stop) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let status = Arc::new(Mutex::new(Status {
            control: format!("{:?}", self.settings.control).to_lowercase(),
            ..Status::default()
        }));
        let display = status::spawn_display(self.opts.status, status.clone());

        // Whatever was appended before a crash and not yet delivered goes first.
        self.esm.drain().await?;
        self.functions.merge(CloseUpTo::Watermark).await?;
        let mut archived = self.archiver.pull(self.driver.now_ms(), false).await?;

        let end_ms = self.opts.duration_ms.map(|d| self.settings.start_ms + d);
        let period_ms = i64::from(self.driver.simulator().config().period_s) * 1000;
        let mut produced: u64 = 0;
        let mut steps: u64 = 0;
        let mut rate_mark = (Instant::now(), 0u64);
        let mut completed = false;
        loop {
            if stop.is_stopped() {
                break;
            }
            if end_ms.is_some_and(|e| self.driver.now_ms() + period_ms > e) {
                completed = true;
                break;
            }
            let step = self.driver.step().await?;
            self.clock.set(self.driver.now_ms());
            produced += step.readings.len() as u64;
            steps += 1;
            self.esm.drain().await?;
            archived += self.archiver.pull(self.driver.now_ms(), false).await?;
            if steps.is_multiple_of(self.opts.merge_every.max(1)) {
                self.functions.merge(CloseUpTo::Watermark).await?;
            }
            if rate_mark.0.elapsed() >= Duration::from_secs(1) {
                self.update_status(&status, produced, &mut rate_mark)
                    .await?;
            }
            if let Speedup::Factor(f) = self.opts.speedup {
                let due = Duration::from_secs_f64(steps as f64 * period_ms as f64 / 1000.0 / f);
                let elapsed = started.elapsed();
                if due > elapsed {
                    tokio::select! {
                        _ = stop.wait() => {}
                        _ = tokio::time::sleep(due - elapsed) => {}
                    }
                }
            }
        }
        if let Ok(mut s) = status.lock() {
            s.stopping = true;
        }
        self.esm.drain().await?;
        let closing = if completed {
            CloseUpTo::All
        } else {
            CloseUpTo::Watermark
        };
        self.functions.merge(closing).await?;
        archived += self.archiver.pull(self.driver.now_ms(), true).await?;
        self.store.sync()?;
        self.update_status(&status, produced, &mut rate_mark)
            .await?;
        if let Some(d) = display {
            d.abort();
        }
        let wall = started.elapsed().as_secs_f64();
        let results = self.functions.ports.results.results().await?;
        let alarms = self.functions.ports.lamps.alarms().await?;
        let sim = self.driver.simulator();
        Ok(Summary {
            simulated_until: format_rfc3339_ms(sim.now_ms()),
            readings: produced,
            wall_s: wall,
            readings_per_s: produced as f64 / wall.max(1e-9),
            peak_rss_mib: peak_rss_mib(),
            mean_delay_s_per_vehicle: sim.mean_delay_s_per_vehicle(),
            windows_closed: results.iter().filter(|r| r.closed).count(),
            alarms: alarms.len(),
            archived_readings: archived.readings,
            completed,
        })
    }

    async fn update_status(
        &mut self,
        status: &Arc<Mutex<Status>>,
        produced: u64,
        mark: &mut (Instant, u64),
    ) -> anyhow::Result<()> {
        let results = self.functions.ports.results.results().await?;
        let pane = self.functions.cfg.pane();
        let latest = results
            .iter()
            .filter(|r| r.window.length == pane && !r.top.is_empty())
            .max_by_key(|r| r.window.start_ms);
        let alarms = self.functions.ports.lamps.alarms().await?;
        let rate = (produced - mark.1) as f64 / mark.0.elapsed().as_secs_f64().max(1e-9);
        *mark = (Instant::now(), produced);
        let sim = self.driver.simulator();
        if let Ok(mut s) = status.lock() {
            s.sim_ms = sim.now_ms();
            s.simulated = format_rfc3339_ms(s.sim_ms);
            s.readings = produced;
            s.readings_per_s = rate;
            s.windows_closed = results.iter().filter(|r| r.closed).count();
            s.fastest = latest
                .map(|r| {
                    r.top
                        .iter()
                        .take(3)
                        .map(|e| status::Ranked {
                            intersection: e.intersection_id.to_string(),
                            mean_speed_kmh: e.mean_speed_kmh,
                        })
                        .collect()
                })
                .unwrap_or_default();
            s.fastest_window = latest.map(|r| status::ShownWindow {
                length: r.length(),
                start: r.start(),
                closed: r.closed,
            });
            s.open_alarms = alarms.iter().filter(|a| a.repaired_at_ms.is_none()).count();
            s.mean_delay_s_per_vehicle = sim.mean_delay_s_per_vehicle();
            if self.opts.status == StatusMode::Json {
                status::print_json(&s);
            }
        }
        Ok(())
    }
}

/// Validates options that clap cannot.
pub fn check(opts: &LocalOptions) -> anyhow::Result<()> {
    if opts.settings.shards == 0 || opts.settings.shards > 64 {
        bail!("--shards must be 1..=64");
    }
    if !(0.0..=1.0).contains(&opts.settings.failure_probability) {
        bail!("--failure-probability must be 0..=1");
    }
    if opts.settings.intersections == 0 {
        bail!("--intersections must be at least 1");
    }
    Ok(())
}
