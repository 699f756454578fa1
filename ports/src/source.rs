//! The readings stream as the one event source mapping reads it: [`RecordSource`] (a Kinesis
//! stream, the embedded log, a file in memory) and [`CheckpointStore`] (where a mapping keeps
//! how far it got on each shard).

use crate::PortResult;
use async_trait::async_trait;
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;

/// One record of a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRecord {
    /// Its sequence number, increasing within the shard.
    pub seq: SequenceNumber,
    /// Its partition key (the intersection id).
    pub partition_key: String,
    /// Its payload (a reading's JSON).
    pub data: Vec<u8>,
    /// When it arrived in the stream, epoch ms.
    pub arrival_ms: i64,
}

/// What one read of a shard returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// The records, in order.
    pub records: Vec<SourceRecord>,
    /// Nothing more is in the shard for now (Kinesis: `MillisBehindLatest` is 0; the embedded
    /// log: its tail was reached).
    pub caught_up: bool,
    /// The shard is closed and has been read to its end: nothing will ever follow.
    pub ended: bool,
}

/// Where reading starts on a shard with no checkpoint yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartingPosition {
    /// The oldest record kept.
    #[default]
    TrimHorizon,
    /// Only records put from now on.
    Latest,
}

/// Where a read of a shard begins: just after a record a consumer took, or, for a consumer
/// with none yet, at its starting position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom<'a> {
    /// The record after this one.
    After(&'a SequenceNumber),
    /// Where a consumer with no checkpoint starts.
    Start(StartingPosition),
}

impl<'a> ReadFrom<'a> {
    /// The oldest record kept.
    pub const OLDEST: ReadFrom<'static> = ReadFrom::Start(StartingPosition::TrimHorizon);

    /// After `after` when a consumer has taken a record, else at `start`.
    pub fn resume(after: Option<&'a SequenceNumber>, start: StartingPosition) -> Self {
        after.map_or(Self::Start(start), Self::After)
    }

    /// The record read after, if any.
    pub fn after(self) -> Option<&'a SequenceNumber> {
        match self {
            Self::After(seq) => Some(seq),
            Self::Start(_) => None,
        }
    }
}

/// A sharded stream of records, read in order per shard.
#[async_trait]
pub trait RecordSource: Send + Sync {
    /// The stream's name, for logs and on-failure records.
    fn name(&self) -> &str;

    /// The stream's ARN, as Lambda puts it in an event: by default none (empty), as off AWS.
    fn arn(&self) -> &str {
        ""
    }

    /// The region Lambda's events name: by default `local`, as off AWS.
    fn region(&self) -> &str {
        "local"
    }

    /// Every shard: open ones, and closed ones still kept, with their parents.
    async fn shards(&self) -> PortResult<Vec<ShardInfo>>;

    /// Up to `limit` records of `shard`, in order, from `from`.
    async fn read(
        &self,
        shard: &ShardId,
        from: ReadFrom<'_>,
        limit: usize,
    ) -> PortResult<ReadBatch>;
}

/// How far each mapping got on each shard: the last sequence number its handler took.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint of `mapping` on `shard`, if any.
    async fn checkpoint(
        &self,
        mapping: &str,
        shard: &ShardId,
    ) -> PortResult<Option<SequenceNumber>>;

    /// Moves the checkpoint of `mapping` on `shard` to `seq`.
    async fn set_checkpoint(
        &self,
        mapping: &str,
        shard: &ShardId,
        seq: &SequenceNumber,
    ) -> PortResult<()>;
}

/// Checkpoints in memory: a restarted mapping starts again from its starting position (as the
/// Kinesis mappings of `traffic aws-local` and `traffic replay` do; the handlers are
/// idempotent, so reading again is safe).
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    positions: std::sync::Mutex<std::collections::BTreeMap<(String, ShardId), SequenceNumber>>,
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn checkpoint(
        &self,
        mapping: &str,
        shard: &ShardId,
    ) -> PortResult<Option<SequenceNumber>> {
        Ok(self
            .positions
            .lock()
            .ok()
            .and_then(|p| p.get(&(mapping.to_owned(), shard.clone())).cloned()))
    }

    async fn set_checkpoint(
        &self,
        mapping: &str,
        shard: &ShardId,
        seq: &SequenceNumber,
    ) -> PortResult<()> {
        if let Ok(mut p) = self.positions.lock() {
            p.insert((mapping.to_owned(), shard.clone()), seq.clone());
        }
        Ok(())
    }
}

/// Any [`RecordSource`] as the merge sees a stream ([`StreamShards`](crate::StreamShards)):
/// its shard list, and a shard has caught up when reading on from a consumer's position finds
/// nothing more.
pub struct SourceShards(pub std::sync::Arc<dyn RecordSource>);

#[async_trait]
impl crate::StreamShards for SourceShards {
    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        self.0.shards().await
    }

    async fn caught_up(&self, shard: &ShardId, after: Option<&SequenceNumber>) -> PortResult<bool> {
        let from = ReadFrom::resume(after, StartingPosition::TrimHorizon);
        let read = self.0.read(shard, from, 1).await?;
        Ok(read.records.is_empty() && read.caught_up)
    }
}
