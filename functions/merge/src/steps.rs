//! A merge run under the lease, as named steps in order, each its span (see the crate's
//! documentation): the marks, the reads, the compaction, the retiming ([`crate::retime`]), the
//! writes, the events, the progress and detector health.

use crate::{CloseUpTo, DUE_PER_RUN, MergeHandler, MergeReport, Provisional, events, silence};
use std::collections::{BTreeMap, BTreeSet};
use tracing::{Instrument, info_span};
use traffic_core::ShardId;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::latency::{RunSeen, SeenDelta, observe};
use traffic_core::lineage::{ShardActivity, ShardInfo, global_watermark, idle_shards};
use traffic_core::merge_run::{Levels, RunInput, RunOutput, bounded_close, run};
use traffic_core::outputs::{WindowPlans, WindowTables};
use traffic_core::pane::{MergeState, ShardMeta};
use traffic_core::query::WindowResult;
use traffic_core::rollup::Rollup;
use traffic_core::time::format_rfc3339_ms;
use traffic_core::window::{WindowKey, WindowLength};
use traffic_functions::publication::publish_due;
use traffic_ports::PortResult;

/// Where the marks step (1) leaves the run.
struct Marks {
    /// The merge's state as the run read it.
    state: MergeState,
    /// The shards' metadata (read again when the closed mark moved).
    metas: Vec<ShardMeta>,
    /// Since when each shard found current has been so, after this run.
    caught_up_since: BTreeMap<ShardId, i64>,
    /// The shards the watermark weighed.
    shards_counted: usize,
    /// The closed mark before the run.
    before: Option<i64>,
    /// The closed mark after the run.
    closed: Option<i64>,
    /// The compacted mark before the run.
    compacted: Option<i64>,
    /// The start of the first pane not yet compacted.
    from: i64,
}

/// What the reads step (2) gathered.
struct Reads {
    /// Every listed delta of every pane read, by pane, in delivery order.
    by_pane: BTreeMap<i64, Vec<Delta>>,
    /// The deltas read, for the latency measurement.
    seen: Vec<SeenDelta>,
    /// The panes compacted in this run.
    compacted_now: BTreeSet<i64>,
    /// The prefixes of the longer windows these panes touch, and of those that close now.
    prefixes: BTreeMap<WindowKey, Rollup>,
}

