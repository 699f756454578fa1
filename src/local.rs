//! `traffic local`: the whole system in one process, on an embedded durable store.
//!
//! Each simulated period, in lock step:
//!
//! 1. the simulator reads the timings in force (the registry's, or the initial ones under fixed
//!    control) and the operator's repair orders, and produces one reading per light;
//! 2. the readings are appended to the durable in-process stream (partitioned over shards by
//!    the MD5 of the intersection id, as Kinesis does) *in the same transaction* as the
//!    simulator's new state, so a crash never loses or repeats a period;
//! 3. every shard's new records are delivered to `ingest` and `fault` in batches, as an event
//!    source mapping does (in order, partial batch responses honoured), and the shard's
//!    checkpoint advances;
//! 4. the merge runs (every `merge_every` periods), which retimes the intersections.
//!
//! Killed at any point and started again on the same data directory, it delivers what was
//! appended but not checkpointed (ingest skips what it already applied), runs the merge, and
//! goes on: no reading is counted twice or lost, and because every step is in lock step the
//! results are those of an uninterrupted run.

use crate::engine::Engine;
use crate::stream::{StreamRecord, shard_for, shard_id};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use merge::{Closing, Provisional};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use traffic_core::time::format_rfc3339_ms;
use traffic_core::{City, EngineConfig, IntersectionId, LightIndex};
use traffic_embedded::EmbeddedStore;
use traffic_functions::wiring::Ports;
use traffic_sim::{CityConfig, Controls, SimConfig, Simulator, generate_city};

/// Blob key of the simulator's state.
const SIM_BLOB: &str = "simulator";
/// Blob key of the run's settings (fixed at the first start of a data directory).
const RUN_BLOB: &str = "run";
/// Blob key of the city as first generated (the fixed timings).
const CITY_BLOB: &str = "initial-city";

/// How timings are controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Control {
    /// The merge's Webster timings reach the field each period.
    Webster,
    /// The initial timings stay (for comparison); the merge still computes new ones.
    Fixed,
}

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
            _ => Err(format!(
                "speed-up must be a positive number or `max`, got {s:?}"
            )),
        }
    }
}

/// How the live status is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusMode {
    /// Redrawn in place (when stderr is a terminal), else a line every few seconds.
    Auto,
    /// A line every few seconds.
    Lines,
    /// None.
    Off,
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
    pub control: Control,
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
    /// Whether the run reached its duration (rather than being stopped).
    pub completed: bool,
}

/// What the status display shows.
#[derive(Clone, Debug, Default)]
pub struct Status {
    sim_ms: i64,
    readings: u64,
    rate: f64,
    windows_closed: usize,
    top3: Vec<(String, f64)>,
    top3_window: String,
    open_alarms: usize,
    mean_delay: f64,
    control: String,
    stopping: bool,
}

impl Status {
    fn render(&self) -> Vec<String> {
        let top = if self.top3.is_empty() {
            "(no ranked window yet)".to_owned()
        } else {
            self.top3
                .iter()
                .map(|(id, v)| format!("{id} {v:.1} km/h"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            format!(
                "traffic local  simulated {}  ({} control){}",
                format_rfc3339_ms(self.sim_ms),
                self.control,
                if self.stopping { "  stopping…" } else { "" }
            ),
            format!(
                "  readings {:>10}   {:>9.0} readings/s   windows closed {:>5}",
                self.readings, self.rate, self.windows_closed
            ),
            format!("  fastest {}: {top}", self.top3_window),
            format!(
                "  open alarms {:>4}   mean delay {:.1} s/vehicle",
                self.open_alarms, self.mean_delay
            ),
        ]
    }
}

/// Peak resident set size of this process, MiB (from /proc on Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A running local system.
struct Local {
    store: EmbeddedStore,
    engine: Arc<Engine>,
    settings: RunSettings,
    initial: City,
    sim: Simulator,
    opts: LocalOptions,
}

/// Runs the local system until `stop` is set or the duration is reached.
pub async fn run(
    cfg: EngineConfig,
    opts: LocalOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let store = EmbeddedStore::open_relaxed(opts.data_dir.join("traffic.redb"))?;
    let ports = Ports::embedded(store.clone());
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
                ..SimConfig::default()
            },
        )?,
    };
    if let Some(addr) = opts.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let state = api::ApiState {
            ports: ports.clone(),
            cfg: cfg.clone(),
            token: opts.api_token.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, api::router(state)).await {
                tracing::error!(error = %e, "the HTTP API stopped");
            }
        });
        tracing::info!(%addr, "serving the API and the dashboard");
    }
    let engine = Arc::new(Engine::new(cfg, opts.provisional, ports));
    let mut local = Local {
        store,
        engine,
        settings,
        initial,
        sim,
        opts,
    };
    local.run(stop).await
}

