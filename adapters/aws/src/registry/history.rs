//! The history of an intersection's timings: an item per change (`timings#<id>`), kept a
//! month past [`HISTORY`] windows, read newest first together with the intersection's last
//! change, which may not have reached the history yet (`timings.rs`).

use crate::items::{Item, Query, from_item, put_request, s, to_item};
use crate::{DynamoStore, Table};
use serde::{Deserialize, Serialize};
use traffic_core::IntersectionId;
use traffic_core::city::Phase;
use traffic_core::time::rfc3339_opt;
use traffic_core::window::WindowKey;
use traffic_ports::{ChangedBy, PortError, PortResult, TIMING_HISTORY as HISTORY, TimingChange};

/// The partition of the operators' edits made on the day of `at_ms` (`by_day.rs`).
fn edits_pk(at_ms: i64) -> String {
    format!("edits#{}", crate::by_day::day(at_ms))
}

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
    /// Epoch ms, stored as RFC 3339 text.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
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
            at: change.at_ms,
            operator: change.operator.clone(),
        }
    }
}

/// A history item that is an operator's edit, filed by the day of its time as well (with its
/// intersection), for [`traffic_ports::Registry::operator_edits`]; `None` for a retiming.
pub(crate) fn edit_filed(history: &Item) -> Option<Item> {
    let at_ms = traffic_core::time::parse_rfc3339_ms(s(history, "at")?)?;
    let id = s(history, "pk")?.strip_prefix("timings#")?.to_owned();
    let mut item = history.clone();
    item.insert(
        "intersection_id".into(),
        aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
    );
    Some(crate::by_day::filed(item, edits_pk, at_ms, &id))
}

/// A history item's change.
fn change_of(t: TimingItem) -> PortResult<TimingChange> {
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
        at_ms: t.at,
        operator: t.operator,
    })
}

/// When a retiming computed from window `from` may expire, epoch s.
fn history_expiry(from: &WindowKey) -> i64 {
    (from.start_ms + HISTORY_TTL_MS + HISTORY as i64 * from.length.ms()) / 1000
}

impl DynamoStore {
    /// Puts `change` into `id`'s history (an operator's edit filed by its day too).
    pub(super) async fn put_timing_change(
        &self,
        id: &IntersectionId,
        change: &TimingChange,
    ) -> PortResult<()> {
        let item = to_item("timing change", &TimingItem::of(id, change))?;
        let filed = edit_filed(&item);
        let requests = std::iter::once(item)
            .chain(filed)
            .map(put_request)
            .collect::<PortResult<Vec<_>>>()?;
        self.batch_write(Table::Registry, requests).await
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
            .map(|i| change_of(from_item::<TimingItem>("timing change", i)?))
            .collect::<PortResult<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    /// [`traffic_ports::Registry::operator_edits`]: the edits filed by day, one query per day.
    pub(super) async fn read_operator_edits(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<(IntersectionId, TimingChange)>> {
        let mut edits = Vec::new();
        for item in self.filed_between(edits_pk, from_ms, to_ms).await? {
            let id = s(&item, "intersection_id")
                .map(IntersectionId::parse_internal)
                .transpose()
                .map_err(|e| PortError::Corrupt(format!("an operator's edit: {e}")))?
                .ok_or_else(|| {
                    PortError::Corrupt("an operator's edit without its intersection".into())
                })?;
            edits.push((
                id,
                change_of(from_item::<TimingItem>("timing change", item)?)?,
            ));
        }
        Ok(traffic_ports::operator_edits_of(edits, from_ms, to_ms))
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
