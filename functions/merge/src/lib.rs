//! The `merge` function: partial state of all shards → results per window → Webster timings.
//!
//! Each run (on an EventBridge schedule in AWS, on a timer locally):
//!
//! 1. the global watermark is the smallest watermark of the shards still being read (or +∞
//!    when closing everything): with the stream's shard list, a shard closed by a reshard
//!    and read to its end no longer counts (`traffic_core::lineage`);
//! 2. every window (of every configured length) that has panes is built from them, reading
//!    each pane once: windows the watermark has closed get their final result once, open
//!    windows a provisional one (as `TRAFFIC_PROVISIONAL` says);
//! 3. if a control window (the shortest length) was closed in this run, the latest one gives
//!    every intersection that had readings in it new Webster timings, written to the registry
//!    before the results, so a crash in between recomputes them rather than losing them;
//! 4. results are written, and the network state (every intersection's speed over the newest
//!    window of the shortest length, for the operator's map); panes whose longest window is
//!    final are deleted.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use traffic_core::EngineConfig;
use traffic_core::lineage::{finished_shards, global_watermark};
use traffic_core::query::{WindowAccumulator, WindowResult};
use traffic_core::time::format_rfc3339_ms;
use traffic_core::webster::{apply, retime};
use traffic_core::window::WindowKey;
use traffic_ports::{PortResult, Ports, Registry, ResultStore, StateStore, StreamShards};

/// `merge` built from the ports it needs, owning them.
pub struct MergeHandler {
    cfg: EngineConfig,
    provisional: Provisional,
    state: Arc<dyn StateStore>,
    registry: Arc<dyn Registry>,
    results: Arc<dyn ResultStore>,
    stream: Option<Arc<dyn StreamShards>>,
}

impl MergeHandler {
    /// `merge` over `ports` (state, registry, results, the stream's shards if any).
    pub fn from_ports(cfg: EngineConfig, provisional: Provisional, ports: &Ports) -> Self {
        Self {
            cfg,
            provisional,
            state: ports.state.clone(),
            registry: ports.registry.clone(),
            results: ports.results.clone(),
            stream: ports.stream.clone(),
        }
    }

    /// The handler borrowing what this one owns.
    pub fn merge(&self) -> Merge<'_> {
        Merge {
            cfg: &self.cfg,
            provisional: self.provisional,
            state: self.state.as_ref(),
            registry: self.registry.as_ref(),
            results: self.results.as_ref(),
            stream: self.stream.as_deref(),
        }
    }

    /// Runs the merge once.
    pub async fn run(&self, closing: Closing) -> PortResult<MergeReport> {
        self.merge().run(closing).await
    }
}

pub use traffic_functions::Provisional;

/// How far windows close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Up to the global watermark (the scheduled runs).
    Watermark,
    /// Everything (end of a replay: no more data will come).
    All,
}

/// What `merge` needs; built once per process.
pub struct Merge<'a> {
    /// Engine parameters.
    pub cfg: &'a EngineConfig,
    /// Which open windows get provisional results.
    pub provisional: Provisional,
    /// Partial state.
    pub state: &'a dyn StateStore,
    /// Intersections and timings.
    pub registry: &'a dyn Registry,
    /// Results.
    pub results: &'a dyn ResultStore,
    /// The stream's shards, where the stream can reshard (Kinesis); `None` where it cannot
    /// (the local in-process stream).
    pub stream: Option<&'a dyn StreamShards>,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// The global watermark used, epoch ms.
    pub watermark_ms: Option<i64>,
    /// Shards left out of the watermark: closed by a reshard and read to their end.
    pub shards_finished: usize,
    /// Windows given their final result in this run.
    pub closed: Vec<WindowKey>,
    /// Windows given a provisional result.
    pub provisional: usize,
    /// Panes read.
    pub panes_read: usize,
    /// Intersections retimed.
    pub retimed: usize,
    /// Panes deleted (all their windows final).
    pub panes_deleted: usize,
}

