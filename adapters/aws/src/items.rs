//! What every table shares: keys, sort-key encodings, binary attributes, and the paging and
//! batching calls (queries through every page; batch reads and writes whose unprocessed
//! entries are retried with backoff until done, never dropped).

use crate::capacity::{item_size, read_units, write_units};
use crate::error::{build, port_error};
use crate::retry::{MAX_TRIES, pause};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, TransactWriteItem, WriteRequest,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use traffic_ports::{PortError, PortResult};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Most keys in one `BatchGetItem`.
const BATCH_GET: usize = 100;
/// Most requests in one `BatchWriteItem`.
const BATCH_WRITE: usize = 25;

/// The clock in nanoseconds and the next of a per-process counter: with the process id, what
/// makes a version no other write has.
pub(crate) fn clock_and_count() -> (u128, u64) {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos, n)
}

/// An `i64` as a sort key that sorts as the number does: `v + 2⁶³`, 20 digits, zero-padded.
pub(crate) fn ord_i64(v: i64) -> String {
    format!("{:020}", (i128::from(v) - i128::from(i64::MIN)) as u128)
}

/// The key of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.into())),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
    ])
}

/// A string attribute of an item.
pub(crate) fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute as `i64`.
pub(crate) fn n_i64(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// A number attribute value.
pub(crate) fn num(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Bytes stored as a DynamoDB binary (`B`) attribute (plain `Vec<u8>` would map to a list of
/// numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("binary data")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Maps a value to an item.
pub(crate) fn to_item<T: Serialize>(what: &str, v: &T) -> PortResult<Item> {
    serde_dynamo::to_item(v).map_err(|e| crate::error::mapping(what, e))
}

/// Maps an item to a value.
pub(crate) fn from_item<T: serde::de::DeserializeOwned>(what: &str, item: Item) -> PortResult<T> {
    serde_dynamo::from_item(item).map_err(|e| crate::error::mapping(what, e))
}

/// The postcard encoding of a value, for a binary attribute.
pub(crate) fn encode<T: Serialize>(v: &T) -> PortResult<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| PortError::backend("encoding state", e))
}

/// A value from its postcard encoding.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> PortResult<T> {
    postcard::from_bytes(b).map_err(|e| PortError::Corrupt(format!("{what}: {e}")))
}

/// Maps a value to an attribute value.
pub(crate) fn to_av<T: Serialize>(what: &str, v: &T) -> PortResult<AttributeValue> {
    serde_dynamo::to_attribute_value(v).map_err(|e| crate::error::mapping(what, e))
}

/// Which items of a partition a query wants.
#[derive(Clone, Debug)]
pub(crate) enum SortKey {
    /// All of them.
    All,
    /// Sort keys starting with this.
    BeginsWith(String),
    /// Sort keys at or above this.
    From(String),
    /// Sort keys above this.
    After(String),
    /// Sort keys from the first to the second, both included.
    Between(String, String),
}

/// A query of one partition.
#[derive(Clone, Debug)]
pub(crate) struct Query {
    pub table: Table,
    pub pk: String,
    pub sk: SortKey,
    pub consistent: bool,
    /// Only the keys (`pk`, `sk`) and these attributes.
    pub projection: Option<&'static str>,
    /// Newest (highest sort key) first, and at most this many.
    pub newest_first: Option<i32>,
    /// Oldest (lowest sort key) first, and at most this many (over as many pages as it takes).
    pub first: Option<usize>,
}

impl Query {
    /// All items of partition `pk`, strongly consistent.
    pub(crate) fn partition(table: Table, pk: impl Into<String>) -> Self {
        Self {
            table,
            pk: pk.into(),
            sk: SortKey::All,
            consistent: true,
            projection: None,
            newest_first: None,
            first: None,
        }
    }

    pub(crate) fn sk(mut self, sk: SortKey) -> Self {
        self.sk = sk;
        self
    }

    /// Read eventually consistently: half the read units, and a write of the last second may
    /// not be seen yet (what a public listing can afford).
    pub(crate) fn eventually(mut self) -> Self {
        self.consistent = false;
        self
    }
}

