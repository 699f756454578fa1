//! [`LampStore`] on `REGISTRY_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | lamp states | `lamp#<id>` | `state` | `lights` (M: light → lamps and `as_of_ms`) |
//! | the lamps not ok, per intersection, in 4 parts | `lamp-summary#<p>-of-4` | `state` | `lamps` (M: id → `?` or `0:g;2:ry`), `summarised` (BOOL): `lamp_summary.rs` |
//! | alarm (the log) | `alarm#log` | `<ts>#<alarm id>` | `alarm` (M), `published`, `repaired_at`, `ts_ms`, `expires_at` once closed |
//! | open alarm (the view) | `alarm#open` | `<ts>#<alarm id>` | a copy of the log item while it is open |
//! | open alarm by light | `alarm#open#<id>` | `<light>#<ts>#<alarm id>` | `sk_log` |
//! | open count | `alarm#count` | `open` | `n` |
//! | alarm due for publication | `alarm#due` | `<due>#<alarm id>` | `sk_log` (`lamps/publication.rs`) |
//! | an alarm's closing or acknowledgement, by day | `alarm#events#<YYYY-MM-DD>` | `<at>#<alarm id>#<event>` | `event`, `at_ms`, `alarm` (M), `held_down`, `why`, `ack`, `expires_at` (`lamps/events.rs`) |
//! | a lamp's last published alarm | `alarm#last#<id>` | `<light>#<lamp>` | `ts_ms` (for the hold-down) |
//! | repair order | `repairs` | `<id>#<light>` | `intersection_id`, `light` |
//!
//! `<ts>` is the alarm's event time as a sort key that orders as the number does
//! (`ord_i64`), so the log and the view are time-ordered, and the alarm id ends with the same
//! time, so an id names its keys. A page of `/api/alarms` is one `Query` of the log or of the
//! view, newest first, with `Limit` and the previous page's last key as `ExclusiveStartKey`
//! (eventually consistent), plus one `GetItem` of the open count: it reads the items it
//! returns. Recording an alarm is one transaction (the log item, conditional on its absence;
//! the view item; the by-light item; the count + 1); closing them (a repair, a deleted
//! intersection or light) queries only the light's or intersection's by-light items, reads
//! their view items, and in transactions sets `repaired_at` and `expires_at` (epoch s, the
//! table's TTL attribute) on the log items, deletes the view and by-light items and lowers the
//! count. DynamoDB's TTL then deletes closed alarms after their retention.
//!
//! Lamp states are one item per intersection (its four lights), so a batch writes one item
//! per intersection it saw, 25 to a `BatchWriteItem`, rather than one per light. A batch
//! write replaces whole items, so [`LampStore::put_lamp_states`] merges the new states onto
//! the item as [`LampStore::lamp_states`] last read it (reading it first if this process has
//! not). That is sound because an intersection's readings all travel through one shard, whose
//! records one `fault` invocation at a time handles, and `fault` reads the states of a batch
//! before it writes them. Repair orders are taken with a conditional delete each, so an order
//! is handed out once even to concurrent takers.
//!
//! Most of a city's lamps work, and a reading that repeats its light's stored lamps changes
//! nothing, so `fault` reads the states of only the intersections whose readings may change
//! them ([`LampStore::lamp_summaries`]): one consistent `BatchGetItem` per batch of the parts
//! of the summary (`lamp_summary.rs`) that hold its intersections, whose maps hold, for every
//! intersection with a lamp not ok, its lamps not ok (`LampSummary::encode`: `0:g;2:ry`),
//! instead of one item per intersection. An intersection whose broken lamp stays broken until
//! it is repaired is then read only when a reading says something else. The summaries must be
//! exact, so [`LampStore::put_lamp_states`] marks each intersection it writes unknown (`?`:
//! always read) before writing its lamp item, and records its new summary (or removes it, all
//! ok) after; a crash in between leaves `?`, which costs a read and nothing else.

mod close;
mod events;
mod publication;
mod record;

