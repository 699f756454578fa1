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
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;
use traffic_functions::directory::Directory;
use traffic_ports::SourceRecord;
use traffic_ports::{
    LampStore, ManualClock, NoUsage, PortError, PortResult, ResultStore, StateStore, StreamShards,
    SystemClock,
};

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
        usage: &NoUsage,
        clock: &SystemClock,
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
    let deltas_before = store.delta_panes(i64::MIN).await.unwrap_or_default();

    let again = ingest.process(&event).await;
    assert_eq!(again.redelivered, 5);
    assert_eq!(again.commits, 0);
    assert_eq!(store.shard_metas().await.unwrap_or_default(), before);
    assert_eq!(
        store.delta_panes(i64::MIN).await.unwrap_or_default(),
        deltas_before
    );
}

#[tokio::test]
async fn a_store_outage_reports_the_first_uncommitted_record_and_a_retry_recovers() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let directory = Directory::default();
    // The commit fails once.
    let flaky = FlakyState::new(store.clone(), 0);
    let ingest = Ingest {
        cfg: &cfg,
        state: flaky.as_ref(),
        registry: &store,
        directory: &directory,
        stats: &store,
        usage: &NoUsage,
        clock: &SystemClock,
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
    let cfg = EngineConfig::default();
    let fault = Fault {
        cfg: &cfg,
        usage: &NoUsage,
        clock: &SystemClock,
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
        stream: None,
        holder: "test",
        clock: &SystemClock,
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
        .find(|r| r.length() == "15m")
        .unwrap_or_else(|| panic!("no 15m"));
    assert!(!fifteen.closed);
    let top: Vec<_> = fifteen
        .top
        .iter()
        .map(|e| (e.intersection_id.as_str(), e.mean_speed_kmh))
        .collect();
    // I-0001: (12·43.5 + 8·50) / 20 = 46.1; I-0002: 30.
    assert_eq!(top, vec![("I-0001", 46.1), ("I-0002", 30.0)]);

    // The map's network state: every intersection of the open 15-minute window.
    let net = store
        .network()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no network state"));
    assert_eq!((net.length.as_str(), net.closed), ("15m", false));
    assert_eq!(net.start, fifteen.start());
    let speeds: Vec<_> = net
        .intersections
        .iter()
        .map(|x| (x.intersection_id.as_str(), x.mean_speed_kmh))
        .collect();
    assert_eq!(speeds, vec![("I-0001", Some(46.1)), ("I-0002", Some(30.0))]);
}

/// A stream whose only shard was split in two; or, with `fail`, one whose shard list cannot be
/// read. Every shard has caught up (nothing more to read).
struct SplitStream {
    fail: bool,
}

#[async_trait::async_trait]
impl StreamShards for SplitStream {
    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        if self.fail {
            return Err(PortError::backend("ListShards", "throttled"));
        }
        let shard = |id: &str, parent: Option<&str>, closed| ShardInfo {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            adjacent_parent: None,
            closed,
        };
        Ok(vec![
            shard("shardId-000000000000", None, true),
            shard("shardId-000000000001", Some("shardId-000000000000"), false),
            shard("shardId-000000000002", Some("shardId-000000000000"), false),
        ])
    }

    async fn caught_up(&self, _: &str, _: Option<&SequenceNumber>) -> PortResult<bool> {
        Ok(true)
    }
}

/// One reading a minute of I-0001's light 0, for minutes `from..to` after 08:00, as records
/// of one shard.
fn minutes(from: i64, to: i64) -> Vec<SourceRecord> {
    (from..to)
        .map(|m| SourceRecord {
            seq: SequenceNumber::from_u64(m as u64 + 1),
            partition_key: "I-0001".into(),
            data: format!(
                r#"{{"intersection_id":"I-0001","light":0,"ts":"2026-01-05T{:02}:{:02}:00Z","vehicles":10,"mean_speed_kmh":40,"lamps":{{"red":"ok","yellow":"ok","green":"ok"}}}}"#,
                8 + m / 60,
                m % 60
            )
            .into_bytes(),
            arrival_ms: chrono::Utc::now().timestamp_millis(),
        })
        .collect()
}

/// The event Lambda builds for `records` of `shard` (the one builder, as the mapping uses).
fn event_of(shard: &str, records: &[SourceRecord]) -> KinesisEvent {
    esm::kinesis_event(shard, "", "local", records)
}

/// The 15-minute windows scheduled merges close after a split at 08:20: the parent shard read
/// to its end (08:00–08:19), then one child (08:20–08:59); the other child got nothing. One
/// merge runs now; a second `later_ms` later (processing time), when given.
async fn closed_after_a_split(
    stream: Option<&dyn StreamShards>,
    later_ms: Option<i64>,
) -> Vec<String> {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let directory = Directory::default();
    let ingest = ingest_on(&cfg, &store, &directory);
    for (shard, records) in [
        ("shardId-000000000000", minutes(0, 20)),
        ("shardId-000000000002", minutes(20, 60)),
    ] {
        let report = ingest.process(&event_of(shard, &records)).await;
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(report.counters.accepted, records.len() as u64);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let clock = ManualClock::at(now);
    let merge = Merge {
        cfg: &cfg,
        provisional: Provisional::None,
        state: &store,
        registry: &store,
        results: &store,
        stream,
        holder: "test",
        clock: &clock,
    };
    let first = merge
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut closed = first.closed;
    if let Some(later) = later_ms {
        clock.set(now + later);
        let second = merge
            .handle(&scheduled_event())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        closed.extend(second.closed);
    }
    closed
        .iter()
        .filter(|w| w.length.to_string() == "15m")
        .map(|w| traffic_core::time::format_rfc3339_ms(w.start_ms))
        .collect()
}

#[tokio::test]
async fn after_a_split_no_window_closes_until_every_child_has_delivered_past_it_or_is_idle() {
    // The parent's watermark stopped at 08:19 − 2 min; one child has read on to 08:59. The
    // other child has no state: it may still deliver readings from 08:20 on, so it holds the
    // watermark at its parent's end, and only the 08:00 window closes.
    let split = SplitStream { fail: false };
    assert_eq!(
        closed_after_a_split(Some(&split), None).await,
        ["2026-01-05T08:00:00Z"]
    );
    // Caught up and silent for the idle timeout (5 minutes of processing time), it stops
    // holding it: the child with state decides (watermark 08:57).
    assert_eq!(
        closed_after_a_split(Some(&split), Some(5 * 60_000)).await,
        [
            "2026-01-05T08:00:00Z",
            "2026-01-05T08:15:00Z",
            "2026-01-05T08:30:00Z"
        ]
    );
    // Without the shard list, or when it cannot be read, the parent still counts: windows
    // close late, never early.
    assert_eq!(
        closed_after_a_split(None, None).await,
        ["2026-01-05T08:00:00Z"]
    );
    let failing = SplitStream { fail: true };
    assert_eq!(
        closed_after_a_split(Some(&failing), Some(5 * 60_000)).await,
        ["2026-01-05T08:00:00Z"]
    );
}
