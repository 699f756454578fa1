//! The simulator's sink: readings into a Kinesis stream with `PutRecords`, the intersection id
//! as partition key (so an intersection's readings stay in one shard, in order).
//!
//! Records go in calls of at most 500 records and 5 MiB (data plus partition keys). When a call
//! partly fails (a throttled shard: `ProvisionedThroughputExceededException`, or
//! `InternalFailure`), the failed entries alone are sent again after a backoff, up to
//! `max_tries` times; an entry still failing then is an error, never silently dropped.

use crate::error::is_transient;
use crate::retry::backoff;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use std::time::Duration;
use traffic_core::Reading;

/// Most records in one `PutRecords`.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Most bytes (data plus partition keys) in one `PutRecords`.
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;

/// Why records could not be put.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A call failed as a whole, even after retries.
    #[error("PutRecords to {stream}: {message}")]
    Call {
        /// The stream.
        stream: String,
        /// What the SDK said.
        message: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Entries kept failing.
    #[error("{failed} records still failing after {tries} tries (last error: {last_error})")]
    Exhausted {
        /// Records not put.
        failed: usize,
        /// Tries made.
        tries: u32,
        /// The last error code Kinesis gave.
        last_error: String,
    },
    /// A record could not be built.
    #[error("building a record: {0}")]
    Build(String),
}

/// One record to put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Partition key.
    pub partition_key: String,
    /// Payload.
    pub data: Vec<u8>,
}

impl Entry {
    /// A reading as its contract JSON, keyed by its intersection.
    pub fn reading(r: &Reading) -> Self {
        Self {
            partition_key: r.intersection_id.as_str().to_owned(),
            data: r.to_json().into_bytes(),
        }
    }

    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// What a put did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutReport {
    /// Records put.
    pub records: usize,
    /// `PutRecords` calls made.
    pub calls: usize,
    /// Entries sent again after a partial failure.
    pub retried: usize,
}

/// Puts records into one stream.
#[derive(Clone, Debug)]
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream: String,
    max_tries: u32,
}

/// Splits entries into calls within the count and size limits, in order.
pub fn chunks(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let n = i - start;
        if n > 0 && (n >= MAX_RECORDS_PER_CALL || bytes + e.size() > MAX_BYTES_PER_CALL) {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += e.size();
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

impl KinesisSink {
    /// A sink into `stream`, trying failed entries up to 10 times.
    pub fn new(client: aws_sdk_kinesis::Client, stream: impl Into<String>) -> Self {
        Self {
            client,
            stream: stream.into(),
            max_tries: 10,
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Puts readings, each keyed by its intersection.
    pub async fn put_readings(&self, readings: &[Reading]) -> Result<PutReport, SinkError> {
        let entries: Vec<Entry> = readings.iter().map(Entry::reading).collect();
        self.put(&entries).await
    }

    /// Puts records, in calls within the limits, retrying the failed entries of each.
    pub async fn put(&self, entries: &[Entry]) -> Result<PutReport, SinkError> {
        let mut report = PutReport::default();
        for chunk in chunks(entries) {
            self.put_chunk(chunk, &mut report).await?;
        }
        Ok(report)
    }

    async fn put_chunk(&self, chunk: &[Entry], report: &mut PutReport) -> Result<(), SinkError> {
        let mut pending: Vec<&Entry> = chunk.iter().collect();
        let mut tries = 0;
        loop {
            tries += 1;
            let records = pending
                .iter()
                .map(|e| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(&e.partition_key)
                        .data(Blob::new(e.data.clone()))
                        .build()
                        .map_err(|e| SinkError::Build(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let resp = match self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(records))
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) if is_transient(&e) && tries < self.max_tries => {
                    tokio::time::sleep(backoff(tries, Duration::from_secs(5))).await;
                    continue;
                }
                Err(e) => {
                    return Err(SinkError::Call {
                        stream: self.stream.clone(),
                        message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
                        source: Box::new(e),
                    });
                }
            };
            report.calls += 1;
            let results = resp.records();
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for (i, e) in pending.iter().enumerate() {
                match results.get(i).and_then(|r| r.error_code()) {
                    Some(code) => {
                        last_error = code.to_owned();
                        failed.push(*e);
                    }
                    None => report.records += 1,
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if tries >= self.max_tries {
                return Err(SinkError::Exhausted {
                    failed: failed.len(),
                    tries,
                    last_error,
                });
            }
            tracing::debug!(
                failed = failed.len(),
                tries,
                "PutRecords partly failed; retrying"
            );
            report.retried += failed.len();
            pending = failed;
            tokio::time::sleep(backoff(tries, Duration::from_secs(5))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, bytes: usize) -> Entry {
        Entry {
            partition_key: key.to_owned(),
            data: vec![b'x'; bytes],
        }
    }

    #[test]
    fn calls_hold_at_most_500_records_and_5_mib() {
        let many: Vec<Entry> = (0..1234).map(|i| entry(&format!("I-{i}"), 100)).collect();
        let sizes: Vec<usize> = chunks(&many).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![500, 500, 234]);

        let big: Vec<Entry> = (0..12).map(|_| entry("I-1", 1024 * 1024 - 3)).collect();
        let c = chunks(&big);
        assert!(
            c.iter()
                .all(|c| c.iter().map(Entry::size).sum::<usize>() <= MAX_BYTES_PER_CALL)
        );
        assert_eq!(c.iter().map(|c| c.len()).sum::<usize>(), 12);
        assert_eq!(c[0].len(), 5);
        assert!(chunks(&[]).is_empty());
    }
}
