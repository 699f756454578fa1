//! TEMPORARY placeholder while the DynamoDB state is rewritten on branch `dyn`: every call
//! fails. Never lands.

use crate::DynamoStore;
use async_trait::async_trait;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;
use traffic_ports::{PortError, PortResult, StateStore};

fn todo() -> PortError {
    PortError::backend("DynamoDB state", "being rewritten on branch dyn")
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn load_shard(&self, _: &str) -> PortResult<(Option<ShardMeta>, MergeMarks)> {
        Err(todo())
    }
    async fn commit(&self, _: &Commit, _: i64) -> PortResult<()> {
        Err(todo())
    }
    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        Err(todo())
    }
    async fn delta_panes(&self, _: i64) -> PortResult<Vec<i64>> {
        Err(todo())
    }
    async fn deltas(&self, _: &[DeltaKey], _: bool) -> PortResult<Vec<Delta>> {
        Err(todo())
    }
    async fn rollups(&self, _: WindowLength, _: i64, _: i64) -> PortResult<Vec<Rollup>> {
        Err(todo())
    }
    async fn put_rollups(&self, _: &[Rollup], _: i64) -> PortResult<()> {
        Err(todo())
    }
    async fn merge_state(&self) -> PortResult<MergeState> {
        Err(todo())
    }
    async fn advance_closed_mark(&self, _: i64) -> PortResult<()> {
        Err(todo())
    }
    async fn put_merge_progress(&self, _: &MergeState) -> PortResult<()> {
        Err(todo())
    }
    async fn take_lease(&self, _: &str, _: i64, _: i64) -> PortResult<bool> {
        Err(todo())
    }
    async fn release_lease(&self, _: &str) -> PortResult<()> {
        Err(todo())
    }
    async fn forget(&self, _: i64, _: i64) -> PortResult<()> {
        Err(todo())
    }
}
