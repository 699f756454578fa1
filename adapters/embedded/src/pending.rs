//! The alarms due for publication and their claims, on the `alarm_due` and `alarm_claims`
//! tables (`traffic_functions::publication` says how they are used).
//!
//! An alarm enters `alarm_due` when it is recorded (due at its event time, or at the end of its
//! hold-down) and leaves it when it is marked published, or when it is closed while held down;
//! a claim is an entry of `alarm_claims` that a write transaction checks and sets, redb's
//! transactions being serialised.

use crate::codec::from_json;
use crate::lamps::logged_alarm;
use crate::{ALARM_CLAIMS, ALARM_DUE, ALARM_LOG, EmbeddedStore};
use redb::{ReadableDatabase, ReadableTable};
use traffic_core::AlarmId;
use traffic_ports::{AlarmRecord, Claim, PortResult};

impl EmbeddedStore {
    /// [`traffic_ports::LampStore::due_alarms`].
    pub(crate) fn read_due_alarms(
        &self,
        due_by_ms: i64,
        limit: usize,
    ) -> PortResult<Vec<AlarmRecord>> {
        let ctx = "reading the alarms due";
        let txn = r!(self.db.begin_read(), ctx)?;
        let due = r!(txn.open_table(ALARM_DUE), ctx)?;
        let log = r!(txn.open_table(ALARM_LOG), ctx)?;
        let mut out = Vec::new();
        for e in r!(due.range((i64::MIN, "")..=(due_by_ms, "\u{10ffff}")), ctx)?.take(limit) {
            let (k, _) = r!(e, ctx)?;
            let (_, id) = k.value();
            let Ok(alarm_id) = id.parse::<AlarmId>() else {
                continue;
            };
            if let Some(v) = r!(log.get((alarm_id.ts_ms(), id)), ctx)? {
                out.push(from_json(v.value(), "alarm")?);
            }
        }
        Ok(out)
    }

    /// [`traffic_ports::LampStore::claim_publication`].
    pub(crate) fn claim(
        &self,
        alarm_id: &AlarmId,
        now_ms: i64,
        until_ms: i64,
    ) -> PortResult<Claim> {
        let ctx = "claiming an alarm's publication";
        let ts = alarm_id.ts_ms();
        let alarm_id = alarm_id.to_string();
        let alarm_id = alarm_id.as_str();
        let txn = r!(self.write_txn(), ctx)?;
        let claim = {
            let log = r!(txn.open_table(ALARM_LOG), ctx)?;
            let record = logged_alarm(&log, (ts, alarm_id), ctx)?;
            let mut claims = r!(txn.open_table(ALARM_CLAIMS), ctx)?;
            match record {
                None => Claim::Settled,
                Some(r) if r.publication_settled() => {
                    let mut due = r!(txn.open_table(ALARM_DUE), ctx)?;
                    r!(due.remove((r.due_ms(), alarm_id)), ctx)?;
                    r!(claims.remove(alarm_id), ctx)?;
                    Claim::Settled
                }
                Some(r) => {
                    let held = r!(claims.get(alarm_id), ctx)?.map(|v| v.value());
                    if held.is_some_and(|until| until > now_ms) {
                        Claim::Taken
                    } else {
                        r!(claims.insert(alarm_id, until_ms), ctx)?;
                        Claim::Mine(Box::new(r))
                    }
                }
            }
        };
        r!(txn.commit(), ctx)?;
        Ok(claim)
    }

    /// [`traffic_ports::LampStore::release_publication`].
    pub(crate) fn release(&self, alarm_id: &AlarmId) -> PortResult<()> {
        let ctx = "releasing an alarm's publication";
        let alarm_id = alarm_id.to_string();
        self.write_table(ALARM_CLAIMS, ctx, |claims| {
            r!(claims.remove(alarm_id.as_str()), ctx)?;
            Ok(())
        })
    }

    /// Takes a settled alarm out of the alarms due (and its claim), inside `txn`.
    pub(crate) fn settle(
        txn: &redb::WriteTransaction,
        record: &AlarmRecord,
        alarm_id: &str,
    ) -> PortResult<()> {
        let ctx = "settling an alarm's publication";
        let mut due = r!(txn.open_table(ALARM_DUE), ctx)?;
        r!(due.remove((record.due_ms(), alarm_id)), ctx)?;
        let mut claims = r!(txn.open_table(ALARM_CLAIMS), ctx)?;
        r!(claims.remove(alarm_id), ctx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic_core::lamps::Alarm;
    use traffic_core::{IntersectionId, LampColour, LightIndex};
    use traffic_ports::{Closing, LampStore};

    const T0: i64 = 1_767_600_000_000;

    fn alarm(light: i64, ts_ms: i64) -> Alarm {
        Alarm {
            intersection_id: IntersectionId::parse("I-1").unwrap_or_else(|e| panic!("{e}")),
            light: LightIndex::new(light).unwrap_or_else(|e| panic!("{e}")),
            lamp: LampColour::Red,
            ts_ms,
            position: None,
            silent: None,
        }
    }

    #[tokio::test]
    async fn a_publication_is_claimed_by_one_caller_until_released_expired_or_published()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = EmbeddedStore::open_relaxed(dir.path().join("p.redb"))?;
        let a = alarm(0, T0);
        s.record_alarm(&a).await?;
        let id = a.id();
        assert!(matches!(s.claim(&id, 0, 100)?, Claim::Mine(_)));
        assert_eq!(s.claim(&id, 50, 150)?, Claim::Taken, "claimed");
        assert!(matches!(s.claim(&id, 100, 200)?, Claim::Mine(_)), "expired");
        s.release(&id)?;
        assert!(
            matches!(s.claim(&id, 101, 300)?, Claim::Mine(_)),
            "released"
        );
        s.mark_published(&id).await?;
        assert_eq!(s.claim(&id, 400, 500)?, Claim::Settled, "published");
        assert!(s.due_alarms(i64::MAX, 10).await?.is_empty());

        // Held down until T0 + 10 min: not due before; closed inside it: settled, never due.
        let held = alarm(1, T0 + 1000);
        s.record_held_alarm(&held, T0 + 600_000).await?;
        assert!(s.due_alarms(T0 + 599_999, 10).await?.is_empty());
        assert_eq!(s.due_alarms(T0 + 600_000, 10).await?.len(), 1);
        let light = held.light;
        s.close_alarms(
            &held.intersection_id,
            Some(light),
            &Closing::at(T0 + 2000, 1000),
            false,
        )
        .await?;
        assert!(s.due_alarms(i64::MAX, 10).await?.is_empty());
        assert_eq!(s.claim(&held.id(), 0, 1)?, Claim::Settled);
        Ok(())
    }
}
