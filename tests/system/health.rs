//! Detector health and recoveries, through the handlers on the embedded store: a light that
//! falls silent alarms once (one SNS message, one open alarm, across merge runs and a retried
//! publish) and clears when it reports; an intersection or the whole city is one alarm; a lamp
//! back to ok resolves its alarm; a phase whose lights all fell silent keeps its green.

use crate::support::{FlakyPublisher, store_with_city};
use fault::FaultHandler;
use ingest::IngestHandler;
use merge::{CloseUpTo, MergeHandler, MergeReport, Provisional};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;
use traffic_embedded::EmbeddedStore;
use traffic_functions::BatchHandler;
use traffic_ports::{
    AlarmQuery, AlarmRecord, Clock, LampStore, ManualClock, PortResult, Ports, Registry,
    SourceRecord, StreamShards,
};

const SHARD: &str = "shardId-000000000000";
/// 2026-01-05T08:00:00Z.
const T0: i64 = 1_767_600_000_000;
const MIN: i64 = 60_000;

/// One reading a minute of each `(intersection, light)` for minutes `from..to` after 08:00,
/// green lamp `green`, arrived at `arrival_ms`.
fn readings(
    lights: &[(&str, i64)],
    from: i64,
    to: i64,
    green: &str,
    arrival_ms: i64,
) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    for m in from..to {
        for (x, l) in lights {
            out.push(SourceRecord {
                seq: SequenceNumber::from_u64(0),
                partition_key: (*x).into(),
                data: format!(
                    r#"{{"intersection_id":"{x}","light":{l},"ts":"2026-01-05T{:02}:{:02}:00Z","vehicles":10,"mean_speed_kmh":40,"lamps":{{"red":"ok","yellow":"ok","green":"{green}"}}}}"#,
                    8 + m / 60,
                    m % 60
                )
                .into_bytes(),
                arrival_ms,
            });
        }
    }
    out
}

/// Every light of the sample city's three intersections but those in `silent`.
fn lights_but(silent: &[(&str, i64)]) -> Vec<(&'static str, i64)> {
    ["I-0001", "I-0002", "I-0003"]
        .into_iter()
        .flat_map(|x| (0..4).map(move |l| (x, l)))
        .filter(|(x, l)| !silent.contains(&(*x, *l)))
        .collect()
}

/// The sample city on an embedded store, its handlers on a manual clock, alarms published
/// through a publisher that counts (and fails its first `fail` publishes).
struct Fixture {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    publisher: Arc<FlakyPublisher>,
    clock: Arc<ManualClock>,
    cfg: EngineConfig,
    ports: Ports,
    ingest: IngestHandler,
    fault: FaultHandler,
    next_seq: AtomicUsize,
}

