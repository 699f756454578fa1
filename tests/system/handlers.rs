//! The handlers driven with real event JSON (a Kinesis batch as Lambda delivers it, an
//! EventBridge scheduled event), on the embedded store.

use crate::support::{FlakyPublisher, FlakyState, store_with_city};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use fault::FaultHandler;
use ingest::IngestHandler;
use merge::{MergeHandler, Provisional};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::lineage::ShardInfo;
use traffic_core::plan::{PlanConfig, plan, plan_of};
use traffic_core::sequence::SequenceNumber;
use traffic_functions::BatchHandler;
use traffic_ports::SourceRecord;
use traffic_ports::{
    LampStore, ManualClock, PortError, PortResult, Ports, Registry, ResultStore, StateStore,
    StreamShards,
};

fn kinesis_event() -> KinesisEvent {
    serde_json::from_str(include_str!("../fixtures/kinesis-event.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// `ingest` with every port on one embedded store.
fn ingest_on(cfg: &EngineConfig, store: &traffic_embedded::EmbeddedStore) -> IngestHandler {
    IngestHandler::from_ports(cfg.clone(), &store.ports())
}

/// The merge over `ports`: closed windows only; tests build `ports` with what they vary.
fn merge_over(cfg: &EngineConfig, ports: &Ports) -> MergeHandler {
    MergeHandler::from_ports(cfg.clone(), Provisional::None, ports).with_holder("test")
}

/// The merge with every port on one embedded store: closed windows only, no shard list, the
/// system clock.
fn merge_on(cfg: &EngineConfig, store: &traffic_embedded::EmbeddedStore) -> MergeHandler {
    merge_over(cfg, &store.ports())
}

fn scheduled_event() -> EventBridgeEvent {
    serde_json::from_str(include_str!("../fixtures/scheduled-event.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
}

#[tokio::test]
async fn a_poison_record_in_the_middle_is_skipped_and_the_rest_of_the_batch_lands() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let ingest = ingest_on(&cfg, &store);
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
    let ingest = ingest_on(&cfg, &store);
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
    // The commit fails once.
    let flaky = FlakyState::new(store.clone(), 0);
    let ingest = IngestHandler::from_ports(cfg.clone(), &store.ports().with_state(flaky.clone()));
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
    let publisher = Arc::new(FlakyPublisher {
        inner: store.clone(),
        fail: AtomicUsize::new(1),
        published: AtomicUsize::new(0),
    });
    let cfg = EngineConfig::default();
    let fault = FaultHandler::from_ports(
        cfg.clone(),
        &store.ports().with_publisher(publisher.clone()),
    );
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
    // The registry's position, not the one in the reading (41.8531, 12.6042, 490 m away).
    assert_eq!(a.position.map(|p| (p.lat, p.lon)), Some((41.85, 12.6)));
    assert!(alarms[0].published);
}

#[tokio::test]
async fn a_scheduled_merge_publishes_provisional_results_of_the_open_windows() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let ingest = ingest_on(&cfg, &store);
    ingest.process(&kinesis_event()).await;
    let merge =
        MergeHandler::from_ports(cfg.clone(), Provisional::All, &store.ports()).with_holder("test");

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
            id: id.into(),
            parent: parent.map(traffic_core::ShardId::from),
            adjacent_parent: None,
            closed,
        };
        Ok(vec![
            shard("shardId-000000000000", None, true),
            shard("shardId-000000000001", Some("shardId-000000000000"), false),
            shard("shardId-000000000002", Some("shardId-000000000000"), false),
        ])
    }

    async fn caught_up(
        &self,
        _: &traffic_core::ShardId,
        _: Option<&SequenceNumber>,
    ) -> PortResult<bool> {
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
    esm::kinesis_event(&shard.into(), "", "local", records)
}

/// The 15-minute windows scheduled merges close after a split at 08:20: the parent shard read
/// to its end (08:00–08:19), then one child (08:20–08:59); the other child got nothing. One
/// merge runs now; a second `later_ms` later (processing time), when given.
async fn closed_after_a_split(
    stream: Option<Arc<dyn StreamShards>>,
    later_ms: Option<i64>,
) -> Vec<String> {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let ingest = ingest_on(&cfg, &store);
    for (shard, records) in [
        ("shardId-000000000000", minutes(0, 20)),
        ("shardId-000000000002", minutes(20, 60)),
    ] {
        let report = ingest.process(&event_of(shard, &records)).await;
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(report.counters.accepted, records.len() as u64);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let clock = Arc::new(ManualClock::at(now));
    let mut ports = store.ports().with_clock(clock.clone());
    ports.stream = stream;
    let merge = merge_over(&cfg, &ports);
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
    assert_eq!(
        closed_after_a_split(Some(Arc::new(SplitStream { fail: false })), None).await,
        ["2026-01-05T08:00:00Z"]
    );
    // Caught up and silent for the idle timeout (5 minutes of processing time), it stops
    // holding it: the child with state decides (watermark 08:57).
    assert_eq!(
        closed_after_a_split(
            Some(Arc::new(SplitStream { fail: false })),
            Some(5 * 60_000)
        )
        .await,
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
    assert_eq!(
        closed_after_a_split(Some(Arc::new(SplitStream { fail: true })), Some(5 * 60_000)).await,
        ["2026-01-05T08:00:00Z"]
    );
}

/// One reading a minute of `id`'s light 0, for minutes `from..to` after 08:00, arrived now.
fn readings_of(id: &str, from: i64, to: i64) -> Vec<SourceRecord> {
    minutes(from, to)
        .into_iter()
        .map(|mut r| {
            r.partition_key = id.into();
            r.data = String::from_utf8_lossy(&r.data)
                .replace("I-0001", id)
                .into_bytes();
            r
        })
        .collect()
}

/// Prints a row of the fault table (one line per scenario) from the shards' counters, and
/// checks that they add up to the records delivered.
async fn row(scenario: &str, store: &traffic_embedded::EmbeddedStore, delivered: u64, test: &str) {
    let mut c = traffic_core::pane::Counters::default();
    for m in store.shard_metas().await.unwrap_or_else(|e| panic!("{e}")) {
        c.add(&m.counters);
    }
    println!(
        "| {scenario} | {delivered} | {} | {} | {} | {} | {} | see test | `{test}` |",
        c.accepted, c.late, c.future, c.rejected, c.duplicates
    );
    assert_eq!(c.records(), delivered, "the counters add up: {c:?}");
}

#[tokio::test]
async fn a_record_whose_partition_key_is_not_its_intersection_is_rejected_and_the_rest_lands() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let ingest = ingest_on(&cfg, &store);
    let mut records = minutes(0, 5);
    // I-0001's reading put under I-0002's key: it would land on I-0002's shard.
    records[2].partition_key = "I-0002".into();
    let report = ingest
        .process(&event_of("shardId-000000000000", &records))
        .await;
    assert!(report.failed.is_empty());
    assert_eq!((report.counters.accepted, report.counters.rejected), (4, 1));
    row(
        "partition key differs from the reading's intersection",
        &store,
        5,
        "a_record_whose_partition_key_is_not_its_intersection_is_rejected_and_the_rest_lands",
    )
    .await;
}

/// Two open shards; only the second has caught up with the stream (the first has more to
/// read).
struct TwoShards;

#[async_trait::async_trait]
impl StreamShards for TwoShards {
    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        Ok(["shardId-000000000000", "shardId-000000000001"]
            .map(|id| ShardInfo {
                id: id.into(),
                parent: None,
                adjacent_parent: None,
                closed: false,
            })
            .to_vec())
    }

    async fn caught_up(
        &self,
        shard: &traffic_core::ShardId,
        _: Option<&SequenceNumber>,
    ) -> PortResult<bool> {
        Ok(shard == "shardId-000000000001")
    }
}

#[tokio::test]
async fn an_idle_shard_stops_holding_windows_and_what_it_sends_later_into_them_is_late() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let now = chrono::Utc::now().timestamp_millis();
    let clock = Arc::new(ManualClock::at(now));
    let ports = store.ports().with_clock(clock.clone());
    let ingest = IngestHandler::from_ports(cfg.clone(), &ports);
    let first = ingest
        .process(&event_of("shardId-000000000000", &minutes(0, 60)))
        .await;
    assert_eq!(first.counters.accepted, 60);
    let merge = merge_over(&cfg, &ports.with_stream(Arc::new(TwoShards)));
    // Shard 1 has sent nothing: it holds every window until it has been idle for 5 minutes.
    let held = merge.run(merge::CloseUpTo::Watermark).await;
    assert!(held.unwrap_or_else(|e| panic!("{e}")).closed.is_empty());
    clock.set(now + 5 * 60_000);
    let report = merge
        .run(merge::CloseUpTo::Watermark)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.shards_idle, 1);
    let fifteen = report
        .closed
        .iter()
        .filter(|w| w.length.to_string() == "15m")
        .count();
    assert_eq!(fifteen, 3, "08:00, 08:15 and 08:30 close (watermark 08:57)");

    // It wakes up with readings of 08:10 (a finalised window: late) and 08:58 (open).
    let mut woke = readings_of("I-0002", 10, 11);
    woke.extend(readings_of("I-0002", 58, 59));
    let late = ingest
        .process(&event_of("shardId-000000000001", &woke))
        .await;
    assert_eq!((late.counters.late, late.counters.accepted), (1, 1));
    row(
        "one of two shards idle: windows close after the idle timeout, then it sends into a closed one",
        &store,
        62,
        "an_idle_shard_stops_holding_windows_and_what_it_sends_later_into_them_is_late",
    )
    .await;
}

