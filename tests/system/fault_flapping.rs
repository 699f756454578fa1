//! A lamp flapping hundreds of times a second cannot stall `fault`: a batch of thousands of
//! flaps makes a bounded number of calls to the lamp store (counted by a decorator of the port)
//! and still raises the right alarms.

use crate::support::store_with_city;
use async_trait::async_trait;
use fault::FaultHandler;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_app::esm;
use traffic_core::EngineConfig;
use traffic_core::ShardId;
use traffic_core::lamps::{Alarm, LampSummary, LightLamps};
use traffic_core::sequence::SequenceNumber;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::{AlarmId, IntersectionId, LampColour, LightIndex};
use traffic_embedded::EmbeddedStore;
use traffic_functions::BatchHandler;
use traffic_ports::{
    Ack, AlarmPage, AlarmQuery, AlarmRecord, Claim, CloseAlarms, LampStore, ManualClock,
    PortResult, SourceRecord,
};

/// 2026-01-05T07:00:00Z.
const T7: i64 = 1_767_596_400_000;

/// A lamp store that counts the calls made to it, delegating each.
struct Counted {
    inner: EmbeddedStore,
    calls: AtomicUsize,
}

impl Counted {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl LampStore for Counted {
    async fn lamp_states(
        &self,
        lights: &[(IntersectionId, LightIndex)],
    ) -> PortResult<BTreeMap<(IntersectionId, LightIndex), LightLamps>> {
        self.tick();
        self.inner.lamp_states(lights).await
    }
    async fn lamp_summaries(&self) -> PortResult<Option<BTreeMap<IntersectionId, LampSummary>>> {
        self.tick();
        self.inner.lamp_summaries().await
    }
    async fn put_lamp_states(
        &self,
        states: &[((IntersectionId, LightIndex), LightLamps)],
    ) -> PortResult<()> {
        self.tick();
        self.inner.put_lamp_states(states).await
    }
    async fn record_alarm(&self, alarm: &Alarm) -> PortResult<AlarmRecord> {
        self.tick();
        self.inner.record_alarm(alarm).await
    }
    async fn record_held_alarm(&self, alarm: &Alarm, until: i64) -> PortResult<AlarmRecord> {
        self.tick();
        self.inner.record_held_alarm(alarm, until).await
    }
    async fn mark_published(&self, alarm_id: &AlarmId) -> PortResult<()> {
        self.tick();
        self.inner.mark_published(alarm_id).await
    }
    async fn due_alarms(&self, due_by_ms: i64, limit: usize) -> PortResult<Vec<AlarmRecord>> {
        self.tick();
        self.inner.due_alarms(due_by_ms, limit).await
    }
    async fn claim_publication(&self, id: &AlarmId, now: i64, until: i64) -> PortResult<Claim> {
        self.tick();
        self.inner.claim_publication(id, now, until).await
    }
    async fn release_publication(&self, alarm_id: &AlarmId) -> PortResult<()> {
        self.tick();
        self.inner.release_publication(alarm_id).await
    }
    async fn last_published(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        lamp: LampColour,
    ) -> PortResult<Option<i64>> {
        self.tick();
        self.inner.last_published(id, light, lamp).await
    }
    async fn ack_alarm(&self, alarm_id: &AlarmId, ack: &Ack) -> PortResult<AlarmRecord> {
        self.tick();
        self.inner.ack_alarm(alarm_id, ack).await
    }
    async fn alarms(&self) -> PortResult<Vec<AlarmRecord>> {
        self.tick();
        self.inner.alarms().await
    }
    async fn alarm_page(&self, q: &AlarmQuery) -> PortResult<AlarmPage> {
        self.tick();
        self.inner.alarm_page(q).await
    }
    async fn alarm_events(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<traffic_ports::AlarmEvent>> {
        self.tick();
        self.inner.alarm_events(from_ms, to_ms).await
    }
    async fn close_selected(
        &self,
        id: &IntersectionId,
        close: &CloseAlarms<'_>,
    ) -> PortResult<Vec<AlarmRecord>> {
        self.tick();
        self.inner.close_selected(id, close).await
    }
    async fn take_repairs(&self) -> PortResult<Vec<(IntersectionId, LightIndex)>> {
        self.tick();
        self.inner.take_repairs().await
    }
}

fn record(seq: usize, id: &str, light: u8, ts_ms: i64, red: &str, green: &str) -> SourceRecord {
    SourceRecord {
        seq: SequenceNumber::from_u64(seq as u64 + 1),
        partition_key: id.into(),
        data: format!(
            r#"{{"intersection_id":"{id}","light":{light},"ts":"{}","vehicles":1,"mean_speed_kmh":30,"lamps":{{"red":"{red}","yellow":"ok","green":"{green}"}}}}"#,
            format_rfc3339_ms(ts_ms)
        )
        .into_bytes(),
        arrival_ms: ts_ms + 500,
    }
}

#[tokio::test]
async fn a_batch_of_thousands_of_flaps_makes_a_bounded_number_of_store_calls_and_raises_the_right_alarms()
 {
    let (_dir, store) = store_with_city().await;
    let lamps = Arc::new(Counted {
        inner: store.clone(),
        calls: AtomicUsize::new(0),
    });
    let cfg = EngineConfig::default();
    let clock = Arc::new(ManualClock::at(T7));
    let fault = FaultHandler::from_ports(
        cfg.clone(),
        &store
            .ports()
            .with_lamps(lamps.clone())
            .with_clock(clock.clone()),
    );
    // I-0001's light 0 flaps its red lamp 300 times a second for 30 s (9,000 readings, ending
    // broken); I-0002's light 1 breaks its green lamp once and stays broken, reporting every
    // 5 s.
    let mut records = Vec::new();
    for i in 0..9000usize {
        let ts = T7 + (i as i64) * 10 / 3;
        let red = if i % 2 == 0 { "broken" } else { "ok" };
        records.push(record(records.len(), "I-0001", 0, ts, red, "ok"));
        if i % 1500 == 0 {
            let green = if i == 0 { "ok" } else { "broken" };
            records.push(record(records.len(), "I-0002", 1, ts, "ok", green));
        }
    }
    let flapping_records = records.len();
    clock.set(T7 + 31_000);
    let before = lamps.calls.load(Ordering::SeqCst);
    let event = esm::kinesis_event(
        &ShardId::from("shardId-000000000000"),
        "",
        "local",
        &records,
    );
    let failed = fault.handle(&event).await.batch_item_failures;
    assert!(failed.is_empty(), "{failed:?}");
    let calls = lamps.calls.load(Ordering::SeqCst) - before;
    println!("{flapping_records} records, 2 lamps failing: {calls} lamp store calls");
    // Per batch: the summaries, the states, the due alarms, the states written; per lamp at
    // most one transition's worth (last published, record, claim, mark, resolve).
    assert!(calls <= 4 + 2 * 5, "{calls} calls");

    let mut sent: Vec<(String, i64, String)> = store
        .published_alarms()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|a| {
            (
                a.intersection_id.to_string(),
                a.light.get() as i64,
                a.lamp.as_str().to_owned(),
            )
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("I-0001".to_owned(), 0, "red".to_owned()),
            ("I-0002".to_owned(), 1, "green".to_owned())
        ]
    );
    let open = store
        .alarm_page(&AlarmQuery {
            open_only: true,
            limit: 10,
            after: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(open.open, 2, "both lamps end the batch broken");
}

#[tokio::test]
async fn a_backlog_of_a_lamp_flapping_every_five_seconds_is_one_alarm_and_a_bounded_batch() {
    let (_dir, store) = store_with_city().await;
    let lamps = Arc::new(Counted {
        inner: store.clone(),
        calls: AtomicUsize::new(0),
    });
    let cfg = EngineConfig::default();
    let clock = Arc::new(ManualClock::at(T7));
    let fault = FaultHandler::from_ports(
        cfg.clone(),
        &store
            .ports()
            .with_lamps(lamps.clone())
            .with_clock(clock.clone()),
    );
    // 4,001 readings 5 s apart (5.5 hours delivered at once after a stall), broken and ok in
    // turn: none is too frequent, 2,001 failures, ending broken.
    let records: Vec<SourceRecord> = (0..=4000usize)
        .map(|i| {
            let red = if i % 2 == 0 { "broken" } else { "ok" };
            record(i, "I-0003", 2, T7 + i as i64 * 5000, red, "ok")
        })
        .collect();
    let last = T7 + 4000 * 5000;
    clock.set(last + 1000);
    let event = esm::kinesis_event(
        &ShardId::from("shardId-000000000000"),
        "",
        "local",
        &records,
    );
    assert!(fault.handle(&event).await.batch_item_failures.is_empty());
    let calls = lamps.calls.load(Ordering::SeqCst);
    println!("4001 records of a flapping lamp: {calls} lamp store calls");
    assert!(calls <= 4 + 5, "{calls} calls");
    let sent = store.published_alarms().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].ts_ms, last, "the failure still standing");
    let log = store.alarms().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(log.len(), 1, "one alarm recorded, not 2,001");
}
