//! `traffic redrive`: the batches the event source mappings gave up on, applied after all.
//!
//! A mapping that gives up on a batch sends its description (not its records) to its on-failure
//! destination, an SQS queue: `{requestContext: {functionArn, condition, ...},
//! KinesisBatchInfo: {shardId, startSequenceNumber, endSequenceNumber, batchSize, streamArn,
//! ...}}`, the same from Lambda's `DestinationConfig` and from `traffic aws-local`'s mapping. For
//! each such message, [`redrive_message`] reads the range again from the stream
//! (`traffic_aws::range`), hands it to the consumer that failed (`ingest` through
//! [`ingest::IngestHandler::redrive`], `fault` through its ordinary handler, whose lamp transitions
//! are idempotent by event time) and counts every record by outcome; [`redrive_queue`] does it
//! for every message of a queue and deletes a message only once its records were handled.

use crate::esm::kinesis_event;
use fault::FaultHandler;
use ingest::IngestHandler;
use serde::{Deserialize, Serialize};
use traffic_aws::AwsClients;
use traffic_aws::range::{StreamRef, read_range};
use traffic_core::EngineConfig;
use traffic_core::ShardId;
use traffic_core::redrive::{RedriveCounts, redrive_id};
use traffic_core::sequence::SequenceNumber;
use traffic_functions::Config;
use traffic_functions::config::by_name;
use traffic_ports::{PortError, Ports};

/// The consumer a failure record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consumer {
    /// `ingest`: the windowed state.
    Ingest,
    /// `fault`: lamp states and alarms.
    Fault,
}

impl std::str::FromStr for Consumer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let names = [("ingest", Consumer::Ingest), ("fault", Consumer::Fault)];
        by_name(s, &names).ok_or_else(|| format!("{s:?} is not a consumer: ingest or fault"))
    }
}

/// One failure record, as read from the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedBatch {
    /// Whose batch it was, when the record says (its `functionArn` names `ingest` or `fault`).
    pub consumer: Option<Consumer>,
    /// The shard.
    pub shard: ShardId,
    /// Its first record.
    pub start: SequenceNumber,
    /// Its last record.
    pub end: SequenceNumber,
    /// How many records it held.
    pub batch_size: u64,
    /// The stream's ARN.
    pub stream_arn: String,
}

/// Why a message or a queue could not be redriven.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The message is not a Kinesis failure record.
    #[error("not a Kinesis failure record: {0}")]
    Unreadable(String),
    /// Neither the record nor the command says which consumer failed.
    #[error(
        "the failure record's functionArn {0:?} names neither ingest nor fault: pass --consumer"
    )]
    UnknownConsumer(String),
    /// The stream or the state failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The handler failed again on the records.
    #[error("{0} failed again on the records; the message stays in the queue")]
    Handler(&'static str),
    /// SQS failed.
    #[error("SQS: {0}")]
    Sqs(String),
    /// No region is configured.
    #[error(transparent)]
    Region(#[from] traffic_aws::NoRegion),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    #[serde(default)]
    function_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: ShardId,
    start_sequence_number: String,
    end_sequence_number: String,
    batch_size: u64,
    #[serde(default)]
    stream_arn: String,
}

#[derive(Deserialize)]
struct FailureRecord {
    #[serde(rename = "requestContext", default)]
    request_context: Option<RequestContext>,
    #[serde(rename = "KinesisBatchInfo")]
    batch: BatchInfo,
}

/// Reads a failure record (Lambda's, or `traffic aws-local`'s, which has the same shape).
pub fn parse_failure(body: &str) -> Result<FailedBatch, RedriveError> {
    let r: FailureRecord =
        serde_json::from_str(body).map_err(|e| RedriveError::Unreadable(format!("{e}")))?;
    let seq =
        |s: &str| SequenceNumber::parse(s).map_err(|e| RedriveError::Unreadable(e.to_string()));
    let arn = r
        .request_context
        .and_then(|c| c.function_arn)
        .unwrap_or_default();
    // A Lambda function's ARN ends with its name (`...:function:<stack>-IngestFunction-<id>`),
    // `traffic aws-local`'s record carries the mapping's name.
    let name = arn
        .split(":function:")
        .nth(1)
        .unwrap_or(&arn)
        .to_ascii_lowercase();
    let consumer = match (name.contains("ingest"), name.contains("fault")) {
        (true, false) => Some(Consumer::Ingest),
        (false, true) => Some(Consumer::Fault),
        _ => None,
    };
    Ok(FailedBatch {
        consumer,
        shard: r.batch.shard_id,
        start: seq(&r.batch.start_sequence_number)?,
        end: seq(&r.batch.end_sequence_number)?,
        batch_size: r.batch.batch_size,
        stream_arn: r.batch.stream_arn,
    })
}

/// What redriving one failure record did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Redriven {
    /// The consumer.
    pub consumer: Option<Consumer>,
    /// The shard.
    pub shard: ShardId,
    /// Its first record.
    pub start: String,
    /// Its last record.
    pub end: String,
    /// Records by outcome (for `fault`: applied are the records its handler took, rejected
    /// those it skipped).
    pub counts: RedriveCounts,
    /// Alarms `fault` published.
    pub alarms: u64,
}

