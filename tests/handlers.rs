//! The handlers driven with real event JSON (a Kinesis batch as Lambda delivers it, an
//! EventBridge scheduled event), on the embedded store.

mod support;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use fault::Fault;
use ingest::Ingest;
use merge::{Merge, Provisional};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{FlakyPublisher, FlakyState, store_with_city};
use traffic_core::EngineConfig;
use traffic_functions::directory::Directory;
use traffic_ports::{LampStore, ResultStore, StateStore};

fn kinesis_event() -> KinesisEvent {
    serde_json::from_str(include_str!("fixtures/kinesis-event.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// `ingest` with every port on one embedded store.
fn ingest_on<'a>(
    cfg: &'a EngineConfig,
    store: &'a traffic_embedded::EmbeddedStore,
    directory: &'a Directory,
) -> Ingest<'a> {
    Ingest {
        cfg,
        state: store,
        registry: store,
        directory,
        stats: store,
    }
}

fn scheduled_event() -> EventBridgeEvent {
    serde_json::from_str(include_str!("fixtures/scheduled-event.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

#[tokio::test]
async fn a_poison_record_in_the_middle_is_skipped_and_the_rest_of_the_batch_lands() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let directory = Directory::default();
    let ingest = ingest_on(&cfg, &store, &directory);
    let event = kinesis_event();

    let report = ingest.process(&event).await;
    assert!(
        report.failed.is_empty(),
        "no record is reported for retry: {report:?}"
    );
    assert_eq!(report.counters.accepted, 3);
    assert_eq!(
        report.counters.rejected, 1,
        "the malformed record is counted"
    );
    assert_eq!(
        report.counters.duplicates, 1,
        "the reading put twice counts once"
    );
    let response = ingest.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());

    let metas = store.shard_metas().await.unwrap_or_default();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].shard_id, "shardId-000000000006");
    assert_eq!(metas[0].counters.accepted, 3);
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let directory = Directory::default();
    let ingest = ingest_on(&cfg, &store, &directory);
    let event = kinesis_event();
    ingest.process(&event).await;
    let before = store.shard_metas().await.unwrap_or_default();
    let items_before = store
        .pane_items(1_767_600_000_000)
        .await
        .unwrap_or_default();

    let again = ingest.process(&event).await;
    assert_eq!(again.redelivered, 5);
    assert_eq!(again.commits, 0);
    assert_eq!(store.shard_metas().await.unwrap_or_default(), before);
    assert_eq!(
        store
            .pane_items(1_767_600_000_000)
            .await
            .unwrap_or_default(),
        items_before
    );
}

#[tokio::test]
async fn a_store_outage_reports_the_first_uncommitted_record_and_a_retry_recovers() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let directory = Directory::default();
    // One item per commit, and the second commit fails once.
    let flaky = FlakyState::new(store.clone(), 0, 1);
    let ingest = Ingest {
        cfg: &cfg,
        state: flaky.as_ref(),
        registry: &store,
        directory: &directory,
        stats: &store,
    };
    let event = kinesis_event();
    flaky.fail_commits.store(1, Ordering::SeqCst);

    let response = ingest.handle(&event).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        vec![event.records[0].kinesis.sequence_number.clone()]
    );

    // The event source mapping retries from that record: here, the whole batch.
    let retry = ingest.process(&event).await;
    assert!(retry.failed.is_empty());
    let metas = store.shard_metas().await.unwrap_or_default();
    assert_eq!(metas[0].counters.accepted, 3);
    assert_eq!(metas[0].counters.duplicates, 1);
    assert_eq!(metas[0].counters.rejected, 1);
}

#[tokio::test]
async fn a_broken_green_lamp_raises_one_alarm_even_when_publishing_fails_once() {
    let (_dir, store) = store_with_city().await;
    let directory = Directory::default();
    let publisher = FlakyPublisher {
        inner: store.clone(),
        fail: AtomicUsize::new(1),
        published: AtomicUsize::new(0),
    };
    let fault = Fault {
        lamps: &store,
        publisher: &publisher,
        registry: &store,
        directory: &directory,
        stats: &store,
    };
    let event = kinesis_event();

    let response = fault.handle(&event).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the failed publish is retried"
    );
    fault.handle(&event).await;
    fault.handle(&event).await;

    assert_eq!(publisher.published.load(Ordering::SeqCst), 1);
    let alarms = store.alarms().await.unwrap_or_default();
    assert_eq!(alarms.len(), 1);
    let a = &alarms[0].alarm;
    assert_eq!(a.intersection_id.as_str(), "I-0001");
    assert_eq!(a.light.get(), 0);
    assert_eq!(a.lamp.as_str(), "green");
    assert_eq!(a.position.map(|p| (p.lat, p.lon)), Some((41.8531, 12.6042)));
    assert!(alarms[0].published);
}

#[tokio::test]
async fn a_scheduled_merge_publishes_provisional_results_of_the_open_windows() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let directory = Directory::default();
    let ingest = ingest_on(&cfg, &store, &directory);
    ingest.process(&kinesis_event()).await;
    let merge = Merge {
        cfg: &cfg,
        provisional: Provisional::All,
        state: &store,
        registry: &store,
        results: &store,
    };

    let report = merge
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.closed.is_empty(),
        "the watermark (08:00:10 − 2 min) closes nothing"
    );
    assert_eq!(report.provisional, 3);
    let results = store.results().await.unwrap_or_default();
    let fifteen = results
        .iter()
        .find(|r| r.length == "15m")
        .unwrap_or_else(|| panic!("no 15m"));
    assert!(!fifteen.closed);
    let top: Vec<_> = fifteen
        .top10
        .iter()
        .map(|e| (e.intersection_id.as_str(), e.mean_speed_kmh))
        .collect();
    // I-0001: (12·43.5 + 8·50) / 20 = 46.1; I-0002: 30.
    assert_eq!(top, vec![("I-0001", 46.1), ("I-0002", 30.0)]);
}
