//! The embedded adapter: every port on one redb database file, durable across restarts.
//!
//! Tables mirror the DynamoDB layout: shard metas, pane items keyed by (pane start, shard,
//! bucket), results keyed by window, intersections, lamp states and alarms. A [`Commit`] is one
//! redb write transaction, checked against the stored `applied_through` first, so the
//! all-or-nothing, conditional semantics are the same as with DynamoDB's transactions.
//!
//! redb calls are synchronous and short (one transaction each); they run on the caller's
//! thread.

mod log;

pub use log::LogRecord;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use traffic_core::city::{Intersection, Phase};
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::pane::{Commit, PaneItem, PaneKey, ShardMeta};
use traffic_core::query::{NetworkState, WindowResult};
use traffic_core::window::{WindowKey, WindowLength};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{
    AlarmPublisher, AlarmRecord, LampStore, PortError, PortResult, Registry, ResultStore,
    StateStore, StatsSample, StatsStore, TimingChange,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("shard_meta");
const PANES: TableDefinition<(i64, &str, u32), &[u8]> = TableDefinition::new("panes");
const RESULTS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("results");
const INTERSECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("intersections");
const LAMPS: TableDefinition<(&str, u8), &[u8]> = TableDefinition::new("lamps");
const ALARMS: TableDefinition<&str, &[u8]> = TableDefinition::new("alarms");
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("published_alarms");
pub(crate) const REPAIRS: TableDefinition<(&str, u8), u64> = TableDefinition::new("repair_orders");
const STATS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("stats");
const TIMINGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("timing_history");
/// One entry, [`NETWORK_KEY`]: the latest network state.
const NETWORK: TableDefinition<&str, &[u8]> = TableDefinition::new("network");
const NETWORK_KEY: &str = "latest";

/// Retimings kept per intersection.
const HISTORY: usize = 96;

/// Every port on one redb file. Cheap to clone (the database is shared).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    relaxed: bool,
}

/// Maps a redb error to a backend [`PortError`] with context.
macro_rules! r {
    ($e:expr, $ctx:expr) => {
        $e.map_err(|e| PortError::backend($ctx, redb::Error::from(e)))
    };
}

pub(crate) fn encode<T: Serialize>(v: &T) -> PortResult<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| PortError::backend("encoding state", e))
}

pub(crate) fn decode<T: DeserializeOwned>(b: &[u8], what: &str) -> PortResult<T> {
    postcard::from_bytes(b).map_err(|e| PortError::Corrupt(format!("{what}: {e}")))
}

/// An intersection's version: the FNV-1a hash of its stored JSON, so any change to it (an
/// edit, a retiming) changes the version.
fn version_of(stored: &[u8]) -> String {
    format!("{:016x}", traffic_core::hash::fnv1a64(stored))
}

/// Within a write transaction: the stored intersection `id` exists at version `expected`.
fn check_version(
    t: &redb::Table<'_, &str, &[u8]>,
    id: &IntersectionId,
    expected: &str,
    ctx: &str,
) -> PortResult<()> {
    match r!(t.get(id.as_str()), ctx)? {
        None => Err(PortError::NotFound(format!("intersection {id}"))),
        Some(v) if version_of(v.value()) != expected => Err(PortError::Conflict(format!(
            "intersection {id} changed (version {} now, {expected} expected)",
            version_of(v.value())
        ))),
        Some(_) => Ok(()),
    }
}

fn to_json<T: Serialize>(v: &T) -> PortResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| PortError::backend("encoding JSON", e))
}

fn from_json<T: DeserializeOwned>(b: &[u8], what: &str) -> PortResult<T> {
    serde_json::from_slice(b).map_err(|e| PortError::Corrupt(format!("{what}: {e}")))
}

