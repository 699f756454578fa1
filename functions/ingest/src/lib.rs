//! The `ingest` function: Kinesis records → per-shard windowed partial state.
//!
//! For each shard in the batch (Lambda sends one; the local runner may too), in sequence order:
//! decode and validate each record, check its intersection and light exist, fold it into the
//! shard's panes, and commit the shard's state atomically (conditional on the sequence number
//! it was folded against). Invalid records are counted, logged with their sequence number and
//! skipped; they never fail the batch. Only a failure to load or commit state (retryable) is
//! reported, as the first record not committed, so the event source mapping retries from there.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use traffic_core::EngineConfig;
use traffic_core::IntersectionId;
use traffic_core::pane::{BatchFold, Counters, Outcome};
use traffic_core::reading::Reading;
use traffic_core::sequence::SequenceNumber;
use traffic_functions::BatchHandler;
use traffic_functions::directory::{Directory, Known};
use traffic_functions::kinesis::{Decoded, decode_by_shard, failures, record_stats, stats_sample};
use traffic_ports::{PortError, Ports, Registry, StateStore, StatsStore};

/// `ingest` built from the ports it needs, owning them and its directory: what a Lambda
/// `main` and the event source mapping hold for the life of the process.
pub struct IngestHandler {
    cfg: EngineConfig,
    state: Arc<dyn StateStore>,
    registry: Arc<dyn Registry>,
    stats: Arc<dyn StatsStore>,
    directory: Directory,
}

impl IngestHandler {
    /// `ingest` over `ports` (state, registry, statistics).
    pub fn from_ports(cfg: EngineConfig, ports: &Ports) -> Self {
        Self {
            cfg,
            state: ports.state.clone(),
            registry: ports.registry.clone(),
            stats: ports.stats.clone(),
            directory: Directory::default(),
        }
    }

    /// The handler borrowing what this one owns.
    pub fn ingest(&self) -> Ingest<'_> {
        Ingest {
            cfg: &self.cfg,
            state: self.state.as_ref(),
            registry: self.registry.as_ref(),
            directory: &self.directory,
            stats: self.stats.as_ref(),
        }
    }
}

#[async_trait::async_trait]
impl BatchHandler for IngestHandler {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        self.ingest().handle(event).await
    }
}

/// What `ingest` needs; built once per process.
pub struct Ingest<'a> {
    /// Engine parameters.
    pub cfg: &'a EngineConfig,
    /// Where the partial state lives.
    pub state: &'a dyn StateStore,
    /// Intersections, for validation.
    pub registry: &'a dyn Registry,
    /// Cache of the registry.
    pub directory: &'a Directory,
    /// Where throughput and latency figures go.
    pub stats: &'a dyn StatsStore,
}

/// What one invocation did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Counts of this invocation's records by outcome.
    pub counters: Counters,
    /// Records skipped as already applied (redelivered).
    pub redelivered: u64,
    /// Commits written.
    pub commits: u64,
    /// Pane items written.
    pub items_written: u64,
    /// Sequence numbers reported as failed.
    pub failed: Vec<SequenceNumber>,
}

/// Why a record was rejected.
#[derive(Debug)]
enum Rejection {
    Invalid(String),
    UnknownIntersection,
    UnknownLight,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Invalid(e) => f.write_str(e),
            Rejection::UnknownIntersection => f.write_str("unknown intersection"),
            Rejection::UnknownLight => f.write_str("the intersection has no such light"),
        }
    }
}

