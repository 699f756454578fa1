//! [`StateStore`] on `STATE_TABLE` (the design is `docs/state.md`).
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | shard meta | `shard#<shard_id>` | `meta` | `shard_id`, `applied_through` (S), `commits` (N), `state` (B: postcard of [`ShardMeta`]) |
//! | redrive mark | `redrive#<shard_id>` | `<failure record id, 20 digits>` | `mark` (B: postcard of [`RedriveMark`]), `expires_at` |
//! | shard index | `shards` | `<shard_id>` | `shard_id` |
//! | delta | `delta#<pane start>` | `<shard_id>#<commit, 20 digits>#<part, 5 digits>` | `d` (B: [`Delta::encode`]), `expires_at` |
//! | pane index | `panes` | `ord(pane start)` | `start_ms`, `expires_at` |
//! | merge state | `merge` | `state` | `closed_ms`, `compacted_ms`, `duplicates`, `too_frequent` (N), `caught_up` (B: postcard of shard → ms), `latency` (B: postcard of `traffic_core::latency::LatencyState`) |
//! | merge lease | `merge` | `lease` | `holder` (S), `until_ms` (N) |
//! | rollup header | `rollups#<length ms>` | `ord(window start)` | `start_ms`, `through_ms`, `parts`, `bytes`, `expires_at` |
//! | rollup part | `rollup#<length ms>#<window start>` | `ord(through_ms)#<part>` | `b` (B), `expires_at` |
//!
//! A commit writes its deltas first, unconditionally (`BatchWriteItem`; a retry rewrites the
//! same keys), with the pane index entries this process has not written yet; then one
//! `TransactWriteItems`: a condition check that the merge's closed mark is still the one the
//! batch was folded against, and the meta, conditional on the stored `applied_through` and
//! `commits` (with the shard's index entry on its first commit; a redrive's with its mark,
//! conditional on its absence). A rollup is a versioned blob ([`crate::blob`]):
//! its parts (postcard of the core's [`Rollup`], cut at [`StoreOptions::max_item_bytes`]),
//! keyed by window and `through_ms`, then its header, the switch. Every item expires a
//! retention after it was written ([`StoreOptions::expires_at`]); `forget` leaves the rest to
//! DynamoDB's TTL, whose deletes are free where a `DeleteItem` bills as a write. Items the
//! merge reads again within half a retention of their expiry (a pane not compacted after a
//! stall) are rewritten with a new one ([`crate::keep`]), so TTL never takes what an
//! uncompacted window needs while the merge runs.
//!
//! [`StoreOptions::max_item_bytes`]: crate::StoreOptions::max_item_bytes
//! [`StoreOptions::expires_at`]: crate::StoreOptions::expires_at

mod commit;
mod rollups;

use crate::capacity::{item_size, write_units};
use crate::error::{build, code_of, port_error};
use crate::items::{
    Bytes, Item, Query, SortKey, decode, encode, from_item, key, n_i64, num, ord_i64, put_request,
    s, to_item,
};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use traffic_core::ShardId;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::redrive::RedriveMark;
use traffic_core::rollup::{CompactionCounts, Rollup};
use traffic_core::window::WindowLength;
use traffic_ports::{PortError, PortResult, StateStore};

#[derive(Serialize, Deserialize)]
struct MetaItem {
    pk: String,
    sk: String,
    shard_id: ShardId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applied_through: Option<String>,
    state: Bytes,
    /// [`ShardMeta::commits`], for the commit's condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    commits: Option<u64>,
}

/// The mark of a redriven failure record.
#[derive(Serialize, Deserialize)]
struct MarkItem {
    pk: String,
    sk: String,
    mark: Bytes,
    expires_at: i64,
}

fn mark_pk(shard_id: &ShardId) -> String {
    format!("redrive#{shard_id}")
}

#[derive(Serialize, Deserialize)]
struct ShardIndex {
    pk: String,
    sk: String,
    shard_id: ShardId,
}