/// A result as stored: postcard, so that floats come back bit for bit.
#[derive(Serialize, serde::Deserialize)]
struct StoredResult {
    key: WindowKey,
    result: WindowResult,
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path`, creating its tables.
    pub fn open(path: impl AsRef<Path>) -> PortResult<Self> {
        let db = Database::create(path.as_ref())
            .map_err(|e| PortError::backend(format!("opening {}", path.as_ref().display()), e))?;
        let txn = r!(db.begin_write(), "creating tables")?;
        {
            r!(txn.open_table(META), "creating tables")?;
            r!(txn.open_table(PANES), "creating tables")?;
            r!(txn.open_table(RESULTS), "creating tables")?;
            r!(txn.open_table(INTERSECTIONS), "creating tables")?;
            r!(txn.open_table(LAMPS), "creating tables")?;
            r!(txn.open_table(ALARMS), "creating tables")?;
            r!(txn.open_table(OUTBOX), "creating tables")?;
            r!(txn.open_table(REPAIRS), "creating tables")?;
            r!(txn.open_table(STATS), "creating tables")?;
            r!(txn.open_table(TIMINGS), "creating tables")?;
            r!(txn.open_table(NETWORK), "creating tables")?;
            r!(txn.open_table(log::LOG), "creating tables")?;
            r!(txn.open_table(log::CHECKPOINTS), "creating tables")?;
            r!(txn.open_table(log::BLOBS), "creating tables")?;
        }
        r!(txn.commit(), "creating tables")?;
        Ok(Self {
            db: Arc::new(db),
            relaxed: false,
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

    /// Alarms handed to the embedded publisher, in id order (what SNS would have sent).
    pub fn published_alarms(&self) -> PortResult<Vec<Alarm>> {
        let txn = r!(self.db.begin_read(), "reading published alarms")?;
        let t = r!(txn.open_table(OUTBOX), "reading published alarms")?;
        let mut out = Vec::new();
        for e in r!(t.iter(), "reading published alarms")? {
            let (_, v) = r!(e, "reading published alarms")?;
            out.push(from_json(v.value(), "published alarm")?);
        }
        Ok(out)
    }
}

#[async_trait]
impl StateStore for EmbeddedStore {
    fn max_items_per_commit(&self) -> usize {
        usize::MAX
    }

    async fn load_shard(
        &self,
        shard_id: &str,
        keys: &[PaneKey],
    ) -> PortResult<(Option<ShardMeta>, Vec<PaneItem>)> {
        let ctx = "loading shard state";
        let txn = r!(self.db.begin_read(), ctx)?;
        let metas = r!(txn.open_table(META), ctx)?;
        let meta = match r!(metas.get(shard_id), ctx)? {
            Some(v) => Some(decode(v.value(), "shard meta")?),
            None => None,
        };
        let panes = r!(txn.open_table(PANES), ctx)?;
        let mut items = Vec::new();
        for k in keys {
            if let Some(v) = r!(panes.get((k.start_ms, k.shard_id.as_str(), k.bucket)), ctx)? {
                items.push(decode(v.value(), "pane item")?);
            }
        }
        Ok((meta, items))
    }

    async fn commit(&self, c: &Commit<'_>) -> PortResult<()> {
        let ctx = "committing shard state";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut metas = r!(txn.open_table(META), ctx)?;
            let stored: Option<ShardMeta> = match r!(metas.get(c.meta.shard_id.as_str()), ctx)? {
                Some(v) => Some(decode(v.value(), "shard meta")?),
                None => None,
            };
            let stored_seq = stored.and_then(|m| m.applied_through);
            if stored_seq != c.expected {
                return Err(PortError::Conflict(format!(
                    "shard {} is at {:?}, the batch expected {:?}",
                    c.meta.shard_id, stored_seq, c.expected
                )));
            }
            r!(
                metas.insert(c.meta.shard_id.as_str(), encode(&c.meta)?.as_slice()),
                ctx
            )?;
            let mut panes = r!(txn.open_table(PANES), ctx)?;
            for item in &c.items {
                let k = &item.key;
                r!(
                    panes.insert(
                        (k.start_ms, k.shard_id.as_str(), k.bucket),
                        encode(item)?.as_slice()
                    ),
                    ctx
                )?;
            }
        }
        r!(txn.commit(), ctx)
    }

    async fn shard_metas(&self) -> PortResult<Vec<ShardMeta>> {
        let ctx = "reading shard metas";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(META), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "shard meta")?);
        }
        Ok(out)
    }

    async fn pane_starts(&self) -> PortResult<Vec<i64>> {
        let ctx = "listing panes";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(PANES), ctx)?;
        let mut out: Vec<i64> = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (k, _) = r!(e, ctx)?;
            let start = k.value().0;
            if out.last() != Some(&start) {
                out.push(start);
            }
        }
        Ok(out)
    }

    async fn pane_items(&self, start_ms: i64) -> PortResult<Vec<PaneItem>> {
        let ctx = "reading a pane";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(PANES), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.range((start_ms, "", 0)..(start_ms + 1, "", 0)), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "pane item")?);
        }
        Ok(out)
    }

    async fn delete_panes_before(&self, before_ms: i64) -> PortResult<()> {
        let ctx = "deleting old panes";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(PANES), ctx)?;
            r!(
                t.retain_in((i64::MIN, "", 0)..(before_ms, "", 0), |_, _| false),
                ctx
            )?;
        }
        r!(txn.commit(), ctx)
    }
}

#[async_trait]
impl Registry for EmbeddedStore {
    async fn intersections(&self) -> PortResult<Vec<Intersection>> {
        let ctx = "listing intersections";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(INTERSECTIONS), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(from_json(v.value(), "intersection")?);
        }
        Ok(out)
    }

    async fn intersections_page(
        &self,
        after: Option<&IntersectionId>,
        limit: usize,
    ) -> PortResult<(Vec<Intersection>, Option<IntersectionId>)> {
        let ctx = "listing intersections";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(INTERSECTIONS), ctx)?;
        let from = after.map(|a| a.as_str());
        let range = match from {
            Some(a) => r!(t.range::<&str>((Bound::Excluded(a), Bound::Unbounded)), ctx)?,
            None => r!(t.range::<&str>(..), ctx)?,
        };
        let mut out: Vec<Intersection> = Vec::new();
        for e in range.take(limit.saturating_add(1)) {
            let (_, v) = r!(e, ctx)?;
            out.push(from_json(v.value(), "intersection")?);
        }
        Ok(traffic_ports::intersections_page_of(out, limit))
    }

    async fn intersection(&self, id: &IntersectionId) -> PortResult<Option<Intersection>> {
        Ok(self.intersection_versioned(id).await?.map(|(x, _)| x))
    }

    async fn create_intersection(&self, x: &Intersection) -> PortResult<()> {
        let ctx = "creating an intersection";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            if r!(t.get(x.id.as_str()), ctx)?.is_some() {
                return Err(PortError::AlreadyExists(format!("intersection {}", x.id)));
            }
            r!(t.insert(x.id.as_str(), to_json(x)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    async fn put_intersection(&self, x: &Intersection) -> PortResult<()> {
        let ctx = "storing an intersection";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            r!(t.insert(x.id.as_str(), to_json(x)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    async fn delete_intersection(&self, id: &IntersectionId) -> PortResult<bool> {
        let ctx = "deleting an intersection";
        let txn = r!(self.write_txn(), ctx)?;
        let existed = {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            r!(t.remove(id.as_str()), ctx)?.is_some()
        };
        r!(txn.commit(), ctx)?;
        Ok(existed)
    }

    async fn intersection_versioned(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Option<(Intersection, String)>> {
        let ctx = "reading an intersection";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(INTERSECTIONS), ctx)?;
        match r!(t.get(id.as_str()), ctx)? {
            Some(v) => Ok(Some((
                from_json(v.value(), "intersection")?,
                version_of(v.value()),
            ))),
            None => Ok(None),
        }
    }

    async fn replace_intersection_if(
        &self,
        x: &Intersection,
        expected: &str,
    ) -> PortResult<String> {
        let ctx = "replacing an intersection";
        let json = to_json(x)?;
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            check_version(&t, &x.id, expected, ctx)?;
            r!(t.insert(x.id.as_str(), json.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)?;
        Ok(version_of(&json))
    }

    async fn delete_intersection_if(&self, id: &IntersectionId, expected: &str) -> PortResult<()> {
        let ctx = "deleting an intersection";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            check_version(&t, id, expected, ctx)?;
            r!(t.remove(id.as_str()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    async fn set_timings(
        &self,
        timings: &[(IntersectionId, Vec<Phase>)],
        from: &str,
    ) -> PortResult<()> {
        let ctx = "storing timings";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            for (id, phases) in timings {
                let current: Option<Intersection> = match r!(t.get(id.as_str()), ctx)? {
                    Some(v) => Some(from_json(v.value(), "intersection")?),
                    None => None,
                };
                if let Some(mut x) = current {
                    x.phases = phases.clone();
                    x.retimed_from = Some(from.to_owned());
                    r!(t.insert(id.as_str(), to_json(&x)?.as_slice()), ctx)?;
                }
            }
            let mut h = r!(txn.open_table(TIMINGS), ctx)?;
            for (id, phases) in timings {
                let change = TimingChange {
                    from: from.to_owned(),
                    phases: phases.clone(),
                };
                r!(
                    h.insert((id.as_str(), from), to_json(&change)?.as_slice()),
                    ctx
                )?;
                let keys: Vec<String> = r!(
                    h.range((id.as_str(), "")..=(id.as_str(), "\u{10ffff}")),
                    ctx
                )?
                .filter_map(Result::ok)
                .map(|(k, _)| k.value().1.to_owned())
                .collect();
                // `from` sorts by time within a window length; keep the newest.
                for old in keys.iter().take(keys.len().saturating_sub(HISTORY)) {
                    r!(h.remove((id.as_str(), old.as_str())), ctx)?;
                }
            }
        }
        r!(txn.commit(), ctx)
    }

    async fn timing_history(&self, id: &IntersectionId) -> PortResult<Vec<TimingChange>> {
        let ctx = "reading timing history";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(TIMINGS), ctx)?;
        let mut out = Vec::new();
        for e in r!(
            t.range((id.as_str(), "")..=(id.as_str(), "\u{10ffff}")),
            ctx
        )? {
            let (_, v) = r!(e, ctx)?;
            out.push(from_json(v.value(), "timing change")?);
        }
        Ok(out)
    }
}

#[async_trait]
impl LampStore for EmbeddedStore {
    async fn lamp_states(
        &self,
        lights: &[(IntersectionId, LightIndex)],
    ) -> PortResult<BTreeMap<(IntersectionId, LightIndex), LightLamps>> {
        let ctx = "reading lamp states";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(LAMPS), ctx)?;
        let mut out = BTreeMap::new();
        for (id, l) in lights {
            let s = match r!(t.get((id.as_str(), l.get() as u8)), ctx)? {
                Some(v) => decode(v.value(), "lamp state")?,
                None => LightLamps::default(),
            };
            out.insert((id.clone(), *l), s);
        }
        Ok(out)
    }

    async fn put_lamp_states(
        &self,
        states: &[((IntersectionId, LightIndex), LightLamps)],
    ) -> PortResult<()> {
        let ctx = "storing lamp states";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(LAMPS), ctx)?;
            for ((id, l), s) in states {
                r!(
                    t.insert((id.as_str(), l.get() as u8), encode(s)?.as_slice()),
                    ctx
                )?;
            }
        }
        r!(txn.commit(), ctx)
    }

    async fn record_alarm(&self, alarm: &Alarm) -> PortResult<AlarmRecord> {
        let ctx = "recording an alarm";
        let id = alarm.id();
        let txn = r!(self.write_txn(), ctx)?;
        let record = {
            let mut t = r!(txn.open_table(ALARMS), ctx)?;
            let existing: Option<AlarmRecord> = match r!(t.get(id.as_str()), ctx)? {
                Some(v) => Some(from_json(v.value(), "alarm")?),
                None => None,
            };
            match existing {
                Some(r) => r,
                None => {
                    let r = AlarmRecord {
                        alarm: alarm.clone(),
                        published: false,
                        repaired_at: None,
                    };
                    r!(t.insert(id.as_str(), to_json(&r)?.as_slice()), ctx)?;
                    r
                }
            }
        };
        r!(txn.commit(), ctx)?;
        Ok(record)
    }

    async fn mark_published(&self, alarm_id: &str) -> PortResult<()> {
        let ctx = "marking an alarm published";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(ALARMS), ctx)?;
            let existing: Option<AlarmRecord> = match r!(t.get(alarm_id), ctx)? {
                Some(v) => Some(from_json(v.value(), "alarm")?),
                None => None,
            };
            let Some(mut rec) = existing else {
                return Err(PortError::NotFound(format!("alarm {alarm_id}")));
            };
            rec.published = true;
            r!(t.insert(alarm_id, to_json(&rec)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    async fn repair(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        at: &str,
    ) -> PortResult<Vec<AlarmRecord>> {
        let ctx = "recording a repair";
        let txn = r!(self.write_txn(), ctx)?;
        let mut closed = Vec::new();
        {
            let mut t = r!(txn.open_table(ALARMS), ctx)?;
            let mut open = Vec::new();
            for e in r!(t.iter(), ctx)? {
                let (k, v) = r!(e, ctx)?;
                let rec: AlarmRecord = from_json(v.value(), "alarm")?;
                if rec.repaired_at.is_none()
                    && rec.alarm.intersection_id == *id
                    && rec.alarm.light == light
                {
                    open.push((k.value().to_owned(), rec));
                }
            }
            for (k, mut rec) in open {
                rec.repaired_at = Some(at.to_owned());
                r!(t.insert(k.as_str(), to_json(&rec)?.as_slice()), ctx)?;
                closed.push(rec);
            }
            let mut orders = r!(txn.open_table(REPAIRS), ctx)?;
            r!(orders.insert((id.as_str(), light.get() as u8), 1), ctx)?;
        }
        r!(txn.commit(), ctx)?;
        Ok(closed)
    }

    async fn take_repairs(&self) -> PortResult<Vec<(IntersectionId, LightIndex)>> {
        let ctx = "taking repair orders";
        let txn = r!(self.write_txn(), ctx)?;
        let mut out = Vec::new();
        {
            let mut t = r!(txn.open_table(REPAIRS), ctx)?;
            for e in r!(t.iter(), ctx)? {
                let (k, _) = r!(e, ctx)?;
                let (id, l) = k.value();
                if let (Ok(id), Ok(l)) = (IntersectionId::parse(id), LightIndex::new(i64::from(l)))
                {
                    out.push((id, l));
                }
            }
            r!(t.retain(|_, _| false), ctx)?;
        }
        r!(txn.commit(), ctx)?;
        Ok(out)
    }

    async fn alarms(&self) -> PortResult<Vec<AlarmRecord>> {
        let ctx = "listing alarms";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(ALARMS), ctx)?;
        let mut out: Vec<AlarmRecord> = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(from_json(v.value(), "alarm")?);
        }
        out.sort_by_key(|a| (a.alarm.ts_ms, a.alarm.id()));
        Ok(out)
    }
}

#[async_trait]
impl StatsStore for EmbeddedStore {
    async fn add_stats(&self, sample: &StatsSample) -> PortResult<()> {
        let ctx = "recording statistics";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(STATS), ctx)?;
            let key = (sample.minute_ms, sample.function.as_str());
            let mut total: StatsSample = match r!(t.get(key), ctx)? {
                Some(v) => decode(v.value(), "statistics")?,
                None => StatsSample {
                    function: sample.function.clone(),
                    minute_ms: sample.minute_ms,
                    ..StatsSample::default()
                },
            };
            total.add(sample);
            r!(t.insert(key, encode(&total)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    async fn stats(&self, since_ms: i64) -> PortResult<Vec<StatsSample>> {
        let ctx = "reading statistics";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(STATS), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.range((since_ms, "")..), ctx)? {
            let (_, v) = r!(e, ctx)?;
            out.push(decode(v.value(), "statistics")?);
        }
        Ok(out)
    }
}

#[async_trait]
impl AlarmPublisher for EmbeddedStore {
    /// Stores the alarm in the `published_alarms` table (the local stand-in for SNS) and logs
    /// it; publishing the same alarm twice keeps one copy.
    async fn publish(&self, alarm: &Alarm) -> PortResult<()> {
        let ctx = "publishing an alarm";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(OUTBOX), ctx)?;
            r!(
                t.insert(alarm.id().as_str(), to_json(alarm)?.as_slice()),
                ctx
            )?;
        }
        r!(txn.commit(), ctx)?;
        tracing::warn!(
            intersection = %alarm.intersection_id,
            light = %alarm.light,
            lamp = alarm.lamp.as_str(),
            "{}",
            alarm.short_text()
        );
        Ok(())
    }
}

#[async_trait]
impl ResultStore for EmbeddedStore {
    async fn put_results(&self, results: &[(WindowKey, WindowResult)]) -> PortResult<()> {
        let ctx = "storing results";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(RESULTS), ctx)?;
            for (key, result) in results {
                let stored = StoredResult {
                    key: *key,
                    result: result.clone(),
                };
                r!(
                    t.insert((key.length.ms(), key.start_ms), encode(&stored)?.as_slice()),
                    ctx
                )?;
            }
        }
        r!(txn.commit(), ctx)
    }

    async fn results(&self) -> PortResult<Vec<WindowResult>> {
        Ok(self
            .stored_results()?
            .into_iter()
            .map(|s| WindowResult {
                key: Some(s.key),
                ..s.result
            })
            .collect())
    }

    async fn closed_windows_from(
        &self,
        length: WindowLength,
        from_ms: i64,
    ) -> PortResult<Vec<WindowKey>> {
        let ctx = "reading closed windows";
        let len = length.ms();
        let mut out = Vec::new();
        for s in self.results_in(ctx, (len, from_ms)..=(len, i64::MAX), usize::MAX, false)? {
            if s.result.closed {
                out.push(s.key);
            }
        }
        Ok(out)
    }

    async fn recent_results(
        &self,
        length: WindowLength,
        limit: usize,
    ) -> PortResult<Vec<WindowResult>> {
        let len = length.ms();
        Ok(self
            .results_in(
                "reading results",
                (len, i64::MIN)..=(len, i64::MAX),
                limit,
                true,
            )?
            .into_iter()
            .map(|s| WindowResult {
                key: Some(s.key),
                ..s.result
            })
            .collect())
    }

    async fn put_network(&self, state: &NetworkState) -> PortResult<()> {
        let ctx = "storing the network state";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(NETWORK), ctx)?;
            r!(t.insert(NETWORK_KEY, encode(state)?.as_slice()), ctx)?;
        }
        r!(txn.commit(), ctx)
    }

    async fn network(&self) -> PortResult<Option<NetworkState>> {
        let ctx = "reading the network state";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(NETWORK), ctx)?;
        match r!(t.get(NETWORK_KEY), ctx)? {
            Some(v) => Ok(Some(decode(v.value(), "network state")?)),
            None => Ok(None),
        }
    }
}

impl EmbeddedStore {
    /// Creates or replaces many intersections in one transaction (loading a city).
    pub fn put_intersections(&self, xs: &[Intersection]) -> PortResult<()> {
        let ctx = "storing intersections";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut t = r!(txn.open_table(INTERSECTIONS), ctx)?;
            for x in xs {
                r!(t.insert(x.id.as_str(), to_json(x)?.as_slice()), ctx)?;
            }
        }
        r!(txn.commit(), ctx)
    }

    /// Up to `limit` stored results with keys in `range`, in key order or newest first.
    fn results_in(
        &self,
        ctx: &str,
        range: std::ops::RangeInclusive<(i64, i64)>,
        limit: usize,
        newest_first: bool,
    ) -> PortResult<Vec<StoredResult>> {
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(RESULTS), ctx)?;
        let entries = r!(t.range(range), ctx)?;
        let mut out = Vec::new();
        let mut keep = |e: Result<_, redb::StorageError>| -> PortResult<()> {
            let (_, v): (_, redb::AccessGuard<'_, &[u8]>) = r!(e, ctx)?;
            out.push(decode(v.value(), "result")?);
            Ok(())
        };
        if newest_first {
            for e in entries.rev().take(limit) {
                keep(e)?;
            }
        } else {
            for e in entries.take(limit) {
                keep(e)?;
            }
        }
        Ok(out)
    }

    fn stored_results(&self) -> PortResult<Vec<StoredResult>> {
        let ctx = "reading results";
        let txn = r!(self.db.begin_read(), ctx)?;
        let t = r!(txn.open_table(RESULTS), ctx)?;
        let mut out = Vec::new();
        for e in r!(t.iter(), ctx)? {
            let (k, v) = r!(e, ctx)?;
            let (len, _) = k.value();
            let s: StoredResult = decode(v.value(), "result")?;
            debug_assert_eq!(WindowLength::from_ms(len), Some(s.key.length));
            out.push(s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::SequenceNumber;

    fn meta(shard: &str, seq: u128) -> ShardMeta {
        ShardMeta {
            shard_id: shard.into(),
            applied_through: Some(SequenceNumber::from_u128(seq)),
            ..ShardMeta::default()
        }
    }

    #[tokio::test]
    async fn a_commit_survives_reopening_and_a_stale_commit_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.redb");
        {
            let s = EmbeddedStore::open(&path)?;
            s.commit(&Commit {
                expected: None,
                meta: meta("s0", 5),
                items: vec![],
            })
            .await?;
        }
        let s = EmbeddedStore::open(&path)?;
        let (m, _) = s.load_shard("s0", &[]).await?;
        assert_eq!(m, Some(meta("s0", 5)));
        let stale = Commit {
            expected: None,
            meta: meta("s0", 9),
            items: vec![],
        };
        assert!(matches!(
            s.commit(&stale).await,
            Err(PortError::Conflict(_))
        ));
        let (m, _) = s.load_shard("s0", &[]).await?;
        assert_eq!(m, Some(meta("s0", 5)));
        Ok(())
    }

    #[tokio::test]
    async fn results_are_read_by_length_newest_first_and_closed_from_a_start() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let s = EmbeddedStore::open(dir.path().join("t.redb"))?;
        let len = |ms| WindowLength::from_ms(ms).unwrap_or_else(|| panic!("length"));
        let (fifteen, hour) = (len(900_000), len(3_600_000));
        let t0 = 1_767_600_000_000;
        let keys = [
            fifteen.window_of(t0),
            fifteen.window_of(t0 + 900_000),
            fifteen.window_of(t0 + 1_800_000),
            hour.window_of(t0),
        ];
        let result = |k: WindowKey, closed| {
            traffic_core::query::WindowAccumulator::new(k).finish(closed, 10)
        };
        s.put_results(&[
            (keys[0], result(keys[0], true)),
            (keys[1], result(keys[1], true)),
            (keys[2], result(keys[2], false)),
            (keys[3], result(keys[3], false)),
        ])
        .await?;
        let starts = |rs: Vec<WindowResult>| rs.into_iter().map(|r| r.key).collect::<Vec<_>>();
        assert_eq!(
            starts(s.recent_results(fifteen, 2).await?),
            [Some(keys[2]), Some(keys[1])]
        );
        assert_eq!(starts(s.recent_results(hour, 9).await?), [Some(keys[3])]);
        assert!(s.recent_results(fifteen, 0).await?.is_empty());
        assert_eq!(
            s.closed_windows_from(fifteen, keys[1].start_ms).await?,
            [keys[1]]
        );
        assert_eq!(
            s.closed_windows_from(fifteen, i64::MIN).await?,
            [keys[0], keys[1]]
        );
        assert!(s.closed_windows_from(hour, i64::MIN).await?.is_empty());
        Ok(())
    }
}
