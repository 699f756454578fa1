//! Closing alarms: a light's or an intersection's open alarms are found by their by-light items
//! and closed in transactions, with repair orders queued when asked.

use super::{
    AlarmItem, ByLightItem, CLOSES_PER_TRANSACTION, COUNT_PK, LOG_PK, OPEN_PK, RepairItem,
    by_light_pk,
};
use crate::capacity::{item_size, write_units};
use crate::error::{build, code_of, port_error};
use crate::items::{Query, SortKey, from_item, key, to_item};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use std::collections::{BTreeMap, BTreeSet};
use traffic_core::time::format_rfc3339_ms;
use traffic_core::{AlarmId, IntersectionId};
#[cfg(doc)]
use traffic_ports::LampStore;
use traffic_ports::{AlarmRecord, CloseAlarms, PortError, PortResult};

impl DynamoStore {
    /// Closes the open alarms of `id` that `close` selects ([`LampStore::close_selected`]),
    /// keeping its `why`; with its `order_repair` queues repair orders as
    /// [`LampStore::close_alarms`] says.
    pub(super) async fn close_where(
        &self,
        id: &IntersectionId,
        close: &CloseAlarms<'_>,
    ) -> PortResult<Vec<AlarmRecord>> {
        let table = self.table(Table::Registry)?;
        let index = Query::partition(Table::Registry, by_light_pk(id));
        let index = match close.light {
            Some(l) => index.sk(SortKey::BeginsWith(format!("{}#", l.get()))),
            None => index,
        };
        let mut keys: Vec<ByLightItem> = self
            .query(index)
            .await?
            .into_iter()
            .map(|i| from_item("open alarm", i))
            .collect::<PortResult<_>>()?;
        // `sk_log` is `<ts>#<alarm id>`; a key that holds no alarm id is none `select` takes.
        keys.retain(|k| {
            k.sk_log
                .split_once('#')
                .and_then(|(_, a)| a.parse::<AlarmId>().ok())
                .is_some_and(|a| (close.select)(&a))
        });
        let open: Vec<(ByLightItem, AlarmItem)> = if keys.is_empty() {
            Vec::new()
        } else {
            let views = self
                .batch_get(
                    Table::Registry,
                    keys.iter()
                        .map(|k| key(OPEN_PK, k.sk_log.clone()))
                        .collect(),
                    true,
                )
                .await?;
            let mut by_sk: BTreeMap<String, AlarmItem> = BTreeMap::new();
            for v in views {
                let a: AlarmItem = from_item("alarm", v)?;
                by_sk.insert(a.sk.clone(), a);
            }
            keys.into_iter()
                .filter_map(|k| by_sk.remove(&k.sk_log).map(|a| (k, a)))
                .collect()
        };
        // A repair order for the light asked for, and for every light whose alarms close.
        let mut order_lights: BTreeSet<u8> = BTreeSet::new();
        if close.order_repair {
            order_lights.extend(close.light.map(|l| l.get() as u8));
            order_lights.extend(open.iter().map(|(_, a)| a.alarm.light.get() as u8));
        }
        let orders = order_lights
            .into_iter()
            .map(|l| {
                to_item(
                    "repair order",
                    &RepairItem {
                        pk: "repairs".into(),
                        sk: format!("{id}#{l}"),
                        intersection_id: id.clone(),
                        light: l,
                    },
                )
            })
            .collect::<PortResult<Vec<_>>>()?;
        let chunks: Vec<&[(ByLightItem, AlarmItem)]> = if open.is_empty() {
            vec![&[]]
        } else {
            open.chunks(CLOSES_PER_TRANSACTION).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut actions = Vec::with_capacity(5 * chunk.len() + 5);
            // Per alarm: its log item updated and its view item deleted (both about its size),
            // its by-light item deleted, its closing filed; the count and the orders; twice, in
            // a transaction.
            let mut units = 0.0;
            for (k, a) in chunk {
                let size = to_item("alarm", a).map_or(0, |i| item_size(&i));
                units += 2.0 * write_units(size) + write_units(0);
                let mut update = Update::builder()
                    .table_name(table)
                    .set_key(Some(key(LOG_PK, a.sk.clone())))
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(repaired_at)",
                    )
                    .expression_attribute_values(
                        ":at",
                        AttributeValue::S(format_rfc3339_ms(close.closing.at_ms)),
                    );
                let mut set = String::from("SET repaired_at = :at");
                if let Some(ms) = close.closing.expires_at_ms {
                    set.push_str(", expires_at = :exp");
                    update = update.expression_attribute_values(
                        ":exp",
                        AttributeValue::N(ms.div_euclid(1000).to_string()),
                    );
                }
                if let Some(why) = close.why {
                    set.push_str(", closed_why = :why");
                    update =
                        update.expression_attribute_values(":why", AttributeValue::S(why.into()));
                }
                let update = update.update_expression(set);
                let update = update.build().map_err(|e| build("an alarm closing", e))?;
                actions.push(TransactWriteItem::builder().update(update).build());
                // The closing filed by its day, for the archive (`events.rs`).
                let at_ms = close.closing.at_ms;
                let filed = super::events::closed_item(&a.alarm, a.held_down, at_ms, close.why)?;
                units += write_units(item_size(&filed));
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(filed))
                    .build()
                    .map_err(|e| build("an alarm's closing filed", e))?;
                actions.push(TransactWriteItem::builder().put(put).build());
                if a.held_down && !a.published {
                    // A flap closed before its hold-down ended: never paged.
                    let record = AlarmRecord::new(&a.alarm, a.held_until_ms);
                    actions.push(super::publication::due_delete(table, &record)?);
                    units += write_units(0);
                }
                for (pk, sk) in [(OPEN_PK, &a.sk), (k.pk.as_str(), &k.sk)] {
                    let delete = Delete::builder()
                        .table_name(table)
                        .set_key(Some(key(pk, sk.clone())))
                        .build()
                        .map_err(|e| build("an open alarm's deletion", e))?;
                    actions.push(TransactWriteItem::builder().delete(delete).build());
                }
            }
            if !chunk.is_empty() {
                units += write_units(0);
                let count = Update::builder()
                    .table_name(table)
                    .set_key(Some(key(COUNT_PK, "open")))
                    .update_expression("ADD n :minus")
                    .expression_attribute_values(
                        ":minus",
                        AttributeValue::N(format!("-{}", chunk.len())),
                    )
                    .build()
                    .map_err(|e| build("the open alarm count", e))?;
                actions.push(TransactWriteItem::builder().update(count).build());
            }
            if i == last {
                for order in &orders {
                    units += write_units(item_size(order));
                    let put = Put::builder()
                        .table_name(table)
                        .set_item(Some(order.clone()))
                        .build()
                        .map_err(|e| build("a repair order", e))?;
                    actions.push(TransactWriteItem::builder().put(put).build());
                }
            }
            if actions.is_empty() {
                continue;
            }
            match self.transact(actions).await {
                Ok(_) => self.count_alarm_write("TransactWriteItems", 2.0 * units),
                Err(e) if code_of(&e) == Some("TransactionCanceledException") => {
                    return Err(PortError::Conflict(format!(
                        "the open alarms of {id} changed while they were being closed"
                    )));
                }
                Err(e) => return Err(port_error(format!("closing the alarms of {id}"), e)),
            }
        }
        Ok(open
            .into_iter()
            .map(|(_, mut a)| {
                a.repaired_at = Some(close.closing.at_ms);
                a.closed_why = close.why.map(str::to_owned);
                a.record()
            })
            .collect())
    }
}
