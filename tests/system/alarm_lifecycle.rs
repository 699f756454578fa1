//! The lamp alarms' lifecycle on the embedded store, through the handlers: a lamp broken again
//! inside its hold-down and still broken after it is paged (by the next `fault` batch or by the
//! merge's sweep, never both); an alarm recorded but never published (the publisher failing past
//! the batch's retries) is published by the next merge; the crew is sent to the registry's
//! position, not the reading's.

use crate::support::{FlakyPublisher, store_with_city};
use fault::FaultHandler;
use merge::{CloseUpTo, MergeHandler, MergeReport, Provisional};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_core::time::format_rfc3339_ms;
use traffic_embedded::EmbeddedStore;
use traffic_functions::BatchHandler;
use traffic_ports::{LampStore, ManualClock, SourceRecord};

/// 2026-01-05T07:00:00Z.
const T7: i64 = 1_767_596_400_000;
const MIN: i64 = 60_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    publisher: Arc<FlakyPublisher>,
    clock: Arc<ManualClock>,
    fault: FaultHandler,
    merge: MergeHandler,
    seq: AtomicUsize,
}

impl Fixture {
    async fn new() -> Self {
        let (dir, store) = store_with_city().await;
        let publisher = Arc::new(FlakyPublisher {
            inner: store.clone(),
            fail: AtomicUsize::new(0),
            published: AtomicUsize::new(0),
        });
        let clock = Arc::new(ManualClock::at(T7));
        let ports = store
            .ports()
            .with_publisher(publisher.clone())
            .with_clock(clock.clone());
        let cfg = EngineConfig::default();
        Self {
            publisher,
            _dir: dir,
            store,
            clock,
            fault: FaultHandler::from_ports(cfg.clone(), &ports),
            merge: MergeHandler::from_ports(cfg, Provisional::None, &ports)
                .with_holder("alarm_lifecycle"),
            seq: AtomicUsize::new(1),
        }
    }

    /// A record of I-0001's light 0 at `ts_ms`, its red lamp `red`, with `extra` JSON fields.
    fn record(&self, ts_ms: i64, red: &str, extra: &str) -> SourceRecord {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        SourceRecord {
            seq: SequenceNumber::from_u64(n as u64),
            partition_key: "I-0001".into(),
            data: format!(
                r#"{{"intersection_id":"I-0001","light":0,"ts":"{}","vehicles":10,"mean_speed_kmh":40,"lamps":{{"red":"{red}","yellow":"ok","green":"ok"}}{extra}}}"#,
                format_rfc3339_ms(ts_ms)
            )
            .into_bytes(),
            arrival_ms: ts_ms + 1000,
        }
    }

    /// One `fault` batch of one reading per (minute after 07:00, red lamp); the clock follows.
    async fn readings(&self, history: &[(i64, &str)]) {
        for (minute, red) in history {
            let ts = T7 + minute * MIN;
            self.clock.set(ts + 1000);
            let event = esm::kinesis_event(
                &ShardId::from("shardId-000000000000"),
                "",
                "local",
                &[self.record(ts, red, "")],
            );
            let failed = self.fault.handle(&event).await.batch_item_failures;
            assert!(failed.is_empty(), "fault at minute {minute}: {failed:?}");
        }
    }

    /// A scheduled merge run at `now_ms` (processing time), judging alarms.
    async fn merge_at(&self, now_ms: i64) -> MergeReport {
        self.clock.set(now_ms);
        self.merge
            .run(CloseUpTo::Watermark)
            .await
            .unwrap_or_else(|e| panic!("merge: {e}"))
    }

    /// SNS messages sent (publisher calls that succeeded).
    fn messages(&self) -> usize {
        self.publisher.published.load(Ordering::SeqCst)
    }

    /// Minutes after 07:00 of the alarms handed to the publisher, by alarm id.
    fn published_minutes(&self) -> Vec<i64> {
        let mut m: Vec<i64> = self
            .store
            .published_alarms()
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|a| (a.ts_ms - T7) / MIN)
            .collect();
        m.sort_unstable();
        m
    }
}

/// Broken at 07:40, ok at 07:42, broken from 07:45 on: the failure held down at 07:45 is still
/// standing when its hold-down ends at 07:50.
const BROKEN_AGAIN: [(i64, &str); 3] = [(40, "broken"), (42, "ok"), (45, "broken")];