impl Fixture {
    async fn new(fail: usize) -> Self {
        let (dir, store) = store_with_city().await;
        let publisher = Arc::new(FlakyPublisher {
            inner: store.clone(),
            fail: AtomicUsize::new(fail),
            published: AtomicUsize::new(0),
        });
        let clock = Arc::new(ManualClock::at(chrono::Utc::now().timestamp_millis()));
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
            ingest: IngestHandler::from_ports(cfg.clone(), &ports),
            fault: FaultHandler::from_ports(cfg.clone(), &ports),
            ports,
            cfg,
            next_seq: AtomicUsize::new(1),
        }
    }

    /// Delivers `records` to `ingest` and `fault` as one batch of the shard.
    async fn deliver(&self, mut records: Vec<SourceRecord>) {
        for r in &mut records {
            let n = self.next_seq.fetch_add(1, Ordering::SeqCst);
            r.seq = SequenceNumber::from_u64(n as u64);
        }
        let event = esm::kinesis_event(&SHARD.into(), "", "local", &records);
        let report = self.ingest.process(&event).await;
        assert!(report.failed.is_empty(), "ingest: {report:?}");
        let failed = self.fault.handle(&event).await.batch_item_failures;
        assert!(failed.is_empty(), "fault: {failed:?}");
    }

    /// A scheduled merge run, judging detector health, with `stream` as the shard list.
    async fn merge(&self, stream: Option<Arc<dyn StreamShards>>) -> MergeReport {
        let mut ports = self.ports.clone();
        ports.stream = stream;
        MergeHandler::from_ports(self.cfg.clone(), Provisional::None, &ports)
            .with_holder("health")
            .run(CloseUpTo::Watermark)
            .await
            .unwrap_or_else(|e| panic!("merge: {e}"))
    }

    async fn intersection(&self, id: &str) -> traffic_core::Intersection {
        let id = traffic_core::IntersectionId::parse(id).unwrap_or_else(|e| panic!("{e:?}"));
        self.store
            .intersection(&id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no {id}"))
    }

    fn published(&self) -> usize {
        self.publisher.published.load(Ordering::SeqCst)
    }

    async fn open(&self) -> Vec<AlarmRecord> {
        self.store
            .alarm_page(&AlarmQuery {
                open_only: true,
                limit: 100,
                after: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .alarms
    }

    async fn open_ids(&self) -> Vec<traffic_core::AlarmId> {
        self.open().await.iter().map(|r| r.alarm.id()).collect()
    }
}

/// The alarm id written `s`.
fn alarm_id(s: &str) -> traffic_core::AlarmId {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[tokio::test]
async fn a_silenced_light_alarms_once_across_runs_and_a_failed_publish_and_clears_when_it_reports()
{
    let f = Fixture::new(1).await;
    let now = f.clock.now_ms();
    f.deliver(readings(&lights_but(&[]), 0, 20, "ok", now))
        .await;
    let first = f.merge(None).await;
    assert!(first.silence.judged && first.silence.raised.is_empty());

    // I-0002's light 1 stops at 08:20; the closed mark reaches 08:37: silent since 08:32.
    let silent = [("I-0002", 1)];
    f.deliver(readings(&lights_but(&silent), 20, 40, "ok", now))
        .await;
    let failed = f.merge(None).await;
    assert!(failed.silence.raised.is_empty(), "the publish failed");
    let id = alarm_id(&format!("I-0002#1#silent#{}", T0 + 32 * MIN));
    assert_eq!(
        failed.due_published,
        std::slice::from_ref(&id),
        "the run's sweep of the alarms due publishes it"
    );
    assert_eq!(
        f.open_ids().await,
        std::slice::from_ref(&id),
        "recorded, open"
    );
    // The next run (no pane crossed: no registry read) publishes nothing again.
    f.deliver(readings(&lights_but(&silent), 40, 44, "ok", now))
        .await;
    let retried = f.merge(None).await;
    assert!(!retried.silence.judged);
    assert!(retried.silence.raised.is_empty() && retried.due_published.is_empty());
    // Later runs, one judging with the registry, raise nothing more.
    for (from, to) in [(44, 50), (50, 52)] {
        f.deliver(readings(&lights_but(&silent), from, to, "ok", now))
            .await;
        let r = f.merge(None).await;
        assert!(r.silence.raised.is_empty() && r.silence.resolved.is_empty());
    }
    assert_eq!(f.published(), 1, "one SNS message");
    assert_eq!(
        f.open_ids().await,
        std::slice::from_ref(&id),
        "one open alarm"
    );
    let open = f.open().await;
    assert!(open[0].published);
    assert_eq!(open[0].alarm.silent.map(|s| s.as_str()), Some("light"));

    // It reports again: resolved at the next run, kept in the log with why.
    f.deliver(readings(&lights_but(&[]), 52, 55, "ok", now))
        .await;
    let back = f.merge(None).await;
    assert_eq!(back.silence.resolved, std::slice::from_ref(&id));
    assert!(f.open_ids().await.is_empty());
    let log = f.store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].closed_why.as_deref(), Some("reported again"));
    assert!(log[0].repaired_at_ms.is_some());
    assert_eq!(f.published(), 1);
}

#[tokio::test]
async fn an_intersection_whose_lights_all_fall_silent_is_one_alarm_not_four() {
    let f = Fixture::new(0).await;
    let now = f.clock.now_ms();
    f.deliver(readings(&lights_but(&[]), 0, 20, "ok", now))
        .await;
    f.merge(None).await;
    let dark: Vec<(&str, i64)> = (0..4).map(|l| ("I-0003", l)).collect();
    f.deliver(readings(&lights_but(&dark), 20, 40, "ok", now))
        .await;
    let r = f.merge(None).await;
    let id = alarm_id(&format!("I-0003#all#silent#{}", T0 + 32 * MIN));
    assert_eq!(r.silence.raised, std::slice::from_ref(&id));
    assert_eq!(f.open_ids().await, [id]);
    assert_eq!(f.published(), 1);
}

/// One open shard, always caught up with its stream.
struct OneShard;

#[async_trait::async_trait]
impl StreamShards for OneShard {
    async fn shards(&self) -> PortResult<Vec<ShardInfo>> {
        Ok(vec![ShardInfo {
            id: SHARD.into(),
            parent: None,
            adjacent_parent: None,
            closed: false,
        }])
    }

    async fn caught_up(
        &self,
        _: &traffic_core::ShardId,
        _: Option<&SequenceNumber>,
    ) -> PortResult<bool> {
        Ok(true)
    }
}

#[tokio::test]
async fn a_city_where_everything_falls_silent_is_one_city_alarm_that_clears_when_readings_return() {
    let f = Fixture::new(0).await;
    let now = f.clock.now_ms();
    f.deliver(readings(&lights_but(&[]), 0, 20, "ok", now))
        .await;
    assert!(
        f.merge(Some(Arc::new(OneShard)))
            .await
            .silence
            .raised
            .is_empty()
    );
    // Nothing arrives: event time stands still, and after the idle timeout every shard is idle.
    for later in [5, 6, 10] {
        f.clock.set(now + later * MIN);
        f.merge(Some(Arc::new(OneShard))).await;
    }
    let id = alarm_id(&format!("_city#all#silent#{}", T0 + 12 * MIN));
    assert_eq!(
        f.open_ids().await,
        std::slice::from_ref(&id),
        "one alarm for the city"
    );
    assert_eq!(f.published(), 1);

    // Readings return: the shard is no longer idle, the closed mark moves on, the city clears.
    f.clock.set(now + 11 * MIN);
    f.deliver(readings(&lights_but(&[]), 20, 40, "ok", now + 11 * MIN))
        .await;
    let back = f.merge(Some(Arc::new(OneShard))).await;
    assert_eq!(back.silence.resolved, [id]);
    assert!(back.silence.raised.is_empty());
    assert!(f.open_ids().await.is_empty());
    assert_eq!(f.published(), 1);
}

#[tokio::test]
async fn most_of_the_city_silent_while_a_shard_still_reports_is_one_city_alarm() {
    let f = Fixture::new(0).await;
    let now = f.clock.now_ms();
    f.deliver(readings(&lights_but(&[]), 0, 20, "ok", now))
        .await;
    f.merge(None).await;
    let only = [("I-0001", 0), ("I-0001", 1), ("I-0001", 2), ("I-0001", 3)];
    f.deliver(readings(&only, 20, 40, "ok", now)).await;
    let r = f.merge(None).await;
    assert_eq!(
        r.silence.raised,
        [alarm_id(&format!("_city#all#silent#{}", T0 + 32 * MIN))]
    );
    assert_eq!(f.published(), 1);
}

#[tokio::test]
async fn a_lamp_that_reports_ok_again_resolves_its_alarm() {
    let f = Fixture::new(0).await;
    let now = f.clock.now_ms();
    f.deliver(readings(&[("I-0001", 2)], 0, 3, "broken", now))
        .await;
    let open = f.open().await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].alarm.lamp.as_str(), "green");
    assert!(open[0].published);
    f.deliver(readings(&[("I-0001", 2)], 3, 4, "ok", now)).await;
    assert!(f.open().await.is_empty(), "resolved");
    let log = f.store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].closed_why.as_deref(), Some("lamp reported ok"));
    assert_eq!(
        log[0]
            .repaired_at_ms
            .map(traffic_core::time::format_rfc3339_ms),
        Some("2026-01-05T08:03:00Z".to_owned())
    );
    assert_eq!(f.published(), 1);
}

