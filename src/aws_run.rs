//! The system on AWS's own APIs (AWS itself, LocalStack or moto): `traffic aws-setup`,
//! `traffic simulate --stream NAME` and `traffic aws-local`.
//!
//! - [`IngestHandler`] and [`FaultHandler`]: the Lambda handlers as [`BatchHandler`]s, for the
//!   event source mapping of `traffic-aws` ([`traffic_aws::esm`]);
//! - [`Runner`]: both mappings on the readings stream and the merge on a timer (in place of
//!   the EventBridge schedule);
//! - [`SimDriver`]: the simulated city put into the stream, reading the timings and repair
//!   orders from the registry before every period, so the control loop is closed;
//! - [`setup`]: the resources and the city, created if missing.

use anyhow::Context;
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use fault::Fault;
use ingest::Ingest;
use merge::{Closing, Merge, MergeReport, Provisional};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use traffic_aws::esm::{
    BatchHandler, EventSourceMapping, Mapping, MappingConfig, OnFailure, Progress,
};
use traffic_aws::kinesis::{KinesisSink, PutReport};
use traffic_aws::setup::{Created, Resources, ensure_all};
use traffic_aws::{AwsClients, DynamoStore, StoreOptions};
use traffic_core::reading::LampColour;
use traffic_core::{City, EngineConfig, IntersectionId, LightIndex, Reading};
use traffic_functions::directory::Directory;
use traffic_functions::wiring::Ports;
use traffic_ports::{LampStore, PortError, Registry};
use traffic_sim::{Controls, SimConfig, Simulator};

/// `ingest` as a batch handler.
pub struct IngestHandler {
    cfg: EngineConfig,
    ports: Ports,
    directory: Directory,
}

impl IngestHandler {
    /// `ingest` over `ports`.
    pub fn new(cfg: EngineConfig, ports: Ports) -> Self {
        Self {
            cfg,
            ports,
            directory: Directory::default(),
        }
    }
}

#[async_trait]
impl BatchHandler for IngestHandler {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        Ingest {
            cfg: &self.cfg,
            state: self.ports.state.as_ref(),
            registry: self.ports.registry.as_ref(),
            directory: &self.directory,
            stats: self.ports.stats.as_ref(),
        }
        .handle(event)
        .await
    }
}

/// `fault` as a batch handler.
pub struct FaultHandler {
    ports: Ports,
    directory: Directory,
}

impl FaultHandler {
    /// `fault` over `ports`.
    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            directory: Directory::default(),
        }
    }
}

#[async_trait]
impl BatchHandler for FaultHandler {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        Fault {
            lamps: self.ports.lamps.as_ref(),
            publisher: self.ports.publisher.as_ref(),
            registry: self.ports.registry.as_ref(),
            directory: &self.directory,
            stats: self.ports.stats.as_ref(),
        }
        .handle(event)
        .await
    }
}

/// How the mappings read and the merge runs.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Records per batch.
    pub batch_size: usize,
    /// Time to gather a batch.
    pub batching_window: Duration,
    /// Wait between reads of an idle shard.
    pub poll_interval: Duration,
    /// Tries of a batch before it goes to the on-failure destination.
    pub max_attempts: u32,
    /// Where failed batches go.
    pub on_failure: OnFailure,
    /// How often the merge runs.
    pub merge_every: Duration,
    /// Which open windows get provisional results.
    pub provisional: Provisional,
    /// How often the shard list is read (resharding).
    pub list_interval: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            batching_window: Duration::ZERO,
            poll_interval: Duration::from_secs(1),
            max_attempts: 5,
            on_failure: OnFailure::Log,
            merge_every: Duration::from_secs(60),
            provisional: Provisional::All,
            list_interval: Duration::from_secs(10),
        }
    }
}

impl RunnerOptions {
    /// The mapping settings for consumer `name`.
    pub fn mapping(&self, name: &str) -> MappingConfig {
        MappingConfig {
            batch_size: self.batch_size,
            batching_window: self.batching_window,
            poll_interval: self.poll_interval,
            max_attempts: self.max_attempts,
            on_failure: self.on_failure.clone(),
            ..MappingConfig::new(name)
        }
    }
}

/// Counts of the merge runs, observable while they go on.
#[derive(Debug, Default)]
pub struct MergeRuns {
    runs: AtomicU64,
    failures: AtomicU64,
    changed: Notify,
    last: std::sync::Mutex<Option<MergeReport>>,
}

