//! The redrive of a batch that the event source mapping gave up on (`traffic redrive`): its
//! records, read again from the stream, validated as a live batch's are ([`crate::IngestHandler`]) and
//! folded by [`traffic_core::redrive::RedriveFold`] beside the live fold (see there why that
//! is exactly once in effect).

use crate::{IngestHandler, check};
use aws_lambda_events::event::kinesis::KinesisEvent;
use traffic_core::ShardId;
use traffic_core::redrive::{RedriveCounts, RedriveFold, RedriveOutcome};
use traffic_core::routing::HashKeyRange;
use traffic_functions::kinesis::decode_by_shard;
use traffic_ports::PortError;

/// How many times a redrive is folded again after a conflicting commit (the live fold or the
/// merge moved meanwhile) before it gives up.
const REDRIVE_RETRIES: usize = 8;

impl IngestHandler {
    /// Applies the records of `event` (all of shard `shard`, read again for failure record `id`:
    /// [`traffic_core::redrive::redrive_id`]), of whose range `missing` records are no longer in
    /// the stream, checked against the shard's hash key range as a live batch's are. A failure
    /// record redriven before counts every record a duplicate and writes nothing. Fails only
    /// when the state cannot be read or written (nothing is then applied).
    pub async fn redrive(
        &self,
        shard: &ShardId,
        id: u64,
        event: &KinesisEvent,
        missing: u64,
    ) -> Result<RedriveCounts, PortError> {
        let routes = self.parts.routing.routes(event).await;
        self.redrive_in(shard, id, event, missing, routes.of(shard))
            .await
    }

    async fn redrive_in(
        &self,
        shard: &ShardId,
        id: u64,
        event: &KinesisEvent,
        missing: u64,
        range: Option<&HashKeyRange>,
    ) -> Result<RedriveCounts, PortError> {
        if let Some(mark) = self.state.redrive_mark(shard, id).await? {
            return Ok(mark.counts.as_duplicates());
        }
        let (shards, bad) = decode_by_shard(event);
        let records: Vec<_> = shards
            .iter()
            .filter(|(s, _)| *s == shard)
            .flat_map(|(_, rs)| rs.iter())
            .collect();
        let other = shards
            .iter()
            .filter(|(s, _)| *s != shard)
            .map(|(_, rs)| rs.len() as u64)
            .sum::<u64>();
        let known = self.known(records.iter().copied()).await?;
        let mut attempt = 0;
        loop {
            let (meta, marks) = self.state.load_shard(shard).await?;
            let mut fold = RedriveFold::new(&self.cfg, shard, meta, marks, id);
            for _ in 0..(bad.len() as u64 + other) {
                fold.reject();
            }
            let mut problems = traffic_functions::problems::Problems::default();
            for d in &records {
                match check(&known, d, range) {
                    Ok(r) => {
                        if fold.apply(r, d.arrival_ms) == RedriveOutcome::Final {
                            tracing::debug!(shard = %shard, sequence_number = %d.seq, "redriven reading in a final window");
                        }
                    }
                    Err(why) => {
                        tracing::debug!(shard = %shard, sequence_number = %d.seq, reason = %why, "redriven record rejected");
                        problems.note(why.kind(), &d.seq, &d.record.kinesis.partition_key, &why);
                        fold.reject();
                    }
                }
            }
            let (commit, mark) = fold.commit(missing);
            match self
                .state
                .commit_redrive(&commit, &mark, self.parts.clock.now_ms())
                .await
            {
                Ok(()) => {
                    problems.log("ingest redrive");
                    return Ok(mark.counts);
                }
                Err(PortError::Conflict(why)) => {
                    if let Some(done) = self.state.redrive_mark(shard, id).await? {
                        return Ok(done.counts.as_duplicates());
                    }
                    if attempt >= REDRIVE_RETRIES {
                        return Err(PortError::Conflict(why));
                    }
                    attempt += 1;
                    tracing::info!(shard = %shard, reason = %why, attempt, "redrive refused: the stored state moved; folding it again");
                }
                Err(e) => return Err(e),
            }
        }
    }
}
