//! Configuration and ports, built once per process from the environment.
//!
//! `TRAFFIC_STORE` chooses the adapters: `embedded:<path>` opens the redb store at `<path>`
//! (the local mode, and a Lambda that only needs to start); `dynamodb` the AWS adapters, on the
//! tables, topic and stream that `STATE_TABLE`, `REGISTRY_TABLE`, `RESULTS_TABLE`,
//! `ALARM_TOPIC_ARN` and `READINGS_STREAM` name (region, credentials and endpoint the SDK's
//! standard way: `AWS_REGION`, `AWS_ENDPOINT_URL`, ...). See `docs/aws.md` for what each
//! function reads.

use anyhow::Context;
use std::sync::Arc;
use traffic_aws::sns::SnsPublisher;
use traffic_aws::{AwsClients, AwsNames, DynamoStore, KinesisShards, StoreOptions};
use traffic_core::EngineConfig;
use traffic_embedded::EmbeddedStore;
use traffic_ports::{
    AlarmPublisher, LampStore, Registry, ResultStore, StateStore, StatsStore, StreamShards,
};

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
    /// `READINGS_STREAM` is, `None` for the in-process stream, which never reshards.
    pub stream: Option<Arc<dyn StreamShards>>,
}

impl Ports {
    /// All ports on one embedded store.
    pub fn embedded(store: EmbeddedStore) -> Self {
        let s = Arc::new(store);
        Self {
            state: s.clone(),
            registry: s.clone(),
            lamps: s.clone(),
            publisher: s.clone(),
            results: s.clone(),
            stats: s,
            stream: None,
        }
    }

    /// The DynamoDB ports on `store`, alarms through `publisher`.
    pub fn aws(store: DynamoStore, publisher: SnsPublisher) -> Self {
        let s = Arc::new(store);
        Self {
            state: s.clone(),
            registry: s.clone(),
            lamps: s.clone(),
            publisher: Arc::new(publisher),
            results: s.clone(),
            stats: s,
            stream: None,
        }
    }

    /// The same ports, with the shards of the Kinesis stream `shards` lists.
    pub fn with_stream(mut self, shards: KinesisShards) -> Self {
        self.stream = Some(Arc::new(shards));
        self
    }

    /// The DynamoDB and SNS ports named by the environment, on clients built now (once per
    /// process), with the engine configuration's longest window for the state's TTL.
    pub async fn aws_from_env() -> anyhow::Result<Self> {
        let cfg = engine_config_from_env()?;
        let opts = StoreOptions::for_longest_window(cfg.longest().ms(), |k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?;
        let clients = AwsClients::from_env().await;
        let names = AwsNames::from_env();
        let publisher = SnsPublisher::new(clients.sns.clone(), names.alarm_topic_arn.clone());
        let stream = names.readings_stream.clone();
        let ports = Self::aws(
            DynamoStore::new(clients.dynamodb.clone(), names, opts),
            publisher,
        );
        Ok(match stream {
            Some(s) => ports.with_stream(KinesisShards::new(clients.kinesis, Some(s))),
            None => ports,
        })
    }

    /// Builds the ports `TRAFFIC_STORE` names: `embedded:<path>` or `dynamodb`.
    pub async fn from_env() -> anyhow::Result<Self> {
        let spec =
            std::env::var("TRAFFIC_STORE").unwrap_or_else(|_| "embedded:/tmp/traffic.redb".into());
        if spec == "dynamodb" {
            return Self::aws_from_env().await;
        }
        match spec.split_once(':') {
            Some(("embedded", path)) => Ok(Self::embedded(
                EmbeddedStore::open(path).with_context(|| format!("opening {path}"))?,
            )),
            _ => anyhow::bail!("TRAFFIC_STORE must be embedded:<path> or dynamodb, got {spec:?}"),
        }
    }
}

/// The engine configuration from the process environment.
pub fn engine_config_from_env() -> anyhow::Result<EngineConfig> {
    EngineConfig::from_lookup(|k| std::env::var(k).ok()).context("reading the configuration")
}
