//! The options of `traffic aws-setup`, `traffic simulate`, `traffic aws-local`,
//! `traffic aws-measure` and `traffic redrive`.

use crate::values::{Instant, Span, at_least_one, positive_span, probability, shards_kinesis};
use anyhow::Context;
use clap::builder::TypedValueParser;
use std::path::PathBuf;
use traffic_app::aws::{AwsLocalOptions, MeasureOptions, SetupOptions, SimulateOptions};
use traffic_app::esm::OnFailure;
use traffic_app::local::Speedup;
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
    /// Shards of the stream, when it is created, 1 to 500 (2 rather than the template's 1:
    /// two shards show the per-shard ordering and watermark for about $11 a month more).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = shards_kinesis())]
    pub shards: u32,
}

impl ResourceArgs {
    /// The names: the configuration's where set, the prefix's otherwise.
    pub fn resources(&self, config: &Config) -> Resources {
        traffic_app::aws::resources(&config.names, &self.prefix, shard_count(self.shards))
    }
}

/// A shard count as the SDK takes it (at most 500: clap has checked).
fn shard_count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The city to use: a file, or a generated grid.
#[derive(clap::Args, Clone, Debug)]
pub struct CityArgs {
    /// A city file (JSON); without it a grid of `--intersections` is generated.
    #[arg(long)]
    pub city: Option<PathBuf>,
    /// Intersections of the generated city.
    #[arg(long, default_value_t = 50, value_parser = at_least_one::<usize>())]
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
    #[arg(long, value_name = "INSTANT")]
    start: Option<Instant>,
    /// Simulated periods (of 60 s) to run; without it, until Ctrl-C.
    #[arg(long, value_parser = at_least_one::<u64>())]
    steps: Option<u64>,
    /// Simulated seconds per wall second (a positive number), or `max` (60: a period each
    /// second). 1 by default, unlike `local` and `aws-local`: the readings go to a real
    /// stream, which rejects those stamped more than `TRAFFIC_MAX_CLOCK_SKEW` after their
    /// arrival, so a faster run starts in the past.
    #[arg(long, value_name = "X|max", default_value = "1")]
    speedup: Speedup,
    /// Probability that a reading breaks one of its light's lamps (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0002, value_parser = probability)]
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
        Ok(SimulateOptions {
            stream: self.stream.clone(),
            city: self.city.city()?,
            seed: self.city.seed,
            start_ms: self.start.map(|i| i.0),
            steps: self.steps,
            speedup: self.speedup.factor(),
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
    /// Simulated seconds per wall second for the built-in simulator (a positive number), or
    /// `max`.
    #[arg(long, value_name = "X|max", default_value = "60")]
    speedup: Speedup,
    /// Probability that a reading breaks one of its light's lamps (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0002, value_parser = probability)]
    failure_probability: f64,
    /// Records per batch.
    #[arg(long, default_value_t = 500, value_parser = at_least_one::<usize>())]
    batch_size: usize,
    /// Time to gather a batch (a duration such as 5s; 0 for none).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    batching_window: Span,
    /// Wall time between merge runs, as the EventBridge schedule's rate (a duration such as
    /// 10s or 5m). Wall time, unlike `local` and `sumo`, whose merge follows the simulated
    /// clock: here the functions run on AWS's clock. 10s rather than the schedule's 5m, so
    /// that results appear while one watches.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_span)]
    merge_every: Span,
    /// Tries of a batch before it goes to the on-failure destination.
    #[arg(long, default_value_t = 5, value_parser = at_least_one::<u32>())]
    max_attempts: u32,
    /// On-failure destination: a file path, or an SQS queue URL (`https://…` or `http://…`).
    #[arg(long)]
    on_failure: Option<String>,
    /// Stop after this many simulated periods.
    #[arg(long, value_parser = at_least_one::<u64>())]
    steps: Option<u64>,
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
            speedup: self.speedup.factor(),
            failure_probability: self.failure_probability,
            runner: RunnerOptions {
                batch_size: self.batch_size,
                batching_window: self.batching_window.duration(),
                merge_every: self.merge_every.duration(),
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
    /// Shards of the stream, 1 to 500 (the template's `StreamShardCount` default: this
    /// measures what the template deploys).
    #[arg(
        long,
        value_name = "N",
        default_value_t = traffic_app::aws::measure::TEMPLATE.shards.unsigned_abs(),
        value_parser = shards_kinesis()
    )]
    shards: u32,
    #[command(flatten)]
    city: CityArgs,
    /// Simulated minutes (a reading per light each).
    #[arg(long, default_value_t = 30, value_parser = at_least_one::<u64>())]
    minutes: u64,
    /// First simulated instant (RFC 3339); default: whole panes before now, so that no
    /// reading is stamped after its arrival.
    #[arg(long, value_name = "INSTANT")]
    start: Option<Instant>,
    /// Where the readings go: the emulator's Kinesis stream (`kinesis`), or a stream in
    /// memory with Kinesis' partitioning (`memory`: deterministic and faster on moto; the
    /// DynamoDB calls, which are what is measured, are the same).
    #[arg(
        long,
        default_value = "kinesis",
        value_parser = clap::builder::PossibleValuesParser::new(["kinesis", "memory"])
            .try_map(|s| s.parse::<traffic_app::aws::measure::StreamKind>())
    )]
    stream: traffic_app::aws::measure::StreamKind,
}

impl MeasureArgs {
    /// What to measure.
    pub fn options(&self) -> anyhow::Result<MeasureOptions> {
        let prefix = self
            .prefix
            .clone()
            .unwrap_or_else(|| format!("measure-{}-{}", std::process::id(), chrono_free_seconds()));
        Ok(MeasureOptions {
            stream: self.stream,
            resources: Resources::with_prefix(&prefix, shard_count(self.shards)),
            city: self.city.city()?,
            seed: self.city.seed,
            minutes: self.minutes,
            start_ms: self.start.map(|i| i.0),
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
    #[arg(
        long,
        value_parser = clap::builder::PossibleValuesParser::new(["ingest", "fault"])
            .try_map(|s| s.parse::<traffic_app::aws::Consumer>())
    )]
    consumer: Option<traffic_app::aws::Consumer>,
    /// Read the records from this stream (by name) instead of the records' `streamArn`.
    #[arg(long)]
    stream: Option<String>,
    /// Most messages taken in one run.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one::<u64>())]
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
