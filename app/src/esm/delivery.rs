//! The per-batch delivery rules, the same for every source and mode:
//!
//! - records older than `max_record_age` go to the on-failure destination without a try;
//! - the partial batch response is honoured (`ReportBatchItemFailures`): the batch is retried
//!   from the lowest failed sequence number ([`retry_index`]; an identifier not in the batch
//!   fails the whole batch, as in Lambda; so does a handler that panics);
//! - after a second failure of the same records the batch is bisected
//!   (`BisectBatchOnFunctionError`; halves start a fresh count);
//! - after `max_attempts` tries its records go to the on-failure destination
//!   ([`OnFailure`]) and the shard moves on, or, with [`OnFailure::Stop`], the mapping stops.

use super::config::{Mapping, MappingConfig, OnFailure};
use super::event::{destination_record, kinesis_event};
use super::{Ctx, EsmError};
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_ports::SourceRecord;

/// Where to retry a batch from, given its handler's response: the index of the record with
/// the lowest failed sequence number; 0 (all) when an identifier is not in the batch; `None`
/// when nothing failed.
pub fn retry_index(
    sequence_numbers: &[&SequenceNumber],
    response: &KinesisEventResponse,
) -> Option<usize> {
    let mut lowest: Option<usize> = None;
    for f in &response.batch_item_failures {
        let pos = f
            .item_identifier
            .as_deref()
            .and_then(|id| SequenceNumber::parse(id).ok())
            .and_then(|id| sequence_numbers.iter().position(|s| **s == id));
        match pos {
            None => return Some(0),
            Some(p) => lowest = Some(lowest.map_or(p, |l: usize| l.min(p))),
        }
    }
    lowest
}

/// Hands `records` of `shard` to the mapping's handler under the rules above. Fails only when
/// a batch is given up on under [`OnFailure::Stop`].
pub(crate) async fn deliver(
    ctx: &Ctx,
    mapping: &Mapping,
    shard: &ShardId,
    records: &[SourceRecord],
) -> Result<(), EsmError> {
    let cfg = &mapping.config;
    ctx.progress.update(&cfg.name, |s| s.batches += 1);
    let mut start = 0;
    if let Some(max_age) = cfg.max_record_age {
        let now = chrono::Utc::now().timestamp_millis();
        let limit = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        start = records
            .iter()
            .position(|r| now.saturating_sub(r.arrival_ms) <= limit)
            .unwrap_or(records.len());
        if start > 0 {
            to_destination(ctx, cfg, shard, &records[..start], 0, "RecordAgeExceeded").await?;
        }
    }
    let mut queue: VecDeque<(Range<usize>, u32)> = VecDeque::from([(start..records.len(), 0)]);
    while let Some((range, attempts)) = queue.pop_front() {
        if range.is_empty() {
            continue;
        }
        let part = &records[range.clone()];
        let event = kinesis_event(shard, ctx.source.arn(), ctx.source.region(), part);
        ctx.progress.update(&cfg.name, |s| s.invocations += 1);
        let handler = mapping.handler.clone();
        // A handler that panics fails its batch, as a crashed Lambda invocation does.
        let response = tokio::spawn(async move { handler.handle(&event).await }).await;
        let seqs: Vec<&SequenceNumber> = part.iter().map(|r| &r.seq).collect();
        let failed_at = match &response {
            Ok(r) => retry_index(&seqs, r),
            Err(e) => {
                tracing::error!(mapping = %cfg.name, shard = %shard, error = %e, "handler panicked");
                Some(0)
            }
        };
        let Some(i) = failed_at else {
            ctx.progress
                .update(&cfg.name, |s| s.records += part.len() as u64);
            continue;
        };
        ctx.progress.update(&cfg.name, |s| s.records += i as u64);
        let rest = range.start + i..range.end;
        let attempts = attempts + 1;
        if attempts >= cfg.max_attempts.max(1) {
            to_destination(
                ctx,
                cfg,
                shard,
                &records[rest],
                attempts,
                "RetryAttemptsExhausted",
            )
            .await?;
        } else if cfg.bisect_on_error && attempts >= 2 && rest.len() > 1 {
            let mid = rest.start + rest.len() / 2;
            tracing::warn!(mapping = %cfg.name, shard = %shard, records = rest.len(), "batch failed twice; bisecting");
            ctx.progress.update(&cfg.name, |s| s.bisections += 1);
            queue.push_front((mid..rest.end, 0));
            queue.push_front((rest.start..mid, 0));
        } else {
            tracing::warn!(
                mapping = %cfg.name, shard = %shard, attempt = attempts,
                from = %records[rest.start].seq,
                "batch failed; retrying from the first failed record"
            );
            ctx.progress.update(&cfg.name, |s| s.retries += 1);
            let wait = cfg
                .retry_backoff
                .saturating_mul(1 << attempts.min(10))
                .min(Duration::from_secs(30));
            tokio::time::sleep(wait).await;
            queue.push_front((rest, attempts));
        }
    }
    Ok(())
}

