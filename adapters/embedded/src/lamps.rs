//! [`LampStore`] on the `lamps`, `repair_orders` and alarm tables.
//!
//! Alarms are kept as DynamoDB keeps them (`docs/aws.md`): a log ordered by (event time, id);
//! a view of the open alarms in the same order, holding copies, so a page of open alarms reads
//! one entry per alarm it returns; the open alarms per (intersection, light), which is what
//! closing them reads; and the closed ones by expiry, deleted once their retention has passed
//! (at the next alarm write). Pages read exactly the entries they return (counted in
//! [`EmbeddedStore::alarm_entries_read`]); the open count is the open view's length, which
//! redb keeps in the table's header.

use crate::codec::{decode, encode, from_json, to_json};
use crate::{
    ALARM_ACKS, ALARM_DUE, ALARM_EXPIRY, ALARM_LAST, ALARM_LOG, ALARM_OPEN, ALARM_OPEN_BY_LIGHT,
    EmbeddedStore, LAMPS, REPAIRS,
};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::{AlarmId, IntersectionId, LampColour, LightIndex};
use traffic_ports::{
    Ack, AlarmEvent, AlarmEventKind, AlarmPage, AlarmQuery, AlarmRecord, Claim, CloseAlarms,
    LampStore, PortError, PortResult,
};

#[async_trait]
impl LampStore for EmbeddedStore {
    async fn lamp_states(
        &self,
        lights: &[(IntersectionId, LightIndex)],
    ) -> PortResult<BTreeMap<(IntersectionId, LightIndex), LightLamps>> {
        let ctx = "reading lamp states";
        let t = self.read_table(LAMPS, ctx)?;
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
        self.write_table(LAMPS, ctx, |t| {
            for ((id, l), s) in states {
                r!(
                    t.insert((id.as_str(), l.get() as u8), encode(s)?.as_slice()),
                    ctx
                )?;
            }
            Ok(())
        })
    }

    async fn record_alarm(&self, alarm: &Alarm) -> PortResult<AlarmRecord> {
        self.record(alarm, None)
    }

    async fn record_held_alarm(
        &self,
        alarm: &Alarm,
        held_until_ms: i64,
    ) -> PortResult<AlarmRecord> {
        self.record(alarm, Some(held_until_ms))
    }

