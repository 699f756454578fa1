//! The stream functions driven in process, as an event source mapping drives them in AWS:
//! batches of one shard in order, the partial batch response honoured (the batch is retried
//! from the first failed record, a bounded number of times), `ingest` and `fault` as two
//! independent consumers of the same records, and `merge` on demand.

use crate::stream::{StreamRecord, kinesis_event};
use anyhow::bail;
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
        let mut pending = batch;
        for attempt in 1..=MAX_ATTEMPTS {
            let response = ingest.handle(&kinesis_event(shard, pending)).await;
            match retry_from(pending, &response.batch_item_failures) {
                None => break,
                Some(rest) if attempt == MAX_ATTEMPTS => {
                    bail!(
                        "ingest failed {MAX_ATTEMPTS} times on shard {shard} ({} records left)",
                        rest.len()
                    )
                }
                Some(rest) => {
                    pending = rest;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
        let mut pending = batch;
        for attempt in 1..=MAX_ATTEMPTS {
            let response = fault.handle(&kinesis_event(shard, pending)).await;
            match retry_from(pending, &response.batch_item_failures) {
                None => break,
                Some(rest) if attempt == MAX_ATTEMPTS => {
                    bail!(
                        "fault failed {MAX_ATTEMPTS} times on shard {shard} ({} records left)",
                        rest.len()
                    )
                }
                Some(rest) => {
                    pending = rest;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
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
        };
        Ok(m.run(closing).await?)
    }
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
