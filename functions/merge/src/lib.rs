//! The `merge` function: the shards' deltas → rollups → results per window → Webster timings.
//!
//! Each run (on an EventBridge schedule in AWS, on a timer locally), under a lease so that two
//! runs never interleave (EventBridge may invoke twice; a user may set reserved concurrency 0):
//!
//! 1. the closed mark: the global watermark (`traffic_core::lineage`: the smallest watermark of
//!    the shards that may still deliver; a closed parent read to its end no longer counts, a
//!    shard without state holds it at its parent's watermark or at the stream's start, a shard
//!    current with its stream that has accepted no reading for the idle timeout does not
//!    count), or, at the end of a replay, the end of every window that holds data. At most
//!    `TRAFFIC_MERGE_MAX_PANES` panes close in one run: a merge behind after a stall catches
//!    up over several runs (`catching_up`). It only moves forward, and it is written
//!    *before* any pane is read: every `ingest` commit is conditional on it, so a reading can
//!    no longer be accepted into a window this run finalises (it is counted late);
//! 2. the listed deltas of the panes not yet compacted are read, and
//!    `traffic_core::merge_run` compacts the closed ones, builds longer windows from the
//!    rollups of shorter ones as they close, and gives open windows provisional results (as
//!    `TRAFFIC_PROVISIONAL` says);
//! 3. if a control window (the shortest length) closed in this run, the latest one gives every
//!    intersection that had readings in it new Webster timings, each written only if the
//!    intersection has not changed since it was read (an operator's edit wins; the retiming
//!    waits for the next window), before the results, so a crash in between recomputes them.
//!    Each intersection's control mode (`traffic_core::control`) decides what happens to
//!    Webster's proposal: `adaptive` applies it within the intersection's limits (unless no
//!    green or red would move by `WEBSTER_MIN_CHANGE_S`: then nothing is written), with the
//!    plan for actuated controllers drawn from the timings written (`traffic_core::plan`,
//!    `PLAN_*`) stored beside them, `fixed`
//!    keeps the timings, `manual` keeps them and records the proposal (with its inputs) on the
//!    intersection, conditionally as the timings are. A phase none of whose lights detector
//!    health heard (5: judged at this run's closed mark) is blind: Webster counts it as loaded
//!    as the busiest heard phase rather than cut its green for a silence, and an intersection
//!    whose phases are all blind is left as it is (`traffic_core::control::blind_phases`,
//!    `traffic_core::webster::retime_heard`). An intersection already retimed (or,
//!    manual, given a proposal) from this window by a run that crashed before its progress is
//!    left alone: a limit on the change applies once per window, not once per attempt;
//! 4. results, the network state (every intersection over the newest window of the shortest
//!    length) and the rollups are written; then the closed windows and the retiming round
//!    are published for subscribers ([`events`]: a failure there fails the run before its
//!    progress, so the next run publishes them again); then the progress is written and what
//!    is no longer needed is dropped;
//! 5. detector health ([`silence`]): lights that sent nothing for `TRAFFIC_SILENCE_AFTER`
//!    before the closed mark raise sensor-silent alarms, lights heard again resolve theirs.
//! 6. the alarms due (`traffic_functions::publication`): every recorded alarm not yet
//!    published (its publisher failed past its retries, or its caller died between record and
//!    publish), and every held-down lamp alarm whose hold-down ended by now while it is still
//!    open, is published, each claimed first so that no alarm pages twice; at most
//!    [`DUE_PER_RUN`] a run, soonest due first.
//!
//! Each step is a span (an X-Ray subsegment inside Lambda, `traffic_functions::xray`), in
//! order: `merge.lease`, `merge.marks` (1), `merge.reads` and `merge.compact` (2),
//! `merge.retime` (3), `merge.write`, `merge.events` and `merge.progress` (4), `merge.health`
//! (5 and 6), `merge.release`. A span covers its step from its creation to its end; the
//! store calls inside are not spans of their own.

mod changes;
pub mod events;
pub mod figures;
mod retime;
pub mod silence;
mod steps;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use traffic_core::EngineConfig;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::demand::IntersectionDemand;
use traffic_core::latency::RunLatencies;
use traffic_core::rollup::CompactionCounts;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::window::WindowKey;
use traffic_ports::{
    AlarmPublisher, Clock, LampStore, OutputArchive, PortResult, Ports, Registry, ResultEvents,
    ResultStore, StateStore, StatsStore, StreamShards, UsageMeter,
};

