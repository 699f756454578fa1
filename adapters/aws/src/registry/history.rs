//! The history of an intersection's timings: an item per change (`timings#<id>`), kept a
//! month past [`HISTORY`] windows, read newest first together with the intersection's last
//! change, which may not have reached the history yet (`timings.rs`).

use crate::items::{Item, Query, from_item, put_request, to_item};
use crate::{DynamoStore, Table};
use serde::{Deserialize, Serialize};
use traffic_core::IntersectionId;
use traffic_core::city::Phase;
use traffic_core::window::WindowKey;
use traffic_ports::{ChangedBy, PortError, PortResult, TIMING_HISTORY as HISTORY, TimingChange};

/// Retimings kept at least this long after their window, ms (then DynamoDB's TTL may delete
/// them; the newest 96 of an intersection retimed at least monthly are always there).
const HISTORY_TTL_MS: i64 = 30 * 86_400_000;

#[derive(Serialize, Deserialize)]
pub(crate) struct TimingItem {
    pk: String,
    sk: String,
    from: String,
    phases: Vec<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// Left out for a retiming (items from before it existed are retimings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<ChangedBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
}

impl TimingItem {
    pub(crate) fn of(id: &IntersectionId, change: &TimingChange) -> Self {
        let operator = change.by != ChangedBy::Retiming;
        Self {
            pk: format!("timings#{id}"),
            sk: change.history_key(),
            from: change.from.to_string(),
            phases: change.phases.clone(),
            expires_at: Some(history_expiry(&change.from)),
            by: operator.then_some(change.by),
            at: change.at.clone(),
            operator: change.operator.clone(),
        }
    }
}

/// When a retiming computed from window `from` may expire, epoch s.
fn history_expiry(from: &WindowKey) -> i64 {
    (from.start_ms + HISTORY_TTL_MS + HISTORY as i64 * from.length.ms()) / 1000
}

impl DynamoStore {
    /// Puts `change` into `id`'s history.
    pub(super) async fn put_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        let item = to_item("timing change", &TimingItem::of(id, change))?;
        self.batch_write(Table::Registry, vec![put_request(item)?])
            .await
    }

    /// The last [`HISTORY`] changes of `id`'s timings, oldest first.
    pub(super) async fn read_timing_history(
        &self,
        id: &IntersectionId,
    ) -> PortResult<Vec<TimingChange>> {
        let mut q = Query::partition(Table::Registry, format!("timings#{id}"));
        q.newest_first = Some(HISTORY as i32);
        let mut items = self.query(q).await?;
        // The intersection's last change, which a crash or a failure may have kept out of
        // the history so far (`timings.rs`).
        let last = self.intersection_record(id).await?;
        if let Some(last) = last.as_ref().and_then(super::timings::last_change_of) {
            let sk = |i: &Item| super::timings::history_sk(i).map(str::to_owned);
            if !items.iter().any(|i| sk(i) == sk(&last)) {
                items.push(last);
                items.sort_by_key(|i| std::cmp::Reverse(sk(i)));
                items.truncate(HISTORY);
            }
        }
        let mut out = items
            .into_iter()
            .map(|i| {
                let t = from_item::<TimingItem>("timing change", i)?;
                let from = t
                    .from
                    .parse()
                    .map_err(|e: traffic_core::window::WindowKeyError| {
                        PortError::Corrupt(format!("timing change: {e}"))
                    })?;
                Ok(TimingChange {
                    from,
                    phases: t.phases,
                    by: t.by.unwrap_or_default(),
                    at: t.at,
                    operator: t.operator,
                })
            })
            .collect::<PortResult<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retiming_expires_a_month_and_96_windows_after_its_window() {
        let from: WindowKey = "15m@2026-01-05T08:15:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let e = history_expiry(&from);
        let start = traffic_core::time::parse_rfc3339_ms("2026-01-05T08:15:00Z").unwrap_or(0);
        assert_eq!(e, (start + HISTORY_TTL_MS + 96 * 900_000) / 1000);
        // A window that is not one cannot reach the registry: it does not parse.
        assert!("nonsense".parse::<WindowKey>().is_err());
    }
}
