//! Medians of vehicle counts: exact while the values are few, t-digests beyond.
//!
//! A [`VehicleDigest`] keeps every distinct value with its count for as long as there are at
//! most `size` distinct values. Vehicle counts are small integers (one light's count over one
//! period), so in practice a digest of one intersection, or of a whole city over a day, stays
//! exact: its median is *the* median, merges are exactly associative and commutative (any merge
//! order, any rollup tree gives the same answer), and the stored form is a short list of
//! (value, count) pairs. Past `size` distinct values (continuous data, or a faulty sensor
//! spraying counts) it turns into a t-digest of compression `size` (Dunning & Ertl, "Computing
//! extremely accurate quantiles using t-digests", 2019, on the `tdigest` crate) and the median
//! becomes an estimate within [`MEDIAN_RANK_BOUND`] of rank (checked by the tests below and
//! measured in `docs/medians.md` with `examples/digest_error.rs`).
//!
//! Merges never mutate their inputs. The stored form ([`DigestState`]) round-trips bit for bit.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use tdigest::{Centroid, TDigest};

/// Default size: at most this many distinct values are kept exactly, and at most this many
/// centroids once the digest is approximate (`TRAFFIC_DIGEST_SIZE`).
pub const DEFAULT_DIGEST_SIZE: usize = 200;

/// Values an approximate digest buffers before it compresses them into centroids.
const PENDING_LIMIT: usize = 256;

/// The rank error ([`rank_error`]) an approximate median stays within (checked by tests).
pub const MEDIAN_RANK_BOUND: f64 = 0.01;

/// How far `estimate` is from the median of `sorted`, as a fraction of rank.
///
/// An estimate between two adjacent sample values `a < estimate < b` (a t-digest interpolates
/// between centroids) is credited with the ranks of both, from the first `a` to the last `b`;
/// the error is 0 when that interval contains one half, else its distance from one half.
/// On continuous data this is the plain rank error; on integer counts it does not punish an
/// estimate of 29.6 where the median is 29 or 30.
pub fn rank_error(sorted: &[f64], estimate: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let le = sorted.partition_point(|v| *v <= estimate);
    let a = if le > 0 { sorted[le - 1] } else { estimate };
    let ge = sorted.partition_point(|v| *v < estimate);
    let b = if ge < n { sorted[ge] } else { estimate };
    let below = sorted.partition_point(|v| *v < a) as f64 / n as f64;
    let through = sorted.partition_point(|v| *v <= b) as f64 / n as f64;
    if (below..=through).contains(&0.5) {
        0.0
    } else {
        (below - 0.5).abs().min((through - 0.5).abs())
    }
}

/// The values of a digest.
#[derive(Clone, Debug, PartialEq)]
enum Repr {
    /// Distinct values ascending (by `total_cmp`), each with how many times it was seen.
    Exact(Vec<(f64, u64)>),
    /// A t-digest and values pushed since its last compression.
    Approx { digest: TDigest, pending: Vec<f64> },
}

/// A median-capable summary of vehicle counts (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct VehicleDigest {
    size: usize,
    repr: Repr,
}

/// The stored form of a [`VehicleDigest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DigestState {
    /// Exact, every value a non-negative integer below 2³² (vehicle counts): the compact form.
    Counts {
        /// Size (see [`VehicleDigest::new`]).
        size: u32,
        /// (value, count), ascending by value.
        values: Vec<(u32, u64)>,
    },
    /// Exact, any finite values.
    Exact {
        /// Size.
        size: u32,
        /// (value, count), ascending by value.
        values: Vec<(f64, u64)>,
    },
    /// A t-digest.
    Approx {
        /// Compression (max centroids).
        size: u32,
        /// Number of values in the centroids.
        count: u64,
        /// Sum of those values.
        sum: f64,
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
        /// Centroids as (mean, weight), ascending by mean.
        centroids: Vec<(f64, u64)>,
        /// Values added since the last compression (not in `count` or the centroids).
        pending: Vec<f64>,
    },
}

impl Default for VehicleDigest {
    fn default() -> Self {
        Self::new(DEFAULT_DIGEST_SIZE)
    }
}