impl MergeHandler {
    /// The stream's shard list; when it cannot be read, only the shards with state count
    /// (windows may close later than they could, never too early... unless a shard without
    /// state still has readings: logged).
    async fn lineage(&self) -> Option<Vec<ShardInfo>> {
        let stream = self.stream.as_deref()?;
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
        let (Some(stream), Some(lineage)) = (self.stream.as_deref(), lineage) else {
            return Vec::new();
        };
        let mut ids: BTreeSet<&ShardId> = metas.iter().map(|m| &m.shard_id).collect();
        ids.extend(lineage.iter().filter(|s| !s.closed).map(|s| &s.id));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let meta = metas.iter().find(|m| m.shard_id == *id);
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
                shard_id: id.clone(),
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

    pub(crate) async fn run_leased(&self, closing: CloseUpTo, now: i64) -> PortResult<MergeReport> {
        let mut report = MergeReport::default();
        let pane_len = self.cfg.pane();
        // Each step's span lives from its first line to its last (dropped there), its calls
        // instrumented with it.
        let marks = self.marks(closing, now, &mut report).await?;
        let catching_up = report.catching_up;
        let closed_ms = marks.closed.unwrap_or(i64::MIN);
        let Reads {
            by_pane,
            seen,
            compacted_now,
            prefixes,
        } = self
            .reads(&marks, closed_ms, catching_up, &mut report)
            .await?;

        // At most a pane: the deltas read reach back a pane at a boundary (`silence`).
        let silence_after_ms = self.cfg.silence_after_ms.min(pane_len.ms());
        let judged = silence_after_ms > 0 && closing == CloseUpTo::Watermark && !catching_up;
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
        let out = self.compact(&marks, closed_ms, by_pane, prefixes, &provisional);
        report.compaction = out.counts;

        let retimed = self
            .retime_latest(
                &out,
                pane_len,
                catching_up,
                judged.then_some(&heard),
                &mut report,
            )
            .await?;

        // The plans the round left in force, for history (before the progress step, as the
        // results: a redone round finds the same plans and writes the same bytes).
        if let (Some(w), Some(listed)) = (retimed.window, retimed.listed.as_deref()) {
            let plans = WindowPlans::of(
                w,
                listed,
                &retimed.plans,
                self.cfg.webster.yellow_s,
                &self.cfg.plan,
            );
            self.archive
                .put_plans(&plans)
                .instrument(info_span!("merge.archive_plans", rows = plans.rows.len()))
                .await?;
        }
        let results = self.write(&out, now, &mut report).await?;
        report.events_published = events::publish(
            self.events.as_ref(),
            &results,
            &report,
            pane_len,
            retimed.plans,
        )
        .instrument(info_span!("merge.events"))
        .await?;
        self.progress(
            &marks,
            &RunSeen {
                deltas: &seen,
                compacted: &compacted_now,
                finals: &out.finals.keys().copied().collect(),
                lengths: self.cfg.windows(),
                provisional: &provisional,
                retimed: retimed.window,
                now_ms: self.clock.now_ms(),
            },
            &out,
            &mut report,
        )
        .await?;
        if !catching_up {
            let facts = silence::RunFacts {
                closing,
                before_ms: marks.before,
                closed_ms: marks.closed,
                pane_ms: pane_len.ms(),
                all_idle: marks.shards_counted > 0 && report.shards_idle == marks.shards_counted,
                heard: &heard,
                now_ms: now,
                listed: retimed.listed.as_deref(),
            };
            self.health(silence_after_ms, &facts, &mut report).await;
        }
        Ok(report)
    }

    /// Step 1, `merge.marks`: the closed mark this run moves to (the global watermark, or every
    /// window with data), bounded to `merge_max_panes` panes, and written before any pane is
    /// read.
    async fn marks(
        &self,
        closing: CloseUpTo,
        now: i64,
        report: &mut MergeReport,
    ) -> PortResult<Marks> {
        let pane_len = self.cfg.pane();
        let marks = info_span!("merge.marks");
        let state = self.state.merge_state().instrument(marks.clone()).await?;
        let mut metas = self.state.shard_metas().instrument(marks.clone()).await?;
        let mut caught_up_since = state.caught_up_since.clone();
        let mut shards_counted = 0;
        let target = match closing {
            // The frontier is bounded by arrivals: a reading stamped ahead of it lies in a pane
            // its shard's meta lists, so those count too.
            CloseUpTo::All => metas
                .iter()
                .flat_map(|m| {
                    m.max_event_ms
                        .into_iter()
                        .chain(m.deltas.iter().map(|d| d.pane_start_ms))
                })
                .max()
                .map(|t| self.cfg.longest().window_of(t).end_ms()),
            CloseUpTo::Watermark => {
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
        if closing == CloseUpTo::Watermark
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
        Ok(Marks {
            state,
            metas,
            caught_up_since,
            shards_counted,
            before,
            closed,
            compacted,
            from,
        })
    }

    /// Step 2a, `merge.reads`: the listed deltas of the panes not yet compacted (only the
    /// closed ones when `catching_up`), and the prefixes of the longer windows they touch.
    async fn reads(
        &self,
        marks: &Marks,
        closed_ms: i64,
        catching_up: bool,
        report: &mut MergeReport,
    ) -> PortResult<Reads> {
        let pane_len = self.cfg.pane();
        let reads = info_span!("merge.reads", deltas = tracing::field::Empty);
        let panes = self
            .state
            .delta_panes(marks.from)
            .instrument(reads.clone())
            .await?;

        // Every listed delta of every pane not yet compacted, in delivery order.
        let mut by_pane: BTreeMap<i64, Vec<Delta>> = BTreeMap::new();
        let mut seen = Vec::new();
        let mut compacted_now = BTreeSet::new();
        for &p in &panes {
            let mut keys: Vec<DeltaKey> =
                marks.metas.iter().flat_map(|m| m.delta_keys(p)).collect();
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
            .min(marks.compacted.unwrap_or(i64::MAX));
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
        Ok(Reads {
            by_pane,
            seen,
            compacted_now,
            prefixes,
        })
    }

    /// Step 2b, `merge.compact`: `traffic_core::merge_run` over what was read.
    fn compact(
        &self,
        marks: &Marks,
        closed_ms: i64,
        by_pane: BTreeMap<i64, Vec<Delta>>,
        prefixes: BTreeMap<WindowKey, Rollup>,
        provisional: &BTreeSet<WindowLength>,
    ) -> RunOutput {
        let compact = info_span!(
            "merge.compact",
            closed = tracing::field::Empty,
            provisional = tracing::field::Empty
        );
        let out = compact.in_scope(|| {
            run(
                &Levels::new(self.cfg.windows()),
                RunInput {
                    compacted_ms: marks.compacted,
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
        out
    }

    /// Step 4a, `merge.write`: the results (final, then provisional), the network state over
    /// the newest window of the shortest length, each closed window's outputs to the archive
    /// (and, for a control window, what operators and alarms did in it), and the rollups;
    /// returns the results.
    async fn write(
        &self,
        out: &RunOutput,
        now: i64,
        report: &mut MergeReport,
    ) -> PortResult<Vec<WindowResult>> {
        let pane_len = self.cfg.pane();
        let mut results = Vec::with_capacity(out.finals.len() + out.provisional.len());
        let mut archived = Vec::with_capacity(out.finals.len());
        for (w, r) in &out.finals {
            report.closed.push(*w);
            let result = r.finish(true, self.cfg.top_k);
            archived.push(WindowTables::of(r, &result));
            results.push(result);
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
        // Each closed window's outputs, for history: before the progress step, so that a run
        // that dies after this point writes them again, the same, next time.
        for tables in &archived {
            self.archive
                .put_window(tables)
                .instrument(write.clone())
                .await?;
            if tables.window.length == pane_len {
                self.archive_changes(tables.window).await?;
            }
        }
        if !out.prefixes.is_empty() {
            self.state
                .put_rollups(&out.prefixes, now)
                .instrument(write.clone())
                .await?;
        }
        drop(write);
        Ok(results)
    }

    /// Step 4c, `merge.progress`: the latencies observed (`seen`), the marks and counts moved,
    /// and what is no longer needed dropped.
    async fn progress(
        &self,
        marks: &Marks,
        seen: &RunSeen<'_>,
        out: &RunOutput,
        report: &mut MergeReport,
    ) -> PortResult<()> {
        let pane_len = self.cfg.pane();
        let (state, closed) = (&marks.state, marks.closed);
        let progressing = info_span!("merge.progress");
        let entered = progressing.enter();
        let (latency, latencies) = observe(&state.latency, seen);
        report.latencies = latencies;
        let mut progress = state.clone();
        progress.latency = latency;
        progress.marks.closed_ms = closed;
        progress.marks.compacted_ms = closed.or(state.marks.compacted_ms);
        progress.caught_up_since = marks.caught_up_since.clone();
        progress.compaction.add(&out.counts);
        drop(entered);
        if progress != *state {
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
        Ok(())
    }

    /// Steps 5 and 6, `merge.health`: sensor-silent alarms judged and the alarms due published;
    /// a failure of either is logged and left for the next run.
    async fn health(
        &self,
        silence_after_ms: i64,
        facts: &silence::RunFacts<'_>,
        report: &mut MergeReport,
    ) {
        let now = facts.now_ms;
        let h = &self.silence_health();
        let health = info_span!("merge.health");
        match silence::run(h, self.registry.as_ref(), silence_after_ms, facts)
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
}