use tracing::{Instrument, info_span};
use traffic_functions::Metrics;
pub use traffic_functions::Provisional;

/// How long a merge run may hold the lease before another may take it over, ms (longer than
/// the function's timeout, so a run that died lets the next scheduled one in).
pub const LEASE_MS: i64 = 5 * 60_000;

/// Alarms due read per run (the rest wait for the next run).
pub const DUE_PER_RUN: usize = 200;

/// `merge` built from the ports it needs, owning them.
pub struct MergeHandler {
    cfg: EngineConfig,
    provisional: Provisional,
    holder: String,
    state: Arc<dyn StateStore>,
    registry: Arc<dyn Registry>,
    results: Arc<dyn ResultStore>,
    events: Arc<dyn ResultEvents>,
    archive: Arc<dyn OutputArchive>,
    stream: Option<Arc<dyn StreamShards>>,
    clock: Arc<dyn Clock>,
    stats: Arc<dyn StatsStore>,
    usage: Arc<dyn UsageMeter>,
    lamps: Arc<dyn LampStore>,
    publisher: Arc<dyn AlarmPublisher>,
    alarms: AlarmPolicy,
    metrics: Metrics,
}

/// A name for this process's merge runs, unique enough to tell two concurrent runs apart.
fn process_holder() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!(
        "merge-{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

impl MergeHandler {
    /// `merge` over `ports` (state, registry, results, result events, the stream's shards if
    /// any, the clock).
    pub fn from_ports(cfg: EngineConfig, provisional: Provisional, ports: &Ports) -> Self {
        Self {
            cfg,
            provisional,
            holder: process_holder(),
            state: ports.state.clone(),
            registry: ports.registry.clone(),
            results: ports.results.clone(),
            events: ports.events.clone(),
            archive: ports.archive.clone(),
            stream: ports.stream.clone(),
            clock: ports.clock.clone(),
            stats: ports.stats.clone(),
            usage: ports.usage.clone(),
            lamps: ports.lamps.clone(),
            publisher: ports.publisher.clone(),
            alarms: AlarmPolicy::default(),
            metrics: Metrics::off(),
        }
    }

    /// The same handler writing one metric line per run to `metrics` (none by default).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same handler with the alarm policy `alarms` (how long a resolved sensor-silent
    /// alarm is kept), instead of the default.
    pub fn with_alarm_policy(mut self, alarms: AlarmPolicy) -> Self {
        self.alarms = alarms;
        self
    }

    /// The same handler holding the lease under a fixed name: a process that runs the merge
    /// alone on its own store (`traffic local`) takes back its own lease after a restart.
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// What detector health ([`silence`]) judges with.
    fn silence_health(&self) -> silence::Health<'_> {
        silence::Health {
            lamps: self.lamps.as_ref(),
            publisher: self.publisher.as_ref(),
            alarms: &self.alarms,
        }
    }

    /// Handles a scheduled event (its content is not used: the state says what to do): one
    /// run up to the global watermark, logged, its figures recorded ([`figures`]).
    pub async fn handle(&self, _event: &EventBridgeEvent) -> PortResult<MergeReport> {
        let before = self.usage.usage();
        let report = self.run_leased_once(CloseUpTo::Watermark).await?;
        log_run(&report);
        self.record(&report, before).await;
        Ok(report)
    }

    /// Runs the merge once and records its figures ([`figures`]).
    pub async fn run(&self, closing: CloseUpTo) -> PortResult<MergeReport> {
        let before = self.usage.usage();
        let report = self.run_leased_once(closing).await?;
        self.record(&report, before).await;
        Ok(report)
    }

    async fn record(&self, report: &MergeReport, before: traffic_ports::Usage) {
        let used = self.usage.usage().since(&before);
        let now = self.clock.now_ms();
        let minute = now.div_euclid(60_000) * 60_000;
        for s in figures::samples(report, minute, &used) {
            traffic_functions::kinesis::record_stats(self.stats.as_ref(), &s).await;
        }
        self.metrics.merge(figures::metric_line(report, now, &used));
    }
}