impl Merge<'_> {
    /// Handles a scheduled event (its content is not used: the state says what to do).
    pub async fn handle(&self, _event: &EventBridgeEvent) -> PortResult<MergeReport> {
        let report = self.run(Closing::Watermark).await?;
        tracing::info!(
            watermark = ?report.watermark_ms.map(format_rfc3339_ms),
            shards_finished = report.shards_finished,
            closed = report.closed.len(),
            provisional = report.provisional,
            panes_read = report.panes_read,
            retimed = report.retimed,
            panes_deleted = report.panes_deleted,
            "merge run"
        );
        Ok(report)
    }

    /// The stream's shard list. When it cannot be read, every shard counts (as without a
    /// lineage): windows may close later than they could, never too early.
    async fn lineage(&self) -> Option<Vec<traffic_core::lineage::ShardInfo>> {
        let stream = self.stream?;
        match stream.shards().await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "shard list unreadable: every shard counts");
                None
            }
        }
    }

    /// One merge run.
    pub async fn run(&self, closing: Closing) -> PortResult<MergeReport> {
        let mut report = MergeReport::default();
        let metas = self.state.shard_metas().await?;
        let watermark = match closing {
            Closing::All => Some(i64::MAX),
            // Shards that have accepted nothing yet have no watermark and hold nothing back.
            Closing::Watermark => {
                let finished = self
                    .lineage()
                    .await
                    .map(|l| finished_shards(&metas, &l))
                    .unwrap_or_default();
                report.shards_finished = finished.len();
                global_watermark(&metas, &finished, self.cfg.allowed_lateness_ms)
            }
        };
        report.watermark_ms = watermark.filter(|w| *w != i64::MAX);
        let panes = self.state.pane_starts().await?;
        if panes.is_empty() {
            return Ok(report);
        }
        let gw = watermark.unwrap_or(i64::MIN);
        // The windows already final, as far back as the oldest pane reaches.
        let oldest = panes.iter().copied().min().unwrap_or(i64::MAX);
        let mut done: BTreeSet<WindowKey> = BTreeSet::new();
        for &len in self.cfg.windows() {
            let from = len.window_of(oldest).start_ms;
            done.extend(self.results.closed_windows_from(len, from).await?);
        }
        let pane_len = self.cfg.pane();

        // The windows to build, and which of them close now.
        let mut accs: BTreeMap<WindowKey, WindowAccumulator> = BTreeMap::new();
        for &p in &panes {
            for &len in self.cfg.windows() {
                let w = len.window_of(p);
                let closed = w.closed_by(gw);
                let wanted = if closed {
                    !done.contains(&w)
                } else {
                    match self.provisional {
                        Provisional::All => true,
                        Provisional::Shortest => len == pane_len,
                        Provisional::None => false,
                    }
                };
                if wanted {
                    accs.entry(w).or_insert_with(|| WindowAccumulator::new(w));
                }
            }
        }
        // Read each needed pane once and add it to every window that wants it.
        for &p in &panes {
            let pane = pane_len.window_of(p);
            let targets: Vec<WindowKey> = accs
                .keys()
                .filter(|w| w.contains(pane.start_ms))
                .copied()
                .collect();
            if targets.is_empty() {
                continue;
            }
            let items = self.state.pane_items(p).await?;
            report.panes_read += 1;
            for w in targets {
                if let Some(acc) = accs.get_mut(&w) {
                    for item in &items {
                        acc.add(item);
                    }
                }
            }
        }

        // Webster on the latest control window closed in this run.
        let latest_control = accs
            .keys()
            .filter(|w| w.length == pane_len && w.closed_by(gw))
            .max()
            .copied();
        if let Some(w) = latest_control.and_then(|w| accs.get(&w)) {
            report.retimed = self.retime(w).await?;
        }

        let mut results: Vec<WindowResult> = Vec::with_capacity(accs.len());
        for (w, acc) in &accs {
            let closed = w.closed_by(gw);
            if closed {
                report.closed.push(*w);
            } else {
                report.provisional += 1;
            }
            results.push(acc.finish(closed, self.cfg.top_k));
        }
        self.results.put_results(&results).await?;

        // The operator's map: every intersection over the newest window of the shortest
        // length built in this run (windows are built in order, so it is never older than
        // the one stored before).
        if let Some((w, acc)) = accs.iter().rev().find(|(w, _)| w.length == pane_len) {
            self.results
                .put_network(&acc.network(w.closed_by(gw)))
                .await?;
        }

        // Panes are no longer needed once the longest window holding them is final.
        let longest = self.cfg.longest();
        let keep_from = panes
            .iter()
            .copied()
            .find(|&p| !longest.window_of(p).closed_by(gw));
        let cutoff = keep_from.unwrap_or(i64::MAX);
        let deletable = panes.iter().filter(|&&p| p < cutoff).count();
        if deletable > 0 {
            self.state.delete_panes_before(cutoff).await?;
            report.panes_deleted = deletable;
        }
        Ok(report)
    }

    /// Retimes every intersection with readings in `window` by Webster's method.
    async fn retime(&self, window: &WindowAccumulator) -> PortResult<usize> {
        let totals: HashMap<_, _> = window.totals().collect();
        let seconds = window.key().length.seconds();
        let mut updates = Vec::new();
        for x in self.registry.intersections().await? {
            let Some(t) = totals.get(&x.id) else { continue };
            let timing = retime(&x, &t.vehicles, seconds, &self.cfg.webster);
            updates.push((x.id.clone(), apply(&x.phases, &timing)));
        }
        self.registry.set_timings(&updates, &window.key()).await?;
        Ok(updates.len())
    }
}