#[tokio::test]
async fn two_merges_started_together_give_the_results_of_one() {
    let cfg = EngineConfig::default();
    let mut outcomes = Vec::new();
    for together in [false, true] {
        let (dir, store) = store_with_city().await;
        let ingest = ingest_on(&cfg, &store);
        ingest
            .process(&event_of("shardId-000000000000", &minutes(0, 60)))
            .await;
        // The embedded store never waits; this one lets the other run in at every read.
        let yielding = FlakyState::new(store.clone(), 0);
        let merge_as = |holder: &str| {
            MergeHandler::from_ports(
                cfg.clone(),
                Provisional::All,
                &store.ports().with_state(yielding.clone()),
            )
            .with_holder(holder)
        };
        let (a, b) = (merge_as("run-a"), merge_as("run-b"));
        let skipped = if together {
            let event = scheduled_event();
            let (ra, rb) = tokio::join!(a.handle(&event), b.handle(&event));
            let (ra, rb) = (
                ra.unwrap_or_else(|e| panic!("{e}")),
                rb.unwrap_or_else(|e| panic!("{e}")),
            );
            [ra.skipped.is_some(), rb.skipped.is_some()]
        } else {
            let ra = a.handle(&scheduled_event()).await;
            [
                ra.unwrap_or_else(|e| panic!("{e}")).skipped.is_some(),
                false,
            ]
        };
        let results = store.results().await.unwrap_or_else(|e| panic!("{e}"));
        let timings = store
            .intersections()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let history = store
            .timing_history(
                &traffic_core::IntersectionId::parse("I-0001").unwrap_or_else(|e| panic!("{e:?}")),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        outcomes.push((skipped, results, timings, history.len()));
        drop(dir);
    }
    let (alone, together) = (&outcomes[0], &outcomes[1]);
    assert_eq!(alone.0, [false, false]);
    assert_eq!(
        together.0.iter().filter(|s| **s).count(),
        1,
        "exactly one of the two runs stood down"
    );
    assert_eq!(together.1, alone.1, "the results of one run");
    assert_eq!(together.2, alone.2, "the timings of one run");
    assert_eq!(together.3, alone.3, "one retiming in the history, not two");
}

/// The embedded registry, with an operator's edit of I-0001 landing just before the merge
/// writes its retiming (after it read the versions).
struct EditDuringRetiming {
    inner: traffic_embedded::EmbeddedStore,
    edited: AtomicUsize,
}

#[async_trait::async_trait]
impl Registry for EditDuringRetiming {
    async fn intersections(&self) -> PortResult<Vec<traffic_core::Intersection>> {
        self.inner.intersections().await
    }
    async fn intersections_page(
        &self,
        after: Option<&traffic_core::IntersectionId>,
        limit: usize,
    ) -> PortResult<(
        Vec<traffic_core::Intersection>,
        Option<traffic_core::IntersectionId>,
    )> {
        self.inner.intersections_page(after, limit).await
    }
    async fn intersection(
        &self,
        id: &traffic_core::IntersectionId,
    ) -> PortResult<Option<traffic_core::Intersection>> {
        self.inner.intersection(id).await
    }
    async fn create_intersection(&self, x: &traffic_core::Intersection) -> PortResult<()> {
        self.inner.create_intersection(x).await
    }
    async fn put_intersection(&self, x: &traffic_core::Intersection) -> PortResult<()> {
        self.inner.put_intersection(x).await
    }
    async fn delete_intersection(&self, id: &traffic_core::IntersectionId) -> PortResult<bool> {
        self.inner.delete_intersection(id).await
    }
    async fn intersection_versioned(
        &self,
        id: &traffic_core::IntersectionId,
    ) -> PortResult<Option<(traffic_core::Intersection, traffic_ports::Version)>> {
        self.inner.intersection_versioned(id).await
    }
    async fn replace_intersection_if(
        &self,
        x: &traffic_core::Intersection,
        expected: &traffic_ports::Version,
    ) -> PortResult<traffic_ports::Version> {
        self.inner.replace_intersection_if(x, expected).await
    }
    async fn delete_intersection_if(
        &self,
        id: &traffic_core::IntersectionId,
        expected: &traffic_ports::Version,
    ) -> PortResult<()> {
        self.inner.delete_intersection_if(id, expected).await
    }
    async fn intersections_versioned(
        &self,
    ) -> PortResult<Vec<(traffic_core::Intersection, traffic_ports::Version)>> {
        self.inner.intersections_versioned().await
    }
    async fn set_timings(
        &self,
        timings: &[traffic_ports::TimingUpdate],
        from: &traffic_core::window::WindowKey,
    ) -> PortResult<Vec<traffic_core::IntersectionId>> {
        if self.edited.fetch_add(1, Ordering::SeqCst) == 0 {
            operator_edit(&self.inner).await;
        }
        self.inner.set_timings(timings, from).await
    }
    async fn set_proposals(
        &self,
        proposals: &[traffic_ports::ProposalUpdate],
    ) -> PortResult<Vec<traffic_core::IntersectionId>> {
        self.inner.set_proposals(proposals).await
    }
    async fn timing_history(
        &self,
        id: &traffic_core::IntersectionId,
    ) -> PortResult<Vec<traffic_ports::TimingChange>> {
        self.inner.timing_history(id).await
    }
    async fn operator_edits(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<(traffic_core::IntersectionId, traffic_ports::TimingChange)>> {
        self.inner.operator_edits(from_ms, to_ms).await
    }
    async fn replace_intersection_recording(
        &self,
        x: &traffic_core::Intersection,
        expected: &traffic_ports::Version,
        change: &traffic_ports::TimingChange,
    ) -> PortResult<traffic_ports::Version> {
        self.inner
            .replace_intersection_recording(x, expected, change)
            .await
    }
    async fn record_timing_change(
        &self,
        id: &traffic_core::IntersectionId,
        change: &traffic_ports::TimingChange,
    ) -> PortResult<()> {
        self.inner.record_timing_change(id, change).await
    }
}

/// The operator sets I-0001's first phase to 33 s of green.
async fn operator_edit(store: &traffic_embedded::EmbeddedStore) {
    let id = traffic_core::IntersectionId::parse("I-0001").unwrap_or_else(|e| panic!("{e:?}"));
    let (mut x, version) = store
        .intersection_versioned(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no I-0001"));
    x.phases[0].green_s = 33.0;
    store
        .replace_intersection_if(&x, &version)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn an_operator_edit_landing_between_the_merges_read_and_its_write_survives() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let ingest = ingest_on(&cfg, &store);
    ingest
        .process(&event_of("shardId-000000000000", &minutes(0, 60)))
        .await;
    let registry = Arc::new(EditDuringRetiming {
        inner: store.clone(),
        edited: AtomicUsize::new(0),
    });
    let merge = merge_over(&cfg, &store.ports().with_registry(registry));
    let report = merge
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.retimed > 0 || report.retiming_conflicts > 0,
        "{report:?}"
    );
    assert_eq!(report.retiming_conflicts, 1, "{report:?}");
    let id = traffic_core::IntersectionId::parse("I-0001").unwrap_or_else(|e| panic!("{e:?}"));
    let x = store
        .intersection(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no I-0001"));
    assert_eq!(x.phases[0].green_s, 33.0, "the operator's edit stands");
    assert_eq!(x.retimed_from, None);
}

#[tokio::test]
async fn a_lamp_reading_from_a_clock_ahead_is_future_and_does_not_hide_a_later_failure() {
    let (_dir, store) = store_with_city().await;
    let cfg = EngineConfig::default();
    let fault = FaultHandler::from_ports(cfg.clone(), &store.ports());
    let arrival = traffic_core::time::parse_rfc3339_ms("2026-01-05T08:01:05Z").unwrap_or(0);
    let record = |seq: u64, ts: &str, green: &str| {
        SourceRecord {
        seq: SequenceNumber::from_u64(seq),
        partition_key: "I-0001".into(),
        data: format!(
            r#"{{"intersection_id":"I-0001","light":0,"ts":"{ts}","vehicles":10,"mean_speed_kmh":40,"lamps":{{"red":"ok","yellow":"ok","green":"{green}"}}}}"#
        )
        .into_bytes(),
        arrival_ms: arrival,
    }
    };
    // A sensor whose clock runs a day ahead says the lamps are fine; then the real state: the
    // green lamp is broken. Had the first counted, the second would look stale and be ignored.
    let records = [
        record(1, "2026-01-06T08:00:00Z", "ok"),
        record(2, "2026-01-05T08:01:00Z", "broken"),
    ];
    let response = fault
        .handle(&event_of("shardId-000000000000", &records))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let alarms = store.alarms().await.unwrap_or_default();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].alarm.lamp.as_str(), "green");
    assert_eq!(
        traffic_core::time::format_rfc3339_ms(alarms[0].alarm.ts_ms),
        "2026-01-05T08:01:00Z"
    );
}

/// One reading a minute of light 0 of each of `ids`, minutes `from..to` after 08:00,
/// interleaved by minute, as records of one shard.
fn city_minutes(ids: &[&str], from: i64, to: i64) -> Vec<SourceRecord> {
    let per_id: Vec<Vec<SourceRecord>> = ids.iter().map(|id| readings_of(id, from, to)).collect();
    let mut out = Vec::new();
    for m in 0..(to - from) as usize {
        for records in &per_id {
            let mut r = records[m].clone();
            r.seq = SequenceNumber::from_u64(out.len() as u64 + 1);
            out.push(r);
        }
    }
    out
}

fn id(s: &str) -> traffic_core::IntersectionId {
    traffic_core::IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e:?}"))
}