#[derive(Serialize, Deserialize)]
struct DeltaItem {
    pk: String,
    sk: String,
    d: Bytes,
    expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct PaneIndex {
    pk: String,
    sk: String,
    start_ms: i64,
    expires_at: i64,
}

impl PaneIndex {
    /// The write that lists the pane starting at `start_ms` until `expires_at`.
    fn put(start_ms: i64, expires_at: i64) -> PortResult<WriteRequest> {
        put_request(to_item(
            "pane index",
            &PaneIndex {
                pk: "panes".into(),
                sk: ord_i64(start_ms),
                start_ms,
                expires_at,
            },
        )?)
    }
}

fn meta_pk(shard_id: &ShardId) -> String {
    format!("shard#{shard_id}")
}

fn delta_pk(pane_start_ms: i64) -> String {
    format!("delta#{pane_start_ms}")
}

fn delta_sk(k: &DeltaKey) -> String {
    format!("{}#{:020}#{:05}", k.shard_id, k.commit, k.part)
}

fn merge_key() -> Item {
    key("merge", "state")
}

fn lease_key() -> Item {
    key("merge", "lease")
}

fn decode_meta(item: Item) -> PortResult<ShardMeta> {
    let m: MetaItem = from_item("shard meta", item)?;
    decode(&m.state.0, "shard meta").or_else(|e| {
        decode::<traffic_core::stored::ShardMetaV1>(&m.state.0, "shard meta")
            .map(ShardMeta::from)
            .map_err(|_| e)
    })
}

fn decode_merge_state(item: &Item) -> PortResult<MergeState> {
    let caught_up_since = match item.get("caught_up") {
        Some(AttributeValue::B(b)) => decode(b.as_ref(), "merge state")?,
        Some(_) => return Err(PortError::Corrupt("merge state: caught_up".into())),
        None => BTreeMap::new(),
    };
    let latency = match item.get("latency") {
        Some(AttributeValue::B(b)) => decode(b.as_ref(), "merge state")?,
        Some(_) => return Err(PortError::Corrupt("merge state: latency".into())),
        None => Default::default(),
    };
    Ok(MergeState {
        marks: MergeMarks {
            closed_ms: n_i64(item, "closed_ms"),
            compacted_ms: n_i64(item, "compacted_ms"),
        },
        caught_up_since,
        compaction: CompactionCounts {
            duplicates: n_u64(item, "duplicates"),
            too_frequent: n_u64(item, "too_frequent"),
        },
        latency,
    })
}

fn n_u64(item: &Item, name: &str) -> u64 {
    n_i64(item, name)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

fn put(table: &str, item: Item) -> PortResult<Put> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| build("a transaction put", e))
}

/// The write units a transaction bills for items of these sizes (twice per started KB).
fn transaction_units(sizes: &[usize]) -> f64 {
    sizes.iter().map(|b| 2.0 * write_units(*b)).sum()
}

/// Size of the merge state item assumed when this process has not read it (a few marks and
/// one entry per shard: well under a kilobyte).
const MERGE_STATE_BYTES: usize = 256;

impl DynamoStore {
    fn remember_panes(&self, starts: impl IntoIterator<Item = i64>) {
        if let Ok(mut k) = self.known_panes.lock() {
            if k.len() > 10_000 {
                k.clear();
            }
            k.extend(starts);
        }
    }

    fn pane_known(&self, start: i64) -> bool {
        self.known_panes
            .lock()
            .map(|k| k.contains(&start))
            .unwrap_or(false)
    }

    fn meta_size(&self, shard: &ShardId) -> Option<usize> {
        self.meta_sizes
            .lock()
            .ok()
            .and_then(|m| m.get(shard).copied())
    }

    fn set_meta_size(&self, shard: &ShardId, bytes: usize) {
        if let Ok(mut m) = self.meta_sizes.lock() {
            m.insert(shard.clone(), bytes);
        }
    }

