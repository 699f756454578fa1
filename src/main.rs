//! `traffic`: the command-line tool of the traffic monitoring system.
//!
//! - `traffic replay --city CITY.json READINGS.jsonl`: run a file of readings through the
//!   stream functions and print every result as one JSON document.

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
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
