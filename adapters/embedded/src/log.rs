//! The local runner's durable stream: the embedded stand-in for a Kinesis stream's log.
//!
//! Records are kept per shard under increasing sequence numbers, with consumer checkpoints
//! and named blobs (the simulator's state) beside them. [`EmbeddedStore::append_step`] writes
//! one simulation step's records *and* the simulator state that produced them in one
//! transaction, so after any crash the log and the simulator agree: no reading is produced
//! twice or lost.
//!
//! [`EmbeddedLog`] is that log as the event source mapping reads it: a [`RecordSource`] of
//! `n` shards named as Kinesis names them, and a durable [`CheckpointStore`] that trims a
//! shard's records once every consumer has taken them.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;
use traffic_core::{IntersectionId, LightIndex, ShardId};
use traffic_ports::{
    CheckpointStore, PortError, PortResult, ReadBatch, ReadFrom, RecordSource, SourceRecord,
};

pub(crate) const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("stream_log");
pub(crate) const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("checkpoints");
pub(crate) const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");

/// The shard id Kinesis gives shard `i` (`shardId-000000000003`).
pub fn shard_id(i: usize) -> ShardId {
    ShardId::new(format!("shardId-{i:012}"))
}

/// `n` open shards named by [`shard_id`], none a parent of another: a stream that never
/// reshards (the embedded log, a stream in memory).
pub fn numbered_shards(n: usize) -> Vec<ShardInfo> {
    (0..n)
        .map(|i| ShardInfo {
            id: shard_id(i),
            parent: None,
            adjacent_parent: None,
            closed: false,
        })
        .collect()
}

/// The index of a shard named by [`shard_id`].
pub fn shard_index(id: &ShardId) -> Option<u32> {
    id.as_str().strip_prefix("shardId-")?.parse().ok()
}

/// The embedded log of `shards` shards as a stream source, with durable checkpoints.
#[derive(Clone)]
pub struct EmbeddedLog {
    store: EmbeddedStore,
    shards: usize,
    consumers: Vec<String>,
}

impl EmbeddedLog {
    /// The log of `store` with `shards` shards, read by the mappings named `consumers`: a
    /// shard's records are trimmed once all of them have checkpointed past them.
    pub fn new(store: EmbeddedStore, shards: usize, consumers: &[&str]) -> Self {
        Self {
            store,
            shards,
            consumers: consumers.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn index(&self, shard: &ShardId) -> PortResult<u32> {
        shard_index(shard)
            .filter(|i| (*i as usize) < self.shards)
            .ok_or_else(|| PortError::NotFound(format!("shard {shard}")))
    }
}

/// The checkpoint key of a mapping on a shard.
fn checkpoint_key(mapping: &str, shard: u32) -> String {
    format!("{mapping}/{shard}")
}

/// The checkpoint of the one consumer that earlier versions kept per shard (both functions
/// had taken a batch when it moved): a mapping with no checkpoint of its own starts there.
fn legacy_key(shard: u32) -> String {
    format!("consumer-{shard}")
}

#[async_trait]
impl RecordSource for EmbeddedLog {
    fn name(&self) -> &str {
        "embedded"
    }

    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        Ok(numbered_shards(self.shards))
    }

    /// Reads from the oldest record kept whatever a starting position says: the log holds only
    /// what some consumer has not taken yet.
    async fn read(
        &self,
        shard: &ShardId,
        from: ReadFrom<'_>,
        limit: usize,
    ) -> PortResult<ReadBatch> {
        let i = self.index(shard)?;
        let after = match from.after() {
            None => 0,
            Some(s) => s
                .to_u64()
                .ok_or_else(|| PortError::Corrupt(format!("sequence number {s} on {shard}")))?,
        };
        let records = self.store.read_log(i, after, limit)?;
        let last = records.last().map_or(after, |r| r.seq);
        let caught_up = last >= self.store.log_tail(i)?;
        Ok(ReadBatch {
            records: records
                .into_iter()
                .map(|r| SourceRecord {
                    seq: SequenceNumber::from_u64(r.seq),
                    partition_key: r.partition_key,
                    data: r.data,
                    arrival_ms: r.arrival_ms,
                })
                .collect(),
            caught_up,
            ended: false,
        })
    }
}

#[async_trait]
impl CheckpointStore for EmbeddedLog {
    async fn checkpoint(
        &self,
        mapping: &str,
        shard: &ShardId,
    ) -> PortResult<Option<SequenceNumber>> {
        let i = self.index(shard)?;
        let own = self.store.checkpoint(&checkpoint_key(mapping, i))?;
        let at = match own {
            Some(n) => Some(n),
            None => self.store.checkpoint(&legacy_key(i))?,
        };
        Ok(at.map(SequenceNumber::from_u64))
    }

