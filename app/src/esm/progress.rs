//! What every mapping has done so far ([`MappingStats`]), observable while it runs
//! ([`Progress`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What a mapping has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MappingStats {
    /// Records handled (acknowledged by the handler).
    pub records: u64,
    /// Batches read and handed over.
    pub batches: u64,
    /// Handler invocations (retries and halves included).
    pub invocations: u64,
    /// Retries from a failed record.
    pub retries: u64,
    /// Batches split in two.
    pub bisections: u64,
    /// Records sent to the on-failure destination.
    pub records_to_destination: u64,
    /// Batches sent to the on-failure destination.
    pub batches_to_destination: u64,
    /// Shards started (a child only once its parents are finished).
    pub shards_started: u64,
    /// Shards read to their end.
    pub shards_finished: u64,
    /// Reads of the source (`GetRecords` calls on Kinesis).
    pub get_records_calls: u64,
    /// Last sequence number handled, per shard.
    pub checkpoints: BTreeMap<traffic_core::ShardId, String>,
}

/// The counters of every mapping, observable while they run.
#[derive(Debug, Default)]
pub struct Progress {
    stats: Mutex<BTreeMap<String, MappingStats>>,
    changed: Notify,
}

impl Progress {
    /// The counters of every mapping.
    pub fn snapshot(&self) -> BTreeMap<String, MappingStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The counters of one mapping.
    pub fn of(&self, name: &str) -> MappingStats {
        self.stats
            .lock()
            .ok()
            .and_then(|s| s.get(name).cloned())
            .unwrap_or_default()
    }

    pub(crate) fn update(&self, name: &str, f: impl FnOnce(&mut MappingStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(s.entry(name.to_owned()).or_default());
        }
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds for the counters of every mapping, or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&BTreeMap<String, MappingStats>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if done(&self.snapshot()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Also wake now and then, in case a notification slipped between check and wait.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}