use crate::capacity::{item_size, read_units, write_units};
use crate::error::{code_of, port_error};
use crate::items::n_i64;
use crate::items::{Item, Query, from_item, key, ord_i64, put_request, to_item};
use crate::lamp_summary::{LampLights, SUMMARY_PARTS, part_of};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::lamps::{Alarm, LampSummary, LightLamps};
use traffic_core::reading::Lamps;
use traffic_core::time::rfc3339_opt;
use traffic_core::{AlarmId, IntersectionId, LampColour, LightIndex};
use traffic_ports::{
    Ack, AlarmEvent, AlarmPage, AlarmQuery, AlarmRecord, Claim, CloseAlarms, LampStore, PortError,
    PortResult,
};

/// Alarms closed per transaction: up to five actions each (the log, the view, the by-light
/// item, the closing filed by day, and the due item of one held down), plus the count and up
/// to four repair orders, within DynamoDB's 100 actions.
const CLOSES_PER_TRANSACTION: usize = 19;
/// The partition of the alarm log.
const LOG_PK: &str = "alarm#log";
/// The partition of the open alarms' view.
const OPEN_PK: &str = "alarm#open";
/// The open count's key.
const COUNT_PK: &str = "alarm#count";

#[derive(Serialize, Deserialize)]
struct LampItem {
    pk: String,
    sk: String,
    intersection_id: IntersectionId,
    lights: LampLights,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AlarmItem {
    pk: String,
    pub(crate) sk: String,
    alarm: Alarm,
    published: bool,
    /// Epoch ms, stored as RFC 3339 text.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    repaired_at: Option<i64>,
    ts_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack: Option<Ack>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) held_down: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    closed_why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held_until_ms: Option<i64>,
}

/// An open alarm under its intersection: `<light>#<ts>#<alarm id>` → the log's sort key.
#[derive(Serialize, Deserialize)]
struct ByLightItem {
    pk: String,
    sk: String,
    sk_log: String,
}

/// The sort key of an alarm in the log and the view: `<ts>#<alarm id>`.
pub(crate) fn alarm_sk(alarm_id: &AlarmId) -> String {
    format!("{}#{alarm_id}", ord_i64(alarm_id.ts_ms()))
}

fn by_light_pk(id: &IntersectionId) -> String {
    format!("alarm#open#{id}")
}

