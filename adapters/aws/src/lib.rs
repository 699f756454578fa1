//! The AWS side of the traffic system: every port of `traffic-ports` on DynamoDB and SNS, the
//! simulator's Kinesis sink, and the Kinesis stream as a record source for the event source
//! mapping of `traffic-app` (for places where no Lambda service runs the functions: an
//! emulator, a laptop).
//!
//! - [`DynamoStore`] implements [`StateStore`](traffic_ports::StateStore),
//!   [`Registry`](traffic_ports::Registry), [`LampStore`](traffic_ports::LampStore),
//!   [`ResultStore`](traffic_ports::ResultStore) and [`StatsStore`](traffic_ports::StatsStore)
//!   on three tables (`STATE_TABLE`, `REGISTRY_TABLE`, `RESULTS_TABLE`); the layout is in
//!   `docs/aws.md`;
//! - [`sns::SnsPublisher`]: [`AlarmPublisher`](traffic_ports::AlarmPublisher) on an SNS topic;
//! - [`events::EventBridgePublisher`]: [`ResultEvents`](traffic_ports::ResultEvents) on an
//!   EventBridge bus (`EVENT_BUS_NAME`);
//! - [`KinesisShards`]: [`StreamShards`](traffic_ports::StreamShards) on a Kinesis stream's
//!   `ListShards` (the lineage the merge needs after a reshard);
//! - [`kinesis::KinesisSink`]: `PutRecords` within the service's limits, failed entries retried;
//! - [`source::KinesisSource`]: [`RecordSource`](traffic_ports::RecordSource) over
//!   `ListShards`, `GetShardIterator` and `GetRecords`;
//! - [`wiring::AwsPorts`]: every port, built once from the names and options;
//! - [`setup`]: creating the tables, stream, topic and queues, idempotently;
//! - [`metrics::Metrics`]: DynamoDB requests and the capacity units DynamoDB would bill for
//!   them, computed from the items ([`capacity`]) as the calls happen; [`DynamoStore`] is the
//!   ports' [`UsageMeter`](traffic_ports::UsageMeter).
//!
//! Configuration comes from the environment only ([`AwsNames::from_env`], and the SDK's own
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, credentials); clients are built once per process
//! ([`AwsClients::from_env`]) and cloned (cheaply) wherever needed. No AWS type appears in a
//! port: items are mapped with `serde_dynamo`, errors become [`traffic_ports::PortError`].

mod blob;
mod by_day;
mod error;
mod items;
mod keep;
mod lamps;
mod registry;
mod results;
mod state;
mod stats;

pub mod archive;
pub mod capacity;
pub mod events;
pub mod kinesis;
pub mod lamp_summary;
pub mod metrics;
pub mod range;
pub mod region;
pub mod retry;
pub mod setup;
pub mod shards;
pub mod sns;
pub mod source;
pub mod wiring;

use aws_config::BehaviorVersion;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use traffic_core::IntersectionId;
use traffic_ports::{PortError, PortResult};

pub use metrics::{Metrics, MetricsSnapshot};
pub use region::NoRegion;
pub use shards::KinesisShards;
pub use source::KinesisSource;
pub use wiring::AwsPorts;

/// The names of the resources, as the environment gives them. A name that is not set makes
/// the calls that need it fail with a clear error, so each function sets only what it uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsNames {
    /// `STATE_TABLE`: shard metas and pane items.
    pub state_table: Option<String>,
    /// `REGISTRY_TABLE`: intersections, timing history, lamp states, alarms, repair orders.
    pub registry_table: Option<String>,
    /// `RESULTS_TABLE`: window results and statistics.
    pub results_table: Option<String>,
    /// `ALARM_TOPIC_ARN`: where alarms are published.
    pub alarm_topic_arn: Option<String>,
    /// `READINGS_STREAM`: the Kinesis stream of readings.
    pub readings_stream: Option<String>,
    /// `EVENT_BUS_NAME`: the EventBridge bus the merge publishes result events to.
    pub event_bus: Option<String>,
    /// `ARCHIVE_BUCKET`: the bucket the merge archives each closed window's outputs in.
    pub archive_bucket: Option<String>,
}

impl AwsNames {
    /// Reads the names from the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the names through `lookup` (empty values count as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        Self {
            state_table: get("STATE_TABLE"),
            registry_table: get("REGISTRY_TABLE"),
            results_table: get("RESULTS_TABLE"),
            alarm_topic_arn: get("ALARM_TOPIC_ARN"),
            readings_stream: get("READINGS_STREAM"),
            event_bus: get("EVENT_BUS_NAME"),
            archive_bucket: get("ARCHIVE_BUCKET"),
        }
    }
}

