//! Recording an alarm: one transaction writes its log item, its open view, its by-light item,
//! the open count and its due item.

use super::{AlarmItem, ByLightItem, COUNT_PK, LOG_PK, OPEN_PK, alarm_sk, by_light_pk};
use crate::capacity::{item_size, write_units};
use crate::error::{build, code_of, port_error};
use crate::items::{Item, key, to_item};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use traffic_core::lamps::Alarm;
use traffic_ports::{AlarmRecord, PortError, PortResult};

impl DynamoStore {
    /// Records an alarm (held down until `held_until_ms` if given) unless its id is recorded,
    /// with its due item; returns the stored record.
    pub(super) async fn record(
        &self,
        alarm: &Alarm,
        held_until_ms: Option<i64>,
    ) -> PortResult<AlarmRecord> {
        let table = self.table(Table::Registry)?;
        let id = alarm.id();
        let sk = alarm_sk(&id);
        let item = AlarmItem {
            pk: LOG_PK.into(),
            sk: sk.clone(),
            alarm: alarm.clone(),
            published: false,
            repaired_at: None,
            ts_ms: alarm.ts_ms,
            ack: None,
            held_down: held_until_ms.is_some(),
            closed_why: None,
            held_until_ms,
        };
        let due = super::publication::due_put(table, &AlarmRecord::new(alarm, held_until_ms), &sk)?;
        let log = to_item("alarm", &item)?;
        let mut view = log.clone();
        view.insert("pk".into(), AttributeValue::S(OPEN_PK.into()));
        let by_light = to_item(
            "open alarm",
            &ByLightItem {
                pk: by_light_pk(&alarm.intersection_id),
                sk: format!("{}#{sk}", alarm.light.get()),
                sk_log: sk.clone(),
            },
        )?;
        let put = |item: Item, new: bool| {
            let p = Put::builder().table_name(table).set_item(Some(item));
            let p = if new {
                p.condition_expression("attribute_not_exists(pk)")
            } else {
                p
            };
            p.build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| build("an alarm put", e))
        };
        let count = Update::builder()
            .table_name(table)
            .set_key(Some(key(COUNT_PK, "open")))
            .update_expression("ADD n :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(|e| build("the open alarm count", e))?;
        // Five items written in a transaction: twice their units (the count and due items are
        // tiny).
        let units = 2.0
            * (2.0 * write_units(item_size(&log))
                + write_units(item_size(&by_light))
                + 2.0 * write_units(0));
        let actions = vec![
            put(log, true)?,
            put(view, false)?,
            put(by_light, false)?,
            TransactWriteItem::builder().update(count).build(),
            due,
        ];
        match self.transact(actions).await {
            Ok(_) => {
                self.count_alarm_write("TransactWriteItems", units);
                Ok(item.record())
            }
            // The log item exists (a retried batch): return it, with its `published` flag.
            Err(e) if code_of(&e) == Some("TransactionCanceledException") => {
                self.count_alarm_write("TransactWriteItems", units);
                self.alarm_item(&sk)
                    .await?
                    .map(AlarmItem::record)
                    .ok_or_else(|| PortError::Conflict(format!("alarm {id} was being recorded")))
            }
            Err(e) => Err(port_error(format!("recording alarm {id}"), e)),
        }
    }
}
