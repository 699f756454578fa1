//! [`AwsPorts`]: every port on AWS, built once per process from the names and options a
//! configuration gives (`traffic_functions::Config`, or `traffic aws-setup`'s resources); the
//! DynamoDB store is also the bundle's [`UsageMeter`](traffic_ports::UsageMeter).

use crate::archive::S3Archive;
use crate::events::EventBridgePublisher;
use crate::sns::SnsPublisher;
use crate::{AwsClients, AwsNames, DynamoStore, KinesisShards, StoreOptions};
use std::sync::Arc;
use traffic_ports::Ports;

/// The AWS ports, and the DynamoDB store behind them (for its metrics).
#[derive(Clone)]
pub struct AwsPorts {
    /// Every port: DynamoDB, the SNS topic, the EventBridge bus (publishing nothing when it is
    /// not named), the archive bucket (archiving nothing when it is not named), the stream's
    /// shards when the stream is named.
    pub ports: Ports,
    /// The DynamoDB store.
    pub store: DynamoStore,
}

impl AwsPorts {
    /// The ports on `names`' tables, topic, bus and stream, through `clients`.
    pub fn new(clients: &AwsClients, names: AwsNames, opts: StoreOptions) -> Self {
        let publisher = SnsPublisher::new(clients.sns.clone(), names.alarm_topic_arn.clone());
        let events = EventBridgePublisher::new(clients.events.clone(), names.event_bus.clone());
        let stream = names.readings_stream.clone();
        let archive = S3Archive::new(clients.s3.clone(), names.archive_bucket.clone());
        let store = DynamoStore::new(clients.dynamodb.clone(), names, opts);
        let ports = Ports::from_store(Arc::new(store.clone()), Arc::new(publisher))
            .with_usage(Arc::new(store.clone()))
            .with_events(Arc::new(events))
            .with_archive(Arc::new(archive));
        let ports = match stream {
            Some(s) => ports.with_stream(Arc::new(KinesisShards::new(
                clients.kinesis.clone(),
                Some(s),
            ))),
            None => ports,
        };
        Self { ports, store }
    }
}
