//! The options of `traffic aws-setup`, `traffic simulate`, `traffic aws-local`,
//! `traffic aws-measure` and `traffic redrive`.

use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use traffic_app::aws::{AwsLocalOptions, MeasureOptions, SetupOptions, SimulateOptions};
use traffic_app::esm::OnFailure;
use traffic_app::runner::RunnerOptions;
use traffic_aws::setup::Resources;
use traffic_core::City;
use traffic_functions::Config;

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
    /// The names: the configuration's where set, the prefix's otherwise.
    pub fn resources(&self, config: &Config) -> Resources {
        traffic_app::aws::resources(&config.names, &self.prefix, self.shards)
    }
}

/// The city to use: a file, or a generated grid.
#[derive(clap::Args, Clone, Debug)]
pub struct CityArgs {
    /// A city file (JSON); without it a grid of `--intersections` is generated.
    #[arg(long)]
    pub city: Option<PathBuf>,
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

impl SetupArgs {
    /// What to set up.
    pub fn options(&self, config: &Config) -> anyhow::Result<SetupOptions> {
        Ok(SetupOptions {
            resources: self.resources.resources(config),
            city: self.city.city()?,
            alarm_queue: self.alarm_queue.clone(),
        })
    }
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
    record: Option<PathBuf>,
    /// Break one lamp before a chosen period (fault injection, repeatable):
    /// `INTERSECTION:LIGHT:COLOUR@PERIOD`, e.g. `I-0002:1:green@5` breaks the green lamp of
    /// light 1 of I-0002 before the sixth period (periods count from 0).
    #[arg(long = "break-lamp", value_name = "ID:LIGHT:COLOUR@PERIOD")]
    break_lamp: Vec<traffic_app::aws::LampBreak>,
}

impl SimulateArgs {
    /// What to simulate.
    pub fn options(&self) -> anyhow::Result<SimulateOptions> {
        let start_ms = self
            .start
            .as_deref()
            .map(|s| {
                traffic_core::time::parse_rfc3339_ms(s)
                    .ok_or_else(|| anyhow::anyhow!("--start: not an RFC 3339 time: {s}"))
            })
            .transpose()?;
        Ok(SimulateOptions {
            stream: self.stream.clone(),
            city: self.city.city()?,
            seed: self.city.seed,
            start_ms,
            steps: self.steps,
            speedup: self.speedup,
            failure_probability: self.failure_probability,
            record: self.record.clone(),
            breaks: self.break_lamp.clone(),
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

impl AwsLocalArgs {
    /// What to run.
    pub fn options(&self, config: &Config) -> anyhow::Result<AwsLocalOptions> {
        let on_failure = match self.on_failure.as_deref() {
            None => OnFailure::Log,
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                OnFailure::Sqs(u.to_owned())
            }
            Some(p) => OnFailure::File(p.into()),
        };
        Ok(AwsLocalOptions {
            resources: self.resources.resources(config),
            city: self.city.city()?,
            seed: self.city.seed,
            no_simulator: self.no_simulator,
            speedup: self.speedup,
            failure_probability: self.failure_probability,
            runner: RunnerOptions {
                batch_size: self.batch_size,
                batching_window: duration(&self.batching_window)?,
                merge_every: duration(&self.merge_every)?,
                max_attempts: self.max_attempts,
                on_failure,
                provisional: config.provisional,
                ..RunnerOptions::default()
            },
            steps: self.steps,
        })
    }
}

/// `traffic aws-measure`.
#[derive(clap::Args, Clone, Debug)]
pub struct MeasureArgs {
    /// Prefix of the resources' names; fresh by default (`measure-<pid>-<time>`), since the
    /// run expects empty tables and a new stream. Names from the environment are not used.
    #[arg(long)]
    prefix: Option<String>,
    /// Shards of the stream (the template's `StreamShardCount` default).
    #[arg(long, default_value_t = traffic_app::aws::measure::TEMPLATE.shards)]
    shards: i32,
    #[command(flatten)]
    city: CityArgs,
    /// Simulated minutes (a reading per light each).
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// First simulated instant (RFC 3339); default: whole panes before now, so that no
    /// reading is stamped after its arrival.
    #[arg(long)]
    start: Option<String>,
    /// Where the readings go: the emulator's Kinesis stream (`kinesis`), or a stream in
    /// memory with Kinesis' partitioning (`memory`: deterministic and faster on moto; the
    /// DynamoDB calls, which are what is measured, are the same).
    #[arg(long, default_value = "kinesis")]
    stream: traffic_app::aws::measure::StreamKind,
}

impl MeasureArgs {
    /// What to measure.
    pub fn options(&self) -> anyhow::Result<MeasureOptions> {
        let prefix = self
            .prefix
            .clone()
            .unwrap_or_else(|| format!("measure-{}-{}", std::process::id(), chrono_free_seconds()));
        let start_ms = self
            .start
            .as_deref()
            .map(|s| {
                traffic_core::time::parse_rfc3339_ms(s)
                    .ok_or_else(|| anyhow::anyhow!("--start: not an RFC 3339 time: {s}"))
            })
            .transpose()?;
        anyhow::ensure!(self.minutes > 0, "--minutes must be at least 1");
        anyhow::ensure!(self.shards > 0, "--shards must be at least 1");
        Ok(MeasureOptions {
            stream: self.stream,
            resources: Resources::with_prefix(&prefix, self.shards),
            city: self.city.city()?,
            seed: self.city.seed,
            minutes: self.minutes,
            start_ms,
            functions_endpoint: None,
        })
    }
}

/// Seconds since the epoch (for a fresh name).
fn chrono_free_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `traffic redrive`.
#[derive(clap::Args, Clone, Debug)]
pub struct RedriveArgs {
    /// The on-failure queue's URL (the stack's `IngestFailureQueueUrl` or
    /// `FaultFailureQueueUrl`, or the queue given to `traffic aws-local --on-failure`).
    #[arg(long)]
    queue: String,
    /// Whose failures the queue holds (`ingest` or `fault`), when its records' `functionArn`
    /// does not say.
    #[arg(long)]
    consumer: Option<traffic_app::aws::Consumer>,
    /// Read the records from this stream (by name) instead of the records' `streamArn`.
    #[arg(long)]
    stream: Option<String>,
    /// Most messages taken in one run.
    #[arg(long, default_value_t = 1000)]
    max_messages: u64,
}

impl RedriveArgs {
    /// What to redrive.
    pub fn options(&self) -> traffic_app::aws::RedriveOptions {
        traffic_app::aws::RedriveOptions {
            queue_url: self.queue.clone(),
            consumer: self.consumer,
            stream: self.stream.clone(),
            max_messages: self.max_messages,
        }
    }
}
