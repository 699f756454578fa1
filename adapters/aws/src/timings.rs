//! A change of an intersection's timings and its history entry, written together: one
//! `TransactWriteItems` of the intersection item (conditional on the version it was computed
//! from) and the `timings#<id>` history item, so a crash or a failure between them can no
//! longer leave new timings whose history entry is lost. A retiming is one transaction per
//! intersection (sixteen in flight), an operator's edit one; each bills twice the units of its
//! two items, as every transaction does.

use crate::capacity::{item_size, write_units};
use crate::error::{build, code_of, is_transient, port_error};
use crate::items::{Item, key, to_av, to_item};
use crate::registry::{TimingItem, intersection_item, new_version, version_condition};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::window::WindowKey;
use traffic_ports::{PortResult, TimingChange, TimingUpdate};

/// What a retiming's `SET` leaves out of the intersection item's size (its lights, position,
/// control and name), bytes: a transaction returns no item to size, so the item is billed as
/// its phases (the history item's size) plus this.
const INTERSECTION_BEYOND_PHASES: usize = 600;

/// Whether a cancelled transaction failed on a condition (the intersection changed or is
/// gone) or a concurrent transaction on the same item, rather than on a malformed request.
fn cancelled_by_condition(e: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>) -> bool {
    if code_of(e) != Some("TransactionCanceledException") {
        return false;
    }
    let reasons = match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => t.cancellation_reasons(),
        _ => &[],
    };
    reasons.is_empty()
        || reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("ConditionalCheckFailed") | Some("TransactionConflict")
            )
        })
}

/// Attempts at a retiming's transaction: a merge run has minutes to spare, and an internal
/// error or a throttled transaction given up on would leave its intersection on old timings
/// until the next round.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// The retry policy of a retiming's transaction ([`TRANSACTION_ATTEMPTS`]).
fn transaction_retries() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::default().retry_config(
        aws_sdk_dynamodb::config::retry::RetryConfig::standard()
            .with_max_attempts(TRANSACTION_ATTEMPTS),
    )
}

/// Whether the service answered with a 5xx (an internal error, which the SDK retries but
/// cannot always name: a body that is not JSON).
fn server_error<E>(e: &SdkError<E, HttpResponse>) -> bool {
    e.raw_response()
        .is_some_and(|r| r.status().is_server_error())
}

/// Intersections retimed in one transaction (two actions each, of DynamoDB's 100), one
/// transaction at a time. moto, the emulator the tests run on, copies the whole table per
/// transaction and restores that copy when one is cancelled, undoing any transaction that ran
/// beside it, and its memory grew past 17 GB over a 1,000-intersection run of one transaction
/// per intersection; groups make a round of 1,000 retimings 20 transactions.
const PER_TRANSACTION: usize = 50;

/// What a failed retiming transaction means for its intersections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// One of them was edited by an operator, or deleted, since it was read: skipped.
    Changed,
    /// Still failing past its attempts on a transient error (throttled, an internal error:
    /// moto's 500s among them): nothing was written, so they keep their timings until the
    /// next round rather than failing the whole run.
    Deferred,
    /// Anything else (denied, malformed): the run fails.
    Failed,
}

fn verdict(e: &SdkError<TransactWriteItemsError, HttpResponse>) -> Verdict {
    if cancelled_by_condition(e) {
        Verdict::Changed
    } else if is_transient(e) || server_error(e) {
        Verdict::Deferred
    } else {
        Verdict::Failed
    }
}

/// Notes the outcome of one intersection's own transaction.
fn judge(
    id: &IntersectionId,
    e: SdkError<TransactWriteItemsError, HttpResponse>,
    skipped: &mut Vec<IntersectionId>,
) -> PortResult<()> {
    match verdict(&e) {
        Verdict::Changed => skipped.push(id.clone()),
        Verdict::Deferred => {
            tracing::warn!(intersection = %id, error = %e, "retiming deferred to the next round: its transaction kept failing");
            skipped.push(id.clone());
        }
        Verdict::Failed => return Err(port_error(format!("retiming {id}"), e)),
    }
    Ok(())
}

/// A `Put` of `item` as a transaction action.
fn put(table: &str, item: Item, what: &str) -> PortResult<TransactWriteItem> {
    let p = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| build(what, e))?;
    Ok(TransactWriteItem::builder().put(p).build())
}

