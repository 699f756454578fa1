//! Stored state in the shapes earlier versions wrote, read back into today's types.
//!
//! State is kept in postcard, which writes a struct's fields in order without names: a field
//! added at the end makes older bytes end early. The adapters decode today's shape first and,
//! when that fails, the older one here.

use crate::pane::{Counters, DeltaRef, ShardMeta};
use crate::sequence::SequenceNumber;
use serde::Deserialize;

/// A [`ShardMeta`] as stored before it carried [`ShardMeta::last_accepted_ms`].
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct ShardMetaV1 {
    shard_id: crate::ShardId,
    applied_through: Option<SequenceNumber>,
    max_event_ms: Option<i64>,
    last_arrival_ms: Option<i64>,
    counters: Counters,
    commits: u64,
    deltas: Vec<DeltaRef>,
}

impl From<ShardMetaV1> for ShardMeta {
    /// Without a record of its last accepted reading, the last record applied stands in for it
    /// (the rule that version judged idleness by), until the shard accepts a reading.
    fn from(m: ShardMetaV1) -> Self {
        ShardMeta {
            shard_id: m.shard_id,
            applied_through: m.applied_through,
            max_event_ms: m.max_event_ms,
            last_arrival_ms: m.last_arrival_ms,
            counters: m.counters,
            commits: m.commits,
            deltas: m.deltas,
            last_accepted_ms: m.last_arrival_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meta_stored_before_it_knew_its_last_accepted_reading_reads_back() {
        // The bytes that version wrote.
        let old = ShardMetaV1 {
            shard_id: "s".into(),
            applied_through: Some(SequenceNumber::from_u128(7)),
            max_event_ms: Some(5),
            last_arrival_ms: Some(9),
            counters: Counters::default(),
            commits: 2,
            deltas: vec![],
        };
        let bytes = postcard::to_allocvec(&old).unwrap_or_else(|e| panic!("{e}"));
        assert!(postcard::from_bytes::<ShardMeta>(&bytes).is_err());
        let v1: ShardMetaV1 = postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let m = ShardMeta::from(v1);
        assert_eq!((m.commits, m.last_accepted_ms), (2, Some(9)));
        // Today's shape reads back as itself.
        let now = postcard::to_allocvec(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(postcard::from_bytes::<ShardMeta>(&now).ok(), Some(m));
    }
}
