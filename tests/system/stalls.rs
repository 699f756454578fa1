//! Stalls of the city's windows: a shard that receives only records it
//! cannot use does not hold every window open, and a merge after a long stall catches up in
//! bounded steps, with the results of one unbounded run.

use crate::support::store_with_city;
use ingest::IngestHandler;
use merge::{CloseUpTo, MergeHandler, MergeReport, Provisional};
use std::sync::Arc;
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;
use traffic_core::sequence::SequenceNumber;
use traffic_core::time::format_rfc3339_ms;
use traffic_embedded::EmbeddedStore;
use traffic_ports::{Clock, ManualClock, PortResult, ResultStore, SourceRecord, StreamShards};

const MIN: i64 = 60_000;
/// 2026-01-05T08:00:00Z.
const T0: i64 = 1_767_600_000_000;

fn ingest_on(cfg: &EngineConfig, store: &EmbeddedStore, clock: &Arc<ManualClock>) -> IngestHandler {
    IngestHandler::from_ports(cfg.clone(), &store.ports().with_clock(clock.clone()))
}

fn merge_on(
    cfg: &EngineConfig,
    store: &EmbeddedStore,
    stream: Option<Arc<dyn StreamShards>>,
    clock: &Arc<ManualClock>,
) -> MergeHandler {
    let mut ports = store.ports().with_clock(clock.clone());
    ports.stream = stream;
    MergeHandler::from_ports(cfg.clone(), Provisional::None, &ports).with_holder("test")
}

fn reading(id: &str, light: u8, ts_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"intersection_id":"{id}","light":{light},"ts":"{}","vehicles":{},"mean_speed_kmh":40,"lamps":{{"red":"ok","yellow":"ok","green":"ok"}}}}"#,
        format_rfc3339_ms(ts_ms),
        5 + (ts_ms / MIN) % 17
    )
    .into_bytes()
}

fn record(seq: u64, key: &str, data: Vec<u8>, arrival_ms: i64) -> SourceRecord {
    SourceRecord {
        seq: SequenceNumber::from_u64(seq),
        partition_key: key.into(),
        data,
        arrival_ms,
    }
}

/// Two open shards: the first caught up with its stream; the second as `second_caught_up`
/// says (a shard that keeps receiving, behind a batching window, is never found caught up).
struct TwoShards {
    second_caught_up: bool,
}

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
        Ok(shard == "shardId-000000000000" || self.second_caught_up)
    }
}

#[tokio::test]
async fn a_shard_fed_only_rejected_and_future_records_becomes_idle_and_windows_close() {
    for second_caught_up in [true, false] {
        let (_dir, store) = store_with_city().await;
        let cfg = EngineConfig::default();
        let now = T0 + 60 * MIN;
        let clock = Arc::new(ManualClock::at(now));
        let ingest = ingest_on(&cfg, &store, &clock);
        // Shard 0: an hour of I-0001, each reading arriving 2 s after its time.
        let hour: Vec<SourceRecord> = (0..60)
            .map(|m| {
                let ts = T0 + m * MIN;
                record(m as u64 + 1, "I-0001", reading("I-0001", 0, ts), ts + 2_000)
            })
            .collect();
        let r = ingest
            .process(&esm::kinesis_event(
                &ShardId::from("shardId-000000000000"),
                "",
                "local",
                &hour,
            ))
            .await;
        assert_eq!(r.counters.accepted, 60);
        let stream = TwoShards { second_caught_up };
        let merge = merge_on(&cfg, &store, Some(Arc::new(stream)), &clock);
        // Shard 1: a gateway under its own partition key (garbage) and a sensor stamped a year
        // ahead (future), one of each every minute for ten minutes, the merge running too.
        let mut seq = 0;
        let mut closed = Vec::new();
        for minute in 0..10 {
            let at = now + minute * MIN;
            clock.set(at);
            let garbage = [
                record(seq + 1, "gateway-7", b"{\"status\":\"alive\"}".to_vec(), at),
                record(
                    seq + 2,
                    "I-0002",
                    reading("I-0002", 1, at + 365 * 24 * 60 * MIN),
                    at,
                ),
            ];
            seq += 2;
            let g = ingest
                .process(&esm::kinesis_event(
                    &ShardId::from("shardId-000000000001"),
                    "",
                    "local",
                    &garbage,
                ))
                .await;
            assert_eq!(
                (g.counters.accepted, g.counters.rejected + g.counters.future),
                (0, 2)
            );
            let report: MergeReport = merge
                .run(CloseUpTo::Watermark)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if !report.closed.is_empty() {
                closed.push((minute, report.shards_idle, report.closed.len()));
            }
        }
        // Idle once it has accepted nothing for the idle timeout (5 minutes; shard 0, whose
        // readings stopped at 08:59, is idle by then too): 08:00 to 08:30 close (the
        // watermark of shard 0 is 08:57).
        let first = closed.first().copied();
        assert!(
            first.is_some_and(|(m, idle, _)| m <= 5 && idle == 2),
            "caught up: {second_caught_up}; windows closed at (minute, idle, windows): {closed:?}"
        );
        let results = store.results().await.unwrap_or_else(|e| panic!("{e}"));
        let quarters = results
            .iter()
            .filter(|w| w.closed && w.window.length.ms() == 15 * MIN)
            .count();
        assert_eq!(quarters, 3, "caught up: {second_caught_up}");
    }
}