/// How far windows close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseUpTo {
    /// Up to the global watermark (the scheduled runs).
    Watermark,
    /// Every window that holds data (end of a replay or of a timed run: no more will come).
    All,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergeReport {
    /// `Some(why)` when another run held the lease and this one did nothing.
    pub skipped: Option<String>,
    /// The global watermark computed, epoch ms.
    pub watermark_ms: Option<i64>,
    /// The closed mark after the run.
    pub closed_ms: Option<i64>,
    /// Shards left out of the watermark as idle.
    pub shards_idle: usize,
    /// Whether the run stopped short of the watermark: more panes were due than
    /// `TRAFFIC_MERGE_MAX_PANES` (a merge behind after a stall); the next runs go on. Such a run
    /// gives no provisional results, retimes nothing and judges no detector health: its closed
    /// mark is history, not now.
    pub catching_up: bool,
    /// Windows given their final result in this run.
    pub closed: Vec<WindowKey>,
    /// Windows given a provisional result.
    pub provisional: usize,
    /// Panes compacted.
    pub panes_compacted: usize,
    /// Delta parts read.
    pub deltas_read: usize,
    /// What compaction dropped.
    pub compaction: CompactionCounts,
    /// Intersections retimed.
    pub retimed: usize,
    /// Intersections whose retiming was skipped: changed by an operator since they were read.
    pub retiming_conflicts: usize,
    /// Intersections whose timings were kept because of their control mode (fixed, manual).
    pub retiming_kept: usize,
    /// Adaptive intersections left as they were: no green or red would have moved by
    /// `WEBSTER_MIN_CHANGE_S` (nothing written).
    pub retiming_steady: usize,
    /// Intersections retimed whose limits changed Webster's proposal.
    pub retiming_limited: usize,
    /// Intersections with readings left as they were because every phase was blind: none of
    /// their lights heard (`traffic_core::control::blind_phases`).
    pub retiming_blind: usize,
    /// Result events published ([`events`]): one per window closed, one or more (parts) per
    /// retiming round.
    pub events_published: usize,
    /// Wall time of the run, ms.
    pub run_ms: u64,
    /// Latencies from the readings' arrival to the results and the retiming of this run
    /// (`traffic_core::latency`).
    pub latencies: RunLatencies,
    /// Sensor-silent alarms raised and resolved ([`silence`]).
    pub silence: silence::SilenceReport,
    /// Alarms due published by the sweep (ids).
    pub due_published: Vec<traffic_core::AlarmId>,
    /// The demand estimated for each intersection the retiming weighed (adaptive and manual
    /// ones), on the control window it read ([`traffic_core::demand`]).
    pub demand: Vec<IntersectionDemand>,
}

/// The log line of a scheduled run.
fn log_run(report: &MergeReport) {
    match &report.skipped {
        Some(why) => tracing::info!(reason = %why, "merge run skipped"),
        None => tracing::info!(
            watermark = ?report.watermark_ms.map(format_rfc3339_ms),
            closed_mark = ?report.closed_ms.map(format_rfc3339_ms),
            shards_idle = report.shards_idle,
            catching_up = report.catching_up,
            closed = report.closed.len(),
            provisional = report.provisional,
            panes_compacted = report.panes_compacted,
            deltas_read = report.deltas_read,
            duplicates = report.compaction.duplicates,
            too_frequent = report.compaction.too_frequent,
            retimed = report.retimed,
            retiming_conflicts = report.retiming_conflicts,
            retiming_kept = report.retiming_kept,
            retiming_steady = report.retiming_steady,
            retiming_limited = report.retiming_limited,
            retiming_blind = report.retiming_blind,
            events_published = report.events_published,
            silent_raised = report.silence.raised.len(),
            silent_resolved = report.silence.resolved.len(),
            due_published = report.due_published.len(),
            "merge run"
        ),
    }
}

impl MergeHandler {
    /// One merge run, under the lease.
    async fn run_leased_once(&self, closing: CloseUpTo) -> PortResult<MergeReport> {
        let now = self.clock.now_ms();
        if !self
            .state
            .take_lease(&self.holder, now, now.saturating_add(LEASE_MS))
            .instrument(info_span!("merge.lease"))
            .await?
        {
            return Ok(MergeReport {
                skipped: Some("another merge run holds the lease".into()),
                ..MergeReport::default()
            });
        }
        let started = std::time::Instant::now();
        let result = self.run_leased(closing, now).await.map(|mut r| {
            r.run_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            r
        });
        if let Err(e) = self
            .state
            .release_lease(&self.holder)
            .instrument(info_span!("merge.release"))
            .await
        {
            tracing::warn!(error = %e, "merge lease not released; it expires by itself");
        }
        result
    }
}
