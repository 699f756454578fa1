//! [`ResultStore`] on `RESULTS_TABLE`.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | window result | `results` | `ord(length_ms)#ord(start_ms)` | `length_ms`, `start_ms`, `closed`, `result` (M) |
//! | closed marker | `closed` | the same | `length_ms`, `start_ms` |
//!
//! One partition, so [`ResultStore::results`] is one query in window order (length, then
//! start). The merge asks for the closed windows on every run: the small markers answer that
//! without reading the results themselves.

use crate::items::{Item, Query, from_item, n_i64, ord_i64, put_request, to_item};
use crate::{DynamoStore, Table};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use traffic_core::query::WindowResult;
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

#[async_trait]
impl ResultStore for DynamoStore {
    async fn put_results(&self, results: &[(WindowKey, WindowResult)]) -> PortResult<()> {
        let mut writes = Vec::with_capacity(results.len() * 2);
        for (k, r) in results {
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

    async fn closed_windows(&self) -> PortResult<Vec<WindowKey>> {
        Ok(self
            .query(Query::partition(Table::Results, "closed"))
            .await?
            .iter()
            .filter_map(window_of)
            .collect())
    }

    async fn results(&self) -> PortResult<Vec<WindowResult>> {
        self.query(Query::partition(Table::Results, "results"))
            .await?
            .into_iter()
            .map(|item| {
                let key = window_of(&item);
                let r: ResultItem = from_item("window result", item)?;
                Ok(WindowResult { key, ..r.result })
            })
            .collect()
    }
}
