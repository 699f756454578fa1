//! Each shard's hash key range, learnt once per process (a Lambda cold start) from the
//! stream's [`StreamShards::hash_ranges`] (Kinesis `ListShards`), so that `ingest` and `fault`
//! can reject a record an explicit hash key put on a shard its partition key does not map to
//! (the check itself is [`traffic_core::routing`]).
//!
//! The list is read on the first batch and again only when a batch names a shard it does not
//! hold (a reshard since): at most one `ListShards` per new shard, never one per batch. When
//! the list cannot be read, the batch is checked against nothing (as before this check) and
//! the next batch asks again.

use aws_lambda_events::event::kinesis::KinesisEvent;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;
use traffic_core::ShardId;
use traffic_core::routing::HashKeyRange;
use traffic_ports::StreamShards;

/// The hash key ranges of the shards of one batch, by shard id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes(HashMap<ShardId, HashKeyRange>);

impl Routes {
    /// No ranges: nothing is checked.
    pub fn none() -> Self {
        Self::default()
    }

    /// The range of `shard`, if known.
    pub fn of(&self, shard: &ShardId) -> Option<&HashKeyRange> {
        self.0.get(shard)
    }
}

impl FromIterator<(ShardId, HashKeyRange)> for Routes {
    fn from_iter<I: IntoIterator<Item = (ShardId, HashKeyRange)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The stream's shard ranges, cached for the life of the process.
#[derive(Default)]
pub struct ShardRanges {
    stream: Option<Arc<dyn StreamShards>>,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    ranges: HashMap<ShardId, HashKeyRange>,
    /// Shards asked for once and still not listed: not asked for again.
    unlisted: BTreeSet<String>,
    loaded: bool,
}

impl ShardRanges {
    /// Ranges from `stream` (`None`: no stream to ask, nothing is checked).
    pub fn new(stream: Option<Arc<dyn StreamShards>>) -> Self {
        Self {
            stream,
            known: Mutex::new(Known::default()),
        }
    }

    /// The ranges of the shards `event`'s records came from.
    pub async fn routes(&self, event: &KinesisEvent) -> Routes {
        let Some(stream) = &self.stream else {
            return Routes::none();
        };
        let shards: BTreeSet<&str> = event.records.iter().map(crate::kinesis::shard_of).collect();
        let mut known = self.known.lock().await;
        let missing = shards
            .iter()
            .any(|s| !known.ranges.contains_key(*s) && !known.unlisted.contains(*s));
        if missing || !known.loaded {
            match stream.hash_ranges().await {
                Ok(ranges) => {
                    known.ranges = ranges.into_iter().collect();
                    known.loaded = true;
                    for s in &shards {
                        if !known.ranges.contains_key(*s) {
                            known.unlisted.insert((*s).to_owned());
                        }
                    }
                    tracing::info!(shards = known.ranges.len(), "shard hash key ranges listed");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shard hash key ranges not listed: this batch's records are not checked against their shard");
                    return Routes::none();
                }
            }
        }
        shards
            .into_iter()
            .filter_map(|s| known.ranges.get(s).map(|r| (s.into(), *r)))
            .collect()
    }
}