    /// Stores the checkpoint and, in the same transaction, trims the shard's records that
    /// every consumer has taken.
    async fn set_checkpoint(
        &self,
        mapping: &str,
        shard: &ShardId,
        seq: &SequenceNumber,
    ) -> PortResult<()> {
        let i = self.index(shard)?;
        let n = seq
            .to_u64()
            .ok_or_else(|| PortError::Corrupt(format!("sequence number {seq} on {shard}")))?;
        let ctx = "storing a checkpoint";
        let txn = r!(self.store.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(CHECKPOINTS), ctx)?;
            r!(t.insert(checkpoint_key(mapping, i).as_str(), n), ctx)?;
            let legacy = r!(t.get(legacy_key(i).as_str()), ctx)?.map(|v| v.value());
            let mut taken_by_all = Some(u64::MAX);
            for c in &self.consumers {
                let at = r!(t.get(checkpoint_key(c, i).as_str()), ctx)?
                    .map(|v| v.value())
                    .or(legacy);
                taken_by_all = taken_by_all.zip(at).map(|(a, b)| a.min(b));
            }
            if let Some(through) = taken_by_all.filter(|t| *t != u64::MAX) {
                let mut log = r!(txn.open_table(LOG), ctx)?;
                r!(log.retain_in((i, 0)..=(i, through), |_, _| false), ctx)?;
            }
        }
        r!(txn.commit(), ctx)
    }
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Sequence number within its shard (from 1).
    pub seq: u64,
    /// Partition key (the intersection id).
    pub partition_key: String,
    /// Payload (a reading's JSON).
    pub data: Vec<u8>,
    /// When it was appended, epoch ms (wall clock).
    pub arrival_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    partition_key: String,
    data: Vec<u8>,
    arrival_ms: i64,
}

impl EmbeddedStore {
    /// Appends `records` (shard, partition key, payload), stores `blob` under `blob_key` and
    /// removes the repair orders `carried_out`, atomically. Returns the last sequence number
    /// given in each shard touched.
    pub fn append_step(
        &self,
        records: &[(u32, String, Vec<u8>)],
        arrival_ms: i64,
        blob_key: &str,
        blob: &[u8],
        carried_out: &[(IntersectionId, LightIndex)],
    ) -> PortResult<Vec<(u32, u64)>> {
        let ctx = "appending to the stream";
        let txn = r!(self.db.begin_write(), ctx)?;
        let mut last: Vec<(u32, u64)> = Vec::new();
        {
            let mut log = r!(txn.open_table(LOG), ctx)?;
            let mut next: std::collections::BTreeMap<u32, u64> = Default::default();
            for (shard, key, data) in records {
                let seq = match next.get(shard) {
                    Some(n) => *n,
                    None => {
                        let tail = r!(log.range((*shard, 0)..=(*shard, u64::MAX)), ctx)?
                            .next_back()
                            .transpose()
                            .map_err(|e| PortError::backend(ctx, redb::Error::from(e)))?
                            .map(|(k, _)| k.value().1);
                        // Sequence numbers survive trimming: keep the high-water mark too.
                        let mark = read_u64(&txn, &format!("log-tail-{shard}"))?;
                        tail.unwrap_or(0).max(mark) + 1
                    }
                };
                let stored = Stored {
                    partition_key: key.clone(),
                    data: data.clone(),
                    arrival_ms,
                };
                r!(log.insert((*shard, seq), encode(&stored)?.as_slice()), ctx)?;
                next.insert(*shard, seq + 1);
            }
            let mut cps = r!(txn.open_table(CHECKPOINTS), ctx)?;
            for (shard, n) in &next {
                r!(cps.insert(format!("log-tail-{shard}").as_str(), n - 1), ctx)?;
                last.push((*shard, n - 1));
            }
            let mut blobs = r!(txn.open_table(BLOBS), ctx)?;
            r!(blobs.insert(blob_key, blob), ctx)?;
            let mut orders = r!(txn.open_table(crate::REPAIRS), ctx)?;
            for (id, light) in carried_out {
                r!(orders.remove((id.as_str(), light.get() as u8)), ctx)?;
            }
        }
        r!(txn.commit(), ctx)?;
        Ok(last)
    }

