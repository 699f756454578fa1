//! [`ResultStore`] on `RESULTS_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | window result | `results` | `ord(length_ms)#ord(start_ms)` | `length_ms`, `start_ms`, `closed`, `result` (M) |
//! | closed marker | `closed` | the same | `length_ms`, `start_ms` |
//! | network state | `network` | `latest` | `state` (B: postcard of the core's `NetworkState`) |
//!
//! One partition, so [`ResultStore::results`] is one query in window order (length, then
//! start), and [`ResultStore::recent_results`] a newest-first query of one length's prefix. The
//! merge asks for the closed windows on every run, per length from its oldest pane's window on:
//! the small markers answer that without reading the results themselves.
//!
//! The network state (every intersection's speed over the newest shortest window) is one
//! binary item: about 20 bytes per intersection, so it fits DynamoDB's 400 KB up to about
//! 20,000 intersections; beyond that it is stored without its intersections (the map then
//! colours only the top-10) and a warning is logged.

use crate::items::{
    Bytes, Item, Query, SortKey, decode, encode, from_item, n_i64, ord_i64, put_request, to_item,
};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use traffic_core::query::{NetworkState, WindowResult};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_ports::{PortResult, ResultStore};

#[derive(Serialize, Deserialize)]
struct ResultItem {
    pk: String,
    sk: String,
    length_ms: i64,
    start_ms: i64,
    closed: bool,
    result: WindowResult,
}

#[derive(Serialize, Deserialize)]
struct NetworkItem {
    pk: String,
    sk: String,
    state: Bytes,
}

/// Room left in an item for its key and other attributes.
const NETWORK_ITEM_OVERHEAD: usize = 1024;

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

fn decode_result(item: Item) -> PortResult<WindowResult> {
    let r: ResultItem = from_item("window result", item)?;
    Ok(r.result)
}

#[async_trait]
impl ResultStore for DynamoStore {
    async fn put_results(&self, results: &[WindowResult]) -> PortResult<()> {
        let mut writes = Vec::with_capacity(results.len() * 2);
        for r in results {
            let k = &r.window;
            writes.push(put_request(to_item(
                "window result",
                &ResultItem {
                    pk: "results".into(),
                    sk: sk(k),
                    length_ms: k.length.ms(),
                    start_ms: k.start_ms,
                    closed: r.closed,
                    result: r.clone(),
                },
            )?)?);
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
        self.batch_write(Table::Results, writes).await
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = Query::partition(Table::Results, "results")
            .sk(SortKey::BeginsWith(format!("{}#", ord_i64(length.ms()))));
        q.newest_first = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        self.query(q)
            .await?
            .into_iter()
            .map(decode_result)
            .collect()
    }

    async fn results(&self) -> PortResult<Vec<WindowResult>> {
        self.query(Query::partition(Table::Results, "results"))
            .await?
            .into_iter()
            .map(decode_result)
            .collect()
    }

    async fn put_network(&self, state: &NetworkState) -> PortResult<()> {
        let mut bytes = encode(state)?;
        let room = self
            .options()
            .max_item_bytes
            .saturating_sub(NETWORK_ITEM_OVERHEAD);
        if bytes.len() > room {
            tracing::warn!(
                intersections = state.intersections.len(),
                bytes = bytes.len(),
                room,
                "the network state does not fit one item: stored without its intersections"
            );
            bytes = encode(&NetworkState {
                intersections: Vec::new(),
                ..state.clone()
            })?;
        }
        let item = to_item(
            "network state",
            &NetworkItem {
                pk: "network".into(),
                sk: "latest".into(),
                state: Bytes(bytes),
            },
        )?;
        self.batch_write(Table::Results, vec![put_request(item)?])
            .await
    }

    async fn network(&self) -> PortResult<Option<NetworkState>> {
        self.query(Query::partition(Table::Results, "network"))
            .await?
            .into_iter()
            .next()
            .map(|item| {
                let n: NetworkItem = from_item("network state", item)?;
                decode(&n.state.0, "network state")
            })
            .transpose()
    }
}
