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
//! down: shown by the API, not published now. When the hold-down ends and the lamp is still
//! not ok, the alarm is published once: by the first batch with a reading of the light at or
//! after the end still reporting the lamp broken (event time), or by the merge's sweep of the
//! alarms due (its `now`), whichever comes first (`traffic_functions::publication`: a claim
//! makes it once). A lamp that reports ok again resolves its open alarm (closed at the event
//! time of the reading, `closed_why` "lamp reported ok"), as an operator's repair would.
//!
//! A batch is folded per lamp first (`traffic_core::lamp_batch`): readings closer than
//! `TRAFFIC_MIN_READING_INTERVAL` to their light's previous kept one are dropped as too
//! frequent, as `ingest` drops them, and each lamp raises at most one alarm and resolves at
//! most once per batch, so a lamp flapping hundreds of times a second costs the store what one
//! failure costs. An alarm carries the registry's position of its intersection ([`position`]).
//! Publishing failures fail the batch (it is retried); an alarm recorded and never published
//! is published by the merge's sweep.
//! Invalid records, records under another partition key than their intersection, and
//! readings stamped more than the allowed clock skew after their arrival (*future*: they would
//! make every later reading of the light look stale) are skipped here without a count
//! (`ingest` counts them). Misrouted records are logged once per batch, with their count and
//! the first few (`traffic_functions::problems`), each record at DEBUG.
//!
//! Each step is a span (an X-Ray subsegment inside Lambda, `traffic_functions::xray`):
//! `fault.routes`, `fault.decode`, then per shard `fault.shard` holding `fault.directory`,
//! `fault.lamps` (the stored states read, the batch folded per lamp), `fault.alarms` (raised,
//! held down, resolved), `fault.publish` (held-down alarms now due) and `fault.store` (the
//! lamps that changed), and `fault.stats`.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::field::Empty;
use tracing::{Instrument, Span, info_span};
use traffic_core::alarm::AlarmPolicy;
use traffic_core::lamp_batch::apply_batch;
use traffic_core::lamps::{Alarm, intersections_to_read};
use traffic_core::routing::HashKeyRange;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::{AlarmId, EngineConfig, IntersectionId, LampState, LightIndex, Reading};
use traffic_functions::BatchHandler;
use traffic_functions::handler::{BatchParts, Measured};
use traffic_functions::kinesis::{Decoded, Unusable, decode_by_shard, failures};
use traffic_functions::metrics::{BatchFigures, FaultMetrics, Metrics};
use traffic_functions::problems::Problems;
use traffic_functions::publication::{publish_due, publish_once};
use traffic_functions::routing::Routes;
use traffic_ports::{AlarmPublisher, AlarmRecord, Closing, LampStore, PortError, Ports, Registry};

pub mod position;

/// Alarms due read per batch for held-down alarms whose hold-down ended (the merge's sweep
/// reads the rest).
const DUE_PER_BATCH: usize = 50;

/// `fault` built from the ports it needs, owning them and its directory.
pub struct FaultHandler {
    cfg: EngineConfig,
    alarms: AlarmPolicy,
    lamps: Arc<dyn LampStore>,
    publisher: Arc<dyn AlarmPublisher>,
    registry: Arc<dyn Registry>,
    parts: BatchParts,
}

impl FaultHandler {
    /// `fault` over `ports` (lamps, publisher, registry, statistics).
    pub fn from_ports(cfg: EngineConfig, ports: &Ports) -> Self {
        Self {
            cfg,
            alarms: AlarmPolicy::default(),
            lamps: ports.lamps.clone(),
            publisher: ports.publisher.clone(),
            registry: ports.registry.clone(),
            parts: BatchParts::from_ports(ports),
        }
    }

    /// The same handler writing one metric line per batch to `metrics` (none by default).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.parts.metrics = metrics;
        self
    }

    /// The same handler with the alarm policy `alarms` (its hold-down), instead of the default.
    pub fn with_alarm_policy(mut self, alarms: AlarmPolicy) -> Self {
        self.alarms = alarms;
        self
    }

    /// Processes one event as [`BatchHandler::handle`] does (its shards' ranges checked, under
    /// this handler's alarm policy), returning the report and the sequence numbers to retry
    /// from instead of a batch response: for a caller that is not an event source mapping
    /// (`traffic redrive`).
    pub async fn process(
        &self,
        event: &KinesisEvent,
    ) -> (FaultReport, Vec<traffic_core::SequenceNumber>) {
        let routes = self.parts.routing.routes(event).await;
        self.process_routed(event, &self.alarms, &routes).await
    }
}