async fn to_destination(
    ctx: &Ctx,
    cfg: &MappingConfig,
    shard: &ShardId,
    records: &[SourceRecord],
    attempts: u32,
    condition: &str,
) -> Result<(), EsmError> {
    if cfg.on_failure == OnFailure::Stop {
        return Err(EsmError::GaveUp {
            mapping: cfg.name.clone(),
            shard: shard.to_owned(),
            records: records.len(),
            attempts,
        });
    }
    tracing::error!(
        mapping = %cfg.name, shard = %shard, records = records.len(), condition,
        first = records.first().map(|r| r.seq.as_str()).unwrap_or(""),
        "records given up on; sent to the on-failure destination"
    );
    ctx.progress.update(&cfg.name, |s| {
        s.records_to_destination += records.len() as u64;
        s.batches_to_destination += 1;
    });
    // The file keeps the records themselves; SQS gets Lambda's description only.
    let record = |with_records: bool| {
        destination_record(
            &cfg.name,
            shard,
            ctx.source.arn(),
            records,
            attempts,
            condition,
            with_records,
        )
    };
    let result = match &cfg.on_failure {
        OnFailure::Log | OnFailure::Stop => Ok(()),
        OnFailure::File(path) => append_line(path, &record(true).to_string()).await,
        OnFailure::Sqs(url) => match &ctx.sqs {
            None => Err("no SQS client given to the mapping".to_owned()),
            Some(sqs) => sqs
                .send_message()
                .queue_url(url)
                .message_body(record(false).to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()),
        },
    };
    if let Err(e) = result {
        tracing::error!(mapping = %cfg.name, shard = %shard, error = %e, "on-failure destination not written");
    }
    Ok(())
}

