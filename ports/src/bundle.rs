//! [`Ports`]: every port a function may need, as shared trait objects. It names no adapter:
//! `traffic_embedded::EmbeddedStore::ports` and `traffic_aws::AwsPorts::new` (through
//! `traffic_functions::Config::aws_ports`) build it.

use crate::{
    AlarmPublisher, Clock, LampStore, NoArchive, NoResultEvents, NoUsage, OutputArchive, Registry,
    ResultEvents, ResultStore, StateStore, StatsStore, StreamShards, SystemClock, UsageMeter,
};
use std::sync::Arc;

/// Writes the `with_*` methods of [`Ports`], each the same ports with one port replaced.
macro_rules! with_ports {
    ($($(#[$doc:meta])* $name:ident($field:ident: $port:ident);)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $field: Arc<dyn $port>) -> Self {
                self.$field = $field;
                self
            }
        )*
    };
}

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
    /// Where the merge publishes closed windows and retimings for subscribers (EventBridge,
    /// the embedded store's table; nothing by default).
    pub events: Arc<dyn ResultEvents>,
    /// Throughput and latency figures.
    pub stats: Arc<dyn StatsStore>,
    /// The readings stream's shards, as the merge sees them (lineage after a reshard, and
    /// which shards have caught up): Kinesis on AWS when the stream is named, the embedded
    /// log locally; `None` where there is no stream to ask (then no shard is taken as idle).
    pub stream: Option<Arc<dyn StreamShards>>,
    /// What the backend has billed (DynamoDB's capacity units; nothing for redb).
    pub usage: Arc<dyn UsageMeter>,
    /// The time: the wall clock, or a run's simulated clock.
    pub clock: Arc<dyn Clock>,
    /// Where the merge archives each closed window's outputs (S3, the data directory;
    /// nowhere by default).
    pub archive: Arc<dyn OutputArchive>,
}

impl Ports {
    /// Every port but the publisher, the result events and the stream from one store that
    /// implements them all (the embedded store, the DynamoDB store), alarms through
    /// `publisher`; result events go nowhere ([`NoResultEvents`]) until
    /// [`Ports::with_events`] says where.
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
            events: Arc::new(NoResultEvents),
            stats: store,
            stream: None,
            usage: Arc::new(NoUsage),
            clock: Arc::new(SystemClock),
            archive: Arc::new(NoArchive),
        }
    }

    with_ports! {
        /// The same ports, with the ingest state in `state` (a wrapper that fails or counts, in
        /// tests).
        with_state(state: StateStore);
        /// The same ports, with intersections and timings in `registry`.
        with_registry(registry: Registry);
        /// The same ports, with lamp states and the alarm log in `lamps`.
        with_lamps(lamps: LampStore);
        /// The same ports, delivering alarms through `publisher`.
        with_publisher(publisher: AlarmPublisher);
        /// The same ports, with merge results in `results`.
        with_results(results: ResultStore);
        /// The same ports, with a meter of what the backend bills.
        with_usage(usage: UsageMeter);
        /// The same ports, on another clock.
        with_clock(clock: Clock);
        /// The same ports, publishing result events to `events`.
        with_events(events: ResultEvents);
        /// The same ports, archiving the merge's outputs in `archive`.
        with_archive(archive: OutputArchive);
    }

    /// The same ports, with the stream's shards.
    pub fn with_stream(mut self, shards: Arc<dyn StreamShards>) -> Self {
        self.stream = Some(shards);
        self
    }
}
