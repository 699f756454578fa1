//! [`BatchHandler`]: a function that takes a batch of Kinesis records and answers with a
//! partial batch response, as a Lambda function with `ReportBatchItemFailures` does. `ingest`
//! and `fault` implement it; the one event source mapping (`traffic-app`) drives it.
//!
//! What the two handlers own alike is [`BatchParts`]: the meters of a batch, the registry's
//! cache, the shards' hash key ranges and the metric sink; [`Meters::measure`] is how a batch
//! is measured (its statistics sample recorded).

use crate::directory::Directory;
use crate::kinesis::{record_stats, stats_sample};
use crate::metrics::Metrics;
use crate::routing::{Routes, ShardRanges};
use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::future::Future;
use std::sync::Arc;
use tracing::{Instrument, Span};
use traffic_ports::{Clock, Ports, StatsSample, StatsStore, Usage, UsageMeter};

/// A function of Kinesis batches.
#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handles one batch; the response names the records to retry from.
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse;
}

/// What a stream function's handler owns beside its own ports, for the life of the process.
pub struct BatchParts {
    /// What the backend billed.
    pub usage: Arc<dyn UsageMeter>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Where throughput and latency figures go.
    pub stats: Arc<dyn StatsStore>,
    /// Cache of the registry.
    pub directory: Directory,
    /// The stream's shard ranges.
    pub routing: ShardRanges,
    /// Where the metric line of each batch goes (nowhere by default).
    pub metrics: Metrics,
}

impl BatchParts {
    /// The parts over `ports`, with an empty directory and no metric lines.
    pub fn from_ports(ports: &Ports) -> Self {
        Self {
            usage: ports.usage.clone(),
            clock: ports.clock.clone(),
            stats: ports.stats.clone(),
            directory: Directory::default(),
            routing: ShardRanges::new(ports.stream.clone()),
            metrics: Metrics::off(),
        }
    }

    /// What a batch is measured with: these parts' usage, clock and statistics.
    pub fn meters(&self) -> Meters<'_> {
        Meters::new(
            self.usage.as_ref(),
            self.clock.as_ref(),
            self.stats.as_ref(),
        )
    }

    /// The hash key ranges of the shards of `event`, looked up inside `span`.
    pub async fn routes(&self, event: &KinesisEvent, span: Span) -> Routes {
        self.routing.routes(event).instrument(span).await
    }
}

/// What one batch is measured with.
#[derive(Clone, Copy)]
pub struct Meters<'a> {
    /// What the backend billed.
    pub usage: &'a dyn UsageMeter,
    /// The time of the sample.
    pub clock: &'a dyn Clock,
    /// Where the sample goes.
    pub stats: &'a dyn StatsStore,
}

/// A batch's outcome and what it cost.
pub struct Measured<T> {
    /// What the work returned.
    pub out: T,
    /// The batch's statistics sample, recorded.
    pub sample: StatsSample,
    /// The capacity units the work consumed.
    pub used: Usage,
}

impl<'a> Meters<'a> {
    /// The meters `usage`, `clock` and `stats`.
    pub fn new(usage: &'a dyn UsageMeter, clock: &'a dyn Clock, stats: &'a dyn StatsStore) -> Self {
        Self {
            usage,
            clock,
            stats,
        }
    }

    /// Runs `work`, `function`'s handling of `event`, and records its statistics sample
    /// (`accepted` counts the records the outcome accepted) inside `span`.
    pub async fn measure<T>(
        self,
        function: traffic_ports::Series,
        event: &KinesisEvent,
        span: Span,
        work: impl Future<Output = T>,
        accepted: impl FnOnce(&T) -> u64,
    ) -> Measured<T> {
        let before = self.usage.usage();
        let out = work.await;
        let used = self.usage.usage().since(&before);
        let now = self.clock.now_ms();
        let sample = stats_sample(function, event, accepted(&out), now, &used);
        record_stats(self.stats, &sample).instrument(span).await;
        Measured { out, sample, used }
    }
}
