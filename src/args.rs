//! The options of `traffic local` and `traffic replay`, and the engine options they share.

use crate::values::{
    DURATION_FORMAT, ProvisionalArg, Span, Windows, at_least_one, positive_span, probability,
    shards_in_process,
};
use std::path::PathBuf;
use traffic_core::EngineConfig;

/// Engine parameters shared by the subcommands.
#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Window lengths, comma-separated durations (such as 90s, 15m, 1h, 24h), each a multiple
    /// of the shortest.
    #[arg(
        long,
        value_name = "LENGTHS",
        default_value = "15m,1h,24h",
        env = "TRAFFIC_WINDOWS"
    )]
    pub windows: Windows,
    /// Allowed lateness of readings behind the greatest event time seen (a duration such as
    /// 90s or 2m).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "2m",
        env = "TRAFFIC_ALLOWED_LATENESS"
    )]
    pub allowed_lateness: Span,
}

impl EngineArgs {
    /// The engine configuration: the environment's, with these options over it (clap has
    /// already taken `TRAFFIC_WINDOWS` and `TRAFFIC_ALLOWED_LATENESS` when the options were
    /// not given, and checked them).
    pub fn config(&self) -> anyhow::Result<EngineConfig> {
        let mut cfg = EngineConfig::from_lookup(|k| match k {
            "TRAFFIC_WINDOWS" | "TRAFFIC_ALLOWED_LATENESS" => None,
            _ => std::env::var(k).ok(),
        })?;
        cfg.set_windows(&self.windows.0)?;
        cfg.allowed_lateness_ms = self.allowed_lateness.ms();
        Ok(cfg)
    }
}

/// The simulator's period: one reading per light per simulated minute.
pub fn period_ms() -> i64 {
    i64::from(traffic_sim::SimConfig::default().period_s) * 1000
}

/// `traffic local --merge-every`: a positive duration, a whole number of periods (refused
/// otherwise rather than rounded: the run would merge at another pace than the one asked).
fn whole_periods(s: &str) -> Result<Span, String> {
    if let Ok(n) = s.trim().parse::<u64>() {
        // What the option took before it was a duration: a count of periods.
        return Err(format!(
            "not a duration: {DURATION_FORMAT} (a bare number is not a count of periods: {n} \
             periods is {n}m)"
        ));
    }
    let span = positive_span(s)?;
    let period = period_ms();
    if span.ms() % period == 0 {
        Ok(span)
    } else {
        Err(format!(
            "must be a multiple of the simulator's period ({}), such as 1m, 5m or 15m",
            Span::from_ms(period)
        ))
    }
}

/// Options of `traffic local`.
#[derive(clap::Args, Clone)]
pub struct LocalArgs {
    /// Where the store, the log file and the run's settings live.
    #[arg(long, default_value = ".data", env = "TRAFFIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Intersections in the generated city (the original assignment's minimum is 50).
    #[arg(long, default_value_t = 50, value_parser = at_least_one::<usize>())]
    pub intersections: usize,
    /// Shards of the in-process stream, 1 to 64 (4: a few in-order workers, free in one
    /// process; the AWS commands default to 2, since Kinesis bills each shard).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = shards_in_process())]
    pub shards: u32,
    /// Simulated seconds per wall second (a positive number), or `max`. At 60, a 15-minute
    /// window closes within about 17 s.
    #[arg(long, value_name = "X|max", default_value = "60")]
    pub speedup: traffic_app::local::Speedup,
    /// Probability that a reading breaks one of its light's lamps (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0002, value_parser = probability)]
    pub failure_probability: f64,
    /// Webster retiming, or the fixed initial timings (for comparison).
    #[arg(long, value_enum, default_value = "webster")]
    pub control: traffic_app::local::TimingControl,
    /// Seed of the city and its traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First simulated instant (RFC 3339).
    #[arg(long, value_name = "INSTANT", default_value = "2026-01-05T06:00:00Z")]
    pub start: crate::values::Instant,
    /// Stop after this much simulated time (a duration such as 90m or 24h) and close every
    /// window; without it the run goes on until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = positive_span)]
    pub duration: Option<Span>,
    /// Records per batch handed to the functions.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one::<usize>())]
    pub batch_size: usize,
    /// Simulated time between merge runs: a whole number of the simulator's 60 s periods
    /// (1m, 15m, 1h; any other value is refused rather than rounded). The merge runs after
    /// the period that reaches it.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = whole_periods)]
    pub merge_every: Span,
    /// Which open windows get provisional results.
    #[arg(long, value_enum, default_value = "all")]
    pub provisional: ProvisionalArg,
    /// Also append every reading produced to this file (JSON lines, replayable).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// The live status. With `json`, stdout is JSON lines: the ticks, then the summary.
    #[arg(long, value_enum, default_value = "human")]
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
        let opts = traffic_app::local::LocalOptions {
            data_dir: self.data_dir.clone(),
            settings: traffic_app::local::RunSettings {
                intersections: self.intersections,
                shards: self.shards as usize,
                seed: self.seed,
                start_ms: self.start.0,
                failure_probability: self.failure_probability,
                control: self.control,
            },
            speedup: self.speedup,
            duration_ms: self.duration.map(Span::ms),
            batch_size: self.batch_size,
            merge_every: (self.merge_every.ms() / period_ms()).unsigned_abs(),
            provisional: self.provisional.into(),
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

/// Options of `traffic query`.
#[derive(clap::Args, Clone)]
pub struct QueryArgs {
    /// The data directory of `traffic local`, whose archive (`<data-dir>/archive`) is queried.
    #[arg(long, default_value = ".data", env = "TRAFFIC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// How the answer is printed: table (aligned columns), csv (RFC 4180) or json (an array
    /// of objects).
    #[arg(long, value_enum, default_value = "table")]
    pub format: traffic_app::query::QueryFormat,
    /// Run the named query NAME (the SQL of queries/NAME.sql, as Athena runs it); its
    /// parameters follow, in order.
    #[arg(long, value_name = "NAME")]
    pub named: Option<String>,
    /// List the named queries and their parameters.
    #[arg(long, conflicts_with = "named")]
    pub list: bool,
    /// The SQL to run or, with --named, the named query's parameters.
    #[arg(value_name = "SQL|PARAMETER")]
    pub args: Vec<String>,
}

impl QueryArgs {
    /// What to run, or why the arguments say nothing runnable.
    pub fn query(&self) -> anyhow::Result<traffic_app::query::Query> {
        use traffic_app::query::Query;
        match (&self.named, self.args.as_slice()) {
            (Some(name), params) => Ok(Query::Named(name.clone(), params.to_vec())),
            (None, [sql]) => Ok(Query::Sql(sql.clone())),
            (None, []) => {
                anyhow::bail!("give the SQL to run, --named NAME [PARAMETER...], or --list")
            }
            (None, _) => anyhow::bail!("give the SQL as one argument (quote it)"),
        }
    }
}