impl AlarmItem {
    pub(crate) fn record(self) -> AlarmRecord {
        AlarmRecord {
            alarm: self.alarm,
            published: self.published,
            repaired_at_ms: self.repaired_at,
            ack: self.ack,
            held_down: self.held_down,
            closed_why: self.closed_why,
            held_until_ms: self.held_until_ms,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RepairItem {
    pk: String,
    sk: String,
    intersection_id: IntersectionId,
    light: u8,
}

fn lamp_key(id: &IntersectionId) -> Item {
    key(format!("lamp#{id}"), "state")
}

impl DynamoStore {
    /// Reads the lamp items of `ids` and refreshes the cache with them.
    async fn read_lamp_items(
        &self,
        ids: &BTreeSet<IntersectionId>,
    ) -> PortResult<BTreeMap<IntersectionId, LampLights>> {
        let items = self
            .batch_get(Table::Registry, ids.iter().map(lamp_key).collect(), true)
            .await?;
        let mut out: BTreeMap<IntersectionId, LampLights> = ids
            .iter()
            .map(|id| (id.clone(), LampLights::new()))
            .collect();
        for item in items {
            let l: LampItem = from_item("lamp states", item)?;
            out.insert(l.intersection_id, l.lights);
        }
        if let Ok(mut cache) = self.lamp_cache.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            for (id, lights) in &out {
                cache.insert(id.clone(), lights.clone());
            }
        }
        Ok(out)
    }

    /// The log item of an alarm, read consistently.
    pub(crate) async fn alarm_item(&self, sk: &str) -> PortResult<Option<AlarmItem>> {
        let item = self
            .get_item(
                Table::Registry,
                key(LOG_PK, sk),
                true,
                format!("reading alarm {sk}"),
            )
            .await?;
        item.map(|i| from_item("alarm", i)).transpose()
    }

    /// The open count (eventually consistent: what the dashboard shows).
    async fn open_alarm_count(&self) -> PortResult<u64> {
        let item = self
            .get_item(
                Table::Registry,
                key(COUNT_PK, "open"),
                false,
                "reading the open alarm count",
            )
            .await?;
        Ok(item
            .as_ref()
            .and_then(|i| n_i64(i, "n"))
            .map_or(0, |n| n.max(0) as u64))
    }

    /// Applies `expression` (`SET <attribute> = :v`) to the alarm's view item, if it is open,
    /// then to its log item, and returns the log item as it is now. The view first: a crash
    /// between the two leaves the log behind, and a retry does the change again.
    async fn update_alarm(
        &self,
        alarm_id: &AlarmId,
        expression: &str,
        value: AttributeValue,
    ) -> PortResult<AlarmItem> {
        let table = self.table(Table::Registry)?;
        let sk = alarm_sk(alarm_id);
        for pk in [OPEN_PK, LOG_PK] {
            match self
                .ddb
                .update_item()
                .table_name(table)
                .set_key(Some(key(pk, sk.clone())))
                .update_expression(expression)
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":v", value.clone())
                .return_values(ReturnValue::AllNew)
                .send()
                .await
            {
                Ok(resp) => {
                    let item = resp.attributes.unwrap_or_default();
                    self.count_alarm_write("UpdateItem", write_units(item_size(&item)));
                    if pk == LOG_PK {
                        return from_item("alarm", item);
                    }
                }
                // Not open (only the log changes), or no such alarm at all.
                Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                    self.count_alarm_write("UpdateItem", write_units(0));
                    if pk == LOG_PK {
                        return Err(PortError::NotFound(format!("alarm {alarm_id}")));
                    }
                }
                Err(e) => return Err(port_error(format!("updating alarm {alarm_id}"), e)),
            }
        }
        Err(PortError::NotFound(format!("alarm {alarm_id}")))
    }

    /// Counts a read of alarm items. (The one place that knows how the metrics take units.)
    fn count_alarm_read(&self, op: &'static str, units: f64) {
        self.metrics.read(&Table::Registry.op(op), units);
    }

    /// Counts a write of alarm items.
    fn count_alarm_write(&self, op: &'static str, units: f64) {
        self.metrics.write(&Table::Registry.op(op), units);
    }
}

#[async_trait]
impl LampStore for DynamoStore {
    async fn lamp_summaries(&self) -> PortResult<Option<BTreeMap<IntersectionId, LampSummary>>> {
        let all: BTreeSet<u64> = (0..SUMMARY_PARTS).collect();
        Ok(Some(self.read_summary_parts(&all).await?))
    }

    async fn lamp_summaries_for(
        &self,
        ids: &BTreeSet<IntersectionId>,
    ) -> PortResult<Option<BTreeMap<IntersectionId, LampSummary>>> {
        let parts: BTreeSet<u64> = ids.iter().map(part_of).collect();
        Ok(Some(self.read_summary_parts(&parts).await?))
    }

    async fn lamp_states(
        &self,
        lights: &[(IntersectionId, LightIndex)],
    ) -> PortResult<BTreeMap<(IntersectionId, LightIndex), LightLamps>> {
        let ids: BTreeSet<IntersectionId> = lights.iter().map(|(id, _)| id.clone()).collect();
        let items = self.read_lamp_items(&ids).await?;
        Ok(lights
            .iter()
            .map(|(id, l)| {
                let s = items
                    .get(id)
                    .and_then(|m| m.get(&l.get().to_string()))
                    .copied()
                    .unwrap_or_default();
                ((id.clone(), *l), s)
            })
            .collect())
    }

