//! How a mapping reads and retries ([`MappingConfig`]), where what it gives up on goes
//! ([`OnFailure`]), and a mapping itself: its settings and its handler ([`Mapping`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use traffic_functions::BatchHandler;
use traffic_ports::StartingPosition;

/// Where the records of a batch that could not be handled go.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Logged only; the shard moves on.
    #[default]
    Log,
    /// Appended to a file, one JSON document per line, with the records themselves.
    File(PathBuf),
    /// Sent to an SQS queue (by URL), as Lambda does: the batch's description, not its data.
    Sqs(String),
    /// Nowhere: the mapping stops with an error and the shard stays where it was (the local
    /// runner and replay, which are run again rather than skip a reading).
    Stop,
}

/// How one mapping reads and retries.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingConfig {
    /// The consumer's name (`ingest`, `fault`): logs, statistics, checkpoints, destination
    /// records.
    pub name: String,
    /// Most records per batch (Lambda allows up to 10,000).
    pub batch_size: usize,
    /// How long to gather records into a batch before handing it over (following only).
    pub batching_window: Duration,
    /// Wait between reads of a shard that had nothing new (following only).
    pub poll_interval: Duration,
    /// Tries of one batch (first try included) before it goes to the destination.
    pub max_attempts: u32,
    /// Split a batch that failed twice into halves.
    pub bisect_on_error: bool,
    /// Records older than this (by arrival in the stream) are not handed over.
    pub max_record_age: Option<Duration>,
    /// Where a shard without a checkpoint is read from.
    pub starting_position: StartingPosition,
    /// Where failed batches go.
    pub on_failure: OnFailure,
    /// First wait before a retry (doubling after each, at most 30 s).
    pub retry_backoff: Duration,
}

impl MappingConfig {
    /// Defaults close to a Lambda mapping's: batches of 100, no batching window, a read every
    /// second, 5 tries, bisection, no age limit, from the trim horizon, failures logged.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batch_size: 100,
            batching_window: Duration::ZERO,
            poll_interval: Duration::from_secs(1),
            max_attempts: 5,
            bisect_on_error: true,
            max_record_age: None,
            starting_position: StartingPosition::TrimHorizon,
            on_failure: OnFailure::Log,
            retry_backoff: Duration::from_millis(100),
        }
    }

    /// The settings of the local runner and replay: batches of `batch_size`, retries 50 ms
    /// apart at first, and a batch given up on stops the run ([`OnFailure::Stop`]).
    pub fn in_process(name: impl Into<String>, batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            retry_backoff: Duration::from_millis(50),
            on_failure: OnFailure::Stop,
            ..Self::new(name)
        }
    }
}

/// A consumer: its settings and its handler.
#[derive(Clone)]
pub struct Mapping {
    /// Settings.
    pub config: MappingConfig,
    /// The handler.
    pub handler: Arc<dyn BatchHandler>,
}
