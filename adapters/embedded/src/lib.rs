//! The embedded adapter: every port on one redb database file, durable across restarts.
//!
//! Tables mirror the DynamoDB layout (`docs/state.md`): shard metas, deltas keyed by (pane
//! start, shard, commit, part), rollups and results keyed by window, the merge's state,
//! intersections, lamp states and alarms. A [`Commit`](traffic_core::pane::Commit) is one
//! redb write transaction, checked against the stored `applied_through` and the merge's
//! closed mark first, so the conditional semantics are those of the DynamoDB store.
//!
//! One file per port: [`state`], [`registry`], [`lamps`], [`results`], [`stats`],
//! [`publisher`], [`events`]; [`log`] is the local runner's stream (a [`RecordSource`] and a
//! [`CheckpointStore`](traffic_ports::CheckpointStore)); [`codec`] the encodings.
//! [`EmbeddedStore::ports`] hands every port out as [`Ports`].
//!
//! redb calls are synchronous and short (one transaction each); they run on the caller's
//! thread.

/// Maps a redb error to a backend [`PortError`] with context.
macro_rules! r {
    ($e:expr, $ctx:expr) => {
        $e.map_err(|e| traffic_ports::PortError::backend($ctx, redb::Error::from(e)))
    };
}

pub mod codec;
pub mod events;
pub mod lamps;
pub mod log;
pub mod pending;
pub mod publisher;
pub mod registry;
pub mod results;
pub mod state;
pub mod stats;

pub use log::{EmbeddedLog, LogRecord};

use redb::{Database, Key, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition, Value};
use std::path::Path;
use std::sync::Arc;
use traffic_ports::{PortError, PortResult, Ports};

/// Shard metas (postcard). The name differs from the first design's `shard_meta` table, whose
/// items this version cannot read: a data directory of that version starts its state afresh.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("shards");
/// Deltas by (pane start, shard, commit, part): [`traffic_core::delta::Delta::encode`].
pub(crate) const DELTAS: TableDefinition<(i64, &str, u64, u32), &[u8]> =
    TableDefinition::new("deltas");
/// Rollups by (window length, start), postcard.
pub(crate) const ROLLUPS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("rollups");
/// The merge's state and lease, postcard.
pub(crate) const MERGE: TableDefinition<&str, &[u8]> = TableDefinition::new("merge");
pub(crate) const RESULTS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("results");
pub(crate) const INTERSECTIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("intersections");
pub(crate) const LAMPS: TableDefinition<(&str, u8), &[u8]> = TableDefinition::new("lamps");
/// The alarm log by (event time, alarm id), JSON [`traffic_ports::AlarmRecord`]s. (The first
/// design's `alarms` table, keyed by id alone, is no longer read.)
pub(crate) const ALARM_LOG: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("alarm_log");
/// Every acknowledgement by (its time, alarm id): the alarm's record as it took it (the log
/// keeps the last one only), for the archive's `alarm_events`. Not swept: a few a day.
pub(crate) const ALARM_ACKS: TableDefinition<(i64, &str), &[u8]> =
    TableDefinition::new("alarm_acks");
/// The open alarms by (event time, alarm id): copies of their log entries, so a page of open
/// alarms reads one entry per alarm it returns.
pub(crate) const ALARM_OPEN: TableDefinition<(i64, &str), &[u8]> =
    TableDefinition::new("alarm_open");
/// The open alarms by (intersection, light, event time, alarm id): what closing them reads.
pub(crate) const ALARM_OPEN_BY_LIGHT: TableDefinition<(&str, u8, i64, &str), ()> =
    TableDefinition::new("alarm_open_by_light");
/// The event time of each lamp's last published alarm, by (intersection, light, lamp): what
/// the hold-down of a flapping lamp is judged against.
pub(crate) const ALARM_LAST: TableDefinition<(&str, u8, &str), i64> =
    TableDefinition::new("alarm_last_published");
/// Closed alarms by (expiry, event time, alarm id), epoch ms: what the retention deletes.
pub(crate) const ALARM_EXPIRY: TableDefinition<(i64, i64, &str), ()> =
    TableDefinition::new("alarm_expiry");
/// Recorded alarms not yet published, by (due, alarm id): when their publication is due (their
/// event time, or the end of their hold-down); what a sweep reads ([`pending`]).
pub(crate) const ALARM_DUE: TableDefinition<(i64, &str), ()> = TableDefinition::new("alarm_due");
/// Claims of alarms' publication, by alarm id: until when (epoch ms, processing time).
pub(crate) const ALARM_CLAIMS: TableDefinition<&str, i64> = TableDefinition::new("alarm_claims");
pub(crate) const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("published_alarms");
pub(crate) const REPAIRS: TableDefinition<(&str, u8), u64> = TableDefinition::new("repair_orders");
pub(crate) const STATS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("stats");
pub(crate) const TIMINGS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("timing_history");
/// One entry, [`NETWORK_KEY`]: the latest network state.
pub(crate) const NETWORK: TableDefinition<&str, &[u8]> = TableDefinition::new("network");
pub(crate) const NETWORK_KEY: &str = "latest";
/// Result events by publishing sequence, postcard ([`events`]).
pub(crate) const RESULT_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("result_events");

