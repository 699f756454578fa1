//! `traffic`: the command-line tool of the traffic monitoring system.
//!
//! - `traffic replay --city CITY.json READINGS.jsonl`: run a file of readings through the
//!   stream functions and print every result as one JSON document.
//! - `traffic city --intersections N --seed S`: print the generated city as a city file.
//! - `traffic local`: the whole system in one process (simulated city, stream, functions,
//!   merge) on an embedded store, with a live status.
//! - `traffic aws-setup`, `traffic simulate --stream NAME`, `traffic aws-local`: the same on
//!   AWS's own APIs (docs/aws.md).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use traffic::replay::{ReplayOptions, replay};
use traffic_core::EngineConfig;
use traffic_core::window::WindowLength;

#[derive(Parser)]
#[command(
    name = "traffic",
    version,
    about = "Monitor a city's signalised intersections and retime them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Engine parameters shared by the subcommands.
#[derive(clap::Args, Clone)]
struct EngineArgs {
    /// Window lengths, each a multiple of the shortest.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "15m,1h,24h",
        env = "TRAFFIC_WINDOWS"
    )]
    windows: Vec<WindowLength>,
    /// Allowed lateness of readings behind the greatest event time seen.
    #[arg(long, default_value = "2m", env = "TRAFFIC_ALLOWED_LATENESS")]
    allowed_lateness: String,
}

