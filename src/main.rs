//! `traffic`: the command-line tool of the traffic monitoring system.
//!
//! - `traffic replay --city CITY.json READINGS.jsonl`: run a file of readings through the
//!   stream functions and print every result as one JSON document.
//! - `traffic city --intersections N --seed S`: print the generated city as a city file.
//! - `traffic local`: the whole system in one process (simulated city, stream, functions,
//!   merge) on an embedded store, with a live status; `traffic query`: SQL (the named
//!   queries among it) over the archive it writes.
//! - `traffic aws-setup`, `traffic simulate --stream NAME`, `traffic aws-local`: the same on
//!   AWS's own APIs (docs/aws.md); `traffic aws-measure`: what a simulated city costs there.
//! - `traffic sumo --city CITY.json`: the stream functions and the merge driven tick by tick
//!   by the SUMO bridge over stdin/stdout JSON lines (`simulator/sumo/README.md`).

mod args;
mod aws_args;
mod values;

use args::{EngineArgs, LocalArgs};
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use traffic_app::Stopper;
use traffic_app::replay::{ReplayOptions, replay};
use traffic_functions::Config;

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

#[derive(Subcommand)]
enum Command {
    /// Create the AWS resources (tables, stream, topic) unless they exist, load the city into
    /// the registry, and print the environment the functions need (docs/aws.md).
    AwsSetup(aws_args::SetupArgs),
    /// Run the simulated city against a real Kinesis stream, taking timings and repairs from
    /// the registry in DynamoDB every period.
    Simulate(aws_args::SimulateArgs),
    /// Run the whole system on AWS's APIs (AWS_ENDPOINT_URL: moto, LocalStack; or AWS):
    /// simulator, an event source mapping driving ingest and fault, the merge on a timer.
    AwsLocal(aws_args::AwsLocalArgs),
    /// Measure what a simulated city costs: the real adapters and the event source mapping
    /// against AWS_ENDPOINT_URL with the template's default settings, in simulated time; the
    /// last line printed is one JSON object (units and requests per 1,000 readings, $ per
    /// million readings).
    AwsMeasure(aws_args::MeasureArgs),
    /// Apply the batches that ingest or fault gave up on: read their failure records from the
    /// on-failure SQS queue, read their records again from the stream, apply them through the
    /// same handlers (once: a failure record redriven again counts duplicates), delete each
    /// message once handled, and print the records by outcome (applied, duplicate, final,
    /// rejected, future, no longer in the stream) as one JSON object. Exits with an error when
    /// a message was left in the queue.
    Redrive(aws_args::RedriveArgs),
    /// Run the whole system in one process: a simulated city, an in-process stream, the
    /// functions and the merge, on a durable store in the data directory (resumed if it exists).
    Local(Box<LocalArgs>),
    /// Run SQL over the archive `traffic local` wrote (`<data-dir>/archive`: the table
    /// `readings`, as Athena has it) on an embedded DuckDB, or a named query
    /// (`--named NAME PARAMETER...`: the SQL of queries/, which Athena runs too); print the
    /// answer as a table, CSV or JSON.
    Query(args::QueryArgs),
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
        /// Shards of the in-process stream, 1 to 64.
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = values::shards_in_process())]
        shards: u32,
        /// Records per batch handed to the functions.
        #[arg(long, default_value_t = 100, value_parser = values::at_least_one::<usize>())]
        batch_size: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Take ticks of readings from an outside simulator (the SUMO bridge) on stdin, one JSON
    /// line per simulated minute, run them through the stream functions and the merge (every
    /// merge period of simulated time) on a temporary store, and answer each tick on stdout
    /// with the timings the merge changed and the alarms raised.
    Sumo {
        /// The city file (the bridge writes it from the SUMO network).
        #[arg(long)]
        city: PathBuf,
        /// Simulated time between merge runs (a duration such as 1m or 5m; 5m by default, the
        /// AWS schedule's rate).
        #[arg(
            long,
            value_name = "DURATION",
            default_value = "5m",
            env = "TRAFFIC_MERGE_EVERY",
            value_parser = values::positive_span
        )]
        merge_every: values::Span,
        /// Shards of the in-process stream, 1 to 64.
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = values::shards_in_process())]
        shards: u32,
        /// Records per batch handed to the functions.
        #[arg(long, default_value_t = 1000, value_parser = values::at_least_one::<usize>())]
        batch_size: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

/// The command line, parsed; exits on a bad one (status 2, as clap does). A bad value that
/// came from the environment (an option's `env` variable, the option not given) is named by
/// its variable: clap's own message names the option even then.
fn parse() -> Cli {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(message) = from_the_environment(&e, &argv) {
                eprint!("{message}");
                std::process::exit(2);
            }
            e.exit()
        }
    }
}

/// When `e` is about a bad value of an option that `argv` does not give, so that it came from
/// the option's variable: clap's message, naming the variable (and the option).
fn from_the_environment(e: &clap::Error, argv: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.split_whitespace().next()?.strip_prefix("--")?;
    let args: Vec<&str> = argv
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .collect();
    let given = args.iter().any(|a| {
        a.strip_prefix("--")
            .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
    });
    if given {
        return None;
    }
    let cli = Cli::command();
    let sub = args.iter().find_map(|a| cli.find_subcommand(a))?;
    let variable = sub
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_str()?
        .to_owned();
    let text = e.to_string();
    Some(text.replacen(
        &format!("'{shown}'"),
        &format!("{variable} (the environment's value of '--{long}')"),
        1,
    ))
}

