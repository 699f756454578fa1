//! [`StateStore`] on `STATE_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | shard meta | `shard#<shard_id>` | `meta` | `shard_id`, `applied_through` (S), `state` (B) |
//! | pane item | `pane#<start_ms>` | `<shard_id>#<bucket>` | `start_ms`, `expires_at`, `state` (B) |
//! | shard index | `shards` | `<shard_id>` | `shard_id` |
//! | pane index | `panes` | `ord(start_ms)` | `start_ms`, `expires_at` |
//!
//! `state` is the postcard encoding of the core's [`ShardMeta`] or [`PaneItem`]. A commit is one
//! `TransactWriteItems`: the meta, conditional on the stored `applied_through` (or its absence),
//! its pane items, and the index entries the reader needs (the shard's on its first commit; a
//! pane's when this process has not seen it written). The indexes let the merge list shards
//! and panes with one query each instead of scanning a table of large items.

use crate::error::{build, port_error};
use crate::items::{
    Bytes, Item, Query, SortKey, decode, encode, from_item, key, n_i64, ord_i64, s, to_item,
};
use crate::metrics::units;
use crate::{DYNAMODB_MAX_TRANSACTION_ACTIONS, DYNAMODB_MAX_TRANSACTION_BYTES, DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use traffic_core::pane::{Commit, PaneItem, PaneKey, ShardMeta};
use traffic_ports::{PortError, PortResult, StateStore};

/// Bytes kept free in a transaction for the meta and index entries.
const RESERVE_BYTES: usize = 64 * 1024;
/// How much a pane item is assumed to grow within one batch, on top of the largest item this
/// process has seen (a reading adds about 13 bytes to its item; a batch of 10,000 readings
/// spread over 16 buckets adds about 8 KB to each).
const GROWTH_BYTES: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct MetaItem {
    pk: String,
    sk: String,
    shard_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applied_through: Option<String>,
    state: Bytes,
}

#[derive(Serialize, Deserialize)]
struct PaneRow {
    pk: String,
    sk: String,
    start_ms: i64,
    expires_at: i64,
    state: Bytes,
}

#[derive(Serialize, Deserialize)]
struct ShardIndex {
    pk: String,
    sk: String,
    shard_id: String,
}

#[derive(Serialize, Deserialize)]
struct PaneIndex {
    pk: String,
    sk: String,
    start_ms: i64,
    expires_at: i64,
}

fn meta_pk(shard_id: &str) -> String {
    format!("shard#{shard_id}")
}

fn pane_pk(start_ms: i64) -> String {
    format!("pane#{start_ms}")
}

fn pane_sk(k: &PaneKey) -> String {
    format!("{}#{}", k.shard_id, k.bucket)
}

fn decode_meta(item: Item) -> PortResult<ShardMeta> {
    let m: MetaItem = from_item("shard meta", item)?;
    decode(&m.state.0, "shard meta")
}

fn decode_pane(item: Item) -> PortResult<PaneItem> {
    let p: PaneRow = from_item("pane item", item)?;
    decode(&p.state.0, "pane item")
}

fn put(table: &str, item: Item) -> PortResult<Put> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| build("a transaction put", e))
}

/// Rough size of an item as DynamoDB counts it (names plus values).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 16,
                }
        })
        .sum()
}

impl DynamoStore {
    fn remember_panes(&self, starts: impl IntoIterator<Item = i64>) {
        if let Ok(mut k) = self.known_panes.lock() {
            if k.len() > 100_000 {
                k.clear();
            }
            k.extend(starts);
        }
    }

