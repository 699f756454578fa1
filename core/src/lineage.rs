//! Which shards hold the global watermark back: shard lineage after a reshard, shards without
//! state, and idle shards.
//!
//! The global watermark is the smallest watermark of the shards that may still deliver
//! readings. Three things decide which those are:
//!
//! - **Finished shards.** A reshard (a split or a merge of shards, by an operator or by an
//!   on-demand stream scaling itself) closes the parent shards. Lambda's event source mapping
//!   (and ours) reads a parent to its end before it starts any of its children, so once a child
//!   of a closed shard has state of its own, the parent can send nothing more: it is *finished*
//!   and left out. A shard the stream no longer lists at all was closed and has passed the
//!   stream's retention: finished too.
//! - **Shards without state.** A listed shard that has not accepted a reading yet may still
//!   deliver anything the stream holds: it holds the watermark at its parent's watermark (all
//!   its parent's readings come before its own), or, without a parent with state, at the
//!   stream's start (nothing closes).
//! - **Idle shards** ([`idle_shards`]). A shard whose consumer is current with the stream and
//!   that has *accepted* no reading for `idle_timeout` (processing time) stops holding the
//!   watermark (as Flink's `withIdleness`); when it accepts again, its readings obey the
//!   lateness rule like any other. Records it could not use (malformed, unknown, future) do not
//!   keep it busy: a gateway under its own partition key, or one sensor stamped far ahead, would
//!   otherwise hold every window of the city open. When every shard is idle, what they
//!   delivered closes, up to the furthest idle shard's watermark.

use crate::ShardId;
use crate::pane::ShardMeta;
use std::collections::{BTreeMap, BTreeSet};

/// One shard as the stream describes it (Kinesis `ListShards`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// Its id.
    pub id: crate::ShardId,
    /// The shard it was split from or merged from.
    pub parent: Option<crate::ShardId>,
    /// The other shard it was merged from.
    pub adjacent_parent: Option<crate::ShardId>,
    /// Whether it is closed (has an ending sequence number): it takes no new records.
    pub closed: bool,
}

impl ShardInfo {
    /// Whether `id` is one of this shard's parents.
    pub fn is_child_of(&self, id: &ShardId) -> bool {
        self.parent.as_ref() == Some(id) || self.adjacent_parent.as_ref() == Some(id)
    }
}

/// The shards among `metas` that can accept nothing more, given the stream's `shards`: closed
/// with a child that has state, or no longer listed.
pub fn finished_shards(metas: &[ShardMeta], shards: &[ShardInfo]) -> BTreeSet<ShardId> {
    let with_state: BTreeSet<&ShardId> = metas.iter().map(|m| &m.shard_id).collect();
    metas
        .iter()
        .map(|m| &m.shard_id)
        .filter(|id| match shards.iter().find(|s| s.id == **id) {
            None => true,
            Some(s) => {
                s.closed
                    && shards
                        .iter()
                        .any(|c| c.is_child_of(id) && with_state.contains(&c.id))
            }
        })
        .cloned()
        .collect()
}

/// The global watermark: the smallest watermark of the shards that may still deliver readings
/// (see the module documentation). `shards` is the stream's shard list, when it has one;
/// without it only the shards with state count. `idle` are the shards found idle. `None` when
/// nothing may close.
pub fn global_watermark(
    metas: &[ShardMeta],
    shards: Option<&[ShardInfo]>,
    idle: &BTreeSet<ShardId>,
    allowed_lateness_ms: i64,
) -> Option<i64> {
    let by_id: BTreeMap<&ShardId, &ShardMeta> = metas.iter().map(|m| (&m.shard_id, m)).collect();
    let finished = shards
        .map(|s| finished_shards(metas, s))
        .unwrap_or_default();
    let mut counted: BTreeSet<&ShardId> = by_id.keys().copied().collect();
    if let Some(list) = shards {
        counted.extend(list.iter().map(|s| &s.id));
    }
    let own = |id: &ShardId| by_id.get(id).and_then(|m| m.watermark(allowed_lateness_ms));
    let mut global: Option<i64> = None;
    let mut any = false;
    for id in counted {
        if finished.contains(id) || idle.contains(id) {
            continue;
        }
        let w = own(id).or_else(|| {
            // No reading yet: held at its parents' watermarks, or at the stream's start.
            let info = shards?.iter().find(|s| s.id == *id)?;
            let parents: Vec<Option<i64>> = [&info.parent, &info.adjacent_parent]
                .into_iter()
                .flatten()
                .map(&own)
                .collect();
            if parents.is_empty() || parents.iter().any(Option::is_none) {
                None
            } else {
                parents.into_iter().flatten().min()
            }
        });
        let w = w?;
        any = true;
        global = Some(global.map_or(w, |g| g.min(w)));
    }
    if any {
        global
    } else {
        // Every shard is finished or idle (a city-wide outage, the end of a run): nothing
        // more is coming, so what was delivered closes, up to the furthest idle shard.
        idle.iter()
            .filter(|id| !finished.contains(*id))
            .filter_map(own)
            .max()
    }
}

