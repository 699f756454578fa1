//! The local runner's archive: a third consumer of the embedded log, where Firehose stands on
//! AWS. It reads every shard after its checkpoint and, once its oldest record waited
//! [`ARCHIVE_BUFFER_MS`] of simulated time (Firehose's default buffer, the template's
//! `ArchiveBufferSeconds`) or the run ends, writes them under `<data dir>/archive` as the
//! AWS archive holds them (`traffic_archive::writer`), then moves its checkpoint.
//!
//! The files are the truth of how far it got: started again after a crash between writing a
//! file and moving the checkpoint, it starts after the last record a file holds, so no
//! reading is archived twice or missed; the log keeps a shard's records until this consumer,
//! too, has taken them.

use std::path::{Path, PathBuf};
use traffic_archive::layout::archived_up_to;
use traffic_archive::writer::{Record, write_shard};
use traffic_core::ShardId;
use traffic_core::sequence::SequenceNumber;
use traffic_embedded::EmbeddedLog;
use traffic_embedded::log::shard_id;
use traffic_ports::{CheckpointStore, ReadFrom, RecordSource, SourceRecord, StartingPosition};

/// The archive's name among the log's consumers (its checkpoints).
pub const ARCHIVE_CONSUMER: &str = "archive";
/// Simulated time a record may wait before the archive writes it: 300 s, as Firehose's default.
pub const ARCHIVE_BUFFER_MS: i64 = 300_000;
/// The archive's folder under the data directory.
pub const ARCHIVE_DIR: &str = "archive";
/// Records read from a shard at a time.
const READ_LIMIT: usize = 10_000;

/// The archive of a local run's data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(ARCHIVE_DIR)
}

/// The archive consumer: what it read and has not written yet, per shard.
pub struct Archiver {
    dir: PathBuf,
    log: EmbeddedLog,
    shards: Vec<Pending>,
}

struct Pending {
    id: ShardId,
    read_to: Option<u64>,
    records: Vec<SourceRecord>,
}

/// What one call of [`Archiver::pull`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Archived {
    /// Readings written.
    pub readings: usize,
    /// Records that were not readings, written under `errors/`.
    pub errors: usize,
}

impl std::ops::AddAssign for Archived {
    fn add_assign(&mut self, o: Archived) {
        self.readings += o.readings;
        self.errors += o.errors;
    }
}

impl Archiver {
    /// The archive of `log` under `dir`, resuming after what its files hold.
    pub async fn open(dir: PathBuf, log: EmbeddedLog, shards: usize) -> anyhow::Result<Self> {
        let done = archived_up_to(&dir)?;
        let mut pending = Vec::with_capacity(shards);
        for i in 0..shards {
            let id = shard_id(i);
            let checkpoint = log
                .checkpoint(ARCHIVE_CONSUMER, &id)
                .await?
                .and_then(|s| s.to_u64());
            let written = done.get(id.as_str()).copied();
            // A file written before a crash that kept the checkpoint back.
            if let Some(w) = written.filter(|w| checkpoint.is_none_or(|c| c < *w)) {
                log.set_checkpoint(ARCHIVE_CONSUMER, &id, &SequenceNumber::from_u64(w))
                    .await?;
            }
            pending.push(Pending {
                id,
                read_to: checkpoint.max(written),
                records: Vec::new(),
            });
        }
        Ok(Self {
            dir,
            log,
            shards: pending,
        })
    }

    /// Reads every shard's new records and writes those of each shard whose oldest record
    /// arrived [`ARCHIVE_BUFFER_MS`] before `now_ms`, or all of them when `flush`.
    pub async fn pull(&mut self, now_ms: i64, flush: bool) -> anyhow::Result<Archived> {
        let mut out = Archived::default();
        for shard in &mut self.shards {
            // Bounded: each read moves past the records it returned, up to the log's tail.
            for _ in 0..1_000_000 {
                let after = shard.read_to.map(SequenceNumber::from_u64);
                let batch = self
                    .log
                    .read(
                        &shard.id,
                        ReadFrom::resume(after.as_ref(), StartingPosition::TrimHorizon),
                        READ_LIMIT,
                    )
                    .await?;
                if let Some(last) = batch.records.last() {
                    shard.read_to = last.seq.to_u64();
                }
                let empty = batch.records.is_empty();
                shard.records.extend(batch.records);
                if batch.caught_up || empty {
                    break;
                }
            }
            let Some(oldest) = shard.records.first().map(|r| r.arrival_ms) else {
                continue;
            };
            if !flush && now_ms - oldest < ARCHIVE_BUFFER_MS {
                continue;
            }
            let records: Vec<Record<'_>> = shard
                .records
                .iter()
                .filter_map(|r| {
                    Some(Record {
                        seq: r.seq.to_u64()?,
                        data: &r.data,
                        arrival_ms: r.arrival_ms,
                    })
                })
                .collect();
            let written = write_shard(&self.dir, shard.id.as_str(), &records)?;
            out.readings += written.readings;
            out.errors += written.errors;
            if let Some(last) = shard.records.last() {
                self.log
                    .set_checkpoint(ARCHIVE_CONSUMER, &shard.id, &last.seq)
                    .await?;
            }
            shard.records.clear();
        }
        Ok(out)
    }
}
