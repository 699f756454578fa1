//! Conditional updates of many intersection items at once, each at the version it was read
//! at: the retimings (`timings.rs`) and the proposals.

use super::{new_version, version_condition};
use crate::capacity::write_units;
use crate::error::{code_of, is_server_error, is_transient, port_error};
use crate::items::{Item, key};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use traffic_core::IntersectionId;
use traffic_ports::Version;
use traffic_ports::{PortError, PortResult};

/// Timing updates in flight at once.
pub(crate) const PARALLEL_UPDATES: usize = 16;

impl DynamoStore {
    /// Sends `updates` to intersection items, [`PARALLEL_UPDATES`] at a time: each an
    /// `UpdateItem` whose expression refers to the item's map as `#x` and sets `version = :v`
    /// (a fresh version is given here), applied only while the item is at the expected
    /// version, returning `returns` of the item, which `bytes` sizes for billing. Returns the
    /// intersections skipped (changed or gone since they were read, or still failing on a
    /// transient error past the retries: they keep what they have until the next round) and
    /// what each update written returned; `what` names the update in an error (`"retiming"`:
    /// "retiming I-0001").
    pub(crate) async fn update_at_versions(
        &self,
        updates: Vec<(IntersectionId, &Version, UpdateItemFluentBuilder)>,
        what: &str,
        returns: ReturnValue,
        bytes: impl Fn(&Item, &IntersectionId) -> usize,
    ) -> PortResult<(Vec<IntersectionId>, Vec<(IntersectionId, Item)>)> {
        let mut skipped = Vec::new();
        let mut written = Vec::with_capacity(updates.len());
        let mut updates = updates.into_iter().peekable();
        while updates.peek().is_some() {
            let mut set = tokio::task::JoinSet::new();
            for (id, expected_version, req) in updates.by_ref().take(PARALLEL_UPDATES) {
                let (condition, expected) = version_condition(expected_version);
                let mut req = req
                    .set_key(Some(key("intersections", id.as_str())))
                    .condition_expression(condition)
                    .expression_attribute_names("#x", "intersection")
                    .expression_attribute_values(":v", AttributeValue::S(new_version().to_string()))
                    .return_values(returns.clone());
                if let Some(e) = expected {
                    req = req.expression_attribute_values(":expected", e);
                }
                set.spawn(async move { (id, req.send().await) });
            }
            while let Some(joined) = set.join_next().await {
                let (id, result) = joined.map_err(|e| PortError::backend(what, e))?;
                match result {
                    Ok(resp) => {
                        let item = resp.attributes.unwrap_or_default();
                        self.metrics.write(
                            &Table::Registry.op("UpdateItem"),
                            write_units(bytes(&item, &id)),
                        );
                        written.push((id, item));
                    }
                    // Edited by an operator, or deleted, since it was read: skipped.
                    Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                        self.metrics
                            .write(&Table::Registry.op("UpdateItem"), write_units(0));
                        skipped.push(id);
                    }
                    Err(e) if is_transient(&e) || is_server_error(&e) => {
                        tracing::warn!(intersection = %id, error = %port_error(what, e), "{what} deferred to the next round: it kept failing");
                        skipped.push(id);
                    }
                    Err(e) => return Err(port_error(format!("{what} {id}"), e)),
                }
            }
        }
        Ok((skipped, written))
    }
}
