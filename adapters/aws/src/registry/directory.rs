//! The directory generation: a number added to after every write of an intersection item,
//! so that the functions' caches of the intersections and lights reload only when it changes.

use crate::error::port_error;
use crate::items::{key, n_i64, num};
use crate::{DynamoStore, Table};
use traffic_ports::PortResult;

/// Partition and sort key of the directory generation item.
const GENERATION_KEY: (&str, &str) = ("directory", "generation");

impl DynamoStore {
    /// Adds 1 to the directory generation, after a write of an intersection item; a failure
    /// is logged, not returned (the write stands; caches reload within the hour anyway).
    pub(crate) async fn bump_directory(&self) {
        let Ok(table) = self.table(Table::Registry) else {
            return;
        };
        let result = self
            .ddb
            .update_item()
            .table_name(table)
            .set_key(Some(key(GENERATION_KEY.0, GENERATION_KEY.1)))
            .update_expression("ADD g :one")
            .expression_attribute_values(":one", num(1))
            .send()
            .await;
        match result {
            Ok(_) => self.metrics.write(&Table::Registry.op("UpdateItem"), 1.0),
            Err(e) => tracing::warn!(
                error = %port_error("adding to the directory generation", e),
                "the functions' caches of the intersections see this change at their next full reload"
            ),
        }
    }

    /// The directory generation (0 before the first write of an intersection).
    pub(super) async fn read_generation(&self) -> PortResult<Option<u64>> {
        let item = self
            .get_item(
                Table::Registry,
                key(GENERATION_KEY.0, GENERATION_KEY.1),
                false,
                "reading the directory generation",
            )
            .await?;
        Ok(Some(
            item.as_ref()
                .and_then(|i| n_i64(i, "g"))
                .map_or(0, |g| g.max(0) as u64),
        ))
    }
}
