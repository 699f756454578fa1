//! [`LampStore`] on the `lamps`, `alarms` and `repair_orders` tables.

use crate::codec::{decode, encode, from_json, to_json};
use crate::{ALARMS, EmbeddedStore, LAMPS, REPAIRS};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use std::collections::BTreeMap;
use traffic_core::lamps::{Alarm, LightLamps};
use traffic_core::{IntersectionId, LightIndex};
use traffic_ports::{AlarmRecord, LampStore, PortError, PortResult};

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
