//! [`ResultStore`] on `RESULTS_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | window result | `results` | `ord(length_ms)#ord(start_ms)` | `length_ms`, `start_ms`, `closed`, `result` (M, without `above_median`), `above` (B) or `above_v`, `above_parts` |
//! | above-median part | `above#<the result's sk>` | `<version>#<part>` | `b` (B), `expires_at` (provisional results only) |
//! | closed marker | `closed` | the same | `length_ms`, `start_ms` |
//! | network state | `network` | `latest` | `state` (B) or `v`, `parts` |
//! | network part | `network#parts` | `<version>#<part>` | `b` (B), `expires_at` |
//!
//! One partition, so [`ResultStore::results`] is one query in window order (length, then
//! start), and [`ResultStore::results_page`] (the API's pages) one eventually consistent
//! newest-first query of one length's range, cut at a byte budget of 1 MB (items and the parts
//! of their lists) and continued before its last window; [`ResultStore::recent_results`]
//! follows such pages until it has as many windows as asked for. The
//! merge asks for the closed windows on every run, per length from its oldest pane's window on:
//! the small markers answer that without reading the results themselves.
//!
//! What grows with the city is binary (postcard) and cut into parts when it does not fit one
//! item ([`crate::blob`]): a result's list of the intersections above the median (about 16
//! bytes each) is kept in the result's item while it fits, else in parts written before the
//! result that names their version; the network state (about 20 bytes per intersection) the
//! same way. Parts of a provisional result and of the network state expire a retention after
//! they were written (a later run replaces them); a closed result's parts are kept as long as
//! the result.

use crate::blob::BlobRef;
use crate::capacity::{item_size, write_units};
use crate::items::{
    Bytes, Item, Query, SortKey, decode, encode, from_item, n_i64, ord_i64, put_request, to_item,
};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use traffic_core::query::{MedianEntry, NetworkState, WindowResult};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::{PortResult, ResultPage, ResultStore};

#[derive(Serialize, Deserialize)]
struct ResultItem {
    pk: String,
    sk: String,
    length_ms: i64,
    start_ms: i64,
    closed: bool,
    result: WindowResult,
    /// The above-median list, postcard, when it fits this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    above: Option<Bytes>,
    /// Else the version of its parts ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    above_v: Option<String>,
    /// ... and how many there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    above_parts: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct NetworkItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<u32>,
}

/// Room kept in an item for its key and other attributes.
const ITEM_ROOM: usize = 1024;

#[derive(Serialize, Deserialize)]
struct ClosedItem {
    pk: String,
    sk: String,
    length_ms: i64,
    start_ms: i64,
}

fn sk(k: &WindowKey) -> String {
    format!("{}#{}", ord_i64(k.length.ms()), ord_i64(k.start_ms))
}

fn window_of(item: &Item) -> Option<WindowKey> {
    Some(WindowKey {
        length: WindowLength::from_ms(n_i64(item, "length_ms")?)?,
        start_ms: n_i64(item, "start_ms")?,
    })
}