async fn intersection(
    store: &traffic_embedded::EmbeddedStore,
    s: &str,
) -> traffic_core::Intersection {
    store
        .intersection(&id(s))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no {s}"))
}

/// The sample city with I-0001 manual, I-0002 fixed and I-0003 adaptive with at most ±20 % of
/// change per retiming, and an hour of readings of all three ingested.
async fn city_under_control() -> (tempfile::TempDir, traffic_embedded::EmbeddedStore) {
    use traffic_core::control::{Control, ControlMode};
    let (dir, store) = store_with_city().await;
    for (s, mode, change) in [
        ("I-0001", ControlMode::Manual, None),
        ("I-0002", ControlMode::Fixed, None),
        ("I-0003", ControlMode::Adaptive, Some(0.2)),
    ] {
        let mut x = intersection(&store, s).await;
        x.control = Control {
            mode,
            limits: change.map(|c| traffic_core::safe_timing::TimingLimits {
                max_green_change: Some(c),
                ..Default::default()
            }),
        };
        store
            .put_intersection(&x)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    an_hour_of_readings(&store).await;
    (dir, store)
}

/// Ingests an hour of readings of I-0001 … I-0003.
async fn an_hour_of_readings(store: &traffic_embedded::EmbeddedStore) {
    let cfg = EngineConfig::default();
    ingest_on(&cfg, store)
        .process(&event_of(
            "shardId-000000000000",
            &city_minutes(&["I-0001", "I-0002", "I-0003"], 0, 60),
        ))
        .await;
}

#[tokio::test]
async fn a_manual_and_a_fixed_intersection_keep_their_timings_while_an_adaptive_one_is_retimed_within_its_limits()
 {
    let (_dir, store) = city_under_control().await;
    let before: Vec<_> = [
        intersection(&store, "I-0001").await,
        intersection(&store, "I-0002").await,
        intersection(&store, "I-0003").await,
    ]
    .into_iter()
    .map(|x| x.phases)
    .collect();
    let cfg = EngineConfig::default();
    let report = merge_on(&cfg, &store)
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let control = *report
        .closed
        .iter()
        .rev()
        .find(|w| w.length == cfg.pane())
        .unwrap_or_else(|| panic!("no control window closed: {report:?}"));
    assert_eq!(
        (
            report.retimed,
            report.retiming_kept,
            report.retiming_limited
        ),
        (1, 2, 1),
        "{report:?}"
    );

    let manual = intersection(&store, "I-0001").await;
    assert_eq!(manual.phases, before[0], "the operator's plan stands");
    assert_eq!(manual.retimed_from, None);
    let proposal = manual
        .proposal
        .unwrap_or_else(|| panic!("Webster's proposal is kept beside the plan"));
    assert_eq!(proposal.from, control);
    assert_eq!(proposal.window_s, 900.0);
    assert_eq!(proposal.flows[0].vehicles, 150, "{proposal:?}");
    assert_eq!(proposal.flows[0].flow_veh_h, 600.0);
    assert_ne!(proposal.phases, before[0], "Webster proposes a change");

    // Kept timings: no plan stored; readers draw the plan of the kept greens.
    assert_eq!(manual.plan, None);
    let fixed = intersection(&store, "I-0002").await;
    assert_eq!(fixed.phases, before[1]);
    assert_eq!((&fixed.retimed_from, &fixed.proposal), (&None, &None));
    assert_eq!(fixed.plan, None);
    let fixed_plan = plan_of(&fixed, cfg.webster.yellow_s, &cfg.plan);
    let greens: Vec<f64> = fixed_plan.phases.iter().map(|p| p.green_s).collect();
    assert_eq!(
        greens,
        [30.0, 30.0],
        "a fixed-time controller runs its greens"
    );

    let adaptive = intersection(&store, "I-0003").await;
    assert_eq!(adaptive.retimed_from, Some(control.to_string()));
    assert_eq!(adaptive.proposal, None);
    assert_eq!(
        adaptive.plan,
        Some(plan(
            &adaptive.phases,
            cfg.webster.yellow_s,
            adaptive.control.limits.as_ref(),
            &cfg.plan
        )),
        "the plan of the timings written, stored with them"
    );
    for (new, old) in adaptive.phases.iter().zip(&before[2]) {
        let change = (new.green_s - old.green_s).abs() / old.green_s;
        assert!(change <= 0.2 + 1e-9, "{new:?} from {old:?}");
        assert!(
            (new.green_s + 4.0 + new.red_s
                - (adaptive.phases[0].green_s + 4.0 + adaptive.phases[0].red_s))
                .abs()
                < 1e-9
        );
    }
    assert_ne!(adaptive.phases, before[2], "retimed");
    for s in ["I-0001", "I-0002"] {
        let history = store
            .timing_history(&id(s))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(history.is_empty(), "{s}: {history:?}");
    }
}

/// The embedded store's result events, failing the first publish (as an unavailable bus
/// would): the merge run fails after its timings, before its progress.
struct EventsFailingOnce {
    inner: traffic_embedded::EmbeddedStore,
    failed: AtomicUsize,
}

#[async_trait::async_trait]
impl traffic_ports::ResultEvents for EventsFailingOnce {
    async fn publish_events(&self, events: &[traffic_core::events::ResultEvent]) -> PortResult<()> {
        if self.failed.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(PortError::Unavailable {
                context: "publishing".into(),
                source: "injected fault".into(),
            });
        }
        traffic_ports::ResultEvents::publish_events(&self.inner, events).await
    }
}