impl MergeRuns {
    /// Runs finished (successful or not).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// Runs that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The last successful run's report.
    pub fn last(&self) -> Option<MergeReport> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Waits until at least `n` runs have finished, or `timeout` passes.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.runs() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

/// The functions running against a stream: `ingest` and `fault` behind the event source
/// mapping, `merge` on a timer.
pub struct Runner {
    progress: Arc<Progress>,
    merges: Arc<MergeRuns>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Runner {
    /// Starts the mappings on `stream` and the merge timer.
    pub async fn start(
        cfg: EngineConfig,
        ports: Ports,
        clients: &AwsClients,
        stream: &str,
        opts: RunnerOptions,
    ) -> anyhow::Result<Self> {
        let mappings = vec![
            Mapping {
                config: opts.mapping("ingest"),
                handler: Arc::new(IngestHandler::new(cfg.clone(), ports.clone())),
            },
            Mapping {
                config: opts.mapping("fault"),
                handler: Arc::new(FaultHandler::new(ports.clone())),
            },
        ];
        let esm = EventSourceMapping::new(clients, stream, mappings)
            .await?
            .with_list_interval(opts.list_interval);
        let progress = esm.progress();
        let (tx, rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(esm.run(rx.clone()));
        let merges = Arc::new(MergeRuns::default());
        tasks.spawn(merge_timer(
            cfg,
            opts.provisional,
            ports,
            opts.merge_every,
            merges.clone(),
            rx,
        ));
        Ok(Self {
            progress,
            merges,
            shutdown: tx,
            tasks,
        })
    }

    /// The mappings' counters.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// The merge runs.
    pub fn merges(&self) -> Arc<MergeRuns> {
        self.merges.clone()
    }

    /// Waits until both mappings have handled (or given up on) `records` records, or
    /// `timeout` passes.
    pub async fn wait_for_records(&self, records: u64, timeout: Duration) -> bool {
        self.progress
            .wait_until(timeout, |s| {
                ["ingest", "fault"].iter().all(|m| {
                    s.get(*m)
                        .is_some_and(|x| x.records + x.records_to_destination >= records)
                })
            })
            .await
    }

    /// Stops everything and waits for it.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn merge_timer(
    cfg: EngineConfig,
    provisional: Provisional,
    ports: Ports,
    every: Duration,
    runs: Arc<MergeRuns>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            _ = tokio::time::sleep(every) => {}
        }
        let merge = Merge {
            cfg: &cfg,
            provisional,
            state: ports.state.as_ref(),
            registry: ports.registry.as_ref(),
            results: ports.results.as_ref(),
            stream: ports.stream.as_deref(),
        };
        match merge.run(Closing::Watermark).await {
            Ok(report) => {
                tracing::info!(
                    closed = report.closed.len(),
                    provisional = report.provisional,
                    retimed = report.retimed,
                    panes_deleted = report.panes_deleted,
                    "merge run"
                );
                if let Ok(mut l) = runs.last.lock() {
                    *l = Some(report);
                }
            }
            Err(e) => {
                runs.failures.fetch_add(1, Ordering::SeqCst);
                tracing::error!(error = %e, "merge run failed; the next run tries again");
            }
        }
        runs.runs.fetch_add(1, Ordering::SeqCst);
        runs.changed.notify_waiters();
    }
}

/// What changed in the controls before a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlsUpdate {
    /// Intersections whose new timings (retimed or edited) were taken up.
    pub retimed: Vec<IntersectionId>,
    /// Lights repaired.
    pub repaired: usize,
}

/// What one step did.
#[derive(Clone, Debug)]
pub struct Step {
    /// The readings sent.
    pub readings: Vec<Reading>,
    /// The `PutRecords` calls.
    pub put: PutReport,
    /// What the registry changed first.
    pub controls: ControlsUpdate,
    /// When the put finished.
    pub put_at: Instant,
}

/// The simulated city, sending its readings to a stream and taking its timings and repairs
/// from the registry.
pub struct SimDriver {
    sim: Simulator,
    controls: Controls,
    sink: KinesisSink,
    registry: Arc<dyn Registry>,
    lamps: Arc<dyn LampStore>,
    record: Option<std::io::BufWriter<std::fs::File>>,
}

