//! A shard's commit: its deltas (and the pane index entries not yet written), then its meta in
//! one transaction, conditional on the merge's closed mark and the stored meta.

use super::{
    DeltaItem, MERGE_STATE_BYTES, MarkItem, MetaItem, PaneIndex, ShardIndex, delta_pk, delta_sk,
    mark_pk, merge_key, meta_pk, put, transaction_units,
};
use crate::capacity::item_size;
use crate::error::{build, port_error};
use crate::items::{Bytes, encode, num, put_request, to_item};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use traffic_core::pane::Commit;
use traffic_core::redrive::RedriveMark;
use traffic_ports::{PortError, PortResult};

impl DynamoStore {
    /// A commit, with a redrive's mark in the meta's transaction (conditional on its absence).
    pub(super) async fn commit_with(
        &self,
        c: &Commit,
        mark: Option<&RedriveMark>,
        now_ms: i64,
    ) -> PortResult<()> {
        let table = self.table(Table::State)?;
        let shard = &c.meta.shard_id;
        let expires_at = self.opts.expires_at(now_ms);

        // 1. The deltas, unconditionally, with the pane index entries not known to exist.
        let mut writes = Vec::with_capacity(c.deltas.len() + 1);
        let mut new_panes = Vec::new();
        for d in &c.deltas {
            let start = d.key.pane_start_ms;
            let item = to_item(
                "delta",
                &DeltaItem {
                    pk: delta_pk(start),
                    sk: delta_sk(&d.key),
                    d: Bytes(d.encode()),
                    expires_at,
                },
            )?;
            let size = item_size(&item);
            if size > crate::DYNAMODB_MAX_ITEM_BYTES {
                return Err(PortError::backend(
                    "committing shard state",
                    format!(
                        "delta {} {} is {size} bytes",
                        delta_pk(start),
                        delta_sk(&d.key)
                    ),
                ));
            }
            writes.push(put_request(item)?);
            if !self.pane_known(start) && !new_panes.contains(&start) {
                new_panes.push(start);
                writes.push(PaneIndex::put(start, expires_at)?);
            }
        }
        if !writes.is_empty() {
            self.batch_write(Table::State, writes).await?;
            self.remember_panes(new_panes);
        }

        // 2. One transaction: the merge's closed mark unchanged, the meta conditional on the
        // stored checkpoint.
        let meta = to_item(
            "shard meta",
            &MetaItem {
                pk: meta_pk(shard),
                sk: "meta".into(),
                shard_id: shard.clone(),
                applied_through: c
                    .meta
                    .applied_through
                    .as_ref()
                    .map(|s| s.as_str().to_owned()),
                state: Bytes(encode(&c.meta)?),
                commits: Some(c.meta.commits),
            },
        )?;
        let meta_size = item_size(&meta);
        let mut check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(merge_key()));
        check = match c.closed_ms {
            Some(ms) => check
                .condition_expression("closed_ms = :closed")
                .expression_attribute_values(":closed", num(ms)),
            None => check.condition_expression("attribute_not_exists(closed_ms)"),
        };
        let check = check
            .build()
            .map_err(|e| build("a transaction condition check", e))?;
        let mut meta_put = Put::builder().table_name(table).set_item(Some(meta));
        // The commit count too: a redrive moves it and not the checkpoint (an item written
        // before the count was kept has none).
        let commits = "(attribute_not_exists(commits) OR commits = :commits)";
        meta_put = match &c.expected {
            Some(seq) => meta_put
                .condition_expression(format!("applied_through = :expected AND {commits}"))
                .expression_attribute_values(":expected", AttributeValue::S(seq.as_str().into())),
            None => meta_put.condition_expression(format!(
                "attribute_not_exists(applied_through) AND {commits}"
            )),
        };
        meta_put = meta_put.expression_attribute_values(":commits", num(c.expected_commits));
        let meta_put = meta_put
            .build()
            .map_err(|e| build("a transaction put", e))?;
        let mut actions = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().put(meta_put).build(),
        ];
        // A replaced item bills the larger of its old and new sizes.
        let old_meta = self.meta_size(shard).unwrap_or(0);
        let mut sizes = vec![MERGE_STATE_BYTES, meta_size.max(old_meta)];
        if let Some(mark) = mark {
            let item = to_item(
                "redrive mark",
                &MarkItem {
                    pk: mark_pk(shard),
                    sk: format!("{:020}", mark.id),
                    mark: Bytes(encode(mark)?),
                    expires_at,
                },
            )?;
            sizes.push(item_size(&item));
            let mark_put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| build("a transaction put", e))?;
            actions.push(TransactWriteItem::builder().put(mark_put).build());
        }
        if c.expected.is_none() {
            let idx = to_item(
                "shard index",
                &ShardIndex {
                    pk: "shards".into(),
                    sk: shard.to_string(),
                    shard_id: shard.clone(),
                },
            )?;
            sizes.push(item_size(&idx));
            actions.push(TransactWriteItem::builder().put(put(table, idx)?).build());
        }
        let result = self.transact(actions).await;
        // Billed whether or not a condition failed.
        self.metrics.write(
            &Table::State.op("TransactWriteItems"),
            transaction_units(&sizes),
        );
        match result {
            Ok(_) => {
                self.set_meta_size(shard, meta_size);
                Ok(())
            }
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) =
                    e.as_service_error()
                {
                    let codes: Vec<&str> = tc
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None"))
                        .collect();
                    match codes.iter().position(|c| *c == "ConditionalCheckFailed") {
                        Some(0) => {
                            return Err(PortError::Conflict(format!(
                                "shard {shard}: the merge's closed mark is no longer {:?}",
                                c.closed_ms
                            )));
                        }
                        Some(1) => {
                            return Err(PortError::Conflict(format!(
                                "shard {shard}: the stored meta is no longer at {:?} after {} \
                                 commits",
                                c.expected.as_ref().map(|s| s.as_str()),
                                c.expected_commits
                            )));
                        }
                        Some(_) => {
                            return Err(PortError::Conflict(format!(
                                "shard {shard}: failure record {:x} was redriven already",
                                mark.map_or(0, |m| m.id)
                            )));
                        }
                        None => {}
                    }
                    if codes.iter().any(|c| {
                        matches!(
                            *c,
                            "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                                | "RequestLimitExceeded"
                        )
                    }) {
                        return Err(PortError::Unavailable {
                            context: format!(
                                "committing shard {shard}: transaction cancelled ({})",
                                codes.join(", ")
                            ),
                            source: Box::new(e),
                        });
                    }
                }
                Err(port_error(format!("committing shard {shard}"), e))
            }
        }
    }
}
