//! What the traffic Lambda functions share.
//!
//! - [`config`]: the one configuration, read once per process ([`Config::from_env`]), every
//!   variable documented there; and the ports it names ([`Config::aws_ports`]);
//! - [`handler`]: [`BatchHandler`], a function of Kinesis batches, and what its handlers own
//!   and measure alike;
//! - [`lambda`]: what every Lambda `main` does (configuration, logging, ports; serving
//!   batches);
//! - [`kinesis`]: decoding a `KinesisEvent`'s records into readings, and batch item failures;
//! - [`routing`]: each shard's hash key range, listed once per process (misrouted records);
//! - [`directory`]: a cached view of the registry that tells which intersections and lights
//!   exist (readings for others are rejected);
//! - [`publication`]: publishing a recorded alarm once (claim, publish, mark), and the alarms
//!   due (unpublished, or held down past their hold-down);
//! - [`logging`]: log lines (JSON inside Lambda, Lambda's log level and format honoured), and
//!   [`init_tracing`], which starts them;
//! - [`problems`]: a batch's per-record problems, summarised (counts, the first examples).
//! - [`metrics`]: CloudWatch metrics in the embedded metric format, one line per batch, run
//!   or request;
//! - [`xray`]: X-Ray subsegments from the handlers' step spans, sent to Lambda's X-Ray daemon.

pub mod config;
pub mod directory;
pub mod handler;
pub mod kinesis;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod problems;
pub mod publication;
pub mod routing;
pub mod xray;

pub use config::{Config, ConfigError, Provisional};
pub use handler::BatchHandler;
pub use metrics::Metrics;

/// Starts logging to stderr as the process environment says ([`logging`]: JSON inside Lambda,
/// the level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`).
pub fn init_tracing() {
    init_tracing_at("info");
}

/// As [`init_tracing`], with `default_level` when no variable sets one.
pub fn init_tracing_at(default_level: &str) {
    logging::init(&logging::LogEnv::from_env(), default_level);
}

/// As [`init_tracing`], from the variables `env` read (a [`Config`]'s `log`).
pub fn init_tracing_with(default_level: &str, env: &logging::LogEnv) {
    logging::init(env, default_level);
}
