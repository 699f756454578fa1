//! The `fault` function: lamp state transitions → alarms.
//!
//! A second consumer of the same stream. For each valid reading of a known intersection, in
//! order, it applies the lamp transition to the light's stored state; every lamp that went from
//! ok to broken raises one alarm. Alarms are recorded under a stable id before they are
//! published and marked published after, and lamp states are stored last, so a retried batch
//! recomputes the same transitions and publishes nothing twice (short of a crash between a
//! publish and its mark, the at-least-once edge that SNS consumers must tolerate anyway).
//! A lamp that flaps (broken, then ok, then broken again less than the policy's hold-down,
//! default 10 minutes, after its last published alarm) has its new alarm recorded and held
//! down: shown by the API, not published again. A lamp that reports ok again resolves its
//! open alarm (closed at the event time of the reading, `closed_why` "lamp reported ok"),
//! as an operator's repair would; a lamp that no alarm is open for costs one query of its
//! light's open alarms.
//! Invalid records, records under another partition key than their intersection, and
//! readings stamped more than the allowed clock skew after their arrival (*future*: they would
//! make every later reading of the light look stale) are skipped here without a count
//! (`ingest` counts them).

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::lamps::{Alarm, LightLamps, intersections_to_read, transition};
use traffic_core::routing::HashKeyRange;
use traffic_core::{EngineConfig, IntersectionId, LightIndex};
use traffic_functions::BatchHandler;
use traffic_functions::directory::Directory;
use traffic_functions::kinesis::{
    Decoded, Unusable, decode_by_shard, failures, record_stats, stats_sample,
};
use traffic_functions::routing::{Routes, ShardRanges};
use traffic_ports::{
    AlarmPublisher, Clock, Closing, LampStore, PortError, Ports, Registry, StatsStore, UsageMeter,
    parse_alarm_id,
};

/// `fault` built from the ports it needs, owning them and its directory.
pub struct FaultHandler {
    cfg: EngineConfig,
    alarms: AlarmPolicy,
    usage: Arc<dyn UsageMeter>,
    clock: Arc<dyn Clock>,
    lamps: Arc<dyn LampStore>,
    publisher: Arc<dyn AlarmPublisher>,
    registry: Arc<dyn Registry>,
    stats: Arc<dyn StatsStore>,
    directory: Directory,
    routing: ShardRanges,
}

impl FaultHandler {
    /// `fault` over `ports` (lamps, publisher, registry, statistics).
    pub fn from_ports(cfg: EngineConfig, ports: &Ports) -> Self {
        Self {
            cfg,
            alarms: AlarmPolicy::default(),
            usage: ports.usage.clone(),
            clock: ports.clock.clone(),
            lamps: ports.lamps.clone(),
            publisher: ports.publisher.clone(),
            registry: ports.registry.clone(),
            stats: ports.stats.clone(),
            directory: Directory::default(),
            routing: ShardRanges::new(ports.stream.clone()),
        }
    }

    /// The same handler with the alarm policy `alarms` (its hold-down), instead of the default.
    pub fn with_alarm_policy(mut self, alarms: AlarmPolicy) -> Self {
        self.alarms = alarms;
        self
    }

    /// The handler borrowing what this one owns. (Its `handle` uses the default alarm
    /// policy; [`BatchHandler::handle`] on this handler uses the one it was given.)
    pub fn fault(&self) -> Fault<'_> {
        Fault {
            cfg: &self.cfg,
            usage: self.usage.as_ref(),
            clock: self.clock.as_ref(),
            lamps: self.lamps.as_ref(),
            publisher: self.publisher.as_ref(),
            registry: self.registry.as_ref(),
            directory: &self.directory,
            stats: self.stats.as_ref(),
        }
    }
}

impl FaultHandler {
    /// Processes one event as [`BatchHandler::handle`] does (its shards' ranges checked, under
    /// this handler's alarm policy), returning the report and the sequence numbers to retry
    /// from instead of a batch response: for a caller that is not an event source mapping
    /// (`traffic redrive`).
    pub async fn process(
        &self,
        event: &KinesisEvent,
    ) -> (FaultReport, Vec<traffic_core::SequenceNumber>) {
        let routes = self.routing.routes(event).await;
        self.fault()
            .process_routed(event, &self.alarms, &routes)
            .await
    }
}

#[async_trait::async_trait]
impl BatchHandler for FaultHandler {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let routes = self.routing.routes(event).await;
        self.fault()
            .handle_routed(event, &self.alarms, &routes)
            .await
    }
}

