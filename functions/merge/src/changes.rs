//! Who changed what in a closed control window, for the archive: the operators' edits the
//! registry holds and the alarms' steps the lamp store holds, as rows
//! (`traffic_core::changes`). Both are filed by their own times, which lie before the window
//! closes, so a run redone reads and writes the same rows.

use crate::MergeHandler;
use tracing::{Instrument, info_span};
use traffic_core::changes::{AlarmEventRow, PlanChangeRow, WindowChanges};
use traffic_core::window::WindowKey;
use traffic_ports::{AlarmEvent, AlarmEventKind, PortResult};

impl MergeHandler {
    /// Archives what changed in the closed control window `window`
    /// ([`traffic_ports::OutputArchive::put_changes`]).
    pub(crate) async fn archive_changes(&self, window: WindowKey) -> PortResult<()> {
        let span = info_span!("merge.archive_changes", window = %window);
        let (from, to) = (window.start_ms, window.end_ms());
        let edits = self
            .registry
            .operator_edits(from, to)
            .instrument(span.clone())
            .await?;
        let events = self
            .lamps
            .alarm_events(from, to)
            .instrument(span.clone())
            .await?;
        let yellow_s = self.cfg.webster.yellow_s;
        let changes = WindowChanges {
            window,
            plan_changes: edits
                .iter()
                .flat_map(|(id, c)| {
                    let at = c.at_ms.unwrap_or(from);
                    PlanChangeRow::edit(id, at, c.operator.as_deref(), &c.phases, yellow_s)
                })
                .collect(),
            alarm_events: events.into_iter().map(alarm_row).collect(),
        };
        self.archive.put_changes(&changes).instrument(span).await
    }
}

/// An alarm's step as a row of `alarm_events`.
fn alarm_row(e: AlarmEvent) -> AlarmEventRow {
    let a = &e.alarm;
    let silent = a.silent.map(|s| s.as_str());
    let (why, by, note) = match &e.kind {
        AlarmEventKind::Raised => (None, None, None),
        AlarmEventKind::Closed { why } => (why.clone(), None, None),
        AlarmEventKind::Acknowledged(ack) => (None, Some(ack.by.clone()), ack.note.clone()),
    };
    AlarmEventRow {
        event_at_ms: e.at_ms,
        event: e.kind.as_str(),
        alarm_id: a.id().to_string(),
        intersection_id: a.intersection_id.clone(),
        light: u32::try_from(a.light.get()).unwrap_or(u32::MAX),
        lamp: silent.is_none().then(|| a.lamp.as_str()),
        silent,
        raised_at_ms: a.ts_ms,
        held_down: e.held_down,
        why,
        by,
        note,
    }
}
