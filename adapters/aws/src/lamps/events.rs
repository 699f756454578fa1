//! Alarms' lifecycles for the archive ([`LampStore::alarm_events`]): an alarm raised is in the
//! log under its time already; its closing and its acknowledgement are filed by their day and
//! time (`by_day.rs`, partition `alarm#events#<day>`), the closing in the transaction that
//! closes it, the acknowledgement after the log item took it.

use super::{AlarmItem, LOG_PK};
use crate::items::{Item, Query, SortKey, from_item, ord_i64, to_item};
use crate::{DynamoStore, Table};
use serde::{Deserialize, Serialize};
use traffic_core::lamps::Alarm;
#[cfg(doc)]
use traffic_ports::LampStore;
use traffic_ports::{Ack, AlarmEvent, AlarmEventKind, AlarmRecord, PortResult};

/// The partition of the alarms' closings and acknowledgements of the day of `at_ms`.
fn events_pk(at_ms: i64) -> String {
    format!("alarm#events#{}", crate::by_day::day(at_ms))
}

/// A closing or an acknowledgement, as filed.
#[derive(Serialize, Deserialize)]
struct EventItem {
    /// `closed` or `acknowledged`.
    event: String,
    at_ms: i64,
    alarm: Alarm,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    held_down: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack: Option<Ack>,
}

/// The item that files the closing of `alarm` (`held_down` or not) at `at_ms` (`why`: a
/// recovery's).
pub(super) fn closed_item(
    alarm: &Alarm,
    held_down: bool,
    at_ms: i64,
    why: Option<&str>,
) -> PortResult<Item> {
    let item = EventItem {
        event: "closed".into(),
        at_ms,
        alarm: alarm.clone(),
        held_down,
        why: why.map(str::to_owned),
        ack: None,
    };
    filed(&item)
}

fn filed(e: &EventItem) -> PortResult<Item> {
    let what = format!("{}#{}", e.alarm.id(), e.event);
    Ok(crate::by_day::filed(
        to_item("alarm event", e)?,
        events_pk,
        e.at_ms,
        &what,
    ))
}

impl DynamoStore {
    /// Files the acknowledgement `ack` of the alarm `record` (as the log now holds it).
    pub(super) async fn file_ack(&self, record: &AlarmRecord, ack: &Ack) -> PortResult<()> {
        let item = filed(&EventItem {
            event: "acknowledged".into(),
            at_ms: ack.at_ms,
            alarm: record.alarm.clone(),
            held_down: record.held_down,
            why: None,
            ack: Some(ack.clone()),
        })?;
        let bytes = crate::capacity::item_size(&item);
        self.put_item(Table::Registry, item)?
            .send()
            .await
            .map_err(|e| crate::error::port_error("filing an acknowledgement", e))?;
        self.count_alarm_write("PutItem", crate::capacity::write_units(bytes));
        Ok(())
    }

    /// [`LampStore::alarm_events`]: the log's alarms raised in the range (one query), and the
    /// closings and acknowledgements filed in it (one query per day).
    pub(super) async fn read_alarm_events(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<AlarmEvent>> {
        let mut out = Vec::new();
        if to_ms > from_ms {
            let raised = Query::partition(Table::Registry, LOG_PK)
                .sk(SortKey::Between(ord_i64(from_ms), ord_i64(to_ms)));
            for item in self.query(raised).await? {
                let r = from_item::<AlarmItem>("alarm", item)?.record();
                out.push(AlarmEvent {
                    at_ms: r.alarm.ts_ms,
                    alarm: r.alarm,
                    held_down: r.held_down,
                    kind: AlarmEventKind::Raised,
                });
            }
        }
        for item in self.filed_between(events_pk, from_ms, to_ms).await? {
            let e: EventItem = from_item("alarm event", item)?;
            let kind = match (e.event.as_str(), e.ack) {
                ("acknowledged", Some(ack)) => AlarmEventKind::Acknowledged(ack),
                _ => AlarmEventKind::Closed { why: e.why },
            };
            out.push(AlarmEvent {
                at_ms: e.at_ms,
                alarm: e.alarm,
                held_down: e.held_down,
                kind,
            });
        }
        out.retain(|e| (from_ms..to_ms).contains(&e.at_ms));
        traffic_ports::sort_alarm_events(&mut out);
        Ok(out)
    }
}