/// The SDK clients, built once per process from one shared configuration.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// EventBridge (the merge's result events).
    pub events: aws_sdk_eventbridge::Client,
    /// SQS (on-failure destinations, and reading alarms back in tests).
    pub sqs: aws_sdk_sqs::Client,
    /// S3 (the archive of the merge's outputs).
    pub s3: aws_sdk_s3::Client,
    /// The region the clients use.
    pub region: String,
}

impl AwsClients {
    /// Clients configured the SDK's standard way: region from `AWS_REGION` (or the profile),
    /// credentials from the default chain, and the endpoint from `AWS_ENDPOINT_URL` (or
    /// `AWS_ENDPOINT_URL_<SERVICE>`) when one is set, as for an emulator. With no region
    /// configured, [`NoRegion`] (an emulator needs one too), before any request is sent.
    pub async fn from_env() -> Result<Self, NoRegion> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(&config)
    }

    /// Clients as [`AwsClients::from_env`] builds them (on `endpoint` when one is given),
    /// whose requests carry `app` as the application name of their user agent (`app/<app>`):
    /// how a metering proxy in front of an emulator tells the callers of one process apart.
    /// `app` must be a valid SDK application name (letters, digits and `-`).
    pub async fn named(app: &str, endpoint: Option<&str>) -> Result<Self, NoRegion> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Ok(name) = aws_config::AppName::new(app.to_owned()) {
            loader = loader.app_name(name);
        }
        if let Some(e) = endpoint {
            loader = loader.endpoint_url(e);
        }
        Self::from_sdk_config(&loader.load().await)
    }

    /// Clients as [`AwsClients::from_env`] builds them, but on `endpoint` (a proxy, an
    /// emulator).
    pub async fn with_endpoint(endpoint: &str) -> Result<Self, NoRegion> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .load()
            .await;
        Self::from_sdk_config(&config)
    }

    /// Clients from an SDK configuration, which must name a region.
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Result<Self, NoRegion> {
        let region = region::require_region(config.region().map(|r| r.as_ref()))?;
        Ok(Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            kinesis: aws_sdk_kinesis::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: s3_client(config),
            region,
        })
    }
}

/// An S3 client on `config`; on an endpoint of its own (an emulator) with path-style
/// addresses, since `<bucket>.127.0.0.1` resolves nowhere.
fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Largest DynamoDB item, bytes.
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;
/// Largest total size of one `TransactWriteItems`, bytes.
pub const DYNAMODB_MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// Most actions in one `TransactWriteItems`.
pub const DYNAMODB_MAX_TRANSACTION_ACTIONS: usize = 100;

/// The largest item the store writes by default, bytes: the blobs that grow with the city
/// (rollups, result lists, the network state) are cut into parts of at most this size.
pub const DEFAULT_MAX_ITEM_BYTES: usize = 200 * 1024;

/// Options of the DynamoDB store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long after it was written a state item (delta, pane index entry, rollup) expires
    /// (DynamoDB's TTL deletes it), counted from the processing time of the write: the
    /// longest window plus two days, so the merge has long finished with it.
    pub retention_ms: i64,
    /// The largest item the store writes, bytes (DynamoDB's limit is 400 KB; 200 KB by
    /// default, `TRAFFIC_DYNAMODB_MAX_ITEM_KB`): what grows with the city is cut into parts.
    pub max_item_bytes: usize,
    /// How long statistics are kept, ms.
    pub stats_ttl_ms: i64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            retention_ms: 86_400_000 + 2 * 86_400_000,
            max_item_bytes: DEFAULT_MAX_ITEM_BYTES,
            stats_ttl_ms: 30 * 86_400_000,
        }
    }
}

impl StoreOptions {
    /// Options for an engine whose longest window is `longest_window_ms`; the item size
    /// bound from `TRAFFIC_DYNAMODB_MAX_ITEM_KB` when `lookup` has it.
    pub fn for_longest_window(
        longest_window_ms: i64,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut o = Self {
            retention_ms: longest_window_ms + 2 * 86_400_000,
            ..Self::default()
        };
        if let Some(v) = lookup("TRAFFIC_DYNAMODB_MAX_ITEM_KB") {
            let kb: usize = v
                .trim()
                .parse()
                .map_err(|_| format!("TRAFFIC_DYNAMODB_MAX_ITEM_KB: not a number: {v:?}"))?;
            if !(4..=400).contains(&kb) {
                return Err(format!(
                    "TRAFFIC_DYNAMODB_MAX_ITEM_KB must be 4 to 400, got {kb}"
                ));
            }
            o.max_item_bytes = kb * 1024;
        }
        Ok(o)
    }

