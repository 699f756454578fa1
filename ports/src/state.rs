//! The partial state `ingest` and `merge` keep: shard metas, deltas, rollups, marks, the lease
//! ([`StateStore`]).

#[cfg(doc)]
use crate::PortError;
use crate::PortResult;
use async_trait::async_trait;
use traffic_core::ShardId;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::redrive::RedriveMark;
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;

/// The state `ingest` and `merge` keep (`docs/state.md`): per-shard metas, the deltas they
/// list, the merge's marks and progress, rollups of windows, and the merge's lease.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// A shard's meta and the merge's marks, read consistently.
    async fn load_shard(&self, shard_id: &ShardId) -> PortResult<(Option<ShardMeta>, MergeMarks)>;

    /// Writes a commit: its deltas first, then its meta, the meta only if the stored meta's
    /// `applied_through` is still `commit.expected`, its commit count still
    /// `commit.expected_commits` and the merge's closed mark still `commit.closed_ms`;
    /// otherwise [`PortError::Conflict`] (the deltas already written stay, unlisted, until
    /// they expire). Items expire a retention after `now_ms`.
    async fn commit(&self, commit: &Commit, now_ms: i64) -> PortResult<()>;

    /// Writes a redrive's commit as [`StateStore::commit`] does, with its mark in the same
    /// atomic write as the meta; [`PortError::Conflict`] also when the mark exists already.
    async fn commit_redrive(
        &self,
        commit: &Commit,
        mark: &RedriveMark,
        now_ms: i64,
    ) -> PortResult<()>;

    /// The mark of failure record `id` of `shard_id`, if it was redriven (and has not expired).
    async fn redrive_mark(&self, shard_id: &ShardId, id: u64) -> PortResult<Option<RedriveMark>>;

    /// The metas of all shards.
    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>>;

    /// Starts of the panes with deltas, from `from_ms` on (inclusive), ascending.
    async fn delta_panes(&self, from_ms: i64) -> PortResult<Vec<i64>>;

    /// Those of `keys` (all of one pane) that exist, in the order of `keys`; `consistent`
    /// asks for a strongly consistent read (what a compaction needs).
    async fn deltas(&self, keys: &[DeltaKey], consistent: bool) -> PortResult<Vec<Delta>>;

    /// The stored rollups of windows of `length` starting in `from_ms..=to_ms`.
    async fn rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>>;

    /// Stores rollups, each replacing the one of its window. Items expire a retention after
    /// `now_ms`.
    async fn put_rollups(&self, rollups: &[Rollup], now_ms: i64) -> PortResult<()>;

    /// The merge's state (marks and idle bookkeeping), read consistently.
    async fn merge_state(&self) -> PortResult<MergeState>;

    /// Moves the closed mark forward to `closed_ms` (never back). The merge does it before it
    /// reads the panes it finalises: every commit is conditional on the mark.
    async fn advance_closed_mark(&self, closed_ms: i64) -> PortResult<()>;

    /// Records the merge's progress: its whole state (the compacted mark, when each caught-up
    /// shard was first seen so, what compaction has dropped so far). Only the merge writes it,
    /// under its lease; its closed mark is the one [`StateStore::advance_closed_mark`] set.
    async fn put_merge_progress(&self, state: &MergeState) -> PortResult<()>;

    /// Takes the merge's lease for `holder` until `until_ms`, if nobody else holds an
    /// unexpired one at `now_ms`; `false` when someone does.
    async fn take_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> PortResult<bool>;

    /// Releases the lease if `holder` still holds it.
    async fn release_lease(&self, holder: &str) -> PortResult<()>;

    /// Drops what the merge no longer needs: the deltas of panes starting before
    /// `panes_before_ms` and the rollups of windows ending at or before `rollups_through_ms`.
    /// A store whose items expire by themselves (DynamoDB's TTL) may leave them to that.
    async fn forget(&self, panes_before_ms: i64, rollups_through_ms: i64) -> PortResult<()>;
}