impl Ingest<'_> {
    /// Handles one Kinesis event; the response names the first uncommitted record of each
    /// shard whose state could not be loaded or committed.
    pub async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let report = self.process(event).await;
        let now = chrono::Utc::now().timestamp_millis();
        record_stats(
            self.stats,
            &stats_sample("ingest", event, report.counters.accepted, now),
        )
        .await;
        tracing::info!(
            accepted = report.counters.accepted,
            rejected = report.counters.rejected,
            late = report.counters.late,
            duplicates = report.counters.duplicates,
            redelivered = report.redelivered,
            commits = report.commits,
            items = report.items_written,
            failed = report.failed.len(),
            "ingest batch"
        );
        failures(report.failed)
    }

    /// Processes one event and reports what happened.
    pub async fn process(&self, event: &KinesisEvent) -> IngestReport {
        let (shards, bad) = decode_by_shard(event);
        let mut report = IngestReport::default();
        for r in bad {
            tracing::warn!(sequence_number = %r.kinesis.sequence_number, "record with an invalid sequence number skipped");
            report.counters.rejected += 1;
        }
        for (shard, records) in &shards {
            if let Err((seq, e)) = self.process_shard(shard, records, &mut report).await {
                tracing::error!(shard = %shard, sequence_number = %seq, error = %e, "shard state not committed; the batch will be retried from this record");
                report.failed.push(seq);
            }
        }
        report
    }

    async fn process_shard(
        &self,
        shard: &str,
        records: &[Decoded<'_>],
        report: &mut IngestReport,
    ) -> Result<(), (SequenceNumber, PortError)> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let first_seq = first.seq.clone();
        let known = self
            .directory
            .lookup(
                self.registry,
                records
                    .iter()
                    .filter_map(|d| d.reading.as_ref().ok())
                    .map(|r| &r.intersection_id),
            )
            .await
            .map_err(|e| (first_seq.clone(), e))?;
        let check = |d| check(&known, d);
        let keys: BTreeSet<_> = records
            .iter()
            .filter_map(|d| check(d).ok())
            .map(|r| BatchFold::key_of(self.cfg, shard, r))
            .collect();
        let keys: Vec<_> = keys.into_iter().collect();
        let (meta, items) = self
            .state
            .load_shard(shard, &keys)
            .await
            .map_err(|e| (first_seq.clone(), e))?;
        let mut fold = BatchFold::new(self.cfg, shard, meta, items);
        let limit = self.state.max_items_per_commit().max(1);
        // The first record not yet committed: where a retry must start.
        let mut uncommitted_from = first_seq;
        for d in records {
            let outcome = match check(d) {
                Ok(r) => {
                    if fold.touched() >= limit && fold.needs_new_item(r) {
                        self.commit(&mut fold, report)
                            .await
                            .map_err(|e| (uncommitted_from.clone(), e))?;
                        uncommitted_from = d.seq.clone();
                    }
                    fold.apply(&d.seq, r)
                }
                Err(why) => {
                    let outcome = fold.reject(&d.seq);
                    if outcome == Outcome::Rejected {
                        tracing::warn!(shard = %shard, sequence_number = %d.seq, partition_key = %d.record.kinesis.partition_key, reason = %why, "record rejected");
                    }
                    outcome
                }
            };
            match outcome {
                Outcome::Accepted => report.counters.accepted += 1,
                Outcome::Late => report.counters.late += 1,
                Outcome::Duplicate => report.counters.duplicates += 1,
                Outcome::Rejected => report.counters.rejected += 1,
                Outcome::AlreadyApplied => report.redelivered += 1,
            }
        }
        if fold.dirty() {
            self.commit(&mut fold, report)
                .await
                .map_err(|e| (uncommitted_from, e))?;
        }
        Ok(())
    }

    async fn commit(
        &self,
        fold: &mut BatchFold<'_>,
        report: &mut IngestReport,
    ) -> Result<(), PortError> {
        let c = fold.commit();
        self.state.commit(&c).await?;
        report.commits += 1;
        report.items_written += c.items.len() as u64;
        Ok(())
    }
}

/// A reading, if the record holds a valid one for a known intersection and light.
fn check<'d>(
    known: &HashMap<IntersectionId, Known>,
    d: &'d Decoded<'_>,
) -> Result<&'d Reading, Rejection> {
    let r = d
        .reading
        .as_ref()
        .map_err(|e| Rejection::Invalid(e.to_string()))?;
    match known.get(&r.intersection_id) {
        None => Err(Rejection::UnknownIntersection),
        Some(k) if !k.has(r.light) => Err(Rejection::UnknownLight),
        Some(_) => Ok(r),
    }
}