/// Adds `count` of `v` to sorted distinct `values`.
fn insert(values: &mut Vec<(f64, u64)>, v: f64, count: u64) {
    match values.binary_search_by(|(x, _)| x.total_cmp(&v)) {
        Ok(i) => values[i].1 += count,
        Err(i) => values.insert(i, (v, count)),
    }
}

/// A t-digest of compression `size` holding `values` (distinct, ascending, with counts).
fn tdigest_of(values: &[(f64, u64)], size: usize) -> TDigest {
    if values.is_empty() {
        return TDigest::new_with_size(size);
    }
    let count: u64 = values.iter().map(|(_, c)| c).sum();
    let sum: f64 = values.iter().map(|(v, c)| v * *c as f64).sum();
    let centroids = values
        .iter()
        .map(|(v, c)| Centroid::new(*v, *c as f64))
        .collect();
    let min = values.first().map(|(v, _)| *v);
    let max = values.last().map(|(v, _)| *v);
    // A digest with more centroids than its size is compressed by merging it (alone).
    TDigest::merge_digests(vec![TDigest::new(
        centroids,
        sum,
        count as f64,
        max,
        min,
        size,
    )])
}

impl VehicleDigest {
    /// An empty digest of size `size` (at least 1): exact up to that many distinct values, a
    /// t-digest of that compression beyond.
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            repr: Repr::Exact(Vec::new()),
        }
    }

    /// Adds one value (non-finite values are ignored).
    pub fn push(&mut self, v: f64) {
        self.push_n(v, 1);
    }

    /// Adds `count` times the value `v` (non-finite values are ignored).
    pub fn push_n(&mut self, v: f64, count: u64) {
        if !v.is_finite() || count == 0 {
            return;
        }
        match &mut self.repr {
            Repr::Exact(values) => {
                insert(values, v, count);
                if values.len() > self.size {
                    let digest = tdigest_of(values, self.size);
                    self.repr = Repr::Approx {
                        digest,
                        pending: Vec::new(),
                    };
                }
            }
            Repr::Approx { digest, pending } => {
                if count == 1 {
                    pending.push(v);
                } else {
                    let one = TDigest::new(
                        vec![Centroid::new(v, count as f64)],
                        v * count as f64,
                        count as f64,
                        Some(v),
                        Some(v),
                        self.size,
                    );
                    *digest = TDigest::merge_digests(vec![digest.clone(), one]);
                }
                if pending.len() >= PENDING_LIMIT {
                    self.flush();
                }
            }
        }
    }

    /// Compresses buffered values into centroids (nothing to do while exact).
    pub fn flush(&mut self) {
        if let Repr::Approx { digest, pending } = &mut self.repr
            && !pending.is_empty()
        {
            let mut values = std::mem::take(pending);
            values.sort_unstable_by(f64::total_cmp);
            *digest = digest.merge_sorted(values);
        }
    }

    /// Whether the digest still holds its values exactly.
    pub fn is_exact(&self) -> bool {
        matches!(self.repr, Repr::Exact(_))
    }

    /// The size it was made with.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A flushed t-digest of the values (for merging with approximate digests).
    fn to_tdigest(&self) -> TDigest {
        match &self.repr {
            Repr::Exact(values) => tdigest_of(values, self.size),
            Repr::Approx { digest, pending } => {
                if pending.is_empty() {
                    digest.clone()
                } else {
                    let mut values = pending.clone();
                    values.sort_unstable_by(f64::total_cmp);
                    digest.merge_sorted(values)
                }
            }
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        match &self.repr {
            Repr::Exact(values) => values.iter().map(|(_, c)| c).sum(),
            Repr::Approx { digest, pending } => digest.count() as u64 + pending.len() as u64,
        }
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Entries held: distinct values while exact, centroids once approximate.
    pub fn centroids(&self) -> usize {
        match &self.repr {
            Repr::Exact(values) => values.len(),
            Repr::Approx { digest, .. } => digest.centroids().len(),
        }
    }

    /// The median (mean of the two middle values for an even count) while exact, the
    /// t-digest's estimate once approximate; `None` when empty.
    pub fn median(&self) -> Option<f64> {
        match &self.repr {
            Repr::Exact(values) => exact_median_of_counts(values),
            Repr::Approx { .. } => self.to_tdigest().estimate_quantile(0.5),
        }
    }

    /// A new digest that merges all of `digests` (of the largest size among them); the inputs
    /// do not change. Exact digests whose union has at most `size` distinct values merge
    /// exactly.
    pub fn merge_all<'a>(digests: impl IntoIterator<Item = &'a VehicleDigest>) -> VehicleDigest {
        let digests: Vec<&VehicleDigest> = digests.into_iter().collect();
        let size = digests
            .iter()
            .map(|d| d.size)
            .max()
            .unwrap_or(DEFAULT_DIGEST_SIZE);
        let mut out = VehicleDigest::new(size);
        out.merge_from_all(digests);
        out
    }

    /// Adds every value of `others` to this digest.
    pub fn merge_from_all<'a>(&mut self, others: impl IntoIterator<Item = &'a VehicleDigest>) {
        let mut approx: Vec<TDigest> = Vec::new();
        for o in others {
            self.size = self.size.max(o.size);
            match (&mut self.repr, &o.repr) {
                (Repr::Exact(mine), Repr::Exact(theirs)) => {
                    for (v, c) in theirs {
                        insert(mine, *v, *c);
                    }
                    if mine.len() > self.size {
                        let digest = tdigest_of(mine, self.size);
                        self.repr = Repr::Approx {
                            digest,
                            pending: Vec::new(),
                        };
                    }
                }
                _ => approx.push(o.to_tdigest()),
            }
        }
        if !approx.is_empty() {
            approx.push(self.to_tdigest());
            self.repr = Repr::Approx {
                digest: TDigest::merge_digests(approx),
                pending: Vec::new(),
            };
        }
    }

    /// The stored form.
    pub fn to_state(&self) -> DigestState {
        let size = self.size as u32;
        match &self.repr {
            Repr::Exact(values) => {
                let counts: Option<Vec<(u32, u64)>> = values
                    .iter()
                    .map(|(v, c)| {
                        (v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(v))
                            .then_some((*v as u32, *c))
                    })
                    .collect();
                match counts {
                    Some(values) => DigestState::Counts { size, values },
                    None => DigestState::Exact {
                        size,
                        values: values.clone(),
                    },
                }
            }
            Repr::Approx { digest, pending } => DigestState::Approx {
                size,
                count: digest.count() as u64,
                sum: digest.sum(),
                min: digest.min().unwrap_or(0.0),
                max: digest.max().unwrap_or(0.0),
                centroids: digest
                    .centroids()
                    .iter()
                    .map(|c| (c.mean(), c.weight().round() as u64))
                    .collect(),
                pending: pending.clone(),
            },
        }
    }

    /// Rebuilds a digest from its stored form. Inconsistent states (as from a corrupted item)
    /// give an error rather than a digest that would answer wrongly.
    pub fn from_state(s: &DigestState) -> Result<Self, DigestError> {
        let ascending = |vals: &[(f64, u64)]| {
            vals.iter().all(|(v, c)| v.is_finite() && *c > 0)
                && vals
                    .windows(2)
                    .all(|w| w[0].0.total_cmp(&w[1].0) == Ordering::Less)
        };
        match s {
            DigestState::Counts { size, values } => {
                let values: Vec<(f64, u64)> =
                    values.iter().map(|(v, c)| (f64::from(*v), *c)).collect();
                if !ascending(&values) {
                    return Err(DigestError("values are not distinct and ascending"));
                }
                Ok(Self::exact_from(*size, values))
            }
            DigestState::Exact { size, values } => {
                if !ascending(values) {
                    return Err(DigestError("values are not distinct and ascending"));
                }
                Ok(Self::exact_from(*size, values.clone()))
            }
            DigestState::Approx {
                size,
                count,
                sum,
                min,
                max,
                centroids,
                pending,
            } => {
                let size = (*size as usize).max(1);
                if !pending.iter().all(|v| v.is_finite()) {
                    return Err(DigestError("a pending value is not finite"));
                }
                if centroids.is_empty() {
                    return if *count == 0 {
                        Ok(Self {
                            size,
                            repr: Repr::Approx {
                                digest: TDigest::new_with_size(size),
                                pending: pending.clone(),
                            },
                        })
                    } else {
                        Err(DigestError("count without centroids"))
                    };
                }
                let weights: u64 = centroids.iter().map(|c| c.1).sum();
                let sane = weights == *count
                    && min.is_finite()
                    && max.is_finite()
                    && min <= max
                    && centroids
                        .iter()
                        .all(|(m, w)| m.is_finite() && *w > 0 && m >= min && m <= max);
                if !sane {
                    return Err(DigestError("centroids disagree with the summary"));
                }
                let cs = centroids
                    .iter()
                    .map(|(m, w)| Centroid::new(*m, *w as f64))
                    .collect();
                Ok(Self {
                    size,
                    repr: Repr::Approx {
                        digest: TDigest::new(cs, *sum, *count as f64, Some(*max), Some(*min), size),
                        pending: pending.clone(),
                    },
                })
            }
        }
    }

    fn exact_from(size: u32, values: Vec<(f64, u64)>) -> Self {
        let mut d = Self::new(size as usize);
        if values.len() > d.size {
            d.repr = Repr::Approx {
                digest: tdigest_of(&values, d.size),
                pending: Vec::new(),
            };
        } else {
            d.repr = Repr::Exact(values);
        }
        d
    }
}

