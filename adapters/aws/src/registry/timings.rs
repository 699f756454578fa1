//! A change of an intersection's timings and its history entry, without a transaction: the
//! write that changes the timings also sets the intersection item's `last_change` (the history
//! item, as a map), and the history item is put after it. A crash or a failure between the two
//! leaves the change on the intersection item, where [`Registry::timing_history`] finds it, and
//! the next write of that item (each returns the item as it was) puts the change it replaces
//! into the history: no change of timings is ever without its entry, and no entry is ever
//! without its change.
//!
//! Every write of an intersection item settles its predecessor's `last_change` this way, so
//! the price is one more history `Put` per write (idempotent: the same item again), where a
//! `TransactWriteItems` of the two bills each item twice. Transactions are also what moto, the
//! emulator the tests run on, handles worst: it copies every table per transaction, and its
//! memory passed 17 GB over a 1,000-intersection city's retimings.
//!
//! [`Registry::timing_history`]: traffic_ports::Registry::timing_history

use super::history::{TimingItem, edit_filed};
use super::{intersection_item_with, new_version, version_condition};
use crate::capacity::{item_size, write_units};
use crate::error::{code_of, port_error};
use crate::items::{Item, put_request, to_av, to_item};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::window::WindowKey;
use traffic_ports::Version;
use traffic_ports::{PortResult, TimingChange, TimingUpdate};

/// The attribute of an intersection item that holds its last change of timings.
pub(crate) const LAST_CHANGE: &str = "last_change";

/// The history item an intersection item's `last_change` holds, if any.
pub(crate) fn last_change_of(item: &Item) -> Option<Item> {
    match item.get(LAST_CHANGE) {
        Some(AttributeValue::M(m)) if !m.is_empty() => Some(m.clone()),
        _ => None,
    }
}

