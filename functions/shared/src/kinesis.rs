//! Kinesis records as the functions see them.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use std::collections::BTreeMap;
use traffic_core::ShardId;
use traffic_core::reading::{Reading, ReadingError};
use traffic_core::routing::HashKeyRange;
use traffic_core::sequence::SequenceNumber;

/// The shard a record came from: the part of its `eventID` before the colon
/// (`shardId-000000000006:4959...`).
pub fn shard_of(record: &KinesisEventRecord) -> &str {
    record
        .event_id
        .as_deref()
        .and_then(|id| id.split(':').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("shardId-unknown")
}

/// One decoded record.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The record as received.
    pub record: &'a KinesisEventRecord,
    /// Its sequence number.
    pub seq: SequenceNumber,
    /// The reading, or why there is none.
    pub reading: Result<Reading, ReadingError>,
    /// When it arrived in the stream (`approximateArrivalTimestamp`), epoch ms; `None` when
    /// the event does not say (a timestamp at or before 1970 counts as not said).
    pub arrival_ms: Option<i64>,
}

/// Why a record is not a reading the functions can use.
#[derive(Debug, Clone, PartialEq)]
pub enum Unusable {
    /// Not a valid reading (the contract's rules).
    Invalid(ReadingError),
    /// Put under another partition key than its intersection: per-intersection state assumes
    /// that all of an intersection's readings go to one shard.
    WrongPartition {
        /// The record's partition key.
        key: String,
        /// The reading's intersection.
        intersection: String,
    },
    /// Found on a shard whose hash key range its partition key does not fall in (a producer's
    /// explicit hash key sent it there): the intersection's other readings go to another shard.
    WrongShard {
        /// The record's partition key.
        key: String,
        /// The shard it was found on.
        shard: String,
    },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Invalid(e) => write!(f, "{e}"),
            Unusable::WrongPartition { key, intersection } => write!(
                f,
                "partition key {key:?} is not the reading's intersection_id {intersection:?}"
            ),
            Unusable::WrongShard { key, shard } => write!(
                f,
                "partition key {key:?} does not map to shard {shard} (an explicit hash key routed it there)"
            ),
        }
    }
}

impl Unusable {
    /// A short stable name of the problem, for summaries ([`crate::problems`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Unusable::Invalid(_) => "invalid reading",
            Unusable::WrongPartition { .. } => "wrong partition key",
            Unusable::WrongShard { .. } => "wrong shard",
        }
    }
}

impl Decoded<'_> {
    /// The reading, if the record holds a valid one under its own intersection's partition
    /// key.
    pub fn usable(&self) -> Result<&Reading, Unusable> {
        let r = self
            .reading
            .as_ref()
            .map_err(|e| Unusable::Invalid(e.clone()))?;
        let key = &self.record.kinesis.partition_key;
        if key != r.intersection_id.as_str() {
            return Err(Unusable::WrongPartition {
                key: key.clone(),
                intersection: r.intersection_id.to_string(),
            });
        }
        Ok(r)
    }

    /// As [`Decoded::usable`], and found on the shard its partition key maps to when that
    /// shard's hash key range is known (`range`).
    pub fn routed(&self, range: Option<&HashKeyRange>) -> Result<&Reading, Unusable> {
        let r = self.usable()?;
        let key = &self.record.kinesis.partition_key;
        match range {
            Some(range) if !range.admits(key) => Err(Unusable::WrongShard {
                key: key.clone(),
                shard: shard_of(self.record).to_owned(),
            }),
            _ => Ok(r),
        }
    }
}

/// Records of a batch grouped by shard, each shard's records in sequence order. Records whose
/// sequence number is not a number are returned apart (they cannot be checkpointed).
pub fn decode_by_shard(
    event: &KinesisEvent,
) -> (
    BTreeMap<ShardId, Vec<Decoded<'_>>>,
    Vec<&KinesisEventRecord>,
) {
    let mut shards: BTreeMap<ShardId, Vec<Decoded<'_>>> = BTreeMap::new();
    let mut bad = Vec::new();
    for record in &event.records {
        match SequenceNumber::parse(&record.kinesis.sequence_number) {
            Ok(seq) => shards
                .entry(shard_of(record).into())
                .or_default()
                .push(Decoded {
                    record,
                    seq,
                    reading: Reading::parse(&record.kinesis.data),
                    arrival_ms: Some(
                        record
                            .kinesis
                            .approximate_arrival_timestamp
                            .0
                            .timestamp_millis(),
                    )
                    .filter(|ms| *ms > 0),
                }),
            Err(_) => bad.push(record),
        }
    }
    for records in shards.values_mut() {
        records.sort_by(|a, b| a.seq.cmp(&b.seq));
    }
    (shards, bad)
}

/// A partial batch response naming `failed` (sequence numbers) as failed records.
pub fn failures(failed: impl IntoIterator<Item = SequenceNumber>) -> KinesisEventResponse {
    let mut response = KinesisEventResponse::default();
    for seq in failed {
        let mut f = KinesisBatchItemFailure::default();
        f.item_identifier = Some(seq.as_str().to_owned());
        response.batch_item_failures.push(f);
    }
    response
}

/// Throughput, latency and cost of one invocation, as a [`traffic_ports::StatsSample`] for
/// the minute of `now_ms`: latency is `now − approximate arrival` of each record; `usage` the
/// capacity units the invocation consumed.
pub fn stats_sample(
    function: traffic_ports::Series,
    event: &KinesisEvent,
    accepted: u64,
    now_ms: i64,
    usage: &traffic_ports::Usage,
) -> traffic_ports::StatsSample {
    let minute_ms = now_ms - now_ms.rem_euclid(60_000);
    let mut s = traffic_ports::StatsSample {
        invocations: 1,
        records: event.records.len() as u64,
        accepted,
        read_units: usage.read_units,
        write_units: usage.write_units,
        ..traffic_ports::StatsSample::new(function, minute_ms)
    };
    for r in &event.records {
        let arrived = r.kinesis.approximate_arrival_timestamp.0.timestamp_millis();
        let latency = (now_ms - arrived).max(0) as u64;
        s.latency_ms_sum += latency;
        s.latency_ms_max = s.latency_ms_max.max(latency);
    }
    s
}

/// Records `sample`; statistics are best effort, so a failure is logged, not raised.
pub async fn record_stats(
    stats: &dyn traffic_ports::StatsStore,
    sample: &traffic_ports::StatsSample,
) {
    if let Err(e) = stats.add_stats(sample).await {
        tracing::warn!(error = %e, function = %sample.function, "statistics not recorded");
    }
}
