//! Blobs that grow with the city (a window's rollup, a result's list of intersections above
//! the median, the network state), stored as versioned parts of bounded size.
//!
//! The bytes are cut into parts of at most `max_item_bytes` less room for the key, each an item
//! of partition `pk` with sort key `<version>#<part>`; the caller then writes a small header
//! item naming the version and its part count: the atomic switch. A reader reads the header
//! (consistently), then the parts it names, eventually consistent first (half the read units)
//! and consistently for any part not found yet. A version's parts never change once written
//! (a rerun writes the same bytes under the same keys, or uses a new version), so an
//! eventually consistent read returns either the part or nothing. Old versions expire by TTL.

use crate::capacity::item_size;
use crate::items::{Bytes, Item, key, put_request, s, to_item};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::HashMap;
use traffic_ports::{PortError, PortResult};

/// Bytes of a part item that are not the part itself (its key and attribute names).
const PART_OVERHEAD: usize = 512;
/// Parts per `BatchGetItem` (its answer is at most 16 MB).
const PARTS_PER_READ: usize = 64;

#[derive(Serialize)]
struct PartItem<'a> {
    pk: &'a str,
    sk: String,
    b: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

/// Where a blob's parts are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// Partition of the parts.
    pub pk: String,
    /// Version: the parts' sort keys start with it.
    pub version: String,
    /// Number of parts.
    pub parts: u32,
}

fn part_sk(version: &str, part: u32) -> String {
    format!("{version}#{part:05}")
}

impl DynamoStore {
    /// Largest part, bytes.
    pub(crate) fn part_bytes(&self) -> usize {
        self.opts
            .max_item_bytes
            .saturating_sub(PART_OVERHEAD)
            .max(1024)
    }

    /// The part items of `bytes` under `pk` and `version`, expiring at `expires_at`.
    pub(crate) fn blob_items(
        &self,
        pk: &str,
        version: &str,
        bytes: &[u8],
        expires_at: Option<i64>,
    ) -> PortResult<(BlobRef, Vec<Item>)> {
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(self.part_bytes()).collect()
        };
        let mut items = Vec::with_capacity(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            let item = to_item(
                "blob part",
                &PartItem {
                    pk,
                    sk: part_sk(version, i as u32),
                    b: Bytes(c.to_vec()),
                    expires_at,
                },
            )?;
            debug_assert!(item_size(&item) <= self.opts.max_item_bytes);
            items.push(item);
        }
        Ok((
            BlobRef {
                pk: pk.to_owned(),
                version: version.to_owned(),
                parts: chunks.len() as u32,
            },
            items,
        ))
    }

    /// Writes part items (of any number of blobs), before the headers that name them.
    pub(crate) async fn put_blob_items(&self, t: Table, items: Vec<Item>) -> PortResult<()> {
        let requests = items
            .into_iter()
            .map(put_request)
            .collect::<PortResult<Vec<_>>>()?;
        self.batch_write(t, requests).await
    }

    /// The bytes of each blob of `refs`, in order.
    pub(crate) async fn get_blobs(&self, t: Table, refs: &[BlobRef]) -> PortResult<Vec<Vec<u8>>> {
        let keys: Vec<(String, String)> = refs
            .iter()
            .flat_map(|r| (0..r.parts).map(move |p| (r.pk.clone(), part_sk(&r.version, p))))
            .collect();
        let mut found: HashMap<(String, String), Vec<u8>> = HashMap::with_capacity(keys.len());
        for consistent in [false, true] {
            let wanted: Vec<Item> = keys
                .iter()
                .filter(|k| !found.contains_key(*k))
                .map(|(pk, sk)| key(pk.clone(), sk.clone()))
                .collect();
            if wanted.is_empty() {
                break;
            }
            for chunk in wanted.chunks(PARTS_PER_READ) {
                for item in self.batch_get(t, chunk.to_vec(), consistent).await? {
                    let (Some(pk), Some(sk)) = (s(&item, "pk"), s(&item, "sk")) else {
                        continue;
                    };
                    let k = (pk.to_owned(), sk.to_owned());
                    let b = match item.get("b") {
                        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
                        _ => return Err(PortError::Corrupt(format!("blob part {pk} {sk}"))),
                    };
                    found.insert(k, b);
                }
            }
        }
        refs.iter()
            .map(|r| {
                let mut out = Vec::new();
                for p in 0..r.parts {
                    let k = (r.pk.clone(), part_sk(&r.version, p));
                    let part = found.get(&k).ok_or_else(|| {
                        PortError::Corrupt(format!(
                            "part {p} of {} version {} is missing (expired, or never written)",
                            r.pk, r.version
                        ))
                    })?;
                    out.extend_from_slice(part);
                }
                Ok(out)
            })
            .collect()
    }
}
