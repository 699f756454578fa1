//! Helpers shared by the integration tests: a store on a temporary file with the sample city,
//! and ports that fail on purpose.
#![allow(dead_code)]

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_core::City;
use traffic_core::delta::{Delta, DeltaKey};
use traffic_core::lamps::Alarm;
use traffic_core::pane::{Commit, MergeMarks, MergeState, ShardMeta};
use traffic_core::redrive::RedriveMark;
use traffic_core::rollup::Rollup;
use traffic_core::window::WindowLength;
use traffic_embedded::EmbeddedStore;
use traffic_ports::{AlarmPublisher, PortError, PortResult, Registry, StateStore};

/// The sample city of the repository.
pub fn sample_city() -> City {
    City::parse(include_str!("../../../samples/city.json")).unwrap_or_else(|e| panic!("{e}"))
}

/// An embedded store in a temporary directory, holding the sample city.
pub async fn store_with_city() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = EmbeddedStore::open(dir.path().join("t.redb")).unwrap_or_else(|e| panic!("{e}"));
    for x in &sample_city().intersections {
        store
            .put_intersection(x)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    (dir, store)
}

fn unavailable(what: &str) -> PortError {
    PortError::Unavailable {
        context: what.to_owned(),
        source: "injected fault".into(),
    }
}

/// A state store that fails its first `fail_commits` commits (as a throttled or unreachable
/// DynamoDB would), delegating everything else.
pub struct FlakyState {
    pub inner: EmbeddedStore,
    pub fail_commits: AtomicUsize,
    pub commits: AtomicUsize,
}

impl FlakyState {
    pub fn new(inner: EmbeddedStore, fail_commits: usize) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_commits: AtomicUsize::new(fail_commits),
            commits: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl StateStore for FlakyState {
    async fn load_shard(
        &self,
        shard_id: &traffic_core::ShardId,
    ) -> PortResult<(Option<ShardMeta>, MergeMarks)> {
        self.inner.load_shard(shard_id).await
    }
    async fn commit(&self, commit: &Commit, now_ms: i64) -> PortResult<()> {
        let left = self.fail_commits.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_commits.store(left - 1, Ordering::SeqCst);
            return Err(unavailable("commit"));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(commit, now_ms).await
    }
    async fn commit_redrive(
        &self,
        commit: &Commit,
        mark: &RedriveMark,
        now_ms: i64,
    ) -> PortResult<()> {
        self.inner.commit_redrive(commit, mark, now_ms).await
    }
    async fn redrive_mark(
        &self,
        shard_id: &traffic_core::ShardId,
        id: u64,
    ) -> PortResult<Option<RedriveMark>> {
        self.inner.redrive_mark(shard_id, id).await
    }
    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        // A real store's read takes a round trip: other tasks run meanwhile.
        tokio::task::yield_now().await;
        self.inner.shard_metas().await
    }
    async fn delta_panes(&self, from_ms: i64) -> PortResult<Vec<i64>> {
        self.inner.delta_panes(from_ms).await
    }
    async fn deltas(&self, keys: &[DeltaKey], consistent: bool) -> PortResult<Vec<Delta>> {
        self.inner.deltas(keys, consistent).await
    }
    async fn rollups(
        &self,
        length: WindowLength,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Rollup>> {
        self.inner.rollups(length, from_ms, to_ms).await
    }
    async fn put_rollups(&self, rollups: &[Rollup], now_ms: i64) -> PortResult<()> {
        self.inner.put_rollups(rollups, now_ms).await
    }
    async fn merge_state(&self) -> PortResult<MergeState> {
        self.inner.merge_state().await
    }
    async fn advance_closed_mark(&self, closed_ms: i64) -> PortResult<()> {
        self.inner.advance_closed_mark(closed_ms).await
    }
    async fn put_merge_progress(&self, state: &MergeState) -> PortResult<()> {
        self.inner.put_merge_progress(state).await
    }
    async fn take_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> PortResult<bool> {
        self.inner.take_lease(holder, now_ms, until_ms).await
    }
    async fn release_lease(&self, holder: &str) -> PortResult<()> {
        self.inner.release_lease(holder).await
    }
    async fn forget(&self, panes_before_ms: i64, rollups_through_ms: i64) -> PortResult<()> {
        self.inner.forget(panes_before_ms, rollups_through_ms).await
    }
}

/// A publisher that fails its first `fail` publishes, then hands alarms to the embedded one.
pub struct FlakyPublisher {
    pub inner: EmbeddedStore,
    pub fail: AtomicUsize,
    pub published: AtomicUsize,
}

#[async_trait]
impl AlarmPublisher for FlakyPublisher {
    async fn publish(&self, alarm: &Alarm) -> PortResult<()> {
        let left = self.fail.load(Ordering::SeqCst);
        if left > 0 {
            self.fail.store(left - 1, Ordering::SeqCst);
            return Err(unavailable("publish"));
        }
        self.published.fetch_add(1, Ordering::SeqCst);
        self.inner.publish(alarm).await
    }
}
