//! [`StateStore`] on the `shard_meta` and `panes` tables.

use crate::codec::{decode, encode};
use crate::{EmbeddedStore, META, PANES};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use traffic_core::pane::{Commit, PaneItem, PaneKey, ShardMeta};
use traffic_ports::{PortError, PortResult, StateStore};

#[async_trait]
impl StateStore for EmbeddedStore {
    fn max_items_per_commit(&self) -> usize {
        usize::MAX
    }

    async fn load_shard(
        &self,
        shard_id: &str,
        keys: &[PaneKey],
    ) -> PortResult<(Option<ShardMeta>, Vec<PaneItem>)> {
        let ctx = "loading shard state";
        let txn = r!(self.db.begin_read(), ctx)?;
        let metas = r!(txn.open_table(META), ctx)?;
        let meta = match r!(metas.get(shard_id), ctx)? {
            Some(v) => Some(decode(v.value(), "shard meta")?),
            None => None,
        };
        let panes = r!(txn.open_table(PANES), ctx)?;
        let mut items = Vec::new();
        for k in keys {
            if let Some(v) = r!(panes.get((k.start_ms, k.shard_id.as_str(), k.bucket)), ctx)? {
                items.push(decode(v.value(), "pane item")?);
            }
        }
        Ok((meta, items))
    }

    async fn commit(&self, c: &Commit<'_>) -> PortResult<()> {
        let ctx = "committing shard state";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut metas = r!(txn.open_table(META), ctx)?;
            let stored: Option<ShardMeta> = match r!(metas.get(c.meta.shard_id.as_str()), ctx)? {
                Some(v) => Some(decode(v.value(), "shard meta")?),
                None => None,
            };
            let stored_seq = stored.and_then(|m| m.applied_through);
            if stored_seq != c.expected {
                return Err(PortError::Conflict(format!(
                    "shard {} is at {:?}, the batch expected {:?}",
                    c.meta.shard_id, stored_seq, c.expected
                )));
            }
            r!(
                metas.insert(c.meta.shard_id.as_str(), encode(&c.meta)?.as_slice()),
                ctx
            )?;
            let mut panes = r!(txn.open_table(PANES), ctx)?;
            for item in &c.items {
                let k = &item.key;
                r!(
                    panes.insert(
                        (k.start_ms, k.shard_id.as_str(), k.bucket),
                        encode(item)?.as_slice()
                    ),
                    ctx
                )?;
            }
        }
        r!(txn.commit(), ctx)
    }

    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        let ctx = "reading shard metas";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(META), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "shard meta")?);
        }
        Ok(out)
    }

    async fn pane_starts(&self) -> PortResult<Vec<i64>> {
        let ctx = "listing panes";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(PANES), ctx)?;
        let mut out: Vec<i64> = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (k, _) = r!(e, ctx)?;
            let start = k.value().0;
            if out.last() != Some(&start) {
                out.push(start);
            }
        }
        Ok(out)
    }

    async fn pane_items(&self, start_ms: i64) -> PortResult<Vec<PaneItem>> {
        let ctx = "reading a pane";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(PANES), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.range((start_ms, "", 0)..(start_ms + 1, "", 0)), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "pane item")?);
        }
        Ok(out)
    }

    async fn delete_panes_before(&self, before_ms: i64) -> PortResult<()> {
        let ctx = "deleting old panes";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(PANES), ctx)?;
            r!(
                t.retain_in((i64::MIN, "", 0)..(before_ms, "", 0), |_, _| false),
                ctx
            )?;
        }
        r!(txn.commit(), ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::SequenceNumber;

    fn meta(shard: &str, seq: u128) -> ShardMeta {
        ShardMeta {
            shard_id: shard.into(),
            applied_through: Some(SequenceNumber::from_u128(seq)),
            ..ShardMeta::default()
        }
    }

    #[tokio::test]
    async fn a_commit_survives_reopening_and_a_stale_commit_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.redb");
        {
            let s = EmbeddedStore::open(&path)?;
            s.commit(&Commit {
                expected: None,
                meta: meta("s0", 5),
                items: vec![],
            })
            .await?;
        }
        let s = EmbeddedStore::open(&path)?;
        let (m, _) = s.load_shard("s0", &[]).await?;
        assert_eq!(m, Some(meta("s0", 5)));
        let stale = Commit {
            expected: None,
            meta: meta("s0", 9),
            items: vec![],
        };
        assert!(matches!(
            s.commit(&stale).await,
            Err(PortError::Conflict(_))
        ));
        let (m, _) = s.load_shard("s0", &[]).await?;
        assert_eq!(m, Some(meta("s0", 5)));
        Ok(())
    }
}
