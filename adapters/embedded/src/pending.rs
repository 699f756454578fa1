//! The alarms due for publication and their claims, on the `alarm_due` and `alarm_claims`
//! tables (`traffic_functions::publication` says how they are used).
//!
//! An alarm enters `alarm_due` when it is recorded (due at its event time, or at the end of its
//! hold-down) and leaves it when it is marked published, or when it is closed while held down;
//! a claim is an entry of `alarm_claims` that a write transaction checks and sets, redb's
//! transactions being serialised.

use crate::codec::from_json;
use crate::{ALARM_CLAIMS, ALARM_DUE, ALARM_LOG, EmbeddedStore};
use redb::{ReadableDatabase, ReadableTable};
use traffic_ports::{AlarmRecord, Claim, PortResult, alarm_ts_of_id};

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
            let Some(ts) = alarm_ts_of_id(id) else {
                continue;
            };
            if let Some(v) = r!(log.get((ts, id)), ctx)? {
                out.push(from_json(v.value(), "alarm")?);
            }
        }
        Ok(out)
    }

    /// [`traffic_ports::LampStore::claim_publication`].
    pub(crate) fn claim(&self, alarm_id: &str, now_ms: i64, until_ms: i64) -> PortResult<Claim> {
        let ctx = "claiming an alarm's publication";
        let Some(ts) = alarm_ts_of_id(alarm_id) else {
            return Ok(Claim::Settled);
        };
        let txn = r!(self.write_txn(), ctx)?;
        let claim = {
            let log = r!(txn.open_table(ALARM_LOG), ctx)?;
            let record: Option<AlarmRecord> = match r!(log.get((ts, alarm_id)), ctx)? {
                Some(v) => Some(from_json(v.value(), "alarm")?),
                None => None,
            };
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
    pub(crate) fn release(&self, alarm_id: &str) -> PortResult<()> {
        let ctx = "releasing an alarm's publication";
        let txn = r!(self.write_txn(), ctx)?;
        {
            let mut claims = r!(txn.open_table(ALARM_CLAIMS), ctx)?;
            r!(claims.remove(alarm_id), ctx)?;
        }
        r!(txn.commit(), ctx)
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