impl SimDriver {
    /// A simulator of `city` under `config`, sending to `sink`.
    pub fn new(
        city: &City,
        config: SimConfig,
        sink: KinesisSink,
        registry: Arc<dyn Registry>,
        lamps: Arc<dyn LampStore>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            sim: Simulator::new(city, config)?,
            controls: Controls::fixed(city),
            sink,
            registry,
            lamps,
            record: None,
        })
    }

    /// Also appends every reading sent to `path` (JSON lines, as `traffic replay` reads).
    pub fn record_to(mut self, path: &Path) -> anyhow::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        self.record = Some(std::io::BufWriter::new(f));
        Ok(self)
    }

    /// The simulator (to inspect it, or to break a lamp).
    pub fn simulator(&mut self) -> &mut Simulator {
        &mut self.sim
    }

    /// The controls in force.
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// Takes the registry's timings where they differ from those in force (a retiming by the
    /// merge, or an operator's edit through the API) and the repair orders into the controls.
    pub async fn refresh_controls(&mut self) -> Result<ControlsUpdate, PortError> {
        let mut update = ControlsUpdate::default();
        for x in self.registry.intersections().await? {
            if self.controls.timings.get(&x.id) != Some(&x.phases) {
                self.controls.set_phases(x.id.clone(), x.phases);
                update.retimed.push(x.id);
            }
        }
        for (id, light) in self.lamps.take_repairs().await? {
            self.controls.repair(id, light);
            update.repaired += 1;
        }
        Ok(update)
    }

    /// One period: controls from the registry, a step of the simulator, its readings put.
    pub async fn step(&mut self) -> anyhow::Result<Step> {
        let controls = self.refresh_controls().await?;
        let readings = self.sim.step(&self.controls);
        self.controls.clear_repairs();
        if let Some(w) = self.record.as_mut() {
            for r in &readings {
                writeln!(w, "{}", r.to_json())?;
            }
            w.flush()?;
        }
        let put = self.sink.put_readings(&readings).await?;
        Ok(Step {
            readings,
            put,
            controls,
            put_at: Instant::now(),
        })
    }
}

/// Creates the resources (unless they exist) and puts the city's intersections that the
/// registry does not have yet.
pub async fn setup(
    clients: &AwsClients,
    resources: &Resources,
    city: &City,
    cfg: &EngineConfig,
) -> anyhow::Result<(Created, DynamoStore)> {
    let created = ensure_all(clients, resources).await?;
    let store = DynamoStore::new(
        clients.dynamodb.clone(),
        created.names.clone(),
        StoreOptions::for_longest_window(cfg.longest().ms(), |k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?,
    );
    for x in &city.intersections {
        match store.create_intersection(x).await {
            Ok(()) | Err(PortError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((created, store))
}

/// Where the system's resources are: names from the environment (`READINGS_STREAM`,
/// `STATE_TABLE`, ...), else from `--prefix`.
#[derive(clap::Args, Clone, Debug)]
pub struct ResourceArgs {
    /// Prefix of the names not given by the environment (`<prefix>-readings`, `-state`,
    /// `-registry`, `-results`, `-alarms`).
    #[arg(long, default_value = "traffic")]
    pub prefix: String,
    /// Shards of the stream, when it is created.
    #[arg(long, default_value_t = 2)]
    pub shards: i32,
}

impl ResourceArgs {
    /// The names: the environment's where set, the prefix's otherwise.
    pub fn resources(&self) -> Resources {
        let mut r = Resources::with_prefix(&self.prefix, self.shards);
        let env = traffic_aws::AwsNames::from_env();
        if let Some(s) = env.readings_stream {
            r.stream = s;
        }
        if let Some(s) = env.state_table {
            r.state_table = s;
        }
        if let Some(s) = env.registry_table {
            r.registry_table = s;
        }
        if let Some(s) = env.results_table {
            r.results_table = s;
        }
        if let Some(arn) = env.alarm_topic_arn {
            // The topic's name is the ARN's last part.
            r.topic = arn.rsplit(':').next().unwrap_or(&arn).to_owned();
        }
        r
    }
}

/// The city to use: a file, or a generated grid.
#[derive(clap::Args, Clone, Debug)]
pub struct CityArgs {
    /// A city file (JSON); without it a grid of `--intersections` is generated.
    #[arg(long)]
    pub city: Option<std::path::PathBuf>,
    /// Intersections of the generated city.
    #[arg(long, default_value_t = 50)]
    pub intersections: usize,
    /// Seed of the generated city and of its traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl CityArgs {
    /// Reads or generates the city.
    pub fn city(&self) -> anyhow::Result<City> {
        match &self.city {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Ok(City::parse(&text).with_context(|| format!("in {}", p.display()))?)
            }
            None => Ok(traffic_sim::generate_city(&traffic_sim::CityConfig {
                intersections: self.intersections,
                seed: self.seed,
                ..traffic_sim::CityConfig::default()
            })?),
        }
    }
}

/// `traffic aws-setup`.
#[derive(clap::Args, Clone, Debug)]
pub struct SetupArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    #[command(flatten)]
    city: CityArgs,
    /// Also create this SQS queue and subscribe it to the alarm topic.
    #[arg(long)]
    alarm_queue: Option<String>,
}

/// `traffic simulate`.
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// The Kinesis stream to put readings into.
    #[arg(long, env = "READINGS_STREAM")]
    pub stream: String,
    #[command(flatten)]
    city: CityArgs,
    /// First simulated instant (RFC 3339); default now, rounded down to the period.
    #[arg(long)]
    start: Option<String>,
    /// Simulated periods (of 60 s) to run; without it, until Ctrl-C.
    #[arg(long)]
    steps: Option<u64>,
    /// Simulated seconds per wall second (60: a period each second).
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Probability that a reading breaks one of its light's lamps.
    #[arg(long, default_value_t = 0.0002)]
    failure_probability: f64,
    /// Also append the readings to this file (JSON lines, for `traffic replay`).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    /// Break one lamp before a chosen period (fault injection, repeatable):
    /// `INTERSECTION:LIGHT:COLOUR@PERIOD`, e.g. `I-0002:1:green@5` breaks the green lamp of
    /// light 1 of I-0002 before the sixth period (periods count from 0).
    #[arg(long = "break-lamp", value_name = "ID:LIGHT:COLOUR@PERIOD")]
    break_lamp: Vec<LampBreak>,
}

/// A lamp to break before a given period of the simulation (`traffic simulate --break-lamp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LampBreak {
    /// The intersection.
    pub intersection: IntersectionId,
    /// Its light.
    pub light: LightIndex,
    /// The lamp.
    pub colour: LampColour,
    /// The period (from 0) before which it breaks.
    pub period: u64,
}

