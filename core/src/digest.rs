//! Medians of vehicle counts from t-digests (Dunning & Ertl, "Computing extremely accurate
//! quantiles using t-digests", 2019), on the `tdigest` crate.
//!
//! A [`VehicleDigest`] buffers pushed values and compresses them into centroids before it is
//! read or stored. Merges never mutate their inputs. The stored form ([`DigestState`]) keeps
//! centroid means as `f64` and weights as integers (every weight is a count of readings).
//!
//! Error bounds (measured in `docs/medians.md` with `examples/digest_error.rs`, checked by the
//! tests below): the estimated median is within 1 % of rank of the exact one
//! ([`MEDIAN_RANK_BOUND`], see [`rank_error`]) on continuous, skewed and integer data, single
//! or merged from many panes and shards.

use serde::{Deserialize, Serialize};
use tdigest::{Centroid, TDigest};

/// Default compression (the crate's `max_size`): at most this many centroids per digest.
pub const DEFAULT_DIGEST_SIZE: usize = 200;

/// Values a digest buffers before it compresses them into centroids.
const PENDING_LIMIT: usize = 256;

/// The rank error ([`rank_error`]) the median stays within (checked by tests).
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

/// A t-digest of vehicle counts.
#[derive(Clone, Debug, PartialEq)]
pub struct VehicleDigest {
    inner: TDigest,
    /// Values pushed since the last flush (kept here rather than in the crate's buffer, which
    /// reserves five times the compression per digest: too much for thousands of small ones).
    pending: Vec<f64>,
}

/// The stored form of a [`VehicleDigest`]: flushed centroids and summary statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestState {
    /// Compression (max centroids).
    pub size: u32,
    /// Number of values.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value (0 when empty).
    pub min: f64,
    /// Largest value (0 when empty).
    pub max: f64,
    /// Centroids as (mean, weight), ascending by mean.
    pub centroids: Vec<(f64, u64)>,
    /// Values added since the last compression (not in `count` or the centroids).
    #[serde(default)]
    pub pending: Vec<f64>,
}

impl Default for VehicleDigest {
    fn default() -> Self {
        Self::new(DEFAULT_DIGEST_SIZE)
    }
}

impl VehicleDigest {
    /// An empty digest of compression `size` (at least 1).
    pub fn new(size: usize) -> Self {
        Self {
            inner: TDigest::new_with_size(size.max(1)),
            pending: Vec::new(),
        }
    }

    /// Adds one value. Values are buffered (and stored as they are) until
    /// [`VehicleDigest::flush`] or until the buffer holds `PENDING_LIMIT` of them, so the
    /// small digests of a pane are never compressed on the ingest path.
    pub fn push(&mut self, v: f64) {
        if v.is_finite() {
            self.pending.push(v);
            if self.pending.len() >= PENDING_LIMIT {
                self.flush();
            }
        }
    }

