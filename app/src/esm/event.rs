//! The shapes Lambda gives a Kinesis batch: the `KinesisEvent` a function receives
//! ([`kinesis_event`], the one builder for every source) and the record an on-failure
//! destination receives ([`destination_record`]).

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use base64::Engine;
use chrono::{DateTime, Utc};
use traffic_core::ShardId;
use traffic_ports::SourceRecord;

/// The arrival time of a record.
pub(crate) fn arrival(r: &SourceRecord) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(r.arrival_ms).unwrap_or_default()
}

/// The `KinesisEvent` Lambda hands over for these records of `shard` (`eventID`
/// `<shard>:<sequence number>`, the data, the arrival time, the stream's ARN when it has one).
pub fn kinesis_event(
    shard: &ShardId,
    arn: &str,
    region: &str,
    records: &[SourceRecord],
) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let mut e = KinesisEventRecord::default();
            e.event_id = Some(format!("{shard}:{}", r.seq));
            e.event_name = Some("aws:kinesis:record".into());
            e.event_source = Some("aws:kinesis".into());
            e.event_version = Some("1.0".into());
            e.event_source_arn = (!arn.is_empty()).then(|| arn.to_owned());
            e.aws_region = Some(region.to_owned());
            *e.kinesis.data = r.data.clone();
            e.kinesis.partition_key = r.partition_key.clone();
            e.kinesis.sequence_number = r.seq.to_string();
            e.kinesis.kinesis_schema_version = Some("1.0".into());
            e.kinesis.approximate_arrival_timestamp.0 = arrival(r);
            e
        })
        .collect();
    event
}

/// The record Lambda sends to an on-failure destination for a Kinesis batch (plus, with
/// `with_data`, the records themselves, as the file destination keeps them).
pub fn destination_record(
    mapping: &str,
    shard: &ShardId,
    stream_arn: &str,
    records: &[SourceRecord],
    attempts: u32,
    condition: &str,
    with_data: bool,
) -> serde_json::Value {
    let first = records.first();
    let last = records.last();
    let time = |r: Option<&SourceRecord>| r.map(|r| arrival(r).to_rfc3339());
    let mut v = serde_json::json!({
        "requestContext": {
            "functionArn": mapping,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "PartialBatchFailure"},
        "version": "1.0",
        "timestamp": Utc::now().to_rfc3339(),
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first.map(|r| r.seq.as_str()),
            "endSequenceNumber": last.map(|r| r.seq.as_str()),
            "approximateArrivalOfFirstRecord": time(first),
            "approximateArrivalOfLastRecord": time(last),
            "batchSize": records.len(),
            "streamArn": stream_arn,
        },
    });
    if with_data {
        v["records"] = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "sequenceNumber": r.seq.as_str(),
                    "partitionKey": r.partition_key,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                })
            })
            .collect();
    }
    v
}
