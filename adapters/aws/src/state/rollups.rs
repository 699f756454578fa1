//! Rollups of windows as versioned blobs: the parts under `rollup#<length>#<start>`, the
//! header under `rollups#<length>` naming them.

use crate::blob::BlobRef;
use crate::items::{Query, SortKey, decode, encode, from_item, ord_i64, put_request, to_item};
use crate::{DynamoStore, Table};
use serde::{Deserialize, Serialize};
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;
use traffic_ports::{PortError, PortResult};

#[derive(Serialize, Deserialize)]
struct RollupHeader {
    pk: String,
    sk: String,
    start_ms: i64,
    through_ms: i64,
    parts: u32,
    bytes: u64,
    expires_at: i64,
}

pub(super) fn rollup_index_pk(length: WindowLength) -> String {
    format!("rollups#{}", length.ms())
}

pub(super) fn rollup_parts_pk(length: WindowLength, start_ms: i64) -> String {
    format!("rollup#{}#{start_ms}", length.ms())
}

impl DynamoStore {
    /// The rollups of `length` whose windows start from `from_ms` to `to_ms`, their parts read
    /// as blobs; those near their expiry are written again.
    pub(super) async fn read_rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>> {
        if to_ms < from_ms {
            return Ok(Vec::new());
        }
        let headers = self
            .query(
                Query::partition(Table::State, rollup_index_pk(length))
                    .sk(SortKey::Between(ord_i64(from_ms), ord_i64(to_ms))),
            )
            .await?
            .into_iter()
            .map(|i| from_item::<RollupHeader>("rollup header", i))
            .collect::<PortResult<Vec<_>>>()?;
        let refs: Vec<BlobRef> = headers
            .iter()
            .map(|h| BlobRef {
                pk: rollup_parts_pk(length, h.start_ms),
                version: ord_i64(h.through_ms),
                parts: h.parts,
            })
            .collect();
        let blobs = self.get_blobs(Table::State, &refs).await?;
        let rollups = blobs
            .iter()
            .zip(&headers)
            .map(|(b, h)| {
                let r: Rollup = decode(b, "rollup")?;
                if r.window.start_ms != h.start_ms || r.window.length != length {
                    return Err(PortError::Corrupt(format!(
                        "rollup {} holds window {:?}",
                        h.sk, r.window
                    )));
                }
                Ok(r)
            })
            .collect::<PortResult<Vec<Rollup>>>()?;
        // Prefixes of windows still open after a stall: kept while the merge reads them.
        let now = crate::keep::now_ms();
        let kept: Vec<Rollup> = rollups
            .iter()
            .zip(&headers)
            .filter(|(_, h)| self.opts.refreshed_expiry(h.expires_at, now).is_some())
            .map(|(r, _)| r.clone())
            .collect();
        if !kept.is_empty() {
            tracing::info!(rollups = kept.len(), "rollups near their expiry kept");
            self.write_rollups(&kept, now).await?;
        }
        Ok(rollups)
    }

    /// Writes `rollups` as blobs: every part, then the headers.
    pub(super) async fn write_rollups(&self, rollups: &[Rollup], now_ms: i64) -> PortResult<()> {
        let expires_at = self.opts.expires_at(now_ms);
        let mut parts = Vec::new();
        let mut headers = Vec::with_capacity(rollups.len());
        for r in rollups {
            let bytes = encode(r)?;
            let (blob, items) = self.blob_items(
                &rollup_parts_pk(r.window.length, r.window.start_ms),
                &ord_i64(r.through_ms),
                &bytes,
                Some(expires_at),
            )?;
            parts.extend(items);
            headers.push(put_request(to_item(
                "rollup header",
                &RollupHeader {
                    pk: rollup_index_pk(r.window.length),
                    sk: ord_i64(r.window.start_ms),
                    start_ms: r.window.start_ms,
                    through_ms: r.through_ms,
                    parts: blob.parts,
                    bytes: bytes.len() as u64,
                    expires_at,
                },
            )?)?);
        }
        // Every part before any header: a header names only parts that are there.
        self.put_blob_items(Table::State, parts).await?;
        self.batch_write(Table::State, headers).await
    }
}
