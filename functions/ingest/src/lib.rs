//! The `ingest` function: Kinesis records → per-shard deltas (`docs/state.md`).
//!
//! For each shard in the batch (Lambda sends one; the event source mapping may send more), in
//! sequence order: decode and validate each record, check that it came under its own
//! intersection's partition key, on the shard that key maps to (when an explicit hash key
//! sent it elsewhere it is rejected: `traffic_functions::routing`), and that the intersection
//! and light exist, and fold it into
//! the shard's state: *future* when stamped more than the allowed clock skew after its arrival
//! in the stream, *late* when its pane is closed, otherwise accepted into a delta. The batch is
//! committed in one conditional write (its deltas, then the meta listing them); a conflict (a
//! concurrent writer, or the merge finalising a window meanwhile) folds the batch again from
//! the stored state. Invalid records are counted and skipped; they never fail the batch. They
//! are logged once per batch and kind of problem, with the count and the first few records
//! (`traffic_functions::problems`), each record at DEBUG.
//! Only a failure to load or commit state is reported, as the shard's first record, so the
//! event source mapping retries the batch.
//!
//! Each step is a span (an X-Ray subsegment inside Lambda, `traffic_functions::xray`):
//! `ingest.routes` (the shards' hash key ranges), `ingest.decode`, then per shard
//! `ingest.shard` holding `ingest.directory`, `ingest.load`, `ingest.fold` and
//! `ingest.commit` (again for each fold after a conflict), and `ingest.stats`.

mod redrive;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::field::Empty;
use tracing::{Instrument, info_span};
use traffic_core::EngineConfig;
use traffic_core::IntersectionId;
use traffic_core::ShardId;
use traffic_core::pane::{BatchFold, Counters, Outcome};
use traffic_core::reading::Reading;
use traffic_core::routing::HashKeyRange;
use traffic_core::sequence::SequenceNumber;
use traffic_core::time::format_rfc3339_ms;
use traffic_functions::BatchHandler;
use traffic_functions::directory::Known;
use traffic_functions::handler::{BatchParts, Measured};
use traffic_functions::kinesis::{Decoded, Unusable, decode_by_shard, failures};
use traffic_functions::metrics::{BatchFigures, IngestMetrics, Metrics};
use traffic_functions::problems::Problems;
use traffic_functions::routing::Routes;
use traffic_ports::{PortError, Ports, Registry, StateStore};

/// How many times a batch is folded again after a conflicting commit before the invocation
/// reports it failed (the event source mapping then retries it).
const CONFLICT_RETRIES: usize = 3;

/// `ingest` built from the ports it needs, owning them and its directory: what a Lambda
/// `main` and the event source mapping hold for the life of the process.
pub struct IngestHandler {
    cfg: EngineConfig,
    state: Arc<dyn StateStore>,
    registry: Arc<dyn Registry>,
    parts: BatchParts,
}

impl IngestHandler {
    /// `ingest` over `ports` (state, registry, statistics).
    pub fn from_ports(cfg: EngineConfig, ports: &Ports) -> Self {
        Self {
            cfg,
            state: ports.state.clone(),
            registry: ports.registry.clone(),
            parts: BatchParts::from_ports(ports),
        }
    }

    /// The same handler writing one metric line per batch to `metrics` (none by default).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.parts.metrics = metrics;
        self
    }

    /// Processes one event as [`BatchHandler::handle`] does (its shards' ranges checked),
    /// without its statistics sample and metric line, and reports what happened.
    pub async fn process(&self, event: &KinesisEvent) -> IngestReport {
        let routes = self.parts.routes(event, info_span!("ingest.routes")).await;
        self.process_routed(event, &routes).await
    }
}

#[async_trait::async_trait]
impl BatchHandler for IngestHandler {
    async fn handle(&self, event: &KinesisEvent) -> KinesisEventResponse {
        let routes = self.parts.routes(event, info_span!("ingest.routes")).await;
        self.handle_metered(event, &routes).await
    }
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
    /// Delta parts written.
    pub deltas_written: u64,
    /// Commits refused because the stored state had moved (the batch was folded again).
    pub conflicts: u64,
    /// Records rejected (and counted in `counters.rejected`) because an explicit hash key put
    /// them on a shard their partition key does not map to.
    pub misrouted: u64,
    /// Sequence numbers reported as failed.
    pub failed: Vec<SequenceNumber>,
}

/// Why a record was rejected.
#[derive(Debug)]
pub(crate) enum Rejection {
    Unusable(Unusable),
    UnknownIntersection,
    UnknownLight,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Unusable(e) => write!(f, "{e}"),
            Rejection::UnknownIntersection => f.write_str("unknown intersection"),
            Rejection::UnknownLight => f.write_str("the intersection has no such light"),
        }
    }
}