impl DynamoStore {
    /// The item of `table` at `key`, if any: one `GetItem`, read consistently or not, counted
    /// with the units it billed; `doing` says what the read was for in its error.
    pub(crate) async fn get_item(
        &self,
        table: Table,
        key: Item,
        consistent: bool,
        doing: impl Into<String>,
    ) -> PortResult<Option<Item>> {
        let resp = self
            .ddb
            .get_item()
            .table_name(self.table(table)?)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| port_error(doing, e))?;
        self.metrics.read(
            &table.op("GetItem"),
            read_units(resp.item().map_or(0, item_size), consistent),
        );
        Ok(resp.item)
    }

    /// Writes `actions` in one `TransactWriteItems`, all or none: the SDK's answer, for the
    /// caller to tell a cancelled transaction from a failure (and to count what it billed).
    pub(crate) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<TransactWriteItemsOutput, SdkError<TransactWriteItemsError>> {
        self.ddb
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
    }

    /// A `PutItem` of `item` into `table`, to be given its condition, if any.
    pub(crate) fn put_item(&self, table: Table, item: Item) -> PortResult<PutItemFluentBuilder> {
        let table = self.table(table)?;
        Ok(self.ddb.put_item().table_name(table).set_item(Some(item)))
    }

    /// An `UpdateItem` of the item of `table` at `key`, to be given its expression.
    pub(crate) fn update_item(
        &self,
        table: Table,
        key: Item,
    ) -> PortResult<UpdateItemFluentBuilder> {
        let table = self.table(table)?;
        Ok(self.ddb.update_item().table_name(table).set_key(Some(key)))
    }

    /// Deletes the item of `table` at `key`: one `DeleteItem`, counted with the units of the
    /// item deleted; returns what was there, if anything. `doing` says what the write was for
    /// in its error.
    pub(crate) async fn delete_item(
        &self,
        table: Table,
        key: Item,
        doing: impl Into<String>,
    ) -> PortResult<Option<Item>> {
        let resp = self
            .ddb
            .delete_item()
            .table_name(self.table(table)?)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error(doing, e))?;
        self.metrics.write(
            &table.op("DeleteItem"),
            write_units(resp.attributes().map_or(0, item_size)),
        );
        Ok(resp.attributes)
    }

    /// Runs a query through all its pages.
    pub(crate) async fn query(&self, q: Query) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let want = q.first.map(|first| first.saturating_sub(out.len()).max(1));
            let (items, next) = self.query_page(&q, start.take(), want).await?;
            out.extend(items);
            if q.newest_first.is_some() || q.first.is_some_and(|f| out.len() >= f) {
                break;
            }
            match next {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        Ok(out)
    }

    /// One `Query` call of `q` from `start` (a previous page's last key), at most `limit`
    /// items (else `q`'s own limit, else DynamoDB's 1 MB): its items and the key to continue
    /// from, if DynamoDB gave one.
    pub(crate) async fn query_page(
        &self,
        q: &Query,
        start: Option<Item>,
        limit: Option<usize>,
    ) -> PortResult<(Vec<Item>, Option<Item>)> {
        let table = self.table(q.table)?;
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(q.pk.clone()))]);
        let cond = match &q.sk {
            SortKey::All => "pk = :pk".to_owned(),
            SortKey::BeginsWith(p) => {
                values.insert(":sk".into(), AttributeValue::S(p.clone()));
                "pk = :pk AND begins_with(sk, :sk)".to_owned()
            }
            SortKey::From(p) => {
                values.insert(":sk".into(), AttributeValue::S(p.clone()));
                "pk = :pk AND sk >= :sk".to_owned()
            }
            SortKey::After(p) => {
                values.insert(":sk".into(), AttributeValue::S(p.clone()));
                "pk = :pk AND sk > :sk".to_owned()
            }
            SortKey::Between(a, b) => {
                values.insert(":sk".into(), AttributeValue::S(a.clone()));
                values.insert(":sk2".into(), AttributeValue::S(b.clone()));
                "pk = :pk AND sk BETWEEN :sk AND :sk2".to_owned()
            }
        };
        let mut req = self
            .ddb
            .query()
            .table_name(table)
            .key_condition_expression(cond)
            .set_expression_attribute_values(Some(values))
            .consistent_read(q.consistent)
            .set_exclusive_start_key(start);
        if let Some(p) = q.projection {
            req = req.projection_expression(p);
        }
        if let Some(limit) = q.newest_first {
            req = req.scan_index_forward(false).limit(limit);
        }
        if let Some(limit) = limit {
            req = req.limit(i32::try_from(limit).unwrap_or(i32::MAX));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| port_error(format!("querying {table} for {}", q.pk), e))?;
        let items = resp.items.unwrap_or_default();
        // A page bills the total size of the items it returns (projected or not: DynamoDB
        // sizes whole items, so a projection would make this an underestimate).
        let bytes: usize = items.iter().map(item_size).sum();
        self.metrics
            .read(&q.table.op("Query"), read_units(bytes, q.consistent));
        let next = resp.last_evaluated_key.filter(|k| !k.is_empty());
        Ok((items, next))
    }

    /// Reads items by key (any number), retrying unprocessed keys with backoff.
    pub(crate) async fn batch_get(
        &self,
        t: Table,
        keys: Vec<Item>,
        consistent: bool,
    ) -> PortResult<Vec<Item>> {
        let table = self.table(t)?;
        let read = |pending: KeysAndAttributes| async move {
            let asked = pending.keys().len();
            let resp = self
                .ddb
                .batch_get_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| port_error(format!("reading items of {table}"), e))?;
            let found = resp
                .responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default();
            let left_over = resp
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .filter(|k| !k.keys().is_empty());
            // Each item read bills its own size rounded up to 4 KB; a key that finds no item
            // still bills one unit (half when eventually consistent).
            let missing = asked
                .saturating_sub(left_over.as_ref().map_or(0, |u| u.keys().len()))
                .saturating_sub(found.len());
            let billed: f64 = found
                .iter()
                .map(|i| read_units(item_size(i), consistent))
                .sum::<f64>()
                + missing as f64 * read_units(0, consistent);
            self.metrics.read(&t.op("BatchGetItem"), billed);
            Ok((found, left_over))
        };
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let pending = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent)
                .build()
                .map_err(|e| build("a batch read", e))?;
            out.extend(until_processed(table, pending, |k| k.keys().len(), read).await?);
        }
        Ok(out)
    }

    /// Writes puts and deletes (any number), 25 per request, retrying unprocessed ones with
    /// backoff.
    pub(crate) async fn batch_write(
        &self,
        t: Table,
        requests: Vec<WriteRequest>,
    ) -> PortResult<()> {
        let table = self.table(t)?;
        let write = |pending: Vec<WriteRequest>| async move {
            let sent = request_units(&pending);
            let resp = self
                .ddb
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| port_error(format!("writing items of {table}"), e))?;
            let left_over = resp
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .filter(|r| !r.is_empty());
            let left = left_over.as_deref().map_or(0.0, request_units);
            self.metrics.write(&t.op("BatchWriteItem"), sent - left);
            Ok((Vec::new(), left_over))
        };
        for chunk in requests.chunks(BATCH_WRITE) {
            until_processed(table, chunk.to_vec(), Vec::len, write).await?;
        }
        Ok(())
    }
}