#[tokio::test]
async fn a_phase_whose_lights_all_fell_silent_keeps_its_green_and_a_wholly_blind_intersection_its_timings()
 {
    let f = Fixture::new(0).await;
    let now = f.clock.now_ms();
    f.deliver(readings(&lights_but(&[]), 0, 20, "ok", now))
        .await;
    let first = f.merge(None).await;
    assert_eq!((first.retimed, first.retiming_blind), (3, 0), "{first:?}");
    let before = [
        f.intersection("I-0002").await,
        f.intersection("I-0003").await,
    ];
    // From 08:20 I-0002's lights 0 and 2 (one phase) and all of I-0003's are dead; the same
    // traffic everywhere. Counted as zero, I-0002's phase would lose two thirds of its flow
    // over the window 08:15-08:30 and Webster its green; counted as busy as the other phase,
    // nothing moves. I-0003 has readings in the window (08:15-08:20) but no phase heard.
    let mut silent = vec![("I-0002", 0), ("I-0002", 2)];
    silent.extend((0..4).map(|l| ("I-0003", l)));
    f.deliver(readings(&lights_but(&silent), 20, 40, "ok", now))
        .await;
    let r = f.merge(None).await;
    assert_eq!(
        (r.retimed, r.retiming_steady, r.retiming_blind),
        (0, 2, 1),
        "{r:?}"
    );
    for (x, was) in ["I-0002", "I-0003"].into_iter().zip(before) {
        let now = f.intersection(x).await;
        assert_eq!(now.phases, was.phases, "{x}");
        assert_eq!(now.retimed_from, was.retimed_from, "{x}");
    }
}