/// What `fault` needs; built once per process.
pub struct Fault<'a> {
    /// Engine parameters (the allowed clock skew).
    pub cfg: &'a EngineConfig,
    /// What the backend billed.
    pub usage: &'a dyn UsageMeter,
    /// The time (for statistics).
    pub clock: &'a dyn Clock,
    /// Lamp states and the alarm log.
    pub lamps: &'a dyn LampStore,
    /// Where alarms go.
    pub publisher: &'a dyn AlarmPublisher,
    /// Intersections, for validation and positions.
    pub registry: &'a dyn Registry,
    /// Cache of the registry.
    pub directory: &'a Directory,
    /// Where throughput and latency figures go.
    pub stats: &'a dyn StatsStore,
}

/// What one invocation did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultReport {
    /// Alarms raised (published now).
    pub raised: Vec<Alarm>,
    /// Alarms recorded but held down (their lamp's last alarm was published less than the
    /// hold-down before).
    pub held_down: Vec<Alarm>,
    /// Lamps seen repaired.
    pub repaired: u64,
    /// Open alarms resolved by their lamp reporting ok.
    pub resolved: u64,
    /// Lights whose state changed.
    pub lights_updated: u64,
    /// Readings skipped: under another partition key, on another shard than their partition
    /// key's, or stamped in the future.
    pub skipped: u64,
    /// Of those, the readings an explicit hash key put on a shard their partition key does
    /// not map to.
    pub misrouted: u64,
    /// Shards that failed (their first record is reported for retry).
    pub failed: Vec<String>,
}