/// The median of distinct ascending values with counts (mean of the two middle ones for an
/// even total).
fn exact_median_of_counts(values: &[(f64, u64)]) -> Option<f64> {
    let n: u64 = values.iter().map(|(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    // 0-based ranks of the two middle values (the same one for an odd count).
    let (lo, hi) = ((n - 1) / 2, n / 2);
    let mut seen = 0u64;
    let mut at_lo = None;
    for (v, c) in values {
        let next = seen + c;
        if at_lo.is_none() && lo < next {
            at_lo = Some(*v);
        }
        if hi < next {
            return at_lo.map(|a| if a == *v { a } else { (a + v) / 2.0 });
        }
        seen = next;
    }
    None
}

/// A stored digest that cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stored digest: {0}")]
pub struct DigestError(pub &'static str);

impl Serialize for VehicleDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_state().serialize(s)
    }
}

impl<'de> Deserialize<'de> for VehicleDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = DigestState::deserialize(d)?;
        Self::from_state(&s).map_err(serde::de::Error::custom)
    }
}

/// The exact median of `values` (mean of the two middle values for an even count), for
/// measuring the digest's error.
pub fn exact_median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The exact quantile at rank `q` (nearest rank, clamped) of `sorted` values.
pub fn exact_quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    Some(sorted[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digest_of(values: &[f64]) -> VehicleDigest {
        let mut d = VehicleDigest::default();
        for v in values {
            d.push(*v);
        }
        d.flush();
        d
    }

    /// Asserts an (approximate) median is within the documented rank bound.
    fn within_rank_bound(values: &[f64], estimate: f64) -> Result<(), TestCaseError> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let e = rank_error(&sorted, estimate);
        prop_assert!(
            e <= MEDIAN_RANK_BOUND,
            "rank error {} (estimate {}, exact {:?}, n {})",
            e,
            estimate,
            exact_median(values),
            values.len()
        );
        Ok(())
    }

    #[test]
    fn small_digests_are_exact() {
        let d = digest_of(&[3.0, 1.0, 2.0]);
        assert_eq!(d.median(), Some(2.0));
        let d = digest_of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(d.median(), Some(2.5));
        assert_eq!(VehicleDigest::default().median(), None);
        assert!(d.is_exact());
    }

    #[test]
    fn a_day_of_vehicle_counts_stays_exact_and_small() {
        // 24 h of one light per minute, counts 0..40: 41 distinct values at most.
        let values: Vec<f64> = (0..1440).map(|i| f64::from((i * 7919) % 41)).collect();
        let d = digest_of(&values);
        assert!(d.is_exact());
        assert_eq!(d.centroids(), 41);
        assert_eq!(d.median(), exact_median(&values));
        assert!(matches!(d.to_state(), DigestState::Counts { .. }));
    }

    #[test]
    fn past_its_size_a_digest_becomes_a_t_digest() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let d = digest_of(&values);
        assert!(!d.is_exact());
        assert!(d.centroids() <= DEFAULT_DIGEST_SIZE);
        assert_eq!(d.count(), 1000);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(rank_error(&sorted, d.median().unwrap_or(f64::NAN)) <= MEDIAN_RANK_BOUND);
    }

    #[test]
    fn the_stored_form_round_trips() {
        for values in [
            (0..5000).map(|i| f64::from(i % 37)).collect::<Vec<_>>(),
            (0..5000).map(|i| f64::from(i) / 7.0).collect(),
            vec![0.5, 1.5, 1.5],
        ] {
            let d = digest_of(&values);
            let back = VehicleDigest::from_state(&d.to_state()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, d);
            let mut half = d.clone();
            half.push(4.0);
            let back_half =
                VehicleDigest::from_state(&half.to_state()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back_half, half, "pending values are stored as they are");
            let json = serde_json::to_string(&d).unwrap_or_default();
            let again: VehicleDigest =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again.median(), d.median());
        }
    }

    #[test]
    fn a_corrupted_state_is_refused() {
        let s = DigestState::Approx {
            size: 10,
            count: 7,
            sum: 6.0,
            min: 1.0,
            max: 3.0,
            centroids: vec![(1.0, 1), (2.0, 1), (3.0, 1)],
            pending: vec![],
        };
        assert!(VehicleDigest::from_state(&s).is_err());
        let s = DigestState::Counts {
            size: 10,
            values: vec![(3, 1), (2, 1)],
        };
        assert!(VehicleDigest::from_state(&s).is_err());
        let s = DigestState::Counts {
            size: 10,
            values: vec![(3, 0)],
        };
        assert!(VehicleDigest::from_state(&s).is_err());
    }

    #[test]
    fn merging_does_not_change_the_inputs() {
        let a = digest_of(&[1.0, 2.0, 3.0]);
        let b = digest_of(&[10.0, 20.0]);
        let (a0, b0) = (a.clone(), b.clone());
        let m = VehicleDigest::merge_all([&a, &b]);
        assert_eq!((a, b), (a0, b0));
        assert_eq!(m.count(), 5);
        assert_eq!(m.median(), Some(3.0));
    }

    fn counts() -> impl Strategy<Value = Vec<Vec<u32>>> {
        prop::collection::vec(prop::collection::vec(0u32..60, 1..200), 1..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn uniform_medians_stay_within_the_bound(values in prop::collection::vec(0.0f64..1000.0, 1..20_000)) {
            within_rank_bound(&values, digest_of(&values).median().unwrap_or(f64::NAN))?;
        }

        #[test]
        fn skewed_medians_stay_within_the_bound(raw in prop::collection::vec(0.0f64..1.0, 1..20_000)) {
            // Exponential-like: many small counts, a long tail of large ones.
            let values: Vec<f64> = raw.iter().map(|u| (-(1.0 - u).ln() * 8.0).floor()).collect();
            within_rank_bound(&values, digest_of(&values).median().unwrap_or(f64::NAN))?;
        }

        #[test]
        fn merged_vehicle_counts_give_the_exact_median(parts in counts()) {
            // Integer vehicle counts, split like panes of several shards, merged in one step.
            let digests: Vec<VehicleDigest> = parts
                .iter()
                .map(|p| digest_of(&p.iter().map(|v| f64::from(*v)).collect::<Vec<_>>()))
                .collect();
            let merged = VehicleDigest::merge_all(&digests);
            let all: Vec<f64> = parts.concat().into_iter().map(f64::from).collect();
            prop_assert_eq!(merged.median(), exact_median(&all));
        }

        #[test]
        fn any_merge_tree_of_vehicle_counts_gives_the_same_digest(parts in counts(), split in 0usize..40) {
            let digests: Vec<VehicleDigest> = parts
                .iter()
                .map(|p| digest_of(&p.iter().map(|v| f64::from(*v)).collect::<Vec<_>>()))
                .collect();
            let flat = VehicleDigest::merge_all(&digests);
            let k = split.min(digests.len());
            let (a, b) = digests.split_at(k);
            let tree = VehicleDigest::merge_all([&VehicleDigest::merge_all(b), &VehicleDigest::merge_all(a)]);
            prop_assert_eq!(flat.to_state(), tree.to_state());
        }

        #[test]
        fn merged_approximate_digests_stay_within_the_bound(
            parts in prop::collection::vec(prop::collection::vec(0.0f64..1000.0, 1..400), 1..60)
        ) {
            let digests: Vec<VehicleDigest> = parts.iter().map(|p| digest_of(p)).collect();
            let merged = VehicleDigest::merge_all(&digests);
            within_rank_bound(&parts.concat(), merged.median().unwrap_or(f64::NAN))?;
        }
    }
}
