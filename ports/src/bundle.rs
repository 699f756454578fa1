//! [`Ports`]: every port a function may need, as shared trait objects. It names no adapter:
//! `traffic_embedded::EmbeddedStore::ports` and `traffic_aws::ports_from_config` build it.

use crate::{
    AlarmPublisher, LampStore, Registry, ResultStore, StateStore, StatsStore, StreamShards,
};
use std::sync::Arc;

/// Every port a function may need.
#[derive(Clone)]
pub struct Ports {
    /// Ingest state.
    pub state: Arc<dyn StateStore>,
    /// Intersections and timings.
    pub registry: Arc<dyn Registry>,
    /// Lamp states and alarm log.
    pub lamps: Arc<dyn LampStore>,
    /// Alarm delivery.
    pub publisher: Arc<dyn AlarmPublisher>,
    /// Merge results.
    pub results: Arc<dyn ResultStore>,
    /// Throughput and latency figures.
    pub stats: Arc<dyn StatsStore>,
    /// The readings stream's shards (the merge's lineage after a reshard): set on AWS when
    /// the stream is named, `None` for the embedded log, which never reshards.
    pub stream: Option<Arc<dyn StreamShards>>,
}

impl Ports {
    /// Every port but the publisher and the stream from one store that implements them all
    /// (the embedded store, the DynamoDB store), alarms through `publisher`.
    pub fn from_store<S>(store: Arc<S>, publisher: Arc<dyn AlarmPublisher>) -> Self
    where
        S: StateStore + Registry + LampStore + ResultStore + StatsStore + 'static,
    {
        Self {
            state: store.clone(),
            registry: store.clone(),
            lamps: store.clone(),
            publisher,
            results: store.clone(),
            stats: store,
            stream: None,
        }
    }

    /// The same ports, with the stream's shards.
    pub fn with_stream(mut self, shards: Arc<dyn StreamShards>) -> Self {
        self.stream = Some(shards);
        self
    }
}
