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

pub mod events;
pub mod figures;
pub mod silence;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use traffic_core::EngineConfig;
use traffic_core::IntersectionId;
use traffic_core::alarm::AlarmPolicy;
use traffic_core::control::{ControlMode, Decision, Proposal, blind_phases, decide};
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::demand::{IntersectionDemand, retime};
use traffic_core::latency::{RunLatencies, RunSeen, SeenDelta, observe};
use traffic_core::lineage::{ShardActivity, ShardInfo, global_watermark, idle_shards};
use traffic_core::merge_run::{Levels, RunInput, bounded_close, run};
use traffic_core::pane::ShardMeta;
use traffic_core::plan::{Plan, plan, plan_of};
use traffic_core::rollup::{CompactionCounts, Rollup};
use traffic_core::time::format_rfc3339_ms;
use traffic_core::webster::apply;
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::{
    AlarmPublisher, Clock, LampStore, PortResult, Ports, ProposalUpdate, Registry, ResultEvents,
    ResultStore, StateStore, StatsStore, StreamShards, TimingUpdate, UsageMeter,
};

use tracing::{Instrument, info_span};
use traffic_functions::Metrics;
pub use traffic_functions::Provisional;
use traffic_functions::publication::publish_due;

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

    /// The handler borrowing what this one owns.
    pub fn merge(&self) -> Merge<'_> {
        Merge {
            cfg: &self.cfg,
            provisional: self.provisional,
            holder: &self.holder,
            state: self.state.as_ref(),
            registry: self.registry.as_ref(),
            results: self.results.as_ref(),
            events: self.events.as_ref(),
            stream: self.stream.as_deref(),
            clock: self.clock.as_ref(),
            health: Some(silence::Health {
                lamps: self.lamps.as_ref(),
                publisher: self.publisher.as_ref(),
                alarms: &self.alarms,
            }),
        }
    }

    /// Runs the merge once and records its figures ([`figures`]).
    pub async fn run(&self, closing: Closing) -> PortResult<MergeReport> {
        let before = self.usage.usage();
        let report = self.merge().run(closing).await?;
        self.record(&report, before).await;
        Ok(report)
    }

    /// Handles a scheduled event ([`Merge::handle`]) and records its figures.
    pub async fn handle(&self, event: &EventBridgeEvent) -> PortResult<MergeReport> {
        let before = self.usage.usage();
        let report = self.merge().handle(event).await?;
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
pub enum Closing {
    /// Up to the global watermark (the scheduled runs).
    Watermark,
    /// Every window that holds data (end of a replay or of a timed run: no more will come).
    All,
}

/// What `merge` needs.
pub struct Merge<'a> {
    /// Engine parameters.
    pub cfg: &'a EngineConfig,
    /// Which open windows get provisional results.
    pub provisional: Provisional,
    /// Who holds the lease during a run.
    pub holder: &'a str,
    /// Partial state.
    pub state: &'a dyn StateStore,
    /// Intersections and timings.
    pub registry: &'a dyn Registry,
    /// Results.
    pub results: &'a dyn ResultStore,
    /// Where closed windows and retiming rounds are published ([`events`]).
    pub events: &'a dyn ResultEvents,
    /// The stream's shards (lineage, caught-up shards), where there is a stream to ask.
    pub stream: Option<&'a dyn StreamShards>,
    /// The time.
    pub clock: &'a dyn Clock,
    /// Where sensor-silent alarms go ([`silence`]); `None`: no detector health judged.
    pub health: Option<silence::Health<'a>>,
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
    pub due_published: Vec<String>,
    /// The demand estimated for each intersection the retiming weighed (adaptive and manual
    /// ones), on the control window it read ([`traffic_core::demand`]).
    pub demand: Vec<IntersectionDemand>,
}