    async fn mark_published(&self, alarm_id: &AlarmId) -> PortResult<()> {
        self.update_alarm(alarm_id, "marking an alarm published", |_, r| {
            r.published = true;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn due_alarms(&self, due_by_ms: i64, limit: usize) -> PortResult<Vec<AlarmRecord>> {
        self.read_due_alarms(due_by_ms, limit)
    }

    async fn claim_publication(
        &self,
        alarm_id: &AlarmId,
        now_ms: i64,
        until_ms: i64,
    ) -> PortResult<Claim> {
        self.claim(alarm_id, now_ms, until_ms)
    }

    async fn release_publication(&self, alarm_id: &AlarmId) -> PortResult<()> {
        self.release(alarm_id)
    }

    async fn last_published(
        &self,
        id: &IntersectionId,
        light: LightIndex,
        lamp: LampColour,
    ) -> PortResult<Option<i64>> {
        let ctx = "reading a lamp's last published alarm";
        let t = self.read_table(ALARM_LAST, ctx)?;
        let v = r!(t.get((id.as_str(), light.get() as u8, lamp.as_str())), ctx)?;
        Ok(v.map(|v| v.value()))
    }

    async fn ack_alarm(&self, alarm_id: &AlarmId, ack: &Ack) -> PortResult<AlarmRecord> {
        // Every acknowledgement is kept by its time too, for the archive's `alarm_events`.
        self.update_alarm(alarm_id, "acknowledging an alarm", |txn, r| {
            r.ack = Some(ack.clone());
            let ctx = "keeping an acknowledgement";
            let mut acks = r!(txn.open_table(ALARM_ACKS), ctx)?;
            let id = alarm_id.to_string();
            r!(
                acks.insert((ack.at_ms, id.as_str()), to_json(&*r)?.as_slice()),
                ctx
            )?;
            Ok(())
        })
        .await
    }

    async fn close_selected(
        &self,
        id: &IntersectionId,
        close: &CloseAlarms<'_>,
    ) -> PortResult<Vec<AlarmRecord>> {
        let CloseAlarms {
            light,
            select,
            closing,
            order_repair,
            why,
        } = *close;
        let ctx = "closing alarms";
        let txn = r!(self.write_txn(), ctx)?;
        let mut closed = Vec::new();
        {
            let mut by_light = r!(txn.open_table(ALARM_OPEN_BY_LIGHT), ctx)?;
            let (lo, hi) = match light {
                Some(l) => (l.get() as u8, l.get() as u8),
                None => (0, u8::MAX),
            };
            let mut keys: Vec<(u8, i64, String)> = Vec::new();
            // A key that holds no alarm id is none `select` takes.
            for e in r!(
                by_light.range(
                    (id.as_str(), lo, i64::MIN, "")..=(id.as_str(), hi, i64::MAX, "\u{10ffff}")
                ),
                ctx
            )? {
                let (k, _) = r!(e, ctx)?;
                let (_, l, ts, alarm_id) = k.value();
                if alarm_id.parse::<AlarmId>().is_ok_and(|a| select(&a)) {
                    keys.push((l, ts, alarm_id.to_owned()));
                }
            }
            let mut log = r!(txn.open_table(ALARM_LOG), ctx)?;
            let mut open = r!(txn.open_table(ALARM_OPEN), ctx)?;
            let mut expiry = r!(txn.open_table(ALARM_EXPIRY), ctx)?;
            for (l, ts, alarm_id) in keys {
                r!(
                    by_light.remove((id.as_str(), l, ts, alarm_id.as_str())),
                    ctx
                )?;
                let removed = r!(open.remove((ts, alarm_id.as_str())), ctx)?;
                let Some(v) = removed else { continue };
                let mut rec: AlarmRecord = from_json(v.value(), "alarm")?;
                drop(v);
                rec.repaired_at_ms = Some(closing.at_ms);
                rec.closed_why = why.map(str::to_owned);
                r!(
                    log.insert((ts, alarm_id.as_str()), to_json(&rec)?.as_slice()),
                    ctx
                )?;
                if rec.publication_settled() {
                    Self::settle(&txn, &rec, &alarm_id)?;
                }
                if let Some(at) = closing.expires_at_ms {
                    r!(expiry.insert((at, ts, alarm_id.as_str()), ()), ctx)?;
                }
                closed.push(rec);
            }
            if order_repair {
                let mut lights: std::collections::BTreeSet<u8> =
                    closed.iter().map(|r| r.alarm.light.get() as u8).collect();
                lights.extend(light.map(|l| l.get() as u8));
                let mut orders = r!(txn.open_table(REPAIRS), ctx)?;
                for l in lights {
                    r!(orders.insert((id.as_str(), l), 1), ctx)?;
                }
            }
        }
        sweep_expired(&txn, closing.at_ms)?;
        r!(txn.commit(), ctx)?;
        closed.sort_by_key(|r| r.alarm.id());
        Ok(closed)
    }

    async fn alarm_page(&self, q: &AlarmQuery) -> PortResult<AlarmPage> {
        let ctx = "reading a page of alarms";
        let after = q.after.as_ref().map(|a| (a.ts_ms(), a.to_string()));
        let txn = r!(self.db.begin_read(), ctx)?;
        let open = r!(txn.open_table(ALARM_OPEN), ctx)?;
        let open_count = r!(open.len(), ctx)?;
        let log;
        let t = if q.open_only {
            &open
        } else {
            log = r!(txn.open_table(ALARM_LOG), ctx)?;
            &log
        };
        let upper = match &after {
            Some((ts, id)) => Bound::Excluded((*ts, id.as_str())),
            None => Bound::Unbounded,
        };
        let mut alarms = Vec::with_capacity(q.limit.min(1024));
        let range = r!(t.range::<(i64, &str)>((Bound::Unbounded, upper)), ctx)?;
        for e in range.rev().take(q.limit) {
            let (_, v) = r!(e, ctx)?;
            self.alarm_reads.fetch_add(1, Ordering::Relaxed);
            alarms.push(from_json::<AlarmRecord>(v.value(), "alarm")?);
        }
        let next = if q.limit > 0 && alarms.len() == q.limit {
            alarms.last().map(|r| r.alarm.id())
        } else {
            None
        };
        Ok(AlarmPage {
            alarms,
            next,
            open: open_count,
        })
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
        self.read_all(ALARM_LOG, "listing alarms", |v| from_json(v, "alarm"))
    }

    /// Reads the whole log (kept in the process's file, a city's alarms of the retention) for
    /// raisings and closings, and the acknowledgements kept by time.
    async fn alarm_events(&self, from_ms: i64, to_ms: i64) -> PortResult<Vec<AlarmEvent>> {
        let log = self.alarms().await?;
        let mut events: Vec<AlarmEvent> = traffic_ports::alarm_events_of(&log, from_ms, to_ms)
            .into_iter()
            .filter(|e| !matches!(e.kind, AlarmEventKind::Acknowledged(_)))
            .collect();
        let ctx = "reading acknowledgements";
        let acks = self.read_table(ALARM_ACKS, ctx)?;
        for e in r!(acks.range((from_ms, "")..(to_ms, "")), ctx)? {
            let (k, v) = r!(e, ctx)?;
            let r: AlarmRecord = from_json(v.value(), "acknowledged alarm")?;
            if let Some(ack) = r.ack {
                events.push(AlarmEvent {
                    at_ms: k.value().0,
                    alarm: r.alarm,
                    held_down: r.held_down,
                    kind: AlarmEventKind::Acknowledged(ack),
                });
            }
        }
        traffic_ports::sort_alarm_events(&mut events);
        Ok(events)
    }
}

impl EmbeddedStore {
    /// Records an alarm (held down until `held_until_ms` if given) unless its id is recorded,
    /// and puts it among the alarms due; returns the stored record.
    fn record(&self, alarm: &Alarm, held_until_ms: Option<i64>) -> PortResult<AlarmRecord> {
        let ctx = "recording an alarm";
        let id = alarm.id().to_string();
        let key = (alarm.ts_ms, id.as_str());
        let txn = r!(self.write_txn(), ctx)?;
        let record = {
            let mut log = r!(txn.open_table(ALARM_LOG), ctx)?;
            let existing = logged_alarm(&log, key, ctx)?;
            match existing {
                Some(r) => r,
                None => {
                    let r = AlarmRecord::new(alarm, held_until_ms);
                    let json = to_json(&r)?;
                    let mut due = r!(txn.open_table(ALARM_DUE), ctx)?;
                    r!(due.insert((r.due_ms(), id.as_str()), ()), ctx)?;
                    r!(log.insert(key, json.as_slice()), ctx)?;
                    let mut open = r!(txn.open_table(ALARM_OPEN), ctx)?;
                    r!(open.insert(key, json.as_slice()), ctx)?;
                    let mut by_light = r!(txn.open_table(ALARM_OPEN_BY_LIGHT), ctx)?;
                    r!(
                        by_light.insert(
                            (
                                alarm.intersection_id.as_str(),
                                alarm.light.get() as u8,
                                alarm.ts_ms,
                                id.as_str()
                            ),
                            ()
                        ),
                        ctx
                    )?;
                    r
                }
            }
        };
        sweep_expired(&txn, alarm.ts_ms)?;
        r!(txn.commit(), ctx)?;
        Ok(record)
    }
}

impl EmbeddedStore {
    /// Changes a recorded alarm in the log and, while it is open, in the open view; a
    /// published one becomes its lamp's last published alarm.
    async fn update_alarm(
        &self,
        alarm_id: &AlarmId,
        ctx: &'static str,
        change: impl FnOnce(&redb::WriteTransaction, &mut AlarmRecord) -> PortResult<()>,
    ) -> PortResult<AlarmRecord> {
        let written = alarm_id.to_string();
        let key = (alarm_id.ts_ms(), written.as_str());
        let txn = r!(self.write_txn(), ctx)?;
        let rec = {
            let mut log = r!(txn.open_table(ALARM_LOG), ctx)?;
            let existing = logged_alarm(&log, key, ctx)?;
            let Some(mut rec) = existing else {
                return Err(PortError::NotFound(format!("alarm {alarm_id}")));
            };
            change(&txn, &mut rec)?;
            let json = to_json(&rec)?;
            r!(log.insert(key, json.as_slice()), ctx)?;
            let mut open = r!(txn.open_table(ALARM_OPEN), ctx)?;
            let is_open = r!(open.get(key), ctx)?.is_some();
            if is_open {
                r!(open.insert(key, json.as_slice()), ctx)?;
            }
            if rec.published {
                Self::settle(&txn, &rec, &written)?;
                let a = &rec.alarm;
                let mut last = r!(txn.open_table(ALARM_LAST), ctx)?;
                let k = (
                    a.intersection_id.as_str(),
                    a.light.get() as u8,
                    a.lamp.as_str(),
                );
                let newer = r!(last.get(k), ctx)?.is_none_or(|v| v.value() < a.ts_ms);
                if newer {
                    r!(last.insert(k, a.ts_ms), ctx)?;
                }
            }
            rec
        };
        r!(txn.commit(), ctx)?;
        Ok(rec)
    }
}

/// The record of the alarm at `key` (its time and id) in the alarm log, if there is one.
pub(crate) fn logged_alarm(
    log: &impl ReadableTable<(i64, &'static str), &'static [u8]>,
    key: (i64, &str),
    ctx: &str,
) -> PortResult<Option<AlarmRecord>> {
    match r!(log.get(key), ctx)? {
        Some(v) => from_json(v.value(), "alarm").map(Some),
        None => Ok(None),
    }
}

/// Deletes the closed alarms whose retention ended by `now_ms` from the log.
fn sweep_expired(txn: &redb::WriteTransaction, now_ms: i64) -> PortResult<()> {
    let ctx = "expiring closed alarms";
    let mut expiry = r!(txn.open_table(ALARM_EXPIRY), ctx)?;
    let mut due: Vec<(i64, i64, String)> = Vec::new();
    for e in r!(
        expiry.range((i64::MIN, i64::MIN, "")..(now_ms, i64::MIN, "")),
        ctx
    )? {
        let (k, _) = r!(e, ctx)?;
        let (at, ts, id) = k.value();
        due.push((at, ts, id.to_owned()));
    }
    if due.is_empty() {
        return Ok(());
    }
    let mut log = r!(txn.open_table(ALARM_LOG), ctx)?;
    for (at, ts, id) in &due {
        r!(log.remove((*ts, id.as_str())), ctx)?;
        r!(expiry.remove((*at, *ts, id.as_str())), ctx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::LampColour;
    use traffic_ports::Closing;

    fn id(s: &str) -> IntersectionId {
        IntersectionId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn light(l: i64) -> LightIndex {
        LightIndex::new(l).unwrap_or_else(|e| panic!("{e}"))
    }

    fn alarm(x: &str, l: i64, ts_ms: i64) -> Alarm {
        Alarm {
            intersection_id: id(x),
            light: light(l),
            lamp: LampColour::Red,
            ts_ms,
            position: None,
            silent: None,
        }
    }

    const T0: i64 = 1_767_600_000_000;

    fn store() -> anyhow::Result<(EmbeddedStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        Ok((EmbeddedStore::open_relaxed(dir.path().join("a.redb"))?, dir))
    }

    fn page(open_only: bool, limit: usize, after: Option<AlarmId>) -> AlarmQuery {
        AlarmQuery {
            open_only,
            limit,
            after,
        }
    }

    #[tokio::test]
    async fn a_page_of_alarms_reads_only_the_alarms_it_returns() -> anyhow::Result<()> {
        let (s, _dir) = store()?;
        // 2,000 alarms over 500 intersections, every other one then closed.
        for i in 0..2000_i64 {
            s.record_alarm(&alarm(&format!("I-{:04}", i % 500), i / 500, T0 + i * 1000))
                .await?;
        }
        for i in (0..500).step_by(2) {
            let x = id(&format!("I-{i:04}"));
            s.close_alarms(&x, None, &Closing::at(T0 + 3_000_000, 1000), false)
                .await?;
        }
        let before = s.alarm_entries_read();
        let first = s.alarm_page(&page(false, 10, None)).await?;
        assert_eq!(s.alarm_entries_read() - before, 10);
        assert_eq!(first.open, 1000);
        let ts: Vec<i64> = first.alarms.iter().map(|r| r.alarm.ts_ms).collect();
        assert_eq!(
            ts,
            (1990..2000)
                .rev()
                .map(|i| T0 + i * 1000)
                .collect::<Vec<_>>()
        );

        let before = s.alarm_entries_read();
        let second = s.alarm_page(&page(false, 10, first.next.clone())).await?;
        assert_eq!(s.alarm_entries_read() - before, 10);
        assert_eq!(second.alarms[0].alarm.ts_ms, T0 + 1989 * 1000);

        let before = s.alarm_entries_read();
        let open = s.alarm_page(&page(true, 25, None)).await?;
        assert_eq!(s.alarm_entries_read() - before, 25);
        assert!(open.alarms.iter().all(|r| r.repaired_at_ms.is_none()));
        // The newest alarm, I-0499 (odd, so open); the next open one is I-0497's.
        assert_eq!(open.alarms[0].alarm.intersection_id, id("I-0499"));
        assert_eq!(open.alarms[1].alarm.intersection_id, id("I-0497"));
        Ok(())
    }

    #[tokio::test]
    async fn paging_through_the_open_view_returns_each_open_alarm_once() -> anyhow::Result<()> {
        let (s, _dir) = store()?;
        for i in 0..37_i64 {
            s.record_alarm(&alarm(&format!("I-{i:04}"), 0, T0 + i))
                .await?;
        }
        s.close_alarms(&id("I-0003"), None, &Closing::at(T0 + 100, 1000), false)
            .await?;
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        while pages < 20 {
            let p = s.alarm_page(&page(true, 10, after)).await?;
            pages += 1;
            seen.extend(p.alarms.iter().map(|r| r.alarm.ts_ms));
            after = p.next;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(pages, 4);
        let expected: Vec<i64> = (0..37).rev().filter(|i| *i != 3).map(|i| T0 + i).collect();
        assert_eq!(seen, expected);
        Ok(())
    }

    #[tokio::test]
    async fn closing_an_intersections_alarms_leaves_the_others_open_and_orders_repairs()
    -> anyhow::Result<()> {
        let (s, _dir) = store()?;
        for (x, l, t) in [("I-1", 0, 1), ("I-1", 2, 2), ("I-2", 0, 3), ("I-10", 1, 4)] {
            s.record_alarm(&alarm(x, l, T0 + t)).await?;
        }
        let closed = s
            .close_alarms(&id("I-1"), None, &Closing::at(T0 + 10, 1000), true)
            .await?;
        assert_eq!(
            closed
                .iter()
                .map(|r| r.alarm.ts_ms - T0)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(closed.iter().all(|r| r.repaired_at_ms.is_some()));
        let open = s.alarm_page(&page(true, 10, None)).await?;
        assert_eq!(open.open, 2);
        assert_eq!(
            open.alarms
                .iter()
                .map(|r| r.alarm.ts_ms - T0)
                .collect::<Vec<_>>(),
            vec![4, 3]
        );
        let mut orders = s.take_repairs().await?;
        orders.sort();
        assert_eq!(orders, vec![(id("I-1"), light(0)), (id("I-1"), light(2))]);
        // Closing again closes nothing; the log still has all four.
        assert!(
            s.close_alarms(
                &id("I-1"),
                Some(light(0)),
                &Closing::at(T0 + 20, 1000),
                false
            )
            .await?
            .is_empty()
        );
        assert_eq!(s.alarms().await?.len(), 4);
        Ok(())
    }

    #[tokio::test]
    async fn a_closed_alarm_leaves_the_log_after_its_retention_and_an_open_one_stays()
    -> anyhow::Result<()> {
        let (s, _dir) = store()?;
        s.record_alarm(&alarm("I-1", 0, T0)).await?;
        s.record_alarm(&alarm("I-2", 0, T0 + 1)).await?;
        let day = 86_400_000;
        s.close_alarms(&id("I-1"), None, &Closing::at(T0 + 10, 90 * day), false)
            .await?;
        // A later alarm write, 89 days on: still kept.
        s.record_alarm(&alarm("I-3", 0, T0 + 89 * day)).await?;
        assert_eq!(s.alarms().await?.len(), 3);
        // 91 days on: the closed one is gone, the open ones stay.
        s.record_alarm(&alarm("I-4", 0, T0 + 91 * day)).await?;
        let left: Vec<String> = s
            .alarms()
            .await?
            .iter()
            .map(|r| r.alarm.intersection_id.to_string())
            .collect();
        assert_eq!(left, vec!["I-2", "I-3", "I-4"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_retried_alarm_is_recorded_once_and_keeps_its_published_flag() -> anyhow::Result<()> {
        let (s, _dir) = store()?;
        let a = alarm("I-1", 2, T0);
        assert!(!s.record_alarm(&a).await?.published);
        s.mark_published(&a.id()).await?;
        assert!(s.record_alarm(&a).await?.published);
        let open = s.alarm_page(&page(true, 10, None)).await?;
        assert_eq!(open.open, 1);
        assert!(open.alarms[0].published, "the open view follows the log");
        // (A string that is no alarm id does not reach the store: `AlarmId` refuses it.)
        assert!(matches!(
            s.mark_published(&"I-9#0#red#1".parse()?).await,
            Err(PortError::NotFound(_))
        ));
        Ok(())
    }
}
