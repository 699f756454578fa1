//! Which shard a record belongs to, as Kinesis routes it: the MD5 of the partition key, read
//! as a 128-bit big-endian integer (the *hash key*), falls in exactly one open shard's hash key
//! range (Kinesis Data Streams developer guide, "Partition key" and `HashKeyRange`).
//!
//! A producer may override that with an `ExplicitHashKey` and send a record to any shard. The
//! per-intersection state assumes that all of an intersection's readings travel through the
//! one shard its partition key maps to, so a record found on another shard is rejected
//! ([`HashKeyRange::admits`]); the functions learn their shards' ranges from `ListShards`.

use md5::{Digest, Md5};

/// The hash key Kinesis computes for `partition_key`: its MD5 as a big-endian `u128`.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// A shard's range of hash keys, both ends included (Kinesis `HashKeyRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashKeyRange {
    /// The lowest hash key of the shard.
    pub start: u128,
    /// The highest hash key of the shard.
    pub end: u128,
}

/// A hash key range that Kinesis described in a form that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a hash key range: {start:?}..={end:?}")]
pub struct BadRange {
    /// The starting hash key as given.
    pub start: String,
    /// The ending hash key as given.
    pub end: String,
}

impl HashKeyRange {
    /// The range from Kinesis' decimal strings (`StartingHashKey`, `EndingHashKey`).
    pub fn parse(start: &str, end: &str) -> Result<Self, BadRange> {
        let bad = || BadRange {
            start: start.to_owned(),
            end: end.to_owned(),
        };
        let s: u128 = start.trim().parse().map_err(|_| bad())?;
        let e: u128 = end.trim().parse().map_err(|_| bad())?;
        if s > e {
            return Err(bad());
        }
        Ok(Self { start: s, end: e })
    }

    /// Whether `hash` is in the range.
    pub fn contains(&self, hash: u128) -> bool {
        self.start <= hash && hash <= self.end
    }

    /// Whether a record put under `partition_key` (without an explicit hash key) lands on the
    /// shard of this range.
    pub fn admits(&self, partition_key: &str) -> bool {
        self.contains(hash_key(partition_key))
    }

    /// Shard `i` of `n` shards that split the hash key space evenly (as a new stream of `n`
    /// shards does, and as the in-process streams route).
    pub fn even(i: usize, n: usize) -> Self {
        if n <= 1 {
            return Self {
                start: 0,
                end: u128::MAX,
            };
        }
        let n = n as u128;
        let i = (i as u128).min(n - 1);
        let width = u128::MAX / n + 1;
        let start = i * width;
        let end = if i == n - 1 {
            u128::MAX
        } else {
            start + width - 1
        };
        Self { start, end }
    }
}

/// The shard, of `n` shards that split the hash key space evenly, that `partition_key` maps
/// to.
pub fn even_shard(partition_key: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let width = u128::MAX / n as u128 + 1;
    ((hash_key(partition_key) / width) as usize).min(n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_hash_key_is_the_md5_of_the_partition_key_read_big_endian() {
        assert_eq!(hash_key(""), 0xd41d_8cd9_8f00_b204_e980_0998_ecf8_427e);
        assert_eq!(hash_key("a"), 0x0cc1_75b9_c0f1_b6a8_31c3_99e2_6977_2661);
    }

    #[test]
    fn a_range_parses_from_kinesis_decimal_strings_and_refuses_nonsense() {
        let whole = HashKeyRange::parse("0", "340282366920938463463374607431768211455");
        assert_eq!(
            whole,
            Ok(HashKeyRange {
                start: 0,
                end: u128::MAX
            })
        );
        assert!(HashKeyRange::parse("5", "4").is_err());
        assert!(HashKeyRange::parse("x", "4").is_err());
        assert!(HashKeyRange::parse("0", "340282366920938463463374607431768211456").is_err());
    }

    #[test]
    fn two_even_shards_meet_at_half_the_hash_key_space() {
        let (a, b) = (HashKeyRange::even(0, 2), HashKeyRange::even(1, 2));
        assert_eq!(a.end + 1, b.start);
        assert_eq!(b.start, 1u128 << 127);
        assert_eq!((a.start, b.end), (0, u128::MAX));
    }

    proptest! {
        #[test]
        fn every_partition_key_is_admitted_by_exactly_its_own_even_shard(
            key in "[A-Za-z0-9_-]{1,24}",
            n in 1usize..64,
        ) {
            let own = even_shard(&key, n);
            let admitting: Vec<usize> =
                (0..n).filter(|&i| HashKeyRange::even(i, n).admits(&key)).collect();
            prop_assert_eq!(admitting, vec![own]);
        }

        #[test]
        fn even_shards_cover_the_hash_key_space_without_gaps_or_overlaps(n in 1usize..200) {
            let ranges: Vec<HashKeyRange> = (0..n).map(|i| HashKeyRange::even(i, n)).collect();
            prop_assert_eq!(ranges[0].start, 0);
            prop_assert_eq!(ranges[n - 1].end, u128::MAX);
            for w in ranges.windows(2) {
                prop_assert_eq!(w[0].end + 1, w[1].start);
            }
        }
    }
}
