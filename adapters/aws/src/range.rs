//! The records of one shard between two sequence numbers, read again from Kinesis (what a
//! redrive of a failed batch needs): `GetShardIterator` `AT_SEQUENCE_NUMBER`, then `GetRecords`
//! until past the end, the shard's tip or its end.

use crate::error::port_error;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::types::ShardIteratorType;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::{PortError, PortResult, SourceRecord};

/// Most `GetRecords` calls one range read makes (an empty answer while behind the tip is
/// possible, so the loop is bounded rather than trusting it to end).
const MAX_CALLS: usize = 1_000;

/// The stream a range is read from: its ARN (what a failure record names) or its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamRef {
    /// By ARN.
    Arn(String),
    /// By name.
    Name(String),
}

/// One `GetRecords` of at most `limit` records from `iterator`, of the shard `what` names.
pub(crate) async fn get_records(
    client: &aws_sdk_kinesis::Client,
    iterator: String,
    limit: i32,
    what: &str,
) -> PortResult<GetRecordsOutput> {
    client
        .get_records()
        .shard_iterator(iterator)
        .limit(limit)
        .send()
        .await
        .map_err(|e| port_error(format!("GetRecords {what}"), e))
}

/// The records of `shard` from `start` through `end` (both inclusive) still in the stream.
/// Those past its retention are simply not there: the caller compares with what it expected.
pub async fn read_range(
    client: &aws_sdk_kinesis::Client,
    stream: &StreamRef,
    shard: &ShardId,
    start: &SequenceNumber,
    end: &SequenceNumber,
) -> PortResult<Vec<SourceRecord>> {
    let req = client
        .get_shard_iterator()
        .shard_id(shard.as_str())
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(start.as_str());
    // By name, taken from the ARN (`arn:aws:kinesis:<region>:<account>:stream/<name>`): moto
    // hands out iterators for `StreamARN` that its own `GetRecords` then refuses ("Stream None
    // not found"), and the clients are in the stream's account and region anyway.
    let req = match stream {
        StreamRef::Arn(arn) => match arn.rsplit_once(":stream/") {
            Some((_, name)) => req.stream_name(name),
            None => req.stream_arn(arn),
        },
        StreamRef::Name(name) => req.stream_name(name),
    };
    let what = || format!("GetShardIterator {shard} at {start}");
    let resp = req.send().await.map_err(|e| port_error(what(), e))?;
    let mut iterator = resp.shard_iterator().map(str::to_owned);
    let mut out = Vec::new();
    for _ in 0..MAX_CALLS {
        let Some(it) = iterator.take() else {
            break;
        };
        let resp = get_records(client, it, 10_000, shard.as_str()).await?;
        let mut past_end = false;
        for r in resp.records() {
            let seq = SequenceNumber::parse(r.sequence_number())
                .map_err(|e| PortError::Corrupt(format!("a record of {shard}: {e}")))?;
            if &seq > end {
                past_end = true;
                break;
            }
            if &seq < start {
                continue;
            }
            out.push(SourceRecord {
                seq,
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data: r.data().as_ref().to_vec(),
                arrival_ms: r
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0),
            });
        }
        let at_tip =
            resp.records().is_empty() && resp.millis_behind_latest().is_none_or(|m| m == 0);
        if past_end || at_tip {
            break;
        }
        iterator = resp.next_shard_iterator().map(str::to_owned);
    }
    Ok(out)
}
