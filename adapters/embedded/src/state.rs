//! [`StateStore`] on the `shards`, `deltas`, `rollups` and `merge` tables (`docs/state.md`).
//!
//! A commit is one write transaction: the stored meta's `applied_through` and commit count
//! and the merge's closed mark are checked first (a redrive's commit also that its mark, in the
//! `redrives` table, is not there yet), then the deltas and the meta are written, so the
//! conditional, all-or-nothing semantics are those of the DynamoDB store (stronger: a
//! refused commit leaves no delta behind). Items do not expire here; the merge's
//! [`StateStore::forget`] deletes what it no longer needs.

use crate::codec::{decode, encode};
use crate::{DELTAS, EmbeddedStore, MERGE, META, ROLLUPS};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use traffic_core::ShardId;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::redrive::RedriveMark;
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;
use traffic_ports::{PortError, PortResult, StateStore};

/// Redrive marks by shard and failure record id (`traffic_core::redrive`).
const REDRIVES: redb::TableDefinition<(&str, u64), &[u8]> = redb::TableDefinition::new("redrives");

/// Key of the merge's state in the `merge` table.
const STATE_KEY: &str = "state";
/// Key of the merge's lease in the `merge` table.
const LEASE_KEY: &str = "lease";

/// Who holds the merge's lease, until when.
#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    until_ms: i64,
}

fn read_state<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    ctx: &str,
) -> PortResult<MergeState> {
    match r!(t.get(STATE_KEY), ctx)? {
        Some(v) => decode(v.value(), "merge state").or_else(|e| {
            // Written before the merge measured latencies: the same fields without them.
            decode::<LegacyMergeState>(v.value(), "merge state")
                .map(LegacyMergeState::into_state)
                .map_err(|_| e)
        }),
        None => Ok(MergeState::default()),
    }
}

/// A shard's meta, in today's shape or as stored before it knew its last accepted reading.
fn decode_meta(b: &[u8]) -> PortResult<ShardMeta> {
    decode(b, "shard meta").or_else(|e| {
        decode::<traffic_core::stored::ShardMetaV1>(b, "shard meta")
            .map(ShardMeta::from)
            .map_err(|_| e)
    })
}

/// The merge's state as stored before it carried [`MergeState::latency`].
#[derive(Deserialize)]
struct LegacyMergeState {
    marks: MergeMarks,
    caught_up_since: std::collections::BTreeMap<ShardId, i64>,
    compaction: traffic_core::rollup::CompactionCounts,
}

impl LegacyMergeState {
    fn into_state(self) -> MergeState {
        MergeState {
            marks: self.marks,
            caught_up_since: self.caught_up_since,
            compaction: self.compaction,
            latency: Default::default(),
        }
    }
}

