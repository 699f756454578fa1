//! The stream functions driven in process, as an event source mapping drives them in AWS:
//! batches of one shard in order, the partial batch response honoured (the batch is retried
//! from the first failed record, a bounded number of times), `ingest` and `fault` as two
//! independent consumers of the same records, and `merge` on demand.

use crate::stream::{StreamRecord, kinesis_event};
use anyhow::bail;
use aws_lambda_events::event::streams::KinesisEventResponse;
use fault::Fault;
use ingest::Ingest;
use merge::{Closing, Merge, MergeReport, Provisional};
use std::time::Duration;
use traffic_core::EngineConfig;
use traffic_functions::directory::Directory;
use traffic_functions::wiring::Ports;

/// How many times a batch is tried before the consumer gives up on it.
pub const MAX_ATTEMPTS: usize = 5;

/// The three functions over one set of ports.
pub struct Engine {
    /// Engine parameters.
    pub cfg: EngineConfig,
    /// Which open windows the merge reports.
    pub provisional: Provisional,
    /// The ports.
    pub ports: Ports,
    ingest_directory: Directory,
    fault_directory: Directory,
}

impl Engine {
    /// An engine over `ports`.
    pub fn new(cfg: EngineConfig, provisional: Provisional, ports: Ports) -> Self {
        Self {
            cfg,
            provisional,
            ports,
            ingest_directory: Directory::default(),
            fault_directory: Directory::default(),
        }
    }

    /// Delivers one batch of one shard to `ingest` and to `fault`, retrying each from the
    /// record its partial batch response names.
    pub async fn deliver(&self, shard: &str, batch: &[StreamRecord]) -> anyhow::Result<()> {
        let ingest = Ingest {
            cfg: &self.cfg,
            state: self.ports.state.as_ref(),
            registry: self.ports.registry.as_ref(),
            directory: &self.ingest_directory,
            stats: self.ports.stats.as_ref(),
        };
        let fault = Fault {
            lamps: self.ports.lamps.as_ref(),
            publisher: self.ports.publisher.as_ref(),
            registry: self.ports.registry.as_ref(),
            directory: &self.fault_directory,
            stats: self.ports.stats.as_ref(),
        };
        consume("ingest", shard, batch, |records| async {
            ingest.handle(&kinesis_event(shard, records)).await
        })
        .await?;
        consume("fault", shard, batch, |records| async {
            fault.handle(&kinesis_event(shard, records)).await
        })
        .await?;
        Ok(())
    }

    /// Runs the merge.
    pub async fn merge(&self, closing: Closing) -> anyhow::Result<MergeReport> {
        let m = Merge {
            cfg: &self.cfg,
            provisional: self.provisional,
            state: self.ports.state.as_ref(),
            registry: self.ports.registry.as_ref(),
            results: self.ports.results.as_ref(),
            stream: self.ports.stream.as_deref(),
        };
        Ok(m.run(closing).await?)
    }
}

/// Hands `batch` to one consumer until it takes all of it: after a partial batch response,
/// again from the first failed record, with a growing pause, at most [`MAX_ATTEMPTS`] times.
async fn consume<'b, F, Fut>(
    function: &str,
    shard: &str,
    batch: &'b [StreamRecord],
    handle: F,
) -> anyhow::Result<()>
where
    F: Fn(&'b [StreamRecord]) -> Fut,
    Fut: std::future::Future<Output = KinesisEventResponse>,
{
    let mut pending = batch;
    for attempt in 1..=MAX_ATTEMPTS {
        let response = handle(pending).await;
        match retry_from(pending, &response.batch_item_failures) {
            None => return Ok(()),
            Some(rest) if attempt == MAX_ATTEMPTS => bail!(
                "{function} failed {MAX_ATTEMPTS} times on shard {shard} ({} records left)",
                rest.len()
            ),
            Some(rest) => {
                pending = rest;
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    Ok(())
}

/// The records to hand over again after a partial batch response: from the lowest failed
/// sequence number on (as Lambda's event source mapping does), or `None` when nothing failed.
pub fn retry_from<'a>(
    batch: &'a [StreamRecord],
    failures: &[aws_lambda_events::event::streams::KinesisBatchItemFailure],
) -> Option<&'a [StreamRecord]> {
    let lowest = failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref()?.parse::<u128>().ok())
        .min()?;
    let at = batch.iter().position(|r| r.seq >= lowest).unwrap_or(0);
    Some(&batch[at..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::streams::KinesisBatchItemFailure;

    fn records(n: u128) -> Vec<StreamRecord> {
        (1..=n)
            .map(|seq| StreamRecord {
                seq,
                partition_key: "I-1".into(),
                data: vec![],
                arrival: chrono::Utc::now(),
            })
            .collect()
    }

    fn failure(id: &str) -> KinesisBatchItemFailure {
        let mut f = KinesisBatchItemFailure::default();
        f.item_identifier = Some(id.into());
        f
    }

    #[test]
    fn a_batch_is_retried_from_its_lowest_failed_record() {
        let batch = records(5);
        let rest = retry_from(&batch, &[failure("4"), failure("3")]);
        assert_eq!(rest.map(|r| r[0].seq), Some(3));
        assert!(retry_from(&batch, &[]).is_none());
    }

    #[tokio::test]
    async fn a_consumer_gets_the_rest_of_the_batch_until_it_takes_all() {
        let batch = records(5);
        let seen = std::sync::Mutex::new(Vec::new());
        consume("test", "s", &batch, |rs| {
            let first = rs[0].seq;
            seen.lock().map(|mut s| s.push(first)).ok();
            async move {
                let mut r = KinesisEventResponse::default();
                if first == 1 {
                    r.batch_item_failures.push(failure("3"));
                }
                r
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen.into_inner().unwrap_or_default(), vec![1, 3]);
    }

    #[tokio::test]
    async fn a_consumer_that_always_fails_gives_up() {
        let batch = records(2);
        let r = consume("test", "s", &batch, |_| async {
            let mut r = KinesisEventResponse::default();
            r.batch_item_failures.push(failure("1"));
            r
        })
        .await;
        assert!(r.is_err());
    }
}