/// Every port on one redb file. Cheap to clone (the database is shared).
#[derive(Clone)]
pub struct EmbeddedStore {
    pub(crate) db: Arc<Database>,
    relaxed: bool,
    /// Alarm entries read (log or open view) by [`traffic_ports::LampStore::alarm_page`],
    /// shared by clones: what a test counts to show a page reads only what it returns.
    pub(crate) alarm_reads: Arc<std::sync::atomic::AtomicU64>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path`, creating its tables.
    pub fn open(path: impl AsRef<Path>) -> PortResult<Self> {
        let db = Database::create(path.as_ref())
            .map_err(|e| PortError::backend(format!("opening {}", path.as_ref().display()), e))?;
        let txn = r!(db.begin_write(), "creating tables")?;
        {
            r!(txn.open_table(META), "creating tables")?;
            r!(txn.open_table(DELTAS), "creating tables")?;
            r!(txn.open_table(ROLLUPS), "creating tables")?;
            r!(txn.open_table(MERGE), "creating tables")?;
            r!(txn.open_table(RESULTS), "creating tables")?;
            r!(txn.open_table(INTERSECTIONS), "creating tables")?;
            r!(txn.open_table(LAMPS), "creating tables")?;
            r!(txn.open_table(ALARM_LOG), "creating tables")?;
            r!(txn.open_table(ALARM_ACKS), "creating tables")?;
            r!(txn.open_table(ALARM_OPEN), "creating tables")?;
            r!(txn.open_table(ALARM_OPEN_BY_LIGHT), "creating tables")?;
            r!(txn.open_table(ALARM_EXPIRY), "creating tables")?;
            r!(txn.open_table(ALARM_LAST), "creating tables")?;
            r!(txn.open_table(ALARM_DUE), "creating tables")?;
            r!(txn.open_table(ALARM_CLAIMS), "creating tables")?;
            r!(txn.open_table(OUTBOX), "creating tables")?;
            r!(txn.open_table(REPAIRS), "creating tables")?;
            r!(txn.open_table(STATS), "creating tables")?;
            r!(txn.open_table(TIMINGS), "creating tables")?;
            r!(txn.open_table(NETWORK), "creating tables")?;
            r!(txn.open_table(RESULT_EVENTS), "creating tables")?;
            r!(txn.open_table(log::LOG), "creating tables")?;
            r!(txn.open_table(log::CHECKPOINTS), "creating tables")?;
            r!(txn.open_table(log::BLOBS), "creating tables")?;
        }
        r!(txn.commit(), "creating tables")?;
        Ok(Self {
            db: Arc::new(db),
            relaxed: false,
            alarm_reads: Arc::default(),
        })
    }

    /// Opens the database with relaxed durability: commits are not flushed to disk one by
    /// one, only with the next durable commit ([`EmbeddedStore::append_step`] is always
    /// durable). A crash rolls the whole store back to its last durable commit, a consistent
    /// state; the local runner then redoes the work since, deterministically.
    pub fn open_relaxed(path: impl AsRef<Path>) -> PortResult<Self> {
        Ok(Self {
            relaxed: true,
            ..Self::open(path)?
        })
    }

    /// The same database with every commit durable: what an answer promises (an API write
    /// acknowledged with 2xx) must survive a `kill -9`, while the runner's own work may stay
    /// relaxed. A durable commit also makes every relaxed commit before it durable.
    pub fn durable(&self) -> Self {
        Self {
            db: self.db.clone(),
            relaxed: false,
            alarm_reads: self.alarm_reads.clone(),
        }
    }

    /// Makes every commit so far durable (with relaxed durability: call before exiting).
    pub fn sync(&self) -> PortResult<()> {
        let txn = r!(self.db.begin_write(), "syncing the store")?;
        r!(txn.commit(), "syncing the store")
    }

    /// A write transaction with the store's durability.
    pub(crate) fn write_txn(&self) -> Result<redb::WriteTransaction, redb::Error> {
        let mut txn = self.db.begin_write()?;
        if self.relaxed {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
        }
        Ok(txn)
    }

    /// Runs `f` on `table` open for writing, in a write transaction of its own, committed when
    /// `f` succeeds (dropped, so undone, when it fails).
    pub(crate) fn write_table<K: Key + 'static, V: Value + 'static, T>(
        &self,
        table: TableDefinition<K, V>,
        ctx: &str,
        f: impl FnOnce(&mut redb::Table<'_, K, V>) -> PortResult<T>,
    ) -> PortResult<T> {
        let txn = r!(self.write_txn(), ctx)?;
        let out = {
            let mut t = r!(txn.open_table(table), ctx)?;
            f(&mut t)?
        };
        r!(txn.commit(), ctx)?;
        Ok(out)
    }

    /// `table` open for reading, in a read transaction of its own (the table keeps the
    /// transaction's snapshot).
    pub(crate) fn read_table<K: Key + 'static, V: Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
        ctx: &str,
    ) -> PortResult<ReadOnlyTable<K, V>> {
        let txn = r!(self.db.begin_read(), ctx)?;
        r!(txn.open_table(table), ctx)
    }

    /// Every value of `table`, in key order, each made into `T` by `item`.
    pub(crate) fn read_all<K: Key + 'static, V: Value + 'static, T>(
        &self,
        table: TableDefinition<K, V>,
        ctx: &str,
        item: impl Fn(V::SelfType<'_>) -> PortResult<T>,
    ) -> PortResult<Vec<T>> {
        let t = self.read_table(table, ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(item(v.value())?);
        }
        Ok(out)
    }
}

impl EmbeddedStore {
    /// Alarm entries that alarm pages have read so far (see [`lamps`]).
    pub fn alarm_entries_read(&self) -> u64 {
        self.alarm_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every port on this store (alarms go to its `published_alarms` table, result events
    /// to its `result_events` table); no stream shards, since the embedded log never
    /// reshards.
    pub fn ports(&self) -> Ports {
        let s = Arc::new(self.clone());
        Ports::from_store(s.clone(), s.clone()).with_events(s)
    }
}

/// A store in a fresh temporary directory, there as long as the directory is.
#[cfg(test)]
pub(crate) fn temp_store() -> anyhow::Result<(tempfile::TempDir, EmbeddedStore)> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path().join("store.redb"))?;
    Ok((dir, store))
}