impl std::str::FromStr for LampBreak {
    type Err = String;

    /// Parses `INTERSECTION:LIGHT:COLOUR@PERIOD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape =
            || format!("{s:?}: expected INTERSECTION:LIGHT:COLOUR@PERIOD, e.g. I-0002:1:green@5");
        let (lamp, period) = s.rsplit_once('@').ok_or_else(shape)?;
        let mut parts = lamp.rsplitn(3, ':');
        let (Some(colour), Some(light), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        let colour = LampColour::ALL
            .into_iter()
            .find(|c| c.as_str() == colour)
            .ok_or_else(|| format!("{s:?}: the colour must be red, yellow or green"))?;
        Ok(Self {
            intersection: IntersectionId::parse(id).map_err(|e| format!("{s:?}: {e}"))?,
            light: light
                .parse::<i64>()
                .map_err(|e| e.to_string())
                .and_then(|l| LightIndex::new(l).map_err(|e| e.to_string()))
                .map_err(|e| format!("{s:?}: {e}"))?,
            colour,
            period: period
                .parse()
                .map_err(|e| format!("{s:?}: the period is not a count: {e}"))?,
        })
    }
}

/// `traffic aws-local`.
#[derive(clap::Args, Clone, Debug)]
pub struct AwsLocalArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    #[command(flatten)]
    city: CityArgs,
    /// Only consume the stream (someone else runs `traffic simulate`).
    #[arg(long)]
    no_simulator: bool,
    /// Simulated seconds per wall second for the built-in simulator.
    #[arg(long, default_value_t = 60.0)]
    speedup: f64,
    /// Probability that a reading breaks one of its light's lamps.
    #[arg(long, default_value_t = 0.0002)]
    failure_probability: f64,
    /// Records per batch.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Time to gather a batch (e.g. `5s`).
    #[arg(long, default_value = "0s")]
    batching_window: String,
    /// How often the merge runs (the EventBridge schedule's rate).
    #[arg(long, default_value = "10s")]
    merge_every: String,
    /// Tries of a batch before it goes to the on-failure destination.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// On-failure destination: a file path, or an SQS queue URL (`https://…` or `http://…`).
    #[arg(long)]
    on_failure: Option<String>,
    /// Stop after this many simulated periods.
    #[arg(long)]
    steps: Option<u64>,
}