    async fn put_lamp_states(
        &self,
        states: &[((IntersectionId, LightIndex), LightLamps)],
    ) -> PortResult<()> {
        let mut by_id: BTreeMap<IntersectionId, Vec<(LightIndex, LightLamps)>> = BTreeMap::new();
        for ((id, l), s) in states {
            by_id.entry(id.clone()).or_default().push((*l, *s));
        }
        let mut base: BTreeMap<IntersectionId, LampLights> = BTreeMap::new();
        let mut missing = BTreeSet::new();
        if let Ok(cache) = self.lamp_cache.lock() {
            for id in by_id.keys() {
                match cache.get(id) {
                    Some(l) => {
                        base.insert(id.clone(), l.clone());
                    }
                    None => {
                        missing.insert(id.clone());
                    }
                }
            }
        } else {
            missing.extend(by_id.keys().cloned());
        }
        if !missing.is_empty() {
            base.extend(self.read_lamp_items(&missing).await?);
        }
        let mut writes = Vec::with_capacity(by_id.len());
        let mut merged = Vec::with_capacity(by_id.len());
        let mut summaries = Vec::with_capacity(by_id.len());
        for (id, changes) in by_id {
            let mut lights = base.remove(&id).unwrap_or_default();
            for (l, s) in changes {
                lights.insert(l.get().to_string(), s);
            }
            let parsed: Option<Vec<(LightIndex, &Lamps)>> = lights
                .iter()
                .map(|(l, s)| Some((LightIndex::new(l.parse().ok()?).ok()?, &s.lamps)))
                .collect();
            // A light this code cannot name: left unknown (read every time), never guessed.
            let summary = match parsed {
                Some(p) => LampSummary::of(p),
                None => Some(LampSummary::Unknown),
            };
            summaries.push((id.clone(), summary));
            let item = to_item(
                "lamp states",
                &LampItem {
                    pk: format!("lamp#{id}"),
                    sk: "state".into(),
                    intersection_id: id.clone(),
                    lights: lights.clone(),
                },
            )?;
            writes.push(put_request(item)?);
            merged.push((id, lights));
        }
        // Unknown while their items are written, so a reader meanwhile reads them; then what
        // they hold.
        let unknown: Vec<_> = summaries
            .iter()
            .map(|(id, _)| (id.clone(), Some(LampSummary::Unknown)))
            .collect();
        self.update_summaries(&unknown, false).await?;
        self.batch_write(Table::Registry, writes).await?;
        if let Ok(mut cache) = self.lamp_cache.lock() {
            cache.extend(merged);
        }
        self.update_summaries(&summaries, false).await
    }

    async fn record_alarm(&self, alarm: &Alarm) -> PortResult<AlarmRecord> {
        self.record(alarm, None).await
    }

    async fn record_held_alarm(
        &self,
        alarm: &Alarm,
        held_until_ms: i64,
    ) -> PortResult<AlarmRecord> {
        self.record(alarm, Some(held_until_ms)).await
    }

    async fn due_alarms(&self, due_by_ms: i64, limit: usize) -> PortResult<Vec<AlarmRecord>> {
        self.read_due_alarms(due_by_ms, limit).await
    }

    async fn claim_publication(
        &self,
        alarm_id: &AlarmId,
        now_ms: i64,
        until_ms: i64,
    ) -> PortResult<Claim> {
        self.claim(alarm_id, now_ms, until_ms).await
    }

    async fn release_publication(&self, alarm_id: &AlarmId) -> PortResult<()> {
        self.release(alarm_id).await
    }