/// What the merge knows of one shard's consumer in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardActivity {
    /// The shard.
    pub shard_id: crate::ShardId,
    /// Whether reading on from its checkpoint finds nothing (Kinesis: no records and
    /// `MillisBehindLatest` 0; locally: the log's tail reached).
    pub caught_up: bool,
    /// When the last record it applied arrived in the stream (processing time), whatever
    /// became of it, if any.
    pub last_arrival_ms: Option<i64>,
    /// When the last reading it accepted arrived in the stream (processing time), if any.
    pub last_accepted_ms: Option<i64>,
}

impl ShardActivity {
    /// Whether its consumer is current at `now_ms`: caught up, or it applied a record that
    /// arrived within `idle_timeout_ms` (a shard that keeps receiving is read behind a
    /// batching window, so it is seldom found caught up, yet it lags by less than that).
    pub fn current(&self, now_ms: i64, idle_timeout_ms: i64) -> bool {
        self.caught_up
            || self
                .last_arrival_ms
                .is_some_and(|a| now_ms.saturating_sub(a) < idle_timeout_ms)
    }
}

/// The shards that are idle at `now_ms`: current ([`ShardActivity::current`]) and without an
/// accepted reading for `idle_timeout_ms` (since the last accepted reading's arrival, or, for
/// a shard that never accepted one, since the merge first found it current), and the updated
/// record of when each current shard was first found so.
pub fn idle_shards(
    activity: &[ShardActivity],
    caught_up_since: &BTreeMap<ShardId, i64>,
    now_ms: i64,
    idle_timeout_ms: i64,
) -> (BTreeSet<ShardId>, BTreeMap<ShardId, i64>) {
    let mut idle = BTreeSet::new();
    let mut since = BTreeMap::new();
    for a in activity {
        if !a.current(now_ms, idle_timeout_ms) {
            continue;
        }
        let first = caught_up_since.get(&a.shard_id).copied().unwrap_or(now_ms);
        since.insert(a.shard_id.clone(), first);
        let quiet_since = a.last_accepted_ms.unwrap_or(first);
        if now_ms.saturating_sub(quiet_since) >= idle_timeout_ms {
            idle.insert(a.shard_id.clone());
        }
    }
    (idle, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, max_event_ms: Option<i64>) -> ShardMeta {
        ShardMeta {
            shard_id: id.into(),
            max_event_ms,
            ..ShardMeta::default()
        }
    }

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parents.first().map(|p| (*p).into()),
            adjacent_parent: parents.get(1).map(|p| (*p).into()),
            closed,
        }
    }

    const MIN: i64 = 60_000;

    fn none() -> BTreeSet<ShardId> {
        BTreeSet::new()
    }

    #[test]
    fn without_a_shard_list_the_slowest_shard_with_readings_sets_the_watermark() {
        let metas = [meta("a", Some(100 * MIN)), meta("b", Some(40 * MIN))];
        assert_eq!(
            global_watermark(&metas, None, &none(), 2 * MIN),
            Some(38 * MIN)
        );
        assert_eq!(global_watermark(&[], None, &none(), 2 * MIN), None);
    }

    #[test]
    fn a_shard_that_has_accepted_nothing_holds_the_watermark_at_the_streams_start() {
        let metas = [
            meta("a", Some(100 * MIN)),
            meta("b", Some(40 * MIN)),
            meta("c", None),
        ];
        assert_eq!(global_watermark(&metas, None, &none(), 2 * MIN), None);
        // Listed, no state at all: the same.
        let list = [
            shard("a", &[], false),
            shard("b", &[], false),
            shard("d", &[], false),
        ];
        assert_eq!(
            global_watermark(&metas[..2], Some(&list), &none(), 2 * MIN),
            None
        );
        // Unless it is idle.
        let idle = BTreeSet::from([ShardId::from("d")]);
        assert_eq!(
            global_watermark(&metas[..2], Some(&list), &idle, 2 * MIN),
            Some(38 * MIN)
        );
    }

    #[test]
    fn after_a_split_no_window_closes_until_every_child_has_delivered_past_it() {
        let lineage = [
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
        ];
        // The parent closed at minute 40; no child has read anything yet: the parent may
        // still have records to deliver, so it holds the watermark, and so do the children.
        let metas = vec![meta("p", Some(40 * MIN))];
        assert!(finished_shards(&metas, &lineage).is_empty());
        assert_eq!(
            global_watermark(&metas, Some(&lineage), &none(), 2 * MIN),
            Some(38 * MIN)
        );
        // c2 has state: the parent was read to its end and is finished; c1, without state, is
        // held at its parent's end (all of c1's readings come after the parent's).
        let metas = vec![meta("p", Some(40 * MIN)), meta("c2", Some(90 * MIN))];
        assert_eq!(
            finished_shards(&metas, &lineage),
            BTreeSet::from([ShardId::from("p")])
        );
        assert_eq!(
            global_watermark(&metas, Some(&lineage), &none(), 2 * MIN),
            Some(38 * MIN)
        );
        // Once c1 delivers, it counts with its own.
        let metas = vec![
            meta("p", Some(40 * MIN)),
            meta("c1", Some(70 * MIN)),
            meta("c2", Some(90 * MIN)),
        ];
        assert_eq!(
            global_watermark(&metas, Some(&lineage), &none(), 2 * MIN),
            Some(68 * MIN)
        );
    }

    #[test]
    fn both_parents_of_a_merged_shard_finish_when_the_child_has_state() {
        let lineage = [
            shard("a", &[], true),
            shard("b", &[], true),
            shard("ab", &["a", "b"], false),
        ];
        let metas = vec![
            meta("a", Some(10 * MIN)),
            meta("b", Some(20 * MIN)),
            meta("ab", Some(60 * MIN)),
        ];
        assert_eq!(
            finished_shards(&metas, &lineage),
            BTreeSet::from([ShardId::from("a"), ShardId::from("b")])
        );
        assert_eq!(
            global_watermark(&metas, Some(&lineage), &none(), 0),
            Some(60 * MIN)
        );
        // Before the child has state, it is held at the earlier of its parents.
        assert_eq!(
            global_watermark(&metas[..2], Some(&lineage), &none(), 0),
            Some(10 * MIN)
        );
    }

    #[test]
    fn an_open_shard_or_a_closed_one_whose_children_have_no_state_still_counts() {
        let lineage = [shard("p", &[], false), shard("c", &["p"], false)];
        let metas = vec![meta("p", Some(5 * MIN)), meta("c", Some(50 * MIN))];
        assert!(finished_shards(&metas, &lineage).is_empty());
        let lineage = [shard("p", &[], true), shard("c", &["p"], false)];
        let metas = vec![meta("p", Some(5 * MIN)), meta("x", Some(50 * MIN))];
        let finished = finished_shards(&metas, &lineage);
        assert!(!finished.contains("p"));
        // "x" is not listed: past the stream's retention.
        assert!(finished.contains("x"));
        assert_eq!(
            global_watermark(&metas, Some(&lineage), &none(), 0),
            Some(5 * MIN)
        );
    }

    #[test]
    fn when_every_shard_is_finished_nothing_closes_and_when_all_are_idle_what_they_sent_does() {
        let metas = vec![meta("gone", Some(50 * MIN))];
        assert_eq!(global_watermark(&metas, Some(&[]), &none(), 0), None);
        let idle = BTreeSet::from([ShardId::from("a"), ShardId::from("b")]);
        let metas = [meta("a", Some(MIN)), meta("b", Some(9 * MIN))];
        assert_eq!(global_watermark(&metas, None, &idle, 0), Some(9 * MIN));
    }

    #[test]
    fn a_shard_is_idle_once_caught_up_and_silent_for_the_timeout() {
        let a = |id: &str, caught_up, last| ShardActivity {
            shard_id: id.into(),
            caught_up,
            last_arrival_ms: last,
            last_accepted_ms: last,
        };
        let now = 100 * MIN;
        let activity = [
            a("lagging", false, Some(now - 10 * MIN)),
            a("quiet", true, Some(now - 10 * MIN)),
            a("recent", true, Some(now - MIN)),
            a("never", true, None),
        ];
        let (idle, since) = idle_shards(&activity, &BTreeMap::new(), now, 5 * MIN);
        assert_eq!(idle, BTreeSet::from([ShardId::from("quiet")]));
        assert_eq!(since.get("never"), Some(&now));
        assert!(!since.contains_key("lagging"));
        // Five minutes later the shard that never received anything is idle too.
        let (idle, _) = idle_shards(&activity, &since, now + 5 * MIN, 5 * MIN);
        assert!(idle.contains("never") && idle.contains("recent"));
    }

    #[test]
    fn a_shard_that_keeps_receiving_only_records_it_cannot_use_is_idle() {
        let start = 100 * MIN;
        // Rejected or future records arrive every second; its last accepted reading is ten
        // minutes old, or it never accepted one. It is read behind a batching window, so it
        // is never found caught up; a shard that lags by an hour is not current.
        let at = |now: i64| {
            let garbage = |id: &str, accepted| ShardActivity {
                shard_id: id.into(),
                caught_up: false,
                last_arrival_ms: Some(now - 1_000),
                last_accepted_ms: accepted,
            };
            let lagging = ShardActivity {
                shard_id: "lagging".into(),
                caught_up: false,
                last_arrival_ms: Some(now - 60 * MIN),
                last_accepted_ms: Some(now - 60 * MIN),
            };
            let busy = ShardActivity {
                last_accepted_ms: Some(now - 1_000),
                ..garbage("busy", None)
            };
            [
                garbage("gateway", Some(start - 10 * MIN)),
                garbage("never", None),
                lagging,
                busy,
            ]
        };
        let (idle, since) = idle_shards(&at(start), &BTreeMap::new(), start, 5 * MIN);
        assert_eq!(idle, BTreeSet::from([ShardId::from("gateway")]));
        let later = start + 5 * MIN;
        let (idle, _) = idle_shards(&at(later), &since, later, 5 * MIN);
        assert_eq!(
            idle,
            BTreeSet::from([ShardId::from("gateway"), ShardId::from("never")])
        );
    }
}