fn duration(s: &str) -> anyhow::Result<Duration> {
    let ms = traffic_core::window::parse_duration_ms(s).or_else(|e| {
        if s.trim() == "0s" || s.trim() == "0" {
            Ok(0)
        } else {
            Err(e)
        }
    })?;
    Ok(Duration::from_millis(ms.max(0) as u64))
}

fn engine_config() -> anyhow::Result<EngineConfig> {
    Ok(EngineConfig::from_lookup(|k| std::env::var(k).ok())?)
}

/// Prints the environment the functions need for `created` (to stdout, or to stderr when
/// stdout is for something else).
fn print_env(created: &Created, stderr: bool) {
    let n = &created.names;
    let out = |line: String| {
        if stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    out("export TRAFFIC_STORE=dynamodb".into());
    for (k, v) in [
        ("READINGS_STREAM", &n.readings_stream),
        ("STATE_TABLE", &n.state_table),
        ("REGISTRY_TABLE", &n.registry_table),
        ("RESULTS_TABLE", &n.results_table),
        ("ALARM_TOPIC_ARN", &n.alarm_topic_arn),
    ] {
        if let Some(v) = v {
            out(format!("export {k}={v}"));
        }
    }
}

/// `traffic aws-setup`: creates what is missing and prints the environment to use.
pub async fn cmd_setup(args: SetupArgs) -> anyhow::Result<()> {
    let clients = AwsClients::from_env().await;
    let cfg = engine_config()?;
    let city = args.city.city()?;
    let (created, _) = setup(&clients, &args.resources.resources(), &city, &cfg).await?;
    if let Some(q) = &args.alarm_queue {
        let queue = traffic_aws::setup::ensure_queue(&clients, q).await?;
        traffic_aws::setup::subscribe_queue(&clients, &created.topic_arn, &queue).await?;
        eprintln!("alarms also go to {}", queue.url);
    }
    eprintln!(
        "ready: stream {}, {} intersections in the registry",
        created.stream_arn,
        city.intersections.len()
    );
    print_env(&created, false);
    Ok(())
}

fn sim_config(seed: u64, start: Option<&str>, failure: f64) -> anyhow::Result<SimConfig> {
    let start_ms = match start {
        Some(s) => traffic_core::time::parse_rfc3339_ms(s)
            .ok_or_else(|| anyhow::anyhow!("--start: not an RFC 3339 time: {s}"))?,
        None => {
            let now = chrono::Utc::now().timestamp_millis();
            now - now.rem_euclid(60_000)
        }
    };
    Ok(SimConfig {
        seed,
        start_ms,
        lamp_failure_probability: failure,
        ..SimConfig::default()
    })
}

async fn run_simulator(
    mut driver: SimDriver,
    period: Duration,
    steps: Option<u64>,
    breaks: &[LampBreak],
    stop: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    let mut n = 0;
    let mut next = tokio::time::Instant::now();
    while steps.is_none_or(|s| n < s) && !*stop.borrow() {
        for b in breaks.iter().filter(|b| b.period == n) {
            let sim = driver.simulator();
            anyhow::ensure!(
                sim.break_lamp(&b.intersection, b.light, b.colour),
                "--break-lamp: the city has no light {} at {}",
                b.light.get(),
                b.intersection
            );
            tracing::info!(intersection = %b.intersection, light = b.light.get(), lamp = b.colour.as_str(), period = n, "lamp broken");
        }
        let s = driver.step().await?;
        sent += s.readings.len() as u64;
        n += 1;
        if !s.controls.retimed.is_empty() || s.controls.repaired > 0 {
            tracing::info!(
                retimed = s.controls.retimed.len(),
                repaired = s.controls.repaired,
                "controls updated from the registry"
            );
        }
        next += period;
        let mut stop = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(sent)
}

fn ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
        // Keep the sender alive so receivers see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}

/// `traffic simulate --stream NAME`: the simulated city against a real stream, taking its
/// timings and repairs from the registry (`REGISTRY_TABLE`) each period.
pub async fn cmd_simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let clients = AwsClients::from_env().await;
    let ports = Ports::aws_from_env().await?;
    let city = args.city.city()?;
    if ports.registry.intersections().await?.is_empty() {
        for x in &city.intersections {
            ports.registry.put_intersection(x).await?;
        }
        eprintln!(
            "registry was empty: loaded {} intersections",
            city.intersections.len()
        );
    }
    let cfg = sim_config(
        args.city.seed,
        args.start.as_deref(),
        args.failure_probability,
    )?;
    let period = Duration::from_secs_f64(f64::from(cfg.period_s) / args.speedup.max(1e-3));
    let mut driver = SimDriver::new(
        &city,
        cfg,
        KinesisSink::new(clients.kinesis.clone(), &args.stream),
        ports.registry.clone(),
        ports.lamps.clone(),
    )?;
    if let Some(p) = &args.record {
        driver = driver.record_to(p)?;
    }
    eprintln!(
        "simulating {} intersections into {} (a period every {:?}); Ctrl-C stops",
        city.intersections.len(),
        args.stream,
        period
    );
    let sent = run_simulator(driver, period, args.steps, &args.break_lamp, ctrl_c()).await?;
    eprintln!("{sent} readings put");
    Ok(())
}

/// `traffic aws-local`: the whole system against AWS's APIs at `AWS_ENDPOINT_URL` (or AWS):
/// resources created if missing, the simulator, both mappings and the merge timer.
pub async fn cmd_aws_local(args: AwsLocalArgs) -> anyhow::Result<()> {
    let clients = AwsClients::from_env().await;
    let cfg = engine_config()?;
    let city = args.city.city()?;
    let resources = args.resources.resources();
    let (created, store) = setup(&clients, &resources, &city, &cfg).await?;
    print_env(&created, true);
    let ports = Ports::aws(
        store.clone(),
        traffic_aws::sns::SnsPublisher::new(clients.sns.clone(), Some(created.topic_arn.clone())),
    )
    .with_stream(traffic_aws::KinesisShards::new(
        clients.kinesis.clone(),
        Some(resources.stream.clone()),
    ));
    let on_failure = match args.on_failure.as_deref() {
        None => OnFailure::Log,
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            OnFailure::Sqs(u.to_owned())
        }
        Some(p) => OnFailure::File(p.into()),
    };
    let opts = RunnerOptions {
        batch_size: args.batch_size,
        batching_window: duration(&args.batching_window)?,
        merge_every: duration(&args.merge_every)?,
        max_attempts: args.max_attempts,
        on_failure,
        ..RunnerOptions::default()
    };
    let runner = Runner::start(cfg, ports.clone(), &clients, &resources.stream, opts).await?;
    let stop = ctrl_c();
    eprintln!("traffic aws-local on {}: Ctrl-C stops", resources.stream);
    if args.no_simulator {
        let mut s = stop.clone();
        let _ = s.changed().await;
    } else {
        let sim = sim_config(args.city.seed, None, args.failure_probability)?;
        let period = Duration::from_secs_f64(f64::from(sim.period_s) / args.speedup.max(1e-3));
        let driver = SimDriver::new(
            &city,
            sim,
            KinesisSink::new(clients.kinesis.clone(), &resources.stream),
            ports.registry.clone(),
            ports.lamps.clone(),
        )?;
        let sent = run_simulator(driver, period, args.steps, &[], stop.clone()).await?;
        runner.wait_for_records(sent, Duration::from_secs(60)).await;
    }
    let progress = runner.progress().snapshot();
    let merges = runner.merges().runs();
    runner.stop().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "mappings": progress,
            "merge_runs": merges,
            "dynamodb": store.metrics().snapshot(),
        }))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LampBreak;

    #[test]
    fn a_lamp_break_names_the_intersection_light_colour_and_period() {
        let b: LampBreak = "I-0002:1:green@5".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.intersection.as_str(), "I-0002");
        assert_eq!(b.light.get(), 1);
        assert_eq!(b.colour.as_str(), "green");
        assert_eq!(b.period, 5);
    }

    #[test]
    fn an_intersection_id_may_itself_contain_colons() {
        let b: LampBreak = "north:I-7:3:red@0"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.intersection.as_str(), "north:I-7");
        assert_eq!((b.light.get(), b.period), (3, 0));
    }

    #[test]
    fn a_malformed_lamp_break_is_refused_with_the_expected_shape() {
        for bad in [
            "I-0002:1:green",
            "I-0002:green@5",
            "I-0002:4:green@5",
            "I-0002:1:blue@5",
            "I-0002:1:green@-1",
            ":1:green@5",
        ] {
            let err = bad.parse::<LampBreak>().err();
            assert!(err.is_some(), "{bad} was accepted");
        }
        let err = "I-0002:1:green"
            .parse::<LampBreak>()
            .err()
            .unwrap_or_default();
        assert!(err.contains("INTERSECTION:LIGHT:COLOUR@PERIOD"), "{err}");
    }
}
