//! [`RecordSource`] on a Kinesis stream: `ListShards` for the shards and their lineage,
//! `GetShardIterator` and `GetRecords` for the records.
//!
//! A read that goes on from the last record the previous read of the shard returned reuses
//! that read's next iterator (one `GetRecords` call, as a Lambda poller does); any other read
//! (the first, after a restart, after an error) asks for an iterator after the sequence number
//! (or at the starting position). An expired iterator is replaced once, silently.
//!
//! A shard has ended when `GetRecords` returns no next iterator or, for emulators that never
//! say so, when it is closed (per the last `ListShards`) and a read at its tip returns nothing.

use crate::KinesisShards;
use crate::error::{code_of, port_error};
use async_trait::async_trait;
use aws_sdk_kinesis::types::ShardIteratorType;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::{
    PortError, PortResult, ReadBatch, ReadFrom, RecordSource, SourceRecord, StartingPosition,
    StreamShards,
};

/// Where a read of a shard left off: the shard and the last sequence number it returned (or
/// the one it read after). Each mapping reading the shard leaves one.
type Position = (ShardId, Option<SequenceNumber>);

/// A Kinesis stream as a [`RecordSource`].
#[derive(Debug)]
pub struct KinesisSource {
    client: aws_sdk_kinesis::Client,
    stream: String,
    arn: String,
    region: String,
    shards: KinesisShards,
    /// The iterator that goes on from each position.
    positions: Mutex<HashMap<Position, String>>,
    closed: Mutex<HashSet<ShardId>>,
}

impl KinesisSource {
    /// The stream `stream` (its ARN is looked up now).
    pub async fn new(clients: &crate::AwsClients, stream: &str) -> PortResult<Self> {
        let summary = clients
            .kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| port_error(format!("DescribeStreamSummary {stream}"), e))?;
        let arn = summary
            .stream_description_summary()
            .map(|s| s.stream_arn().to_owned())
            .unwrap_or_default();
        Ok(Self {
            client: clients.kinesis.clone(),
            stream: stream.to_owned(),
            arn,
            region: clients.region.clone(),
            shards: KinesisShards::new(clients.kinesis.clone(), Some(stream.to_owned())),
            positions: Mutex::default(),
            closed: Mutex::default(),
        })
    }

    async fn iterator(&self, shard: &ShardId, from: ReadFrom<'_>) -> PortResult<String> {
        let reused = self
            .positions
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&(shard.to_owned(), from.after().cloned())));
        if let Some(it) = reused {
            return Ok(it);
        }
        let req = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard.as_str());
        let req = match from {
            ReadFrom::After(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq.as_str()),
            ReadFrom::Start(StartingPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            ReadFrom::Start(StartingPosition::Latest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| port_error(format!("GetShardIterator {shard}"), e))?;
        resp.shard_iterator().map(str::to_owned).ok_or_else(|| {
            PortError::backend(
                format!("GetShardIterator {shard}"),
                "no shard iterator in the answer",
            )
        })
    }
}

fn arrival_ms(r: &aws_sdk_kinesis::types::Record) -> i64 {
    r.approximate_arrival_timestamp()
        .and_then(|t| t.to_millis().ok())
        .unwrap_or(0)
}

#[async_trait]
impl RecordSource for KinesisSource {
    fn name(&self) -> &str {
        &self.stream
    }

    fn arn(&self) -> &str {
        &self.arn
    }

    fn region(&self) -> &str {
        &self.region
    }

    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        let shards = self.shards.shards().await?;
        if let Ok(mut c) = self.closed.lock() {
            c.extend(shards.iter().filter(|s| s.closed).map(|s| s.id.clone()));
        }
        Ok(shards)
    }

    async fn read(
        &self,
        shard: &ShardId,
        from: ReadFrom<'_>,
        limit: usize,
    ) -> PortResult<ReadBatch> {
        let limit = i32::try_from(limit.clamp(1, 10_000)).unwrap_or(10_000);
        let mut fresh = false;
        let resp = loop {
            let it = self.iterator(shard, from).await?;
            match self
                .client
                .get_records()
                .shard_iterator(&it)
                .limit(limit)
                .send()
                .await
            {
                Ok(r) => break r,
                // An iterator expires after 5 minutes: ask for a new one, once.
                Err(e) if code_of(&e) == Some("ExpiredIteratorException") && !fresh => {
                    fresh = true;
                }
                Err(e) => return Err(port_error(format!("GetRecords {shard}"), e)),
            }
        };
        let caught_up = resp.millis_behind_latest().is_none_or(|m| m == 0);
        let next = resp.next_shard_iterator().map(str::to_owned);
        let mut records = Vec::with_capacity(resp.records().len());
        for r in resp.records() {
            let seq = SequenceNumber::parse(r.sequence_number())
                .map_err(|e| PortError::Corrupt(format!("a record of {shard}: {e}")))?;
            records.push(SourceRecord {
                seq,
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data: r.data().as_ref().to_vec(),
                arrival_ms: arrival_ms(r),
            });
        }
        let closed = self
            .closed
            .lock()
            .map(|c| c.contains(shard))
            .unwrap_or(false);
        let ended = next.is_none() || (records.is_empty() && caught_up && closed);
        if let Some(iterator) = next {
            let after = records
                .last()
                .map(|r| r.seq.clone())
                .or(from.after().cloned());
            if let Ok(mut p) = self.positions.lock() {
                p.insert((shard.to_owned(), after), iterator);
            }
        }
        Ok(ReadBatch {
            records,
            caught_up,
            ended,
        })
    }
}
