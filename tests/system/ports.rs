//! The port-contract suite (`traffic_ports::contract`) on the embedded store: every case on a
//! fresh store in a temporary directory. `tests/aws/ports.rs` runs the same cases on DynamoDB.

use traffic_embedded::EmbeddedStore;

/// A fresh embedded store, and the directory it lives in (removed when the case ends).
async fn fresh(_case: &'static str) -> anyhow::Result<(EmbeddedStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path().join("contract.redb"))?;
    Ok((store, dir))
}

traffic_ports::port_contract!(store = fresh);

/// The stream laws (`traffic_ports::contract::source`) on the embedded log and on the stream in
/// memory; `tests/aws/ports.rs` runs them on Kinesis.
mod source {
    use async_trait::async_trait;
    use traffic_app::stream::{MemorySource, shard_for};
    use traffic_embedded::log::shard_id;
    use traffic_embedded::{EmbeddedLog, EmbeddedStore};
    use traffic_ports::contract::source::{
        Feed, checkpoints_are_kept_per_mapping_and_shard,
        each_shard_reads_its_records_in_order_from_the_oldest_and_after_any,
    };
    use traffic_ports::{MemoryCheckpoints, RecordSource};

    const SHARDS: usize = 2;

    /// The embedded log of a fresh store, fed as the simulator driver feeds it.
    struct EmbeddedFeed {
        store: EmbeddedStore,
        log: EmbeddedLog,
        _dir: tempfile::TempDir,
    }

    impl EmbeddedFeed {
        fn new() -> anyhow::Result<Self> {
            let dir = tempfile::tempdir()?;
            let store = EmbeddedStore::open(dir.path().join("source.redb"))?;
            let log = EmbeddedLog::new(store.clone(), SHARDS, &["ingest", "fault"]);
            Ok(Self {
                store,
                log,
                _dir: dir,
            })
        }
    }

    #[async_trait]
    impl Feed for EmbeddedFeed {
        fn source(&self) -> &dyn RecordSource {
            &self.log
        }

        async fn put(&self, key: &str, data: Vec<u8>) -> anyhow::Result<()> {
            let shard = shard_for(key, SHARDS) as u32;
            let records = [(shard, key.to_owned(), data)];
            self.store.append_step(&records, 0, "source", b"", &[])?;
            Ok(())
        }
    }

    struct MemoryFeed(MemorySource);

    #[async_trait]
    impl Feed for MemoryFeed {
        fn source(&self) -> &dyn RecordSource {
            &self.0
        }

        async fn put(&self, key: &str, data: Vec<u8>) -> anyhow::Result<()> {
            self.0.put(key.to_owned(), data, 0);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_embedded_log_reads_each_shard_in_order_from_the_oldest_and_after_any()
    -> anyhow::Result<()> {
        each_shard_reads_its_records_in_order_from_the_oldest_and_after_any(&EmbeddedFeed::new()?)
            .await
    }

    #[tokio::test]
    async fn the_memory_stream_reads_each_shard_in_order_from_the_oldest_and_after_any()
    -> anyhow::Result<()> {
        let feed = MemoryFeed(MemorySource::new(SHARDS));
        each_shard_reads_its_records_in_order_from_the_oldest_and_after_any(&feed).await
    }

    #[tokio::test]
    async fn the_embedded_log_keeps_checkpoints_per_mapping_and_shard() -> anyhow::Result<()> {
        let feed = EmbeddedFeed::new()?;
        let shards = [shard_id(0), shard_id(1)];
        checkpoints_are_kept_per_mapping_and_shard(&feed.log, [&shards[0], &shards[1]]).await
    }

    #[tokio::test]
    async fn memory_checkpoints_are_kept_per_mapping_and_shard() -> anyhow::Result<()> {
        let shards = [shard_id(0), shard_id(1)];
        let store = MemoryCheckpoints::default();
        checkpoints_are_kept_per_mapping_and_shard(&store, [&shards[0], &shards[1]]).await
    }
}