#[async_trait::async_trait]
impl BatchHandler for FaultHandler {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let routes = self.parts.routes(event, info_span!("fault.routes")).await;
        self.handle_metered(event, &routes).await
    }
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
    /// Readings dropped as too frequent (closer than `TRAFFIC_MIN_READING_INTERVAL` to their
    /// light's previous kept one).
    pub too_frequent: u64,
    /// Failures of a lamp in a batch after its first (a flapping lamp: counted, not alarmed).
    pub flaps: u64,
    /// Held-down alarms published because their hold-down ended with the lamp still broken.
    pub due_published: u64,
    /// Intersections with a reading whose own position is far from the registry's (logged).
    pub positions_far: usize,
    /// Shards that failed (their first record is reported for retry).
    pub failed: Vec<traffic_core::ShardId>,
}

impl FaultHandler {
    /// Handles one Kinesis event under this handler's alarm policy, skipping records found on
    /// a shard of `routes` whose hash key range their partition key is not in, and writes the
    /// batch's metric line.
    async fn handle_metered(&self, event: &KinesisEvent, routes: &Routes) -> KinesisEventResponse {
        let parts = &self.parts;
        let Measured {
            out: (report, failed),
            sample,
            used,
        } = parts
            .meters()
            .measure(
                traffic_ports::Series::Fault,
                event,
                info_span!("fault.stats"),
                self.process_routed(event, &self.alarms, routes),
                |(report, _)| report.raised.len() as u64,
            )
            .await;
        parts.metrics.fault(batch_metrics(&report, &sample));
        tracing::info!(
            alarms = report.raised.len(),
            repaired = report.repaired,
            resolved = report.resolved,
            lights_updated = report.lights_updated,
            skipped = report.skipped,
            misrouted = report.misrouted,
            too_frequent = report.too_frequent,
            flaps = report.flaps,
            due_published = report.due_published,
            failed = report.failed.len(),
            write_units = used.write_units,
            read_units = used.read_units,
            "fault batch"
        );
        failures(failed)
    }

    /// Processes one event under the alarm policy `alarms`, checking each shard's records
    /// against its range in `routes`; returns the report and the sequence numbers to retry
    /// from.
    async fn process_routed(
        &self,
        event: &KinesisEvent,
        alarms: &AlarmPolicy,
        routes: &Routes,
    ) -> (FaultReport, Vec<traffic_core::SequenceNumber>) {
        let (shards, _) = info_span!("fault.decode", records = event.records.len())
            .in_scope(|| decode_by_shard(event));
        let mut report = FaultReport::default();
        let mut failed = Vec::new();
        let mut problems = Problems::default();
        for (shard, records) in &shards {
            let range = routes.of(shard);
            let span = info_span!("fault.shard", shard = %shard, records = records.len());
            async {
                if let Err(e) = self
                    .process_shard(records, range, alarms, &mut report, &mut problems)
                    .await
                {
                    tracing::error!(shard = %shard, error = %e, "lamp states not updated; the batch will be retried");
                    report.failed.push(shard.clone());
                    if let Some(first) = records.first() {
                        failed.push(first.seq.clone());
                    }
                }
            }
            .instrument(span)
            .await;
        }
        problems.log("fault");
        (report, failed)
    }

