//! Laws of [`RecordSource`] and [`CheckpointStore`]: a shard reads back the records put under
//! one partition key in the order they were put, from the oldest or after any of them, at most
//! `limit` at a time; a checkpoint is kept per mapping and shard. Run on a Kinesis stream
//! (`tests/aws/ports.rs`), the embedded log and the stream in memory (`tests/system/ports.rs`).

use super::{Outcome, ensure_law};
use crate::{CheckpointStore, ReadFrom, RecordSource, SourceRecord};
use async_trait::async_trait;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;

/// A stream under test: its source, and a way to put a record into it.
#[async_trait]
pub trait Feed: Send + Sync {
    /// The stream as a consumer reads it.
    fn source(&self) -> &dyn RecordSource;

    /// Puts a record under partition key `key` (the stream picks its shard by the key).
    async fn put(&self, key: &str, data: Vec<u8>) -> anyhow::Result<()>;
}

/// Records of the case's own: the partition keys and how many under each.
const KEYS: [(&str, u8); 3] = [("C-source-a", 7), ("C-source-b", 3), ("C-source-c", 5)];

/// Pages of `limit` records of `shard`, each read after the last record of the one before,
/// until one comes back empty: every record the shard holds, in its order.
async fn read_all(
    source: &dyn RecordSource,
    shard: &ShardId,
    limit: usize,
) -> anyhow::Result<Vec<SourceRecord>> {
    let mut out: Vec<SourceRecord> = Vec::new();
    for _ in 0..100 {
        let from = ReadFrom::resume(out.last().map(|r| &r.seq), Default::default());
        let page = source.read(shard, from, limit).await?;
        ensure_law!(
            page.records.len() <= limit,
            "{} records from a read of at most {limit}",
            page.records.len()
        );
        if page.records.is_empty() {
            return Ok(out);
        }
        out.extend(page.records);
    }
    anyhow::bail!("{shard} still had records after 100 pages of {limit}")
}

/// Every shard reads back the records put into it under each key in the order they were put,
/// with increasing sequence numbers; reading from the oldest in one read or in pages of two
/// after the last record read gives the same records; after any record come exactly the ones
/// that follow it; after the last, none.
pub async fn each_shard_reads_its_records_in_order_from_the_oldest_and_after_any<
    F: Feed + ?Sized,
>(
    feed: &F,
) -> Outcome {
    for (key, n) in KEYS {
        for i in 0..n {
            feed.put(key, vec![i]).await?;
        }
    }
    let source = feed.source();
    let mut seen = 0;
    for shard in source.shards().await? {
        let shard = shard.id;
        let all = source.read(&shard, ReadFrom::OLDEST, 1_000).await?.records;
        let paged = read_all(source, &shard, 2).await?;
        ensure_law!(
            paged == all,
            "{shard}: pages of two read {paged:?}, one read {all:?}"
        );
        ensure_law!(
            all.windows(2).all(|w| w[0].seq < w[1].seq),
            "{shard}: sequence numbers not increasing: {all:?}"
        );
        for (key, n) in KEYS {
            let data: Vec<u8> = all
                .iter()
                .filter(|r| r.partition_key == key)
                .flat_map(|r| r.data.clone())
                .collect();
            ensure_law!(
                data.is_empty() || data == (0..n).collect::<Vec<u8>>(),
                "{shard}: {key}'s records out of order or partial: {data:?}"
            );
            seen += data.len();
        }
        for (i, r) in all.iter().enumerate() {
            let after = source.read(&shard, ReadFrom::After(&r.seq), 1_000).await?;
            ensure_law!(
                after.records == all[i + 1..],
                "{shard}: after {} read {:?}",
                r.seq,
                after.records
            );
        }
    }
    let put: usize = KEYS.iter().map(|(_, n)| usize::from(*n)).sum();
    ensure_law!(seen == put, "{seen} of the {put} records put read back");
    Ok(())
}

/// [`CheckpointStore`]: a checkpoint is kept per mapping and shard, none before the first is
/// set, and setting it again moves it.
pub async fn checkpoints_are_kept_per_mapping_and_shard<C: CheckpointStore + ?Sized>(
    store: &C,
    shards: [&ShardId; 2],
) -> Outcome {
    let seq = SequenceNumber::from_u64;
    let [s0, s1] = shards;
    for mapping in ["ingest", "fault"] {
        for shard in shards {
            let none = store.checkpoint(mapping, shard).await?;
            ensure_law!(none.is_none(), "{mapping} on {shard} before any: {none:?}");
        }
    }
    store.set_checkpoint("ingest", s0, &seq(2)).await?;
    store.set_checkpoint("fault", s1, &seq(1)).await?;
    let read = [
        store.checkpoint("ingest", s0).await?,
        store.checkpoint("ingest", s1).await?,
        store.checkpoint("fault", s0).await?,
        store.checkpoint("fault", s1).await?,
    ];
    ensure_law!(
        read == [Some(seq(2)), None, None, Some(seq(1))],
        "after two checkpoints: {read:?}"
    );
    store.set_checkpoint("ingest", s0, &seq(5)).await?;
    let moved = store.checkpoint("ingest", s0).await?;
    ensure_law!(moved == Some(seq(5)), "moved to 5, read {moved:?}");
    let other = store.checkpoint("fault", s1).await?;
    ensure_law!(other == Some(seq(1)), "another mapping's moved: {other:?}");
    Ok(())
}
