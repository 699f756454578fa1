//! Items filed by the UTC day and the time something happened (operators' edits, alarms'
//! closings and acknowledgements), so that what happened in a window is one `Query` per day
//! it spans: partition `<kind>#<YYYY-MM-DD>` (each kind's own key function, [`day`] of the
//! time), sort key `<time>#<what>` (`ord_i64`), kept a month (`expires_at`, the table's TTL).
//! The merge reads them to archive each closed window's changes
//! (`traffic_ports::OutputArchive::put_changes`).

use crate::items::{Item, Query, SortKey, ord_i64};
use crate::{DynamoStore, Table};
use aws_sdk_dynamodb::types::AttributeValue;
use traffic_core::time::format_rfc3339_ms;
use traffic_ports::PortResult;

/// How long such an item is kept after its time, ms: long enough for a merge stalled for
/// days to archive it.
const KEPT_MS: i64 = 30 * 86_400_000;

const DAY_MS: i64 = 86_400_000;

/// The UTC day of `at_ms`, `YYYY-MM-DD`: the end of a partition key.
pub(crate) fn day(at_ms: i64) -> String {
    format_rfc3339_ms(at_ms)[..10].to_owned()
}

/// The sort key of `what` at `at_ms`.
pub(crate) fn sk(at_ms: i64, what: &str) -> String {
    format!("{}#{what}", ord_i64(at_ms))
}

/// Files `item` as `what` at `at_ms` in the partition `pk_of` gives its day: its `pk`, `sk`
/// and `expires_at` set.
pub(crate) fn filed(mut item: Item, pk_of: fn(i64) -> String, at_ms: i64, what: &str) -> Item {
    item.insert("pk".into(), AttributeValue::S(pk_of(at_ms)));
    item.insert("sk".into(), AttributeValue::S(sk(at_ms, what)));
    let expires = at_ms.saturating_add(KEPT_MS).div_euclid(1000);
    item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));
    item
}

impl DynamoStore {
    /// The items filed in `pk_of`'s partitions whose time is in `[from_ms, to_ms)`, oldest
    /// first: one consistent query per day of the range.
    pub(crate) async fn filed_between(
        &self,
        pk_of: fn(i64) -> String,
        from_ms: i64,
        to_ms: i64,
    ) -> PortResult<Vec<Item>> {
        let mut out = Vec::new();
        if to_ms <= from_ms {
            return Ok(out);
        }
        let mut day = from_ms.div_euclid(DAY_MS) * DAY_MS;
        while day < to_ms {
            // `<to>` sorts before every `<to>#…`, so the range ends before `to_ms`.
            let q = Query::partition(Table::Registry, pk_of(day))
                .sk(SortKey::Between(ord_i64(from_ms), ord_i64(to_ms)));
            out.extend(self.query(q).await?);
            day += DAY_MS;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_filed_under_its_utc_day_and_sorts_by_its_time() {
        // 2026-01-05T23:59:59.999Z and the next millisecond.
        let t = 1_767_657_599_999_i64;
        assert_eq!(day(t), "2026-01-05");
        assert_eq!(day(t + 1), "2026-01-06");
        assert!(sk(t, "I-0002") < sk(t + 1, "I-0001"));
        let item = filed(Item::new(), |t| format!("k#{}", day(t)), t, "I-0001");
        assert_eq!(
            item.get("pk"),
            Some(&AttributeValue::S("k#2026-01-05".into()))
        );
        assert_eq!(
            item.get("expires_at"),
            Some(&AttributeValue::N(((t + KEPT_MS) / 1000).to_string()))
        );
    }
}
