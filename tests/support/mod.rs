//! Helpers shared by the integration tests: a store on a temporary file with the sample city,
//! and ports that fail on purpose.
#![allow(dead_code)]

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use traffic_core::City;
use traffic_core::lamps::Alarm;
use traffic_core::pane::{Commit, PaneItem, PaneKey, ShardMeta};
use traffic_embedded::EmbeddedStore;
use traffic_ports::{AlarmPublisher, PortError, PortResult, Registry, StateStore};

/// The sample city of the repository.
pub fn sample_city() -> City {
    City::parse(include_str!("../../samples/city.json")).unwrap_or_else(|e| panic!("{e}"))
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
/// DynamoDB would) and can bound commit sizes, delegating everything else.
pub struct FlakyState {
    pub inner: EmbeddedStore,
    pub fail_commits: AtomicUsize,
    pub max_items: usize,
    pub commits: AtomicUsize,
}

impl FlakyState {
    pub fn new(inner: EmbeddedStore, fail_commits: usize, max_items: usize) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_commits: AtomicUsize::new(fail_commits),
            max_items,
            commits: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl StateStore for FlakyState {
    fn max_items_per_commit(&self) -> usize {
        self.max_items
    }
    async fn load_shard(
        &self,
        shard_id: &str,
        keys: &[PaneKey],
    ) -> PortResult<(Option<ShardMeta>, Vec<PaneItem>)> {
        self.inner.load_shard(shard_id, keys).await
    }
    async fn commit(&self, commit: &Commit<'_>) -> PortResult<()> {
        let left = self.fail_commits.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_commits.store(left - 1, Ordering::SeqCst);
            return Err(unavailable("commit"));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(commit).await
    }
    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        self.inner.shard_metas().await
    }
    async fn pane_starts(&self) -> PortResult<Vec<i64>> {
        self.inner.pane_starts().await
    }
    async fn pane_items(&self, start_ms: i64) -> PortResult<Vec<PaneItem>> {
        self.inner.pane_items(start_ms).await
    }
    async fn delete_panes_before(&self, before_ms: i64) -> PortResult<()> {
        self.inner.delete_panes_before(before_ms).await
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