    async fn mark_published(&self, alarm_id: &AlarmId) -> PortResult<()> {
        let t = AttributeValue::Bool(true);
        let item = self.update_alarm(alarm_id, "SET published = :v", t).await?;
        // The lamp's last published alarm, for the hold-down; never moved back by a replay.
        let a = &item.alarm;
        let table = self.table(Table::Registry)?;
        match self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key(
                format!("alarm#last#{}", a.intersection_id),
                format!("{}#{}", a.light.get(), a.lamp.as_str()),
            )))
            .update_expression("SET ts_ms = :ts")
            .condition_expression("attribute_not_exists(ts_ms) OR ts_ms < :ts")
            .expression_attribute_values(":ts", AttributeValue::N(a.ts_ms.to_string()))
            .send()
            .await
        {
            Ok(_) => self.count_alarm_write("UpdateItem", write_units(0)),
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                self.count_alarm_write("UpdateItem", write_units(0));
            }
            Err(e) => return Err(port_error(format!("noting alarm {alarm_id} published"), e)),
        }
        self.delete_due(&item.record()).await
    }

    async fn last_published(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        lamp: LampColour,
    ) -> PortResult<Option<i64>> {
        let item = self
            .get_item(
                Table::Registry,
                key(
                    format!("alarm#last#{id}"),
                    format!("{}#{}", light.get(), lamp.as_str()),
                ),
                true,
                "reading a lamp's last published alarm",
            )
            .await?;
        Ok(item.as_ref().and_then(|i| n_i64(i, "ts_ms")))
    }

    async fn ack_alarm(&self, alarm_id: &AlarmId, ack: &Ack) -> PortResult<AlarmRecord> {
        let value = crate::items::to_av("acknowledgement", ack)?;
        let record = self
            .update_alarm(alarm_id, "SET ack = :v", value)
            .await?
            .record();
        // Filed after the log took it: a failure here fails the request, and the operator's
        // retry files it (the log's ack is replaced by the same).
        self.file_ack(&record, ack).await?;
        Ok(record)
    }

    async fn alarm_events(&self, from_ms: i64, to_ms: i64) -> PortResult<Vec<AlarmEvent>> {
        self.read_alarm_events(from_ms, to_ms).await
    }

    async fn alarms(&self) -> PortResult<Vec<AlarmRecord>> {
        self.query(Query::partition(Table::Registry, LOG_PK))
            .await?
            .into_iter()
            .map(|i| from_item::<AlarmItem>("alarm", i).map(AlarmItem::record))
            .collect()
    }

    async fn alarm_page(&self, q: &AlarmQuery) -> PortResult<AlarmPage> {
        let table = self.table(Table::Registry)?;
        let pk = if q.open_only { OPEN_PK } else { LOG_PK };
        let start = q.after.as_ref().map(|a| key(pk, alarm_sk(a)));
        let mut alarms = Vec::new();
        let mut next = None;
        if q.limit > 0 {
            let resp = self
                .ddb
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
                .scan_index_forward(false)
                .limit(i32::try_from(q.limit).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("reading a page of alarms", e))?;
            let items = resp.items.unwrap_or_default();
            let bytes: usize = items.iter().map(item_size).sum();
            self.count_alarm_read("Query", read_units(bytes, false));
            let more = resp.last_evaluated_key.is_some_and(|k| !k.is_empty());
            for i in items {
                alarms.push(from_item::<AlarmItem>("alarm", i)?.record());
            }
            if more {
                next = alarms.last().map(|r| r.alarm.id());
            }
        }
        Ok(AlarmPage {
            alarms,
            next,
            open: self.open_alarm_count().await?,
        })
    }

    async fn close_selected(
        &self,
        id: &IntersectionId,
        close: &CloseAlarms<'_>,
    ) -> PortResult<Vec<AlarmRecord>> {
        self.close_where(id, close).await
    }

    async fn take_repairs(&self) -> PortResult<Vec<(IntersectionId, LightIndex)>> {
        let table = self.table(Table::Registry)?;
        let orders = self
            .query(Query::partition(Table::Registry, "repairs"))
            .await?;
        let mut out = Vec::new();
        for o in orders {
            let r: RepairItem = from_item("repair order", o)?;
            match self
                .ddb
                .delete_item()
                .table_name(table)
                .set_key(Some(key("repairs", r.sk.clone())))
                .condition_expression("attribute_exists(pk)")
                .return_values(ReturnValue::AllOld)
                .send()
                .await
            {
                Ok(resp) => {
                    self.count_alarm_write(
                        "DeleteItem",
                        write_units(resp.attributes().map_or(0, item_size)),
                    );
                    if let Ok(l) = LightIndex::new(i64::from(r.light)) {
                        out.push((r.intersection_id, l));
                    }
                }
                // Another taker had it.
                Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {}
                Err(e) => return Err(port_error("taking a repair order", e)),
            }
        }
        Ok(out)
    }
}