impl Fault<'_> {
    /// Handles one Kinesis event.
    pub async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        self.handle_with(event, &AlarmPolicy::default()).await
    }

    /// Handles one Kinesis event under the alarm policy `alarms` (its hold-down).
    pub async fn handle_with(
        &self,
        event: &KinesisEvent,
        alarms: &AlarmPolicy,
    ) -> KinesisEventResponse {
        self.handle_routed(event, alarms, &Routes::none()).await
    }

    /// As [`Fault::handle_with`], skipping records found on a shard of `routes` whose hash key
    /// range their partition key is not in.
    pub async fn handle_routed(
        &self,
        event: &KinesisEvent,
        alarms: &AlarmPolicy,
        routes: &Routes,
    ) -> KinesisEventResponse {
        let before = self.usage.usage();
        let (report, failed) = self.process_routed(event, alarms, routes).await;
        let used = self.usage.usage().since(&before);
        let now = self.clock.now_ms();
        record_stats(
            self.stats,
            &stats_sample("fault", event, report.raised.len() as u64, now, &used),
        )
        .await;
        tracing::info!(
            alarms = report.raised.len(),
            repaired = report.repaired,
            resolved = report.resolved,
            lights_updated = report.lights_updated,
            skipped = report.skipped,
            misrouted = report.misrouted,
            failed = report.failed.len(),
            write_units = used.write_units,
            read_units = used.read_units,
            "fault batch"
        );
        failures(failed)
    }

    /// Processes one event; returns the report and the sequence numbers to retry from.
    pub async fn process(
        &self,
        event: &KinesisEvent,
    ) -> (FaultReport, Vec<traffic_core::SequenceNumber>) {
        self.process_with(event, &AlarmPolicy::default()).await
    }

    /// As [`Fault::process`], under the alarm policy `alarms`.
    pub async fn process_with(
        &self,
        event: &KinesisEvent,
        alarms: &AlarmPolicy,
    ) -> (FaultReport, Vec<traffic_core::SequenceNumber>) {
        self.process_routed(event, alarms, &Routes::none()).await
    }

    /// As [`Fault::process_with`], checking each shard's records against its range in
    /// `routes`.
    pub async fn process_routed(
        &self,
        event: &KinesisEvent,
        alarms: &AlarmPolicy,
        routes: &Routes,
    ) -> (FaultReport, Vec<traffic_core::SequenceNumber>) {
        let (shards, _) = decode_by_shard(event);
        let mut report = FaultReport::default();
        let mut failed = Vec::new();
        for (shard, records) in &shards {
            let range = routes.of(shard);
            if let Err(e) = self
                .process_shard(records, range, alarms, &mut report)
                .await
            {
                tracing::error!(shard = %shard, error = %e, "lamp states not updated; the batch will be retried");
                report.failed.push(shard.clone());
                if let Some(first) = records.first() {
                    failed.push(first.seq.clone());
                }
            }
        }
        (report, failed)
    }

    async fn process_shard(
        &self,
        records: &[Decoded<'_>],
        range: Option<&HashKeyRange>,
        alarms: &AlarmPolicy,
        report: &mut FaultReport,
    ) -> Result<(), PortError> {
        let mut readings = Vec::with_capacity(records.len());
        for d in records {
            let r = match d.routed(range) {
                Ok(r) => r,
                Err(Unusable::WrongShard { key, shard }) => {
                    tracing::warn!(shard = %shard, sequence_number = %d.seq, partition_key = %key, "record on a shard its partition key does not map to: skipped");
                    report.skipped += 1;
                    report.misrouted += 1;
                    continue;
                }
                Err(_) => {
                    report.skipped += u64::from(d.reading.is_ok());
                    continue;
                }
            };
            if self.cfg.is_future(r.ts_ms, d.arrival_ms) {
                report.skipped += 1;
                continue;
            }
            readings.push(r);
        }
        let known = self
            .directory
            .lookup(self.registry, readings.iter().map(|r| &r.intersection_id))
            .await?;
        let readings: Vec<_> = readings
            .into_iter()
            .filter(|r| {
                known
                    .get(&r.intersection_id)
                    .is_some_and(|k| k.has(r.light))
            })
            .collect();
        // Only intersections whose readings differ from their stored lamps can change or
        // alarm: the others' states are not read (most of a city, most of the time, and an
        // intersection whose broken lamp stays broken until it is repaired).
        let seen: BTreeSet<IntersectionId> =
            readings.iter().map(|r| r.intersection_id.clone()).collect();
        let summaries = self.lamps.lamp_summaries_for(&seen).await?;
        let to_read = intersections_to_read(readings.iter().copied(), summaries.as_ref());
        let readings: Vec<_> = readings
            .into_iter()
            .filter(|r| to_read.contains(&r.intersection_id))
            .collect();
        let lights: BTreeSet<(IntersectionId, LightIndex)> = readings
            .iter()
            .map(|r| (r.intersection_id.clone(), r.light))
            .collect();
        let lights: Vec<_> = lights.into_iter().collect();
        let before = self.lamps.lamp_states(&lights).await?;
        let mut states: BTreeMap<(IntersectionId, LightIndex), LightLamps> = before.clone();
        let mut raised = Vec::new();
        let mut recovered = Vec::new();
        for r in readings {
            let key = (r.intersection_id.clone(), r.light);
            let prev = states.get(&key).copied().unwrap_or_default();
            let t = transition(&prev, r);
            report.repaired += t.repaired.len() as u64;
            for lamp in &t.repaired {
                recovered.push((r.intersection_id.clone(), r.light, *lamp, r.ts_ms));
            }
            for lamp in t.failed {
                raised.push(Alarm {
                    intersection_id: r.intersection_id.clone(),
                    light: r.light,
                    lamp,
                    ts_ms: r.ts_ms,
                    position: r
                        .position
                        .or_else(|| known.get(&r.intersection_id).map(|k| k.position)),
                    silent: None,
                });
            }
            states.insert(key, t.state);
        }
        for alarm in &raised {
            let record = self.lamps.record_alarm(alarm).await?;
            if record.published || record.held_down {
                continue;
            }
            let last = self
                .lamps
                .last_published(&alarm.intersection_id, alarm.light, alarm.lamp)
                .await?;
            if alarms.held_down(last, alarm.ts_ms) {
                // A flapping lamp: recorded (the API and the dashboard show it), not paged.
                self.lamps.mark_held_down(&alarm.id()).await?;
                tracing::info!(alarm = %alarm.id(), "alarm held down: its lamp paged less than the hold-down ago");
                report.held_down.push(alarm.clone());
                continue;
            }
            self.publisher.publish(alarm).await?;
            self.lamps.mark_published(&alarm.id()).await?;
            report.raised.push(alarm.clone());
        }
        for (id, light, lamp, ts_ms) in &recovered {
            let select = |alarm_id: &str| {
                parse_alarm_id(alarm_id).is_some_and(|(_, _, c, t)| c == *lamp && t <= *ts_ms)
            };
            let closing = Closing::at(*ts_ms, alarms.retention_ms);
            let closed = self
                .lamps
                .resolve_alarms(id, Some(*light), &select, &closing, "lamp reported ok")
                .await?;
            report.resolved += closed.len() as u64;
        }
        // Only lamps that changed are written: rewriting every light's state on every batch
        // (its `as_of_ms` moves with each reading) would cost a write per light per batch.
        // The stored `as_of_ms` is then the time of the last change, which still makes
        // duplicates and replays of older readings stale.
        let changed: Vec<_> = states
            .into_iter()
            .filter(|(k, s)| before.get(k).map(|b| b.lamps) != Some(s.lamps))
            .collect();
        report.lights_updated += changed.len() as u64;
        if !changed.is_empty() {
            self.lamps.put_lamp_states(&changed).await?;
        }
        Ok(())
    }
}