/// What the command needs.
pub struct RedriveContext {
    /// Engine parameters.
    pub cfg: EngineConfig,
    /// The ports the functions run on.
    pub ports: Ports,
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// The stream by name, when given (otherwise the failure record's ARN is used).
    pub stream: Option<String>,
    /// The consumer, when given (otherwise the failure record's `functionArn` says).
    pub consumer: Option<Consumer>,
    /// The region, for the events handed to `fault`.
    pub region: String,
    /// `fault`'s alarm policy (`ALARM_HOLD_DOWN`, `ALARM_SEVERITIES`), as the function has it.
    pub alarms: traffic_core::alarm::AlarmPolicy,
}

/// Redrives one failure record: its range read again and handed to its consumer.
pub async fn redrive_message(ctx: &RedriveContext, body: &str) -> Result<Redriven, RedriveError> {
    let failed = parse_failure(body)?;
    let consumer = ctx
        .consumer
        .or(failed.consumer)
        .ok_or_else(|| RedriveError::UnknownConsumer(body.chars().take(200).collect()))?;
    let stream = match &ctx.stream {
        Some(name) => StreamRef::Name(name.clone()),
        None => StreamRef::Arn(failed.stream_arn.clone()),
    };
    let records = read_range(
        &ctx.kinesis,
        &stream,
        &failed.shard,
        &failed.start,
        &failed.end,
    )
    .await?;
    let missing = failed.batch_size.saturating_sub(records.len() as u64);
    if missing > 0 {
        tracing::warn!(shard = %failed.shard, start = %failed.start, end = %failed.end, missing, "records of the failed batch are no longer in the stream");
    }
    let event = kinesis_event(&failed.shard, &failed.stream_arn, &ctx.region, &records);
    let mut out = Redriven {
        consumer: Some(consumer),
        shard: failed.shard.clone(),
        start: failed.start.to_string(),
        end: failed.end.to_string(),
        ..Redriven::default()
    };
    match consumer {
        Consumer::Ingest => {
            let handler = IngestHandler::from_ports(ctx.cfg.clone(), &ctx.ports);
            let id = redrive_id(&failed.shard, failed.start.as_str(), failed.end.as_str());
            out.counts = handler.redrive(&failed.shard, id, &event, missing).await?;
        }
        Consumer::Fault => {
            let handler = FaultHandler::from_ports(ctx.cfg.clone(), &ctx.ports)
                .with_alarm_policy(ctx.alarms.clone());
            let (report, retry) = handler.process(&event).await;
            if !retry.is_empty() {
                return Err(RedriveError::Handler("fault"));
            }
            out.counts.rejected = report.skipped;
            out.counts.applied = (records.len() as u64).saturating_sub(report.skipped);
            out.counts.missing = missing;
            out.alarms = report.raised.len() as u64;
        }
    }
    tracing::info!(consumer = ?consumer, shard = %out.shard, start = %out.start, end = %out.end,
        applied = out.counts.applied, duplicate = out.counts.duplicate, final_ = out.counts.final_,
        rejected = out.counts.rejected, future = out.counts.future, missing = out.counts.missing,
        "failure record redriven");
    Ok(out)
}

/// What `traffic redrive` is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedriveOptions {
    /// The on-failure queue's URL.
    pub queue_url: String,
    /// The consumer whose failures the queue holds, when its records do not say.
    pub consumer: Option<Consumer>,
    /// The stream by name, instead of the failure records' ARN.
    pub stream: Option<String>,
    /// Most messages taken in one run.
    pub max_messages: u64,
}

/// `traffic redrive`: the queue's failure records redriven on the ports the environment names
/// (`STATE_TABLE`, `REGISTRY_TABLE`, `ALARM_TOPIC_ARN`, as the functions read them).
pub async fn redrive(
    config: &Config,
    opts: &RedriveOptions,
) -> Result<RedriveReport, RedriveError> {
    let clients = AwsClients::from_env().await?;
    // SNS messages of the alarms redriven name their severity as `ALARM_SEVERITIES` says.
    let aws = config.aws_ports_on(&clients, config.names.clone());
    let ctx = RedriveContext {
        cfg: config.engine.clone(),
        ports: aws.ports.clone(),
        kinesis: clients.kinesis.clone(),
        stream: opts.stream.clone(),
        consumer: opts.consumer,
        region: clients.region.clone(),
        alarms: config.alarms.clone(),
    };
    redrive_queue(&ctx, &clients.sqs, &opts.queue_url, opts.max_messages).await
}

