//! The alarms due for publication and their claims, on `REGISTRY_TABLE`
//! (`traffic_functions::publication` says how they are used).
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | alarm due | `alarm#due` | `<due>#<alarm id>` | `sk_log` |
//! | a claim | the alarm's log item | | `claimed_until` (N, epoch ms) |
//!
//! `<due>` (`ord_i64`) is when the alarm's publication is due: its event time, or the end of
//! its hold-down. The due item is put in the transaction that records the alarm, deleted after
//! the alarm is marked published, and deleted in the transaction that closes an alarm held
//! down. Reading the alarms due is one eventually consistent `Query` of that partition (half a
//! read unit while it is empty, as it is nearly always) and one `BatchGetItem` of their log
//! items. A claim is one conditional `UpdateItem` of the log item (unpublished, unclaimed or
//! its claim expired, not a held-down alarm closed), so of two callers one wins.

use super::AlarmItem;
use crate::capacity::{item_size, write_units};
use crate::error::{build, code_of, port_error};
use crate::items::{Item, Query, SortKey, from_item, key, ord_i64, to_item};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use traffic_core::AlarmId;
use traffic_ports::{AlarmRecord, Claim, PortResult};

/// The partition of the alarms due.
const DUE_PK: &str = "alarm#due";

/// An alarm due: its log item's sort key.
#[derive(Serialize, Deserialize)]
struct DueItem {
    pk: String,
    sk: String,
    sk_log: String,
}

/// The due item's sort key of an alarm due at `due_ms`.
fn due_sk(due_ms: i64, alarm_id: &AlarmId) -> String {
    format!("{}#{alarm_id}", ord_i64(due_ms))
}

/// The due item of `record`, whose log item's sort key is `sk_log`.
pub(crate) fn due_item(record: &AlarmRecord, sk_log: &str) -> PortResult<Item> {
    to_item(
        "alarm due",
        &DueItem {
            pk: DUE_PK.into(),
            sk: due_sk(record.due_ms(), &record.alarm.id()),
            sk_log: sk_log.to_owned(),
        },
    )
}

/// The put of the due item of `record`, for the transaction that records it.
pub(crate) fn due_put(
    table: &str,
    record: &AlarmRecord,
    sk_log: &str,
) -> PortResult<TransactWriteItem> {
    let p = Put::builder()
        .table_name(table)
        .set_item(Some(due_item(record, sk_log)?))
        .build()
        .map_err(|e| build("an alarm due", e))?;
    Ok(TransactWriteItem::builder().put(p).build())
}

/// The deletion of the due item of `record`, for the transaction that closes it.
pub(crate) fn due_delete(table: &str, record: &AlarmRecord) -> PortResult<TransactWriteItem> {
    let d = Delete::builder()
        .table_name(table)
        .set_key(Some(key(
            DUE_PK,
            due_sk(record.due_ms(), &record.alarm.id()),
        )))
        .build()
        .map_err(|e| build("an alarm due's deletion", e))?;
    Ok(TransactWriteItem::builder().delete(d).build())
}

impl DynamoStore {
    /// [`traffic_ports::LampStore::due_alarms`].
    pub(crate) async fn read_due_alarms(
        &self,
        due_by_ms: i64,
        limit: usize,
    ) -> PortResult<Vec<AlarmRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = Query::partition(Table::Registry, DUE_PK).sk(SortKey::Between(
            ord_i64(i64::MIN),
            format!("{}#\u{10ffff}", ord_i64(due_by_ms)),
        ));
        q.consistent = false;
        q.first = Some(limit);
        let due: Vec<DueItem> = self
            .query(q)
            .await?
            .into_iter()
            .take(limit)
            .map(|i| from_item("alarm due", i))
            .collect::<PortResult<_>>()?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let keys = due
            .iter()
            .map(|d| key("alarm#log", d.sk_log.clone()))
            .collect();
        let mut by_sk: BTreeMap<String, AlarmItem> = BTreeMap::new();
        for i in self.batch_get(Table::Registry, keys, false).await? {
            let a: AlarmItem = from_item("alarm", i)?;
            by_sk.insert(a.sk.clone(), a);
        }
        Ok(due
            .into_iter()
            .filter_map(|d| by_sk.remove(&d.sk_log).map(AlarmItem::record))
            .collect())
    }

    /// [`traffic_ports::LampStore::claim_publication`].
    pub(crate) async fn claim(
        &self,
        alarm_id: &AlarmId,
        now_ms: i64,
        until_ms: i64,
    ) -> PortResult<Claim> {
        let table = self.table(Table::Registry)?;
        let sk = super::alarm_sk(alarm_id);
        let resp = self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key("alarm#log", sk.clone())))
            .update_expression("SET claimed_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND published = :f \
                 AND (attribute_not_exists(claimed_until) OR claimed_until <= :now) \
                 AND (attribute_not_exists(held_down) OR held_down = :f OR attribute_not_exists(repaired_at))",
            )
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match resp {
            Ok(r) => {
                let item = r.attributes.unwrap_or_default();
                self.metrics.write(
                    &Table::Registry.op("UpdateItem"),
                    write_units(item_size(&item)),
                );
                Ok(Claim::Mine(Box::new(
                    from_item::<AlarmItem>("alarm", item)?.record(),
                )))
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                self.metrics
                    .write(&Table::Registry.op("UpdateItem"), write_units(0));
                // Why: settled (then it leaves the alarms due), or someone else's claim.
                match self.alarm_item(&sk).await?.map(AlarmItem::record) {
                    None => Ok(Claim::Settled),
                    Some(r) if r.publication_settled() => {
                        self.delete_due(&r).await?;
                        Ok(Claim::Settled)
                    }
                    Some(_) => Ok(Claim::Taken),
                }
            }
            Err(e) => Err(port_error(format!("claiming alarm {alarm_id}"), e)),
        }
    }

    /// [`traffic_ports::LampStore::release_publication`].
    pub(crate) async fn release(&self, alarm_id: &AlarmId) -> PortResult<()> {
        let table = self.table(Table::Registry)?;
        let sk = super::alarm_sk(alarm_id);
        match self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key("alarm#log", sk)))
            .update_expression("REMOVE claimed_until")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
        {
            Ok(_) => {
                self.metrics
                    .write(&Table::Registry.op("UpdateItem"), write_units(0));
                Ok(())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(port_error(format!("releasing alarm {alarm_id}"), e)),
        }
    }

    /// Takes `record` out of the alarms due (it was published, or closed held down).
    pub(crate) async fn delete_due(&self, record: &AlarmRecord) -> PortResult<()> {
        let table = self.table(Table::Registry)?;
        self.ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(key(
                DUE_PK,
                due_sk(record.due_ms(), &record.alarm.id()),
            )))
            .send()
            .await
            .map_err(|e| port_error("settling an alarm due", e))?;
        self.metrics
            .write(&Table::Registry.op("DeleteItem"), write_units(0));
        Ok(())
    }
}
