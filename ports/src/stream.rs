//! The stream's shards as the merge sees them ([`StreamShards`]).

use crate::PortResult;
use async_trait::async_trait;
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;
use traffic_core::routing::HashKeyRange;
use traffic_core::sequence::SequenceNumber;

/// The stream's shards, as the merge sees them (see `traffic_core::lineage`): which closed
/// shards were read to their end, and which shards have nothing more to deliver for now.
#[async_trait]
pub trait StreamShards: Send + Sync {
    /// Every shard the stream lists: open ones, and closed ones within its retention.
    async fn shards(&self) -> PortResult<Vec<ShardInfo>>;

    /// Whether a consumer at `after` (its last record, or none) on `shard` has caught up:
    /// reading on finds nothing (Kinesis: no records and `MillisBehindLatest` 0).
    async fn caught_up(&self, shard: &ShardId, after: Option<&SequenceNumber>) -> PortResult<bool>;

    /// Each shard's range of hash keys (`ListShards`), by shard id: `ingest` and `fault` reject
    /// a record that an explicit hash key put on a shard its partition key does not map to.
    /// Empty where nothing can misroute a record (the in-process streams route by the key
    /// themselves), and then nothing is checked.
    async fn hash_ranges(&self) -> PortResult<Vec<(ShardId, HashKeyRange)>> {
        Ok(Vec::new())
    }
}
