//! Shard lineage, and which shards hold the global watermark back.
//!
//! The global watermark is the smallest watermark of the shards that have accepted readings.
//! A reshard (a split or a merge of shards, by an operator or by an on-demand stream scaling
//! itself) closes the parent shards: their watermarks stop where their last reading left them,
//! and would hold every window open for ever. Lambda's event source mapping (and
//! `traffic_aws::esm`) reads a parent to its end before it starts any of its children, so once
//! a child of a closed shard has state of its own, the parent can send nothing more: it is
//! *finished* and left out of the minimum. A shard the stream no longer lists at all was closed
//! and has passed the stream's retention: finished too.

use crate::pane::ShardMeta;
use std::collections::BTreeSet;

/// One shard as the stream describes it (Kinesis `ListShards`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// Its id.
    pub id: String,
    /// The shard it was split from or merged from.
    pub parent: Option<String>,
    /// The other shard it was merged from.
    pub adjacent_parent: Option<String>,
    /// Whether it is closed (has an ending sequence number): it takes no new records.
    pub closed: bool,
}

impl ShardInfo {
    /// Whether `id` is one of this shard's parents.
    pub fn is_child_of(&self, id: &str) -> bool {
        self.parent.as_deref() == Some(id) || self.adjacent_parent.as_deref() == Some(id)
    }
}

/// The shards among `metas` that can accept nothing more, given the stream's `shards`: closed
/// with a child that has state, or no longer listed.
pub fn finished_shards(metas: &[ShardMeta], shards: &[ShardInfo]) -> BTreeSet<String> {
    let with_state: BTreeSet<&str> = metas.iter().map(|m| m.shard_id.as_str()).collect();
    metas
        .iter()
        .map(|m| m.shard_id.as_str())
        .filter(|id| match shards.iter().find(|s| s.id == *id) {
            None => true,
            Some(s) => {
                s.closed
                    && shards
                        .iter()
                        .any(|c| c.is_child_of(id) && with_state.contains(c.id.as_str()))
            }
        })
        .map(str::to_owned)
        .collect()
}

/// The global watermark: the smallest watermark of the shards that have accepted readings and
/// are not `finished` ([`finished_shards`], or none when the stream cannot reshard).
pub fn global_watermark(
    metas: &[ShardMeta],
    finished: &BTreeSet<String>,
    allowed_lateness_ms: i64,
) -> Option<i64> {
    metas
        .iter()
        .filter(|m| !finished.contains(&m.shard_id))
        .filter_map(|m| m.watermark(allowed_lateness_ms))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, max_event_ms: Option<i64>) -> ShardMeta {
        ShardMeta {
            shard_id: id.to_owned(),
            max_event_ms,
            ..ShardMeta::default()
        }
    }

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.to_owned(),
            parent: parents.first().map(|p| (*p).to_owned()),
            adjacent_parent: parents.get(1).map(|p| (*p).to_owned()),
            closed,
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn without_lineage_the_slowest_shard_with_readings_sets_the_watermark() {
        let metas = [
            meta("a", Some(100 * MIN)),
            meta("b", Some(40 * MIN)),
            meta("c", None),
        ];
        assert_eq!(
            global_watermark(&metas, &BTreeSet::new(), 2 * MIN),
            Some(38 * MIN)
        );
        assert_eq!(global_watermark(&[], &BTreeSet::new(), 2 * MIN), None);
    }

    #[test]
    fn a_split_parent_stops_holding_the_watermark_once_a_child_has_state() {
        let lineage = [
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
        ];
        // The parent closed at minute 40; no child has read anything yet: it may still have
        // records to deliver, so it holds the watermark.
        let metas = vec![meta("p", Some(40 * MIN))];
        assert!(finished_shards(&metas, &lineage).is_empty());
        assert_eq!(
            global_watermark(&metas, &finished_shards(&metas, &lineage), 2 * MIN),
            Some(38 * MIN)
        );
        // One child has state: the parent was read to its end.
        let metas = vec![meta("p", Some(40 * MIN)), meta("c2", Some(90 * MIN))];
        assert_eq!(
            finished_shards(&metas, &lineage),
            BTreeSet::from(["p".to_owned()])
        );
        assert_eq!(
            global_watermark(&metas, &finished_shards(&metas, &lineage), 2 * MIN),
            Some(88 * MIN)
        );
        // Without the lineage, the frozen parent holds everything back.
        assert_eq!(
            global_watermark(&metas, &BTreeSet::new(), 2 * MIN),
            Some(38 * MIN)
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
            BTreeSet::from(["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            global_watermark(&metas, &finished_shards(&metas, &lineage), 0),
            Some(60 * MIN)
        );
    }

    #[test]
    fn an_open_shard_or_a_closed_one_whose_children_have_no_state_still_counts() {
        // An open shard is never finished, even if a shard names it as parent (not possible on
        // Kinesis, but the rule does not depend on it).
        let lineage = [shard("p", &[], false), shard("c", &["p"], false)];
        let metas = vec![meta("p", Some(5 * MIN)), meta("c", Some(50 * MIN))];
        assert!(finished_shards(&metas, &lineage).is_empty());
        // A closed shard whose children are listed but idle.
        let lineage = [shard("p", &[], true), shard("c", &["p"], false)];
        let metas = vec![meta("p", Some(5 * MIN)), meta("x", Some(50 * MIN))];
        let finished = finished_shards(&metas, &lineage);
        assert!(!finished.contains("p"));
        // "x" is not listed: past the stream's retention.
        assert!(finished.contains("x"));
        assert_eq!(
            global_watermark(&metas, &finished_shards(&metas, &lineage), 0),
            Some(5 * MIN)
        );
    }

    #[test]
    fn when_every_shard_is_finished_nothing_closes() {
        let metas = vec![meta("gone", Some(50 * MIN))];
        assert_eq!(
            global_watermark(&metas, &finished_shards(&metas, &[]), 0),
            None
        );
    }
}