#[tokio::test]
async fn a_merge_redone_after_a_crash_applies_the_change_limit_once() {
    let (_dir, store) = city_under_control().await;
    let before = intersection(&store, "I-0003").await.phases;
    let cfg = EngineConfig::default();
    let events = Arc::new(EventsFailingOnce {
        inner: store.clone(),
        failed: AtomicUsize::new(0),
    });
    let merge = merge_over(&cfg, &store.ports().with_events(events));
    assert!(merge.handle(&scheduled_event()).await.is_err());
    let first = intersection(&store, "I-0003").await;
    let proposal = intersection(&store, "I-0001").await.proposal;
    let again = merge
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.retimed, again.retiming_kept), (1, 2), "{again:?}");
    let second = intersection(&store, "I-0003").await;
    assert_ne!(first.phases, before);
    assert_eq!(
        second, first,
        "not limited a second time from the limited timings"
    );
    assert_eq!(intersection(&store, "I-0001").await.proposal, proposal);
    let history = store
        .timing_history(&id("I-0003"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 1);
}

/// Every file under `dir`, by its path there, with its bytes.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    // Bounded by the tree: each folder is listed once.
    while let Some(folder) = folders.pop() {
        for e in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{e}")) {
            let p = e.unwrap_or_else(|e| panic!("{e}")).path();
            if p.is_dir() {
                folders.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.insert(name, std::fs::read(&p).unwrap_or_else(|e| panic!("{e}")));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_merge_redone_after_a_crash_leaves_the_archive_byte_identical() {
    use traffic_tables::dir::DirArchive;
    // Uninterrupted: one merge over the hour.
    let (_a, whole) = city_under_control().await;
    an_hour_of_readings(&whole).await;
    an_edit_and_an_alarms_life(&whole).await;
    let once = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ports = whole
        .ports()
        .with_archive(Arc::new(DirArchive::new(once.path())));
    merge_over(&EngineConfig::default(), &ports)
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = files_under(once.path());
    // The quarters the watermark closed (the last stays open), three tables each; the plans
    // after the retiming round from the last of them and those it changed; the operator's
    // edit of the first quarter; the alarm's steps of the first two.
    assert_eq!(expected.len(), 3 * 3 + 2 + 1 + 2, "{:?}", expected.keys());
    for key in [
        "plan_changes/dt=2026-01-05/operator-15m-20260105T080000Z.parquet",
        "alarm_events/dt=2026-01-05/15m-20260105T080000Z.parquet",
        "alarm_events/dt=2026-01-05/15m-20260105T081500Z.parquet",
    ] {
        assert!(expected.contains_key(key), "{key}: {:?}", expected.keys());
    }

    // The same hour, the merge failing after its writes and before its progress, then redone.
    let (_b, store) = city_under_control().await;
    an_hour_of_readings(&store).await;
    an_edit_and_an_alarms_life(&store).await;
    let twice = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let events = Arc::new(EventsFailingOnce {
        inner: store.clone(),
        failed: AtomicUsize::new(0),
    });
    let ports = store
        .ports()
        .with_events(events)
        .with_archive(Arc::new(DirArchive::new(twice.path())));
    let merge = merge_over(&EngineConfig::default(), &ports);
    assert!(merge.handle(&scheduled_event()).await.is_err());
    assert_eq!(
        files_under(twice.path()),
        expected,
        "written before the crash"
    );
    let again = merge
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        again.closed.len(),
        3,
        "the same windows closed again: {again:?}"
    );
    assert_eq!(
        files_under(twice.path()),
        expected,
        "the redone merge wrote the same bytes"
    );
}

/// An operator's edit of I-0002 at 08:05 (by `op-1`), and an alarm of I-0001 raised at 08:02,
/// acknowledged at 08:06 and closed by a repair at 08:20.
async fn an_edit_and_an_alarms_life(store: &traffic_embedded::EmbeddedStore) {
    let at = |min: i64| {
        traffic_core::time::parse_rfc3339_ms("2026-01-05T08:00:00Z").unwrap_or(0) + min * 60_000
    };
    let x = intersection(store, "I-0002").await;
    let control =
        traffic_core::window::WindowLength::from_ms(900_000).unwrap_or_else(|| panic!("15m"));
    let edit = traffic_ports::TimingChange::by_operator(
        control,
        at(5),
        Some("op-1".into()),
        x.phases.clone(),
    );
    store
        .record_timing_change(&x.id, &edit)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let alarm = traffic_core::lamps::Alarm {
        intersection_id: intersection(store, "I-0001").await.id,
        light: traffic_core::LightIndex::new(1).unwrap_or_else(|e| panic!("{e}")),
        lamp: traffic_core::LampColour::Red,
        ts_ms: at(2),
        position: None,
        silent: None,
    };
    let ack = traffic_ports::Ack {
        by: "op-2".into(),
        at_ms: at(6),
        note: Some("crew sent".into()),
    };
    let closing = traffic_ports::Closing::at(at(20), traffic_ports::DEFAULT_ALARM_RETENTION_MS);
    let lamps: &dyn LampStore = store;
    lamps
        .record_alarm(&alarm)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    lamps
        .ack_alarm(&alarm.id(), &ack)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    lamps
        .close_alarms(&alarm.intersection_id, None, &closing, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The city of `store_with_city` with an hour of readings of I-0001 … I-0003, I-0003's timings
/// replaced by `phases` first (when given).
async fn city_with_an_hour(
    phases: Option<Vec<traffic_core::city::Phase>>,
) -> (tempfile::TempDir, traffic_embedded::EmbeddedStore) {
    let (dir, store) = store_with_city().await;
    if let Some(phases) = phases {
        let mut x = intersection(&store, "I-0003").await;
        x.phases = phases;
        store
            .put_intersection(&x)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    an_hour_of_readings(&store).await;
    (dir, store)
}

#[tokio::test]
async fn an_adaptive_intersection_within_the_smallest_change_of_websters_proposal_is_left_as_it_is()
{
    // What Webster proposes from this hour, from a merge that applies every proposal.
    let mut every = EngineConfig::default();
    every.webster.min_change_s = 0.0;
    let (_a, applied) = city_with_an_hour(None).await;
    let report = merge_on(&every, &applied)
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.retimed, report.retiming_steady),
        (3, 0),
        "{report:?}"
    );
    let proposed = intersection(&applied, "I-0003").await.phases;

    // The same hour, I-0003 already running within 2 s of that proposal (same cycle).
    let mut near = proposed.clone();
    near[0].green_s += 2.0;
    near[0].red_s -= 2.0;
    near[1].green_s -= 2.0;
    near[1].red_s += 2.0;
    let (_b, store) = city_with_an_hour(Some(near.clone())).await;
    let cfg = EngineConfig::default();
    assert_eq!(cfg.webster.min_change_s, 3.0);
    let report = merge_on(&cfg, &store)
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.retimed, report.retiming_steady),
        (2, 1),
        "{report:?}"
    );
    let kept = intersection(&store, "I-0003").await;
    assert_eq!(kept.phases, near, "nothing written");
    assert_eq!(kept.retimed_from, None);
    let history = store
        .timing_history(&id("I-0003"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(history.is_empty(), "{history:?}");
    // The others moved by more than 3 s from the city's 30 s greens: retimed as before.
    assert_eq!(
        intersection(&store, "I-0001").await.phases,
        intersection(&applied, "I-0001").await.phases
    );
}

#[tokio::test]
async fn a_retimed_intersection_stores_the_plan_of_its_new_timings_drawn_as_configured() {
    let (_dir, store) = city_with_an_hour(None).await;
    let mut cfg = EngineConfig::from_lookup(|k| {
        [
            ("PLAN_MIN_GREEN_S", "7"),
            ("PLAN_MIN_GREEN_FACTOR", "0.25"),
            ("PLAN_MAX_GREEN_FACTOR", "2"),
        ]
        .iter()
        .find(|(name, _)| *name == k)
        .map(|(_, v)| v.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cfg.webster.min_change_s = 0.0;
    assert_ne!(cfg.plan, PlanConfig::default());
    let report = merge_on(&cfg, &store)
        .handle(&scheduled_event())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.retimed, 3, "{report:?}");
    for s in ["I-0001", "I-0002", "I-0003"] {
        let x = intersection(&store, s).await;
        let want = plan(&x.phases, cfg.webster.yellow_s, None, &cfg.plan);
        assert_eq!(x.plan.as_ref(), Some(&want), "{s}");
        let default = plan(
            &x.phases,
            cfg.webster.yellow_s,
            None,
            &PlanConfig::default(),
        );
        assert_ne!(
            x.plan,
            Some(default),
            "{s}: the configured factors took effect"
        );
        for p in &want.phases {
            assert!((p.max_green_s - 2.0 * p.green_s).abs() < 1e-9, "{s}: {p:?}");
            assert!(p.min_green_s >= 7.0_f64.min(p.green_s), "{s}: {p:?}");
        }
    }
}