    /// The repair orders not yet carried out, without taking them (the local runner removes
    /// them with the period that carries them out, in [`EmbeddedStore::append_step`]).
    pub fn repair_orders(&self) -> PortResult<Vec<(IntersectionId, LightIndex)>> {
        let ctx = "reading repair orders";
        let t = self.read_table(crate::REPAIRS, ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (k, _) = r!(e, ctx)?;
            let (id, l) = k.value();
            if let (Ok(id), Ok(l)) = (IntersectionId::parse(id), LightIndex::new(i64::from(l))) {
                out.push((id, l));
            }
        }
        Ok(out)
    }

    /// Up to `limit` records of `shard` after sequence number `after`, in order.
    pub fn read_log(&self, shard: u32, after: u64, limit: usize) -> PortResult<Vec<LogRecord>> {
        let ctx = "reading the stream";
        let log = self.read_table(LOG, ctx)?;
        let mut out = Vec::new();
        for e in r!(
            log.range((shard, after.saturating_add(1))..=(shard, u64::MAX)),
            ctx
        )?
        .take(limit)
        {
            let (k, v) = r!(e, ctx)?;
            let s: Stored = decode(v.value(), "stream record")?;
            out.push(LogRecord {
                seq: k.value().1,
                partition_key: s.partition_key,
                data: s.data,
                arrival_ms: s.arrival_ms,
            });
        }
        Ok(out)
    }

    /// The last sequence number appended to `shard` (0 when none).
    pub fn log_tail(&self, shard: u32) -> PortResult<u64> {
        Ok(self.checkpoint(&format!("log-tail-{shard}"))?.unwrap_or(0))
    }

    /// A consumer's checkpoint (the last sequence number it finished), if any.
    pub fn checkpoint(&self, name: &str) -> PortResult<Option<u64>> {
        let ctx = "reading a checkpoint";
        let t = self.read_table(CHECKPOINTS, ctx)?;
        Ok(r!(t.get(name), ctx)?.map(|v| v.value()))
    }

    /// Stores a consumer's checkpoint.
    pub fn set_checkpoint(&self, name: &str, seq: u64) -> PortResult<()> {
        let ctx = "storing a checkpoint";
        self.write_table(CHECKPOINTS, ctx, |t| {
            r!(t.insert(name, seq), ctx)?;
            Ok(())
        })
    }

    /// Deletes the records of `shard` up to and including `through`.
    pub fn trim_log(&self, shard: u32, through: u64) -> PortResult<()> {
        let ctx = "trimming the stream";
        self.write_table(LOG, ctx, |t| {
            r!(
                t.retain_in((shard, 0)..=(shard, through), |_, _| false),
                ctx
            )?;
            Ok(())
        })
    }

    /// A named blob (such as the simulator's state).
    pub fn blob(&self, key: &str) -> PortResult<Option<Vec<u8>>> {
        let ctx = "reading a blob";
        let t = self.read_table(BLOBS, ctx)?;
        Ok(r!(t.get(key), ctx)?.map(|v| v.value().to_vec()))
    }