    async fn process_shard(
        &self,
        records: &[Decoded<'_>],
        range: Option<&HashKeyRange>,
        alarms: &AlarmPolicy,
        report: &mut FaultReport,
        problems: &mut Problems,
    ) -> Result<(), PortError> {
        let mut readings = Vec::with_capacity(records.len());
        for d in records {
            let r = match d.routed(range) {
                Ok(r) => r,
                Err(why @ Unusable::WrongShard { .. }) => {
                    tracing::debug!(sequence_number = %d.seq, reason = %why, "record on a shard its partition key does not map to: skipped");
                    problems.note(why.kind(), &d.seq, &d.record.kinesis.partition_key, &why);
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
            .parts
            .directory
            .lookup(
                self.registry.as_ref(),
                readings.iter().map(|r| &r.intersection_id),
            )
            .instrument(info_span!("fault.directory"))
            .await?;
        let readings: Vec<_> = readings
            .into_iter()
            .filter(|r| {
                known
                    .get(&r.intersection_id)
                    .is_some_and(|k| k.has(r.light))
            })
            .collect();
        report.positions_far += position::log_mismatches(&known, readings.iter().copied()).len();
        // Only intersections whose readings differ from their stored lamps can change or
        // alarm: the others' states are not read (most of a city, most of the time, and an
        // intersection whose broken lamp stays broken until it is repaired).
        let seen: BTreeSet<IntersectionId> =
            readings.iter().map(|r| r.intersection_id.clone()).collect();
        let lamps_span = info_span!("fault.lamps", readings = readings.len(), lights = Empty);
        let (before, batch) = async {
            let summaries = self.lamps.lamp_summaries_for(&seen).await?;
            let to_read = intersections_to_read(readings.iter().copied(), summaries.as_ref());
            let lights: BTreeSet<(IntersectionId, LightIndex)> = readings
                .iter()
                .filter(|r| to_read.contains(&r.intersection_id))
                .map(|r| (r.intersection_id.clone(), r.light))
                .collect();
            let lights: Vec<_> = lights.into_iter().collect();
            Span::current().record("lights", lights.len());
            let before = if lights.is_empty() {
                BTreeMap::new()
            } else {
                self.lamps.lamp_states(&lights).await?
            };
            // The whole batch per lamp: at most one alarm and one resolution each, however
            // often it flapped (`traffic_core::lamp_batch`).
            let batch = apply_batch(
                &before,
                readings
                    .iter()
                    .copied()
                    .filter(|r| to_read.contains(&r.intersection_id)),
                self.cfg.min_reading_interval_ms,
            );
            Ok::<_, PortError>((before, batch))
        }
        .instrument(lamps_span)
        .await?;
        report.too_frequent += batch.too_frequent;
        let alarms_span = info_span!(
            "fault.alarms",
            raised = Empty,
            held_down = Empty,
            resolved = Empty
        );
        async {
            let (raised, held_down, resolved) =
                (report.raised.len(), report.held_down.len(), report.resolved);
            self.alarms(&batch, &known, alarms, report).await?;
            let span = Span::current();
            span.record("raised", report.raised.len() - raised);
            span.record("held_down", report.held_down.len() - held_down);
            span.record("resolved", report.resolved - resolved);
            Ok::<_, PortError>(())
        }
        .instrument(alarms_span)
        .await?;
        self.publish_held_down_past(&readings, report)
            .instrument(info_span!("fault.publish"))
            .await;
        // Only lamps that changed are written: rewriting every light's state on every batch
        // (its `as_of_ms` moves with each reading) would cost a write per light per batch.
        // The stored `as_of_ms` is then the time of the last change, which still makes
        // duplicates and replays of older readings stale.
        let changed: Vec<_> = batch
            .states
            .into_iter()
            .filter(|(k, s)| before.get(k).map(|b| b.lamps) != Some(s.lamps))
            .collect();
        report.lights_updated += changed.len() as u64;
        if !changed.is_empty() {
            self.lamps
                .put_lamp_states(&changed)
                .instrument(info_span!("fault.store", lights = changed.len()))
                .await?;
        }
        Ok(())
    }

    /// The batch's alarms: each lamp's new failure raised (recorded, then published or held
    /// down), each lamp reported ok again resolving its open alarms.
    async fn alarms(
        &self,
        batch: &traffic_core::lamp_batch::BatchLamps,
        known: &std::collections::HashMap<IntersectionId, traffic_functions::directory::Known>,
        alarms: &AlarmPolicy,
        report: &mut FaultReport,
    ) -> Result<(), PortError> {
        for (((id, light), lamp), run) in &batch.runs {
            report.repaired += u64::from(run.repairs);
            report.flaps += u64::from(run.failures.saturating_sub(1));
            let Some((ts_ms, at)) = run.alarm() else {
                continue;
            };
            let alarm = Alarm {
                intersection_id: id.clone(),
                light: *light,
                lamp: *lamp,
                ts_ms,
                position: position::alarm_position(known, id, at),
                silent: None,
            };
            self.raise(&alarm, alarms, report).await?;
        }
        for (((id, light), lamp), run) in &batch.runs {
            let Some(through) = run.resolve_through_ms() else {
                continue;
            };
            let select = |a: &AlarmId| a.lamp() == Some(*lamp) && a.ts_ms() <= through;
            let closing = Closing::at(through, alarms.retention_ms);
            let closed = self
                .lamps
                .resolve_alarms(id, Some(*light), &select, &closing, "lamp reported ok")
                .await?;
            report.resolved += closed.len() as u64;
        }
        Ok(())
    }

    /// Records `alarm` and publishes it, unless its lamp paged less than the hold-down before
    /// (then it is recorded held down, and published when the hold-down ends if the lamp is
    /// still not ok) or a retry finds it settled.
    async fn raise(
        &self,
        alarm: &Alarm,
        alarms: &AlarmPolicy,
        report: &mut FaultReport,
    ) -> Result<(), PortError> {
        let last = self
            .lamps
            .last_published(&alarm.intersection_id, alarm.light, alarm.lamp)
            .await?;
        let record = match alarms.held_until(last, alarm.ts_ms) {
            Some(until) => self.lamps.record_held_alarm(alarm, until).await?,
            None => self.lamps.record_alarm(alarm).await?,
        };
        if record.published {
            return Ok(());
        }
        if record.held_down {
            // A flapping lamp: recorded (the API and the dashboard show it), not paged now.
            tracing::info!(alarm = %alarm.id(), held_until = ?record.held_until_ms.map(format_rfc3339_ms), "alarm held down: its lamp paged less than the hold-down ago");
            report.held_down.push(alarm.clone());
            return Ok(());
        }
        let now = self.parts.clock.now_ms();
        if let Some(a) = publish_once(
            self.lamps.as_ref(),
            self.publisher.as_ref(),
            &alarm.id(),
            now,
        )
        .await?
        {
            report.raised.push(a);
        }
        Ok(())
    }

    /// Publishes the held-down alarms whose hold-down has ended, judged in event time by this
    /// batch: a reading of the lamp's light at or after the end still reports it broken (the
    /// alarm is still open: a reading ok would have resolved it). Read only when a reading of
    /// the batch has a lamp not ok; a failure is logged and left to the merge's sweep.
    async fn publish_held_down_past(&self, readings: &[&Reading], report: &mut FaultReport) {
        let mut latest: BTreeMap<(&IntersectionId, LightIndex), &Reading> = BTreeMap::new();
        for r in readings {
            let e = latest.entry((&r.intersection_id, r.light)).or_insert(r);
            if r.ts_ms > e.ts_ms {
                *e = r;
            }
        }
        let Some(until) = latest
            .values()
            .filter(|r| !r.lamps.all_ok())
            .map(|r| r.ts_ms)
            .max()
        else {
            return;
        };
        let accept = |rec: &AlarmRecord| {
            let a = &rec.alarm;
            rec.held_down
                && rec.repaired_at_ms.is_none()
                && a.silent.is_none()
                && latest.get(&(&a.intersection_id, a.light)).is_some_and(|r| {
                    rec.held_until_ms.is_some_and(|end| r.ts_ms >= end)
                        && r.lamps.get(a.lamp) == LampState::Broken
                })
        };
        let now = self.parts.clock.now_ms();
        match publish_due(
            self.lamps.as_ref(),
            self.publisher.as_ref(),
            until,
            now,
            DUE_PER_BATCH,
            &accept,
        )
        .await
        {
            Ok(done) => {
                for id in &done.published {
                    tracing::info!(alarm = %id, "held-down alarm published: its lamp is still broken after the hold-down");
                }
                report.due_published += done.published.len() as u64;
            }
            Err(e) => {
                tracing::warn!(error = %e, "held-down alarms not published by this batch; the merge's sweep publishes them");
            }
        }
    }
}

/// The metric line of a batch: its report's counts, the latency and units of its statistics
/// sample.
fn batch_metrics(report: &FaultReport, sample: &traffic_ports::StatsSample) -> FaultMetrics {
    FaultMetrics {
        function: "fault",
        records: sample.records,
        alarms_raised: report.raised.len() as u64,
        alarms_held: report.held_down.len() as u64,
        alarms_resolved: report.resolved,
        alarms_published: report.raised.len() as u64 + report.due_published,
        flaps: report.flaps,
        skipped: report.skipped,
        too_frequent: report.too_frequent,
        batch: BatchFigures::of(sample, report.failed.len() as u64),
    }
}
