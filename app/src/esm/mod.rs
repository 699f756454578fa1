//! The one event source mapping: what Lambda's Kinesis trigger does, over any
//! [`RecordSource`] (a Kinesis stream, the embedded log, a file in memory), for every place
//! where no Lambda service runs the functions: `traffic local`, `traffic replay`,
//! `traffic aws-local` and the tests.
//!
//! Each [`Mapping`] is a consumer (`ingest`, `fault`) with its own checkpoints. Per shard,
//! records are read in order and handed over in batches under the rules of [`delivery`]; a
//! child shard starts only once its parents were read to their end ([`shards`]). Two modes:
//!
//! - [`EventSourceMapping::drain`]: every shard to its current tail, shards and mappings in
//!   parallel, a checkpoint after every batch (durable on the embedded log): the local runner
//!   after each simulated period, and replay;
//! - [`EventSourceMapping::follow`]: poll forever, with a poll interval, a batching window and
//!   the shard list re-read every `list_interval` (new shards after a reshard), until stopped:
//!   `traffic aws-local`.

mod config;
mod consumer;
pub mod delivery;
mod event;
mod progress;
pub mod shards;

pub use config::{Mapping, MappingConfig, OnFailure};
pub use delivery::retry_index;
pub use event::{destination_record, kinesis_event};
pub use progress::{MappingStats, Progress};
pub use shards::ready_shards;
pub use traffic_ports::StartingPosition;

use crate::stop::Stop;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use traffic_core::ShardId;
use traffic_ports::{CheckpointStore, PortError, RecordSource};

/// Why a mapping stopped.
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// The source or the checkpoints failed.
    #[error("event source mapping: {0}")]
    Port(#[from] PortError),
    /// A batch was given up on under [`OnFailure::Stop`].
    #[error(
        "{mapping} failed {attempts} times on shard {shard} ({records} records left): stopping"
    )]
    GaveUp {
        /// The mapping.
        mapping: String,
        /// The shard.
        shard: ShardId,
        /// Records not handled.
        records: usize,
        /// Tries made.
        attempts: u32,
    },
    /// A shard's consumer task panicked.
    #[error("a shard consumer of {0} panicked")]
    Panicked(String),
}

/// What every consumer of the mapping shares.
pub(crate) struct Ctx {
    pub(crate) source: Arc<dyn RecordSource>,
    pub(crate) checkpoints: Arc<dyn CheckpointStore>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) sqs: Option<aws_sdk_sqs::Client>,
}

/// The mappings of one stream.
pub struct EventSourceMapping {
    ctx: Arc<Ctx>,
    mappings: Vec<Arc<Mapping>>,
    list_interval: Duration,
}

impl EventSourceMapping {
    /// `mappings` on `source`, keeping their checkpoints in `checkpoints`.
    pub fn new(
        source: Arc<dyn RecordSource>,
        checkpoints: Arc<dyn CheckpointStore>,
        mappings: Vec<Mapping>,
    ) -> Self {
        Self {
            ctx: Arc::new(Ctx {
                source,
                checkpoints,
                progress: Arc::new(Progress::default()),
                sqs: None,
            }),
            mappings: mappings.into_iter().map(Arc::new).collect(),
            list_interval: Duration::from_secs(10),
        }
    }

    /// Re-reads the shard list this often when following (new shards after a reshard start
    /// within it, or as soon as a parent ends).
    pub fn with_list_interval(mut self, every: Duration) -> Self {
        self.list_interval = every;
        self
    }