impl Rejection {
    /// A short stable name of the problem, for the batch's summary.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Rejection::Unusable(e) => e.kind(),
            Rejection::UnknownIntersection => "unknown intersection",
            Rejection::UnknownLight => "unknown light",
        }
    }
}

impl IngestHandler {
    /// Handles one Kinesis event, rejecting records found on a shard of `routes` whose hash key
    /// range their partition key is not in, and writes the batch's metric line; the response
    /// names the first uncommitted record of each shard whose state could not be loaded or
    /// committed.
    async fn handle_metered(&self, event: &KinesisEvent, routes: &Routes) -> KinesisEventResponse {
        let parts = &self.parts;
        let Measured {
            out: report,
            sample,
            used,
        } = parts
            .meters()
            .measure(
                traffic_ports::Series::Ingest,
                event,
                info_span!("ingest.stats"),
                self.process_routed(event, routes),
                |report| report.counters.accepted,
            )
            .await;
        parts.metrics.ingest(batch_metrics(&report, &sample));
        tracing::info!(
            accepted = report.counters.accepted,
            rejected = report.counters.rejected,
            misrouted = report.misrouted,
            late = report.counters.late,
            future = report.counters.future,
            duplicates = report.counters.duplicates,
            redelivered = report.redelivered,
            commits = report.commits,
            deltas = report.deltas_written,
            conflicts = report.conflicts,
            failed = report.failed.len(),
            write_units = used.write_units,
            read_units = used.read_units,
            "ingest batch"
        );
        failures(report.failed)
    }

    /// Processes one event, checking each shard's records against its range in `routes`, and
    /// reports what happened.
    async fn process_routed(&self, event: &KinesisEvent, routes: &Routes) -> IngestReport {
        let (shards, bad) = info_span!("ingest.decode", records = event.records.len())
            .in_scope(|| decode_by_shard(event));
        let mut report = IngestReport::default();
        let mut problems = Problems::default();
        for r in bad {
            tracing::debug!(sequence_number = %r.kinesis.sequence_number, "record with an invalid sequence number skipped");
            problems.note(
                "invalid sequence number",
                &r.kinesis.sequence_number,
                &r.kinesis.partition_key,
                &"not a Kinesis sequence number",
            );
            report.counters.rejected += 1;
        }
        for (shard, records) in &shards {
            let range = routes.of(shard);
            let span = info_span!("ingest.shard", shard = %shard, records = records.len());
            async {
                if let Err((seq, e)) = self
                    .process_shard(shard, range, records, &mut report, &mut problems)
                    .await
                {
                    tracing::error!(shard = %shard, sequence_number = %seq, error = %e, "shard state not committed; the batch will be retried from this record");
                    report.failed.push(seq);
                }
            }
            .instrument(span)
            .await;
        }
        problems.log("ingest");
        report
    }

