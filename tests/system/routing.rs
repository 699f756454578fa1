//! A record that a producer's explicit hash key put on a shard its partition key does not map
//! to (Kinesis routes by the MD5 of the partition key unless told otherwise) is rejected and
//! counted by `ingest` and skipped and counted by `fault`; the rest of its batch lands. Driven
//! through the handlers Lambda runs (`BatchHandler`), with a fixture batch of a 2-shard stream
//! and the shards' ranges as `ListShards` gives them. `tests/aws/faults.rs` does the same with
//! a real `PutRecord` on the emulator.

use crate::support::store_with_city;
use aws_lambda_events::event::kinesis::KinesisEvent;
use fault::FaultHandler;
use ingest::IngestHandler;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_core::EngineConfig;
use traffic_core::lineage::ShardInfo;
use traffic_core::routing::HashKeyRange;
use traffic_core::sequence::SequenceNumber;
use traffic_functions::BatchHandler;
use traffic_ports::{LampStore, PortResult, Ports, StreamShards};

/// The fixture: one batch of `shardId-000000000001`, whose hash keys start at 10³⁸: I-0002's
/// readings (MD5 1.48 × 10³⁸) belong there; I-0001's (4.15 × 10³⁷, a broken green lamp) was
/// sent there by an explicit hash key.
fn misrouted_batch() -> KinesisEvent {
    serde_json::from_str(include_str!("../fixtures/kinesis-misrouted.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// Two shards split at 10³⁸, as `ListShards` describes them; counts the listings.
#[derive(Default)]
struct TwoShards {
    listed: AtomicUsize,
}

#[async_trait::async_trait]
impl StreamShards for TwoShards {
    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        Ok(Vec::new())
    }

    async fn caught_up(
        &self,
        _: &traffic_core::ShardId,
        _: Option<&SequenceNumber>,
    ) -> PortResult<bool> {
        Ok(false)
    }

    async fn hash_ranges(&self) -> PortResult<Vec<(traffic_core::ShardId, HashKeyRange)>> {
        self.listed.fetch_add(1, Ordering::SeqCst);
        let range = |a: &str, b: &str| HashKeyRange::parse(a, b).unwrap_or_else(|e| panic!("{e}"));
        Ok(vec![
            (
                "shardId-000000000000".into(),
                range("0", "99999999999999999999999999999999999999"),
            ),
            (
                "shardId-000000000001".into(),
                range(
                    "100000000000000000000000000000000000000",
                    "340282366920938463463374607431768211455",
                ),
            ),
        ])
    }
}

#[test]
fn the_fixtures_partition_keys_hash_where_the_test_says() {
    let shard1 = HashKeyRange::parse(
        "100000000000000000000000000000000000000",
        "340282366920938463463374607431768211455",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(shard1.admits("I-0002"));
    assert!(!shard1.admits("I-0001"));
}

#[tokio::test]
async fn a_record_routed_by_an_explicit_hash_key_to_another_shard_is_rejected_and_counted() {
    let (_dir, store) = store_with_city().await;
    let store = Arc::new(store);
    let stream = Arc::new(TwoShards::default());
    let ports = Ports::from_store(store.clone(), store.clone()).with_stream(stream.clone());
    let ingest = IngestHandler::from_ports(EngineConfig::default(), &ports);
    let batch = misrouted_batch();

    let answer = ingest.handle(&batch).await;
    assert!(answer.batch_item_failures.is_empty());
    let report = ingest.process(&batch).await;
    // Everything was applied (or rejected) already: the three records are redeliveries now.
    assert_eq!(report.redelivered, 3);
    let metas = traffic_ports::StateStore::shard_metas(store.as_ref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let counters = &metas
        .iter()
        .find(|m| m.shard_id == "shardId-000000000001")
        .unwrap_or_else(|| panic!("no meta for the shard: {metas:?}"))
        .counters;
    assert_eq!(
        (counters.accepted, counters.rejected),
        (2, 1),
        "I-0002's two readings accepted, I-0001's rejected"
    );

    let fault = FaultHandler::from_ports(EngineConfig::default(), &ports);
    let answer = fault.handle(&batch).await;
    assert!(answer.batch_item_failures.is_empty());
    let alarms = store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        alarms.is_empty(),
        "the misrouted record's broken lamp raised {alarms:?}"
    );
    // Listed once per handler (a cold start), not once per batch.
    fault.handle(&batch).await;
    assert_eq!(stream.listed.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn fault_counts_the_misrouted_record_and_handles_the_rest() {
    let (_dir, store) = store_with_city().await;
    let store = Arc::new(store);
    let ports =
        Ports::from_store(store.clone(), store.clone()).with_stream(Arc::new(TwoShards::default()));
    let fault = FaultHandler::from_ports(EngineConfig::default(), &ports);
    let (report, failed) = fault.process(&misrouted_batch()).await;
    assert!(failed.is_empty());
    assert_eq!((report.misrouted, report.skipped), (1, 1));
    assert!(report.raised.is_empty());
}