/// Logs to a file (so the status display is not torn) or to stderr, by the one rule
/// (`traffic_functions::logging`): colour codes only when the writer is a terminal.
fn init_file_tracing(target: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    use traffic_functions::logging::{LogEnv, LogSettings, init_on};
    if target == "-" {
        traffic_functions::init_tracing();
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(target)
        .map_err(|e| anyhow::anyhow!("opening the log file {target}: {e}"))?;
    let settings = LogSettings::resolve(&LogEnv::from_env(), file.is_terminal(), "info");
    init_on(&settings, std::sync::Mutex::new(file));
    Ok(())
}

/// For a command whose stdout is its document (`replay`, `sumo`): the configuration and the
/// engine's, logs at `warn` by default to stderr.
fn document_command(
    engine: &EngineArgs,
) -> anyhow::Result<(Config, traffic_core::config::EngineConfig)> {
    let config = Config::from_env()?;
    let engine = engine.config()?;
    traffic_functions::init_tracing_with("warn", &config.log);
    Ok((config, engine))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = parse();
    match cli.command {
        Command::AwsSetup(args) => {
            let config = Config::from_env()?;
            traffic_functions::init_tracing_with("warn", &config.log);
            traffic_app::aws::aws_setup(&config, &args.options(&config)?).await?;
        }
        Command::Simulate(args) => {
            let config = Config::from_env()?;
            traffic_functions::init_tracing_with("info", &config.log);
            let sent = traffic_app::aws::simulate(&config, &args.options()?, Stopper::on_signals())
                .await?;
            eprintln!("{sent} readings put");
        }
        Command::AwsLocal(args) => {
            let config = Config::from_env()?;
            traffic_functions::init_tracing_with("info", &config.log);
            let report =
                traffic_app::aws::aws_local(&config, args.options(&config)?, Stopper::on_signals())
                    .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::AwsMeasure(args) => {
            let config = Config::from_env()?;
            traffic_functions::init_tracing_with("warn", &config.log);
            let m = traffic_app::aws::aws_measure(&config, args.options()?).await?;
            println!("{}", serde_json::to_string(&m)?);
        }
        Command::Redrive(args) => {
            let config = Config::from_env()?;
            traffic_functions::init_tracing_with("warn", &config.log);
            let report = traffic_app::aws::redrive(&config, &args.options()).await?;
            let c = &report.counts;
            eprintln!(
                "{} of {} failure records redriven: {} records applied, {} duplicates, {} final \
                 (their window is closed: they no longer count), {} rejected, {} future, {} no \
                 longer in the stream; {} alarms published",
                report.redriven,
                report.messages,
                c.applied,
                c.duplicate,
                c.final_,
                c.rejected,
                c.future,
                c.missing,
                report.alarms
            );
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.left > 0 {
                anyhow::bail!(
                    "{} failure records left in the queue: {}",
                    report.left,
                    report.errors.join("; ")
                );
            }
        }
        Command::Query(args) => {
            if args.list {
                print!("{}", traffic_app::query::list());
                return Ok(());
            }
            let answer = traffic_app::query::answer(&args.data_dir, &args.query()?)?;
            print!("{}", traffic_app::query::print(&answer, args.format));
        }
        Command::Local(args) => {
            // Everything is checked before anything is printed or created.
            let config = Config::from_env()?;
            let opts = args.options(&config)?;
            let engine = args.engine.config()?;
            let json = opts.status == traffic_app::local::StatusMode::Json;
            std::fs::create_dir_all(&opts.data_dir)?;
            let log = args
                .log
                .clone()
                .unwrap_or_else(|| opts.data_dir.join("traffic.log").display().to_string());
            init_file_tracing(&log)?;
            let stop = Stopper::on_signals();
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
            let summary = traffic_app::local::run(engine, opts, stop).await?;
            // With `--status json`, stdout stays one JSON object a line: the summary is the last.
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            }
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
            let (config, engine) = document_command(&engine)?;
            let out = replay(
                engine,
                &city,
                &readings,
                &ReplayOptions {
                    shards: shards as usize,
                    batch_size,
                    alarms: config.alarms,
                },
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Sumo {
            city,
            merge_every,
            shards,
            batch_size,
            engine,
        } => {
            // stdout is the answers; logs (warnings only by default) go to stderr.
            let (config, engine) = document_command(&engine)?;
            let opts = traffic_app::sumo::SumoOptions {
                alarms: config.alarms,
                shards: shards as usize,
                batch_size,
                merge_every_ms: merge_every.ms(),
                coordination: traffic_core::coordination::CoordinationConfig::from_lookup(|k| {
                    std::env::var(k).ok()
                })
                .map_err(anyhow::Error::msg)?,
            };
            let city = traffic_app::sumo::read_city(&city)?;
            let input = traffic_app::sumo::stdin_lines();
            let summary =
                traffic_app::sumo::serve(engine, &city, opts, input, std::io::stdout()).await?;
            eprintln!("traffic sumo: {}", serde_json::to_string(&summary)?);
        }
    }
    Ok(())
}