    /// Stores a named blob.
    pub fn set_blob(&self, key: &str, value: &[u8]) -> PortResult<()> {
        let ctx = "storing a blob";
        self.write_table(BLOBS, ctx, |t| {
            r!(t.insert(key, value), ctx)?;
            Ok(())
        })
    }
}

fn read_u64(txn: &redb::WriteTransaction, name: &str) -> PortResult<u64> {
    let ctx = "reading a checkpoint";
    let t = r!(txn.open_table(CHECKPOINTS), ctx)?;
    Ok(r!(t.get(name), ctx)?.map(|v| v.value()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_records_get_increasing_numbers_that_survive_trimming_and_reopening()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.redb");
        {
            let s = EmbeddedStore::open(&path)?;
            let recs = vec![
                (0, "a".to_string(), b"1".to_vec()),
                (1, "b".into(), b"2".to_vec()),
                (0, "a".into(), b"3".to_vec()),
            ];
            assert_eq!(
                s.append_step(&recs, 5, "sim", b"state1", &[])?,
                vec![(0, 2), (1, 1)]
            );
            s.trim_log(0, 2)?;
        }
        let s = EmbeddedStore::open(&path)?;
        assert!(s.read_log(0, 0, 10)?.is_empty());
        s.append_step(&[(0, "a".into(), b"4".to_vec())], 6, "sim", b"state2", &[])?;
        let r = s.read_log(0, 0, 10)?;
        assert_eq!(r.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.blob("sim")?, Some(b"state2".to_vec()));
        assert_eq!(s.log_tail(1)?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn the_log_is_trimmed_once_every_consumer_has_checkpointed_past_a_record()
    -> anyhow::Result<()> {
        let (_dir, s) = crate::temp_store()?;
        let recs: Vec<(u32, String, Vec<u8>)> =
            (0..4).map(|i| (0, "a".to_string(), vec![i])).collect();
        s.append_step(&recs, 5, "sim", b"x", &[])?;
        let log = EmbeddedLog::new(s.clone(), 2, &["ingest", "fault"]);
        let shard = shard_id(0);
        let all = log.read(&shard, ReadFrom::OLDEST, 10).await?;
        assert_eq!(all.records.len(), 4);
        assert!(all.caught_up && !all.ended);
        let two = SequenceNumber::from_u64(2);
        let part = log.read(&shard, ReadFrom::After(&two), 1).await?;
        assert_eq!(part.records[0].seq, SequenceNumber::from_u64(3));
        assert!(!part.caught_up);
        log.set_checkpoint("ingest", &shard, &SequenceNumber::from_u64(3))
            .await?;
        assert_eq!(s.read_log(0, 0, 10)?.len(), 4, "fault has not taken them");
        log.set_checkpoint("fault", &shard, &two).await?;
        assert_eq!(s.read_log(0, 0, 10)?.len(), 2);
        assert_eq!(log.checkpoint("fault", &shard).await?, Some(two));
        assert_eq!(log.checkpoint("ingest", &shard_id(1)).await?, None);
        assert!(
            log.read(&ShardId::from("shardId-000000000002"), ReadFrom::OLDEST, 1)
                .await
                .is_err()
        );
        Ok(())
    }
}

#[cfg(test)]
mod repair_tests {
    use super::*;
    use traffic_ports::LampStore;

    #[tokio::test]
    async fn a_repair_order_stays_queued_until_the_period_that_carries_it_out_is_appended()
    -> anyhow::Result<()> {
        let (_dir, s) = crate::temp_store()?;
        let id = IntersectionId::parse("I-1")?;
        let light = LightIndex::new(2)?;
        s.repair(&id, light, 1_767_600_000_000).await?;
        assert_eq!(s.repair_orders()?, vec![(id.clone(), light)]);
        // Read again after a crash before the append: still there.
        assert_eq!(s.repair_orders()?, vec![(id.clone(), light)]);
        s.append_step(&[], 1, "sim", b"x", &[(id, light)])?;
        assert!(s.repair_orders()?.is_empty());
        Ok(())
    }
}
