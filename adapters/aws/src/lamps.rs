//! [`LampStore`] on `REGISTRY_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | lamp states | `lamp#<id>` | `state` | `lights` (M: light → lamps and `as_of_ms`) |
//! | alarm | `alarms` | `<alarm id>` (`<id>#<light>#<lamp>#<ts_ms>`) | `alarm` (M), `published`, `repaired_at`, `ts_ms` |
//! | repair order | `repairs` | `<id>#<light>` | `intersection_id`, `light` |
//!
//! Lamp states are one item per intersection (its four lights), so a batch writes one item
//! per intersection it saw, 25 to a `BatchWriteItem`, rather than one per light. A batch
//! write replaces whole items, so [`LampStore::put_lamp_states`] merges the new states onto
//! the item as [`LampStore::lamp_states`] last read it (reading it first if this process has
//! not). That is sound because an intersection's readings all travel through one shard, whose
//! records one `fault` invocation at a time handles, and `fault` reads the states of a batch
//! before it writes them.
//!
//! An alarm is recorded with a conditional put (`attribute_not_exists(pk)`), so a retried
//! batch finds the record it made and its `published` flag. Repair orders are taken with a
//! conditional delete each, so an order is handed out once even to concurrent takers.

use crate::capacity::{item_size, read_units, write_units};
use crate::error::{build, code_of, port_error};
use crate::items::{Item, Query, SortKey, from_item, key, put_request, to_item};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{AlarmRecord, LampStore, PortError, PortResult};

/// The lights of one intersection's lamp item, by light index ("0".."3").
pub(crate) type LampLights = BTreeMap<String, LightLamps>;

/// Alarms closed per repair transaction (plus the repair order: within 100 actions).
const REPAIRS_PER_TRANSACTION: usize = 99;

#[derive(Serialize, Deserialize)]
struct LampItem {
    pk: String,
    sk: String,
    intersection_id: IntersectionId,
    lights: LampLights,
}

#[derive(Serialize, Deserialize)]
struct AlarmItem {
    pk: String,
    sk: String,
    alarm: Alarm,
    published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repaired_at: Option<String>,
    ts_ms: i64,
}