impl Local {
    async fn run(&mut self, stop: Arc<AtomicBool>) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let status = Arc::new(Mutex::new(Status {
            control: format!("{:?}", self.settings.control).to_lowercase(),
            ..Status::default()
        }));
        let display = spawn_display(self.opts.status, status.clone());
        let mut record = match &self.opts.record {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening {}", p.display()))?,
            )),
            None => None,
        };

        // Whatever was appended before a crash and not yet delivered goes first.
        self.deliver_pending().await?;
        self.engine.merge(Closing::Watermark).await?;

        let end_ms = self.opts.duration_ms.map(|d| self.settings.start_ms + d);
        let period_ms = i64::from(self.sim.config().period_s) * 1000;
        let mut produced: u64 = 0;
        let mut steps: u64 = 0;
        let mut rate_mark = (Instant::now(), 0u64);
        let mut completed = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if end_ms.is_some_and(|e| self.sim.now_ms() + period_ms > e) {
                completed = true;
                break;
            }
            let (controls, repairs) = self.controls().await?;
            let readings = self.sim.step(&controls);
            let shards = self.settings.shards;
            let records: Vec<(u32, String, Vec<u8>)> = readings
                .iter()
                .map(|r| {
                    let key = r.intersection_id.as_str().to_owned();
                    let shard = shard_for(&key, shards) as u32;
                    (shard, key, r.to_json().into_bytes())
                })
                .collect();
            let state = serde_json::to_vec(&self.sim)?;
            self.store.append_step(
                &records,
                Utc::now().timestamp_millis(),
                SIM_BLOB,
                &state,
                &repairs,
            )?;
            if let Some(w) = record.as_mut() {
                for (_, _, data) in &records {
                    w.write_all(data)?;
                    w.write_all(b"\n")?;
                }
                w.flush()?;
            }
            produced += records.len() as u64;
            steps += 1;
            self.deliver_pending().await?;
            if steps.is_multiple_of(self.opts.merge_every.max(1)) {
                self.engine.merge(Closing::Watermark).await?;
            }
            if rate_mark.0.elapsed() >= Duration::from_secs(1) {
                self.update_status(&status, produced, &mut rate_mark)
                    .await?;
            }
            if let Speedup::Factor(f) = self.opts.speedup {
                let due = Duration::from_secs_f64(steps as f64 * period_ms as f64 / 1000.0 / f);
                let elapsed = started.elapsed();
                if due > elapsed {
                    sleep_unless_stopped(due - elapsed, &stop).await;
                }
            }
        }
        if let Ok(mut s) = status.lock() {
            s.stopping = true;
        }
        self.deliver_pending().await?;
        let closing = if completed {
            Closing::All
        } else {
            Closing::Watermark
        };
        self.engine.merge(closing).await?;
        self.store.sync()?;
        self.update_status(&status, produced, &mut rate_mark)
            .await?;
        if let Some(d) = display {
            d.abort();
        }
        let wall = started.elapsed().as_secs_f64();
        let results = self.engine.ports.results.results().await?;
        let alarms = self.engine.ports.lamps.alarms().await?;
        Ok(Summary {
            simulated_until: format_rfc3339_ms(self.sim.now_ms()),
            readings: produced,
            wall_s: wall,
            readings_per_s: produced as f64 / wall.max(1e-9),
            peak_rss_mib: peak_rss_mib(),
            mean_delay_s_per_vehicle: self.sim.mean_delay_s_per_vehicle(),
            windows_closed: results.iter().filter(|r| r.closed).count(),
            alarms: alarms.len(),
            completed,
        })
    }

    /// The timings in force and the repairs ordered since the last period (the orders stay
    /// queued until the period that carries them out is appended).
    async fn controls(&self) -> anyhow::Result<(Controls, Vec<(IntersectionId, LightIndex)>)> {
        let mut controls = Controls::fixed(&self.initial);
        if self.settings.control == Control::Webster {
            for x in self.engine.ports.registry.intersections().await? {
                controls.set_phases(x.id.clone(), x.phases);
            }
        }
        let repairs = self.store.repair_orders()?;
        for (id, light) in &repairs {
            controls.repair(id.clone(), *light);
        }
        Ok((controls, repairs))
    }

    /// Delivers every shard's records after its checkpoint, batch by batch, shards in
    /// parallel; each batch's checkpoint is stored once both functions took it.
    async fn deliver_pending(&self) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for shard in 0..self.settings.shards as u32 {
            let store = self.store.clone();
            let engine = self.engine.clone();
            let batch = self.opts.batch_size.max(1);
            tasks.spawn(async move { deliver_shard(&store, &engine, shard, batch).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.context("a shard consumer panicked")??;
        }
        Ok(())
    }

    async fn update_status(
        &self,
        status: &Arc<Mutex<Status>>,
        produced: u64,
        mark: &mut (Instant, u64),
    ) -> anyhow::Result<()> {
        let results = self.engine.ports.results.results().await?;
        let pane = self.engine.cfg.pane().to_string();
        let latest = results
            .iter()
            .filter(|r| r.length == pane && !r.top10.is_empty())
            .max_by_key(|r| r.key.map(|k| k.start_ms));
        let alarms = self.engine.ports.lamps.alarms().await?;
        let rate = (produced - mark.1) as f64 / mark.0.elapsed().as_secs_f64().max(1e-9);
        *mark = (Instant::now(), produced);
        if let Ok(mut s) = status.lock() {
            s.sim_ms = self.sim.now_ms();
            s.readings = produced;
            s.rate = rate;
            s.windows_closed = results.iter().filter(|r| r.closed).count();
            s.top3 = latest
                .map(|r| {
                    r.top10
                        .iter()
                        .take(3)
                        .map(|e| (e.intersection_id.to_string(), e.mean_speed_kmh))
                        .collect()
                })
                .unwrap_or_default();
            s.top3_window = latest
                .map(|r| {
                    format!(
                        "{} from {}{}",
                        r.length,
                        r.start,
                        if r.closed { "" } else { " (open)" }
                    )
                })
                .unwrap_or_default();
            s.open_alarms = alarms.iter().filter(|a| a.repaired_at.is_none()).count();
            s.mean_delay = self.sim.mean_delay_s_per_vehicle();
        }
        Ok(())
    }
}