    /// The intersections that the valid readings of `records` name, as the directory knows
    /// them.
    async fn known<'d, 'r: 'd>(
        &self,
        records: impl IntoIterator<Item = &'d Decoded<'r>>,
    ) -> Result<HashMap<IntersectionId, Known>, PortError> {
        let readings = records.into_iter().filter_map(|d| d.reading.as_ref().ok());
        self.parts
            .directory
            .lookup(self.registry.as_ref(), readings.map(|r| &r.intersection_id))
            .await
    }

    async fn process_shard(
        &self,
        shard: &ShardId,
        range: Option<&HashKeyRange>,
        records: &[Decoded<'_>],
        report: &mut IngestReport,
        problems: &mut Problems,
    ) -> Result<(), (SequenceNumber, PortError)> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let first_seq = first.seq.clone();
        let known = self
            .known(records)
            .instrument(info_span!("ingest.directory"))
            .await
            .map_err(|e| (first_seq.clone(), e))?;
        let mut attempt = 0;
        loop {
            let (meta, marks) = self
                .state
                .load_shard(shard)
                .instrument(info_span!("ingest.load", attempt))
                .await
                .map_err(|e| (first_seq.clone(), e))?;
            let mut fold = BatchFold::new(&self.cfg, shard, meta, marks);
            let mut tally = IngestReport::default();
            // This attempt's problems only: a batch folded again after a conflict meets
            // the same records again.
            let mut noted = Problems::default();
            let folding = info_span!(
                "ingest.fold",
                attempt,
                accepted = Empty,
                rejected = Empty,
                late = Empty,
                duplicates = Empty,
                redelivered = Empty
            );
            let in_fold = folding.enter();
            for d in records {
                let outcome = match check(&known, d, range) {
                    Ok(r) => {
                        let o = fold.apply(&d.seq, r, d.arrival_ms);
                        if o == Outcome::Future {
                            tracing::debug!(shard = %shard, sequence_number = %d.seq, intersection = %r.intersection_id, light = r.light.get(), ts = %format_rfc3339_ms(r.ts_ms), arrival = ?d.arrival_ms.map(format_rfc3339_ms), "reading stamped after its arrival plus the allowed clock skew: rejected as future");
                            noted.note(
                                "future",
                                &d.seq,
                                &d.record.kinesis.partition_key,
                                &format_args!(
                                    "stamped {} after its arrival {} plus the allowed clock skew",
                                    format_rfc3339_ms(r.ts_ms),
                                    d.arrival_ms
                                        .map(format_rfc3339_ms)
                                        .unwrap_or_else(|| "unknown".into())
                                ),
                            );
                        }
                        o
                    }
                    Err(why) => {
                        let o = fold.reject(&d.seq, d.arrival_ms);
                        if o == Outcome::Rejected
                            && matches!(why, Rejection::Unusable(Unusable::WrongShard { .. }))
                        {
                            tally.misrouted += 1;
                        }
                        if o == Outcome::Rejected {
                            tracing::debug!(shard = %shard, sequence_number = %d.seq, partition_key = %d.record.kinesis.partition_key, reason = %why, "record rejected");
                            noted.note(why.kind(), &d.seq, &d.record.kinesis.partition_key, &why);
                        }
                        o
                    }
                };
                match outcome {
                    Outcome::Accepted => tally.counters.accepted += 1,
                    Outcome::Late => tally.counters.late += 1,
                    Outcome::Duplicate => tally.counters.duplicates += 1,
                    Outcome::Future => tally.counters.future += 1,
                    Outcome::Rejected => tally.counters.rejected += 1,
                    Outcome::AlreadyApplied => tally.redelivered += 1,
                }
            }
            folding.record("accepted", tally.counters.accepted);
            folding.record("rejected", tally.counters.rejected);
            folding.record("late", tally.counters.late);
            folding.record("duplicates", tally.counters.duplicates);
            folding.record("redelivered", tally.redelivered);
            drop(in_fold);
            drop(folding);
            if !fold.dirty() {
                report.redelivered += tally.redelivered;
                problems.merge(noted);
                return Ok(());
            }
            let commit = fold.commit();
            let committing = info_span!("ingest.commit", deltas = commit.deltas.len());
            match self
                .state
                .commit(&commit, self.parts.clock.now_ms())
                .instrument(committing)
                .await
            {
                Ok(()) => {
                    problems.merge(noted);
                    report.counters.add(&tally.counters);
                    report.redelivered += tally.redelivered;
                    report.misrouted += tally.misrouted;
                    report.commits += 1;
                    report.deltas_written += commit.deltas.len() as u64;
                    return Ok(());
                }
                Err(PortError::Conflict(why)) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    report.conflicts += 1;
                    tracing::info!(shard = %shard, reason = %why, attempt, "commit refused: the stored state moved; folding the batch again");
                }
                Err(e) => return Err((first_seq, e)),
            }
        }
    }
}

/// The metric line of a batch: its report's counts, the latency and units of its statistics
/// sample.
fn batch_metrics(report: &IngestReport, sample: &traffic_ports::StatsSample) -> IngestMetrics {
    let c = &report.counters;
    IngestMetrics {
        function: "ingest",
        records: sample.records,
        accepted: c.accepted,
        rejected: c.rejected,
        misrouted: report.misrouted,
        late: c.late,
        future: c.future,
        duplicates: c.duplicates,
        redelivered: report.redelivered,
        conflicts: report.conflicts,
        batch: BatchFigures::of(sample, report.failed.len() as u64),
    }
}

/// A reading, if the record holds a valid one for a known intersection and light, on the
/// shard its partition key maps to (when the shard's `range` is known).
pub(crate) fn check<'d>(
    known: &HashMap<IntersectionId, Known>,
    d: &'d Decoded<'_>,
    range: Option<&HashKeyRange>,
) -> Result<&'d Reading, Rejection> {
    let r = d.routed(range).map_err(Rejection::Unusable)?;
    match known.get(&r.intersection_id) {
        None => Err(Rejection::UnknownIntersection),
        Some(k) if !k.has(r.light) => Err(Rejection::UnknownLight),
        Some(_) => Ok(r),
    }
}