async fn append_line(path: &std::path::Path, line: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esm::Progress;
    use async_trait::async_trait;
    use aws_lambda_events::event::kinesis::KinesisEvent;
    use aws_lambda_events::event::streams::KinesisBatchItemFailure;
    use std::sync::{Arc, Mutex};
    use traffic_functions::BatchHandler;
    use traffic_ports::MemoryCheckpoints;

    fn seq(n: u64) -> SequenceNumber {
        SequenceNumber::from_u64(n)
    }

    fn response(ids: &[&str]) -> KinesisEventResponse {
        let mut r = KinesisEventResponse::default();
        for id in ids {
            let mut f = KinesisBatchItemFailure::default();
            f.item_identifier = Some((*id).to_owned());
            r.batch_item_failures.push(f);
        }
        r
    }

    #[test]
    fn a_batch_is_retried_from_its_lowest_failed_record() {
        let five: Vec<SequenceNumber> = (1..=5).map(seq).collect();
        let five: Vec<&SequenceNumber> = five.iter().collect();
        assert_eq!(retry_index(&five, &response(&["4", "3"])), Some(2));
        assert_eq!(retry_index(&five, &response(&[])), None);
        let owned: Vec<SequenceNumber> = [7, 9, 10, 11].into_iter().map(seq).collect();
        let seqs: Vec<&SequenceNumber> = owned.iter().collect();
        assert_eq!(retry_index(&seqs, &response(&[])), None);
        assert_eq!(retry_index(&seqs, &response(&["11", "10"])), Some(2));
        assert_eq!(retry_index(&seqs, &response(&["9"])), Some(1));
        // An identifier not in the batch fails all of it.
        assert_eq!(retry_index(&seqs, &response(&["10", "12"])), Some(0));
        assert!(seq(10) > seq(9));
    }

    fn records(n: u64) -> Vec<SourceRecord> {
        (1..=n)
            .map(|i| SourceRecord {
                seq: seq(i),
                partition_key: "I-1".into(),
                data: vec![],
                arrival_ms: chrono::Utc::now().timestamp_millis(),
            })
            .collect()
    }

    /// Which record of a batch to fail, if any.
    type FailAt = Box<dyn Fn(&KinesisEvent) -> Option<String> + Send + Sync>;

    /// Fails a batch from the record `fail` names, and remembers where each batch it saw
    /// started.
    struct Scripted {
        seen: Mutex<Vec<String>>,
        fail: FailAt,
    }

    #[async_trait]
    impl BatchHandler for Scripted {
        async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
            if let (Ok(mut s), Some(first)) = (self.seen.lock(), event.records.first()) {
                s.push(first.kinesis.sequence_number.clone());
            }
            match (self.fail)(event) {
                Some(id) => response(&[&id]),
                None => KinesisEventResponse::default(),
            }
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            source: Arc::new(crate::stream::MemorySource::new(1)),
            checkpoints: Arc::new(MemoryCheckpoints::default()),
            progress: Arc::new(Progress::default()),
            sqs: None,
        }
    }

    fn mapping(handler: Arc<Scripted>, on_failure: OnFailure) -> Mapping {
        Mapping {
            config: MappingConfig {
                retry_backoff: Duration::from_millis(1),
                on_failure,
                ..MappingConfig::new("test")
            },
            handler,
        }
    }

    #[tokio::test]
    async fn a_consumer_gets_the_rest_of_the_batch_until_it_takes_all() {
        let handler = Arc::new(Scripted {
            seen: Mutex::default(),
            fail: Box::new(|e: &KinesisEvent| {
                (e.records[0].kinesis.sequence_number == "1").then(|| "3".to_owned())
            }),
        });
        let ctx = ctx();
        deliver(
            &ctx,
            &mapping(handler.clone(), OnFailure::Stop),
            &ShardId::from("s"),
            &records(5),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            handler.seen.lock().map(|s| s.clone()).unwrap_or_default(),
            vec!["1", "3"]
        );
        assert_eq!(ctx.progress.of("test").records, 5);
    }

    #[tokio::test]
    async fn a_consumer_that_always_fails_gives_up() {
        let handler = Arc::new(Scripted {
            seen: Mutex::default(),
            fail: Box::new(|e: &KinesisEvent| Some(e.records[0].kinesis.sequence_number.clone())),
        });
        let ctx = ctx();
        let r = deliver(
            &ctx,
            &mapping(handler.clone(), OnFailure::Stop),
            &ShardId::from("s"),
            &records(2),
        )
        .await;
        assert!(r.is_err());
        // With a destination the shard moves on instead, after bisecting the batch.
        let r = deliver(
            &ctx,
            &mapping(handler, OnFailure::Log),
            &ShardId::from("s"),
            &records(2),
        )
        .await;
        assert!(r.is_ok());
        let stats = ctx.progress.of("test");
        assert_eq!(stats.records_to_destination, 2, "{stats:?}");
        assert!(stats.bisections >= 1, "{stats:?}");
    }
}
