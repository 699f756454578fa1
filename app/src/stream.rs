//! The stream as the `traffic` command builds it: records partitioned over shards by the MD5
//! of their partition key (as Kinesis does, with the hash key space split evenly), and
//! [`MemorySource`], a stream held in memory (what `traffic replay` reads a file into).

use async_trait::async_trait;
use std::sync::Mutex;
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::{PortError, PortResult, ReadBatch, ReadFrom, RecordSource, SourceRecord};

pub use traffic_embedded::log::{numbered_shards, shard_id, shard_index};

/// The shard (of `shards`, evenly splitting the 128-bit hash key space) that a partition key
/// maps to.
pub fn shard_for(partition_key: &str, shards: usize) -> usize {
    traffic_core::routing::even_shard(partition_key, shards)
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

/// A stream of `n` shards held in memory: records numbered from 1 per shard, never trimmed.
#[derive(Debug, Default)]
pub struct MemorySource {
    shards: Mutex<Vec<Vec<SourceRecord>>>,
}

impl MemorySource {
    /// An empty stream of `shards` shards (at least one).
    pub fn new(shards: usize) -> Self {
        Self {
            shards: Mutex::new(vec![Vec::new(); shards.max(1)]),
        }
    }

    /// Appends a record with partition key `key` to its shard, arrived at `arrival_ms`.
    pub fn put(&self, key: String, data: Vec<u8>, arrival_ms: i64) {
        if let Ok(mut shards) = self.shards.lock() {
            let n = shards.len();
            let shard = &mut shards[shard_for(&key, n)];
            let seq = SequenceNumber::from_u64(shard.len() as u64 + 1);
            shard.push(SourceRecord {
                seq,
                partition_key: key,
                data,
                arrival_ms,
            });
        }
    }
}

#[async_trait]
impl RecordSource for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        let n = self.shards.lock().map(|s| s.len()).unwrap_or(0);
        Ok(numbered_shards(n))
    }

    /// Reads from the first record whatever a starting position says.
    async fn read(
        &self,
        shard: &ShardId,
        from: ReadFrom<'_>,
        limit: usize,
    ) -> PortResult<ReadBatch> {
        let shards = self
            .shards
            .lock()
            .map_err(|_| PortError::Corrupt("the in-memory stream".into()))?;
        let records = shard_index(shard)
            .and_then(|i| shards.get(i as usize))
            .ok_or_else(|| PortError::NotFound(format!("shard {shard}")))?;
        let from = from.after().and_then(SequenceNumber::to_u64).unwrap_or(0) as usize;
        let to = from.saturating_add(limit).min(records.len());
        let out = records.get(from..to).unwrap_or_default().to_vec();
        Ok(ReadBatch {
            records: out,
            caught_up: to >= records.len(),
            ended: false,
        })
    }
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

    #[tokio::test]
    async fn the_memory_stream_reads_each_shard_in_order_from_a_position() {
        let s = MemorySource::new(2);
        for i in 0..5 {
            s.put("I-0001".into(), vec![i], 0);
        }
        let shard = shard_id(shard_for("I-0001", 2));
        let first = s
            .read(&shard, ReadFrom::OLDEST, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.records.len(), 3);
        assert!(!first.caught_up);
        let rest = s
            .read(&shard, ReadFrom::After(&first.records[2].seq), 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rest.records.iter().map(|r| r.data[0]).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(rest.caught_up);
    }
}
