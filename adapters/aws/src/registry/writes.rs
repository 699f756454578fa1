//! Writes of whole intersection items: create, put, replace at a version, delete (and the
//! lamp state a deleted intersection leaves). A write that replaces or deletes an item settles
//! that item's last change of timings (`timings.rs`); every write that changes an item adds to
//! the directory generation (`directory.rs`).

use super::{intersection_item, new_version, version_condition};
use crate::capacity::{item_size, write_units};
use crate::error::{code_of, port_error};
use crate::items::key;
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::ReturnValue;
use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_ports::Version;
use traffic_ports::{PortError, PortResult};

impl DynamoStore {
    /// Puts `x`'s item where there is none (else `AlreadyExists`).
    pub(super) async fn create_item(&self, x: &Intersection) -> PortResult<()> {
        let item = intersection_item(x, &new_version())?;
        let units = write_units(item_size(&item));
        let result = self
            .put_item(Table::Registry, item)?
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if !matches!(&result, Err(e) if code_of(e) != Some("ConditionalCheckFailedException")) {
            self.metrics.write(&Table::Registry.op("PutItem"), units);
        }
        match result {
            Ok(_) => {
                self.bump_directory().await;
                Ok(())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(PortError::AlreadyExists(format!("intersection {}", x.id)))
            }
            Err(e) => Err(port_error(format!("creating intersection {}", x.id), e)),
        }
    }

    /// Puts `x`'s item, whatever was there; the item it replaces settles its last change.
    pub(super) async fn put_item_of(&self, x: &Intersection) -> PortResult<()> {
        let item = intersection_item(x, &new_version())?;
        let bytes = item_size(&item);
        let resp = self
            .put_item(Table::Registry, item)?
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error(format!("storing intersection {}", x.id), e))?;
        let old = resp.attributes.filter(|a| !a.is_empty());
        self.metrics.write(
            &Table::Registry.op("PutItem"),
            write_units(bytes.max(old.as_ref().map_or(0, item_size))),
        );
        self.settle(old.as_ref(), None).await;
        self.bump_directory().await;
        Ok(())
    }

    /// Deletes `id`'s item, if any (whether there was one).
    pub(super) async fn delete_item_of(&self, id: &IntersectionId) -> PortResult<bool> {
        let item = key("intersections", id.as_str());
        let old = self
            .delete_item(Table::Registry, item, format!("deleting intersection {id}"))
            .await?;
        let existed = old.as_ref().is_some_and(|a| !a.is_empty());
        if existed {
            self.settle(old.as_ref(), None).await;
            self.bump_directory().await;
            self.forget_deleted(id).await;
        }
        Ok(existed)
    }

    /// Puts `x`'s item while the stored one is at version `expected`; its new version.
    pub(super) async fn replace_item_if(
        &self,
        x: &Intersection,
        expected: &Version,
    ) -> PortResult<Version> {
        let version = new_version();
        let (condition, value) = version_condition(expected);
        let item = intersection_item(x, &version)?;
        let bytes = item_size(&item);
        let mut req = self
            .put_item(Table::Registry, item)?
            .condition_expression(condition)
            .return_values(ReturnValue::AllOld);
        if let Some(v) = value {
            req = req.expression_attribute_values(":expected", v);
        }
        let result = req.send().await;
        if !matches!(&result, Err(e) if code_of(e) != Some("ConditionalCheckFailedException")) {
            let old = result.as_ref().ok().and_then(|r| r.attributes());
            let bytes = bytes.max(old.map_or(0, item_size));
            self.metrics
                .write(&Table::Registry.op("PutItem"), write_units(bytes));
        }
        match result {
            Ok(resp) => {
                self.settle(resp.attributes.as_ref(), None).await;
                self.bump_directory().await;
                Ok(version)
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(self.version_failure(&x.id, expected).await)
            }
            Err(e) => Err(port_error(format!("replacing intersection {}", x.id), e)),
        }
    }

    /// Deletes `id`'s item while it is at version `expected`.
    pub(super) async fn delete_item_if(
        &self,
        id: &IntersectionId,
        expected: &Version,
    ) -> PortResult<()> {
        let table = self.table(Table::Registry)?;
        let (condition, value) = version_condition(expected);
        let mut req = self
            .ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(key("intersections", id.as_str())))
            .return_values(ReturnValue::AllOld)
            .condition_expression(condition);
        if let Some(v) = value {
            req = req.expression_attribute_values(":expected", v);
        }
        match req.send().await {
            Ok(resp) => {
                self.metrics.write(
                    &Table::Registry.op("DeleteItem"),
                    write_units(resp.attributes().map_or(0, item_size)),
                );
                self.settle(resp.attributes.as_ref(), None).await;
                self.bump_directory().await;
                self.forget_deleted(id).await;
                Ok(())
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                Err(self.version_failure(id, expected).await)
            }
            Err(e) => Err(port_error(format!("deleting intersection {id}"), e)),
        }
    }

    /// After an intersection's deletion: its lamp item and lamp summary entry go too (a
    /// failure is logged; the next summarising of the table removes what is left).
    pub(super) async fn forget_deleted(&self, id: &IntersectionId) {
        if let Err(e) = self.forget_lamps(id).await {
            tracing::warn!(intersection = %id, error = %e, "lamp states of a deleted intersection not removed");
        }
    }
}