#[tokio::test]
async fn a_lamp_broken_again_after_its_alarm_cleared_is_paged() {
    let f = Fixture::new().await;
    f.readings(&BROKEN_AGAIN).await;
    assert_eq!(f.published_minutes(), [40], "07:45 is held down");
    // Still broken, a reading a minute until 08:30 (the end of the run).
    let still: Vec<(i64, &str)> = (46..=90).map(|m| (m, "broken")).collect();
    f.readings(&still).await;
    assert_eq!(
        f.published_minutes(),
        [40, 45],
        "the failure still standing after its hold-down is paged"
    );
    assert_eq!(f.messages(), 2, "and once");
    let log = f.store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(log[1].held_down && log[1].published && log[1].repaired_at_ms.is_none());
}

#[tokio::test]
async fn a_lamp_repaired_by_an_operator_that_fails_again_is_paged_when_its_hold_down_ends() {
    let f = Fixture::new().await;
    f.readings(&[(40, "broken")]).await;
    // The operator repairs it through the API at 07:41; the field reports it ok at 07:42.
    let id = traffic_core::IntersectionId::parse("I-0001").unwrap_or_else(|e| panic!("{e}"));
    let light = traffic_core::LightIndex::new(0).unwrap_or_else(|e| panic!("{e}"));
    f.store
        .repair(&id, light, T7 + 41 * MIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again: Vec<(i64, &str)> = std::iter::once((42, "ok"))
        .chain((45..=60).map(|m| (m, "broken")))
        .collect();
    f.readings(&again).await;
    assert_eq!(f.published_minutes(), [40, 45]);
    assert_eq!(f.messages(), 2);
}

#[tokio::test]
async fn a_held_down_alarm_still_open_is_paged_by_the_merge_sweep_and_not_again_by_fault() {
    let f = Fixture::new().await;
    f.readings(&BROKEN_AGAIN).await;
    // No reading since 07:45 (the sensor went quiet); the merge runs at 07:49, then at 07:51.
    assert!(f.merge_at(T7 + 49 * MIN).await.skipped.is_none());
    assert_eq!(f.published_minutes(), [40], "not before the hold-down ends");
    f.merge_at(T7 + 51 * MIN).await;
    assert_eq!(f.published_minutes(), [40, 45], "the sweep pages it");
    // The sensor is back, still broken; and more merges: nothing more is sent.
    f.readings(&[(52, "broken"), (53, "broken")]).await;
    f.merge_at(T7 + 54 * MIN).await;
    assert_eq!(f.messages(), 2);
}

#[tokio::test]
async fn a_held_down_flap_that_recovered_inside_its_hold_down_is_never_paged() {
    let f = Fixture::new().await;
    f.readings(&[(40, "broken"), (42, "ok"), (45, "broken"), (47, "ok")])
        .await;
    f.merge_at(T7 + 60 * MIN).await;
    f.readings(&[(61, "ok")]).await;
    assert_eq!(f.published_minutes(), [40]);
    assert_eq!(f.messages(), 1);
}

#[tokio::test]
async fn an_alarm_whose_publication_failed_past_the_retries_is_published_by_the_next_merge_once() {
    let f = Fixture::new().await;
    // SNS fails the batch and its two retries; the event source mapping then gives up on it.
    f.publisher.fail.store(3, Ordering::SeqCst);
    let event = esm::kinesis_event(
        &ShardId::from("shardId-000000000000"),
        "",
        "local",
        &[f.record(T7 + 40 * MIN, "broken", "")],
    );
    f.clock.set(T7 + 40 * MIN + 1000);
    for _ in 0..3 {
        let failed = f.fault.handle(&event).await.batch_item_failures;
        assert_eq!(failed.len(), 1, "the failed publish fails the batch");
    }
    assert_eq!(f.messages(), 0);
    let log = f.store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.len(), 1, "recorded");
    assert!(!log[0].published);
    // SNS is back: the next scheduled merge publishes it, the ones after do not again.
    f.merge_at(T7 + 41 * MIN).await;
    f.merge_at(T7 + 42 * MIN).await;
    f.readings(&[(43, "broken")]).await;
    assert_eq!(f.published_minutes(), [40]);
    assert_eq!(f.messages(), 1, "published once");
    let log = f.store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(log[0].published);
}

#[tokio::test]
async fn an_alarm_sends_the_crew_to_the_registrys_position_not_the_readings() {
    let f = Fixture::new().await;
    // The sensor says it is 5.6 km north of where the registry has I-0001 (41.85, 12.6).
    let event = esm::kinesis_event(
        &ShardId::from("shardId-000000000000"),
        "",
        "local",
        &[f.record(T7, "broken", r#","lat":41.9,"lon":12.6"#)],
    );
    f.clock.set(T7 + 1000);
    assert!(f.fault.handle(&event).await.batch_item_failures.is_empty());
    let sent = f.store.published_alarms().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].position.map(|p| (p.lat, p.lon)),
        Some((41.85, 12.6)),
        "the registry's position"
    );
}