    /// When an item written at `now_ms` expires, epoch s (DynamoDB's TTL attribute).
    pub fn expires_at(&self, now_ms: i64) -> i64 {
        (now_ms + self.retention_ms) / 1000
    }
}

/// Every DynamoDB-backed port on three tables. Cheap to clone: clones share the client, the
/// request counters and the caches.
#[derive(Clone)]
pub struct DynamoStore {
    ddb: aws_sdk_dynamodb::Client,
    names: AwsNames,
    opts: StoreOptions,
    metrics: Arc<Metrics>,
    /// Pane starts whose index entry this process has written.
    known_panes: Arc<Mutex<BTreeSet<i64>>>,
    /// Shard → size of its meta item as this process last read or wrote it (a replaced item
    /// bills the larger of its old and new sizes).
    meta_sizes: Arc<Mutex<HashMap<traffic_core::ShardId, usize>>>,
    /// Lamp items as last read or written by this process (see `lamps.rs`).
    lamp_cache: Arc<Mutex<HashMap<IntersectionId, lamp_summary::LampLights>>>,
    /// Provisional result rows (sort key → size) as this process last wrote them: the next
    /// run replaces them, and a replaced item bills the larger of its old and new sizes.
    result_sizes: Arc<Mutex<HashMap<String, usize>>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("names", &self.names)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Which table a call needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Table {
    State,
    Registry,
    Results,
}

impl DynamoStore {
    /// A store on the tables `names` gives.
    pub fn new(ddb: aws_sdk_dynamodb::Client, names: AwsNames, opts: StoreOptions) -> Self {
        Self {
            ddb,
            names,
            opts,
            metrics: Arc::new(Metrics::default()),
            known_panes: Arc::new(Mutex::new(BTreeSet::new())),
            meta_sizes: Arc::new(Mutex::new(HashMap::new())),
            lamp_cache: Arc::new(Mutex::new(HashMap::new())),
            result_sizes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The request counters of this store (and its clones).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The options in force.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    pub(crate) fn table(&self, t: Table) -> PortResult<&str> {
        let (name, var) = match t {
            Table::State => (&self.names.state_table, "STATE_TABLE"),
            Table::Registry => (&self.names.registry_table, "REGISTRY_TABLE"),
            Table::Results => (&self.names.results_table, "RESULTS_TABLE"),
        };
        name.as_deref().ok_or_else(|| {
            PortError::backend(
                format!("{var} is not set"),
                format!("this function needs the {var} environment variable"),
            )
        })
    }
}

impl Table {
    /// `<table>:<operation>`, as the metrics count calls.
    pub(crate) fn op(self, operation: &str) -> String {
        let t = match self {
            Table::State => "state",
            Table::Registry => "registry",
            Table::Results => "results",
        };
        format!("{t}:{operation}")
    }
}

impl traffic_ports::UsageMeter for DynamoStore {
    /// What this store and its clones have billed: units computed from the items
    /// ([`capacity`]), requests counted as they succeed.
    fn usage(&self) -> traffic_ports::Usage {
        self.metrics.snapshot().usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_environment_and_blank_ones_are_unset() {
        let env = |k: &str| match k {
            "STATE_TABLE" => Some("s".to_owned()),
            "RESULTS_TABLE" => Some(" ".to_owned()),
            _ => None,
        };
        let n = AwsNames::from_lookup(env);
        assert_eq!(n.state_table.as_deref(), Some("s"));
        assert_eq!(n.results_table, None);
        assert_eq!(n.registry_table, None);
    }

    #[test]
    fn the_item_size_bound_is_validated() {
        let o = StoreOptions::for_longest_window(3_600_000, |_| Some("64".into()));
        assert_eq!(o.map(|o| o.max_item_bytes), Ok(64 * 1024));
        assert!(StoreOptions::for_longest_window(1, |_| Some("401".into())).is_err());
        assert!(StoreOptions::for_longest_window(1, |_| Some("3".into())).is_err());
        assert!(StoreOptions::for_longest_window(1, |_| Some("x".into())).is_err());
    }
}
