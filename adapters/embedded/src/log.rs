//! The local runner's durable stream: the embedded stand-in for a Kinesis stream's log.
//!
//! Records are kept per shard under increasing sequence numbers, with consumer checkpoints
//! and named blobs (the simulator's state) beside them. [`EmbeddedStore::append_step`] writes
//! one simulation step's records *and* the simulator state that produced them in one
//! transaction, so after any crash the log and the simulator agree: no reading is produced
//! twice or lost.

use crate::{EmbeddedStore, decode, encode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{PortError, PortResult};

pub(crate) const LOG: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("stream_log");
pub(crate) const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("checkpoints");
pub(crate) const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");

macro_rules! r {
    ($e:expr, $ctx:expr) => {
        $e.map_err(|e| PortError::backend($ctx, redb::Error::from(e)))
    };
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
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(crate::REPAIRS), ctx)?;
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
        let txn = r!(self.db.begin_read(), ctx)?;
        let log = r!(txn.open_table(LOG), ctx)?;
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
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(CHECKPOINTS), ctx)?;
        Ok(r!(t.get(name), ctx)?.map(|v| v.value()))
    }

    /// Stores a consumer's checkpoint.
    pub fn set_checkpoint(&self, name: &str, seq: u64) -> PortResult<()> {
        let ctx = "storing a checkpoint";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(CHECKPOINTS), ctx)?;
            r!(t.insert(name, seq), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    /// Deletes the records of `shard` up to and including `through`.
    pub fn trim_log(&self, shard: u32, through: u64) -> PortResult<()> {
        let ctx = "trimming the stream";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(LOG), ctx)?;
            r!(
                t.retain_in((shard, 0)..=(shard, through), |_, _| false),
                ctx
            )?;
        }
        r!(txn.commit(), ctx)
    }

    /// A named blob (such as the simulator's state).
    pub fn blob(&self, key: &str) -> PortResult<Option<Vec<u8>>> {
        let ctx = "reading a blob";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(BLOBS), ctx)?;
        Ok(r!(t.get(key), ctx)?.map(|v| v.value().to_vec()))
    }

    /// Stores a named blob.
    pub fn set_blob(&self, key: &str, value: &[u8]) -> PortResult<()> {
        let ctx = "storing a blob";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(BLOBS), ctx)?;
            r!(t.insert(key, value), ctx)?;
        }
        r!(txn.commit(), ctx)
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
}

#[cfg(test)]
mod repair_tests {
    use super::*;
    use traffic_ports::LampStore;

    #[tokio::test]
    async fn a_repair_order_stays_queued_until_the_period_that_carries_it_out_is_appended()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = EmbeddedStore::open(dir.path().join("t.redb"))?;
        let id = IntersectionId::parse("I-1")?;
        let light = LightIndex::new(2)?;
        s.repair(&id, light, "2026-01-05T08:00:00Z").await?;
        assert_eq!(s.repair_orders()?, vec![(id.clone(), light)]);
        // Read again after a crash before the append: still there.
        assert_eq!(s.repair_orders()?, vec![(id.clone(), light)]);
        s.append_step(&[], 1, "sim", b"x", &[(id, light)])?;
        assert!(s.repair_orders()?.is_empty());
        Ok(())
    }
}