/// One shard's consumer: batches after the checkpoint, to `ingest` and `fault`.
async fn deliver_shard(
    store: &EmbeddedStore,
    engine: &Engine,
    shard: u32,
    batch: usize,
) -> anyhow::Result<()> {
    let name = format!("consumer-{shard}");
    let mut after = store.checkpoint(&name)?.unwrap_or(0);
    loop {
        let records = store.read_log(shard, after, batch)?;
        let Some(last) = records.last().map(|r| r.seq) else {
            return Ok(());
        };
        let batch: Vec<StreamRecord> = records
            .into_iter()
            .map(|r| StreamRecord {
                seq: u128::from(r.seq),
                partition_key: r.partition_key,
                data: r.data,
                arrival: DateTime::<Utc>::from_timestamp_millis(r.arrival_ms).unwrap_or_default(),
            })
            .collect();
        engine.deliver(&shard_id(shard as usize), &batch).await?;
        store.set_checkpoint(&name, last)?;
        store.trim_log(shard, last)?;
        after = last;
    }
}

async fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(100))).await;
    }
}

/// Shows the status: redrawn in place on a terminal, else a line every 5 s.
fn spawn_display(
    mode: StatusMode,
    status: Arc<Mutex<Status>>,
) -> Option<tokio::task::JoinHandle<()>> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let (in_place, every) = match mode {
        StatusMode::Off => return None,
        StatusMode::Auto if tty => (true, Duration::from_millis(500)),
        _ => (false, Duration::from_secs(5)),
    };
    Some(tokio::spawn(async move {
        let mut drawn = 0usize;
        loop {
            tokio::time::sleep(every).await;
            let lines = match status.lock() {
                Ok(s) => s.render(),
                Err(_) => return,
            };
            let mut err = std::io::stderr().lock();
            if in_place {
                if drawn > 0 {
                    let _ = write!(err, "\x1b[{drawn}A");
                }
                for l in &lines {
                    let _ = writeln!(err, "\x1b[2K{l}");
                }
                drawn = lines.len();
            } else {
                let _ = writeln!(err, "{}", lines.join(" |"));
            }
        }
    }))
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
