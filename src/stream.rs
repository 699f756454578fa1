//! An in-process stand-in for a Kinesis stream: records partitioned over shards by the MD5 of
//! their partition key (as Kinesis does, with the hash key space split evenly), increasing
//! sequence numbers per shard, and `KinesisEvent` batches like those an event source mapping
//! hands to Lambda.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};

/// The shard id Kinesis gives shard `i` (`shardId-000000000003`).
pub fn shard_id(i: usize) -> String {
    format!("shardId-{i:012}")
}

/// The shard (of `shards`, evenly splitting the 128-bit hash key space) that a partition key
/// maps to.
pub fn shard_for(partition_key: &str, shards: usize) -> usize {
    let digest = Md5::digest(partition_key.as_bytes());
    let hash = u128::from_be_bytes(digest.into());
    if shards <= 1 {
        return 0;
    }
    let width = u128::MAX / shards as u128 + 1;
    ((hash / width) as usize).min(shards - 1)
}

/// One record in a shard.
#[derive(Clone, Debug)]
pub struct StreamRecord {
    /// Sequence number within the shard.
    pub seq: u128,
    /// Partition key.
    pub partition_key: String,
    /// Payload.
    pub data: Vec<u8>,
    /// When it was put.
    pub arrival: DateTime<Utc>,
}

/// The partition key of a raw reading: its `intersection_id` when it has one, else a fixed key
/// (a producer must send some key; an unparseable record still travels through one shard).
pub fn partition_key_of(line: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Key {
        intersection_id: String,
    }
    serde_json::from_slice::<Key>(line)
        .map(|k| k.intersection_id)
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .unwrap_or_else(|| "unparseable".to_owned())
}

/// A Kinesis event of `records`, all from `shard`.
pub fn kinesis_event(shard: &str, records: &[StreamRecord]) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let mut e = KinesisEventRecord::default();
            e.event_id = Some(format!("{shard}:{}", r.seq));
            e.event_name = Some("aws:kinesis:record".into());
            e.event_source = Some("aws:kinesis".into());
            e.event_version = Some("1.0".into());
            e.aws_region = Some("local".into());
            *e.kinesis.data = r.data.clone();
            e.kinesis.partition_key = r.partition_key.clone();
            e.kinesis.sequence_number = r.seq.to_string();
            e.kinesis.kinesis_schema_version = Some("1.0".into());
            e.kinesis.approximate_arrival_timestamp.0 = r.arrival;
            e
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_spread_over_all_shards_and_stay_put() {
        let mut seen = [0usize; 4];
        for i in 0..400 {
            seen[shard_for(&format!("I-{i:04}"), 4)] += 1;
        }
        assert!(seen.iter().all(|n| *n > 60), "{seen:?}");
        assert_eq!(shard_for("I-0001", 4), shard_for("I-0001", 4));
        assert_eq!(shard_for("anything", 1), 0);
    }
}