    /// One `UpdateItem` of the merge state item; `Ok(false)` when its condition failed.
    async fn update_merge_state(
        &self,
        update: &str,
        condition: Option<&str>,
        values: HashMap<String, AttributeValue>,
    ) -> PortResult<bool> {
        let mut req = self
            .update_item(Table::State, merge_key())?
            .update_expression(update)
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(c) = condition {
            req = req.condition_expression(c);
        }
        match req.send().await {
            Ok(resp) => {
                let size = resp.attributes().map_or(0, item_size);
                self.metrics
                    .write(&Table::State.op("UpdateItem"), write_units(size));
                Ok(true)
            }
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => {
                let size = match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c),
                    ) => c.item().map_or(0, item_size),
                    _ => 0,
                };
                self.metrics
                    .write(&Table::State.op("UpdateItem"), write_units(size));
                Ok(false)
            }
            Err(e) => Err(port_error("updating the merge state", e)),
        }
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn load_shard(&self, shard_id: &ShardId) -> PortResult<(Option<ShardMeta>, MergeMarks)> {
        let found = self
            .batch_get(
                Table::State,
                vec![key(meta_pk(shard_id), "meta"), merge_key()],
                true,
            )
            .await?;
        let mut meta = None;
        let mut marks = MergeMarks::default();
        for item in found {
            if s(&item, "pk") == Some("merge") {
                marks = decode_merge_state(&item)?.marks;
            } else {
                self.set_meta_size(shard_id, item_size(&item));
                meta = Some(decode_meta(item)?);
            }
        }
        Ok((meta, marks))
    }

    async fn commit(&self, c: &Commit, now_ms: i64) -> PortResult<()> {
        self.commit_with(c, None, now_ms).await
    }

    async fn commit_redrive(&self, c: &Commit, mark: &RedriveMark, now_ms: i64) -> PortResult<()> {
        self.commit_with(c, Some(mark), now_ms).await
    }

    async fn redrive_mark(&self, shard_id: &ShardId, id: u64) -> PortResult<Option<RedriveMark>> {
        let found = self
            .batch_get(
                Table::State,
                vec![key(mark_pk(shard_id), format!("{id:020}"))],
                true,
            )
            .await?;
        match found.into_iter().next() {
            Some(item) => {
                let m: MarkItem = from_item("redrive mark", item)?;
                Ok(Some(decode(&m.mark.0, "redrive mark")?))
            }
            None => Ok(None),
        }
    }

    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        let ids = self.query(Query::partition(Table::State, "shards")).await?;
        let keys: Vec<Item> = ids
            .iter()
            .filter_map(|i| s(i, "sk"))
            .map(|id| key(meta_pk(&id.into()), "meta"))
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

    async fn delta_panes(&self, from_ms: i64) -> PortResult<Vec<i64>> {
        let idx = self
            .query(Query::partition(Table::State, "panes").sk(SortKey::From(ord_i64(from_ms))))
            .await?;
        let mut starts: Vec<i64> = idx.iter().filter_map(|i| n_i64(i, "start_ms")).collect();
        // Entries of panes still listed: kept while the merge reads them.
        let now = crate::keep::now_ms();
        let mut kept = Vec::new();
        for i in &idx {
            if let (Some(start), Some(e)) = (n_i64(i, "start_ms"), n_i64(i, "expires_at"))
                && let Some(expires_at) = self.opts.refreshed_expiry(e, now)
            {
                kept.push(PaneIndex::put(start, expires_at)?);
            }
        }
        if !kept.is_empty() {
            tracing::info!(
                entries = kept.len(),
                "pane index entries near their expiry kept"
            );
            self.batch_write(Table::State, kept).await?;
        }
        starts.sort_unstable();
        starts.dedup();
        Ok(starts)
    }

    async fn deltas(&self, keys: &[DeltaKey], consistent: bool) -> PortResult<Vec<Delta>> {
        let wanted: Vec<Item> = keys
            .iter()
            .map(|k| key(delta_pk(k.pane_start_ms), delta_sk(k)))
            .collect();
        let mut found: HashMap<(String, String), Item> = self
            .batch_get(Table::State, wanted, consistent)
            .await?
            .into_iter()
            .filter_map(|i| Some(((s(&i, "pk")?.to_owned(), s(&i, "sk")?.to_owned()), i)))
            .collect();
        let mut out = Vec::with_capacity(found.len());
        let now = crate::keep::now_ms();
        let mut kept = Vec::new();
        for k in keys {
            let Some(item) = found.remove(&(delta_pk(k.pane_start_ms), delta_sk(k))) else {
                continue;
            };
            let mut d: DeltaItem = from_item("delta", item)?;
            out.push(
                Delta::decode(k.clone(), &d.d.0)
                    .map_err(|e| PortError::Corrupt(format!("delta {}: {e}", delta_sk(k))))?,
            );
            // Listed, so not compacted yet: kept while the merge reads it.
            if let Some(expires_at) = self.opts.refreshed_expiry(d.expires_at, now) {
                d.expires_at = expires_at;
                kept.push(put_request(to_item("delta", &d)?)?);
            }
        }
        if !kept.is_empty() {
            tracing::info!(deltas = kept.len(), "deltas near their expiry kept");
            self.batch_write(Table::State, kept).await?;
        }
        Ok(out)
    }

    async fn rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>> {
        self.read_rollups(length, from_ms, to_ms).await
    }

    async fn put_rollups(&self, rollups: &[Rollup], now_ms: i64) -> PortResult<()> {
        self.write_rollups(rollups, now_ms).await
    }

    async fn merge_state(&self) -> PortResult<MergeState> {
        let item = self
            .get_item(Table::State, merge_key(), true, "reading the merge state")
            .await?;
        match &item {
            Some(item) => decode_merge_state(item),
            None => Ok(MergeState::default()),
        }
    }

    async fn advance_closed_mark(&self, closed_ms: i64) -> PortResult<()> {
        // Never back: a mark already at or past `closed_ms` stays (the condition fails, which
        // is not an error).
        self.update_merge_state(
            "SET closed_ms = :c",
            Some("attribute_not_exists(closed_ms) OR closed_ms < :c"),
            HashMap::from([(":c".to_owned(), num(closed_ms))]),
        )
        .await
        .map(|_| ())
    }

    async fn put_merge_progress(&self, state: &MergeState) -> PortResult<()> {
        // The closed mark is left alone: only `advance_closed_mark` moves it, conditionally.
        let mut values = HashMap::from([
            (
                ":u".to_owned(),
                AttributeValue::B(encode(&state.caught_up_since)?.into()),
            ),
            (":d".to_owned(), num(state.compaction.duplicates)),
            (":f".to_owned(), num(state.compaction.too_frequent)),
            (
                ":l".to_owned(),
                AttributeValue::B(encode(&state.latency)?.into()),
            ),
        ]);
        let set = "SET caught_up = :u, duplicates = :d, too_frequent = :f, latency = :l";
        let update = match state.marks.compacted_ms {
            Some(c) => {
                values.insert(":c".to_owned(), num(c));
                format!("{set}, compacted_ms = :c")
            }
            None => format!("{set} REMOVE compacted_ms"),
        };
        self.update_merge_state(&update, None, values)
            .await
            .map(|_| ())
    }

    async fn take_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> PortResult<bool> {
        let mut item = lease_key();
        item.insert("holder".into(), AttributeValue::S(holder.to_owned()));
        item.insert("until_ms".into(), num(until_ms));
        let size = item_size(&item);
        let result = self
            .put_item(Table::State, item)?
            .condition_expression(
                "attribute_not_exists(pk) OR until_ms <= :now OR holder = :holder",
            )
            .expression_attribute_values(":now", num(now_ms))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        // The old lease is about the same size as the new one.
        self.metrics
            .write(&Table::State.op("PutItem"), write_units(size));
        match result {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => return Ok(false),
            Err(e) => return Err(port_error("taking the merge lease", e)),
        }
        // Read back, consistently. DynamoDB's conditional put is atomic, so this only ever
        // confirms it there; moto runs the condition and the write of concurrent requests
        // interleaved, and two takers can both pass the condition: the later write wins the
        // item, and only its writer finds its name here. One read unit a merge run.
        let item = self
            .get_item(Table::State, lease_key(), true, "reading the merge lease")
            .await?;
        Ok(item.as_ref().and_then(|i| s(i, "holder")) == Some(holder))
    }

    async fn release_lease(&self, holder: &str) -> PortResult<()> {
        let table = self.table(Table::State)?;
        let result = self
            .ddb
            .delete_item()
            .table_name(table)
            .set_key(Some(lease_key()))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        self.metrics
            .write(&Table::State.op("DeleteItem"), write_units(0));
        match result {
            // Someone else's (ours expired and was taken), or none: nothing to release.
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("ConditionalCheckFailedException") => Ok(()),
            Err(e) => Err(port_error("releasing the merge lease", e)),
        }
    }

    async fn forget(&self, _panes_before_ms: i64, _rollups_through_ms: i64) -> PortResult<()> {
        // Every state item expires by TTL a retention after it was written, for free; the
        // pane index is read from the compacted mark on, so old entries cost nothing either.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::rollups::rollup_parts_pk;
    use super::*;
    use crate::{AwsNames, StoreOptions};
    use traffic_core::IntersectionId;
    use traffic_core::digest::{DigestState, VehicleDigest};
    use traffic_core::ranking::SpeedSum;
    use traffic_core::rollup::Totals;

    /// A store whose client never connects (for what needs no call).
    fn offline() -> DynamoStore {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(conf),
            AwsNames::default(),
            StoreOptions::default(),
        )
    }

    /// A day's rollup of a city: every intersection with 5,760 readings (four lights a
    /// minute) whose vehicle counts take 40 distinct values.
    fn day_rollup(intersections: usize) -> Rollup {
        let day = WindowLength::from_ms(86_400_000)
            .unwrap_or_else(|| panic!("24h"))
            .window_of(1_767_571_200_000);
        let mut r = Rollup::new(day);
        r.through_ms = day.end_ms();
        for i in 0..intersections {
            let values: Vec<(u32, u64)> = (0..40u32)
                .map(|v| (v + (i % 7) as u32, 100 + u64::from(v * 3)))
                .collect();
            let digest = VehicleDigest::from_state(&DigestState::Counts { size: 200, values })
                .unwrap_or_else(|e| panic!("{e}"));
            r.intersections.insert(
                IntersectionId::parse(&format!("I-{i:06}")).unwrap_or_else(|e| panic!("{e}")),
                Totals {
                    speed: SpeedSum {
                        vehicles: 115_200,
                        weighted_milli: 115_200 * 41_700,
                    },
                    vehicles: [28_800; 4],
                    readings: 5_760,
                    digest,
                },
            );
        }
        r
    }

    #[test]
    fn a_day_rollup_of_100000_intersections_is_stored_in_parts_under_200_kb() {
        let store = offline();
        let r = day_rollup(100_000);
        let bytes = encode(&r).unwrap_or_else(|e| panic!("{e}"));
        let (blob, items) = store
            .blob_items(
                &rollup_parts_pk(r.window.length, r.window.start_ms),
                &ord_i64(r.through_ms),
                &bytes,
                Some(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let largest = items.iter().map(item_size).max().unwrap_or(0);
        println!(
            "rollup of 100000 intersections: {} bytes ({:.0} a intersection), {} parts, largest item {largest} bytes",
            bytes.len(),
            bytes.len() as f64 / 100_000.0,
            blob.parts
        );
        assert!(largest <= 200 * 1024, "{largest} bytes");
        assert_eq!(blob.parts as usize, items.len());
        // The parts joined are the rollup.
        let joined: Vec<u8> = items
            .iter()
            .flat_map(|i| match i.get("b") {
                Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let back: Rollup = decode(&joined, "rollup").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }

    #[test]
    fn delta_keys_sort_by_shard_then_commit_then_part() {
        let k = |commit, part| DeltaKey {
            pane_start_ms: 0,
            shard_id: "shardId-000000000001".into(),
            commit,
            part,
        };
        let mut keys = vec![delta_sk(&k(10, 0)), delta_sk(&k(9, 2)), delta_sk(&k(9, 10))];
        keys.sort();
        assert_eq!(
            keys,
            [delta_sk(&k(9, 2)), delta_sk(&k(9, 10)), delta_sk(&k(10, 0))]
        );
    }

    #[test]
    fn a_transaction_bills_twice_per_started_kilobyte() {
        // A condition check on a 256-byte item and a put replacing a 1.5 KB meta.
        assert_eq!(transaction_units(&[256, 1_536]), 2.0 + 4.0);
    }
}