/// A version no other write has: the clock in nanoseconds and a per-process counter.
fn fresh_version() -> String {
    let (nanos, n) = crate::items::clock_and_count();
    format!("{nanos:024}-{n:x}-{:x}", std::process::id())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl DynamoStore {
    /// Result items with their above-median lists (read from their parts where they have
    /// them).
    async fn decode_results(&self, items: Vec<Item>) -> PortResult<Vec<WindowResult>> {
        let mut rows = items
            .into_iter()
            .map(|i| from_item::<ResultItem>("window result", i))
            .collect::<PortResult<Vec<_>>>()?;
        let refs: Vec<(usize, BlobRef)> = rows
            .iter()
            .enumerate()
            .filter_map(|(n, r)| {
                Some((
                    n,
                    BlobRef {
                        pk: format!("above#{}", r.sk),
                        version: r.above_v.clone()?,
                        parts: r.above_parts?,
                    },
                ))
            })
            .collect();
        let blobs = self
            .get_blobs(
                Table::Results,
                &refs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            )
            .await?;
        for ((n, _), b) in refs.iter().zip(blobs) {
            if let Some(r) = rows.get_mut(*n) {
                r.above = Some(Bytes(b));
            }
        }
        rows.into_iter()
            .map(|r| {
                let mut result = r.result;
                if let Some(b) = r.above {
                    result.above_median = decode::<Vec<MedianEntry>>(&b.0, "above-median list")?;
                }
                Ok(result)
            })
            .collect()
    }
}

/// What one page of results may read, bytes: its items and the parts of their above-median
/// lists (at least one window, whatever its size).
const PAGE_BUDGET_BYTES: usize = 1 << 20;

impl DynamoStore {
    /// Up to `limit` result items of `length` starting before `before_ms` (from the newest
    /// when `None`), newest first: one eventually consistent query (at most DynamoDB's 1 MB
    /// page), cut where the items and their parts pass [`PAGE_BUDGET_BYTES`]. Also whether
    /// older windows may exist (the query stopped short, or the budget cut it).
    async fn results_before(
        &self,
        length: WindowLength,
        before_ms: Option<i64>,
        limit: usize,
    ) -> PortResult<(Vec<Item>, bool)> {
        let last = match before_ms {
            None => i64::MAX,
            Some(i64::MIN) => return Ok((Vec::new(), false)),
            Some(b) => b - 1,
        };
        let first = WindowKey {
            length,
            start_ms: i64::MIN,
        };
        let last = WindowKey {
            length,
            start_ms: last,
        };
        let mut q = Query::partition(Table::Results, "results")
            .sk(SortKey::Between(sk(&first), sk(&last)))
            .eventually();
        q.newest_first = Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let (items, key) = self.query_page(&q, None, None).await?;
        let read = items.len();
        let mut taken = Vec::with_capacity(read);
        let mut bytes = 0usize;
        for item in items {
            let parts = n_i64(&item, "above_parts").unwrap_or(0).max(0) as usize;
            let size = item_size(&item) + parts * self.part_bytes();
            if !taken.is_empty() && bytes + size > PAGE_BUDGET_BYTES {
                break;
            }
            bytes += size;
            taken.push(item);
        }
        let more = taken.len() < read || key.is_some();
        Ok((taken, more))
    }
}

#[async_trait]
impl ResultStore for DynamoStore {
    async fn put_results(&self, results: &[WindowResult]) -> PortResult<()> {
        let mut parts = Vec::new();
        let mut writes = Vec::with_capacity(results.len() * 2);
        // Rows this process wrote before and replaces now: what the batch's count (the new
        // items' sizes) leaves out of the bill.
        let mut replaced_units = 0.0;
        let mut sizes = Vec::with_capacity(results.len());
        for r in results {
            let k = &r.window;
            let mut row = ResultItem {
                pk: "results".into(),
                sk: sk(k),
                length_ms: k.length.ms(),
                start_ms: k.start_ms,
                closed: r.closed,
                result: WindowResult {
                    above_median: Vec::new(),
                    ..r.clone()
                },
                above: None,
                above_v: None,
                above_parts: None,
            };
            let above = encode(&r.above_median)?;
            let head = item_size(&to_item("window result", &row)?);
            if head + above.len() + ITEM_ROOM <= self.opts.max_item_bytes {
                row.above = Some(Bytes(above));
            } else {
                // A closed result is final: its parts stay. A provisional one is replaced by
                // the next run: its parts expire.
                let version = if r.closed {
                    "closed".to_owned()
                } else {
                    fresh_version()
                };
                let expires = (!r.closed).then(|| self.opts.expires_at(now_ms()));
                let (blob, items) =
                    self.blob_items(&format!("above#{}", row.sk), &version, &above, expires)?;
                parts.extend(items);
                row.above_v = Some(blob.version);
                row.above_parts = Some(blob.parts);
            }
            let item = to_item("window result", &row)?;
            sizes.push((row.sk.clone(), item_size(&item), r.closed));
            writes.push(put_request(item)?);
            if r.closed {
                writes.push(put_request(to_item(
                    "closed marker",
                    &ClosedItem {
                        pk: "closed".into(),
                        sk: sk(k),
                        length_ms: k.length.ms(),
                        start_ms: k.start_ms,
                    },
                )?)?);
            }
        }
        if !parts.is_empty() {
            self.put_blob_items(Table::Results, parts).await?;
        }
        self.batch_write(Table::Results, writes).await?;
        if let Ok(mut known) = self.result_sizes.lock() {
            for (sk, size, closed) in sizes {
                // A closed row is final: nothing replaces it, so it is forgotten.
                let old = if closed {
                    known.remove(&sk)
                } else {
                    known.insert(sk, size)
                };
                if let Some(old) = old {
                    replaced_units += (write_units(old) - write_units(size)).max(0.0);
                }
            }
        }
        if replaced_units > 0.0 {
            self.metrics
                .more_write_units(&Table::Results.op("BatchWriteItem"), replaced_units);
        }
        Ok(())
    }

    async fn closed_windows_from(
        &self,
        length: WindowLength,
        from_ms: i64,
    ) -> PortResult<Vec<WindowKey>> {
        let from = WindowKey {
            length,
            start_ms: from_ms,
        };
        let to = WindowKey {
            length,
            start_ms: i64::MAX,
        };
        Ok(self
            .query(
                Query::partition(Table::Results, "closed").sk(SortKey::Between(sk(&from), sk(&to))),
            )
            .await?
            .iter()
            .filter_map(window_of)
            .collect())
    }

    async fn recent_results(
        &self,
        length: WindowLength,
        limit: usize,
    ) -> PortResult<Vec<WindowResult>> {
        let mut out = Vec::new();
        let mut before = None;
        // Each round takes at least one window: bounded by `limit` rounds.
        while out.len() < limit {
            let (items, more) = self
                .results_before(length, before, limit - out.len())
                .await?;
            let page = self.decode_results(items).await?;
            let last = page.last().map(|w| w.window.start_ms);
            out.extend(page);
            match (more, last) {
                (true, Some(l)) => before = Some(l),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn results_page(
        &self,
        length: WindowLength,
        before_ms: Option<i64>,
        limit: usize,
    ) -> PortResult<ResultPage> {
        if limit == 0 {
            return Ok(ResultPage::default());
        }
        // One more than asked for, to tell whether more exist; it is not decoded.
        let (mut items, mut more) = self
            .results_before(length, before_ms, limit.saturating_add(1))
            .await?;
        if items.len() > limit {
            items.truncate(limit);
            more = true;
        }
        let windows = self.decode_results(items).await?;
        let next = if more {
            windows.last().map(|w| w.window.start_ms)
        } else {
            None
        };
        Ok(ResultPage { windows, next })
    }

    async fn results(&self) -> PortResult<Vec<WindowResult>> {
        let items = self
            .query(Query::partition(Table::Results, "results"))
            .await?;
        self.decode_results(items).await
    }

    async fn put_network(&self, state: &NetworkState) -> PortResult<()> {
        let bytes = encode(state)?;
        let mut head = NetworkItem {
            pk: "network".into(),
            sk: "latest".into(),
            state: None,
            v: None,
            parts: None,
        };
        if bytes.len() + ITEM_ROOM <= self.opts.max_item_bytes {
            head.state = Some(Bytes(bytes));
        } else {
            let (blob, items) = self.blob_items(
                "network#parts",
                &fresh_version(),
                &bytes,
                Some(self.opts.expires_at(now_ms())),
            )?;
            self.put_blob_items(Table::Results, items).await?;
            head.v = Some(blob.version);
            head.parts = Some(blob.parts);
        }
        let item = to_item("network state", &head)?;
        self.batch_write(Table::Results, vec![put_request(item)?])
            .await
    }

    async fn network(&self) -> PortResult<Option<NetworkState>> {
        let Some(item) = self
            .query(Query::partition(Table::Results, "network"))
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let n: NetworkItem = from_item("network state", item)?;
        let bytes = match (n.state, n.v, n.parts) {
            (Some(b), _, _) => b.0,
            (None, Some(version), Some(parts)) => self
                .get_blobs(
                    Table::Results,
                    &[BlobRef {
                        pk: "network#parts".into(),
                        version,
                        parts,
                    }],
                )
                .await?
                .into_iter()
                .next()
                .unwrap_or_default(),
            _ => {
                return Err(traffic_ports::PortError::Corrupt(
                    "network state: neither bytes nor parts".into(),
                ));
            }
        };
        decode(&bytes, "network state").map(Some)
    }
}