impl EngineArgs {
    fn config(&self) -> anyhow::Result<EngineConfig> {
        let mut cfg = EngineConfig::from_lookup(|k| std::env::var(k).ok())?;
        cfg.set_windows(&self.windows)?;
        cfg.allowed_lateness_ms = traffic_core::window::parse_duration_ms(&self.allowed_lateness)?;
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create the AWS resources (tables, stream, topic) unless they exist, load the city into
    /// the registry, and print the environment the functions need (docs/aws.md).
    AwsSetup(traffic::aws_run::SetupArgs),
    /// Run the simulated city against a real Kinesis stream, taking timings and repairs from
    /// the registry in DynamoDB every period.
    Simulate(traffic::aws_run::SimulateArgs),
    /// Run the whole system on AWS's APIs (AWS_ENDPOINT_URL: moto, LocalStack; or AWS):
    /// simulator, an event source mapping driving ingest and fault, the merge on a timer.
    AwsLocal(traffic::aws_run::AwsLocalArgs),
    /// Run the whole system in one process: a simulated city, an in-process stream, the
    /// functions and the merge, on a durable store in the data directory (resumed if it exists).
    Local(Box<LocalArgs>),
    /// Print the simulated city that `traffic local` generates (the same seed and size give
    /// the same city) as a city file, for `traffic replay --city` or `traffic simulate --city`.
    City {
        /// Intersections in the generated city.
        #[arg(long, default_value_t = 50)]
        intersections: usize,
        /// Seed of the city.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run a file of readings (one JSON reading per line) through the stream functions on a
    /// temporary store, close every window and print the results as JSON.
    Replay {
        /// The city file (intersections, lights, phases).
        #[arg(long)]
        city: PathBuf,
        /// The readings file (JSON lines).
        readings: PathBuf,
        /// Shards of the in-process stream.
        #[arg(long, default_value_t = 4)]
        shards: usize,
        /// Records per batch handed to the functions.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

/// Options of `traffic local`.
#[derive(clap::Args, Clone)]
struct LocalArgs {
    /// Where the store, the log file and the run's settings live.
    #[arg(long, default_value = ".data", env = "TRAFFIC_DATA_DIR")]
    data_dir: PathBuf,
    /// Intersections in the generated city (the original assignment's minimum is 50).
    #[arg(long, default_value_t = 50)]
    intersections: usize,
    /// Shards of the in-process stream.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Simulated seconds per wall second, or `max`. At 60, a 15-minute window closes within
    /// about 17 s.
    #[arg(long, default_value = "60")]
    speedup: traffic::local::Speedup,
    /// Probability that a reading breaks one of its light's lamps.
    #[arg(long, default_value_t = 0.0002)]
    failure_probability: f64,
    /// Webster retiming, or the fixed initial timings (for comparison).
    #[arg(long, value_enum, default_value = "webster")]
    control: traffic::local::Control,
    /// Seed of the city and its traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First simulated instant (RFC 3339).
    #[arg(long, default_value = "2026-01-05T06:00:00Z")]
    start: String,
    /// Stop after this much simulated time (e.g. 24h) and close every window; without it the
    /// run goes on until Ctrl-C.
    #[arg(long)]
    duration: Option<String>,
    /// Records per batch handed to the functions.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Run the merge every this many simulated periods (a period is 60 s).
    #[arg(long, default_value_t = 1)]
    merge_every: u64,
    /// Which open windows get provisional results: all, shortest or none.
    #[arg(long, default_value = "all")]
    provisional: String,
    /// Also append every reading produced to this file (JSON lines, replayable).
    #[arg(long)]
    record: Option<PathBuf>,
    /// The live status display.
    #[arg(long, value_enum, default_value = "auto")]
    status: traffic::local::StatusMode,
    /// Write logs here instead of `<data-dir>/traffic.log` (`-` for stderr).
    #[arg(long)]
    log: Option<String>,
    /// Serve the HTTP API and the dashboard on this address (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TRAFFIC_LISTEN")]
    listen: std::net::SocketAddr,
    /// Do not serve the API and the dashboard.
    #[arg(long)]
    no_api: bool,
    /// Bearer token that the API's mutating requests must carry (repairs, edits). Without
    /// one, the API is read-only.
    #[arg(long, env = "TRAFFIC_API_TOKEN")]
    api_token: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

impl LocalArgs {
    fn options(&self) -> anyhow::Result<traffic::local::LocalOptions> {
        let start_ms = traffic_core::time::parse_rfc3339_ms(&self.start)
            .ok_or_else(|| anyhow::anyhow!("--start: not an RFC 3339 time: {}", self.start))?;
        let duration_ms = self
            .duration
            .as_deref()
            .map(traffic_core::window::parse_duration_ms)
            .transpose()?;
        let opts = traffic::local::LocalOptions {
            data_dir: self.data_dir.clone(),
            settings: traffic::local::RunSettings {
                intersections: self.intersections,
                shards: self.shards,
                seed: self.seed,
                start_ms,
                failure_probability: self.failure_probability,
                control: self.control,
            },
            speedup: self.speedup,
            duration_ms,
            batch_size: self.batch_size,
            merge_every: self.merge_every,
            provisional: self.provisional.parse().map_err(anyhow::Error::msg)?,
            record: self.record.clone(),
            status: self.status,
            listen: (!self.no_api).then_some(self.listen),
            api_token: self.api_token.clone().filter(|t| !t.is_empty()),
        };
        traffic::local::check(&opts)?;
        Ok(opts)
    }
}

/// Logs to a file (so the status display is not torn) or to stderr.
fn init_file_tracing(target: &str) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    if target == "-" {
        traffic_functions::init_tracing();
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(target)
        .map_err(|e| anyhow::anyhow!("opening the log file {target}: {e}"))?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::AwsSetup(args) => {
            traffic_functions::init_tracing_at("warn");
            traffic::aws_run::cmd_setup(args).await?;
        }
        Command::Simulate(args) => {
            traffic_functions::init_tracing();
            traffic::aws_run::cmd_simulate(args).await?;
        }
        Command::AwsLocal(args) => {
            traffic_functions::init_tracing();
            traffic::aws_run::cmd_aws_local(args).await?;
        }
        Command::Local(args) => {
            let opts = args.options()?;
            std::fs::create_dir_all(&opts.data_dir)?;
            let log = args
                .log
                .clone()
                .unwrap_or_else(|| opts.data_dir.join("traffic.log").display().to_string());
            init_file_tracing(&log)?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let on_signal = stop.clone();
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
                }
                on_signal.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            eprintln!(
                "traffic local: {} intersections, {} shards, data in {} (logs: {log}); Ctrl-C stops",
                opts.settings.intersections,
                opts.settings.shards,
                opts.data_dir.display()
            );
            if let Some(addr) = opts.listen {
                eprintln!(
                    "dashboard: http://{addr}/  ({})",
                    if opts.api_token.is_some() {
                        "edits and repairs need the API token"
                    } else {
                        "read-only: pass --api-token to allow edits and repairs"
                    }
                );
            }
            let summary = traffic::local::run(args.engine.config()?, opts, stop).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::City {
            intersections,
            seed,
        } => {
            let city = traffic_sim::generate_city(&traffic_sim::CityConfig {
                intersections,
                seed,
                ..traffic_sim::CityConfig::default()
            })?;
            println!("{}", serde_json::to_string_pretty(&city)?);
        }
        Command::Replay {
            city,
            readings,
            shards,
            batch_size,
            engine,
        } => {
            // Logs go to stderr (warnings: rejected records, alarms); stdout is the document.
            traffic_functions::init_tracing_at("warn");
            let out = replay(
                engine.config()?,
                &city,
                &readings,
                &ReplayOptions { shards, batch_size },
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}
