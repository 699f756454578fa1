//! The options of `traffic local` and `traffic replay`, and the engine options they share.

use std::path::PathBuf;
use traffic_core::EngineConfig;
use traffic_core::window::WindowLength;

/// Engine parameters shared by the subcommands.
#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Window lengths, each a multiple of the shortest.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "15m,1h,24h",
        env = "TRAFFIC_WINDOWS"
    )]
    pub windows: Vec<WindowLength>,
    /// Allowed lateness of readings behind the greatest event time seen.
    #[arg(long, default_value = "2m", env = "TRAFFIC_ALLOWED_LATENESS")]
    pub allowed_lateness: String,
}

impl EngineArgs {
    /// The engine configuration: the environment's, with these options over it.
    pub fn config(&self) -> anyhow::Result<EngineConfig> {
        let mut cfg = EngineConfig::from_lookup(|k| std::env::var(k).ok())?;
        cfg.set_windows(&self.windows)?;
        cfg.allowed_lateness_ms = traffic_core::window::parse_duration_ms(&self.allowed_lateness)?;
        Ok(cfg)
    }
}

/// Options of `traffic local`.
#[derive(clap::Args, Clone)]
pub struct LocalArgs {
    /// Where the store, the log file and the run's settings live.
    #[arg(long, default_value = ".data", env = "TRAFFIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Intersections in the generated city (the original assignment's minimum is 50).
    #[arg(long, default_value_t = 50)]
    pub intersections: usize,
    /// Shards of the in-process stream.
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// Simulated seconds per wall second, or `max`. At 60, a 15-minute window closes within
    /// about 17 s.
    #[arg(long, default_value = "60")]
    pub speedup: traffic_app::local::Speedup,
    /// Probability that a reading breaks one of its light's lamps.
    #[arg(long, default_value_t = 0.0002)]
    pub failure_probability: f64,
    /// Webster retiming, or the fixed initial timings (for comparison).
    #[arg(long, value_enum, default_value = "webster")]
    pub control: traffic_app::local::Control,
    /// Seed of the city and its traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First simulated instant (RFC 3339).
    #[arg(long, default_value = "2026-01-05T06:00:00Z")]
    pub start: String,
    /// Stop after this much simulated time (e.g. 24h) and close every window; without it the
    /// run goes on until Ctrl-C.
    #[arg(long)]
    pub duration: Option<String>,
    /// Records per batch handed to the functions.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Run the merge every this many simulated periods (a period is 60 s).
    #[arg(long, default_value_t = 1)]
    pub merge_every: u64,
    /// Which open windows get provisional results: all, shortest or none.
    #[arg(long, default_value = "all")]
    pub provisional: String,
    /// Also append every reading produced to this file (JSON lines, replayable).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// The live status display.
    #[arg(long, value_enum, default_value = "auto")]
    pub status: traffic_app::local::StatusMode,
    /// Write logs here instead of `<data-dir>/traffic.log` (`-` for stderr).
    #[arg(long)]
    pub log: Option<String>,
    /// Serve the HTTP API and the dashboard on this address (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TRAFFIC_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Do not serve the API and the dashboard.
    #[arg(long)]
    pub no_api: bool,
    /// Bearer token that the API's mutating requests must carry (repairs, edits). Without
    /// one, the API is read-only.
    #[arg(long, env = "TRAFFIC_API_TOKEN")]
    pub api_token: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl LocalArgs {
    /// The options, checked; the alarm policy is `config`'s (the environment's `ALARM_*`).
    pub fn options(
        &self,
        config: &traffic_functions::Config,
    ) -> anyhow::Result<traffic_app::local::LocalOptions> {
        let start_ms = traffic_core::time::parse_rfc3339_ms(&self.start)
            .ok_or_else(|| anyhow::anyhow!("--start: not an RFC 3339 time: {}", self.start))?;
        let duration_ms = self
            .duration
            .as_deref()
            .map(traffic_core::window::parse_duration_ms)
            .transpose()?;
        let opts = traffic_app::local::LocalOptions {
            data_dir: self.data_dir.clone(),
            settings: traffic_app::local::RunSettings {
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
            alarms: config.alarms.clone(),
        };
        traffic_app::local::check(&opts)?;
        Ok(opts)
    }
}