/// The key of a history item.
pub(crate) fn history_sk(item: &Item) -> Option<&str> {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The history items a write of an intersection item leaves to put: the change it wrote
/// (`new`), and the change the item held before (`old`'s), unless that is the same one.
fn to_record(old: Option<&Item>, new: Option<Item>) -> Vec<Item> {
    let previous = old
        .and_then(last_change_of)
        .filter(|p| new.as_ref().is_none_or(|n| history_sk(n) != history_sk(p)));
    new.into_iter().chain(previous).collect()
}

/// What billing sizes an update that replaced `old` (the item before it) and set a
/// `last_change` of `new_change_bytes`: the larger of the item before and after, the after
/// estimated as the before with its `last_change` replaced (the phases it also sets have the
/// same shape as the ones they replace).
fn update_bytes(old: &Item, new_change_bytes: usize) -> usize {
    let old_bytes = item_size(old);
    let old_change = last_change_of(old).map_or(0, |c| item_size(&c) + LAST_CHANGE.len());
    old_bytes.max(old_bytes - old_change.min(old_bytes) + new_change_bytes + LAST_CHANGE.len())
}

impl DynamoStore {
    /// Puts `changes` (history items) into the history. A failure is logged, not returned:
    /// each change is still its intersection item's `last_change`, which the history reader
    /// reads and the intersection's next write puts here again.
    pub(crate) async fn record_history(&self, changes: Vec<Item>) {
        if changes.is_empty() {
            return;
        }
        // An operator's edit is filed by its day too, for the archive (`by_day.rs`).
        let edits: Vec<Item> = changes.iter().filter_map(edit_filed).collect();
        let mut requests = Vec::with_capacity(changes.len() + edits.len());
        for c in changes.into_iter().chain(edits) {
            match put_request(c) {
                Ok(r) => requests.push(r),
                Err(e) => tracing::warn!(error = %e, "a timing change not put into the history"),
            }
        }
        if let Err(e) = self.batch_write(Table::Registry, requests).await {
            tracing::warn!(
                error = %e,
                "timing changes not put into the history yet: each is kept on its intersection until its next write"
            );
        }
    }

    /// After a write that returned the intersection item as it was (`old`): puts `new`
    /// (the written change, if any) and the change `old` held, unless it is `new`.
    pub(crate) async fn settle(&self, old: Option<&Item>, new: Option<Item>) {
        self.record_history(to_record(old, new)).await;
    }

    /// [`traffic_ports::Registry::set_timings`]: per intersection, one `UpdateItem` of its
    /// phases, `plan`, `retimed_from` and `last_change` (if still at the expected version), then the
    /// history items of every intersection written, in batches; returns the intersections
    /// skipped because they changed, are gone, or kept failing on a transient error.
    pub(crate) async fn set_timings_recorded(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>> {
        let table = self.table(Table::Registry)?.to_owned();
        let from_text = from.to_string();
        let mut updates = Vec::with_capacity(timings.len());
        let mut changes = std::collections::BTreeMap::new();
        for u in timings {
            let change = TimingChange::retiming(*from, u.phases.clone());
            let history = to_item("timing change", &TimingItem::of(&u.id, &change))?;
            let req = self
                .ddb
                .update_item()
                .table_name(&table)
                .expression_attribute_names("#p", "phases")
                .expression_attribute_names("#f", "retimed_from")
                .expression_attribute_names("#l", "plan")
                .expression_attribute_names("#c", LAST_CHANGE)
                .expression_attribute_values(":p", to_av("phases", &u.phases)?)
                .expression_attribute_values(":f", AttributeValue::S(from_text.clone()))
                .expression_attribute_values(":c", AttributeValue::M(history.clone()));
            // The plan travels with the timings it was drawn from (none: a stale one goes).
            let req = match &u.plan {
                Some(plan) => req
                    .update_expression(
                        "SET #x.#p = :p, #x.#f = :f, #x.#l = :l, #c = :c, version = :v",
                    )
                    .expression_attribute_values(":l", to_av("plan", plan)?),
                None => req.update_expression(
                    "SET #x.#p = :p, #x.#f = :f, #c = :c, version = :v REMOVE #x.#l",
                ),
            };
            updates.push((u.id.clone(), &u.expected_version, req));
            changes.insert(u.id.clone(), history);
        }
        let (skipped, written) = self
            .update_at_versions(updates, "retiming", ReturnValue::AllOld, |old, id| {
                update_bytes(old, changes.get(id).map_or(0, item_size))
            })
            .await?;
        let history = written
            .iter()
            .flat_map(|(id, old)| to_record(Some(old), changes.remove(id)))
            .collect();
        self.record_history(history).await;
        Ok(skipped)
    }

    /// [`traffic_ports::Registry::replace_intersection_recording`]: the intersection item
    /// with the change as its `last_change` (conditional on `expected`), then the history.
    pub(crate) async fn replace_recording(
        &self,
        x: &Intersection,
        expected: &Version,
        change: &TimingChange,
    ) -> PortResult<Version> {
        let version = new_version();
        let record = TimingItem::of(&x.id, change);
        let history = to_item("timing change", &record)?;
        let item = intersection_item_with(x, &version, Some(record))?;
        let (condition, value) = version_condition(expected);
        let mut req = self
            .put_item(Table::Registry, item.clone())?
            .condition_expression(condition)
            .return_values(ReturnValue::AllOld);
        if let Some(v) = value {
            req = req.expression_attribute_values(":expected", v);
        }
        match req.send().await {
            Ok(resp) => {
                let old = resp.attributes.filter(|a| !a.is_empty());
                let bytes = item_size(&item).max(old.as_ref().map_or(0, item_size));
                self.metrics
                    .write(&Table::Registry.op("PutItem"), write_units(bytes));
                self.settle(old.as_ref(), Some(history)).await;
                self.bump_directory().await;
                Ok(version)
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                self.metrics.write(
                    &Table::Registry.op("PutItem"),
                    write_units(item_size(&item)),
                );
                Err(self.version_failure(&x.id, expected).await)
            }
            Err(e) => Err(port_error(
                format!("replacing intersection {} with its timing change", x.id),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sk: &str) -> Item {
        Item::from([
            ("pk".to_owned(), AttributeValue::S("timings#A".into())),
            ("sk".to_owned(), AttributeValue::S(sk.into())),
        ])
    }

    #[test]
    fn an_item_without_a_last_change_has_none() {
        assert_eq!(last_change_of(&Item::new()), None);
        let mut item = Item::new();
        item.insert(LAST_CHANGE.into(), AttributeValue::M(Item::new()));
        assert_eq!(last_change_of(&item), None);
        item.insert(LAST_CHANGE.into(), AttributeValue::M(change("w1")));
        assert_eq!(
            last_change_of(&item).as_ref().and_then(history_sk),
            Some("w1")
        );
    }

    #[test]
    fn an_update_is_billed_on_the_larger_of_the_item_before_and_after() {
        let mut old = Item::from([("pk".to_owned(), AttributeValue::S("x".repeat(2000)))]);
        // No change before: the item grows by the new one.
        assert_eq!(
            update_bytes(&old, 500),
            item_size(&old) + 500 + LAST_CHANGE.len()
        );
        // A change before as large as the new one: the same size.
        old.insert(LAST_CHANGE.into(), AttributeValue::M(change("w1")));
        let c = item_size(&change("w1"));
        assert_eq!(update_bytes(&old, c), item_size(&old));
        // A smaller change: the item before is the larger.
        assert_eq!(update_bytes(&old, 0), item_size(&old));
    }
}