impl Merge<'_> {
    /// Handles a scheduled event (its content is not used: the state says what to do).
    pub async fn handle(&self, _event: &EventBridgeEvent) -> PortResult<MergeReport> {
        let report = self.run(Closing::Watermark).await?;
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
        Ok(report)
    }

    /// One merge run, under the lease.
    pub async fn run(&self, closing: Closing) -> PortResult<MergeReport> {
        let now = self.clock.now_ms();
        if !self
            .state
            .take_lease(self.holder, now, now.saturating_add(LEASE_MS))
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
            .release_lease(self.holder)
            .instrument(info_span!("merge.release"))
            .await
        {
            tracing::warn!(error = %e, "merge lease not released; it expires by itself");
        }
        result
    }

    /// The stream's shard list; when it cannot be read, only the shards with state count
    /// (windows may close later than they could, never too early... unless a shard without
    /// state still has readings: logged).
    async fn lineage(&self) -> Option<Vec<ShardInfo>> {
        let stream = self.stream?;
        match stream.shards().await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "shard list unreadable: only shards with state count");
                None
            }
        }
    }

    /// What each shard's consumer has read (caught up now, its last record's and last accepted
    /// reading's arrivals): none when there is no stream to ask, or when its shard
    /// list could not be read (a shard nobody knows of could still deliver: no shard is taken
    /// as idle then).
    async fn activity(
        &self,
        metas: &[ShardMeta],
        lineage: Option<&[ShardInfo]>,
    ) -> Vec<ShardActivity> {
        let (Some(stream), Some(lineage)) = (self.stream, lineage) else {
            return Vec::new();
        };
        let mut ids: BTreeSet<&str> = metas.iter().map(|m| m.shard_id.as_str()).collect();
        ids.extend(lineage.iter().filter(|s| !s.closed).map(|s| s.id.as_str()));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let meta = metas.iter().find(|m| m.shard_id == id);
            let caught_up = match stream
                .caught_up(id, meta.and_then(|m| m.applied_through.as_ref()))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(shard = %id, error = %e, "cannot tell whether the shard is caught up: it counts");
                    false
                }
            };
            out.push(ShardActivity {
                shard_id: id.to_owned(),
                caught_up,
                last_arrival_ms: meta.and_then(|m| m.last_arrival_ms),
                last_accepted_ms: meta.and_then(|m| m.last_accepted_ms),
            });
        }
        out
    }

    fn provisional_lengths(&self) -> BTreeSet<WindowLength> {
        match self.provisional {
            Provisional::All => self.cfg.windows().iter().copied().collect(),
            Provisional::Shortest => BTreeSet::from([self.cfg.pane()]),
            Provisional::None => BTreeSet::new(),
        }
    }

    async fn run_leased(&self, closing: Closing, now: i64) -> PortResult<MergeReport> {
        let mut report = MergeReport::default();
        let pane_len = self.cfg.pane();
        // Each step's span lives from its first line to its last (dropped there), its calls
        // instrumented with it.
        let marks = info_span!("merge.marks");
        let state = self.state.merge_state().instrument(marks.clone()).await?;
        let mut metas = self.state.shard_metas().instrument(marks.clone()).await?;
        let mut caught_up_since = state.caught_up_since.clone();
        let mut shards_counted = 0;
        let target = match closing {
            // The frontier is bounded by arrivals: a reading stamped ahead of it lies in a pane
            // its shard's meta lists, so those count too.
            Closing::All => metas
                .iter()
                .flat_map(|m| {
                    m.max_event_ms
                        .into_iter()
                        .chain(m.deltas.iter().map(|d| d.pane_start_ms))
                })
                .max()
                .map(|t| self.cfg.longest().window_of(t).end_ms()),
            Closing::Watermark => {
                let lineage = self.lineage().instrument(marks.clone()).await;
                let activity = self
                    .activity(&metas, lineage.as_deref())
                    .instrument(marks.clone())
                    .await;
                let (idle, since) = idle_shards(
                    &activity,
                    &state.caught_up_since,
                    now,
                    self.cfg.idle_timeout_ms,
                );
                caught_up_since = since;
                report.shards_idle = idle.len();
                shards_counted = activity.len();
                let w = global_watermark(
                    &metas,
                    lineage.as_deref(),
                    &idle,
                    self.cfg.allowed_lateness_ms,
                );
                report.watermark_ms = w;
                w
            }
        };
        let before = state.marks.closed_ms;
        let mut closed = match (before, target) {
            (Some(b), Some(t)) => Some(b.max(t)),
            (b, t) => b.or(t),
        };
        let compacted = state.marks.compacted_ms;
        let from = compacted.map_or(i64::MIN, |c| pane_len.window_of(c).start_ms);
        if closing == Closing::Watermark
            && closed > before
            && let Some(c) = closed
        {
            // At most `merge_max_panes` panes a run: a merge behind by days catches up over
            // several runs, each within the function's time limit.
            let due = self
                .state
                .delta_panes(from)
                .instrument(marks.clone())
                .await?;
            let (bounded, short) = bounded_close(c, &due, pane_len, self.cfg.merge_max_panes);
            if short {
                tracing::warn!(
                    watermark = %format_rfc3339_ms(c),
                    closing_to = %format_rfc3339_ms(bounded),
                    max_panes = self.cfg.merge_max_panes,
                    "merge behind: catching up in bounded steps"
                );
                closed = Some(bounded).max(before);
                report.catching_up = true;
            }
        }
        let catching_up = report.catching_up;
        report.closed_ms = closed;
        if closed > before
            && let Some(c) = closed
        {
            // Before any pane is read: from now on no commit lands in what closes.
            self.state
                .advance_closed_mark(c)
                .instrument(marks.clone())
                .await?;
            metas = self.state.shard_metas().instrument(marks.clone()).await?;
        }
        drop(marks);
        let closed_ms = closed.unwrap_or(i64::MIN);
        let reads = info_span!("merge.reads", deltas = tracing::field::Empty);
        let panes = self
            .state
            .delta_panes(from)
            .instrument(reads.clone())
            .await?;

        // Every listed delta of every pane not yet compacted, in delivery order.
        let mut by_pane: BTreeMap<i64, Vec<Delta>> = BTreeMap::new();
        let mut seen = Vec::new();
        let mut compacted_now = BTreeSet::new();
        for &p in &panes {
            let mut keys: Vec<DeltaKey> = metas.iter().flat_map(|m| m.delta_keys(p)).collect();
            keys.sort();
            if keys.is_empty() {
                continue;
            }
            let consistent = pane_len.window_of(p).end_ms() <= closed_ms;
            if catching_up && !consistent {
                // Open panes are for provisional results, which a run catching up skips.
                continue;
            }
            let deltas = self
                .state
                .deltas(&keys, consistent)
                .instrument(reads.clone())
                .await?;
            if deltas.len() != keys.len() {
                tracing::warn!(pane = %format_rfc3339_ms(p), listed = keys.len(), read = deltas.len(), "listed deltas missing (expired?)");
            }
            report.deltas_read += deltas.len();
            if consistent {
                report.panes_compacted += 1;
                compacted_now.insert(p);
            }
            seen.extend(deltas.iter().map(SeenDelta::of));
            by_pane.insert(p, deltas);
        }

        // The prefixes of the longer windows these panes touch, and of those that close now.
        let lo = by_pane
            .keys()
            .next()
            .copied()
            .unwrap_or(i64::MAX)
            .min(compacted.unwrap_or(i64::MAX));
        let hi = by_pane
            .keys()
            .next_back()
            .copied()
            .unwrap_or(i64::MIN)
            .max(closed_ms.saturating_sub(1));
        let mut prefixes = BTreeMap::new();
        if lo <= hi {
            for &len in &self.cfg.windows()[1..] {
                let (from, to) = (len.window_of(lo).start_ms, len.window_of(hi).start_ms);
                for r in self
                    .state
                    .rollups(len, from, to)
                    .instrument(reads.clone())
                    .await?
                {
                    prefixes.insert(r.window, r);
                }
            }
        }
        reads.record("deltas", report.deltas_read);
        drop(reads);

        // At most a pane: the deltas read reach back a pane at a boundary (`silence`).
        let silence_after_ms = self.cfg.silence_after_ms.min(pane_len.ms());
        let judged = self.health.is_some()
            && silence_after_ms > 0
            && closing == Closing::Watermark
            && !catching_up;
        let heard = if judged {
            silence::heard(&by_pane, closed_ms.saturating_sub(silence_after_ms))
        } else {
            BTreeSet::new()
        };
        let provisional = if catching_up {
            BTreeSet::new()
        } else {
            self.provisional_lengths()
        };
        let compact = info_span!(
            "merge.compact",
            closed = tracing::field::Empty,
            provisional = tracing::field::Empty
        );
        let out = compact.in_scope(|| {
            run(
                &Levels::new(self.cfg.windows()),
                RunInput {
                    compacted_ms: compacted,
                    closed_ms,
                    panes: by_pane,
                    prefixes,
                    provisional: provisional.clone(),
                    min_interval_ms: self.cfg.min_reading_interval_ms,
                    digest_size: self.cfg.digest_size,
                },
            )
        });
        compact.record("closed", out.finals.len());
        compact.record("provisional", out.provisional.len());
        drop(compact);
        report.compaction = out.counts;

        // Webster on the latest control window closed in this run.
        let mut retimed_window = None;
        let mut listed = None;
        let mut plans = BTreeMap::new();
        let latest = out.finals.iter().rev().find(|(w, _)| w.length == pane_len);
        if let Some((w, r)) = latest.filter(|_| !catching_up) {
            let round = self
                .retime(r, judged.then_some(&heard))
                .instrument(info_span!(
                    "merge.retime",
                    intersections = r.intersections.len()
                ))
                .await?;
            listed = Some(round.listed);
            plans = round.plans;
            report.retimed = round.retimed;
            report.retiming_conflicts = round.conflicts;
            report.retiming_kept = round.kept;
            report.retiming_steady = round.steady;
            report.retiming_limited = round.limited;
            report.demand = round.demand;
            report.retiming_blind = round.blind;
            retimed_window = Some(*w);
        }

        let mut results = Vec::with_capacity(out.finals.len() + out.provisional.len());
        for (w, r) in &out.finals {
            report.closed.push(*w);
            results.push(r.finish(true, self.cfg.top_k));
        }
        for r in out.provisional.values() {
            report.provisional += 1;
            results.push(r.finish(false, self.cfg.top_k));
        }
        let write = info_span!("merge.write", results = results.len());
        if !results.is_empty() {
            self.results
                .put_results(&results)
                .instrument(write.clone())
                .await?;
        }
        // The operator's map: every intersection over the newest window of the shortest
        // length built in this run.
        if let Some((_, r, final_)) = out.newest(pane_len) {
            self.results
                .put_network(&r.network(final_))
                .instrument(write.clone())
                .await?;
        }
        if !out.prefixes.is_empty() {
            self.state
                .put_rollups(&out.prefixes, now)
                .instrument(write.clone())
                .await?;
        }
        drop(write);
        report.events_published = events::publish(self.events, &results, &report, pane_len, plans)
            .instrument(info_span!("merge.events"))
            .await?;
        let progressing = info_span!("merge.progress");
        let entered = progressing.enter();
        let finals: BTreeSet<WindowKey> = out.finals.keys().copied().collect();
        let (latency, latencies) = observe(
            &state.latency,
            &RunSeen {
                deltas: &seen,
                compacted: &compacted_now,
                finals: &finals,
                lengths: self.cfg.windows(),
                provisional: &provisional,
                retimed: retimed_window,
                now_ms: self.clock.now_ms(),
            },
        );
        report.latencies = latencies;
        let mut progress = state.clone();
        progress.latency = latency;
        progress.marks.closed_ms = closed;
        progress.marks.compacted_ms = closed.or(state.marks.compacted_ms);
        progress.caught_up_since = caught_up_since;
        progress.compaction.add(&out.counts);
        drop(entered);
        if progress != state {
            self.state
                .put_merge_progress(&progress)
                .instrument(progressing.clone())
                .await?;
        }
        if let Some(c) = closed {
            self.state
                .forget(pane_len.window_of(c).start_ms, c)
                .instrument(progressing.clone())
                .await?;
        }
        drop(progressing);
        if let Some(h) = self.health.as_ref().filter(|_| !catching_up) {
            let health = info_span!("merge.health");
            let facts = silence::RunFacts {
                closing,
                before_ms: before,
                closed_ms: closed,
                pane_ms: pane_len.ms(),
                all_idle: shards_counted > 0 && report.shards_idle == shards_counted,
                heard: &heard,
                now_ms: now,
                listed: listed.as_deref(),
            };
            match silence::run(h, self.registry, silence_after_ms, &facts)
                .instrument(health.clone())
                .await
            {
                Ok(s) => report.silence = s,
                Err(e) => {
                    tracing::warn!(error = %e, "sensor-silent alarms not judged; the next run judges again");
                }
            }
            let all = |_: &traffic_ports::AlarmRecord| true;
            match publish_due(h.lamps, h.publisher, now, now, DUE_PER_RUN, &all)
                .instrument(health.clone())
                .await
            {
                Ok(done) => report.due_published = done.published,
                Err(e) => {
                    tracing::warn!(error = %e, "alarms due not all published; the next run publishes them");
                }
            }
        }
        Ok(report)
    }

    /// Retimes every intersection with readings in `window` by Webster's method, as its
    /// control mode says; returns what it did. `heard`: the lights detector health heard at
    /// the closed mark, when it judged (`None`: every phase counts as heard).
    async fn retime(
        &self,
        window: &Rollup,
        heard: Option<&BTreeSet<(traffic_core::IntersectionId, traffic_core::LightIndex)>>,
    ) -> PortResult<RetimingRound> {
        let seconds = window.window.length.seconds();
        let from = window.window.to_string();
        let yellow = self.cfg.webster.yellow_s;
        let mut round = RetimingRound::default();
        let mut updates = Vec::new();
        let mut limited = Vec::new();
        let mut proposals = Vec::new();
        let listed = self.registry.intersections_versioned().await?;
        for (x, version) in &listed {
            let Some(t) = window.intersections.get(&x.id) else {
                continue;
            };
            // Done by a run that crashed before recording its progress.
            match x.control.mode {
                ControlMode::Adaptive if x.retimed_from.as_deref() == Some(from.as_str()) => {
                    round.retimed += 1;
                    round
                        .plans
                        .insert(x.id.clone(), plan_of(x, yellow, &self.cfg.plan));
                    continue;
                }
                ControlMode::Manual
                    if x.proposal.as_ref().is_some_and(|p| p.from == window.window) =>
                {
                    round.kept += 1;
                    continue;
                }
                _ => {}
            }
            let blind = heard.map_or_else(Vec::new, |h| {
                blind_phases(x, |l| h.contains(&(x.id.clone(), l)))
            });
            if !blind.is_empty() && blind.len() == x.phases.len() {
                round.blind += 1;
                continue;
            }
            let (timing, demand) = retime(
                x,
                &t.vehicles,
                seconds,
                &self.cfg.webster,
                &self.cfg.demand,
                &blind,
            );
            round.demand.push(IntersectionDemand {
                intersection_id: x.id.clone(),
                window: window.window,
                lights: demand,
            });
            let proposed = apply(&x.phases, &timing);
            match decide(
                x,
                proposed,
                self.cfg.webster.yellow_s,
                self.cfg.webster.min_change_s,
            ) {
                Decision::Apply { phases, limited: l } => {
                    if l {
                        limited.push(x.id.clone());
                    }
                    // The plan of the timings written, within the intersection's limits.
                    let plan = plan(&phases, yellow, x.control.limits.as_ref(), &self.cfg.plan);
                    updates.push(TimingUpdate {
                        id: x.id.clone(),
                        phases,
                        plan: Some(plan),
                        expected_version: version.clone(),
                    });
                }
                Decision::Keep => round.kept += 1,
                Decision::Steady => round.steady += 1,
                Decision::Propose(phases) => {
                    round.kept += 1;
                    proposals.push(ProposalUpdate {
                        id: x.id.clone(),
                        proposal: Proposal::of(x, &t.vehicles, window.window, &timing, phases),
                        expected_version: version.clone(),
                    });
                }
            }
        }
        let skipped = self.registry.set_timings(&updates, &window.window).await?;
        if !skipped.is_empty() {
            tracing::info!(
                skipped = skipped.len(),
                "retiming skipped for intersections changed since they were read (or whose write kept failing: the store logs which)"
            );
        }
        round.retimed += updates.len() - skipped.len();
        for u in updates {
            if let Some(p) = u.plan.filter(|_| !skipped.contains(&u.id)) {
                round.plans.insert(u.id, p);
            }
        }
        round.conflicts = skipped.len();
        round.limited = limited.iter().filter(|id| !skipped.contains(id)).count();
        // Few (the manual ones): one conditional write each, like a retiming's.
        let unrecorded = self.registry.set_proposals(&proposals).await?;
        if !unrecorded.is_empty() {
            tracing::info!(
                skipped = unrecorded.len(),
                "proposals not recorded for intersections changed since they were read"
            );
        }
        round.listed = listed.into_iter().map(|(x, _)| x).collect();
        Ok(round)
    }
}

/// What one retiming round did.
#[derive(Debug, Default)]
struct RetimingRound {
    /// The intersections as the round read them (detector health judges over the same list).
    listed: Vec<traffic_core::city::Intersection>,
    /// The plans stored with the timings of the intersections retimed from the window.
    plans: BTreeMap<IntersectionId, Plan>,
    retimed: usize,
    steady: usize,
    conflicts: usize,
    kept: usize,
    limited: usize,
    demand: Vec<IntersectionDemand>,
    blind: usize,
}