    /// Compresses buffered values into centroids.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            let mut values = std::mem::take(&mut self.pending);
            values.sort_unstable_by(f64::total_cmp);
            self.inner = self.inner.merge_sorted(values);
        }
    }

    /// A flushed copy of the inner digest.
    fn flushed(&self) -> TDigest {
        if self.pending.is_empty() {
            self.inner.clone()
        } else {
            let mut values = self.pending.clone();
            values.sort_unstable_by(f64::total_cmp);
            self.inner.merge_sorted(values)
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.inner.count() as u64 + self.pending.len() as u64
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.inner.count() == 0.0 && self.pending.is_empty()
    }

    /// Number of centroids once flushed.
    pub fn centroids(&self) -> usize {
        self.inner.centroids().len()
    }

    /// The estimated median; `None` when empty. Flush first if values were pushed.
    pub fn median(&self) -> Option<f64> {
        self.flushed().estimate_quantile(0.5)
    }

    /// A new digest that merges all of `digests`; the inputs do not change.
    pub fn merge_all<'a>(digests: impl IntoIterator<Item = &'a VehicleDigest>) -> VehicleDigest {
        let parts: Vec<TDigest> = digests.into_iter().map(VehicleDigest::flushed).collect();
        if parts.is_empty() {
            return Self::default();
        }
        Self {
            inner: TDigest::merge_digests(parts),
            pending: Vec::new(),
        }
    }

    /// The stored form: centroids and the values still pending, as they are.
    pub fn to_state(&self) -> DigestState {
        let d = &self.inner;
        DigestState {
            size: d.max_size() as u32,
            count: d.count() as u64,
            sum: d.sum(),
            min: d.min().unwrap_or(0.0),
            max: d.max().unwrap_or(0.0),
            centroids: d
                .centroids()
                .iter()
                .map(|c| (c.mean(), c.weight().round() as u64))
                .collect(),
            pending: self.pending.clone(),
        }
    }

    /// Rebuilds a digest from its stored form. Inconsistent states (as from a corrupted item)
    /// give an error rather than a digest that would answer wrongly.
    pub fn from_state(s: &DigestState) -> Result<Self, DigestError> {
        let size = (s.size as usize).max(1);
        if !s.pending.iter().all(|v| v.is_finite()) {
            return Err(DigestError("a pending value is not finite"));
        }
        if s.centroids.is_empty() {
            return if s.count == 0 {
                Ok(Self {
                    pending: s.pending.clone(),
                    ..Self::new(size)
                })
            } else {
                Err(DigestError("count without centroids"))
            };
        }
        let weights: u64 = s.centroids.iter().map(|c| c.1).sum();
        let sane = weights == s.count
            && s.min.is_finite()
            && s.max.is_finite()
            && s.min <= s.max
            && s.centroids
                .iter()
                .all(|(m, w)| m.is_finite() && *w > 0 && *m >= s.min && *m <= s.max);
        if !sane {
            return Err(DigestError("centroids disagree with the summary"));
        }
        let centroids = s
            .centroids
            .iter()
            .map(|(m, w)| Centroid::new(*m, *w as f64))
            .collect();
        Ok(Self {
            inner: TDigest::new(
                centroids,
                s.sum,
                s.count as f64,
                Some(s.max),
                Some(s.min),
                size,
            ),
            pending: s.pending.clone(),
        })
    }
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

    /// Asserts the median of continuous data is within the documented rank bound.
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
    }

    #[test]
    fn the_stored_form_round_trips() {
        let d = digest_of(&(0..5000).map(|i| f64::from(i % 37)).collect::<Vec<_>>());
        let back = VehicleDigest::from_state(&d.to_state()).unwrap_or_else(|e| panic!("{e}"));
        let mut half = d.clone();
        half.push(4.0);
        let back_half =
            VehicleDigest::from_state(&half.to_state()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back_half, half, "pending values are stored as they are");
        assert_eq!(back.to_state(), d.to_state());
        assert_eq!(back.median(), d.median());
        let json = serde_json::to_string(&d).unwrap_or_default();
        let again: VehicleDigest = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.median(), d.median());
    }

    #[test]
    fn a_corrupted_state_is_refused() {
        let mut s = digest_of(&[1.0, 2.0, 3.0]).to_state();
        s.count = 7;
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
        fn merged_medians_stay_within_the_bound(
            parts in prop::collection::vec(prop::collection::vec(0u32..60, 1..400), 1..80)
        ) {
            // Integer vehicle counts, split like panes of several shards, merged in one step.
            let digests: Vec<VehicleDigest> = parts
                .iter()
                .map(|p| digest_of(&p.iter().map(|v| f64::from(*v)).collect::<Vec<_>>()))
                .collect();
            let merged = VehicleDigest::merge_all(&digests);
            let all: Vec<f64> = parts.concat().into_iter().map(f64::from).collect();
            within_rank_bound(&all, merged.median().unwrap_or(f64::NAN))?;
        }
    }
}