/// What `traffic redrive` did with a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    /// Messages received.
    pub messages: u64,
    /// Messages handled and deleted.
    pub redriven: u64,
    /// Messages left in the queue (unreadable, or their records could not be handled).
    pub left: u64,
    /// Records by outcome, over every message redriven.
    pub counts: RedriveCounts,
    /// Alarms `fault` published.
    pub alarms: u64,
    /// Each message redriven.
    pub batches: Vec<Redriven>,
    /// Why each message left was left.
    pub errors: Vec<String>,
}

/// Redrives every message of the queue at `queue_url` (at most `max_messages`), deleting each
/// once its records were handled; a message that fails stays (invisible for the queue's
/// visibility timeout, so it is not taken twice by one run).
pub async fn redrive_queue(
    ctx: &RedriveContext,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max_messages: u64,
) -> Result<RedriveReport, RedriveError> {
    let mut report = RedriveReport::default();
    while report.messages < max_messages {
        let want = (max_messages - report.messages).min(10) as i32;
        let resp = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| {
                RedriveError::Sqs(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
            })?;
        let messages = resp.messages();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            report.messages += 1;
            let body = m.body().unwrap_or_default();
            match redrive_message(ctx, body).await {
                Ok(done) => {
                    if let Some(handle) = m.receipt_handle() {
                        sqs.delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| {
                                RedriveError::Sqs(
                                    aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                                )
                            })?;
                    }
                    report.redriven += 1;
                    report.counts.add(&done.counts);
                    report.alarms += done.alarms;
                    report.batches.push(done);
                }
                Err(e) => {
                    tracing::error!(message = m.message_id().unwrap_or_default(), error = %e, "failure record not redriven; left in the queue");
                    report.left += 1;
                    report
                        .errors
                        .push(format!("{}: {e}", m.message_id().unwrap_or_default()));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_failure_record_and_an_aws_local_one_both_read() {
        let lambda = r#"{"requestContext":{"requestId":"c9b8","functionArn":"arn:aws:lambda:eu-south-1:123456789012:function:traffic-IngestFunction-AbC","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2026-01-05T08:00:00.000Z","KinesisBatchInfo":{"shardId":"shardId-000000000001","startSequenceNumber":"49545115243490985018280067714973144582180062593244200961","endSequenceNumber":"49545115243490985018280067714973144582180062593244200965","approximateArrivalOfFirstRecord":"2026-01-05T07:59:00.000Z","approximateArrivalOfLastRecord":"2026-01-05T07:59:01.000Z","batchSize":5,"streamArn":"arn:aws:kinesis:eu-south-1:123456789012:stream/traffic-readings"}}"#;
        let f = parse_failure(lambda).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.consumer, Some(Consumer::Ingest));
        assert_eq!(f.shard, "shardId-000000000001");
        assert_eq!(f.batch_size, 5);
        assert!(f.start < f.end);
        let local = crate::esm::destination_record(
            "fault",
            &ShardId::from("shardId-000000000000"),
            "arn:aws:kinesis:eu-south-1:123456789012:stream/s",
            &[traffic_ports::SourceRecord {
                seq: SequenceNumber::from_u128(7),
                partition_key: "I-1".into(),
                data: vec![],
                arrival_ms: 0,
            }],
            5,
            "RetryAttemptsExhausted",
            false,
        );
        let f = parse_failure(&local.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.consumer, Some(Consumer::Fault));
        assert_eq!(
            (f.start.as_str(), f.end.as_str(), f.batch_size),
            ("7", "7", 1)
        );
    }

    #[test]
    fn a_message_that_is_not_a_failure_record_is_refused_with_the_reason() {
        assert!(matches!(
            parse_failure(r#"{"hello":1}"#),
            Err(RedriveError::Unreadable(_))
        ));
        let unnamed = r#"{"requestContext":{"functionArn":"arn:aws:lambda:r:1:function:other"},"KinesisBatchInfo":{"shardId":"s","startSequenceNumber":"1","endSequenceNumber":"2","batchSize":2,"streamArn":""}}"#;
        assert_eq!(parse_failure(unnamed).map(|f| f.consumer).ok(), Some(None));
    }
}