impl DynamoStore {
    /// One retiming transaction of `actions`, billed `units` (a cancelled one too).
    async fn send_transaction(
        &self,
        actions: Vec<TransactWriteItem>,
        units: f64,
    ) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
        let result = self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(actions))
            .customize()
            .config_override(transaction_retries())
            .send()
            .await;
        self.metrics
            .write(&Table::Registry.op("TransactWriteItems"), units);
        result.map(|_| ())
    }

    /// [`traffic_ports::Registry::set_timings`]: per intersection, its new phases and
    /// `retimed_from` (if still at the expected version) and its history entry, in one
    /// transaction; returns the intersections skipped because they changed or are gone.
    pub(crate) async fn set_timings_atomically(
        &self,
        timings: &[TimingUpdate],
        from: &WindowKey,
    ) -> PortResult<Vec<IntersectionId>> {
        let table = self.table(Table::Registry)?.to_owned();
        let from_text = from.to_string();
        let mut skipped = Vec::new();
        let mut planned = Vec::with_capacity(timings.len());
        for u in timings {
            let change = TimingChange::retiming(*from, u.phases.clone());
            let history = to_item("timing change", &TimingItem::of(&u.id, &change))?;
            let units = 2.0
                * (write_units(item_size(&history))
                    + write_units(item_size(&history) + INTERSECTION_BEYOND_PHASES));
            let (condition, expected) = version_condition(&u.expected_version);
            let mut update = Update::builder()
                .table_name(&table)
                .set_key(Some(key("intersections", u.id.as_str())))
                .update_expression("SET #x.#p = :p, #x.#f = :f, version = :v")
                .condition_expression(condition)
                .expression_attribute_names("#x", "intersection")
                .expression_attribute_names("#p", "phases")
                .expression_attribute_names("#f", "retimed_from")
                .expression_attribute_values(":p", to_av("phases", &u.phases)?)
                .expression_attribute_values(":f", AttributeValue::S(from_text.clone()))
                .expression_attribute_values(":v", AttributeValue::S(new_version()));
            if let Some(e) = expected {
                update = update.expression_attribute_values(":expected", e);
            }
            let update = update.build().map_err(|e| build("a retiming", e))?;
            let actions = vec![
                TransactWriteItem::builder().update(update).build(),
                put(&table, history, "a retiming's history entry")?,
            ];
            planned.push((u.id.clone(), units, actions));
        }
        // A group of intersections is one transaction; when one of them changed meanwhile
        // (the whole transaction is cancelled) the group is sent again one intersection at a
        // time, so that only that one is skipped.
        for group in planned.chunks(PER_TRANSACTION) {
            let actions: Vec<TransactWriteItem> = group
                .iter()
                .flat_map(|(_, _, a)| a.iter().cloned())
                .collect();
            let units: f64 = group.iter().map(|(_, u, _)| u).sum();
            match self.send_transaction(actions, units).await {
                Ok(()) => {}
                Err(e) if group.len() > 1 && verdict(&e) == Verdict::Changed => {
                    for (id, units, actions) in group {
                        if let Err(e) = self.send_transaction(actions.clone(), *units).await {
                            judge(id, e, &mut skipped)?;
                        }
                    }
                }
                Err(e) => {
                    let Some((first, _, _)) = group.first() else {
                        continue;
                    };
                    if verdict(&e) == Verdict::Failed {
                        return Err(port_error(format!("retiming {first}"), e));
                    }
                    for (id, _, _) in group {
                        tracing::warn!(intersection = %id, error = %e, "retiming deferred to the next round: its transaction kept failing");
                        skipped.push(id.clone());
                    }
                }
            }
        }
        Ok(skipped)
    }

    /// [`traffic_ports::Registry::replace_intersection_recording`]: the intersection item
    /// (conditional on `expected`) and the history entry in one transaction.
    pub(crate) async fn replace_recording(
        &self,
        x: &Intersection,
        expected: &str,
        change: &TimingChange,
    ) -> PortResult<String> {
        let table = self.table(Table::Registry)?;
        let version = new_version();
        let item = intersection_item(x, &version)?;
        let history = to_item("timing change", &TimingItem::of(&x.id, change))?;
        let units = 2.0 * (write_units(item_size(&item)) + write_units(item_size(&history)));
        let (condition, value) = version_condition(expected);
        let mut p = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition);
        if let Some(v) = value {
            p = p.expression_attribute_values(":expected", v);
        }
        let p = p.build().map_err(|e| build("an intersection's put", e))?;
        let actions = vec![
            TransactWriteItem::builder().put(p).build(),
            put(table, history, "a timing change")?,
        ];
        let result = self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        self.metrics
            .write(&Table::Registry.op("TransactWriteItems"), units);
        match result {
            Ok(_) => {
                self.bump_directory().await;
                Ok(version)
            }
            Err(e) if cancelled_by_condition(&e) => {
                Err(self.version_failure(&x.id, expected).await)
            }
            Err(e) => Err(port_error(
                format!("replacing intersection {} with its timing change", x.id),
                e,
            )),
        }
    }
}