impl AlarmItem {
    fn record(self) -> AlarmRecord {
        AlarmRecord {
            alarm: self.alarm,
            published: self.published,
            repaired_at: self.repaired_at,
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

    async fn alarm_item(&self, alarm_id: &str) -> PortResult<Option<AlarmItem>> {
        let table = self.table(Table::Registry)?;
        let resp = self
            .ddb
            .get_item()
            .table_name(table)
            .set_key(Some(key("alarms", alarm_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(format!("reading alarm {alarm_id}"), e))?;
        self.metrics.read(
            &Table::Registry.op("GetItem"),
            read_units(resp.item().map_or(0, item_size), true),
        );
        resp.item.map(|i| from_item("alarm", i)).transpose()
    }
}

#[async_trait]
impl LampStore for DynamoStore {
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
        for (id, changes) in by_id {
            let mut lights = base.remove(&id).unwrap_or_default();
            for (l, s) in changes {
                lights.insert(l.get().to_string(), s);
            }
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
        self.batch_write(Table::Registry, writes).await?;
        if let Ok(mut cache) = self.lamp_cache.lock() {
            cache.extend(merged);
        }
        Ok(())
    }

    async fn record_alarm(&self, alarm: &Alarm) -> PortResult<AlarmRecord> {
        let table = self.table(Table::Registry)?;
        let id = alarm.id();
        let item = AlarmItem {
            pk: "alarms".into(),
            sk: id.clone(),
            alarm: alarm.clone(),
            published: false,
            repaired_at: None,
            ts_ms: alarm.ts_ms,
        };
        let stored = to_item("alarm", &item)?;
        let units = write_units(item_size(&stored));
        match self
            .ddb
            .put_item()
            .table_name(table)
            .set_item(Some(stored))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
        {
            Ok(_) => {
                self.metrics.write(&Table::Registry.op("PutItem"), units);
                Ok(item.record())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                self.metrics.write(&Table::Registry.op("PutItem"), units);
                let old = match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                let stored = match old.filter(|o| !o.is_empty()) {
                    Some(o) => Some(from_item::<AlarmItem>("alarm", o)?),
                    None => self.alarm_item(&id).await?,
                };
                stored
                    .map(AlarmItem::record)
                    .ok_or_else(|| PortError::Conflict(format!("alarm {id} vanished")))
            }
            Err(e) => Err(port_error(format!("recording alarm {id}"), e)),
        }
    }

    async fn mark_published(&self, alarm_id: &str) -> PortResult<()> {
        let table = self.table(Table::Registry)?;
        match self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key("alarms", alarm_id)))
            .update_expression("SET published = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
        {
            Ok(_) => {
                self.metrics
                    .write(&Table::Registry.op("UpdateItem"), write_units(0));
                Ok(())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(PortError::NotFound(format!("alarm {alarm_id}")))
            }
            Err(e) => Err(port_error(format!("marking alarm {alarm_id} published"), e)),
        }
    }

    async fn alarms(&self) -> PortResult<Vec<AlarmRecord>> {
        let mut out = self
            .query(Query::partition(Table::Registry, "alarms"))
            .await?
            .into_iter()
            .map(|i| from_item::<AlarmItem>("alarm", i).map(AlarmItem::record))
            .collect::<PortResult<Vec<_>>>()?;
        out.sort_by_key(|a| (a.alarm.ts_ms, a.alarm.id()));
        Ok(out)
    }

    async fn repair(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        at: &str,
    ) -> PortResult<Vec<AlarmRecord>> {
        let table = self.table(Table::Registry)?;
        let open: Vec<AlarmItem> = self
            .query(
                Query::partition(Table::Registry, "alarms")
                    .sk(SortKey::BeginsWith(format!("{id}#{light}#"))),
            )
            .await?
            .into_iter()
            .map(|i| from_item::<AlarmItem>("alarm", i))
            .collect::<PortResult<Vec<_>>>()?
            .into_iter()
            .filter(|a| a.repaired_at.is_none())
            .collect();
        let order = to_item(
            "repair order",
            &RepairItem {
                pk: "repairs".into(),
                sk: format!("{id}#{}", light.get()),
                intersection_id: id.clone(),
                light: light.get() as u8,
            },
        )?;
        let chunks: Vec<&[AlarmItem]> = if open.is_empty() {
            vec![&[]]
        } else {
            open.chunks(REPAIRS_PER_TRANSACTION).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut actions = Vec::with_capacity(chunk.len() + 1);
            // Alarm items and the order are under a kilobyte: two units each in a transaction.
            let units = 2.0 * (chunk.len() + usize::from(i == last)) as f64;
            for a in chunk {
                let update = Update::builder()
                    .table_name(table)
                    .set_key(Some(key("alarms", a.sk.clone())))
                    .update_expression("SET repaired_at = :at")
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(repaired_at)",
                    )
                    .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
                    .build()
                    .map_err(|e| build("a repair update", e))?;
                actions.push(TransactWriteItem::builder().update(update).build());
            }
            if i == last {
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(order.clone()))
                    .build()
                    .map_err(|e| build("a repair order", e))?;
                actions.push(TransactWriteItem::builder().put(put).build());
            }
            match self
                .ddb
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await
            {
                Ok(_) => self
                    .metrics
                    .write(&Table::Registry.op("TransactWriteItems"), units),
                Err(e) if code_of(&e) == Some("TransactionCanceledException") => {
                    return Err(PortError::Conflict(format!(
                        "the alarms of {id} light {light} changed while they were being repaired"
                    )));
                }
                Err(e) => return Err(port_error(format!("repairing {id} light {light}"), e)),
            }
        }
        Ok(open
            .into_iter()
            .map(|mut a| {
                a.repaired_at = Some(at.to_owned());
                a.record()
            })
            .collect())
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
                    self.metrics.write(
                        &Table::Registry.op("DeleteItem"),
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