/// Sends `pending` to `table` with `send`, and what it leaves over again after a pause, until
/// nothing is left over; fails after [`MAX_TRIES`] tries, naming how many entries (`count`)
/// were left. Returns the items the answers carried (a read's; none for writes).
async fn until_processed<P, F>(
    table: &str,
    mut pending: P,
    count: impl Fn(&P) -> usize,
    send: impl Fn(P) -> F,
) -> PortResult<Vec<Item>>
where
    F: Future<Output = PortResult<(Vec<Item>, Option<P>)>>,
{
    let mut out = Vec::new();
    let mut attempt = 0;
    loop {
        let (items, left_over) = send(pending).await?;
        out.extend(items);
        let Some(rest) = left_over else {
            return Ok(out);
        };
        attempt += 1;
        if attempt >= MAX_TRIES {
            return Err(unprocessed(table, count(&rest)));
        }
        pause(attempt).await;
        pending = rest;
    }
}

/// Write units of batch write requests: a put bills its item's size (a replaced item's old
/// size is unknown here: callers that know it add the difference), a delete at least one
/// unit.
fn request_units(requests: &[WriteRequest]) -> f64 {
    requests
        .iter()
        .map(|r| match r.put_request() {
            Some(p) => write_units(item_size(p.item())),
            None => write_units(0),
        })
        .sum()
}

/// A put request of an item.
pub(crate) fn put_request(item: Item) -> PortResult<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| build("a put request", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

fn unprocessed(table: &str, n: usize) -> PortError {
    PortError::Unavailable {
        context: format!("{n} requests on {table} still unprocessed after {MAX_TRIES} tries"),
        source: "DynamoDB kept returning unprocessed items (throttling)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_numbers_sort_as_numbers() {
        let v = [i64::MIN, -5, -1, 0, 1, 9, 10, 1_767_600_000_000, i64::MAX];
        let keys: Vec<String> = v.iter().map(|&x| ord_i64(x)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(keys.iter().all(|k| k.len() == 20));
    }

    #[test]
    fn bytes_are_a_binary_attribute_and_round_trip() -> anyhow::Result<()> {
        let v = to_av("b", &Bytes(vec![0, 1, 255]))?;
        assert!(matches!(v, AttributeValue::B(_)));
        let back: Bytes = serde_dynamo::from_attribute_value(v)?;
        assert_eq!(back, Bytes(vec![0, 1, 255]));
        Ok(())
    }
}
