//! What the traffic Lambda functions share.
//!
//! - [`config`]: the one configuration, read once per process ([`Config::from_env`]), every
//!   variable documented there; and the ports it names ([`Config::aws_ports`]);
//! - [`handler`]: [`BatchHandler`], a function of Kinesis batches;
//! - [`kinesis`]: decoding a `KinesisEvent`'s records into readings, and batch item failures;
//! - [`routing`]: each shard's hash key range, listed once per process (misrouted records);
//! - [`directory`]: a cached view of the registry that tells which intersections and lights
//!   exist (readings for others are rejected);
//! - [`publication`]: publishing a recorded alarm once (claim, publish, mark), and the alarms
//!   due (unpublished, or held down past their hold-down);
//! - [`metrics`]: CloudWatch metrics in the embedded metric format, one line per batch, run
//!   or request;
//! - [`init_tracing`]: structured logs.

pub mod config;
pub mod directory;
pub mod handler;
pub mod kinesis;
pub mod metrics;
pub mod publication;
pub mod routing;

pub use config::{Config, ConfigError, Provisional};
pub use handler::BatchHandler;
pub use metrics::Metrics;

/// Starts structured logging: JSON lines (as CloudWatch wants) when `TRAFFIC_LOG_FORMAT=json`
/// or inside Lambda, plain text otherwise; the level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    init_tracing_at("info");
}

/// As [`init_tracing`], with `default_level` when `RUST_LOG` is unset.
pub fn init_tracing_at(default_level: &str) {
    let json = std::env::var("TRAFFIC_LOG_FORMAT").is_ok_and(|v| v == "json")
        || std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok();
    init_tracing_with(default_level, json);
}

/// As [`init_tracing`], JSON lines or not as `json` says (a [`Config`]'s `log_json`).
pub fn init_tracing_with(default_level: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    // The SDK's region chain ends at the instance metadata, which warns twice off EC2 before
    // a missing region is reported (`traffic_aws::NoRegion`): its errors only.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},aws_config::imds=error")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}