    fn saw_item(&self, bytes: usize) {
        self.largest_item
            .fetch_max(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn pane_known(&self, start: i64) -> bool {
        self.known_panes
            .lock()
            .map(|k| k.contains(&start))
            .unwrap_or(false)
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    /// Pane items such that a transaction stays within 100 actions and 4 MB: each item may
    /// bring an index entry, plus the meta and the shard's index entry (at most 49); and
    /// each item is taken to be as large as the largest this process has loaded or written
    /// plus 64 KB of growth, at most `max_item_bytes` (so 9 items when items may reach
    /// DynamoDB's 400 KB, 49 while they are small). A commit checks the real sizes again.
    fn max_items_per_commit(&self) -> usize {
        let largest = self.largest_item.load(std::sync::atomic::Ordering::Relaxed);
        let per_item = (largest + GROWTH_BYTES)
            .min(self.opts.max_item_bytes)
            .max(1);
        let by_size = (DYNAMODB_MAX_TRANSACTION_BYTES - RESERVE_BYTES) / per_item;
        let by_actions = (DYNAMODB_MAX_TRANSACTION_ACTIONS - 2) / 2;
        by_size.clamp(1, by_actions)
    }

    async fn load_shard(
        &self,
        shard_id: &str,
        keys: &[PaneKey],
    ) -> PortResult<(Option<ShardMeta>, Vec<PaneItem>)> {
        let mut wanted = Vec::with_capacity(keys.len() + 1);
        wanted.push(key(meta_pk(shard_id), "meta"));
        wanted.extend(keys.iter().map(|k| key(pane_pk(k.start_ms), pane_sk(k))));
        let found = self.batch_get(Table::State, wanted, true).await?;
        let mut meta = None;
        let mut items = Vec::new();
        for item in found {
            if s(&item, "sk") == Some("meta") {
                meta = Some(decode_meta(item)?);
            } else {
                self.saw_item(item_size(&item));
                items.push(decode_pane(item)?);
            }
        }
        self.remember_panes(items.iter().map(|i| i.key.start_ms));
        Ok((meta, items))
    }

    async fn commit(&self, c: &Commit<'_>) -> PortResult<()> {
        let table = self.table(Table::State)?;
        if c.items.len() > self.max_items_per_commit() {
            return Err(PortError::backend(
                "committing shard state",
                format!(
                    "{} pane items in one commit; at most {} fit a transaction",
                    c.items.len(),
                    self.max_items_per_commit()
                ),
            ));
        }
        let shard = &c.meta.shard_id;
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
            },
        )?;
        let mut meta_put = Put::builder().table_name(table).set_item(Some(meta));
        meta_put = match &c.expected {
            Some(seq) => meta_put
                .condition_expression("applied_through = :expected")
                .expression_attribute_values(":expected", AttributeValue::S(seq.as_str().into())),
            None => meta_put.condition_expression("attribute_not_exists(applied_through)"),
        };
        let meta_put = meta_put
            .build()
            .map_err(|e| build("a transaction put", e))?;
        let mut actions = vec![TransactWriteItem::builder().put(meta_put).build()];
        if c.expected.is_none() {
            let idx = to_item(
                "shard index",
                &ShardIndex {
                    pk: "shards".into(),
                    sk: shard.clone(),
                    shard_id: shard.clone(),
                },
            )?;
            actions.push(TransactWriteItem::builder().put(put(table, idx)?).build());
        }
        let mut new_panes = BTreeSet::new();
        let mut total = 0;
        for item in &c.items {
            let start = item.key.start_ms;
            let expires_at = (start + self.opts.pane_ttl_ms) / 1000;
            let row = to_item(
                "pane item",
                &PaneRow {
                    pk: pane_pk(start),
                    sk: pane_sk(&item.key),
                    start_ms: start,
                    expires_at,
                    state: Bytes(encode(*item)?),
                },
            )?;
            let size = item_size(&row);
            if size > self.opts.max_item_bytes {
                return Err(PortError::backend(
                    "committing shard state",
                    format!(
                        "pane item {} of shard {shard} is {size} bytes, over the {} allowed: \
                         raise TRAFFIC_STATE_BUCKETS so that each item holds fewer intersections",
                        pane_pk(start),
                        self.opts.max_item_bytes
                    ),
                ));
            }
            total += size;
            self.saw_item(size);
            actions.push(TransactWriteItem::builder().put(put(table, row)?).build());
            if !self.pane_known(start) && new_panes.insert(start) {
                let idx = to_item(
                    "pane index",
                    &PaneIndex {
                        pk: "panes".into(),
                        sk: ord_i64(start),
                        start_ms: start,
                        expires_at,
                    },
                )?;
                actions.push(TransactWriteItem::builder().put(put(table, idx)?).build());
            }
        }
        if total > DYNAMODB_MAX_TRANSACTION_BYTES - RESERVE_BYTES {
            return Err(PortError::backend(
                "committing shard state",
                format!(
                    "{} pane items of shard {shard} total {total} bytes, over a transaction's \
                     4 MB: raise TRAFFIC_STATE_BUCKETS or lower TRAFFIC_DYNAMODB_MAX_ITEM_KB",
                    c.items.len()
                ),
            ));
        }
        match self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(actions))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
        {
            Ok(resp) => {
                self.metrics
                    .write("TransactWriteItems", units(resp.consumed_capacity()));
                self.remember_panes(new_panes);
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
                    if codes.first() == Some(&"ConditionalCheckFailed") {
                        return Err(PortError::Conflict(format!(
                            "shard {shard}: the stored meta is no longer at {:?}",
                            c.expected.as_ref().map(|s| s.as_str())
                        )));
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

    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        let ids = self.query(Query::partition(Table::State, "shards")).await?;
        let keys: Vec<Item> = ids
            .iter()
            .filter_map(|i| s(i, "sk"))
            .map(|id| key(meta_pk(id), "meta"))
            .collect();
        let mut metas = self
            .batch_get(Table::State, keys, true)
            .await?
            .into_iter()
            .map(decode_meta)
            .collect::<PortResult<Vec<_>>>()?;
        metas.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(metas)
    }

    async fn pane_starts(&self) -> PortResult<Vec<i64>> {
        let idx = self.query(Query::partition(Table::State, "panes")).await?;
        Ok(idx.iter().filter_map(|i| n_i64(i, "start_ms")).collect())
    }

    async fn pane_items(&self, start_ms: i64) -> PortResult<Vec<PaneItem>> {
        let mut items = self
            .query(Query::partition(Table::State, pane_pk(start_ms)))
            .await?
            .into_iter()
            .map(decode_pane)
            .collect::<PortResult<Vec<_>>>()?;
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn delete_panes_before(&self, before_ms: i64) -> PortResult<()> {
        let table = self.table(Table::State)?.to_owned();
        let idx = self
            .query(Query::partition(Table::State, "panes").sk(SortKey::Below(ord_i64(before_ms))))
            .await?;
        for entry in idx {
            let Some(start) = n_i64(&entry, "start_ms") else {
                continue;
            };
            let mut q = Query::partition(Table::State, pane_pk(start));
            q.consistent = false;
            q.projection = Some("pk, sk");
            let rows = self.query(q).await?;
            let deletes = rows
                .into_iter()
                .map(crate::items::delete_request)
                .collect::<PortResult<Vec<_>>>()?;
            self.batch_write(Table::State, deletes).await?;
            // The index entry goes last: a run that stops half way finds the pane again.
            self.ddb
                .delete_item()
                .table_name(&table)
                .set_key(Some(key("panes", ord_i64(start))))
                .send()
                .await
                .map_err(|e| port_error("deleting a pane index entry", e))?;
            self.metrics.write("DeleteItem", None);
            if let Ok(mut k) = self.known_panes.lock() {
                k.remove(&start);
            }
        }
        Ok(())
    }
}