impl EmbeddedStore {
    /// A commit in one write transaction: the stored meta's checkpoint and commit count, the
    /// merge's closed mark (and a redrive's mark not there yet) checked first, then the
    /// deltas, the meta and the mark written.
    fn commit_with(&self, c: &Commit, mark: Option<&RedriveMark>) -> PortResult<()> {
        let ctx = "committing shard state";
        let shard = c.meta.shard_id.as_str();
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut metas = r!(txn.open_table(META), ctx)?;
            let stored: Option<ShardMeta> = match r!(metas.get(shard), ctx)? {
                Some(v) => Some(decode_meta(v.value())?),
                None => None,
            };
            let stored_commits = stored.as_ref().map_or(0, |m| m.commits);
            let stored_seq = stored.and_then(|m| m.applied_through);
            if stored_seq != c.expected || stored_commits != c.expected_commits {
                return Err(PortError::Conflict(format!(
                    "shard {shard} is at {stored_seq:?} after {stored_commits} commits, the \
                     batch expected {:?} after {}",
                    c.expected, c.expected_commits
                )));
            }
            let merge = r!(txn.open_table(MERGE), ctx)?;
            let closed = read_state(&merge, ctx)?.marks.closed_ms;
            if closed != c.closed_ms {
                return Err(PortError::Conflict(format!(
                    "the merge's closed mark moved to {closed:?} since the batch was folded \
                     against {:?}",
                    c.closed_ms
                )));
            }
            if let Some(mark) = mark {
                let mut marks = r!(txn.open_table(REDRIVES), ctx)?;
                if r!(marks.get((shard, mark.id)), ctx)?.is_some() {
                    return Err(PortError::Conflict(format!(
                        "failure record {:x} of shard {shard} was redriven already",
                        mark.id
                    )));
                }
                r!(
                    marks.insert((shard, mark.id), encode(mark)?.as_slice()),
                    ctx
                )?;
            }
            let mut deltas = r!(txn.open_table(DELTAS), ctx)?;
            for d in &c.deltas {
                let k = &d.key;
                r!(
                    deltas.insert(
                        (k.pane_start_ms, k.shard_id.as_str(), k.commit, k.part),
                        d.encode().as_slice()
                    ),
                    ctx
                )?;
            }
            r!(metas.insert(shard, encode(&c.meta)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    /// Changes the merge's state within one write transaction.
    fn update_merge_state(&self, ctx: &str, f: impl FnOnce(&mut MergeState)) -> PortResult<()> {
        self.write_table(MERGE, ctx, |t| {
            let mut state = read_state(&*t, ctx)?;
            f(&mut state);
            r!(t.insert(STATE_KEY, encode(&state)?.as_slice()), ctx)?;
            Ok(())
        })
    }
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn load_shard(&self, shard_id: &ShardId) -> PortResult<(Option<ShardMeta>, MergeMarks)> {
        let ctx = "loading shard state";
        let txn = r!(self.db.begin_read(), ctx)?;
        let metas = r!(txn.open_table(META), ctx)?;
        let meta = match r!(metas.get(shard_id.as_str()), ctx)? {
            Some(v) => Some(decode_meta(v.value())?),
            None => None,
        };
        let merge = r!(txn.open_table(MERGE), ctx)?;
        Ok((meta, read_state(&merge, ctx)?.marks))
    }

    async fn commit(&self, c: &Commit, _now_ms: i64) -> PortResult<()> {
        self.commit_with(c, None)
    }

    async fn commit_redrive(&self, c: &Commit, mark: &RedriveMark, _now_ms: i64) -> PortResult<()> {
        self.commit_with(c, Some(mark))
    }

    async fn redrive_mark(&self, shard_id: &ShardId, id: u64) -> PortResult<Option<RedriveMark>> {
        let ctx = "reading a redrive mark";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = match txn.open_table(REDRIVES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(PortError::backend(ctx, redb::Error::from(e))),
        };
        match r!(t.get((shard_id.as_str(), id)), ctx)? {
            Some(v) => Ok(Some(decode(v.value(), "redrive mark")?)),
            None => Ok(None),
        }
    }

    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        self.read_all(META, "reading shard metas", decode_meta)
    }

    async fn delta_panes(&self, from_ms: i64) -> PortResult<Vec<i64>> {
        let ctx = "listing panes";
        let t = self.read_table(DELTAS, ctx)?;
        let mut out: Vec<i64> = Vec::new();
        for e in r!(t.range((from_ms, "", 0, 0)..), ctx)? {
            let (k, _) = r!(e, ctx)?;
            let start = k.value().0;
            if out.last() != Some(&start) {
                out.push(start);
            }
        }
        Ok(out)
    }

    async fn deltas(&self, keys: &[DeltaKey], _consistent: bool) -> PortResult<Vec<Delta>> {
        let ctx = "reading deltas";
        let t = self.read_table(DELTAS, ctx)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let key = (k.pane_start_ms, k.shard_id.as_str(), k.commit, k.part);
            if let Some(v) = r!(t.get(key), ctx)? {
                out.push(
                    Delta::decode(k.clone(), v.value())
                        .map_err(|e| PortError::Corrupt(format!("{k:?}: {e}")))?,
                );
            }
        }
        Ok(out)
    }

    async fn rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>> {
        let ctx = "reading rollups";
        let t = self.read_table(ROLLUPS, ctx)?;
        let mut out = Vec::new();
        let len = length.ms();
        for e in r!(t.range((len, from_ms)..=(len, to_ms)), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "rollup")?);
        }
        Ok(out)
    }

    async fn put_rollups(&self, rollups: &[Rollup], _now_ms: i64) -> PortResult<()> {
        let ctx = "storing rollups";
        self.write_table(ROLLUPS, ctx, |t| {
            for r in rollups {
                let w = r.window;
                r!(
                    t.insert((w.length.ms(), w.start_ms), encode(r)?.as_slice()),
                    ctx
                )?;
            }
            Ok(())
        })
    }

    async fn merge_state(&self) -> PortResult<MergeState> {
        let ctx = "reading the merge's state";
        let t = self.read_table(MERGE, ctx)?;
        read_state(&t, ctx)
    }

    async fn advance_closed_mark(&self, closed_ms: i64) -> PortResult<()> {
        self.update_merge_state("moving the closed mark", |s| {
            s.marks.closed_ms = Some(s.marks.closed_ms.map_or(closed_ms, |c| c.max(closed_ms)));
        })
    }

    async fn put_merge_progress(&self, progress: &MergeState) -> PortResult<()> {
        self.update_merge_state("recording the merge's progress", |s| {
            // The closed mark is left alone, as in DynamoDB: only `advance_closed_mark` moves it.
            let closed = s.marks.closed_ms;
            *s = progress.clone();
            s.marks.closed_ms = closed;
        })
    }

    async fn take_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> PortResult<bool> {
        let ctx = "taking the merge's lease";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(MERGE), ctx)?;
            let current: Option<Lease> = match r!(t.get(LEASE_KEY), ctx)? {
                Some(v) => Some(decode(v.value(), "merge lease")?),
                None => None,
            };
            if current.is_some_and(|l| l.holder != holder && l.until_ms > now_ms) {
                return Ok(false);
            }
            let lease = Lease {
                holder: holder.to_owned(),
                until_ms,
            };
            r!(t.insert(LEASE_KEY, encode(&lease)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)?;
        Ok(true)
    }

    async fn release_lease(&self, holder: &str) -> PortResult<()> {
        let ctx = "releasing the merge's lease";
        self.write_table(MERGE, ctx, |t| {
            let ours = match r!(t.get(LEASE_KEY), ctx)? {
                Some(v) => decode::<Lease>(v.value(), "merge lease")?.holder == holder,
                None => false,
            };
            if ours {
                r!(t.remove(LEASE_KEY), ctx)?;
            }
            Ok(())
        })
    }

    async fn forget(&self, panes_before_ms: i64, rollups_through_ms: i64) -> PortResult<()> {
        let ctx = "deleting what the merge no longer needs";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(DELTAS), ctx)?;
            r!(
                t.retain_in((i64::MIN, "", 0, 0)..(panes_before_ms, "", 0, 0), |_, _| {
                    false
                }),
                ctx
            )?;
            let mut r = r!(txn.open_table(ROLLUPS), ctx)?;
            r!(
                r.retain(|(len, start), _| start.saturating_add(len) > rollups_through_ms),
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

    fn commit(meta: ShardMeta, expected: Option<u128>, closed_ms: Option<i64>) -> Commit {
        Commit {
            expected: expected.map(SequenceNumber::from_u128),
            expected_commits: 0,
            closed_ms,
            meta,
            deltas: vec![],
        }
    }

    #[tokio::test]
    async fn a_live_commit_folded_before_a_redrive_is_refused_and_a_redrive_lands_once()
    -> anyhow::Result<()> {
        use traffic_core::redrive::{RedriveCounts, RedriveMark};
        let (_dir, s) = crate::temp_store()?;
        s.commit(&commit(meta("s0", 5), None, None), 0).await?;
        // A live batch folded against seq 5 after 0 commits; meanwhile a redrive commits.
        let live = Commit {
            expected_commits: 0,
            ..commit(meta("s0", 9), Some(5), None)
        };
        let redriven = Commit {
            meta: ShardMeta {
                commits: 1,
                ..meta("s0", 5)
            },
            ..commit(meta("s0", 5), Some(5), None)
        };
        let mark = RedriveMark {
            shard_id: "s0".into(),
            id: 7,
            counts: RedriveCounts::default(),
        };
        assert_eq!(s.redrive_mark(&ShardId::from("s0"), 7).await?, None);
        s.commit_redrive(&redriven, &mark, 0).await?;
        assert_eq!(
            s.redrive_mark(&ShardId::from("s0"), 7).await?,
            Some(mark.clone())
        );
        assert!(matches!(
            s.commit(&live, 0).await,
            Err(PortError::Conflict(_))
        ));
        // The same failure record again: refused, even folded against the new meta.
        let again = Commit {
            expected_commits: 1,
            meta: ShardMeta {
                commits: 2,
                ..meta("s0", 5)
            },
            ..commit(meta("s0", 5), Some(5), None)
        };
        assert!(matches!(
            s.commit_redrive(&again, &mark, 0).await,
            Err(PortError::Conflict(_))
        ));
        assert_eq!(
            s.load_shard(&ShardId::from("s0"))
                .await?
                .0
                .map(|m| m.commits),
            Some(1)
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_commit_survives_reopening_and_a_stale_commit_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.redb");
        {
            let s = EmbeddedStore::open(&path)?;
            s.commit(&commit(meta("s0", 5), None, None), 0).await?;
        }
        let s = EmbeddedStore::open(&path)?;
        let (m, _) = s.load_shard(&ShardId::from("s0")).await?;
        assert_eq!(m, Some(meta("s0", 5)));
        let stale = commit(meta("s0", 9), None, None);
        assert!(matches!(
            s.commit(&stale, 0).await,
            Err(PortError::Conflict(_))
        ));
        assert_eq!(
            s.load_shard(&ShardId::from("s0")).await?.0,
            Some(meta("s0", 5))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_commit_folded_before_the_closed_mark_moved_is_refused() -> anyhow::Result<()> {
        let (_dir, s) = crate::temp_store()?;
        s.commit(&commit(meta("s0", 1), None, None), 0).await?;
        s.advance_closed_mark(900_000).await?;
        let late = commit(meta("s0", 2), Some(1), None);
        assert!(matches!(
            s.commit(&late, 0).await,
            Err(PortError::Conflict(_))
        ));
        let now = commit(meta("s0", 2), Some(1), Some(900_000));
        s.commit(&now, 0).await?;
        // The mark never moves back.
        s.advance_closed_mark(60_000).await?;
        assert_eq!(s.merge_state().await?.marks.closed_ms, Some(900_000));
        Ok(())
    }

    #[tokio::test]
    async fn one_merge_holds_the_lease_until_it_releases_it_or_it_expires() -> anyhow::Result<()> {
        let (_dir, s) = crate::temp_store()?;
        assert!(s.take_lease("a", 0, 100).await?);
        assert!(!s.take_lease("b", 50, 150).await?);
        assert!(s.take_lease("b", 100, 200).await?, "expired");
        s.release_lease("a").await?;
        assert!(
            !s.take_lease("c", 150, 250).await?,
            "a cannot release b's lease"
        );
        s.release_lease("b").await?;
        assert!(s.take_lease("c", 150, 250).await?);
        Ok(())
    }
}
