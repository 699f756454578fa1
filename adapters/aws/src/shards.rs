//! [`StreamShards`] on a Kinesis stream (`READINGS_STREAM`): `ListShards`, every page (the
//! lineage, and each shard's hash key range), and whether a consumer has caught up
//! (`GetShardIterator` and one `GetRecords` of one record).
//!
//! The merge reads it to leave shards closed by a reshard out of the global watermark once they
//! were read to their end, and idle shards out while they stay idle (`traffic_core::lineage`);
//! the event source mapping (`traffic_app::esm`) reads it to start children only after their
//! parents.

use crate::error::port_error;
use crate::range::get_records;
use async_trait::async_trait;
use aws_sdk_kinesis::types::{Shard, ShardIteratorType};
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;
use traffic_core::routing::HashKeyRange;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::{PortError, PortResult, StreamShards};

/// The shards of one Kinesis stream.
#[derive(Clone, Debug)]
pub struct KinesisShards {
    client: aws_sdk_kinesis::Client,
    stream: Option<String>,
}

impl KinesisShards {
    /// The shards of `stream` (`None`: the variable naming it was not set, and every call
    /// fails saying so).
    pub fn new(client: aws_sdk_kinesis::Client, stream: Option<String>) -> Self {
        Self { client, stream }
    }

    /// Every shard `ListShards` lists, over all its pages.
    async fn list_all(&self) -> PortResult<Vec<Shard>> {
        let stream = self.stream()?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // A call with a NextToken must not name the stream.
            let req = self.client.list_shards();
            let req = match token.take() {
                Some(t) => req.next_token(t),
                None => req.stream_name(stream),
            };
            let resp = req
                .send()
                .await
                .map_err(|e| port_error(format!("ListShards {stream}"), e))?;
            out.extend(resp.shards().iter().cloned());
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    fn stream(&self) -> PortResult<&str> {
        self.stream.as_deref().ok_or_else(|| {
            PortError::backend(
                "READINGS_STREAM is not set",
                "reading the stream's shards needs the READINGS_STREAM environment variable",
            )
        })
    }
}

#[async_trait]
impl StreamShards for KinesisShards {
    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        Ok(self
            .list_all()
            .await?
            .iter()
            .map(|s| ShardInfo {
                id: s.shard_id().into(),
                parent: s.parent_shard_id().map(ShardId::from),
                adjacent_parent: s.adjacent_parent_shard_id().map(ShardId::from),
                closed: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
            })
            .collect())
    }

    async fn hash_ranges(&self) -> PortResult<Vec<(ShardId, HashKeyRange)>> {
        let mut out = Vec::new();
        for s in self.list_all().await? {
            let Some(r) = s.hash_key_range() else {
                continue;
            };
            let range = HashKeyRange::parse(r.starting_hash_key(), r.ending_hash_key())
                .map_err(|e| PortError::Corrupt(format!("ListShards: {}: {e}", s.shard_id())))?;
            out.push((s.shard_id().into(), range));
        }
        Ok(out)
    }

    /// Reads on from `after` (or from the oldest record without it): caught up when one
    /// `GetRecords` of at most one record finds none and Kinesis says the iterator is 0 ms
    /// behind the shard's tip. A shard closed and read to its end is caught up too.
    async fn caught_up(&self, shard: &ShardId, after: Option<&SequenceNumber>) -> PortResult<bool> {
        let stream = self.stream()?;
        let req = self
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.as_str());
        let req = match after {
            Some(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq.as_str()),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let iterator = req
            .send()
            .await
            .map_err(|e| port_error(format!("GetShardIterator {stream} {shard}"), e))?
            .shard_iterator
            .ok_or_else(|| {
                PortError::backend(
                    format!("GetShardIterator {stream} {shard}"),
                    "no iterator in the answer",
                )
            })?;
        let resp = get_records(&self.client, iterator, 1, &format!("{stream} {shard}")).await?;
        let ended = resp.next_shard_iterator().is_none();
        Ok(resp.records().is_empty() && (ended || resp.millis_behind_latest() == Some(0)))
    }
}
