//! What a merge run publishes for subscribers: one "Window closed" event per window given its
//! final result in the run, and a "Timings changed" event per retiming round, with the plans
//! of the intersections it retimed (in parts of at most
//! `traffic_core::events::PLANS_PER_EVENT` plans)
//! (`traffic_core::events`, `docs/contracts.md`).
//!
//! When: after the run has stored its results, timings and rollups, and before it records its
//! progress. If publishing fails, the run fails there, exactly as if it had crashed: its
//! progress (the compacted mark) is not moved, so the next run closes the same windows again,
//! rewrites the same results and publishes their events again. No outbox is needed, and an
//! event is never lost; the cost is at-least-once delivery (a subscriber deduplicates on the
//! detail type and `window`), and, while the bus is unavailable, each run redoes the work of
//! the windows not yet published (the merge's failure alarm fires after two such runs).

use crate::MergeReport;
use std::collections::BTreeMap;
use traffic_core::IntersectionId;
use traffic_core::events::{ResultEvent, TimingsChanged, WindowClosed};
use traffic_core::plan::Plan;
use traffic_core::query::WindowResult;
use traffic_core::window::WindowLength;
use traffic_ports::{PortResult, ResultEvents};

/// The events of a run: every final result of `results` (in their order), then the retiming
/// round, if the run retimed from a control window (the latest closed window of `control`,
/// the shortest length, as the merge retimes), with the `plans` of the intersections it
/// retimed, in as many parts as they need ([`TimingsChanged::round`]).
pub fn run_events(
    results: &[WindowResult],
    report: &MergeReport,
    control: WindowLength,
    plans: BTreeMap<IntersectionId, Plan>,
) -> Vec<ResultEvent> {
    let mut out: Vec<ResultEvent> = results
        .iter()
        .filter(|r| r.closed)
        .map(|r| ResultEvent::WindowClosed(WindowClosed::of(r)))
        .collect();
    if let Some(w) = report.closed.iter().rev().find(|w| w.length == control) {
        out.extend(
            TimingsChanged::round(*w, report.retimed, report.retiming_conflicts, plans)
                .into_iter()
                .map(ResultEvent::TimingsChanged),
        );
    }
    out
}

/// Publishes the run's events (none: no call); returns how many were published.
pub async fn publish(
    events: &dyn ResultEvents,
    results: &[WindowResult],
    report: &MergeReport,
    control: WindowLength,
    plans: BTreeMap<IntersectionId, Plan>,
) -> PortResult<usize> {
    let batch = run_events(results, report, control, plans);
    if !batch.is_empty() {
        events.publish_events(&batch).await?;
    }
    Ok(batch.len())
}