    /// Sends to SQS destinations ([`OnFailure::Sqs`]) with this client.
    pub fn with_sqs(mut self, client: aws_sdk_sqs::Client) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.sqs = Some(client);
        }
        self
    }

    /// The counters, to watch while the mapping runs.
    pub fn progress(&self) -> Arc<Progress> {
        self.ctx.progress.clone()
    }

    /// Reads every shard of every mapping to its current tail (children after their parents
    /// ended), handing everything over; returns once all is handed over.
    pub async fn drain(&self) -> Result<(), EsmError> {
        let shards = self.ctx.source.shards().await?;
        let mut tasks = tokio::task::JoinSet::new();
        for m in &self.mappings {
            let (ctx, m, shards) = (self.ctx.clone(), m.clone(), shards.clone());
            tasks.spawn(async move {
                let mut started = BTreeSet::new();
                let mut finished = BTreeSet::new();
                loop {
                    let ready = ready_shards(&shards, &started, &finished);
                    if ready.is_empty() {
                        return Ok::<(), EsmError>(());
                    }
                    let mut wave = tokio::task::JoinSet::new();
                    for id in ready {
                        started.insert(id.clone());
                        let (ctx, m) = (ctx.clone(), m.clone());
                        wave.spawn(async move {
                            let ended = consumer::drain_shard(&ctx, &m, &id).await?;
                            Ok::<_, EsmError>((id, ended))
                        });
                    }
                    while let Some(done) = wave.join_next().await {
                        let (id, ended) =
                            done.map_err(|_| EsmError::Panicked(m.config.name.clone()))??;
                        if ended {
                            finished.insert(id);
                        }
                    }
                }
            });
        }
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let r = done
                .map_err(|_| EsmError::Panicked("a mapping".into()))
                .and_then(|r| r);
            if let (Err(e), None) = (r, &first_error) {
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Follows every shard of every mapping until `stop`.
    pub async fn follow(self, stop: Stop) {
        let mut set = tokio::task::JoinSet::new();
        for m in self.mappings {
            set.spawn(consumer::coordinate(
                self.ctx.clone(),
                m,
                self.list_interval,
                stop.clone(),
            ));
        }
        while set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::MemorySource;
    use async_trait::async_trait;
    use aws_lambda_events::event::kinesis::KinesisEvent;
    use aws_lambda_events::event::streams::KinesisEventResponse;
    use std::sync::Mutex;
    use traffic_functions::BatchHandler;
    use traffic_ports::MemoryCheckpoints;

    /// Remembers every record it was handed: (shard, sequence number, payload).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String, u8)>>);

    #[async_trait]
    impl BatchHandler for Recorder {
        async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
            if let Ok(mut seen) = self.0.lock() {
                for r in &event.records {
                    let shard = r.event_id.as_deref().unwrap_or("").split(':').next();
                    seen.push((
                        shard.unwrap_or("").to_owned(),
                        r.kinesis.sequence_number.clone(),
                        r.kinesis.data.first().copied().unwrap_or(0),
                    ));
                }
            }
            KinesisEventResponse::default()
        }
    }

    #[tokio::test]
    async fn draining_hands_every_record_once_to_every_mapping_in_order_per_shard() {
        let source = Arc::new(MemorySource::new(3));
        for i in 0..40u8 {
            source.put(format!("I-{:04}", i % 7), vec![i], 0);
        }
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let mapping = |name: &str, handler: Arc<Recorder>| Mapping {
            config: MappingConfig::in_process(name, 4),
            handler,
        };
        let esm = EventSourceMapping::new(
            source.clone(),
            Arc::new(MemoryCheckpoints::default()),
            vec![mapping("a", a.clone()), mapping("b", b.clone())],
        );
        esm.drain().await.unwrap_or_else(|e| panic!("{e}"));
        // Drained again with nothing new: nothing is handed over twice.
        esm.drain().await.unwrap_or_else(|e| panic!("{e}"));
        for r in [&a, &b] {
            let seen = r.0.lock().map(|s| s.clone()).unwrap_or_default();
            assert_eq!(seen.len(), 40);
            let mut payloads: Vec<u8> = seen.iter().map(|s| s.2).collect();
            payloads.sort_unstable();
            assert_eq!(payloads, (0..40).collect::<Vec<_>>());
            for shard in [
                "shardId-000000000000",
                "shardId-000000000001",
                "shardId-000000000002",
            ] {
                let in_shard: Vec<u8> = seen.iter().filter(|s| s.0 == shard).map(|s| s.2).collect();
                assert!(
                    in_shard.windows(2).all(|w| w[0] < w[1]),
                    "{shard}: {in_shard:?}"
                );
            }
        }
        let stats = esm.progress().of("a");
        assert_eq!(stats.records, 40);
        assert_eq!(stats.checkpoints.len(), 3, "{stats:?}");
    }
}