/// Three days of one intersection's readings (one every five minutes) ingested while no merge
/// ran; then scheduled merges under `cfg` until one finds nothing behind. The reports.
async fn catch_up(
    cfg: &EngineConfig,
) -> (Vec<MergeReport>, Vec<traffic_core::query::WindowResult>) {
    let (_dir, store) = store_with_city().await;
    let end = T0 + 3 * 24 * 60 * MIN;
    let clock = Arc::new(ManualClock::at(end));
    let ingest = ingest_on(cfg, &store, &clock);
    let records: Vec<SourceRecord> = (0..3 * 24 * 12)
        .map(|k| {
            let ts = T0 + k * 5 * MIN;
            record(
                k as u64 + 1,
                "I-0001",
                reading("I-0001", (k % 4) as u8, ts),
                ts + 2_000,
            )
        })
        .collect();
    for chunk in records.chunks(500) {
        let r = ingest
            .process(&esm::kinesis_event(
                &ShardId::from("shardId-000000000000"),
                "",
                "local",
                chunk,
            ))
            .await;
        assert!(r.failed.is_empty());
    }
    let merge = merge_on(cfg, &store, None, &clock);
    let mut reports = Vec::new();
    for _ in 0..100 {
        let r = merge
            .run(CloseUpTo::Watermark)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let done = r.panes_compacted == 0;
        reports.push(r);
        if done {
            break;
        }
        clock.set(clock.now_ms() + 5 * MIN);
    }
    let mut results = store.results().await.unwrap_or_else(|e| panic!("{e}"));
    results.sort_by_key(|w| w.window);
    (reports, results)
}

#[tokio::test]
async fn a_merge_after_three_days_stalled_catches_up_in_bounded_runs_with_the_same_results() {
    let bounded =
        EngineConfig::from_lookup(|k| (k == "TRAFFIC_MERGE_MAX_PANES").then(|| "16".to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
    let (steps, stepped) = catch_up(&bounded).await;
    let most = steps.iter().map(|r| r.panes_compacted).max().unwrap_or(0);
    let runs = steps.iter().filter(|r| r.panes_compacted > 0).count();
    println!(
        "3 days of panes: {runs} runs of at most {most} panes compacted, {} windows",
        stepped.len()
    );
    assert!(most <= 16, "a run compacted {most} panes");
    assert!(runs >= 3 * 24 * 4 / 16, "{runs} runs");
    let unbounded = EngineConfig::from_lookup(|k| {
        (k == "TRAFFIC_MERGE_MAX_PANES").then(|| "100000".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (one, all) = catch_up(&unbounded).await;
    assert_eq!(one.iter().filter(|r| r.panes_compacted > 0).count(), 1);
    assert_eq!(stepped.len(), all.len());
    assert_eq!(stepped, all);
    assert!(stepped.iter().all(|w| w.closed));
}
