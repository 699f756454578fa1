//! Shard order across a reshard: a child starts only once its parents were read to their end,
//! so an intersection's readings are handled in order across a split or a merge.

use std::collections::{BTreeSet, HashSet};
use traffic_core::ShardId;
use traffic_core::lineage::ShardInfo;

/// The shards that may start now: not started yet, and every parent of theirs either read to
/// its end or no longer listed (past the stream's retention).
pub fn ready_shards(
    shards: &[ShardInfo],
    started: &BTreeSet<ShardId>,
    finished: &BTreeSet<ShardId>,
) -> Vec<ShardId> {
    let listed: HashSet<&ShardId> = shards.iter().map(|s| &s.id).collect();
    let parent_done = |p: &Option<ShardId>| match p {
        None => true,
        Some(p) => finished.contains(p) || !listed.contains(p),
    };
    shards
        .iter()
        .filter(|s| !started.contains(&s.id))
        .filter(|s| parent_done(&s.parent) && parent_done(&s.adjacent_parent))
        .map(|s| s.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            closed: false,
        }
    }

    fn set(v: &[&str]) -> BTreeSet<ShardId> {
        v.iter().map(|s| ShardId::from(*s)).collect()
    }

    #[test]
    fn children_wait_for_their_parents_to_be_read_to_the_end() {
        let shards = vec![
            shard("s0", None, None),
            shard("s1", None, None),
            shard("s2", Some("s0"), None),
            shard("s3", Some("s0"), None),
            shard("s4", Some("s1"), Some("s2")),
        ];
        assert_eq!(
            ready_shards(&shards, &set(&[]), &set(&[])),
            vec!["s0", "s1"]
        );
        let started = set(&["s0", "s1"]);
        assert!(ready_shards(&shards, &started, &set(&[])).is_empty());
        assert_eq!(
            ready_shards(&shards, &started, &set(&["s0"])),
            vec!["s2", "s3"]
        );
        let started = set(&["s0", "s1", "s2", "s3"]);
        assert!(ready_shards(&shards, &started, &set(&["s0", "s1"])).is_empty());
        assert_eq!(
            ready_shards(&shards, &started, &set(&["s0", "s1", "s2"])),
            vec!["s4"]
        );
        // A parent past retention (no longer listed) holds nothing back.
        assert_eq!(
            ready_shards(&shards[2..3], &set(&[]), &set(&[])),
            vec!["s2"]
        );
    }
}
